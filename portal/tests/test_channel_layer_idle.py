"""The production channel layer (Redis) keeps an idle websocket's receive alive.

channels_redis waits for a channel's next message in 5 s blocking pops; redis-py (6+) gives up
reading a socket after 5 s by default, so on a busy host a pop answered a little late raised
TimeoutError inside the consumer and closed the websocket (monitors and doors that heard nothing
for a few seconds were dropped; bench/load.py found it). Here a receiver in a fresh interpreter,
with the production settings from the environment, waits 12 s for a message while the machine
is kept busy; it must get the message, not an error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = """
import asyncio, django, json, time
django.setup()
from channels.layers import get_channel_layer

async def main():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:  # a busy event loop, as a loaded web process has
        sum(i * i for i in range(200_000))
        await asyncio.sleep(0)
    assert not waiting.done() or waiting.exception() is None, waiting.exception()
    await layer.send(channel, {"type": "late.message", "n": 1})
    print(json.dumps(await asyncio.wait_for(waiting, 10)))

asyncio.run(main())
"""


def test_an_idle_receive_outlives_the_blocking_pop(tmp_path: Path) -> None:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "CHANNEL_"))}
        env.update(DJANGO_SETTINGS_MODULE="portal.settings", ROLLCALL_VAR_DIR=str(tmp_path),
                   REDIS_URL=f"redis://127.0.0.1:{port}/0")
        done = subprocess.run([sys.executable, "-c", RECEIVER], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert '"n": 1' in done.stdout
    finally:
        server.terminate()
        server.wait(10)
