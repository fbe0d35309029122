"""Celery tasks of analytics: adapters that parse their arguments and call one service.

`analytics.compute_targets` takes a New York date (ISO string, JSON-safe) and computes the
forensic targets of every trade closed that day. Idempotent (an upsert of the same values), so a
retry or a duplicate run is harmless. Its entry in the schedule belongs to `monitoring/schedules.py`.
"""

from datetime import date

from celery import shared_task

from . import reports, services

DAY = 24 * 3600


@shared_task(name="analytics.compute_targets", soft_time_limit=15 * 60, time_limit=20 * 60, expires=DAY,
             acks_late=True)
def compute_targets(day: str) -> str:
    closed_on = date.fromisoformat(day)
    done = services.trade_targets_compute(closed_from=closed_on, closed_to=closed_on)
    return f"{done} trade(s) closed on {closed_on}"


@shared_task(name="analytics.send_reports", soft_time_limit=10 * 60, time_limit=15 * 60, expires=DAY, acks_late=True)
def send_reports(day: str) -> str:
    """The daily (and weekly) reports of session `day` (a New York date, ISO): idempotent, as a
    late ack may run it twice."""
    sent = reports.reports_send(day=date.fromisoformat(day))
    return f"reports of {day}: {sent['daily']} daily and {sent['weekly']} weekly message(s)"
