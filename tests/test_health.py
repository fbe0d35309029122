"""`/healthz` tells a load balancer whether this process can reach PostgreSQL and Redis, and
whether the periodic jobs keep up during market hours."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.utils import OperationalError

from monitoring import clock, heartbeats, tasks
from monitoring.schedules import JOBS

TUESDAY_NOON = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 12:00 in New York, a regular session
SATURDAY_NOON = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """The probe reads the market's clock; each scenario says what time it is (a weekend unless told)."""
    cache.clear()
    moment = {"now": SATURDAY_NOON}
    monkeypatch.setattr(clock, "now", lambda: moment["now"])
    return moment


def _all_jobs_beat(at):
    for job in JOBS:
        heartbeats.heartbeat_record(job.task, at=at)


def test_healthy_when_database_and_redis_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["redis"]) == ("ok", "ok", "ok")
    assert body["market"]["forced"] is False


def test_a_forced_open_market_is_shown(client, db, settings):
    settings.FORCE_MARKET_OPEN = True
    market = client.get("/healthz").json()["market"]
    assert market == {**market, "open": True, "forced": True}


def test_unavailable_when_redis_is_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "unavailable" and response.json()["database"] == "ok"


def test_unavailable_when_the_database_is_down(client, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", refuse)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


def test_each_job_s_last_success_is_listed_and_a_fresh_set_is_healthy_in_market_hours(client, db, fixed_clock):
    fixed_clock["now"] = TUESDAY_NOON
    _all_jobs_beat(TUESDAY_NOON - timedelta(seconds=30))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["overdue"] == []
    snapshot = response.json()["jobs"]["monitoring.snapshot_prices"]
    assert snapshot == {"last_success": "2026-12-01T16:59:30+00:00", "age_seconds": 30.0, "overdue": False}


def test_a_job_three_periods_late_in_market_hours_makes_the_probe_unhealthy_and_is_named(client, db, fixed_clock):
    fixed_clock["now"] = TUESDAY_NOON
    _all_jobs_beat(TUESDAY_NOON)
    heartbeats.heartbeat_record("monitoring.snapshot_prices", at=TUESDAY_NOON - timedelta(seconds=3 * 40 + 1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["overdue"] == ["monitoring.snapshot_prices"]
    assert response.json()["database"] == response.json()["redis"] == "ok"


def test_exactly_three_periods_late_is_still_on_time(client, db, fixed_clock):
    fixed_clock["now"] = TUESDAY_NOON
    _all_jobs_beat(TUESDAY_NOON)
    heartbeats.heartbeat_record("monitoring.sync_orders", at=TUESDAY_NOON - timedelta(seconds=180))
    assert client.get("/healthz").status_code == 200


def test_a_fresh_deployment_gives_each_job_three_periods_to_succeed_once(client, db, fixed_clock):
    """Beat first sends an interval job one period after the schedule is installed (a day for the
    purge), so a job never seen to succeed is timed from when the probe first noticed it."""
    fixed_clock["now"] = TUESDAY_NOON
    _all_jobs_beat(TUESDAY_NOON)
    cache.delete(heartbeats.PREFIX + "monitoring.take_bookends")
    first = client.get("/healthz")
    assert first.status_code == 200 and first.json()["jobs"]["monitoring.take_bookends"]["last_success"] is None
    fixed_clock["now"] = TUESDAY_NOON + timedelta(seconds=3 * 60)
    _all_jobs_beat(fixed_clock["now"])
    cache.delete(heartbeats.PREFIX + "monitoring.take_bookends")
    assert client.get("/healthz").status_code == 200  # exactly three periods: still on time
    fixed_clock["now"] += timedelta(seconds=1)
    _all_jobs_beat(fixed_clock["now"])
    cache.delete(heartbeats.PREFIX + "monitoring.take_bookends")
    late = client.get("/healthz")
    assert late.status_code == 503 and late.json()["overdue"] == ["monitoring.take_bookends"]


def test_late_jobs_outside_market_hours_are_reported_but_not_unhealthy(client, db, fixed_clock):
    _all_jobs_beat(SATURDAY_NOON - timedelta(days=1))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["overdue"] == []
    assert response.json()["jobs"]["monitoring.snapshot_prices"]["overdue"] is True


def test_a_switched_off_job_is_neither_listed_nor_overdue(client, db, fixed_clock, settings):
    settings.SCHEDULE_REQUEST_FORENSICS = False
    fixed_clock["now"] = TUESDAY_NOON
    _all_jobs_beat(TUESDAY_NOON)
    cache.delete(heartbeats.PREFIX + "monitoring.request_forensics")
    response = client.get("/healthz")
    assert response.status_code == 200 and "monitoring.request_forensics" not in response.json()["jobs"]


def test_a_completed_cycle_records_its_heartbeat_and_a_skipped_one_does_not(db, settings, fixed_clock):
    fixed_clock["now"] = TUESDAY_NOON
    with tasks.exclusive("monitoring.match_paper_orders", ttl=30):
        assert tasks.match_paper_orders.apply().get().startswith("skipped")
    assert heartbeats.jobs_health()["monitoring.match_paper_orders"].last_success is None
    assert tasks.match_paper_orders.apply().get().endswith("fill(s)")
    assert heartbeats.jobs_health()["monitoring.match_paper_orders"].last_success == TUESDAY_NOON
