"""The order cycle and the paper matching split by account (monitoring/sharding.py): the beat's
coordinator asks the market once, every shard runs the unsharded cycle's code on its own
accounts, and the trades end exactly as the unsharded cycle leaves them. Real PostgreSQL, real
Redis, the local paper broker over a hand-driven market; the coordinator is the real task and its
shard tasks run in-process (`apply`), through a real worker in tests/test_faults_order_shards.py.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django_redis import get_redis_connection

from brokers.base import Greeks, Quote
from brokers.models import BrokerMode, PaperOrder
from monitoring import clock as market_clock
from monitoring import sharding, tasks
from monitoring.heartbeats import PREFIX
from monitoring.services import cycle_slot
from tests.factories import UserFactory
from tests.shard_books import IWM, QQQ, SPY, shard_book_open
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus

AT = datetime(2026, 12, 1, 15, 0, 5, tzinfo=UTC)  # Tuesday 10:00:05 in New York

pytestmark = pytest.mark.usefixtures("fresh_cache")


class _InProcessGroup:
    """What `group(...).apply_async()` sends, run here at once, last shard first."""

    sent: list = []

    def __init__(self, signatures) -> None:
        self.signatures = list(signatures)

    def apply_async(self):
        _InProcessGroup.sent.append(len(self.signatures))
        for signature in reversed(self.signatures):
            signature.apply().get()


@pytest.fixture
def market(market, monkeypatch):
    market.moment = AT
    market.set_quote(QQQ, "3.00", "3.20")
    market.set_quote(IWM, "3.00", "3.20")
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    monkeypatch.setattr(tasks, "group", _InProcessGroup)
    _InProcessGroup.sent = []
    return market


@pytest.fixture
def book(db, market):
    """Eight traders at the local paper broker: each an open SPY call (its take-profit hits this
    cycle); every second one an open QQQ put (its stop hits); every third one an IWM call whose
    market entry waits for the open (it fills this cycle and gets its bracket)."""
    trades = shard_book_open(UserFactory.create_batch(8), market)
    market.open = True
    assert {trade.status for key, trade in trades.items() if key[1] != "IWM"} == {TradeStatus.OPEN}
    assert {trade.status for key, trade in trades.items() if key[1] == "IWM"} == {TradeStatus.PENDING}
    market.set_quote(SPY, "6.60", "6.80")
    market.set_quote(QQQ, "1.80", "1.95")
    market.set_quote(IWM, "3.10", "3.30")
    market.advance(minutes=1)
    return trades


def _outcome(trades) -> dict:
    """What a cycle leaves, by trader and contract: each trade's state and its orders at the broker."""
    with tenancy.system_context():
        stored = {key: PaperTrade.objects.get(pk=trade.pk) for key, trade in trades.items()}
        orders = {key: sorted(PaperOrder.objects.filter(owner_id=trade.owner_id, option_symbol=trade.option_symbol)
                              .values_list("order_class", "side", "status", "avg_fill_price"))
                  for key, trade in stored.items()}
    return {key: (trade.status, trade.close_reason, trade.close_price, trade.entry_price, trade.realized_pnl,
                  bool(trade.bracket_order_id), orders[key]) for key, trade in stored.items()}


EXPECTED = {
    "SPY": (TradeStatus.CLOSED, CloseReason.TP_HIT, Decimal("6.50"), Decimal("4.30")),
    "QQQ": (TradeStatus.CLOSED, CloseReason.SL_HIT, Decimal("1.80"), Decimal("3.20")),
    "IWM": (TradeStatus.OPEN, None, None, Decimal("3.30")),
}


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_n_shards_leave_every_trade_as_the_unsharded_cycle_does(book, market, settings, count):
    settings.MONITOR_SHARDS = count
    asked_before = len(market.quote_requests)
    answer = tasks.sync_orders.apply().get()
    outcome = _outcome(book)
    assert {key: value[:4] for key, value in outcome.items()} == {key: EXPECTED[key[1]] for key in book}
    for (_, contract), (*_, bracket, orders) in outcome.items():
        if contract == "IWM":  # the entry filled this cycle got its one bracket, placed once
            assert bracket and [order[0] for order in orders].count("oco") == 1
    if count:
        assert f"{count} shard(s) sent" in answer and _InProcessGroup.sent == [count]
        assert len(market.quote_requests) - asked_before == 1  # the coordinator's one batch, whatever N
        slot = cycle_slot(market.moment, timedelta(seconds=60))
        assert sharding.shard_runs(job=tasks.ORDERS_JOB, slot=slot, count=count) == dict.fromkeys(range(count), 1)
        assert cache.get(PREFIX + tasks.ORDERS_JOB) is not None  # the last shard recorded the cycle
        assert len({trade.owner_id % count for trade in book.values()}) == count  # every shard had accounts
    else:
        assert len(market.quote_requests) - asked_before > 1  # unsharded: each step asks for its own


def test_a_redelivered_order_shard_places_nothing_again(book, market, settings):
    slot = cycle_slot(market.moment, timedelta(seconds=60))
    sharding.order_quotes_share(market=market, provider_factory=None, job=tasks.ORDERS_JOB, slot=slot,
                                at=market.moment, ttl=180)
    args = [slot.isoformat(), market.moment.isoformat(), 0, 2]
    first = tasks.orders_shard.apply(args=args).get()
    assert "OrdersCycleReport" in first
    before = _outcome(book)
    again = tasks.orders_shard.apply(args=args).get()
    assert again.endswith("done already") and _outcome(book) == before
    assert sharding.shard_runs(job=tasks.ORDERS_JOB, slot=slot, count=2) == {0: 1}
    mine = {key for key, trade in book.items() if trade.owner_id % 2 == 0}
    assert {key for key, value in before.items() if value[0] == TradeStatus.CLOSED} <= mine  # only shard 0's moved


def test_an_order_shard_without_its_cycle_s_quotes_does_nothing(book, market):
    slot = cycle_slot(market.moment, timedelta(seconds=60))
    before = _outcome(book)
    answer = tasks.orders_shard.apply(args=[slot.isoformat(), market.moment.isoformat(), 0, 1]).get()
    assert answer.startswith("no shared quotes") and _outcome(book) == before
    assert not sharding.shard_is_done(job=tasks.ORDERS_JOB, slot=slot, shard=sharding.Shard(0, 1))


@pytest.mark.parametrize("count", [0, 2])
def test_the_sharded_paper_matching_fills_what_the_unsharded_one_fills(book, market, settings, count):
    settings.MONITOR_SHARDS = count
    asked_before = len(market.quote_requests)
    answer = tasks.match_paper_orders.apply().get()
    with tenancy.system_context():
        filled = Counter(PaperOrder.objects.filter(status="filled").exclude(side="")  # an OCO's head has none
                         .values_list("option_symbol", "side", "avg_fill_price"))
    spy, qqq, iwm = (sum(1 for key in book if key[1] == name) for name in ("SPY", "QQQ", "IWM"))
    assert filled == Counter({
        (SPY, "buy_to_open", Decimal("4.30")): spy, (SPY, "sell_to_close", Decimal("6.50")): spy,  # take-profits
        (QQQ, "buy_to_open", Decimal("3.20")): qqq, (QQQ, "sell_to_close", Decimal("1.80")): qqq,  # stops, at the bid
        (IWM, "buy_to_open", Decimal("3.30")): iwm,  # the entries that waited for the open
    })
    if count:
        assert f"{count} shard(s) sent" in answer and len(market.quote_requests) - asked_before == 1
        slot = cycle_slot(market.moment, timedelta(seconds=20))
        assert sharding.shard_runs(job=tasks.MATCH_JOB, slot=slot, count=count) == {0: 1, 1: 1}


def test_broker_quotes_travel_through_redis_exactly(book, market):
    slot = cycle_slot(AT, timedelta(seconds=60))
    quote = Quote(symbol=SPY, bid=Decimal("4.1000"), ask=None, last=Decimal("4.2"), bid_size=3, volume=10,
                  bid_at=AT, greeks=Greeks(delta=Decimal("0.5"), gamma=None, theta=None, vega=None, rho=None,
                                           mid_iv=Decimal("0.21"), smv_vol=None, updated_at=AT), open_interest=7)
    market.quotes = lambda symbols: {SPY: quote}
    market.is_open = lambda at: True
    market.quote_requests.clear()
    sharding.order_quotes_share(market=market, provider_factory=None, job="test-job", slot=slot, at=AT, ttl=60)
    shared = sharding.SharedMarket(market, job="test-job", slot=slot)
    assert shared.quotes([SPY, QQQ]) == {SPY: quote}  # QQQ was never quoted: left out, as the market leaves it
    assert str(shared.quotes([SPY])[SPY].bid) == "4.1000"
    assert shared.now() == market.moment and shared.is_open(AT)  # the clock and calendar are the market's
    assert 0 < get_redis_connection("default").ttl(sharding._quotes_key("test-job", slot)) <= 60


def test_a_shard_reads_and_parses_each_shared_quote_once(book, market, monkeypatch):
    """A shard's steps ask the share for mostly the same contracts: the second asking reads
    nothing more from Redis and answers what a fresh read answers (a contract not shared too)."""
    slot = cycle_slot(AT, timedelta(seconds=60))
    sharding.order_quotes_share(market=market, provider_factory=None, job="test-job", slot=slot, at=AT, ttl=60)
    shared = sharding.SharedMarket(market, job="test-job", slot=slot)
    read = []
    hmget = type(shared.client).hmget
    monkeypatch.setattr(type(shared.client), "hmget", lambda client, key, keys: read.append(list(keys)) or hmget(
        client, key, keys))
    first = shared.quotes([SPY, QQQ, "NOPE261218C00001000", SPY])
    again = shared.quotes([QQQ, SPY, "NOPE261218C00001000"])
    more = shared.quotes(iter([IWM, QQQ]))
    fresh = sharding.SharedMarket(market, job="test-job", slot=slot).quotes([SPY, QQQ, IWM, "NOPE261218C00001000"])
    assert read == [[SPY, QQQ, "NOPE261218C00001000"], [IWM], [SPY, QQQ, IWM, "NOPE261218C00001000"]]
    assert set(fresh) == {SPY, QQQ, IWM}
    assert first == {SPY: fresh[SPY], QQQ: fresh[QQQ]} and again == first and more == {IWM: fresh[IWM], QQQ: fresh[QQQ]}


def test_the_coordinator_reads_one_row_a_contract_not_one_a_trade(book, market):
    """Eight traders hold the same SPY call: its symbol comes back once from each DISTINCT read
    (a model's default ordering would add its columns to the DISTINCT and read a row a trade)."""
    rows = []

    def counted(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("SELECT DISTINCT"):
            rows.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(counted):
        contracts = sharding.order_cycle_contracts()
        held = sharding.held_contracts(AT)
    assert set(contracts) == {SPY, QQQ, IWM} and set(held) == {SPY, QQQ}
    assert rows and max(rows) <= 3, rows


def test_auto_counts_the_live_monitor_workers_processes_and_falls_back_to_one(db, settings):
    stats = {"a@x": {"pool": {"max-concurrency": 4}}, "b@y": {"pool": {"max-concurrency": 2}},
             "c@z": {"pool": {"max-concurrency": 8}}}
    queues = {"a@x": [{"name": "monitor"}], "b@y": [{"name": "celery"}, {"name": "monitor"}],
              "c@z": [{"name": "enrichment"}]}
    assert sharding.monitor_processes(stats, queues) == 6  # c@z does not consume the monitor queue
    assert sharding.monitor_processes(None, None) == 0
    asked = []
    assert sharding.shard_count(3, live_processes=lambda: asked.append(1) or 9) == 3 and not asked
    assert sharding.shard_count("auto", live_processes=lambda: asked.append(1) or 6) == 6
    assert sharding.shard_count("auto", live_processes=lambda: asked.append(1) or 9) == 6  # cached a while
    assert asked == [1]
    cache.delete(sharding.WORKERS_KEY)
    assert sharding.shard_count("auto", live_processes=lambda: 0) == 1  # nobody answered: one shard
    cache.delete(sharding.WORKERS_KEY)

    def broken():
        raise ConnectionError("broker down")

    assert sharding.shard_count("auto", live_processes=broken) == 1


def test_the_order_shards_go_to_the_monitor_queue_and_are_never_on_the_beat(settings):
    from monitoring.schedules import JOBS

    for name in ("monitoring.orders_shard", "monitoring.match_paper_orders_shard"):
        assert settings.CELERY_TASK_ROUTES[name]["queue"] == "monitor"
    assert not any("shard" in job.task for job in JOBS)
    for shard_task in (tasks.orders_shard, tasks.match_paper_orders_shard):
        assert shard_task.acks_late and shard_task.reject_on_worker_lost
        assert not getattr(shard_task, "autoretry_for", ())  # never resent: it may place orders
    assert tasks.orders_shard.expires == 60 and tasks.match_paper_orders_shard.expires == 20


def test_a_reconcile_and_an_order_shard_never_run_together(book, market):
    slot = cycle_slot(market.moment, timedelta(seconds=60))
    sharding.order_quotes_share(market=market, provider_factory=None, job=tasks.ORDERS_JOB, slot=slot,
                                at=market.moment, ttl=180)
    client = get_redis_connection("default")
    client.set(f"lock:{tasks.RECONCILE_JOB}", "monitor-2@elsewhere|boot|1-abc", px=60_000)  # a reconcile at work
    before = _outcome(book)
    answer = tasks.orders_shard.apply(args=[slot.isoformat(), market.moment.isoformat(), 0, 1]).get()
    assert answer.endswith(f"skipped, {tasks.RECONCILE_JOB} is running") and _outcome(book) == before
    assert not sharding.shard_is_done(job=tasks.ORDERS_JOB, slot=slot, shard=sharding.Shard(0, 1))
    client.delete(f"lock:{tasks.RECONCILE_JOB}")

    client.set(f"lock:{tasks.orders_shard.name}:0/2", "monitor-2@elsewhere|boot|1-abc", px=60_000)  # a shard at work
    assert tasks.reconcile_orders.apply().get() == "skipped: order shards are running"
    assert _outcome(book) == before
    client.delete(f"lock:{tasks.orders_shard.name}:0/2")
    assert "SyncReport" in tasks.reconcile_orders.apply().get()


def test_a_changed_shard_count_waits_for_the_running_shards_of_the_old_one(book, market, settings):
    """Owner 6 is shard 0 of 2 and shard 0 of 3: were 3 shards sent while a shard of 2 still ran,
    one account could be synced twice at once (two brackets). The count changes only once no shard
    of the count in force runs, and a shard of a superseded count does nothing."""
    client = get_redis_connection("default")
    settings.MONITOR_SHARDS = 2
    assert "2 shard(s) sent" in tasks.sync_orders.apply().get()
    running = f"lock:{tasks.orders_shard.name}:1/2"
    client.set(running, "monitor-2@elsewhere|boot|1-abc", px=60_000)  # a shard of 2, still at work

    settings.MONITOR_SHARDS = 3
    market.moment += timedelta(seconds=60)
    assert "2 shard(s) sent" in tasks.sync_orders.apply().get()  # kept: a shard of 2 runs
    client.delete(running)
    market.moment += timedelta(seconds=60)
    assert "3 shard(s) sent" in tasks.sync_orders.apply().get()  # none runs now: the new count

    late = cycle_slot(market.moment, timedelta(seconds=60))
    before = _outcome(book)
    answer = tasks.orders_shard.apply(args=[late.isoformat(), market.moment.isoformat(), 0, 2]).get()
    assert answer.endswith("skipped, its count is superseded") and _outcome(book) == before
    assert not client.exists(f"lock:{tasks.orders_shard.name}:0/2")


def test_auto_asks_the_workers_only_for_a_cycle_that_runs(db, market, settings, monkeypatch):
    """Counting broadcasts to every worker (up to a second): not for a disabled job, nor overnight."""
    settings.MONITOR_SHARDS = sharding.AUTO
    monkeypatch.setattr(tasks, "_monitor_processes", lambda app: pytest.fail("the workers were asked"))
    setattr(settings, tasks.JOB_SETTINGS[tasks.ORDERS_JOB], False)
    assert tasks.sync_orders.apply().get() == "disabled"
    setattr(settings, tasks.JOB_SETTINGS[tasks.ORDERS_JOB], True)
    market.moment = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # a Saturday
    assert tasks.sync_orders.apply().get() == "market closed"


def test_the_unsharded_cycle_waits_for_the_running_shards_of_the_count_before(book, market, settings):
    """MONITOR_SHARDS set from 2 to 0 while a shard of 2 still syncs its accounts: the unsharded
    cycle would sync those accounts at the same moment (two brackets). It is count 0 of the same
    scheme: it skips while a shard of 2 holds its lock, runs once none does, and a shard of 2
    delivered after that does nothing."""
    client = get_redis_connection("default")
    client.set(sharding.count_key(tasks.ORDERS_JOB), 2)  # a coordinator of 2 sent this cycle's shards
    running = f"lock:{tasks.orders_shard.name}:1/2"
    client.set(running, "monitor-2@elsewhere|boot|1-abc", px=60_000)  # a shard of 2, still at work
    settings.MONITOR_SHARDS = 0
    before = _outcome(book)
    assert tasks.sync_orders.apply().get() == "skipped: shards of 2 still running"
    assert _outcome(book) == before and cache.get(PREFIX + tasks.ORDERS_JOB) is None
    assert client.get(sharding.count_key(tasks.ORDERS_JOB)) == b"2"

    client.delete(running)
    market.moment += timedelta(seconds=60)
    assert "OrdersCycleReport" in tasks.sync_orders.apply().get()  # none runs now: count 0 is in force
    assert client.get(sharding.count_key(tasks.ORDERS_JOB)) == b"0"
    assert {key: value[:4] for key, value in _outcome(book).items()} == {key: EXPECTED[key[1]] for key in book}

    late = cycle_slot(market.moment, timedelta(seconds=60))
    answer = tasks.orders_shard.apply(args=[late.isoformat(), market.moment.isoformat(), 0, 2]).get()
    assert answer.endswith("skipped, its count is superseded")
    assert not client.exists(f"lock:{tasks.orders_shard.name}:0/2")


def test_the_unsharded_snapshot_and_matching_are_count_0_too(db, market, settings):
    client = get_redis_connection("default")
    settings.MONITOR_SHARDS = 0
    jobs = ((tasks.SNAPSHOT_JOB, tasks.snapshot_shard), (tasks.MATCH_JOB, tasks.match_paper_orders_shard))
    for job, shard_task in jobs:
        client.set(sharding.count_key(job), 3)
        client.set(f"lock:{shard_task.name}:2/3", "monitor-2@elsewhere|boot|1-abc", px=60_000)
    assert tasks.snapshot_prices.apply().get() == "skipped: shards of 3 still running"
    assert tasks.match_paper_orders.apply().get() == "skipped: shards of 3 still running"


def test_the_unsharded_job_held_off_by_a_shard_lock_warns_with_its_holder_and_time_left(db, market, settings,
                                                                                       caplog):
    """A shard lock a killed worker left behind holds the unsharded job off, heartbeat-less, until
    it expires: the skip is a WARNING naming the lock, its holder and the seconds it has left."""
    client = get_redis_connection("default")
    settings.MONITOR_SHARDS = 0
    client.set(sharding.count_key(tasks.MATCH_JOB), 3)
    key = f"lock:{tasks.match_paper_orders_shard.name}:2/3"
    client.set(key, "monitor-2@elsewhere|boot|41-abc", px=2_400_000)
    caplog.set_level("INFO", logger="monitoring.tasks")
    assert tasks.match_paper_orders.apply().get() == "skipped: shards of 3 still running"
    [warning] = [record for record in caplog.records if record.levelname == "WARNING"]
    assert f"{key} held by monitor-2@elsewhere|boot|41-abc, expires in 2400 s" in warning.getMessage()


def _sold(contract: str) -> list:
    with tenancy.system_context():
        return sorted(PaperOrder.objects.filter(option_symbol=contract, side="sell_to_close", status="filled")
                      .values_list("avg_fill_price", flat=True))


def test_a_late_matching_shard_skips_its_slot_rather_than_fill_at_old_quotes(book, market, settings):
    """A matching shard fills at the coordinator's quotes and stamps the fill now: started more than
    MATCH_QUOTES_MAX_AGE seconds after they were taken, it would sell the QQQ stops at a bid the
    market has left. It skips its slot (not noted done, no heartbeat) and the next slot fills at
    the fresh bid."""
    settings.MATCH_QUOTES_MAX_AGE = 10
    quoted_at = market.moment
    slot = cycle_slot(quoted_at, timedelta(seconds=20))
    sharding.order_quotes_share(market=market, provider_factory=None, job=tasks.MATCH_JOB, slot=slot,
                                at=quoted_at, ttl=60, broker_modes=[BrokerMode.LOCAL_PAPER])
    market.set_quote(QQQ, "1.70", "1.85")  # the market moved on meanwhile
    args = [slot.isoformat(), quoted_at.isoformat(), 0, 1]

    market.moment = quoted_at + timedelta(seconds=11)
    assert tasks.match_paper_orders_shard.apply(args=args).get().endswith("skipped, its quotes are 11.0 s old")
    assert _sold(QQQ) == [] and _sold(SPY) == []
    assert not sharding.shard_is_done(job=tasks.MATCH_JOB, slot=slot, shard=sharding.Shard(0, 1))
    assert cache.get(PREFIX + tasks.MATCH_JOB) is None

    settings.MONITOR_SHARDS = 1
    market.moment = quoted_at + timedelta(seconds=20)  # the next slot's coordinator quotes afresh
    assert "1 shard(s) sent" in tasks.match_paper_orders.apply().get()
    qqq = sum(1 for key in book if key[1] == "QQQ")
    assert _sold(QQQ) == [Decimal("1.70")] * qqq  # the stops, at the fresh bid


def test_a_matching_shard_within_the_bound_fills(book, market, settings):
    settings.MATCH_QUOTES_MAX_AGE = 10
    slot = cycle_slot(market.moment, timedelta(seconds=20))
    sharding.order_quotes_share(market=market, provider_factory=None, job=tasks.MATCH_JOB, slot=slot,
                                at=market.moment, ttl=60, broker_modes=[BrokerMode.LOCAL_PAPER])
    args = [slot.isoformat(), market.moment.isoformat(), 0, 1]
    market.moment += timedelta(seconds=10)
    assert tasks.match_paper_orders_shard.apply(args=args).get() == "'15 fill(s)'"
    assert _sold(QQQ) == [Decimal("1.80")] * sum(1 for key in book if key[1] == "QQQ")


def test_a_slow_quote_fetch_does_not_age_the_quotes_it_fetched(book, market, settings, monkeypatch):
    """A slow or rate-limited provider answers 12 s after the coordinator started: the quotes are
    fresh when its shards read them (their age counts from the answer, not from the start), so
    the shards match, although the cycle began more than MATCH_QUOTES_MAX_AGE seconds earlier."""
    settings.MATCH_QUOTES_MAX_AGE, settings.MONITOR_SHARDS = 10, 1
    answer = market.quotes

    def slow_quotes(symbols):
        quotes = answer(symbols)
        market.moment += timedelta(seconds=12)  # the provider took 12 s to answer
        return quotes

    monkeypatch.setattr(market, "quotes", slow_quotes)
    assert "1 shard(s) sent" in tasks.match_paper_orders.apply().get()
    assert _sold(QQQ) == [Decimal("1.80")] * sum(1 for key in book if key[1] == "QQQ")
    assert cache.get(PREFIX + tasks.MATCH_JOB) is not None  # the slot is complete


def test_a_coordinator_delayed_into_a_slot_already_sent_skips(book, market, settings, caplog):
    """Beat's next coordinator, queued behind a slow one, runs in a slot whose shards the slow one
    already sent: it skips, says so and logs it (no second quote batch, no shards that would only
    find their slot done). One that died after sharing its quotes but before sending is redone."""
    settings.MONITOR_SHARDS = 2
    slot = cycle_slot(market.moment, timedelta(seconds=60))
    sharding.order_quotes_share(market=market, provider_factory=None, job=tasks.ORDERS_JOB, slot=slot,
                                at=market.moment, ttl=180)  # a first try died here, before its group
    assert "2 shard(s) sent" in tasks.sync_orders.apply().get() and _InProcessGroup.sent == [2]
    after, asked = _outcome(book), len(market.quote_requests)

    market.moment += timedelta(seconds=30)  # still the same 60-second slot
    caplog.set_level("INFO", logger="monitoring.tasks")
    assert tasks.sync_orders.apply().get() == f"skipped: the {slot.isoformat()} slot was sent already"
    assert _InProcessGroup.sent == [2] and len(market.quote_requests) == asked and _outcome(book) == after
    assert any("skipped" in record.getMessage() and "sent already" in record.getMessage()
               for record in caplog.records)

    market.moment += timedelta(seconds=30)  # the next slot is sent as usual
    assert "2 shard(s) sent" in tasks.sync_orders.apply().get() and _InProcessGroup.sent == [2, 2]
