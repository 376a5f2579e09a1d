"""One settings module, two modes: what the environment selects, read in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']),"
    " 'broker': s.CELERY_BROKER_URL, 'in_process': s.ROLLCALL_TASKS_IN_PROCESS, 'eager': getattr(s, 'CELERY_TASK_ALWAYS_EAGER', None), 'results': s.CELERY_RESULT_BACKEND,"
    " 'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'media': str(s.MEDIA_ROOT)}))"
)
MODE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CHANNEL_REDIS_URL",
                  "CELERY_TASK_ALWAYS_EAGER", "ROLLCALL_TASKS_IN_PROCESS", "MEDIA_ROOT")


def _settings(tmp_path: Path, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
    clean.update(env, DJANGO_SETTINGS_MODULE="portal.settings", ROLLCALL_VAR_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_configuration(tmp_path: Path) -> None:
    conf = _settings(tmp_path)
    assert conf["db"] == "django.db.backends.sqlite3" and conf["name"].startswith(str(tmp_path))
    # Tasks run in the calling thread through the dispatch seam, never through Celery's eager flag.
    assert conf["in_process"] is True and conf["eager"] is None and conf["broker"] == "memory://"
    assert conf["layer"] == "channels.layers.InMemoryChannelLayer"
    assert conf["media"] == str(tmp_path / "media")
    assert (tmp_path / "secret_key").is_file()


def test_production_mode_from_environment(tmp_path: Path) -> None:
    conf = _settings(
        tmp_path, DATABASE_URL="postgres://rc:pw@db.internal:5432/rollcall", REDIS_URL="redis://cache.internal:6379/0"
    )
    assert conf["db"] == "django.db.backends.postgresql" and conf["name"] == "rollcall"
    assert conf["in_process"] is False and conf["eager"] is None
    assert conf["broker"] == conf["results"] == "redis://cache.internal:6379/0"
    assert conf["layer"] == "channels_redis.core.RedisChannelLayer"
