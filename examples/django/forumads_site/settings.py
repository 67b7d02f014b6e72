"""Django settings for the forumads example project.

Environment:
    DJANGO_SECRET_KEY     the secret key (a development default when unset; set it in production)
    DJANGO_DEBUG          1/true/yes/on turns DEBUG on (default off)
    DJANGO_ALLOWED_HOSTS  comma-separated host names (default 127.0.0.1,localhost)
    DJANGO_DB_PATH        the SQLite database file (default db.sqlite3 beside manage.py)
    DJANGO_DATABASE_URL   postgres://user:password@host:port/name[?search_path=schema]: use this
                          PostgreSQL database (python3-psycopg2) instead of SQLite, e.g. the one the
                          Go worker's django-db result backend writes (its database_url)
    FORUMADS_CONFIG, CELERY_BROKER_URL, CELERY_RESULT_BACKEND: see forumads_site/celeryconfig.py
"""
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: want 1/true/yes/on or 0/false/no/off")


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "dev-only-insecure-key-change-me-forumads-example"
DEBUG = _flag("DJANGO_DEBUG")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # celery-progress (Debian's python3-celery-progress): its view at /celery-progress/<task_id>/
    # and its static celery_progress.js draw the import's bar from the Go worker's PROGRESS state.
    "celery_progress",
    "feeds.apps.FeedsConfig",
    "django_celery_results",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "forumads_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "forumads_site.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
        # Several processes (runserver, management commands) may write at once: wait for the lock.
        "OPTIONS": {"timeout": 20},
    }
}



def _postgres(url):
    """DATABASES["default"] for a postgres:// URL; its search_path parameter picks the schema."""
    u = urlsplit(url)
    if u.scheme not in ("postgres", "postgresql") or not u.path.strip("/"):
        raise ImproperlyConfigured(f"DJANGO_DATABASE_URL={url!r}: want postgres://user:password@host:port/name")
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    options = {k: query[k] for k in ("sslmode",) if k in query}
    if query.get("search_path"):
        options["options"] = "-c search_path=" + query["search_path"]
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.strip("/")),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": options,
    }


if os.environ.get("DJANGO_DATABASE_URL"):
    DATABASES = {"default": _postgres(os.environ["DJANGO_DATABASE_URL"])}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = "/static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"feeds": {"handlers": ["console"], "level": os.environ.get("FEEDS_LOG_LEVEL", "INFO")}},
}
