"""The Celery application: Redis broker, beat schedules in the database (django-celery-beat)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.local")

app = Celery("tradeoptions")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
