"""Settings shared by every environment. Everything that differs between
staging and production comes from the environment, as obcd renders it
(.env.<env> plus the OBCD_SECRET_* values the compose file passes)."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name, default=None):
    """NAME from the environment, or the content of the file NAME_FILE
    names: on a swarm obcd delivers a value that holds a secret as a
    Swarm secret file, so that no inspect output shows it."""
    value = os.environ.get(name)
    path = os.environ.get(name + "_FILE")
    if (value is None or value == "") and path:
        with open(path, encoding="utf-8") as f:
            value = f.read().rstrip("\n")
    return default if value is None or value == "" else value


def env_bool(name, default=False):
    return env(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def required(name):
    value = env(name)
    if value is None:
        raise RuntimeError(f"{name} is not set: obcd passes it from the stack's secrets")
    return value


VERSION = env("APP_VERSION", "dev")
SECRET_KEY = required("SECRET_KEY")
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "communities",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Probes and scrapes come from inside the stack with the container's
    # address as Host: answer them before the host check.
    "obc_management.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "obc_management.security.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "obc_management.urls"
WSGI_APPLICATION = "obc_management.wsgi.application"

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

# PostgreSQL through PgBouncer in transaction mode: no server-side cursors.
# Connections are per request unless DB_CONN_MAX_AGE says how many seconds
# to keep one: a kept connection stays logged in across a password
# rotation, so the old replicas keep serving until the new ones replace
# them. Migrations run against the primary directly (obcd's migrate
# one-off sets DB_HOST and DB_PORT so).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": env("DB_HOST", "localhost"),
        "PORT": env("DB_PORT", "5432"),
        "NAME": env("DB_NAME", "obcms"),
        "USER": env("DB_USER", "obcms_user"),
        "PASSWORD": env("DB_PASSWORD", ""),
        "CONN_MAX_AGE": int(env("DB_CONN_MAX_AGE", "0")),
        "DISABLE_SERVER_SIDE_CURSORS": env_bool("DISABLE_SERVER_SIDE_CURSORS", True),
        "OPTIONS": {"connect_timeout": 3},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": env("CACHE_BACKEND", "django_redis.cache.RedisCache"),
        "LOCATION": env("REDIS_URL", "redis://localhost:6379/1"),
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}
SESSION_ENGINE = env("SESSION_ENGINE", "django.contrib.sessions.backends.cache")
SESSION_CACHE_ALIAS = env("SESSION_CACHE_ALIAS", "default")

CELERY_BROKER_URL = env("CELERY_BROKER_URL", "redis://localhost:6379/0")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "redis://localhost:6379/2")
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", True)
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", True)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "communities.tasks.heartbeat", "schedule": 30.0},
}

# nginx terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CSP_DEFAULT_SRC = env("CSP_DEFAULT_SRC", "'self'")
CSP_SCRIPT_SRC = env("CSP_SCRIPT_SRC", "'self'")
CSP_STYLE_SRC = env("CSP_STYLE_SRC", "'self'")

DATA_UPLOAD_MAX_MEMORY_SIZE = int(env("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2_621_440)))
FILE_UPLOAD_MAX_MEMORY_SIZE = int(env("FILE_UPLOAD_MAX_MEMORY_SIZE", str(2_621_440)))

STATIC_URL = "/static/"
STATIC_ROOT = env("STATIC_ROOT", "/var/www/static")

DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "noreply@localhost")
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
}
