"""Production: refuses to start without real secrets; `manage.py check --deploy` is clean."""

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False


def _require_secret_key(value: str) -> str:
    if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure"):
        raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters.")
    return value


def _require_encryption_keys(keys: list[str]) -> list[str]:
    if not keys:
        raise ImproperlyConfigured("ENCRYPTION_KEYS (or ENCRYPTION_KEY) must be set to Fernet keys.")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(f"ENCRYPTION_KEYS entry {position} is not a valid Fernet key.") from None
    return keys


# One JSON object per log line, for the log collector (LOG_FORMAT=text to read them by eye).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405

SECRET_KEY = _require_secret_key(SECRET_KEY)  # noqa: F405
ENCRYPTION_KEYS = _require_encryption_keys(ENCRYPTION_KEYS)  # noqa: F405

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
