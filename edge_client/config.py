"""Configuration: defaults, then a file (INI, section ``[edge]``), then ``ROLLCALL_EDGE_*``
environment variables, then command-line flags — each later source wins."""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_client.retry import RetryPolicy

DEFAULT_CONFIG_FILE = "/etc/rollcall-edge.ini"
ENV_PREFIX = "ROLLCALL_EDGE_"


def _default_queue() -> str:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "rollcall-edge" / "queue.sqlite3")


@dataclasses.dataclass
class EdgeConfig:
    portal_url: str = "http://127.0.0.1:8000"
    token: str = ""
    token_file: str = ""
    camera: str = "usb:0"  # usb:N, csi:N, a video file, or a folder of images
    camera_width: int = 1280
    camera_height: int = 720
    camera_fps: float = 30.0
    realtime: bool = True  # files and folders play at their frame rate, dropping late frames like a camera
    loop: bool = False
    folder_fps: float = 10.0
    detector: str = "auto"  # auto (MTCNN on OpenCV DNN, else Haar), mtcnn, haar
    detect_width: int = 640  # frames are downscaled to this width for detection
    min_face: int = 60  # pixels, in the full frame
    trigger: str = "both"  # auto (a face that stays), button, or both
    settle_frames: int = 3
    visit_gap_seconds: float = 4.0
    burst_seconds: float = 2.0
    burst_fps: float = 12.0
    transport: str = "auto"  # auto (websocket, REST when websockets are not offered), websocket, rest
    stream_bursts: bool = True  # over a connected websocket, send a check-in's frames as they are taken
    queue_path: str = dataclasses.field(default_factory=_default_queue)
    heartbeat_seconds: float = 30.0
    retry_base_seconds: float = 2.0  # first wait before retrying an event that failed (then doubling, with jitter)
    retry_max_seconds: float = 300.0  # the longest wait between two tries of one event
    dead_letter_tries: int = 10  # an event failing this many times ...
    dead_letter_age: float = 3600.0  # ... and queued at least this many seconds ago goes to the dead letters
    preview_seconds: float = 2.0  # 0 = no preview frames for the live monitor
    gpio: str = "auto"  # auto, jetson, simulated
    led_pins: str = "29,31,33"  # BOARD numbering: red, green, blue
    led_active_low: bool = False
    button_pin: int = 15
    fresh_seconds: float = 20.0  # decisions for older (queued) events are logged, not shown on the LED
    exit_when_done: bool = False  # file sources: exit once the source ends and the queue is delivered
    drain_timeout: float = 120.0
    dry_run: bool = False
    log_format: str = "json"
    log_level: str = "info"

    def resolved_token(self) -> str:
        if self.token:
            return self.token.strip()
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return ""

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for logs."""
        values = dataclasses.asdict(self)
        if values["token"]:
            values["token"] = values["token"][:6] + "…"
        return values

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(base=self.retry_base_seconds, event_cap=self.retry_max_seconds,
                           max_tries=self.dead_letter_tries, max_age=self.dead_letter_age)


FIELDS = {field.name: field for field in dataclasses.fields(EdgeConfig)}


def _convert(name: str, value: Any) -> Any:
    kind = FIELDS[name].type
    if not isinstance(value, str):
        return value
    if kind in ("bool", bool):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected a yes/no value, got {value!r}")
    if kind in ("int", int):
        return int(value)
    if kind in ("float", float):
        return float(value)
    return value


def load(file: str | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None) -> EdgeConfig:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = file or env.get(ENV_PREFIX + "CONFIG") or (DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).exists() else None)
    if path:
        parser = configparser.ConfigParser()
        if not parser.read(path):
            raise FileNotFoundError(f"config file not found: {path}")
        for name, value in (parser["edge"].items() if parser.has_section("edge") else []):
            if name not in FIELDS:
                raise ValueError(f"{path}: unknown setting {name!r}")
            values[name] = _convert(name, value)
    for name in FIELDS:
        if ENV_PREFIX + name.upper() in env:
            values[name] = _convert(name, env[ENV_PREFIX + name.upper()])
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _convert(name, value)
    config = EdgeConfig(**values)
    _validate(config)
    return config


def _validate(config: EdgeConfig) -> None:
    choices = {"detector": ("auto", "mtcnn", "haar"), "trigger": ("auto", "button", "both"),
               "transport": ("auto", "websocket", "rest"), "gpio": ("auto", "jetson", "simulated"),
               "log_format": ("json", "text")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {getattr(config, name)!r})")
    if not config.portal_url.startswith(("http://", "https://")):
        raise ValueError("portal_url must start with http:// or https://")
    if len(config.led_pins.split(",")) != 3:
        raise ValueError("led_pins must be three BOARD pin numbers: red,green,blue")
    if config.burst_seconds <= 0 or config.burst_fps <= 0:
        raise ValueError("burst_seconds and burst_fps must be positive")
    if config.retry_base_seconds <= 0 or config.retry_max_seconds < config.retry_base_seconds:
        raise ValueError("retry_base_seconds must be positive and at most retry_max_seconds")
    if config.dead_letter_tries < 1 or config.dead_letter_age < 0:
        raise ValueError("dead_letter_tries must be at least 1 and dead_letter_age at least 0")
