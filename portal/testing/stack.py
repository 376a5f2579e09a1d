"""The production stack on this machine, loopback only: a throw-away PostgreSQL cluster, a
redis-server, Daphne web processes and Celery workers, each a separate process started from the
same code and the production environment variables (``DATABASE_URL``, ``REDIS_URL``,
``MEDIA_ROOT``…; see portal/settings.py). Used by the integration tests
(recognition/tests/integration) and by ``bench/load.py``.

Pure Python, no Django imports: the processes import Django themselves. ``production_stack`` is a
context manager; every process it started is stopped and every folder it made is removed when it
exits, however it exits (an exception, Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER_PASSWORD = "integration-pw-1"


class StackUnavailable(RuntimeError):
    """A server program the stack needs is not installed (tests skip with this message)."""


def pg_bin() -> Path | None:
    found = sorted(PG_ROOT.glob("*/bin")) if PG_ROOT.is_dir() else []
    return found[-1] if found else None


def missing() -> str | None:
    """Why the stack cannot start here, or None."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed (.ci/run installs Debian's redis-server)"
    bin_dir = pg_bin()
    if bin_dir is None or not (bin_dir / "postgres").exists():
        return "PostgreSQL server binaries are not installed (.ci/run installs Debian's postgresql)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the 'postgres' user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Stack:
    """What a running stack offers. ``urls`` has one entry per web process (``url`` is the first)."""

    base: Path
    env: dict[str, str]
    logs: Path
    media: Path
    manage: list[str]
    token: str
    urls: list[str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(default_factory=dict)
    redis_port: int = 0
    worker_options: tuple[str, ...] = ("--pool", "solo")
    temp_dirs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.urls[0]

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start (or restart) a named process in its own session, its output in ``logs/<name>.log``."""
        self.commands[name] = (command, env)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes[name] = process
        return process

    def wait_ready(self, name: str, before: int = 0, timeout: float = 120) -> None:
        """Wait until ``logs/<name>.log`` says "ready" more than ``before`` times (a Celery worker)."""
        deadline = time.monotonic() + timeout
        while (self.logs / f"{name}.log").read_bytes().count(b"ready") <= before:
            process = self.processes[name]
            if time.monotonic() > deadline or process.poll() is not None:
                log = (self.logs / f"{name}.log").read_text(errors="replace")
                raise RuntimeError(f"{name} did not start: {log[-2000:]}")
            time.sleep(0.5)

    def start_worker(self, name: str, options: tuple[str, ...] | None = None, wait: bool = True) -> subprocess.Popen:
        """A Celery worker (``celery -A portal worker``, beat off) named ``<name>@<host>``."""
        process = self.start(name, [sys.executable, "-m", "celery", "-A", "portal", "worker",
                                    *(options or self.worker_options), "-l", "info", "-n", f"{name}@%h"], self.env)
        if wait:
            self.wait_ready(name)
        return process

    def stop(self, name: str, timeout: float = 20) -> None:
        process = self.processes[name]
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)

    def restart(self, name: str) -> None:
        """Start a stopped process again with its command; wait until it serves."""
        before = (self.logs / f"{name}.log").read_bytes().count(b"ready")
        self.start(name, *self.commands[name])
        if name == "redis":
            wait_port(self.redis_port, 20, self.processes["redis"])
            return
        self.wait_ready(name, before)

    def shell(self, code: str, timeout: float = 600) -> str:
        """Run Python in ``manage.py shell`` against the stack's database; its stdout."""
        done = subprocess.run([*self.manage, "shell", "-c", code], env=self.env, capture_output=True, text=True,
                              cwd=ROOT, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py shell failed ({done.returncode}): {done.stderr[-3000:]}")
        return done.stdout

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items() if process.poll() is None}


@contextmanager
def production_stack(base: Path, *, extra_env: dict[str, str] | None = None,
                     worker_options: tuple[str, ...] = ("--pool", "solo"), webs: int = 1,
                     workers: int = 1) -> Iterator[Stack]:
    """Start PostgreSQL, Redis, ``workers`` Celery workers (``worker``, ``worker2``…) and ``webs``
    Daphne processes (``web``, ``web2``…) with their files under ``base``; stop them all on exit.
    Raises StackUnavailable when redis-server or PostgreSQL is not installed."""
    if (why := missing()) is not None:
        raise StackUnavailable(why)
    bin_dir = pg_bin()
    assert bin_dir is not None
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o777)
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    media = base / "media"
    stack = Stack(base=base, env={}, logs=logs, media=media, manage=[sys.executable, str(ROOT / "manage.py")],
                  token="", urls=[], worker_options=worker_options)
    try:
        stack.redis_port = redis_port = free_port()
        stack.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"])
        wait_port(redis_port, 20, stack.processes["redis"])

        # Temporary folders may be private to root; PostgreSQL's user needs its own.
        pg_home = Path(tempfile.mkdtemp(prefix="rollcall-pg-"))
        stack.temp_dirs.append(pg_home)
        pg_data, pg_port = pg_home / "data", free_port()
        if os.geteuid() == 0:
            shutil.chown(pg_home, "postgres", "postgres")
        subprocess.run(as_postgres([str(bin_dir / "initdb"), "-D", str(pg_data), "-U", "rollcall", "--auth=trust",
                                    "-E", "UTF8"]), check=True, capture_output=True)
        stack.start("postgres", as_postgres([str(bin_dir / "postgres"), "-D", str(pg_data), "-p", str(pg_port),
                                             "-k", str(pg_home), "-c", "listen_addresses=127.0.0.1"]))
        wait_port(pg_port, 30, stack.processes["postgres"])
        subprocess.run(as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port),
                                    "-U", "rollcall", "rollcall"]), check=True, capture_output=True)

        media.mkdir(exist_ok=True)
        stack.env = env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_", "DATABASE_", "REDIS_"))},
            "DATABASE_URL": f"postgres://rollcall@127.0.0.1:{pg_port}/rollcall",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "MEDIA_ROOT": str(media),
            "ROLLCALL_VAR_DIR": str(base / "var"),
            "ROLLCALL_TASK_WAIT_SECONDS": "8",
            "ROLLCALL_HTTPS": "0",  # plain HTTP on loopback
            "DJANGO_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
            **(extra_env or {}),
        }
        manage = stack.manage
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com"],
                       env=env, check=True, cwd=ROOT, capture_output=True)
        stack.token = subprocess.run([*manage, "drf_create_token", "admin"], env=env, check=True, cwd=ROOT,
                                     capture_output=True, text=True).stdout.split()[2]
        names = ["worker" if i == 0 else f"worker{i + 1}" for i in range(workers)]
        for name in names:
            stack.start_worker(name, wait=False)
        for i in range(webs):
            name, port = ("web" if i == 0 else f"web{i + 1}"), free_port()
            stack.start(name, [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "portal.asgi:application"], env)
            stack.urls.append(f"http://127.0.0.1:{port}")
        for i, url in enumerate(stack.urls):
            wait_port(int(url.rsplit(":", 1)[1]), 90, stack.processes["web" if i == 0 else f"web{i + 1}"])
        for name in names:
            stack.wait_ready(name)
        yield stack
    finally:
        # Every process group is signalled even when its leader has exited (a worker's children may
        # outlive it), and no timeout stops the cleanup of the rest.
        for name in reversed(list(stack.processes)):
            _signal_group(stack.processes[name], signal.SIGTERM)
        for process in stack.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        for path in stack.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone
