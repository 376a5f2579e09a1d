"""Command line: ``python -m edge_client [run] [flags]``, ``python -m edge_client enrol --code C``,
``python -m edge_client check``, ``python -m edge_client status`` (the queue and its dead letters)
and ``python -m edge_client replay ID [ID ...] | --all`` (put dead letters back in the queue; the
running client resends them). Every flag can also come from the config file (INI, section [edge])
or a ROLLCALL_EDGE_<NAME> environment variable; flags win."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time

from edge_client import __version__, camera, config, hardware
from edge_client.logs import configure, emit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge_client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "enrol", "check", "status", "replay"],
                        help="run the door client (default), take one enrolment photo, check the setup, list the "
                             "queue and its dead letters, or replay dead letters")
    parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="replay: the dead letters to resend (see status)")
    parser.add_argument("--all", dest="replay_all", action="store_true", help="replay: every dead letter")
    parser.add_argument("--version", action="version", version=f"rollcall-edge {__version__}")
    parser.add_argument("--config", help=f"INI file with an [edge] section (default {config.DEFAULT_CONFIG_FILE} if present)")
    parser.add_argument("--code", help="enrol: the one-time enrolment code a manager issued for the employee")
    parser.add_argument("--dry-run", dest="dry_run", action="store_const", const=True,
                        help="camera, detection, tracking and LED only: log what would be sent, contact nothing")
    parser.add_argument("--exit-when-done", dest="exit_when_done", action="store_const", const=True,
                        help="with a file or folder camera: exit when it ends and the queue is delivered")
    parser.add_argument("--no-realtime", dest="realtime", action="store_const", const=False,
                        help="read files and folders as fast as possible instead of at their frame rate")
    parser.add_argument("--loop", action="store_const", const=True, help="repeat a file or folder camera")
    for field in dataclasses.fields(config.EdgeConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name in ("dry_run", "exit_when_done", "realtime", "loop"):
            continue
        if field.type in ("bool", bool):
            parser.add_argument(flag, dest=field.name, choices=["yes", "no"])
        else:
            parser.add_argument(flag, dest=field.name, metavar=field.name.upper())
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(config.EdgeConfig)}
    try:
        settings = config.load(args.config, flags=flags)
    except (ValueError, FileNotFoundError) as exc:
        print(f"rollcall-edge: {exc}", file=sys.stderr)
        return 2
    if args.command in ("status", "replay"):
        return _status(settings) if args.command == "status" else _replay(settings, args.ids, args.replay_all)
    configure(settings.log_format, settings.log_level)
    emit("config", version=__version__, **settings.public())
    if args.command == "check":
        return _check(settings)
    token = settings.resolved_token()
    if not token and not settings.dry_run:
        emit("no_token", logging.ERROR, hint="set token, token_file, ROLLCALL_EDGE_TOKEN or --token (an admin creates the device)")
        return 2
    from edge_client.detector import create_detector

    try:
        source = camera.open_source(settings.camera, width=settings.camera_width, height=settings.camera_height,
                                    fps=settings.camera_fps, realtime=settings.realtime, loop=settings.loop,
                                    folder_fps=settings.folder_fps)
    except camera.CameraError as exc:
        emit("camera_error", logging.ERROR, error=str(exc))
        return 3
    detector = create_detector(settings.detector, settings.min_face, settings.detect_width)
    led, buttons, gpio_mode = hardware.create(settings.gpio, settings.led_pins, settings.led_active_low, settings.button_pin)
    emit("hardware", gpio=gpio_mode)
    if args.command == "enrol":
        return _enrol(settings, token, args.code, source, detector, led)
    from edge_client.client import EdgeClient
    from edge_client.outbox import Outbox
    from edge_client.portal import PortalClient

    outbox = None if settings.dry_run else Outbox(settings.queue_path)
    portal = None if settings.dry_run else PortalClient(settings.portal_url, token, settings.transport)
    client = EdgeClient(settings, source, detector, led, buttons, outbox, portal)
    try:
        return client.run()
    finally:
        led.close()
        buttons.close()
        if portal is not None:
            portal.close()
        if outbox is not None:
            outbox.close()


def _status(settings: config.EdgeConfig) -> int:
    """Print the queue: pending events and every dead letter (JSON on stdout)."""
    from edge_client.outbox import Outbox

    outbox = Outbox(settings.queue_path)
    try:
        letters = outbox.dead_letters()
        print(json.dumps({"queue": settings.queue_path, "pending": outbox.pending(), "dead_letters": len(letters),
                          "dead": [letter.public() for letter in letters]}, indent=2))
    finally:
        outbox.close()
    return 0


def _replay(settings: config.EdgeConfig, ids: list[int], everything: bool) -> int:
    """Put dead letters back at the end of the queue (same idempotency keys); the running client
    (or the next run) resends them."""
    from edge_client.outbox import Outbox

    if not ids and not everything:
        print("rollcall-edge: replay needs dead-letter IDs (see `status`) or --all", file=sys.stderr)
        return 2
    outbox = Outbox(settings.queue_path)
    try:
        replayed = outbox.replay(None if everything else ids)
        missing = sorted(set(ids) - {letter.id for letter in replayed})
        print(json.dumps({"replayed": [{"id": letter.id, "key": letter.key, "captured_at": letter.captured_at}
                                       for letter in replayed], "not_found": missing, "pending": outbox.pending()},
                         indent=2))
    finally:
        outbox.close()
    return 1 if missing else 0


def _check(settings: config.EdgeConfig) -> int:
    """Print what works: camera, detector, GPIO, portal and token."""
    from edge_client.detector import create_detector
    from edge_client.portal import PortalClient, Rejected, Unreachable

    report = {"camera": camera.probe(settings.camera) or "cannot open", "gpio": "jetson" if hardware.jetson_gpio() else "simulated"}
    try:
        report["detector"] = create_detector(settings.detector, settings.min_face, settings.detect_width).name
    except Exception as exc:
        report["detector"] = f"failed: {exc}"
    token = settings.resolved_token()
    if token:
        portal = PortalClient(settings.portal_url, token, settings.transport)
        try:
            portal.heartbeat()
            report["portal"] = "ok (token accepted)"
        except (Unreachable, Rejected) as exc:
            report["portal"] = f"failed: {exc}"
        portal.close()
    else:
        report["portal"] = "no token configured"
    print(json.dumps(report, indent=2))
    return 0 if report["portal"].startswith("ok") and not report["camera"].startswith("cannot") else 1


def _enrol(settings, token, code, source, detector, led) -> int:
    """One enrolment photo: wait for one face, keep the sharpest of a second of frames, send it now."""
    import base64
    import uuid

    from edge_client.client import _sharpness, crop_region, jpeg
    from edge_client.detector import largest
    from edge_client.portal import PortalClient, Rejected, Unreachable

    if not code:
        emit("enrol_needs_code", logging.ERROR, hint="--code CODE (a manager issues it on the employee's gallery page)")
        return 2
    led.show("working")
    shots: list[bytes] = []
    deadline = time.monotonic() + 15
    for frame in source.frames():
        face = largest(detector.detect(frame.image))
        if face is not None:
            left, top, right, bottom = crop_region(face.box, frame.image.shape, scale=2.5)
            shots.append(jpeg(frame.image[top:bottom, left:right], 95))
        if len(shots) >= 10 or time.monotonic() > deadline:
            break
    source.close()
    if not shots:
        emit("enrol_no_face", logging.ERROR)
        led.show("rejected", hold=True)
        time.sleep(led.hold)
        led.close()
        return 1
    portal = PortalClient(settings.portal_url, token, settings.transport)
    try:
        answer = portal.deliver("enrol", uuid.uuid4().hex, "", {"code": code, "photo": base64.b64encode(max(shots, key=_sharpness)).decode()})
        emit("enrolled", **answer)
        led.show("accepted", hold=True)
        status = 0
    except Rejected as exc:
        emit("enrol_refused", logging.ERROR, code=exc.code, detail=exc.detail)
        led.show("rejected", hold=True)
        status = 1
    except Unreachable as exc:
        emit("portal_unreachable", logging.ERROR, error=str(exc))
        led.show("unreachable", hold=True)
        status = 3
    finally:
        portal.close()
    time.sleep(led.hold)
    led.close()
    return status
