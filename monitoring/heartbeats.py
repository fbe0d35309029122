"""When did each periodic job last finish a cycle, and is one overdue?

A worker records a heartbeat in Redis each time a job's cycle completes (not when it was skipped
or switched off). `/healthz` reads them: a job whose last success is older than `OVERDUE_PERIODS`
times its period is overdue, and that makes the probe unhealthy during market hours only: at
night most jobs have nothing to do and beat may be restarted for maintenance without paging
anybody. Redis (not the database) holds them because every worker and every web process already
reaches it, and a heartbeat write must not take a database connection from the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from . import clock as market_clock
from .schedules import JOBS, Job

OVERDUE_PERIODS = 3  # three missed cycles in a row: beat, the workers or Redis are in trouble
PREFIX = "heartbeat:"


@dataclass(frozen=True)
class JobHealth:
    task: str
    last_success: datetime | None
    age_seconds: float | None
    overdue: bool  # late by more than OVERDUE_PERIODS periods, or never seen

    def as_dict(self) -> dict:
        return {
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
            "overdue": self.overdue,
        }


def heartbeat_record(task: str, *, at: datetime | None = None) -> None:
    """Note that `task` just completed a cycle. Kept without expiry: an old beat is the signal."""
    cache.set(PREFIX + task, (at or market_clock.now()).astimezone(UTC).isoformat(), timeout=None)


def jobs_health(*, at: datetime | None = None) -> dict[str, JobHealth]:
    """Every enabled job's last success and whether it is overdue at `at` (one Redis round trip)."""
    at = at or market_clock.now()
    jobs = [job for job in JOBS if getattr(settings, job.setting, True)]
    stamps = cache.get_many([PREFIX + job.task for job in jobs])
    return {job.task: _health(job, stamps.get(PREFIX + job.task), at) for job in jobs}


def _health(job: Job, stamp: str | None, at: datetime) -> JobHealth:
    if stamp is None:
        return JobHealth(job.task, None, None, overdue=True)
    last = datetime.fromisoformat(stamp)
    age = (at - last).total_seconds()
    return JobHealth(job.task, last, age, overdue=age > OVERDUE_PERIODS * job.every.total_seconds())
