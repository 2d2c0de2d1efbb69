"""Django settings, built from the validated Nexus configuration (see nexus/config.py)."""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta
from typing import Any

import dj_database_url

from nexus.config import BASE_DIR, ConfigError, load_config
from nexus.logging import logging_config

try:
    NEXUS = load_config()
except ConfigError as exc:
    sys.stderr.write(f"nexus: configuration error: {exc}\n")
    raise SystemExit(2) from None

DEBUG = NEXUS.DEBUG
SECRET_KEY = NEXUS.SECRET_KEY or "django-insecure-development-only-key"
# Sessions, password-reset links and signed values made with an earlier key stay valid.
SECRET_KEY_FALLBACKS = list(NEXUS.SECRET_KEY_PREVIOUS)
ALLOWED_HOSTS = list(NEXUS.ALLOWED_HOSTS)

INSTALLED_APPS = [
    "daphne",
    "django_prometheus",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "workspaces.apps.WorkspacesConfig",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "nexus.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "nexus.middleware.StaticFilesMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "nexus.middleware.BodyLimitMiddleware",
    "nexus.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

if DEBUG:
    MIDDLEWARE.insert(MIDDLEWARE.index("nexus.middleware.RequestLogMiddleware") + 1,
                      "nexus.middleware.DebugNotFoundMiddleware")

ROOT_URLCONF = "nexus.urls"
ASGI_APPLICATION = "nexus.asgi.application"

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


def _database(url: str) -> dict[str, Any]:
    # PostgreSQL connections come from a bounded pool, which Django allows only with
    # CONN_MAX_AGE=0. Other databases keep a connection per thread: the panel service's worker
    # threads live as long as the process, and opening a SQLite connection per segment would
    # cost more than the segment.
    database: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    database["ENGINE"] = _prometheus_engine(database["ENGINE"])
    if database["ENGINE"].endswith("sqlite3"):
        # One writer at a time, taken at BEGIN: concurrent appliers queue instead of failing.
        database["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        options = database.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", 5)
        if database["ENGINE"].endswith("postgresql"):
            options.setdefault("application_name", "nexus")
            database["CONN_MAX_AGE"] = 0
            options["pool"] = {
                "min_size": NEXUS.DB_POOL_MIN_SIZE,
                "max_size": NEXUS.DB_POOL_MAX_SIZE,
                "timeout": NEXUS.DB_POOL_TIMEOUT,
                "name": "nexus",
            }
    return database


def _prometheus_engine(engine: str) -> str:
    """The same backend, wrapped by django-prometheus so queries are counted."""
    name = engine.rsplit(".", 1)[-1]
    return f"django_prometheus.db.backends.{name}" if name in {"postgresql", "sqlite3", "mysql"} else engine


DATABASES = {"default": _database(NEXUS.DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if NEXUS.redis_enabled:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [NEXUS.REDIS_URL], "prefix": NEXUS.REDIS_PREFIX, "capacity": 1500, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "nexus.layers.InMemoryChannelLayer"}}

# "throttle": counters of the login throttles, shared by every process when Redis is there.
CACHES: dict[str, Any] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NEXUS.REDIS_URL,
         "KEY_PREFIX": f"{NEXUS.REDIS_PREFIX}:throttle", "OPTIONS": {"socket_timeout": 1}}
        if NEXUS.redis_enabled
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}
    ),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/workspaces/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# Without collectstatic (development, tests) files are found through the finders instead.
warnings.filterwarnings("ignore", message="No directory at")

DATA_UPLOAD_MAX_MEMORY_SIZE = NEXUS.BODY_LIMIT

CORS_ALLOW_ALL_ORIGINS = "*" in NEXUS.CORS_ORIGINS
CORS_ALLOWED_ORIGINS = [origin for origin in NEXUS.CORS_ORIGINS if origin != "*"]
CORS_EXPOSE_HEADERS = ["X-Request-ID"]

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Without DEBUG the service sits behind TLS (SECURE_PROXY_SSL_HEADER): cookies never travel in clear.
SESSION_COOKIE_SECURE = not DEBUG and NEXUS.COOKIES_SECURE
CSRF_COOKIE_SECURE = not DEBUG and NEXUS.COOKIES_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": (
        [
            "workspaces.api.authentication.TokenAuthentication",
            "workspaces.api.authentication.SessionAuthentication",
        ]
        if NEXUS.AUTH_ENABLED
        else ["workspaces.api.authentication.LocalUserAuthentication"]
    ),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["workspaces.api.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "workspaces.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "workspaces.api.throttling.UserRateThrottle",
        "workspaces.api.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"user": NEXUS.API_THROTTLE_USER, "anon": NEXUS.API_THROTTLE_ANON},
    "NUM_PROXIES": NEXUS.THROTTLE_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Escape non-ASCII: text a handler built (an unpaired surrogate) must still render as JSON.
    "UNICODE_JSON": False,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=NEXUS.JWT_ACCESS_TTL),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "SIGNING_KEY": NEXUS.JWT_SECRET or SECRET_KEY,
    "ALGORITHM": "HS256",
    "USER_ID_FIELD": "username",
    "USER_ID_CLAIM": "sub",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Nexus API",
    "DESCRIPTION": "Workspaces and live panels with sandboxed JavaScript handlers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "workspaces.api.schema.add_throttled_responses",
    ],
    # Several shapes have a "status" field with different choices; name each set.
    "ENUM_NAME_OVERRIDES": {
        "PanelStatusEnum": "workspaces.models.PanelStatus",
        "CreateStatusEnum": "workspaces.api.serializers.CREATE_STATUSES",
        "ResultStatusEnum": "workspaces.api.serializers.RESULT_STATUSES",
    },
}

LOGGING_CONFIG = "logging.config.dictConfig"
LOGGING = logging_config(NEXUS.LOG_LEVEL, NEXUS.LOG_PRETTY)

PROMETHEUS_EXPORT_MIGRATIONS = False

if NEXUS.SENTRY_DSN:
    from nexus.sentry import init_sentry

    init_sentry(NEXUS.SENTRY_DSN)
