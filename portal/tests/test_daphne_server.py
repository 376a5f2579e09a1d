"""What the real server (Daphne, as the README runs it) does with bodies Django must judge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from recognition.tests.integration.test_production_stack import _free_port, _wait_port

ROOT = Path(__file__).resolve().parents[2]


def test_multipart_without_a_boundary_reaches_django_under_daphne(tmp_path: Path) -> None:
    """Twisted used to answer it with an empty 400 (no JSON, no CSP) before Django saw it."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "DJANGO_"))}
    env.update(ROLLCALL_VAR_DIR=str(tmp_path), ROLLCALL_SCHEDULER="off")
    server = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_port(port, 60, server)
        for content_type in ("multipart/form-data", "multipart/form-data; boundary="):
            response = requests.post(f"http://127.0.0.1:{port}/api/v1/detect", data=b"xx", timeout=30,
                                     headers={"Content-Type": content_type})
            assert response.status_code in (400, 401, 403), response.content
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.json()["code"]
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
