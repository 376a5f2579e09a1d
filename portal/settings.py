"""RollCall settings: one module, two modes.

With no environment variables RollCall runs embedded: SQLite, tasks called in-process,
an in-memory channel layer, media under ./var. Setting DATABASE_URL and REDIS_URL (and friends,
see README "Configuration") switches to PostgreSQL, Redis as Celery broker/result backend and
Redis as the Channels layer. The code paths are the same in both modes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ROLLCALL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    # Embedded mode: a random key kept beside the local database, so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "portal",
    "recognition",
    "attendance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

# --- Database: SQLite embedded, DATABASE_URL (PostgreSQL) in production -----------------------
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'rollcall.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker + results, Channels layer ------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
# Without a broker (the embedded default) tasks run in the calling thread through the dispatch
# seam (recognition/jobs.py), with no process-wide flag; with one they go to the workers.
ROLLCALL_TASKS_IN_PROCESS = env_bool("ROLLCALL_TASKS_IN_PROCESS", not os.environ.get("CELERY_BROKER_URL", REDIS_URL))
# The in-process scheduler runs the nightly job (django-celery-beat's "Close yesterday's
# attendance" schedule) inside the portal server when tasks run in-process: "auto" (under
# daphne/runserver only), "on" or "off". With a broker, celery beat runs it.
ROLLCALL_SCHEDULER = os.environ.get("ROLLCALL_SCHEDULER", "auto")
if ROLLCALL_SCHEDULER not in ("auto", "on", "off"):
    raise ImproperlyConfigured("ROLLCALL_SCHEDULER must be auto, on or off")
# A queued or running long job (re-embedding) with no heartbeat for this long lost its worker.
ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS = int(os.environ.get("ROLLCALL_JOB_HEARTBEAT_TIMEOUT_SECONDS", "600"))
# Staged uploads older than this were left by a crash; the nightly job removes them.
ROLLCALL_STAGING_MAX_AGE_SECONDS = int(os.environ.get("ROLLCALL_STAGING_MAX_AGE_SECONDS", "3600"))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "300"))
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "240"))
CELERY_TASK_ACKS_LATE = True
# A dead broker must fail a request in about a second, not hang it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = os.environ.get("TIME_ZONE", "UTC")

CHANNEL_REDIS_URL = os.environ.get("CHANNEL_REDIS_URL", REDIS_URL)
if CHANNEL_REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [CHANNEL_REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, i18n, static and media ----------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Face images are biometric data: they are served only through permission-checked views,
# never from a public media URL.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media-not-public/"

ROLLCALL_UPLOAD_MAX_BYTES = int(os.environ.get("ROLLCALL_UPLOAD_MAX_BYTES", str(10 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = ROLLCALL_UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = ROLLCALL_UPLOAD_MAX_BYTES + 1024 * 1024

# --- Recognition engine ---------------------------------------------------------------------
ROLLCALL_EMBEDDER = os.environ.get("ROLLCALL_EMBEDDER", "fused")
ROLLCALL_EMBEDDER_OPTIONS: dict[str, object] = {}
if checkpoint := os.environ.get("ROLLCALL_EMBEDDER_CHECKPOINT"):
    ROLLCALL_EMBEDDER_OPTIONS["checkpoint"] = checkpoint
if os.environ.get("ROLLCALL_EMBEDDER_MIRROR"):
    ROLLCALL_EMBEDDER_OPTIONS["mirror"] = env_bool("ROLLCALL_EMBEDDER_MIRROR", False)
# Empty: the embedder's own LFW-calibrated threshold (recognition/pipeline/embedding.py).
ROLLCALL_MATCH_THRESHOLD = float(os.environ["ROLLCALL_MATCH_THRESHOLD"]) if os.environ.get("ROLLCALL_MATCH_THRESHOLD") else None
# Gallery-side normalisation against "hub" faces (recognition/pipeline/matching.py CohortNorm):
# each gallery photo's scores are lowered by WEIGHT x its mean similarity to its NEIGHBOURS most
# similar other people (centred). WEIGHT 0 turns it off; the default threshold assumes it is on.
ROLLCALL_COHORT_NEIGHBOURS = int(os.environ.get("ROLLCALL_COHORT_NEIGHBOURS", "10"))
ROLLCALL_COHORT_WEIGHT = float(os.environ.get("ROLLCALL_COHORT_WEIGHT", "0.5"))
ROLLCALL_DETECTOR_MIN_FACE = int(os.environ.get("ROLLCALL_DETECTOR_MIN_FACE", "40"))
ROLLCALL_DEVICE = os.environ.get("ROLLCALL_DEVICE", "cpu")
ROLLCALL_TORCH_THREADS = int(os.environ.get("ROLLCALL_TORCH_THREADS", "0"))
ROLLCALL_MAX_IMAGE_PIXELS = int(os.environ.get("ROLLCALL_MAX_IMAGE_PIXELS", "50000000"))
# How long a web request waits for a recognition worker before answering 503.
ROLLCALL_TASK_WAIT_SECONDS = float(os.environ.get("ROLLCALL_TASK_WAIT_SECONDS", "60"))
ROLLCALL_ENROL_MIN_FACE = int(os.environ.get("ROLLCALL_ENROL_MIN_FACE", "80"))

# --- Attendance --------------------------------------------------------------------------------
# A recognition this soon after the employee's previous check event is the same visit.
ATTENDANCE_REPEAT_WINDOW_SECONDS = int(os.environ.get("ATTENDANCE_REPEAT_WINDOW_SECONDS", "120"))
# Liveness at the kiosk: "blink" (a blink and facial motion in the burst), "challenge" (screens ask
# for a random head turn, verified from head pose; a check-in without a challenge, e.g. from a
# door unit with no screen, must pass the blink test) or "off".
ROLLCALL_LIVENESS = os.environ.get("ROLLCALL_LIVENESS", "blink")
if ROLLCALL_LIVENESS not in ("blink", "challenge", "off"):
    raise ImproperlyConfigured("ROLLCALL_LIVENESS must be blink, challenge or off")
ROLLCALL_CHALLENGE_SECONDS = int(os.environ.get("ROLLCALL_CHALLENGE_SECONDS", "60"))

# A device is shown offline when it has not been heard from (heartbeat, websocket, check-in) for this long.
ROLLCALL_DEVICE_OFFLINE_SECONDS = int(os.environ.get("ROLLCALL_DEVICE_OFFLINE_SECONDS", "90"))
# A device may deliver check-ins it queued while the portal was unreachable, up to this old.
ROLLCALL_DEVICE_MAX_DELAY_SECONDS = int(os.environ.get("ROLLCALL_DEVICE_MAX_DELAY_SECONDS", str(7 * 24 * 3600)))
# Monitor history (with face thumbnails) older than this is deleted by the nightly job.
ROLLCALL_MONITOR_KEEP_DAYS = int(os.environ.get("ROLLCALL_MONITOR_KEEP_DAYS", "30"))
# Optional Firestore mirror of recognition events (a service-account JSON file).
ROLLCALL_FIREBASE_CREDENTIALS = os.environ.get("ROLLCALL_FIREBASE_CREDENTIALS", "")
ROLLCALL_FIREBASE_COLLECTION = os.environ.get("ROLLCALL_FIREBASE_COLLECTION", "rollcall_events")

FACE_LOGIN_MAX_FAILURES = int(os.environ.get("FACE_LOGIN_MAX_FAILURES", "5"))
FACE_LOGIN_WINDOW_SECONDS = int(os.environ.get("FACE_LOGIN_WINDOW_SECONDS", "900"))

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "portal.authentication.DeviceTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RollCall API",
    "DESCRIPTION": "Face-recognition attendance: people, face gallery, recognition.",
    "VERSION": "1.0.0",
    # The schema and its Swagger page are public documentation; every endpoint still checks auth.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}},
}

if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
