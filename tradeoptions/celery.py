"""The Celery application: Redis broker, beat schedules in the database (django-celery-beat)."""

import os

from celery import Celery

from . import logs  # noqa: F401  (every line a task writes carries its task id)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.local")

app = Celery("tradeoptions")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
