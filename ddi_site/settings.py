"""The one settings module. Every knob is an environment variable with a working default.

With nothing set, the app runs embedded on one machine: a SQLite file under var/, a Celery
broker on the local filesystem (no server), and the bundled all-MiniLM-L6-v2 backbone.
`DATABASE_URL=postgres://...` and `CELERY_BROKER_URL=redis://...` switch to PostgreSQL and
Redis with no code change. `DDI_ENV=production` turns on the hardened settings and refuses to
start without `SECRET_KEY` and `ALLOWED_HOSTS`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from ddi_site.private_files import development_secret_key, private_dir, private_file

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; silently absent

DDI_ENV = env.str("DDI_ENV", default="development")
if DDI_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"DDI_ENV must be 'development' or 'production', not {DDI_ENV!r}")
IS_PRODUCTION = DDI_ENV == "production"

VAR_DIR = Path(env.str("DDI_VAR_DIR", default=str(BASE_DIR / "var")))


private_dir(VAR_DIR)


if IS_PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("DDI_ENV=production needs SECRET_KEY (50+ random characters).")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DDI_ENV=production needs ALLOWED_HOSTS (comma-separated).")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="") or development_secret_key(VAR_DIR)
    ALLOWED_HOSTS = env.list(
        "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
    )

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # hashed, expiring API tokens (annotations/tokens.py)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "csp",  # Content Security Policy (see the block below)
    "axes",  # login throttling by username and by client address (see the block below)
    "annotations",
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
    "csp.middleware.CSPMiddleware",  # Content Security Policy (see the block below)
    "django_htmx.middleware.HtmxMiddleware",
    "annotations.views.throttling.WebThrottleMiddleware",  # the HTML views' rate limit
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into a 429 page
]

ROOT_URLCONF = "ddi_site.urls"
WSGI_APPLICATION = "ddi_site.wsgi.application"
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

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ddi.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3" and _db["NAME"] not in ("", ":memory:"):
    # SQLite gives its -wal/-shm files the database file's mode: 0600 covers all three.
    if Path(_db["NAME"]).parent == VAR_DIR or VAR_DIR in Path(_db["NAME"]).parents:
        private_dir(Path(_db["NAME"]).parent)
    if Path(_db["NAME"]).parent.is_dir():
        private_file(Path(_db["NAME"]))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the web process and the worker share the file without
    # "database is locked" errors on the first write of a transaction.
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # application_name lets operators (and the chaos tests) find each process's connections.
    _db.setdefault("OPTIONS", {})["application_name"] = env.str(
        "DB_APPLICATION_NAME", default="ddi-curate"
    )
    _db["CONN_HEALTH_CHECKS"] = True
_db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Request limits (a size cap, not just a memory threshold) ---------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000)
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=10)
DDI_MAX_UPLOAD_BYTES = env.int("DDI_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
# Uploads above FILE_UPLOAD_MAX_MEMORY_SIZE spool to this folder (not the system /tmp), so there
# is one place to watch; tests/reliability/test_request_limits.py checks nothing is left in it.
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default=str(VAR_DIR / "uploads"))
private_dir(Path(FILE_UPLOAD_TEMP_DIR))

# --- Security -----------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Content Security Policy (django-csp 4.x) ------------------------------------------------
# Rule 9 of RELIABILITY.md: stored text is hostile. Even if an escaping bug let markup through,
# the browser runs no inline script, inline handler (hx-on included) or eval, and loads nothing
# from another origin: every script and stylesheet is a vendored static file. htmx is told not
# to inject its indicator <style> (meta htmx-config in base.html). No 'unsafe-inline' or
# 'unsafe-eval' anywhere; tests/reliability/test_xss_and_headers.py holds that line.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# --- Login throttling (django-axes) --------------------------------------------------------
# Every login path (/accounts/login/, /admin/login/, /api/auth/token/) goes through
# authenticate(), which axes guards: after LOGIN_FAILURE_LIMIT failures for one username, or
# from one client address, further attempts answer 429 for LOGIN_COOLOFF_MINUTES (a correct
# password included). The address is REMOTE_ADDR unless NUM_PROXIES reverse proxies are
# declared; X-Forwarded-For is never trusted beyond them (ddi_site/client_ip.py).
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # each counted on its own
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "ddi_site.client_ip.client_ip"
AXES_IPWARE_PROXY_COUNT = None
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
AXES_DISABLE_ACCESS_LOG = True  # no row per successful login; failures are still counted
# API tokens expire this many hours after login (and rotate at each login, and are revoked on
# logout and on a password change: annotations/tokens.py).
DDI_API_TOKEN_TTL_HOURS = env.int("API_TOKEN_TTL_HOURS", default=24)
# django-rest-knox stores only a SHA-512 digest of each token (and its first 15 characters, to
# find the row); the key itself is shown once, at login.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=DDI_API_TOKEN_TTL_HOURS),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",  # clients keep sending "Authorization: Token <key>"
}

# Web pages (and their htmx fragments) per signed-in user, like the API's "user" throttle: a
# reviewer labels a few items a minute; a script walking item pages gets 429 past this.
DDI_WEB_THROTTLE_RATE = env.str("THROTTLE_WEB", default="300/min")

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotations.tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Throttles key on REMOTE_ADDR unless proxies are declared (DRF's None trusts any header).
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/min"),
        "user": env.str("THROTTLE_USER", default="6000/min"),
        "login": env.str("THROTTLE_LOGIN", default="10/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ddi-curate API",
    "DESCRIPTION": "Drug-drug interaction curation: interactions, labels, predictions, runs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Run.Kind and Rule.Kind share the field name "kind": name their enums explicitly.
    "ENUM_NAME_OVERRIDES": {
        "RunKindEnum": "annotations.models.Run.Kind",
        "RuleKindEnum": "annotations.models.Rule.Kind",
    },
}

# --- Cache (Redis when configured; local memory otherwise) -------------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Celery ------------------------------------------------------------------------------------
# Default broker: kombu's filesystem transport, so `make run` needs no server. The worker and
# the web process share var/broker/. Redis (or RabbitMQ) by CELERY_BROKER_URL.
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    private_dir(_BROKER_DIR)
    for sub in ("queue", "processed", "control"):
        private_dir(_BROKER_DIR / sub)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Without this, kombu puts its broadcast folder in the current directory.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Rule 3 of RELIABILITY.md: every message's lifetime stays far below the visibility timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        # kombu 5.7 sweeps unacked messages back into the queue on a timer, but scans Redis only
        # on every unacked_restore_throttle-th tick (defaults 10 s x 10: a dead worker's message
        # returns up to ~100 s after the timeout). Scan on every tick; the tick is settable.
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=30),
        "unacked_restore_throttle": 1,
        # A frozen broker (SIGSTOP, network partition) must not hang a web request forever in
        # publish: without a socket timeout redis-py waits for the reply indefinitely. The
        # enqueue then fails, is logged, and the watchdog re-sends the queued run.
        "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
        "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that refuses a command (Redis past maxmemory answers OOM to the late ack) restarts the
# consumer instead of killing the worker ("Unrecoverable error"); the unacknowledged message is
# redelivered and the chunk leases make the second delivery a no-op.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# The UI reads Run rows, never the result backend; results are not stored.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# Off only in the chaos tests' control run (proves the watchdog covers an acked, lost message).
CELERY_TASK_REJECT_ON_WORKER_LOST = env.bool("CELERY_TASK_REJECT_ON_WORKER_LOST", default=True)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On a broker connection loss, cancel the running tasks (their messages are redelivered and the
# chunk leases make that safe) instead of keeping work that can no longer be acknowledged.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "annotations.train_model": {"queue": "training"},
    "annotations.retrain": {"queue": "training"},
    "annotations.pseudolabel_*": {"queue": "inference"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- ddi-curate ----------------------------------------------------------------------------------
DDI_ARTIFACTS_DIR = Path(env.str("DDI_ARTIFACTS_DIR", default=str(VAR_DIR / "models")))
DDI_BACKBONE = env.str("DDI_BACKBONE", default="all-minilm-l6-v2")
# The backbones a run may name in its params (DDI_BACKBONE is always allowed): names or local
# folders the deployment chose; anything else is refused as "unknown backbone".
# Curator rules and review leases (issue 18): at most DDI_MAX_RULES_PER_PROJECT rules; a rule
# costing more than DDI_RULE_MAX_MS_PER_ROW a row on average (after DDI_RULE_COST_GRACE_S of
# matching) is cut off for that request or export; a reviewer holds at most
# DDI_MAX_CLAIMS_PER_USER queue leases at once.
DDI_MAX_RULES_PER_PROJECT = env.int("DDI_MAX_RULES_PER_PROJECT", default=50)
DDI_RULE_MAX_MS_PER_ROW = env.float("DDI_RULE_MAX_MS_PER_ROW", default=0.5)
DDI_RULE_COST_GRACE_S = env.float("DDI_RULE_COST_GRACE_S", default=0.25)
DDI_MAX_CLAIMS_PER_USER = env.int("DDI_MAX_CLAIMS_PER_USER", default=3)
DDI_BACKBONES = env.list("DDI_BACKBONES", default=["all-minilm-l6-v2", "tiny-random-bert"])
# Torch device of training and inference: auto (a CUDA GPU when present), cpu, cuda, cuda:N, mps.
DDI_DEVICE = env.str("DDI_DEVICE", default="auto")
# The inference engine of the workers (modeling.backends.BACKENDS: torch, torch-bf16, onnx,
# onnx-int8), passed to Predictor.load as an argument; modeling itself reads no environment.
DDI_INFERENCE_BACKEND = env.str("DDI_INFERENCE_BACKEND", default="torch")
DDI_IMPORT_BATCH_SIZE = env.int("DDI_IMPORT_BATCH_SIZE", default=5000)
DDI_MAX_FIELD_BYTES = env.int("DDI_MAX_FIELD_BYTES", default=64 * 1024)
DDI_PSEUDOLABEL_CHUNK_SIZE = env.int("DDI_PSEUDOLABEL_CHUNK_SIZE", default=5000)
DDI_MAX_ATTEMPTS = env.int("DDI_MAX_ATTEMPTS", default=5)
# Workers. A chunk commits its rows every DDI_PSEUDOLABEL_BATCH_SIZE interactions and renews its
# lease each time; an expired lease means its worker died and another may take the chunk over.
DDI_PSEUDOLABEL_BATCH_SIZE = env.int("DDI_PSEUDOLABEL_BATCH_SIZE", default=2500)
DDI_CHUNK_LEASE_S = env.int("DDI_CHUNK_LEASE_S", default=120)
# Watchdog (annotations.requeue_stale_runs): a running run without a heartbeat for this long is
# re-sent; a queued run (or pending chunk) untouched for DDI_REQUEUE_QUEUED_AFTER_S is re-sent
# (covers an enqueue lost while the broker was down).
DDI_STALE_AFTER_S = env.int("DDI_STALE_AFTER_S", default=180)
DDI_REQUEUE_QUEUED_AFTER_S = env.int("DDI_REQUEUE_QUEUED_AFTER_S", default=300)
DDI_TRAIN_CHECKPOINT_EVERY = env.int("DDI_TRAIN_CHECKPOINT_EVERY", default=50)
DDI_MIN_TRAIN_EXAMPLES = env.int("DDI_MIN_TRAIN_EXAMPLES", default=10)
# Pseudo-labels added to training (highest confidence first) are capped: they repeat patterns.
DDI_MAX_PSEUDO_LABEL_EXAMPLES = env.int("DDI_MAX_PSEUDO_LABEL_EXAMPLES", default=2000)
# Promotion scores the new and the active version on the current human labels; at most this
# many (evenly spaced) are scored, so a 30k-label project does not spend minutes on it.
DDI_PROMOTION_MAX_LABELS = env.int("DDI_PROMOTION_MAX_LABELS", default=5000)
# The promotion gate (annotations.services.jobs.promotion.decide_promotion): a version whose
# out-of-fold macro-F1 is below the floor is refused; the comparison with the active version
# uses the labels it never trained on when there are at least MIN_HELD_OUT of them.
DDI_PROMOTION_MIN_MACRO_F1 = env.float("DDI_PROMOTION_MIN_MACRO_F1", default=0.6)
DDI_PROMOTION_MIN_HELD_OUT = env.int("DDI_PROMOTION_MIN_HELD_OUT", default=10)
# A chunk task is interrupted (SoftTimeLimitExceeded, rolled back, retried) after this long, e.g.
# when its database backend hangs; the pool process is killed 30 s later. Keep it far below the
# broker's visibility timeout (rule 3).
DDI_CHUNK_SOFT_TIME_LIMIT_S = env.int("DDI_CHUNK_SOFT_TIME_LIMIT_S", default=900)
DDI_LOW_CONFIDENCE = env.float("DDI_LOW_CONFIDENCE", default=0.9)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
