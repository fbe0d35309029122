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
# When the probe first saw a job without any success: a fresh deployment (or an emptied Redis)
# gives each job OVERDUE_PERIODS periods from then to succeed once, because beat first sends an
# interval job one period after the schedule is installed (a whole day for the daily purge).
WATCHED_SINCE = "heartbeat-watched-since:"


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
    """Every enabled job's last success and whether it is overdue at `at`. A job never seen to
    succeed is timed from when the probe first noticed that (recorded on first sight)."""
    at = at or market_clock.now()
    jobs = [job for job in JOBS if getattr(settings, job.setting, True)]
    stamps = cache.get_many([PREFIX + job.task for job in jobs] + [WATCHED_SINCE + job.task for job in jobs])
    health = {}
    for job in jobs:
        stamp = stamps.get(PREFIX + job.task)
        if stamp is None:
            since = stamps.get(WATCHED_SINCE + job.task)
            if since is None:
                since = at.astimezone(UTC).isoformat()
                cache.add(WATCHED_SINCE + job.task, since, timeout=None)
            health[job.task] = _health(job, None, _age(since, at))
        else:
            health[job.task] = _health(job, datetime.fromisoformat(stamp), _age(stamp, at))
    return health


def jobs_report(*, at: datetime | None = None) -> tuple[dict[str, dict], list[str]]:
    """What `/healthz` shows: each job's last success, and the overdue jobs that count now (during
    market hours only, see above)."""
    at = at or market_clock.now()
    health = jobs_health(at=at)
    overdue = [task for task, job in health.items() if job.overdue] if market_clock.is_market_open(at) else []
    return {task: job.as_dict() for task, job in health.items()}, overdue


def _age(stamp: str, at: datetime) -> float:
    return (at - datetime.fromisoformat(stamp)).total_seconds()


def _health(job: Job, last: datetime | None, age: float) -> JobHealth:
    """`age`: since the last success, or (never succeeded) since the job was first watched."""
    overdue = age > OVERDUE_PERIODS * job.every.total_seconds()
    return JobHealth(job.task, last, age if last else None, overdue=overdue)
