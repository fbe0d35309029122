"""Developer machine: `make run`. Secrets come from `.data/secrets.env`, made once by set-up."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "local-only-not-secret"  # noqa: F405

# Serve static files from the app folders; collectstatic is for production only.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# A webhook receiver on this machine (127.0.0.1) is how one tries webhooks out locally.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=True)
