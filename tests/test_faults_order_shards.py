"""The sharded order cycle through a real Celery worker on Redis (monitoring/sharding.py): the
beat's one `monitoring.sync_orders` coordinates, N shard tasks run the order cycle on their own
accounts, the trades of every tenant end as the unsharded cycle leaves them, the market is asked
once a cycle whatever N, and a pool process killed in the middle of a shard has its shard redone
once, with no order placed twice (acks late, reject on worker lost, done once per slot).

The worker is `tests.fakes.fault_worker` (a real `celery worker` on the test Redis and the test
database as the worker role), over a hand-driven market whose quotes have moved since the trades
were opened here: every SPY take-profit hits, every QQQ stop hits, every IWM entry that waited for
the open fills (and the order sync gives it its bracket).
"""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers.models import PaperOrder
from monitoring import sharding, tasks
from monitoring.heartbeats import PREFIX
from monitoring.services import cycle_slot
from tests.factories import UserFactory
from tests.fakes.fault_worker import WAIT, FaultWorker
from tests.shard_books import IWM, QQQ, SPY, shard_book_open
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus

OPENED = datetime(2026, 12, 1, 15, 0, 5, tzinfo=UTC)  # Tuesday 10:00:05 in New York: the trades open
AT = OPENED + timedelta(minutes=1)  # the worker's frozen clock: the cycle's slot
MOVED = {SPY: ["6.60", "6.80"], QQQ: ["1.80", "1.95"], IWM: ["3.10", "3.30"]}
MARKET_CALLS = "tests.fakes.market:HandDrivenMarket.quotes"
PROVIDER_CALLS = ("monitoring.marketdata.simulated:SimulatedProvider.underlying_quotes,"
                  "monitoring.marketdata.simulated:SimulatedProvider.option_quotes")
EXPECTED = {
    "SPY": (TradeStatus.CLOSED, CloseReason.TP_HIT, Decimal("6.50"), Decimal("4.30")),
    "QQQ": (TradeStatus.CLOSED, CloseReason.SL_HIT, Decimal("1.80"), Decimal("3.20")),
    "IWM": (TradeStatus.OPEN, None, None, Decimal("3.30")),
}


@pytest.fixture
def fault_worker(redis_client, settings):
    worker = FaultWorker(redis_client, settings.REDIS_URL, quotes=MOVED, now=AT)
    yield worker
    worker.close()


@pytest.fixture
def book(transactional_db, redis_client, market):
    """Nine traders at the local paper broker: an open SPY call each, an open QQQ put every second
    one, a market entry on an IWM call placed before the open every third one. The worker's clock
    is frozen, so each scenario starts without an earlier one's slot, locks or heartbeat in Redis;
    the reconcile a starting worker sends is held back (it would do the shards' work)."""
    cache.delete(PREFIX + tasks.ORDERS_JOB)
    for pattern in ("*cycle-*", "*lock:monitoring.*"):
        for key in redis_client.scan_iter(match=pattern):
            redis_client.delete(key)
    cache.set("reconcile-at-start", 1, 600)
    market.moment = OPENED
    market.set_quote(QQQ, "3.00", "3.20")
    market.set_quote(IWM, "3.00", "3.20")
    trades = shard_book_open(UserFactory.create_batch(9), market)
    yield trades
    cache.delete("reconcile-at-start")


def outcome(trades) -> dict:
    with tenancy.system_context():
        stored = {key: PaperTrade.objects.get(pk=trade.pk) for key, trade in trades.items()}
    return {key: (trade.status, trade.close_reason, trade.close_price, trade.entry_price)
            for key, trade in stored.items()}


def orders_placed(trades) -> Counter:
    """Every order at the broker by trade and kind: one bracket a trade, one fill an exit."""
    with tenancy.system_context():
        return Counter(PaperOrder.objects.filter(owner_id__in={t.owner_id for t in trades.values()})
                       .values_list("owner_id", "option_symbol", "order_class", "side", "status"))


def until_the_cycle_is_done(worker: FaultWorker) -> None:
    deadline = time.monotonic() + WAIT
    while cache.get(PREFIX + tasks.ORDERS_JOB) is None:
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the order cycle never completed\n{worker.log.read_text()[-3000:]}"
        time.sleep(0.2)


def expected_orders(trades) -> Counter:
    """What the unsharded cycle leaves at the broker (docs: the local paper broker's orders)."""
    placed = Counter()
    for (_, contract), trade in trades.items():
        owner, symbol = trade.owner_id, trade.option_symbol
        placed[(owner, symbol, "option", "buy_to_open", "filled")] += 1
        placed[(owner, symbol, "oco", "", "filled" if contract != "IWM" else "open")] += 1
        if contract == "IWM":  # the bracket the sync placed for the entry filled this cycle
            placed[(owner, symbol, "option", "sell_to_close", "open")] += 2
        else:  # the exit that filled, the other leg cancelled with it
            placed[(owner, symbol, "option", "sell_to_close", "filled")] += 1
            placed[(owner, symbol, "option", "sell_to_close", "canceled")] += 1
    return placed


@pytest.mark.parametrize("shards", [0, 1, 2, 4])
def test_n_shards_end_every_trade_as_the_unsharded_cycle_from_one_market_call(book, fault_worker, shards):
    fault_worker.start(pool=("--pool", "prefork", "--concurrency", "2"), count=f"{MARKET_CALLS},{PROVIDER_CALLS}",
                       env={"MONITOR_SHARDS": str(shards)})
    tasks.sync_orders.apply_async(expires=300)
    until_the_cycle_is_done(fault_worker)
    assert outcome(book) == {key: EXPECTED[key[1]] for key in book}
    assert orders_placed(book) == expected_orders(book)
    assert fault_worker.counted(PROVIDER_CALLS.split(",")[0]) == 0  # no stock is trailed: no stock price asked
    assert fault_worker.counted(PROVIDER_CALLS.split(",")[1]) == 0  # the order cycle's quotes are the market's
    if shards:
        assert fault_worker.counted(MARKET_CALLS) == 1  # one batch for the cycle, whatever N
        slot = cycle_slot(AT, timedelta(seconds=60))
        assert sharding.shard_runs(job=tasks.ORDERS_JOB, slot=slot, count=shards) == dict.fromkeys(range(shards), 1)
        assert f"{shards} shard(s) sent" in fault_worker.log.read_text()


@pytest.mark.parametrize("hook", [
    "monitoring.services:match_paper_orders:1:after",  # the shard's fills committed, the sync not yet run
    "monitoring.services:sync_orders:1:after",  # trades moved and a bracket placed, the shard not noted done
])
def test_a_pool_process_killed_mid_order_shard_is_redone_once_placing_nothing_twice(book, fault_worker, hook):
    fault_worker.start(hook=hook, pool=("--pool", "prefork", "--concurrency", "1"), count=MARKET_CALLS,
                       env={"MONITOR_SHARDS": "2"})
    tasks.sync_orders.apply_async(expires=300)
    fault_worker.wait_for("paused")
    fault_worker.kill_paused_process()  # the worker lives on; Celery re-queues the lost shard
    until_the_cycle_is_done(fault_worker)
    assert outcome(book) == {key: EXPECTED[key[1]] for key in book}
    assert orders_placed(book) == expected_orders(book)  # no bracket, no exit placed twice
    assert fault_worker.counted(MARKET_CALLS) == 1  # the redone shard read the shared quotes
    slot = cycle_slot(AT, timedelta(seconds=60))
    assert sharding.shard_runs(job=tasks.ORDERS_JOB, slot=slot, count=2) == {0: 1, 1: 1}  # the killed try never ended
    log = fault_worker.log.read_text()
    assert "WorkerLostError" in log or "exited prematurely" in log, log[-3000:]
    assert "took over the lock of a pool process that died" in log


def test_auto_spreads_the_cycle_over_the_live_worker_s_processes(book, fault_worker):
    cache.delete(sharding.WORKERS_KEY)
    fault_worker.start(pool=("--pool", "prefork", "--concurrency", "2"), env={"MONITOR_SHARDS": "auto"})
    tasks.sync_orders.apply_async(expires=300)
    until_the_cycle_is_done(fault_worker)
    assert "2 shard(s) sent" in fault_worker.log.read_text()  # one worker of two processes answered
    assert outcome(book) == {key: EXPECTED[key[1]] for key in book}
    cache.delete(sharding.WORKERS_KEY)
