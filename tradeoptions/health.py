"""`/healthz`: can this process reach PostgreSQL and Redis right now, and are the periodic jobs
keeping up? 200 if so, else 503 with what failed.

Each periodic job's last successful cycle is listed (the app that runs them registers the report in
`tradeoptions.registry`; monitoring does); during market
hours a job more than three periods late makes the probe unhealthy and is named in `overdue`.
Outside market hours late jobs are reported but do not fail the probe.

Served by a middleware placed first, before sessions, the tenant transaction and host checks,
so a probe gets an honest answer even while the database is down (when every later layer
would fail with a 500).
"""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers

from . import registry

logger = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"database": _database, "redis": _redis}


def _market() -> dict:
    """Informational: is the market open, and is that forced (FORCE_MARKET_OPEN, never in production)."""
    try:
        status = registry.market_status()
    except Exception as error:  # the probe must answer even if the calendar cannot
        logger.warning("market status unavailable: %s", type(error).__name__)
        return {"error": "market status unavailable"}
    return {"open": status.is_open, "forced": status.forced, "next_open": status.next_open.isoformat(),
            "next_close": status.next_close.isoformat()}


def _jobs() -> tuple[dict, list[str]]:
    """Each job's last success, and the overdue ones that count now (market hours only)."""
    try:
        return registry.jobs_report()
    except Exception as error:  # Redis down is already reported by its own check
        logger.warning("job heartbeats unavailable: %s", type(error).__name__)
        return {"error": "job heartbeats unavailable"}, []


def health_report() -> JsonResponse:
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # any failure is an outage to report, not a crash
            logger.warning("health check %s failed: %s", name, type(error).__name__)
            results[name] = "unavailable"
    jobs, overdue = _jobs()
    for task in overdue:
        logger.warning("health check: %s is overdue", task)
    healthy = all(value == "ok" for value in results.values()) and not overdue
    body = {"status": "ok" if healthy else "unavailable", **results, "market": _market(), "jobs": jobs,
            "overdue": overdue}
    response = JsonResponse(body, status=200 if healthy else 503)
    add_never_cache_headers(response)
    return response


class HealthCheckMiddleware:
    PATH = "/healthz"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == self.PATH and request.method in ("GET", "HEAD"):
            return health_report()
        return self.get_response(request)
