"""The Celery application: Redis broker, beat schedules in the database (django-celery-beat)."""

import gc
import os
import sys
from pathlib import Path

from celery import Celery
from celery.signals import worker_init

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

# A worker's cycles build tens of thousands of short-lived rows and orders at once; with Python's
# default thresholds (700 allocations) the collector walks them again and again, about a quarter of
# the order sync's CPU at 10,000 trades (docs/benchmarks.md). Rows hold no reference cycles worth
# chasing sooner, so young objects are collected ~70× less often; what the worker loaded at start
# (Django, the apps) is frozen out of every collection. Set before the pool forks, so every child
# inherits it.
WORKER_GC_THRESHOLD = (50_000, 20, 20)


@worker_init.connect
def _tune_the_collector(**kwargs) -> None:
    gc.set_threshold(*WORKER_GC_THRESHOLD)
    gc.freeze()
