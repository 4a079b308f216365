"""One settings module for every profile, driven by environment variables.

LIFECYCLE_PROFILE=embedded (the default, what `make run` uses): SQLite, a Celery
broker on the local filesystem, email kept in the local outbox. Nothing to install.

LIFECYCLE_PROFILE=production: every secret and service address must come from the
environment; a missing one stops the process at start-up rather than at the first
request. `.env.example` lists every variable.
"""

import datetime as dt
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from lifecycle import queues

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LIFECYCLE_VAR_DIR", BASE_DIR / "var"))

PROFILE = os.environ.get("LIFECYCLE_PROFILE", "embedded")
if PROFILE not in {"embedded", "production"}:
    raise ImproperlyConfigured(f"LIFECYCLE_PROFILE must be 'embedded' or 'production', not {PROFILE!r}")
EMBEDDED = PROFILE == "embedded"


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value not in (None, ""):
        return value
    if default is None:
        raise ImproperlyConfigured(f"{name} must be set in the environment (LIFECYCLE_PROFILE={PROFILE}).")
    return default


def env_bool(name: str, default: bool) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


SECRET_KEY = env("SECRET_KEY", "embedded-only-insecure-key-do-not-use-in-production" if EMBEDDED else None)
DEBUG = env_bool("DEBUG", EMBEDDED)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if EMBEDDED else None)
# The marketer's workspace (workspace) signs people in at /app/login/.
LOGIN_URL = "workspace:login"
LOGIN_REDIRECT_URL = "workspace:picker"

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")
# The address customers and storefronts reach us at: webhook URLs and email links are built on it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000" if EMBEDDED else None).rstrip("/")

INSTALLED_APPS = [
    "lifecycle.apps.OperatorAdminConfig",  # django.contrib.admin, for operators only
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "lifecycle",
    "loyalty",
    "referrals",
    "feedback",
    "journeys",
    "workspace",
    "demo",
]

MIDDLEWARE = [
    "lifecycle.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session gave a two-factor code (lifecycle/two_factor.py).
    "django_otp.middleware.OTPMiddleware",
    # Each request starts with no tenant; the view activates the one it finds (lifecycle/tenancy.py).
    "lifecycle.tenancy.TenantScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lifecycle.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the 429 page (AXES_LOCKOUT_CALLABLE).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "workspace.context.workspace",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
elif EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # IMMEDIATE makes every transaction take the write lock up front, so two
            # writers queue instead of failing with "database is locked" mid-transaction.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
else:
    raise ImproperlyConfigured("DATABASE_URL must be set in the environment (LIFECYCLE_PROFILE=production).")
# The dashboards' covering indexes (INCLUDE columns) are for PostgreSQL; SQLite, the embedded default,
# builds them on their key columns alone, which is all it needs at its size.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# Row-level security (lifecycle/rls.py): the role web and Celery processes SET ROLE to on each
# new PostgreSQL connection, so every tenant table shows them only the tenant at hand. Set it in
# production (the migrations create `lifecycle_app`); manage.py commands run as the owner.
DATABASE_RLS_ROLE = env("DATABASE_RLS_ROLE", "")
# Single-host deployments (gunicorn, workers and PostgreSQL on the same cores): the niceness of the
# Celery worker and beat processes and of their PostgreSQL backends, so the API and its queries go
# first (lifecycle/session_priority.py). Empty: unchanged.
BACKGROUND_NICE = env("BACKGROUND_NICE", "")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, Celery, cache -------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if not REDIS_URL and not EMBEDDED:
    raise ImproperlyConfigured("REDIS_URL must be set in the environment (LIFECYCLE_PROFILE=production).")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # kombu's filesystem transport: a real broker shared by web, worker and beat
    # through a folder, so the embedded profile runs a real worker with no server.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# One queue per kind of work (lifecycle/queues.py), each task naming its own beside its code with
# @on_queue, which the router reads; a worker started without -Q consumes them all. No other queue exists:
# a task published without a queue, or to a misspelt one, raises instead of waiting where no worker listens.
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in queues.QUEUES]
CELERY_TASK_ROUTES = ("lifecycle.queues.route",)
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_DEFAULT_QUEUE = "unrouted"
# Every task has a time limit: SoftTimeLimitExceeded is raised in it at the soft limit, the process
# is killed at the hard one (rows a send task held go back through journeys.reclaim). The hourly and
# five-minute sweeps that may legitimately run long get more.
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_ANNOTATIONS = {
    name: {"soft_time_limit": 1500, "time_limit": 1560}
    for name in ("journeys.settle_outcomes", "loyalty.expire_points", "journeys.check_deliverability")
}

# Event sweeps that may run at once, each on its share of the customers (see lifecycle/events.py).
EVENT_SWEEP_SLOTS = int(env("EVENT_SWEEP_SLOTS", "2"))


# --- Email ----------------------------------------------------------------------
# Any anymail ESP by settings: EMAIL_BACKEND=anymail.backends.postmark.EmailBackend and
# ANYMAIL_POSTMARK_SERVER_TOKEN=… (every ANYMAIL_* variable lands in ANYMAIL without the prefix).
EMAIL_BACKEND = env("EMAIL_BACKEND", "lifecycle.mail.OutboxBackend")
ANYMAIL = {key.removeprefix("ANYMAIL_"): value for key, value in os.environ.items() if key.startswith("ANYMAIL_")}
# ESP tracking webhooks (/anymail/<esp>/tracking/, journeys/tracking.py) always demand HTTP basic auth
# with ANYMAIL_WEBHOOK_SECRET ("user:password", put in the webhook URL given to the ESP); an ESP that
# signs its posts is checked with its own key as well. Production refuses to start without them; the
# embedded profile generates a secret once, in var/anymail_webhook_secret.
ESP_WEBHOOK_SIGNING_SETTINGS = {
    "mailersend": "MAILERSEND_SIGNING_SECRET",
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "mailtrap": "MAILTRAP_TRACKING_SECRET",
    "mandrill": "MANDRILL_WEBHOOK_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
    "resend": "RESEND_SIGNING_SECRET",
    "sendgrid": "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY",
    "unisender_go": "UNISENDER_GO_API_KEY",
}


def _embedded_webhook_secret(path: Path) -> str:
    """The secret made on first start and kept: written aside, then linked in, so processes starting
    together (web, worker, beat) all end up with the first one written."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(f"lifecycle:{secrets.token_urlsafe(24)}\n")
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


if not ANYMAIL.get("WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = (_embedded_webhook_secret(VAR_DIR / "anymail_webhook_secret") if EMBEDDED
                                 else env("ANYMAIL_WEBHOOK_SECRET"))
_user, _colon, _password = ANYMAIL["WEBHOOK_SECRET"].partition(":")
if not (_user and _colon and len(_password) >= 16):
    raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SECRET must be 'user:password' with a password of 16 characters or "
                               "more, e.g. lifecycle:<python -c 'import secrets; print(secrets.token_urlsafe(24))'>.")
if not EMBEDDED and EMAIL_BACKEND.startswith("anymail.backends."):
    _signing = ESP_WEBHOOK_SIGNING_SETTINGS.get(EMAIL_BACKEND.split(".")[2])
    if _signing and not ANYMAIL.get(_signing):
        raise ImproperlyConfigured(f"ANYMAIL_{_signing} must be set in the environment (LIFECYCLE_PROFILE={PROFILE}): "
                                   f"{EMAIL_BACKEND} signs its tracking webhooks with it.")
# For EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend (the compose profile's mail catcher).
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "hello@lifecycle.localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Does the ESP honour our idempotency key (the deterministic Message-ID)? Then a send interrupted
# by a dead worker is retried; otherwise it is marked ambiguous, never resent (journeys/services.py).
ESP_HONOURS_IDEMPOTENCY_KEY = env_bool("ESP_HONOURS_IDEMPOTENCY_KEY", False)
# The dispatcher's leases: a claimed delivery not started within the first is claimable again; one
# still "sending" after the second was interrupted by a dead worker (retried or marked ambiguous).
DELIVERY_CLAIM_LEASE_SECONDS = int(env("DELIVERY_CLAIM_LEASE_SECONDS", "300"))
DELIVERY_SEND_LEASE_SECONDS = int(env("DELIVERY_SEND_LEASE_SECONDS", "120"))
# ESP calls in flight per worker process while a send task sends its batch (journeys/dispatch.py):
# 1 sends from the task's own thread; an ESP that takes 100 ms to answer needs ~20-50 to keep up.
JOURNEY_SEND_CONCURRENCY = int(env("JOURNEY_SEND_CONCURRENCY", "1"))
# Outbound webhook steps (journeys/webhooks.py): a call that fails with a transient error is retried with
# exponential backoff and full jitter (base, doubled each attempt, at most max) until the window closes.
JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS = float(env("JOURNEY_WEBHOOK_RETRY_WINDOW_SECONDS", "86400"))
JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS = float(env("JOURNEY_WEBHOOK_BACKOFF_BASE_SECONDS", "30"))
JOURNEY_WEBHOOK_BACKOFF_MAX_SECONDS = float(env("JOURNEY_WEBHOOK_BACKOFF_MAX_SECONDS", "3600"))
JOURNEY_WEBHOOK_TIMEOUT_SECONDS = float(env("JOURNEY_WEBHOOK_TIMEOUT_SECONDS", "10"))
# Only for development and tests: let webhooks reach private and loopback addresses (refused otherwise).
JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS = env_bool("JOURNEY_WEBHOOK_ALLOW_PRIVATE_HOSTS", False)

# --- Secrets at rest ------------------------------------------------------------
# Webhook signing secrets must be readable to verify HMACs, so they are encrypted with
# keys from the environment (comma-separated, newest first; older keys still decrypt).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "" if EMBEDDED else None)

# A store's own sending domain (lifecycle/sending_domains.py, Settings → Sending domain). In production an email
# from an address on a domain the store has not verified (SPF, DKIM and DMARC found in DNS) is held, with that reason.
SENDING_DOMAIN_REQUIRED = env_bool("SENDING_DOMAIN_REQUIRED", not EMBEDDED)
# "Check now" asks DNS with dnspython; off (or no network), the check is skipped and the page says so.
SENDING_DNS_CHECK = env_bool("SENDING_DNS_CHECK", True)
# Name servers to ask ("1.1.1.1,8.8.8.8" or "127.0.0.1:5353"); blank: the system's (/etc/resolv.conf).
SENDING_DNS_NAMESERVERS = env_list("SENDING_DNS_NAMESERVERS", "")
SENDING_DNS_TIMEOUT = float(env("SENDING_DNS_TIMEOUT", "4"))
# The SPF include of the platform's own ESP, for stores that send through it (blank: any SPF record is accepted).
SENDING_SPF_INCLUDE = env("SENDING_SPF_INCLUDE", "")

# --- Auth, i18n, static ---------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Sign-in throttling (django-axes) on /app/login/ and /admin/login/: after AXES_FAILURE_LIMIT wrong
# passwords for one username (from any address), or from one address (for any usernames), that
# username or address is refused, even with the right password, until AXES_COOLOFF_TIME has passed
# since its last failure. Per username stops a botnet guessing one owner's password; per address
# stops one machine spraying guesses over many accounts. The price: anyone can keep one username
# locked for the cool-off, so it is short, and a locked person sees when to retry.
# Axes' backend refuses a locked-out sign-in before Django's checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(env("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = dt.timedelta(minutes=int(env("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success does not clear the count (AXES_RESET_ON_SUCCESS off): else a sprayer signing in to an account
# of their own now and then would reset their address's count.
AXES_LOCKOUT_CALLABLE = "workspace.views.locked_out"
AXES_DISABLE_ACCESS_LOG = True  # failures are what count; no log of every successful sign-in
AXES_VERBOSE = False  # no "AXES: BEGIN …" banner on every manage.py command (make run's console stays readable)
# Redis (production) counts in the shared cache; the embedded profile counts in its database, which
# every process of `make run` shares (a per-process local cache would let each process count alone).
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if REDIS_URL else "axes.handlers.database.AxesDatabaseHandler"
# Two-factor sign-in (django-otp, lifecycle/two_factor.py): a wrong code counts as a failed sign-in above, so
# code guessing is locked out with password guessing; each device also waits 1, 2, 4… s after its own failures.
OTP_TOTP_ISSUER = "Lifecycle"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Operators remove a lost authenticator in /admin/; they never see its secret or QR code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# The address is REMOTE_ADDR (as for referral clicks): behind a proxy, have it set REMOTE_ADDR, since
# X-Forwarded-For is the client's to forge.
# The API: this many requests with a wrong API key from one address within API_KEY_FAILURE_WINDOW_SECONDS,
# and every request from it is refused with 429 until the window ends (lifecycle/auth.py).
API_KEY_FAILURE_LIMIT = int(env("API_KEY_FAILURE_LIMIT", "20"))
API_KEY_FAILURE_WINDOW_SECONDS = int(env("API_KEY_FAILURE_WINDOW_SECONDS", "600"))
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- API ------------------------------------------------------------------------
# Bodies above this are refused with 413 before any parsing.
API_MAX_BODY_BYTES = int(env("API_MAX_BODY_BYTES", str(1024 * 1024)))
API_BULK_MAX_BODY_BYTES = int(env("API_BULK_MAX_BODY_BYTES", str(20 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = API_BULK_MAX_BODY_BYTES
# Requests per API key per minute; storefront bursts (flash sales) fit well under it.
API_RATE_LIMIT_PER_MINUTE = int(env("API_RATE_LIMIT_PER_MINUTE", "6000"))
# Idempotency-Key records are kept at least this long (Stripe keeps them 24 h).
IDEMPOTENCY_TTL_HOURS = int(env("IDEMPOTENCY_TTL_HOURS", "24"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["lifecycle.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["lifecycle.auth.HasTenant"],
    "DEFAULT_THROTTLE_CLASSES": ["lifecycle.throttling.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["lifecycle.api.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "lifecycle.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Lifecycle API",
    "DESCRIPTION": (
        "Send orders, fulfilments, deliveries, refunds and custom events from your storefront. "
        "Authenticate with `Authorization: Bearer <api key>`. Errors share one shape: "
        '`{"code": "...", "message": "...", "fields": {...}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["lifecycle.api.openapi.canonical_paths"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "lifecycle.api.openapi.server_rules"],
    # 3.1: the request models are pydantic, whose JSON Schema (2020-12) 3.1 speaks natively.
    "OAS_VERSION": "3.1.0",
    # ReDoc from drf-spectacular-sidecar's static files, not a CDN: the docs load offline.
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
