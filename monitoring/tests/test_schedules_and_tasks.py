"""Beat's schedule comes from code, installs idempotently, and the tasks keep their hygiene."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from monitoring import services, tasks
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.models import PriceSnapshot, SnapshotKind
from monitoring.schedules import JOBS
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy


@pytest.fixture(autouse=True)
def fresh_cache():
    """Missed-bookend notes and job locks live in Redis: start each scenario without them."""
    cache.clear()


def test_install_schedules_is_idempotent_and_honours_switches(db, settings):
    call_command("install_schedules", "--apply", stdout=StringIO())
    call_command("install_schedules", "--apply", stdout=StringIO())
    installed = {task.name: task for task in PeriodicTask.objects.all()}
    assert set(installed) == {job.task for job in JOBS}
    snapshot = installed["monitoring.snapshot_prices"]
    assert snapshot.interval.every == 40 and snapshot.expire_seconds == 40 and snapshot.enabled
    settings.SCHEDULE_SNAPSHOT_PRICES = False
    call_command("install_schedules", "--apply", stdout=StringIO())
    assert not PeriodicTask.objects.get(name="monitoring.snapshot_prices").enabled


def test_a_job_no_longer_listed_is_retired(db):
    every_5s = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="monitoring.old_job", task="monitoring.old_job", interval=every_5s)
    out = StringIO()
    call_command("install_schedules", "--apply", stdout=out)
    assert "retired monitoring.old_job" in out.getvalue()
    assert not PeriodicTask.objects.get(name="monitoring.old_job").enabled


def test_every_task_has_a_name_limits_and_expiry():
    for job in JOBS:
        task = tasks.__dict__[job.task.rsplit(".", 1)[-1]]
        assert task.name == job.task
        assert task.expires == job.every.total_seconds()
        assert task.soft_time_limit < task.time_limit < 3600  # below Redis' visibility timeout
        assert task.acks_late and task.reject_on_worker_lost


def test_a_cycle_skips_while_the_previous_one_still_runs(db, settings, caplog):
    settings.FORCE_MARKET_OPEN = True
    with tasks.exclusive("monitoring.snapshot_prices", ttl=30) as held:
        assert held
        assert tasks.snapshot_prices.apply().get() == "skipped: previous cycle still running"
    assert "still running" in caplog.text
    assert tasks.snapshot_prices.apply().get().startswith("SnapshotReport")


def test_a_switched_off_job_does_nothing(db, settings):
    settings.SCHEDULE_TAKE_BOOKENDS = False
    assert tasks.take_bookends.apply().get() == "disabled"


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


PRE, POST = SnapshotKind.PRE_MARKET, SnapshotKind.POST_MARKET


@pytest.mark.parametrize(
    ("at", "taken"),
    [
        # 9:20 Tuesday: today's is not due; Monday's post-market one is caught up (its quotes still hold).
        (utc(2026, 12, 1, 14, 20), [(POST, utc(2026, 11, 30, 21, 5))]),
        (utc(2026, 12, 1, 14, 26), [(PRE, utc(2026, 12, 1, 14, 25))]),  # 9:26
        (utc(2026, 12, 1, 21, 4), []),  # 16:04: the post-market bookend is not due, 9:25's long missed
        (utc(2026, 12, 1, 21, 6), [(POST, utc(2026, 12, 1, 21, 5))]),  # 16:06
        (utc(2026, 11, 27, 18, 6), [(POST, utc(2026, 11, 27, 18, 5))]),  # early close: 13:05
        # Thanksgiving: nothing of its own; Wednesday's post-market bookend can still be caught up.
        (utc(2026, 11, 26, 18, 0), [(POST, utc(2026, 11, 25, 21, 5))]),
        (utc(2026, 11, 2, 14, 26), [(PRE, utc(2026, 11, 2, 14, 25))]),  # after the DST switch: 9:25 EST
        (utc(2026, 10, 30, 20, 6), [(POST, utc(2026, 10, 30, 20, 5))]),  # before it: 16:05 EDT
    ],
)
def test_bookends_follow_the_real_calendar(trader, at, taken):
    PaperTradeFactory(owner=trader, expiry=date(2026, 12, 18), entry_price=Decimal("5"))
    provider = SimulatedProvider(seed="bookends", clock=lambda: at)
    for _ in range(2):  # a duplicate beat changes nothing
        services.take_due_bookends(provider=provider, at=at)
    with tenancy.system_context():
        assert list(PriceSnapshot.objects.order_by("timestamp").values_list("kind", "timestamp")) == taken


def test_a_post_market_bookend_is_quoted_once_however_often_beat_fires(trader):
    PaperTradeFactory(owner=trader, expiry=date(2026, 12, 18))
    calls = []

    class Counting(SimulatedProvider):
        def option_quotes(self, contracts):
            calls.append(contracts)
            return super().option_quotes(contracts)

    start = utc(2026, 12, 1, 21, 5)
    for minute in range(240):  # every minute for four hours after the close
        at = start + timedelta(minutes=minute)
        services.take_due_bookends(provider=Counting(seed="bookends", clock=lambda at=at: at), at=at)
    assert len(calls) == 1


def test_a_bookend_found_too_late_is_recorded_as_missed_once(trader, caplog):
    PaperTradeFactory(owner=trader, expiry=date(2026, 12, 18))
    late = utc(2026, 12, 1, 15, 0)  # 10:00, after the open: Monday's post and today's pre are both gone
    provider = SimulatedProvider(seed="bookends", clock=lambda: late)
    first = services.take_due_bookends(provider=provider, at=late)
    second = services.take_due_bookends(provider=provider, at=late + timedelta(minutes=1))
    assert [(report.kind, report.missed) for report in first] == [(PRE, True), (POST, True), (PRE, True)]
    assert second == []
    assert caplog.text.count("missed") == 3


def test_a_bookend_taken_with_nothing_held_is_not_called_missed(db, caplog):
    provider = SimulatedProvider(seed="bookends", clock=lambda: utc(2026, 12, 1, 14, 26))
    assert services.take_due_bookends(provider=provider, at=utc(2026, 12, 1, 14, 26))[-1].taken.trades == 0
    assert services.take_due_bookends(provider=provider, at=utc(2026, 12, 1, 15, 0)) == []


def test_the_daily_purge_forgets_only_expired_idempotency_keys(trader, other_trader):
    from trades.models import IdempotencyKey
    from trades.services import idempotency_claim, idempotency_store

    for user, key in ((trader, "old"), (other_trader, "old"), (trader, "fresh")):
        claim = idempotency_claim(user=user, key=key, fingerprint="f" * 64)
        idempotency_store(claim=claim, status=201, body={}, trade=None)
    with tenancy.system_context():
        IdempotencyKey.objects.filter(key="old").update(created_at=datetime.now(UTC) - timedelta(days=3))
    assert tasks.purge_idempotency_keys.apply().get() == "2 key(s) purged"
    with tenancy.system_context():
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


def test_forensics_are_requested_once_per_session_after_its_close(db):
    before_close = utc(2026, 12, 1, 20, 0)  # 15:00 New York: only Monday's session is due
    assert services.forensic_days_due(at=before_close) == [date(2026, 11, 30)]
    after_close = utc(2026, 12, 1, 21, 20)  # 16:20
    assert services.forensic_days_due(at=after_close) == [date(2026, 12, 1)]
    assert services.forensic_days_due(at=after_close + timedelta(minutes=10)) == []
    early_close = utc(2026, 11, 27, 18, 20)  # 13:20 on the early close after Thanksgiving
    assert date(2026, 11, 27) in services.forensic_days_due(at=early_close)


def test_the_forensics_task_asks_analytics_by_name(db, monkeypatch, settings):
    sent = []
    monkeypatch.setattr(tasks.request_forensics.app, "send_task", lambda name, args: sent.append((name, args)))
    monkeypatch.setattr(tasks.market_clock, "now", lambda: utc(2026, 12, 1, 21, 20))
    assert tasks.request_forensics.apply().get().startswith("forensics requested")
    assert sent == [("analytics.compute_targets", ["2026-11-30"]), ("analytics.compute_targets", ["2026-12-01"])]


def test_a_restarted_worker_frees_only_the_locks_its_killed_boot_left(monkeypatch):
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    monkeypatch.setitem(tasks._holder, "node", "worker-a@host")
    with tasks.exclusive("monitoring.take_bookends", ttl=60):  # held by this boot: a live cycle
        client.set("lock:monitoring.snapshot_prices", "worker-a@host|an-earlier-boot|x", ex=60)  # killed
        client.set("lock:monitoring.sync_orders", "worker-b@host|its-boot|y", ex=60)  # another node's
        assert tasks.release_locks_left_by("worker-a@host") == ["monitoring.snapshot_prices"]
        assert client.get("lock:monitoring.take_bookends") is not None
    assert client.get("lock:monitoring.sync_orders") is not None
    client.delete("lock:monitoring.sync_orders")
