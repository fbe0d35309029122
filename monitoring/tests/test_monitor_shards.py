"""The snapshot cycle split by account (monitoring/sharding.py): every held trade marked exactly
once a slot, as the unsharded cycle marks it, from quotes fetched once and shared through Redis.
Real PostgreSQL as the worker role, real Redis; the shard tasks run in-process here
(`apply`), through a real worker in tests/test_faults_shards.py."""

import subprocess
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection

from monitoring import sharding, tasks
from monitoring.heartbeats import PREFIX
from monitoring.models import PriceSnapshot
from monitoring.schedules import JOBS
from monitoring.services import cycle_slot, schedules_install, snapshot_positions
from tests.factories import PaperTradeFactory, UserFactory, marks_spread_trade
from tests.fakes.market import HandOptionQuotes
from tradeoptions import tenancy
from trades.models import PaperTrade, StrategyType, TradeLeg, TradeStatus

MIDDAY = datetime(2026, 12, 1, 17, 0, 5, tzinfo=UTC)  # Tuesday 12:00:05 in New York
JOB = tasks.SNAPSHOT_JOB
CALL, PUT = "SPY261218C00570000", "QQQ261218P00500000"
SHORT_PUT, LONG_PUT = "SPY261218P00500000", "SPY261218P00495000"
UNQUOTED = {"ticker": "IWM", "option_type": "CALL", "strike": Decimal("250"), "expiry": date(2026, 12, 18)}
BOOK = {CALL: ("4.80", "5.00"), PUT: ("2.05", "2.15"), SHORT_PUT: ("2.00", "2.20"), LONG_PUT: ("1.10", "1.30")}

pytestmark = pytest.mark.usefixtures("fresh_cache")


@pytest.fixture
def book(db):
    """Seven traders: singles on two contracts each, two credit spreads, one trade the source
    does not quote, and trades no cycle marks (pending, closed)."""
    held = []
    users = UserFactory.create_batch(7)
    for n, user in enumerate(users):
        held.append(PaperTradeFactory(owner=user, ticker="SPY", option_type="CALL", strike=Decimal("570"),
                                      expiry=date(2026, 12, 18), entry_price=Decimal("4.00"), qty=1 + n % 3))
        held.append(PaperTradeFactory(owner=user, ticker="QQQ", option_type="PUT", strike=Decimal("500"),
                                      expiry=date(2026, 12, 18), entry_price=Decimal("2.50")))
    for user in users[2:4]:
        held.append(marks_spread_trade(user, [(SHORT_PUT, "SHORT", 1, "3.00"), (LONG_PUT, "LONG", 1, "1.50")],
                                       strategy_type=StrategyType.VERTICAL, qty=2))
    held.append(PaperTradeFactory(owner=users[5], **UNQUOTED, entry_price=Decimal("3")))
    PaperTradeFactory(owner=users[0], status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    return held


def _sharded_cycle(provider, at: datetime, count: int) -> list[str]:
    """The coordinator's quoting, then every shard task in-process, in a shuffled order."""
    slot = cycle_slot(at)
    sharding.snapshot_quotes_share(provider=provider, job=JOB, slot=slot, ttl=120)
    order = list(range(count))[::-1]
    return [tasks.snapshot_shard.apply(args=[slot.isoformat(), at.isoformat(), i, count]).get() for i in order]


def _state(slot: datetime) -> dict:
    """What a cycle leaves: each trade's snapshot of `slot` (but its time) and each mark."""
    with tenancy.system_context():
        snapshots = {row["trade_id"]: row for row in PriceSnapshot.objects.filter(timestamp=slot).values(
            "trade_id", "owner_id", "kind", "mark_price", "bid", "ask", "delta", "gamma", "theta", "vega", "iv",
            "underlying", "source", "delayed", "quote_time")}
        marks = {row.pop("id"): row for row in PaperTrade.objects.values(
            "id", "current_price", "current_bid", "current_ask", "unrealized_pnl", "max_gain", "max_drawdown")}
        legs = {row.pop("id"): row for row in TradeLeg.objects.values("id", "bid", "ask", "mark", "iv")}
    return {"snapshots": snapshots, "marks": marks, "legs": legs}


def _forget_marks() -> None:
    with tenancy.system_context():
        PaperTrade.objects.update(current_price=None, current_bid=None, current_ask=None, unrealized_pnl=None,
                                  max_gain=None, max_drawdown=None)
        TradeLeg.objects.update(bid=None, ask=None, mark=None, iv=None, marked_at=None)


def _snapshots_by_trade() -> Counter:
    with tenancy.system_context():
        return Counter(PriceSnapshot.objects.values_list("trade_id", "timestamp"))


@pytest.mark.parametrize("count", [1, 2, 4])
def test_every_held_trade_is_marked_once_a_slot_as_the_unsharded_cycle_marks_it(book, count):
    provider = HandOptionQuotes(BOOK)
    unsharded = snapshot_positions(provider=provider, at=MIDDAY)
    assert unsharded.written == len(book) - 1 and unsharded.unquoted == 1  # the IWM call has no quote
    expected = _state(cycle_slot(MIDDAY))
    _forget_marks()

    later = MIDDAY + timedelta(seconds=40)
    answers = _sharded_cycle(provider, later, count)
    assert len(provider.calls) == 2  # one quote request a cycle, however many shards
    assert sorted(provider.calls[1]) == sorted(provider.calls[0])  # the same contracts, once each
    assert len(answers) == count and all("SnapshotReport" in answer for answer in answers)
    assert _state(cycle_slot(later)) == expected
    assert set(_snapshots_by_trade().values()) == {1}  # one row a trade a slot, none twice
    assert len({trade.owner_id % count for trade in book}) == count  # every shard had accounts to mark


def test_quotes_travel_through_redis_exactly(db):
    provider = HandOptionQuotes({CALL: ("4.8000", "5.1")})
    slot = cycle_slot(MIDDAY)
    original = provider.option_quotes([CALL])
    sharding.cycle_quotes_share(job=JOB, slot=slot, quotes=original, delayed=True, ttl=60)
    shared = sharding.SharedQuotes(job=JOB, slot=slot)
    back = shared.option_quotes([CALL, PUT])
    assert back == original and shared.delayed  # PUT was never quoted: left out, as the provider leaves it
    assert str(back[CALL].bid) == "4.8000" and back[CALL].last is None and back[CALL].quote_time.tzinfo is not None
    assert 0 < get_redis_connection("default").ttl(sharding._quotes_key(JOB, slot)) <= 60


def test_a_shard_redelivered_after_it_finished_does_nothing(book):
    provider = HandOptionQuotes(BOOK)
    slot = cycle_slot(MIDDAY)
    sharding.snapshot_quotes_share(provider=provider, job=JOB, slot=slot, ttl=120)
    first = tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 0, 2]).get()
    assert "SnapshotReport" in first
    with tenancy.system_context():
        mine = PriceSnapshot.objects.filter(timestamp=slot)
        assert mine.exists() and {owner % 2 for owner in mine.values_list("owner_id", flat=True)} == {0}
        mine.delete()  # were the copy to run again, these would come back
    again = tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 0, 2]).get()
    assert again.endswith("done already")
    assert not _snapshots_by_trade()


def test_the_last_shard_to_finish_records_the_cycle_s_heartbeat(book):
    slot = cycle_slot(MIDDAY)
    sharding.snapshot_quotes_share(provider=HandOptionQuotes(BOOK), job=JOB, slot=slot, ttl=120)
    for index in (2, 0):
        tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), index, 3]).get()
        assert cache.get(PREFIX + JOB) is None
    tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 1, 2]).get()  # another count's set
    assert cache.get(PREFIX + JOB) is None
    tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 1, 3]).get()
    assert cache.get(PREFIX + JOB) is not None


def test_two_copies_of_a_shard_never_run_at_once(book, monkeypatch):
    monkeypatch.setitem(tasks._holder, "node", "monitor-1@here")
    slot = cycle_slot(MIDDAY)
    sharding.snapshot_quotes_share(provider=HandOptionQuotes(BOOK), job=JOB, slot=slot, ttl=120)
    lock = f"lock:monitoring.snapshot_shard:{sharding.Shard(0, 1)}"
    client = get_redis_connection("default")
    client.set(lock, "monitor-2@elsewhere|another-boot|4242-abc", px=60_000)  # a live copy on another worker
    answer = tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 0, 1]).get()
    assert answer.endswith("skipped, still running") and not _snapshots_by_trade()

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pool process of this very worker that has died since it took the lock
    client.set(lock, f"{tasks._node()}|{tasks._holder['boot']}|{dead.pid}-abc", px=60_000)
    answer = tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 0, 1]).get()
    assert "SnapshotReport" in answer and set(_snapshots_by_trade().values()) == {1}
    assert client.get(lock) is None  # released after the redone work


def test_a_shard_without_its_cycle_s_quotes_writes_nothing_and_asks_no_provider(book):
    slot = cycle_slot(MIDDAY)
    answer = tasks.snapshot_shard.apply(args=[slot.isoformat(), MIDDAY.isoformat(), 0, 1]).get()
    assert answer.startswith("no shared quotes") and not _snapshots_by_trade()
    assert not sharding.shard_is_done(job=JOB, slot=slot, shard=sharding.Shard(0, 1))  # a later copy may do it


def test_the_beat_still_schedules_one_snapshot_job_and_no_shard(db, settings):
    assert [job.task for job in JOBS].count(JOB) == 1
    assert not any("shard" in job.task for job in JOBS)
    schedules_install()
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task=JOB).count() == 1
    assert not PeriodicTask.objects.filter(task__contains="shard").exists()
    assert settings.CELERY_TASK_ROUTES["monitoring.snapshot_shard"]["queue"] == "monitor"
