"""Test-wide fixtures: the shipped face photos, one shared model pipeline, isolated media."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
FACES = ROOT / "recognition" / "fixtures" / "faces"
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    try:
        from django.db.backends.signals import connection_created
    except ImportError:  # the edge client's own tests run without Django (Python 3.8, its light requirements)
        return
    connection_created.connect(_shared_cache_reads_take_no_table_locks, weak=False)


def _shared_cache_reads_take_no_table_locks(sender: object, connection: object, **kwargs: object) -> None:
    """The test database is SQLite in memory with a shared cache, where a read holds a table lock
    that makes another thread's write fail at once ("database table is locked": a shared cache
    has no busy wait), unlike the file the embedded default runs on, which waits. Background
    threads (the Firebase mirror, streamed frames) read while a test writes: reads here take no
    table locks, as a file database's readers do not stop its writer for long."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        connection.connection.execute("PRAGMA read_uncommitted = 1")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return FACES


@pytest.fixture(scope="session")
def people(faces_dir: Path) -> dict[str, list[Path]]:
    """person name -> that person's photos (2-3 each, 5 people)."""
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted((faces_dir / "people").iterdir()) if p.is_dir()}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED_DATA}); this test needs the shared evaluation data")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_media(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Django tests write uploads into a temporary MEDIA_ROOT, never into ./var."""
    if "settings" in request.fixturenames or request.node.get_closest_marker("django_db"):
        settings = request.getfixturevalue("settings")
        settings.MEDIA_ROOT = tmp_path / "media"


def video_frames(path: Path, *, rgb: bool = False) -> list:
    """Every frame of a (fixture) video, BGR as OpenCV reads it, or RGB."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            capture.release()
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if rgb else frame)


def earlier_today(delta):
    """``delta`` before now, or half-way back to the site's last midnight when that is nearer:
    an instant that is always earlier on the same local day, whenever the tests run (in UTC, so
    a day with a DST change counts its real hours)."""
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    midnight = timezone.make_aware(dt.datetime.combine(timezone.localdate(now), dt.time.min)).astimezone(dt.UTC)
    return now - min(delta, (now - midnight) / 2)


def browser_login(page, base_url: str, username: str, password: str, next_path: str) -> None:
    """Log a Playwright page in through the portal's login form and wait for ``next_path``."""
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Throttle and lockout counters live in the cache: each test starts with none. (The edge
    client's tests also run without Django, under its own oldest Python.)"""
    try:
        from django.conf import settings
    except ImportError:
        return
    if settings.configured:
        from django.core.cache import cache

        cache.clear()
