"""Django settings for FeedMood, driven entirely by environment variables.

With no environment at all you get the embedded dev mode: DEBUG on, SQLite in
``db.sqlite3`` and Celery tasks executed eagerly in-process.  Production sets
``DEBUG=0``, ``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and
``CELERY_BROKER_URL``/``REDIS_URL``.  Every variable is listed in docs/operations.md.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers as cors_default_headers
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from feedmood.env import env_bool, env_float, env_int, env_list, env_str
from feedmood.observability.logs import logging_config
from feedmood.observability.sentry import init_sentry

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)

_DEV_SECRET_KEY = "django-insecure-feedmood-dev-only-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY") or (_DEV_SECRET_KEY if DEBUG else None)
if SECRET_KEY is None:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "feedmood.apps.FeedmoodConfig",
    "emotion",
    "recommender",
    "dashboard.apps.DashboardConfig",
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

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database ---------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg 3 sends parameters apart from the SQL and prepares statements it sees repeatedly:
    # less quoting work in Python and no re-planning in PostgreSQL on the hot read paths.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env_bool(
        "DATABASE_SERVER_SIDE_BINDING", True
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (throttling state; shared across processes when Redis is set) -----

REDIS_URL = env_str("REDIS_URL")
CACHE_URL = env_str("CACHE_URL", REDIS_URL)
if CACHE_URL and CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "feedmood.cache.FeedMoodRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "feedmood",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- I18n -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media files ----------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Uploaded media is never mapped to a public URL: post images are streamed by
# an authenticated API view and selfies are never served at all.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# In dev, WhiteNoise serves straight from the app directories (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# collectstatic keeps only the hashed (cache-busting) copies that {% static %} links to: a third less on disk.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# --- Security (check --deploy clean with DEBUG=0) -------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)

# --- Django REST framework ----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "feedmood.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": [
        "feedmood.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "feedmood.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_THROTTLE_CLASSES": [
        "feedmood.throttling.UserThrottle",
        "feedmood.throttling.AnonThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("FEEDMOOD_THROTTLE_USER", "1000/min"),
        "anon": env_str("FEEDMOOD_THROTTLE_ANON", "100/min"),
        "uploads": env_str("FEEDMOOD_THROTTLE_UPLOADS", "60/min"),
    },
    "EXCEPTION_HANDLER": "feedmood.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "FeedMood API",
    "DESCRIPTION": "Social feeds that adapt to how people feel.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/",
}

# --- Celery ---------------------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
if CELERY_BROKER_URL:
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
    _default_backend = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None
else:
    # Embedded mode: no broker, tasks run in-process and errors propagate.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    _default_backend = None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_backend)
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 3600)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (Queue("default"), Queue("fer"), Queue("batch"))
# Other apps add their routes here (e.g. "recommender.tasks.rescore_*": batch).
CELERY_TASK_ROUTES = {
    "emotion.tasks.*": {"queue": "fer"},
    # Exact names win over the pattern: batch rescoring and housekeeping never delay interactive analyses.
    "emotion.tasks.rescore_chunk": {"queue": "batch"},
    "emotion.tasks.resume_stalled_rescoring_jobs": {"queue": "batch"},
    "emotion.tasks.prune_expired_selfies": {"queue": "batch"},
    "emotion.housekeeping.requeue_stale_analyses": {"queue": "batch"},
    "feedmood.tasks.sweep_erasures": {"queue": "batch"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90)
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Must exceed the longest task so late-acked messages are not redelivered early.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_IMPORTS = ("emotion.housekeeping",)  # tasks outside tasks.py modules
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Synced into django-celery-beat's PeriodicTask table when `celery -A config beat` starts.
CELERY_BEAT_SCHEDULE = {
    "emotion.resume-stalled-rescoring-jobs": {
        "task": "emotion.tasks.resume_stalled_rescoring_jobs",
        "schedule": float(env_int("FEEDMOOD_RESCORING_RESUME_EVERY_SECONDS", 300)),
    },
    "emotion.requeue-stale-analyses": {
        "task": "emotion.housekeeping.requeue_stale_analyses",
        "schedule": float(env_int("FEEDMOOD_REQUEUE_STALE_EVERY_SECONDS", 300)),
    },
    "emotion.prune-expired-selfies": {
        "task": "emotion.tasks.prune_expired_selfies",
        "schedule": float(env_int("FEEDMOOD_SELFIE_PRUNE_EVERY_SECONDS", 3600)),
    },
    "feedmood.sweep-erasures": {
        "task": "feedmood.tasks.sweep_erasures",
        "schedule": float(env_int("FEEDMOOD_ERASURE_SWEEP_EVERY_SECONDS", 300)),
    },
}

# --- FeedMood ---------------------------------------------------------------------------

FEEDMOOD_RETAIN_SELFIES = env_bool("FEEDMOOD_RETAIN_SELFIES", False)
# Raw selfie files older than this are deleted by the hourly prune task (even when retained).
FEEDMOOD_SELFIE_RETENTION_HOURS = env_int("FEEDMOOD_SELFIE_RETENTION_HOURS", 30 * 24)
# Batch rescoring after a model activation (emotion.rescoring): analyses per chunk task, parallel lanes,
# minutes without progress before beat re-enqueues a job, and the failure share that aborts the switch.
FEEDMOOD_RESCORING_CHUNK_SIZE = env_int("FEEDMOOD_RESCORING_CHUNK_SIZE", 16)
FEEDMOOD_RESCORING_PARALLELISM = env_int("FEEDMOOD_RESCORING_PARALLELISM", 2)
FEEDMOOD_RESCORING_STALL_MINUTES = env_int("FEEDMOOD_RESCORING_STALL_MINUTES", 15)
FEEDMOOD_RESCORING_MAX_FAILED_RATIO = env_float("FEEDMOOD_RESCORING_MAX_FAILED_RATIO", 0.5)
FEEDMOOD_MODEL_DIR = Path(env_str("FEEDMOOD_MODEL_DIR", str(BASE_DIR / "ml" / "artifacts" / "ferplus")))
# Test-time flip of the emotion model: "card" (default) follows each artifact; off halves the work per face
# (a card's other_tta calibration keeps the probabilities calibrated; the model cards give the accuracy cost).
FEEDMOOD_MODEL_TTA = (
    None if env_str("FEEDMOOD_MODEL_TTA", "card").strip().lower() == "card" else env_bool("FEEDMOOD_MODEL_TTA", False)
)
#: One-to-one relations of the user read with the API token (feedmood.authentication): the feed needs both.
FEEDMOOD_AUTH_USER_RELATED = ("profile", "mood_state")
FEEDMOOD_MAX_UPLOAD_BYTES = env_int("FEEDMOOD_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
FEEDMOOD_MAX_IMAGE_PIXELS = env_int("FEEDMOOD_MAX_IMAGE_PIXELS", 40_000_000)
# Errors in on-commit callbacks (signals, enqueueing) are logged, not raised; tests turn this on.
FEEDMOOD_ON_COMMIT_PROPAGATE = env_bool("FEEDMOOD_ON_COMMIT_PROPAGATE", False)
# Admin dashboard: emotion/mood/policy groups with fewer distinct users than this are suppressed.
FEEDMOOD_DASHBOARD_MIN_GROUP = env_int("FEEDMOOD_DASHBOARD_MIN_GROUP", 5)
# ... and its aggregates over many rows are cached this many seconds (0: computed on every view).
FEEDMOOD_DASHBOARD_CACHE_SECONDS = env_int("FEEDMOOD_DASHBOARD_CACHE_SECONDS", 60)
# ... and counts only accounts older than this many days (fresh accounts cannot pad a group up to k).
FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS = env_int("FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS", 7)

# --- Recommender (recommender.conf reads these as conf.get("<NAME>"); docs/recommender.md) ----------------
# Candidates: the newest PER_AUTHOR posts of each followed account (and own posts) within WINDOW_DAYS, at most
# MAX_CANDIDATES of them, newest first.
RECOMMENDER_WINDOW_DAYS = env_int("RECOMMENDER_WINDOW_DAYS", 14)
RECOMMENDER_PER_AUTHOR = env_int("RECOMMENDER_PER_AUTHOR", 6)
RECOMMENDER_MAX_CANDIDATES = env_int("RECOMMENDER_MAX_CANDIDATES", 400)
# The network part of the candidates is cached per user CANDIDATES_TTL seconds and topped up with the posts of
# the last CANDIDATES_TTL + CANDIDATES_AFFECT_LAG seconds on each ranking (recommender.candidates); 0 reads it
# every time.
RECOMMENDER_CANDIDATES_TTL = env_int("RECOMMENDER_CANDIDATES_TTL", 300)
RECOMMENDER_CANDIDATES_AFFECT_LAG = env_int("RECOMMENDER_CANDIDATES_AFFECT_LAG", 120)
# Popular posts from outside the network: top POPULAR_COUNT by likes among the posts of the last
# POPULAR_WINDOW_HOURS, cached POPULAR_CACHE_SECONDS.
RECOMMENDER_POPULAR_COUNT = env_int("RECOMMENDER_POPULAR_COUNT", 30)
RECOMMENDER_POPULAR_WINDOW_HOURS = env_int("RECOMMENDER_POPULAR_WINDOW_HOURS", 48)
RECOMMENDER_POPULAR_CACHE_SECONDS = env_int("RECOMMENDER_POPULAR_CACHE_SECONDS", 60)
# A feed snapshot: at most FEED_MAX_ITEMS ranked posts, kept SNAPSHOT_TTL seconds so later pages keep its order.
RECOMMENDER_FEED_MAX_ITEMS = env_int("RECOMMENDER_FEED_MAX_ITEMS", 400)
RECOMMENDER_SNAPSHOT_TTL = env_int("RECOMMENDER_SNAPSHOT_TTL", 900)
# Page 1 reuses the user's snapshot of the last SNAPSHOT_REUSE_SECONDS unless their network, mood or settings
# changed since (recommender.freshness); 0 ranks every page 1 anew.
RECOMMENDER_SNAPSHOT_REUSE_SECONDS = env_int("RECOMMENDER_SNAPSHOT_REUSE_SECONDS", 60)
# A built page is served again for PAGE_CACHE_SECONDS while nothing in the user's feed changed and they liked or
# unliked nothing since; other people's likes show up to this many seconds late. 0 builds every page.
RECOMMENDER_PAGE_CACHE_SECONDS = env_int("RECOMMENDER_PAGE_CACHE_SECONDS", 15)
# A cursor works for CURSOR_MAX_AGE seconds (its snapshot's parameters are kept as long).
RECOMMENDER_CURSOR_MAX_AGE = env_int("RECOMMENDER_CURSOR_MAX_AGE", 3600)
# Probe resistance: the applied strength is rounded to STRENGTH_STEP and the mood the feed is ranked with to
# MOOD_STEP (valence, arousal, confidence); 0 turns the rounding off.
RECOMMENDER_STRENGTH_STEP = env_float("RECOMMENDER_STRENGTH_STEP", 0.25)
RECOMMENDER_MOOD_STEP = env_float("RECOMMENDER_MOOD_STEP", 0.25)
RECOMMENDER_PAGE_SIZE = env_int("RECOMMENDER_PAGE_SIZE", 20)
RECOMMENDER_MAX_PAGE_SIZE = env_int("RECOMMENDER_MAX_PAGE_SIZE", 50)
# Diversity: at most this many posts of one author in a row, and per page.
RECOMMENDER_MAX_CONSECUTIVE_PER_AUTHOR = env_int("RECOMMENDER_MAX_CONSECUTIVE_PER_AUTHOR", 2)
RECOMMENDER_MAX_PER_AUTHOR_PER_PAGE = env_int("RECOMMENDER_MAX_PER_AUTHOR_PER_PAGE", 3)

# --- Operations: CORS, error reports, metrics, logs, probes (docs/operations.md) ------------

INSTALLED_APPS += ["corsheaders", "django_prometheus", "feedmood.observability.apps.ObservabilityConfig"]
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "feedmood.observability.request_id.RequestIdMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware: preflights get their headers
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Browser clients on other origins: none unless listed (e.g. CORS_ALLOWED_ORIGINS=https://app.example.com).
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
CORS_ALLOW_HEADERS = (*cors_default_headers, "x-request-id")
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^api/health/(live|ready)/?$"]

# A worker serves its metrics on this port (0: none); needs PROMETHEUS_MULTIPROC_DIR (feedmood.observability.worker).
FEEDMOOD_WORKER_METRICS_PORT = env_int("FEEDMOOD_WORKER_METRICS_PORT", 0)
# Seconds each readiness check (broker connect, worker ping) may take before /api/health/ready says 503.
FEEDMOOD_HEALTH_TIMEOUT_SECONDS = env_float("FEEDMOOD_HEALTH_TIMEOUT_SECONDS", 3.0)

# Sentry error reports: only with SENTRY_DSN; events are scrubbed (feedmood.observability.sentry).
SENTRY_ENABLED = init_sentry(
    env_str("SENTRY_DSN"),
    environment=env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production"),
    release=env_str("SENTRY_RELEASE"),
    traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
)

# Logs: one JSON object per line in production, plain lines in development (LOG_FORMAT=json|human).
LOG_FORMAT = (env_str("LOG_FORMAT", "human" if DEBUG else "json") or "").lower()
if LOG_FORMAT not in ("json", "human"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not json or human")
LOGGING = logging_config(log_format=LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING too

# Durable erasure (feedmood.erasure): lock wait before an erasure gives up and is retried, first retry
# delay, age of open requests the sweep takes over, and age before an unreferenced media file is deleted.
FEEDMOOD_ERASURE_LOCK_TIMEOUT_MS = env_int("FEEDMOOD_ERASURE_LOCK_TIMEOUT_MS", 5000)
FEEDMOOD_ERASURE_RETRY_SECONDS = env_int("FEEDMOOD_ERASURE_RETRY_SECONDS", 30)
FEEDMOOD_ERASURE_SWEEP_MIN_AGE_SECONDS = env_int("FEEDMOOD_ERASURE_SWEEP_MIN_AGE_SECONDS", 60)
FEEDMOOD_ORPHAN_FILE_GRACE_SECONDS = env_int("FEEDMOOD_ORPHAN_FILE_GRACE_SECONDS", 3600)

# --- Accounts (feedmood.accounts) --------------------------------------------------------
# API tokens expire this long after sign-in; at most this many live tokens per user (oldest revoked).
FEEDMOOD_TOKEN_TTL_HOURS = env_int("FEEDMOOD_TOKEN_TTL_HOURS", 30 * 24)
FEEDMOOD_TOKENS_PER_USER = env_int("FEEDMOOD_TOKENS_PER_USER", 10)
# Password-reset mail: the console backend prints it (dev); set EMAIL_BACKEND/EMAIL_HOST/... for real mail.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "FeedMood <no-reply@localhost>")
# Lifetime of a password-reset token (Django's default is 3 days).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)

# --- Photo pipeline (docs/photos.md) -------------------------------------------------------
# A name from emotion.pipeline.CONFIGS (e.g. "blazeface-group" for group photos); empty = the model card's.
FEEDMOOD_FER_PIPELINE = env_str("FEEDMOOD_FER_PIPELINE", "").strip() or None
# Post images may show several people: search every face down to 24 px at 640x480 (the verified pyramid of
# `blazeface-group`, about 130 ms per photo in the worker); selfies keep the card's single-face search.
FEEDMOOD_POST_IMAGE_GROUP_SEARCH = env_bool("FEEDMOOD_POST_IMAGE_GROUP_SEARCH", True)

# --- Hardening: clients, limits, lost and poison messages (docs/hardening.md) --------------------

# Reverse proxies in front of the app that append the client to X-Forwarded-For. 0 (default): the
# client is REMOTE_ADDR and a client-sent X-Forwarded-For is ignored by every throttle.
REST_FRAMEWORK["NUM_PROXIES"] = env_int("FEEDMOOD_NUM_PROXIES", 0)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["signup"] = env_str("FEEDMOOD_THROTTLE_SIGNUP", "20/hour")
# Failed logins (API token and admin) per username and per client IP before a lockout of the window.
AUTHENTICATION_BACKENDS = ["feedmood.lockout.LockoutModelBackend"]
FEEDMOOD_LOGIN_MAX_FAILURES = env_int("FEEDMOOD_LOGIN_MAX_FAILURES", 10)
FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP = env_int("FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP", 50)
FEEDMOOD_LOGIN_LOCKOUT_SECONDS = env_int("FEEDMOOD_LOGIN_LOCKOUT_SECONDS", 900)
# Whole request bodies above this are refused from Content-Length before any byte is read (413).
FEEDMOOD_MAX_REQUEST_BYTES = env_int("FEEDMOOD_MAX_REQUEST_BYTES", FEEDMOOD_MAX_UPLOAD_BYTES + 1024 * 1024)
_AFTER_SECURITY = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1  # its headers on 413s too
MIDDLEWARE[_AFTER_SECURITY:_AFTER_SECURITY] = [
    "feedmood.middleware.RequestLimitsMiddleware",
    "feedmood.middleware.RateLimitHeadersMiddleware",
    "feedmood.middleware.ThrottleBoxMiddleware",
]
# Refused clients are answered 429 before authentication until the throttle frees a request; at most
# this many (client, view, method) pairs per server process (0: off). feedmood.throttle_box.
FEEDMOOD_REFUSAL_BOX_SIZE = env_int("FEEDMOOD_REFUSAL_BOX_SIZE", 4096)
# Accepted uploads stay in memory (they are read whole for decoding anyway): no temp file is spooled.
FILE_UPLOAD_MAX_MEMORY_SIZE = FEEDMOOD_MAX_REQUEST_BYTES
FILE_UPLOAD_TEMP_DIR = env_str("FEEDMOOD_UPLOAD_TEMP_DIR") or None
# Files are written whole or not at all (a disk-full write leaves no partial file).
STORAGES["default"]["BACKEND"] = "feedmood.storage.AtomicFileSystemStorage"
# Image pixels a user may have decoded per minute in upload requests (over: 429 before decoding; 0: no budget).
FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE = env_int("FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE", 200_000_000)
# ?wait= on uploads: concurrent waiting requests per process and per user (others answer 202 at once).
FEEDMOOD_WAITERS_PER_PROCESS = env_int("FEEDMOOD_WAITERS_PER_PROCESS", 1)
FEEDMOOD_WAITERS_PER_USER = env_int("FEEDMOOD_WAITERS_PER_USER", 1)
# Lost task messages: analyses pending/processing longer than this are re-enqueued by beat's sweep.
FEEDMOOD_STALE_PENDING_SECONDS = env_int("FEEDMOOD_STALE_PENDING_SECONDS", 600)
FEEDMOOD_STALE_PROCESSING_SECONDS = env_int("FEEDMOOD_STALE_PROCESSING_SECONDS", 2 * CELERY_TASK_TIME_LIMIT + 60)
# Poison messages: an analysis delivered this many times without finishing ends failed (above the
# 5 retries of transient errors, which count as deliveries too).
FEEDMOOD_ANALYSIS_MAX_ATTEMPTS = env_int("FEEDMOOD_ANALYSIS_MAX_ATTEMPTS", 7)
# The worker decodes at most this many pixels (uploads may be larger; their analysis then fails clearly).
FEEDMOOD_WORKER_MAX_IMAGE_PIXELS = env_int("FEEDMOOD_WORKER_MAX_IMAGE_PIXELS", 25_000_000)
# A pool child using more resident memory than this (KiB) is replaced after its current task.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env_int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 600_000)
# Beat re-runs recompute_all while any mood or post affect is on a non-active model version.
CELERY_BEAT_SCHEDULE["recommender.recompute-if-versions-mixed"] = {
    "task": "recommender.tasks.recompute_if_versions_mixed",
    "schedule": float(env_int("FEEDMOOD_VERSION_CHECK_EVERY_SECONDS", 600)),
}
# Beat removes media files that no row references (older than an hour), daily, on the batch queue.
CELERY_TASK_ROUTES["emotion.housekeeping.sweep_orphan_media"] = {"queue": "batch"}
CELERY_BEAT_SCHEDULE["emotion.sweep-orphan-media"] = {
    "task": "emotion.housekeeping.sweep_orphan_media",
    "schedule": float(env_int("FEEDMOOD_ORPHAN_SWEEP_EVERY_SECONDS", 24 * 3600)),
}
