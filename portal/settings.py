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


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; a value that is not a whole number stops start-up
    with the setting's name instead of a bare ValueError."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number (got {value!r}).") from None


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


def _refuse_weak_secret_key(key: str) -> None:
    """Outside DEBUG a guessable key signs sessions, password resets and liveness tokens: refuse it.
    Stricter than Django's `check --deploy` bar: 50+ characters, 10+ distinct, not a repetition of
    a shorter string ("secret" * 9), no whitespace or angle brackets (a pasted "<your key here>"),
    not a generated 'django-insecure-' placeholder, and none of the usual stand-ins."""
    placeholders = {"changeme", "change-me", "secret", "secret-key", "your-secret-key", "...", "dev", "test"}
    weak = (
        len(key) < 50
        or len(set(key)) < 10
        or key in (key + key)[1:-1]  # a shorter string repeated
        or any(char.isspace() or char in "<>" for char in key)
        or key.startswith("django-insecure-")
        or key.strip().lower() in placeholders
    )
    if weak:
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak: use 50 or more random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))' (or unset it in the embedded "
            "default, which keeps a random key in var/secret_key)."
        )


if not DEBUG:
    _refuse_weak_secret_key(SECRET_KEY)
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
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "portal",
    "recognition",
    "attendance",
]

# Flash messages live in the session, not in a cookie: a device token or an enrolment code shown
# once must not travel (signed but readable) in Set-Cookie and the next request's Cookie header.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "portal.middleware.PrivateResponsesMiddleware",
]

# Content-Security-Policy of every response (portal/middleware.py): scripts and styles only from
# RollCall's own static files, no inline script or style, no eval; images also from data:/blob:
# (camera previews). Set ROLLCALL_CSP to replace it; an empty value sends none.
ROLLCALL_CSP = os.environ.get(
    "ROLLCALL_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
# Browsers take a response's declared type, never a guess from its bytes.
SECURE_CONTENT_TYPE_NOSNIFF = True

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
                "portal.context_processors.navigation",
                "portal.context_processors.site_time",
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
# Long jobs an admin starts from a page ("Run now" of the nightly learning) run on a thread of
# their own in the embedded default, so the request returns at once and the page shows progress.
ROLLCALL_DETACHED_JOBS = env_bool("ROLLCALL_DETACHED_JOBS", True)
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
        # Each idle websocket waits in a 5 s blocking pop (channels_redis); redis-py's default read
        # timeout is also 5 s (redis 6+), so a slightly late answer on a busy host raised
        # TimeoutError and closed the socket. Reads wait longer than the pop; connects stay short.
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [
            {"address": CHANNEL_REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}]}}
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
# The site's one time zone (an IANA name such as "Europe/Berlin"): every page, kiosk message, export,
# live monitor row and the kiosk clock show times in it. Each page says which zone it is.
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# One date and one time format on every page ("1 Dec 2026", 24 h "14:05"): portal/formats/en/formats.py
# (a format module, because with localisation on Django prefers the locale's formats to DATE_FORMAT).
FORMAT_MODULE_PATH = ["portal.formats"]

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
# The cohort is the whole gallery up to COHORT_SAMPLE photos, then a seeded sample of that many;
# beyond COHORT_MAX_ROWS photos the sample shrinks so that fitting costs what that many rows did.
ROLLCALL_COHORT_SAMPLE = env_int("ROLLCALL_COHORT_SAMPLE", 5000)
ROLLCALL_COHORT_MAX_ROWS = env_int("ROLLCALL_COHORT_MAX_ROWS", 20_000)
# Gallery change journal (recognition.models.GalleryChange): versions kept; a process further behind,
# or one facing more changed employees than INCREMENTAL_MAX at once, rebuilds its index from the database.
ROLLCALL_GALLERY_JOURNAL_KEEP = env_int("ROLLCALL_GALLERY_JOURNAL_KEEP", 10_000)
ROLLCALL_GALLERY_INCREMENTAL_MAX = env_int("ROLLCALL_GALLERY_INCREMENTAL_MAX", 2000)
ROLLCALL_DETECTOR_MIN_FACE = int(os.environ.get("ROLLCALL_DETECTOR_MIN_FACE", "40"))
ROLLCALL_DEVICE = os.environ.get("ROLLCALL_DEVICE", "cpu")
ROLLCALL_TORCH_THREADS = int(os.environ.get("ROLLCALL_TORCH_THREADS", "0"))  # 0: one per core
ROLLCALL_ONNX_THREADS = int(os.environ.get("ROLLCALL_ONNX_THREADS", "0"))  # 0: as ROLLCALL_TORCH_THREADS
ROLLCALL_MAX_IMAGE_PIXELS = int(os.environ.get("ROLLCALL_MAX_IMAGE_PIXELS", "50000000"))
# A burst's camera frames (kiosk, device, face login): each at most a 4K frame, all together at
# most 64 megapixels (24 frames of 1080p, 48 of 720p), checked from the headers before decoding.
ROLLCALL_FRAME_MAX_PIXELS = env_int("ROLLCALL_FRAME_MAX_PIXELS", 3840 * 2160)
ROLLCALL_BURST_MAX_PIXELS = env_int("ROLLCALL_BURST_MAX_PIXELS", 64_000_000)
# A burst request's body (all its frames), refused before it is read.
ROLLCALL_BURST_MAX_BYTES = env_int("ROLLCALL_BURST_MAX_BYTES", 24 * 1024 * 1024)
# How long a web request waits for a recognition worker before answering 503.
ROLLCALL_TASK_WAIT_SECONDS = float(os.environ.get("ROLLCALL_TASK_WAIT_SECONDS", "60"))
ROLLCALL_ENROL_MIN_FACE = int(os.environ.get("ROLLCALL_ENROL_MIN_FACE", "80"))
# Streamed check-ins (attendance.burst): an open stream that receives no frame for this long is
# dropped; how many of a stream's frames are analysed at once (1 keeps every frame tracked from
# the one before it; on Celery workers a few pipeline a stream across them).
ROLLCALL_BURST_IDLE_SECONDS = float(os.environ.get("ROLLCALL_BURST_IDLE_SECONDS", "10"))
ROLLCALL_BURST_PIPELINE = int(os.environ.get("ROLLCALL_BURST_PIPELINE", "1" if ROLLCALL_TASKS_IN_PROCESS else "3"))
# A live-monitor socket reads its viewer's rights again before sending, at most this often.
ROLLCALL_MONITOR_RECHECK_SECONDS = float(os.environ.get("ROLLCALL_MONITOR_RECHECK_SECONDS", "2"))

# --- Attendance --------------------------------------------------------------------------------
# A recognition this soon after the employee's previous check event is the same visit.
ATTENDANCE_REPEAT_WINDOW_SECONDS = int(os.environ.get("ATTENDANCE_REPEAT_WINDOW_SECONDS", "120"))
# Liveness at the kiosk: "blink" (a blink and facial motion in the burst), "challenge" (screens ask
# for a random head turn, verified from head pose; a check-in without a challenge, e.g. from a
# door unit with no screen, must pass the blink test) or "off".
ROLLCALL_LIVENESS = os.environ.get("ROLLCALL_LIVENESS", "blink")
if ROLLCALL_LIVENESS not in ("blink", "challenge", "off"):
    raise ImproperlyConfigured("ROLLCALL_LIVENESS must be blink, challenge or off")
# The live monitor's camera view (a door's frames, every face in them): "admins" (default) or
# "managers" (every manager, whatever their department).
ROLLCALL_CAMERA_VIEW = os.environ.get("ROLLCALL_CAMERA_VIEW", "admins")
if ROLLCALL_CAMERA_VIEW not in ("admins", "managers"):
    raise ImproperlyConfigured("ROLLCALL_CAMERA_VIEW must be admins or managers")
ROLLCALL_CHALLENGE_SECONDS = int(os.environ.get("ROLLCALL_CHALLENGE_SECONDS", "60"))

# A device is shown offline when it has not been heard from (heartbeat, websocket, check-in) for this long.
ROLLCALL_DEVICE_OFFLINE_SECONDS = int(os.environ.get("ROLLCALL_DEVICE_OFFLINE_SECONDS", "90"))
# A device may deliver check-ins it queued while the portal was unreachable, up to this old.
ROLLCALL_DEVICE_MAX_DELAY_SECONDS = int(os.environ.get("ROLLCALL_DEVICE_MAX_DELAY_SECONDS", str(7 * 24 * 3600)))
# Monitor history (with face thumbnails) older than this is deleted by the nightly job.
ROLLCALL_MONITOR_KEEP_DAYS = int(os.environ.get("ROLLCALL_MONITOR_KEEP_DAYS", "30"))
# Nightly learning (recognition/learning.py): what a check-in must show to be learned from, how
# many learned photos a person keeps, and the strangers' acceptance rate the gate holds.
ROLLCALL_LEARN = env_bool("ROLLCALL_LEARN", True)
# Learning needs a live check-in; with ROLLCALL_LIVENESS=off nothing is learned unless this says so
# (benchmarks and tests of still photos, or a site that knowingly runs without liveness).
ROLLCALL_LEARN_WITHOUT_LIVENESS = env_bool("ROLLCALL_LEARN_WITHOUT_LIVENESS", False)
ROLLCALL_LEARN_MARGIN = float(os.environ.get("ROLLCALL_LEARN_MARGIN", "0.01"))
ROLLCALL_LEARN_GAP = float(os.environ.get("ROLLCALL_LEARN_GAP", "0.02"))
ROLLCALL_LEARN_KEEP_DAYS = int(os.environ.get("ROLLCALL_LEARN_KEEP_DAYS", "30"))
# How many rollbacks learned photos are kept for (each night that switches is one version).
ROLLCALL_LEARN_ROLLBACK_DEPTH = int(os.environ.get("ROLLCALL_LEARN_ROLLBACK_DEPTH", "7"))
ROLLCALL_LEARN_MAX_TEMPLATES = int(os.environ.get("ROLLCALL_LEARN_MAX_TEMPLATES", "3"))
ROLLCALL_LEARN_STRANGER_RATE = float(os.environ.get("ROLLCALL_LEARN_STRANGER_RATE", "0.01"))
ROLLCALL_LEARN_STRANGERS_KEPT = int(os.environ.get("ROLLCALL_LEARN_STRANGERS_KEPT", "2000"))
# An unknown check-in is kept as a stranger only this far below the threshold (a near miss is mostly
# an employee who was not recognised; recognition.learning_harvest.clear_stranger).
ROLLCALL_LEARN_STRANGER_GAP = float(os.environ.get("ROLLCALL_LEARN_STRANGER_GAP", "0.03"))
ROLLCALL_LEARN_FINETUNE = env_bool("ROLLCALL_LEARN_FINETUNE", True)
ROLLCALL_LEARN_MAX_MINUTES = float(os.environ.get("ROLLCALL_LEARN_MAX_MINUTES", "30"))
# How far the gate lets the held-out captures' margins above a candidate's threshold shrink
# (median and 10th percentile) versus the active model's.
ROLLCALL_LEARN_MARGIN_TOLERANCE = float(os.environ.get("ROLLCALL_LEARN_MARGIN_TOLERANCE", "0.01"))
# Optional Firebase mirror of recognition events (attendance.firebase), off the check-in's path:
# Cloud Firestore ("firestore", a service-account JSON file) or the Realtime Database ("rtdb", its
# URL; no credentials needed against an emulator: FIREBASE_DATABASE_EMULATOR_HOST).
ROLLCALL_FIREBASE_BACKEND = os.environ.get("ROLLCALL_FIREBASE_BACKEND", "firestore")
if ROLLCALL_FIREBASE_BACKEND not in ("firestore", "rtdb"):
    raise ImproperlyConfigured("ROLLCALL_FIREBASE_BACKEND must be firestore or rtdb")
ROLLCALL_FIREBASE_CREDENTIALS = os.environ.get("ROLLCALL_FIREBASE_CREDENTIALS", "")
ROLLCALL_FIREBASE_COLLECTION = os.environ.get("ROLLCALL_FIREBASE_COLLECTION", "rollcall_events")
ROLLCALL_FIREBASE_DATABASE_URL = os.environ.get("ROLLCALL_FIREBASE_DATABASE_URL", "")
ROLLCALL_FIREBASE_PATH = os.environ.get("ROLLCALL_FIREBASE_PATH", "rollcall_events")
# Each Firebase request's timeout; a failed mirror write is retried this many times with backoff.
ROLLCALL_FIREBASE_TIMEOUT_SECONDS = float(os.environ.get("ROLLCALL_FIREBASE_TIMEOUT_SECONDS", "10"))
ROLLCALL_FIREBASE_RETRIES = int(os.environ.get("ROLLCALL_FIREBASE_RETRIES", "5"))
ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS = float(os.environ.get("ROLLCALL_FIREBASE_RETRY_BACKOFF_SECONDS", "1"))
# With workers: a Celery queue of its own for the mirror task (run a worker with -Q <queue>), so a
# slow Firebase never holds a slot that a check-in's recognition needs. Empty: the default queue.
ROLLCALL_FIREBASE_QUEUE = os.environ.get("ROLLCALL_FIREBASE_QUEUE", "")
if ROLLCALL_FIREBASE_QUEUE:
    CELERY_TASK_ROUTES = {"attendance.firebase_mirror": {"queue": ROLLCALL_FIREBASE_QUEUE}}

FACE_LOGIN_MAX_FAILURES = env_int("FACE_LOGIN_MAX_FAILURES", 5)
FACE_LOGIN_WINDOW_SECONDS = env_int("FACE_LOGIN_WINDOW_SECONDS", 900)

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token schemes first: DRF answers an unauthenticated call with the first class's
    # WWW-Authenticate, so a missing or bad token is a 401 (SessionAuthentication has no header
    # and would make it a 403). The pages' JS still authenticates with the session cookie.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "portal.authentication.DeviceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["portal.api.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RollCall API",
    "DESCRIPTION": "Face-recognition attendance: people, face gallery, recognition.",
    "VERSION": "1.0.0",
    # The schema and its Swagger page are public documentation; every endpoint still checks auth.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Swagger UI's files come from drf-spectacular-sidecar (served by RollCall, no CDN), so /api/docs/
    # works offline and under the Content-Security-Policy.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Ids in paths (portal/api.py IdConverter) are 64-bit keys.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}},
    # Every operation documents its error answers (the Error component): portal/api.py.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}},
}

# --- HTTPS and browser security (production checklist: `manage.py check --deploy` is clean) ------
# Production (DATABASE_URL or REDIS_URL set) is served over HTTPS unless ROLLCALL_HTTPS=0: plain
# HTTP is redirected, session and CSRF cookies are Secure, and HSTS is sent. The embedded default
# serves plain HTTP on this machine, so none of that applies there unless ROLLCALL_HTTPS=1.
ROLLCALL_HTTPS = env_bool("ROLLCALL_HTTPS", bool(os.environ.get("DATABASE_URL") or REDIS_URL))
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", ROLLCALL_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # load balancers probe over plain HTTP
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ROLLCALL_HTTPS or bool(os.environ.get("SECURE_PROXY_SSL_HEADER"))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
# HSTS: a year by default over HTTPS (SECURE_HSTS_SECONDS=0 turns it off, e.g. while trying HTTPS out).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if ROLLCALL_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Throttling, login lockout and trusted proxies (issue 11, point 7) --------------------------
# The client address is REMOTE_ADDR unless the peer is one of these proxies (addresses or networks,
# e.g. "127.0.0.1,10.0.0.0/8"); then X-Forwarded-For is read from the right past the trusted hops.
# Empty (the default): X-Forwarded-For is ignored. One helper, portal.throttling.client_ip, serves
# the API throttles, the password-login lockout and face login.
ROLLCALL_TRUSTED_PROXIES = env_list("ROLLCALL_TRUSTED_PROXIES", "")


def _rate(name: str, default: str) -> str | None:
    value = os.environ.get(name, default).strip()
    return None if value.lower() in ("", "off", "none") else value


# DRF throttles ("N/second|minute|hour|day"; "off" for none). anon: per address; user: per account;
# device: per device token; recognition: /recognize, /verify, /detect per caller; bad_credentials:
# wrong API or device tokens per address (then 429 instead of 401).
ROLLCALL_THROTTLE_RATES: dict[str, str | None] = {
    "anon": _rate("ROLLCALL_THROTTLE_ANON", "120/minute"),
    "user": _rate("ROLLCALL_THROTTLE_USER", "1200/minute"),
    "device": _rate("ROLLCALL_THROTTLE_DEVICE", "600/minute"),
    "recognition": _rate("ROLLCALL_THROTTLE_RECOGNITION", "120/minute"),
    "bad_credentials": _rate("ROLLCALL_THROTTLE_BAD_CREDENTIALS", "30/minute"),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = [
    "portal.throttling.AnonThrottle",
    "portal.throttling.UserThrottle",
    "portal.throttling.DeviceThrottle",
    "portal.throttling.RecognitionThrottle",
]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = ROLLCALL_THROTTLE_RATES
REST_FRAMEWORK["NUM_PROXIES"] = 0  # DRF's own guess is never used: our throttles ask client_ip
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "portal.authentication.TokenAuthentication" if name == "rest_framework.authentication.TokenAuthentication" else name
    for name in REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
]

# Password login (login page, Django admin): django-axes locks out after AXES_FAILURE_LIMIT
# failures for AXES_COOLOFF_SECONDS. ROLLCALL_LOGIN_LOCKOUT: "username,ip_address" locks an
# account and an address separately; "username+ip_address" locks only that pair.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    "portal.authentication.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "portal.backends.RollCallAdminBackend",  # RollCall admins hold every model permission (Django admin)
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = int(os.environ.get("AXES_COOLOFF_SECONDS", "900")) / 3600  # hours, as axes reads a float
AXES_LOCKOUT_PARAMETERS = [
    names[0] if len(names) == 1 else names
    for names in ([n.strip() for n in item.split("+") if n.strip()]
                  for item in env_list("ROLLCALL_LOGIN_LOCKOUT", "username,ip_address"))
    if names
]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "portal.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "portal.throttling.login_lockout_response"
AXES_HANDLER = os.environ.get("AXES_HANDLER", "axes.handlers.database.AxesDatabaseHandler")

# Face login: failures count against the claimed account (FACE_LOGIN_MAX_FAILURES) and, with a
# higher limit, the client address (FACE_LOGIN_MAX_FAILURES_PER_ADDRESS), within
# FACE_LOGIN_WINDOW_SECONDS: one person failing locks only their account, not a shared kiosk.
FACE_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("FACE_LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)  # lockouts are still logged; every login is not
