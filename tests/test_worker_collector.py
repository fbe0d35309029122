"""A worker tunes Python's collector once at start (tradeoptions/celery.py): its cycles build tens
of thousands of short-lived objects, and the default thresholds walk them over and over."""

import gc

from celery.signals import worker_init

from tradeoptions import celery


def test_a_starting_worker_collects_young_objects_less_often_and_freezes_what_it_loaded():
    assert any(ref() is celery._tune_the_collector for _, ref in worker_init.receivers)  # on worker start
    before = gc.get_threshold()
    try:
        # Called as the signal calls it: sent for real, Celery's Django fixup would want a worker.
        celery._tune_the_collector(signal=worker_init, sender=None)
        assert gc.get_threshold() == celery.WORKER_GC_THRESHOLD
        assert gc.get_freeze_count() > 0  # Django and the apps, loaded before the pool forks
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
