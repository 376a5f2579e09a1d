"""The production checklist: `manage.py check --deploy` with the README's production environment is
clean, and a weak SECRET_KEY is refused outside DEBUG. Each case runs in a fresh interpreter, since
settings are read from the environment once."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CHANNEL_REDIS_URL",
                  "MEDIA_ROOT", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "ROLLCALL_HTTPS", "SECURE_HSTS_SECONDS",
                  "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER")


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in MODE_VARIABLES}
    clean.update(env, DJANGO_SETTINGS_MODULE="portal.settings", ROLLCALL_VAR_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True)


def _production(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The README's production environment (no server needs to answer for `check`)."""
    env = {
        "DATABASE_URL": "postgres://rollcall:secret@db.internal/rollcall",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "rollcall.example.com",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    env.update(overrides)
    return env


def test_check_deploy_is_clean_in_production(tmp_path: Path) -> None:
    out = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **_production(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout, out.stdout + out.stderr


def test_check_deploy_flags_plain_http_when_https_is_turned_off(tmp_path: Path) -> None:
    """The check itself is live: turning HTTPS off in production brings its warnings back."""
    out = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **_production(tmp_path, ROLLCALL_HTTPS="0"))
    assert out.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in out.stderr + out.stdout


@pytest.mark.parametrize("key", [
    "changeme", "django-insecure-" + "x" * 60, "a" * 80, secrets.token_urlsafe(20),
    "secret" * 9,  # 54 characters, 5 distinct
    "1234567890" * 5,  # 10 distinct, but a repetition
    "your-secret-key" * 4,  # a placeholder repeated
    "<put a long random secret key here, at least fifty chars>",  # whitespace and angle brackets
    secrets.token_urlsafe(50)[:40] + " " + secrets.token_urlsafe(20),
], ids=["changeme", "insecure", "one-char", "short", "secret*9", "digits*5", "placeholder*4",
        "template", "space"])
def test_weak_secret_key_is_refused_when_debug_is_off(tmp_path: Path, key: str) -> None:
    out = _manage(tmp_path, "check", **_production(tmp_path, SECRET_KEY=key))
    assert out.returncode != 0
    assert "SECRET_KEY is too weak" in out.stderr


@pytest.mark.parametrize("key", [secrets.token_urlsafe(50) for _ in range(3)])
def test_generated_secret_key_is_accepted(tmp_path: Path, key: str) -> None:
    """The key the README suggests (and the embedded default generates) passes the stricter bar."""
    out = _manage(tmp_path, "check", **_production(tmp_path, SECRET_KEY=key))
    assert out.returncode == 0, out.stderr


def test_integer_setting_that_is_not_a_number_names_the_setting(tmp_path: Path) -> None:
    out = _manage(tmp_path, "check", **_production(tmp_path, SECURE_HSTS_SECONDS="abc"))
    assert out.returncode != 0
    assert "ImproperlyConfigured: SECURE_HSTS_SECONDS must be a whole number (got 'abc')" in out.stderr


def test_weak_secret_key_is_allowed_for_local_debugging(tmp_path: Path) -> None:
    out = _manage(tmp_path, "check", SECRET_KEY="dev", DEBUG="1")
    assert out.returncode == 0, out.stderr


def test_embedded_default_serves_plain_http_with_a_generated_key(tmp_path: Path) -> None:
    out = _manage(tmp_path, "shell", "-c",
                  "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
                  "s.SECURE_HSTS_SECONDS, len(s.SECRET_KEY) >= 50)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].split() == ["False", "False", "0", "True"]
