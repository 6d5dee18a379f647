"""RacePhoto settings: everything that varies between deployments comes from the environment.

With nothing set, the project runs on a laptop: embedded PostgreSQL and Valkey
are started under ``var/``, files go to ``var/media`` and ``var/private``.
Production sets ``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``,
``ALLOWED_HOSTS`` and, usually, the S3 variables.
"""

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from racephoto.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    parse_database_url,
    validate_redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RACEPHOTO_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (production). "
            "Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = "django-insecure-local-development-only"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must be set when DEBUG is off, e.g. ALLOWED_HOSTS=photos.example.org"
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sitemaps",
    "django.forms",  # Django's widget templates, for the site's form renderer
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from static: no CDN
    "allauth",
    "allauth.account",
    "django_htmx",
    "django_celery_results",
    "djstripe",
    "racephoto",
    "accounts",
    "events",
    "photos",
    "mlpipeline",
    "search",
    "commerce",
]

MIDDLEWARE = [
    "racephoto.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "racephoto.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "racephoto.i18n.RememberLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "racephoto.urls"
WSGI_APPLICATION = "racephoto.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:profile"
# Django's ModelBackend and allauth's, with permissions from roles only: Group and per-user
# permission rows grant nothing (accounts/backends.py).
AUTHENTICATION_BACKENDS = [
    # Usernames for the admin and staff created on the command line...
    "accounts.backends.UsernameBackend",
    # ...e-mail addresses for everyone signing in through the site.
    "accounts.backends.EmailBackend",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Every form is drawn with the site's field markup (templates/forms/, site.css .field).
FORM_RENDERER = "racephoto.forms.SiteFormRenderer"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "racephoto.context_processors.site",
            ],
        },
    },
]

# --- Services -----------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
# Embedded servers are for a laptop or CI. In production a forgotten variable
# must stop start-up, not quietly put the data in a local directory.
if not DEBUG and not (DATABASE_URL and REDIS_URL):
    raise ImproperlyConfigured(
        "DATABASE_URL and REDIS_URL must be set when DEBUG is off (production); "
        "the embedded PostgreSQL and Valkey are only started in development (DEBUG=1)."
    )

if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    from racephoto.embedded import EmbeddedPostgres

    _postgres = EmbeddedPostgres(VAR_DIR)
    _postgres.ensure_running()
    _postgres.ensure_database("racephoto")
    DATABASES = {"default": _postgres.connection_settings("racephoto")}

# The embedded Valkey's database number (0-15). The tests use one of their own
# (racephoto/testing.py), so the worker of `make run` never runs a task a test queued.
EMBEDDED_VALKEY_DB = env_int("EMBEDDED_VALKEY_DB", 0, minimum=0)
if EMBEDDED_VALKEY_DB > 15:
    raise ImproperlyConfigured(f"EMBEDDED_VALKEY_DB must be 0 to 15, got {EMBEDDED_VALKEY_DB}.")

if REDIS_URL:
    REDIS_URL = validate_redis_url(REDIS_URL)
else:
    from racephoto.embedded import EmbeddedValkey

    REDIS_URL = EmbeddedValkey(VAR_DIR).ensure_running(db=EMBEDDED_VALKEY_DB)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "racephoto",
    }
}

# --- Celery -------------------------------------------------------------------


def _celery_broker_url(url: str) -> str:
    # kombu spells a Unix-socket Redis URL differently from redis-py: its own scheme,
    # and the database number as ?virtual_host= (it ignores redis-py's ?db=).
    if not url.startswith("unix://"):
        return url
    parts = urlsplit(url)
    query = [("virtual_host" if key == "db" else key, value)
             for key, value in parse_qsl(parts.query, keep_blank_values=True)]
    return f"redis+socket://{parts.path}" + (f"?{urlencode(query)}" if query else "")


CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task killed mid-way is redelivered, not lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Worker processes: two keep both cores of a small machine busy, torch gets the cores
# shared out between them (mlpipeline.loaded), and they share the models' weights, which
# the worker loads before it forks them (mlpipeline.worker).
CELERY_WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 2, minimum=1)
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Event-wide work (index updates, linking, suggestions) has a queue of its own, which every
# worker also takes from, in turn with the photos': behind the photos of a big upload it
# would wait for the whole backlog, and runners could not find photos by face until then.
EVENTS_QUEUE = "events"
CELERY_TASK_QUEUES = {CELERY_TASK_DEFAULT_QUEUE: {}, EVENTS_QUEUE: {}}
CELERY_TASK_ROUTES = {name: {"queue": EVENTS_QUEUE}
                      for name in ("mlpipeline.sync_index", "mlpipeline.link_event",
                                   "mlpipeline.suggest_event")}
# A task taken by a worker that then vanished (its machine lost, kill -9) goes back to the
# queue after this many seconds, for another worker. A task still running past it is
# delivered twice: the step records make the second delivery wait, then skip what the
# first did (photos.pipeline.run_step), so this costs time, never double work.
BROKER_VISIBILITY_TIMEOUT = env_int("BROKER_VISIBILITY_TIMEOUT", 3600, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
    # How often a worker looks for such tasks (kombu: every 10 s x 10 by default).
    "unacked_restore_interval": max(1, min(10, BROKER_VISIBILITY_TIMEOUT // 4)),
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_HEARTBEAT_SECONDS = env_int("CELERY_WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
# A photo not finished, untouched this long, and with no message in any queue or worker
# is queued again (photos.recovery): kombu can lose a message its worker was killed taking.
LOST_PHOTO_GRACE_SECONDS = env_int("LOST_PHOTO_GRACE_SECONDS", 60, minimum=1)
METRICS_TOKEN = env_str("METRICS_TOKEN")
# /healthz answers only its status to the public; with this bearer token (or, when it is
# empty, METRICS_TOKEN), or to a signed-in platform admin, it shows every check's details.
HEALTH_TOKEN = env_str("HEALTH_TOKEN")

# --- Files --------------------------------------------------------------------

MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
PRIVATE_MEDIA_ROOT = Path(env_str("PRIVATE_MEDIA_ROOT", str(VAR_DIR / "private")))
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
INDEX_DIR = Path(env_str("INDEX_DIR", str(VAR_DIR / "indexes")))
MODELS_DIR = Path(env_str("MODELS_DIR", str(VAR_DIR / "models")))

# The folders of the public storage that are published: watermarked previews and
# thumbnails. Anything else in it (watermark logos) and the whole private storage
# (originals, the clean web version) are never served.
PUBLIC_MEDIA_FOLDERS = ("previews", "thumbnails")
# A derivative's name carries a digest of its bytes (photos/derivatives.py): new content
# (a new watermark) gets a new name, so a name's content never changes and browsers and
# CDNs may keep it for good. A deleted photo's URL is unguessable and no page links it
# any more; behind a CDN, purge it there too. deploy/nginx.conf and the S3 objects carry
# the same value.
MEDIA_CACHE_CONTROL = "public, max-age=31536000, immutable"

# Upload limits: a race photo is a few MB; anything far larger is a mistake or an attack.
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 60 * 1024 * 1024, minimum=1)
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 80_000_000, minimum=1)
PHOTO_ZIP_MAX_TOTAL_BYTES = env_int("PHOTO_ZIP_MAX_TOTAL_BYTES", 20 * 1024**3, minimum=1)
PHOTO_ZIP_MAX_MEMBERS = env_int("PHOTO_ZIP_MAX_MEMBERS", 20_000, minimum=1)

STORAGE_BACKEND = env_choice("STORAGE_BACKEND", ("filesystem", "s3"), "filesystem")
if STORAGE_BACKEND == "s3":
    from racephoto.storage import s3_storages

    if not env_str("S3_BUCKET"):
        raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs S3_BUCKET.")
    # One bucket: public/ (previews, thumbnails; public-read, plain cacheable URLs, fetched
    # by browsers from the bucket or S3_CUSTOM_DOMAIN, a CDN in front of it) and private/
    # (originals, web copies; reachable only through URLs signed for S3_SIGNED_URL_MAX_AGE
    # seconds). See racephoto/storage.py and docs/scaling.md.
    STORAGES = s3_storages(
        bucket=env_str("S3_BUCKET"),
        endpoint_url=env_str("S3_ENDPOINT_URL"),
        region=env_str("S3_REGION"),
        access_key=env_str("S3_ACCESS_KEY_ID"),
        secret_key=env_str("S3_SECRET_ACCESS_KEY"),
        custom_domain=env_str("S3_CUSTOM_DOMAIN"),
        # Off for a bucket that refuses ACLs; a bucket policy must then publish public/*.
        object_acls=env_bool("S3_OBJECT_ACLS", True),
        signed_url_max_age=env_int("S3_SIGNED_URL_MAX_AGE", 600, minimum=10),
        public_cache_control=MEDIA_CACHE_CONTROL,
    )
else:
    STORAGES = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
        },
        # Never served by any URL: originals leave only through signed download views.
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
        },
        "staticfiles": {
            "BACKEND": (
                "django.contrib.staticfiles.storage.StaticFilesStorage"
                if DEBUG
                else "whitenoise.storage.CompressedManifestStaticFilesStorage"
            )
        },
    }

# Public derivatives on the file system are served by Django itself when this is on:
# `make run` (DEBUG), or a small deployment without a front web server. docker-compose.yml
# has nginx serve them from the media volume instead; with S3 the bucket serves them.
SERVE_MEDIA = env_bool("SERVE_MEDIA", DEBUG and STORAGE_BACKEND == "filesystem")
if SERVE_MEDIA and STORAGE_BACKEND != "filesystem":
    raise ImproperlyConfigured(
        "SERVE_MEDIA=1 serves files from MEDIA_ROOT; with STORAGE_BACKEND=s3 the bucket's "
        "public URLs serve them. Unset SERVE_MEDIA."
    )
if STORAGE_BACKEND == "filesystem":
    _public, _private = MEDIA_ROOT.resolve(), PRIVATE_MEDIA_ROOT.resolve()
    if _public == _private or _private.is_relative_to(_public) or _public.is_relative_to(_private):
        raise ImproperlyConfigured(
            f"MEDIA_ROOT ({MEDIA_ROOT}) and PRIVATE_MEDIA_ROOT ({PRIVATE_MEDIA_ROOT}) must not "
            "contain each other: MEDIA_ROOT is published, originals must never be."
        )

# --- Search and models ---------------------------------------------------------

SEARCH_BACKEND = env_choice("SEARCH_BACKEND", ("hnswlib", "pgvector"), "hnswlib")
# Off: photos are ready once their derivatives exist, with no bib, face or CLIP
# step (an ingestion-only machine; tests of the pipeline's own mechanics).
ML_PIPELINE = env_bool("ML_PIPELINE", True)
# Which face embedder the pipeline uses ("auto": the offline SFace model, else FaceNet
# when its weights are in MODELS_DIR, else the offline dlib model); or force one. The
# choices are the embedders of mlpipeline's registry, checked when the app starts.
FACE_EMBEDDER = env_str("FACE_EMBEDDER", "auto").lower()
# CPU threads torch and OpenCV may use per worker process (0: the cores shared out
# between the WORKER_CONCURRENCY processes).
ML_TORCH_THREADS = env_int("ML_TORCH_THREADS", 0, minimum=0)
# Seconds a burst of face/CLIP changes is gathered before one index update runs.
INDEX_UPDATE_DELAY = env_int("INDEX_UPDATE_DELAY", 2, minimum=0)
# An event-wide run waits at least this many times as long as its previous run took:
# event-wide work then takes at most about 1/(1+this) of a worker while photos pour in.
EVENT_WORK_SPACING = env_int("EVENT_WORK_SPACING", 9, minimum=0)

# --- Payments -----------------------------------------------------------------

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
STRIPE_API_BASE = env_str("STRIPE_API_BASE")  # another Stripe-compatible server
# With no keys and DEBUG on, `make run` starts localstripe (a fake Stripe) on this loopback
# port and the shop takes local test payments; with DEBUG off and no keys it is closed.
LOCALSTRIPE_PORT = env_int("LOCALSTRIPE_PORT", 8420, minimum=1)
STRIPE_LOCAL = DEBUG and not STRIPE_SECRET_KEY
if STRIPE_LOCAL:
    STRIPE_API_BASE = STRIPE_API_BASE or f"http://127.0.0.1:{LOCALSTRIPE_PORT}"
    STRIPE_SECRET_KEY = "sk_test_localstripe"
    STRIPE_PUBLISHABLE_KEY = "pk_test_localstripe"
# dj-stripe reads its key and webhook settings from these names. Webhooks are verified
# with the signing secret kept on their endpoint's row, which the admin's "add webhook
# endpoint" makes at Stripe and stores: no setting holds it (commerce/checks.py warns
# while no endpoint is set up).
STRIPE_LIVE_MODE = STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Verified webhooks go to commerce (see commerce/webhooks.py for why not dj-stripe's sync).
DJSTRIPE_WEBHOOK_EVENT_CALLBACK = "commerce.webhooks.process_trigger"
# Where the site is reached from outside: links in e-mails (order downloads) start with it.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")
# How long the download links of an order stay valid.
DOWNLOAD_LINK_MAX_AGE = env_int("DOWNLOAD_LINK_MAX_AGE", 30 * 24 * 3600, minimum=60)
if STRIPE_SECRET_KEY and not STRIPE_SECRET_KEY.startswith(("sk_test_", "sk_live_", "rk_")):
    raise ImproperlyConfigured("STRIPE_SECRET_KEY must start with sk_test_, sk_live_ or rk_.")

# --- E-mail -------------------------------------------------------------------

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# The platform's name in e-mails ("Hello from RacePhoto!", the subject prefix).
SITE_NAME = env_str("SITE_NAME", "RacePhoto")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <noreply@localhost>")

# --- i18n ---------------------------------------------------------------------

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Paris")
USE_I18N = True
USE_TZ = True
# The admin has no language prefix: it follows this cookie, which every /fr/ or /en/ page
# sets (racephoto.i18n), then the browser's Accept-Language, then LANGUAGE_CODE.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Security -----------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"  # with frame-ancestors below: no page can be framed (clickjacking)
SESSION_COOKIE_HTTPONLY = True
# Scripts read the CSRF token from the page (base.html, upload form), never from the cookie.
CSRF_COOKIE_HTTPONLY = True
# Inline styles stay allowed (htmx adds its indicator style); scripts come from this
# site only. Images may come from an S3/CDN host over https. Payment pages will
# need their provider's host added here (or in the variable).
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
# Behind a TLS-terminating proxy in production; off with DEBUG for plain-http local runs.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# /healthz is probed over plain http by load balancers and compose health checks.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Accounts (django-allauth) ---------------------------------------------------

# Runners and buyers sign in with their e-mail address; an address must be
# verified before the account can sign in, since it receives order links.
ACCOUNT_LOGIN_METHODS = {"email", "username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_PREVENT_ENUMERATION = True
# allauth counts attempts in the cache (Redis), so the limits hold across web workers.
# login_failed: 10 wrong passwords a minute from one IP, 5 per account in 5 minutes.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/300s/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
# Names the site SITE_NAME in e-mails (without it allauth uses the request's host).
ACCOUNT_ADAPTER = "racephoto.mail.AccountAdapter"
# Behind N proxies of ours, the client is the N-th address from the right of
# X-Forwarded-For; 0 trusts no header (direct connections), so one proxy's
# address does not stand for every runner and lock them all out together.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# --- REST API -----------------------------------------------------------------

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes an anonymous API call a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    # JSON only: the browsable API would be one more set of HTML pages to secure and translate.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_THROTTLE_RATES": {"selfie": env_str("SELFIE_SEARCH_RATE", "20/min"),
                               # the public API's listing, photo and bib search, per address
                               "public_api": env_str("PUBLIC_API_RATE", "120/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Client addresses for throttling, as for sign-in (see TRUSTED_PROXY_COUNT above).
    "NUM_PROXIES": ALLAUTH_TRUSTED_PROXY_COUNT,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RacePhoto API",
    "DESCRIPTION": "Find a runner's photos by bib, selfie or both; list an event's public "
                   "photos; staff uploads. Public calls are throttled per address.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging ------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
LOG_FORMAT = env_choice("LOG_FORMAT", ("json", "text"), "text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "racephoto.logging.RequestIdFilter"},
        "refusals": {"()": "racephoto.logging.RefusalFilter"},
    },
    "formatters": {
        "json": {"()": "racephoto.logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Expected 401/403 answers: one line each, no traceback.
        "django.request": {"filters": ["refusals"]},
        "PIL": {"level": "WARNING"},
    },
}
