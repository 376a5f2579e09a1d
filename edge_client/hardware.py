"""The button and the RGB LED. On a Jetson (Jetson.GPIO importable) they are real pins; elsewhere a
simulated GPIO: the LED is printed on the console and logged, and the button is a line on stdin
(Enter = press, ``enrol CODE`` = an enrolment capture for the employee the code names).

LED states: idle (off), working (blue), accepted (green), rejected (red), liveness_failed
(blinking red), unreachable (yellow = red + green). Accepted / rejected / liveness_failed show
for ``hold`` seconds, then the LED returns to idle, or to yellow while the portal is unreachable.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable

from edge_client.logs import emit

COLOURS = {
    "idle": (False, False, False),
    "working": (False, False, True),
    "accepted": (False, True, False),
    "rejected": (True, False, False),
    "liveness_failed": (True, False, False),  # blinking
    "unreachable": (True, True, False),
}
BLINKING = {"liveness_failed"}
HOLD_SECONDS = 2.0


class LedDriver:
    def write(self, red: bool, green: bool, blue: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ConsoleLed(LedDriver):
    """The simulated LED: a coloured block on a terminal; the state itself is logged by the controller."""

    NAMES = {(False, False, False): "off", (False, False, True): "blue", (False, True, False): "green",
             (True, False, False): "red", (True, True, False): "yellow"}

    def __init__(self, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.last: tuple[bool, bool, bool] | None = None

    def write(self, red: bool, green: bool, blue: bool) -> None:
        colour = (red, green, blue)
        if colour == self.last:
            return
        self.last = colour
        if hasattr(self.stream, "isatty") and self.stream.isatty():
            code = {"off": "90", "blue": "94", "green": "92", "red": "91", "yellow": "93"}[self.NAMES.get(colour, "off")]
            self.stream.write(f"\r\033[{code}m● LED {self.NAMES.get(colour, colour)}\033[0m   \n")
            self.stream.flush()


class JetsonLed(LedDriver):
    def __init__(self, gpio, pins: tuple[int, int, int], active_low: bool = False) -> None:
        self.gpio, self.pins, self.active_low = gpio, pins, active_low
        for pin in pins:
            gpio.setup(pin, gpio.OUT, initial=gpio.HIGH if active_low else gpio.LOW)

    def write(self, red: bool, green: bool, blue: bool) -> None:
        for pin, on in zip(self.pins, (red, green, blue)):
            self.gpio.output(pin, self.gpio.LOW if on == self.active_low else self.gpio.HIGH)


class LedController:
    """States with timed returns and blinking, on any driver; every state change is logged."""

    def __init__(self, driver: LedDriver, hold: float = HOLD_SECONDS) -> None:
        self.driver, self.hold = driver, hold
        self.state = ""
        self.base = "idle"
        self._until = 0.0
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="led", daemon=True)
        self.show("idle")
        self._thread.start()

    def show(self, state: str, hold: bool = False) -> None:
        """Show ``state`` now; with ``hold`` it lasts ``self.hold`` seconds, then the base state returns."""
        import time

        with self._lock:
            self._until = time.monotonic() + self.hold if hold else 0.0
            self._set(state)
            self._lock.notify_all()

    def set_base(self, state: str) -> None:
        """idle or unreachable: what the LED shows between events."""
        with self._lock:
            self.base = state
            if not self._until and self.state in ("idle", "unreachable"):
                self._set(state)
            self._lock.notify_all()

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            emit("led", state=state)
        self.driver.write(*COLOURS[state])

    def _run(self) -> None:
        import time

        blink_on = True
        with self._lock:
            while not self._stop:
                now = time.monotonic()
                if self._until and now >= self._until:
                    self._until = 0.0
                    self._set(self.base)
                if self.state in BLINKING:
                    blink_on = not blink_on
                    self.driver.write(*(COLOURS[self.state] if blink_on else COLOURS["idle"]))
                    self._lock.wait(0.15)
                else:
                    self._lock.wait(max(0.05, self._until - now) if self._until else 1.0)

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout=2)
        self.driver.write(False, False, False)
        self.driver.close()


class Buttons:
    """Presses and commands from the button (or stdin), as a queue the client polls."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()

    def press(self) -> None:
        self.events.put(("press", ""))

    def command(self, kind: str, value: str = "") -> None:
        self.events.put((kind, value))

    def poll(self) -> tuple[str, str] | None:
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        pass


class StdinButtons(Buttons):
    """The simulated button: Enter (or ``press``) presses it, ``enrol CODE`` asks for an enrolment
    capture, ``quit`` stops the client."""

    def __init__(self, stream=None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdin
        threading.Thread(target=self._read, name="stdin-button", daemon=True).start()

    def _read(self) -> None:
        for line in self.stream:
            words = line.strip().split()
            if not words or words[0] == "press":
                self.press()
            elif words[0] == "enrol" and len(words) == 2:
                self.command("enrol", words[1])
            elif words[0] == "quit":
                self.command("quit")
                return
            else:
                emit("button_unknown_command", logging.WARNING, line=line.strip())


class JetsonButtons(Buttons):
    def __init__(self, gpio, pin: int) -> None:
        super().__init__()
        self.gpio, self.pin = gpio, pin
        gpio.setup(pin, gpio.IN)
        gpio.add_event_detect(pin, gpio.FALLING, callback=lambda _channel: self.press(), bouncetime=300)

    def close(self) -> None:
        self.gpio.remove_event_detect(self.pin)


def jetson_gpio():
    """Jetson.GPIO when this is a Jetson with the library installed, else None."""
    try:
        import Jetson.GPIO as GPIO  # noqa: N814 - the library's documented name
    except (ImportError, RuntimeError):
        return None
    return GPIO


def create(mode: str, pins: str, active_low: bool, button_pin: int, stdin=None,
           gpio_factory: Callable = jetson_gpio) -> tuple[LedController, Buttons, str]:
    """The LED and button for ``mode`` (auto / jetson / simulated); returns them and the mode used."""
    gpio = gpio_factory() if mode in ("auto", "jetson") else None
    if mode == "jetson" and gpio is None:
        raise RuntimeError("gpio=jetson but Jetson.GPIO is not available (pip install Jetson.GPIO on the board)")
    if gpio is not None:
        gpio.setwarnings(False)
        gpio.setmode(gpio.BOARD)
        red, green, blue = (int(p) for p in pins.split(","))
        return LedController(JetsonLed(gpio, (red, green, blue), active_low)), JetsonButtons(gpio, button_pin), "jetson"
    return LedController(ConsoleLed()), StdinButtons(stdin), "simulated"
