"""The Celery application: Redis broker, beat schedules in the database (django-celery-beat)."""

import os
import sys
from pathlib import Path

from celery import Celery

from . import logs  # noqa: F401  (every line a task writes carries its task id)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.local")
# Workers and beat connect as the worker role (DATABASE_WORKER_URL). Decided by the command line,
# not by importing this module: every process imports it (the package's __init__ does), the web
# server's too.
if Path(sys.argv[0]).name == "celery" or Path(sys.argv[0]).parent.name == "celery":
    os.environ.setdefault("TRADEOPTIONS_PROCESS", "worker")

app = Celery("tradeoptions")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
