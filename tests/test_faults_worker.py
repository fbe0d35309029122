"""A real Celery worker killed with SIGKILL in the middle of a monitor cycle, three times over:
nothing lost, nothing doubled.

The worker is `python -m tests.fakes.fault_worker` (a real `celery worker` on the test Redis and
the test database) whose market is frozen at one instant with the take-profit reached. A hook
stops it at a chosen line and says so in Redis; the test then kills it there, restarts it, and
sends the job again, as beat would on its next tick.
"""

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers.models import PaperOrder
from monitoring import clock as market_clock
from monitoring import tasks
from monitoring.models import PriceSnapshot
from tests.fakes.fault_worker import WAIT, FaultWorker
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_open

CONTRACT = "SPY261218C00570000"
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
CYCLE_AT = AT + timedelta(minutes=1)
TAKE_PROFIT_REACHED = {CONTRACT: ["6.60", "6.80"]}


@pytest.fixture
def fault_worker(redis_client, settings):
    worker = FaultWorker(redis_client, settings.REDIS_URL, quotes=TAKE_PROFIT_REACHED, now=CYCLE_AT)
    yield worker
    worker.close()


@pytest.fixture
def market(market, monkeypatch):
    """The shared hand-driven market (root conftest), and the clock the tasks read at its moment."""
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    return market


def open_positions(users, market, per_user: int) -> list[PaperTrade]:
    trades = []
    for user in users:
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(
                owner=user, defaults={"account_balance": Decimal("100000"), "max_positions": 50})
        for _ in range(per_user):
            data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18),
                                  qty=1, sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
            trades.append(trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM,
                                     actor_label="scanner").trade)
    return trades


def until(condition, what: str, worker: FaultWorker) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert worker.process is None or worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{what}\n{worker.log.read_text()[-3000:]}"
        time.sleep(0.2)


def statuses(trades) -> Counter:
    with tenancy.system_context():
        return Counter(PaperTrade.objects.filter(pk__in=[t.pk for t in trades]).values_list("status", flat=True))


def filled_exits(trades) -> int:
    with tenancy.system_context():
        return PaperOrder.objects.filter(owner_id__in={t.owner_id for t in trades}, status="filled",
                                         side="sell_to_close").count()


def snapshots(trades) -> int:
    with tenancy.system_context():
        return PriceSnapshot.objects.filter(trade__in=[t.pk for t in trades]).count()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_three_times_mid_cycle_loses_and_doubles_nothing(trader, other_trader, market, fault_worker):
    cache.delete("reconcile-at-start")
    trades = open_positions([trader, other_trader], market, per_user=2)
    with tenancy.system_context():
        orders_before = PaperOrder.objects.count()
        events_before = Counter(TradeEvent.objects.values_list("trade_id", "kind", "new_status"))
    assert statuses(trades) == {TradeStatus.OPEN: 4}

    # 1. Killed inside the snapshot's transaction: its rows are written but never committed.
    fault_worker.start(hook="monitoring.services:_update_marks:1:before")
    tasks.snapshot_prices.apply_async(expires=300)
    fault_worker.wait_for("paused")
    fault_worker.kill()
    assert snapshots(trades) == 0
    started = time.monotonic()

    # 2. Restarted: the killed boot's job locks are released, so the snapshot runs at once (not
    #    after the lock's minutes-long TTL) and writes each trade once. Then the order cycle is
    #    killed while the second take-profit's fill is in its open transaction at the paper broker:
    #    the first fill committed, the second rolled back, and no trade has heard of either.
    fault_worker.start(hook="monitoring.services:match_group:2:after")
    tasks.snapshot_prices.apply_async(expires=300)
    until(lambda: snapshots(trades) == 4, "the snapshot after the restart never ran", fault_worker)
    recovered = time.monotonic() - started
    tasks.sync_orders.apply_async(expires=300)
    fault_worker.wait_for("paused")
    fault_worker.kill()
    assert filled_exits(trades) == 1 and statuses(trades) == {TradeStatus.OPEN: 4}

    # 3. Restarted and killed again, right after the first trade's close committed (the sync
    #    writes each trade in a transaction of its own).
    fault_worker.start(hook="monitoring.sync:sync_trade:1:after")
    tasks.sync_orders.apply_async(expires=300)
    fault_worker.wait_for("paused")
    fault_worker.kill()
    assert filled_exits(trades) == 4
    assert statuses(trades) == {TradeStatus.CLOSED: 1, TradeStatus.OPEN: 3}

    # Restarted a last time, without a hook: the next cycles finish the work.
    fault_worker.start()
    tasks.sync_orders.apply_async(expires=300)
    tasks.snapshot_prices.apply_async(expires=300)
    until(lambda: statuses(trades) == {TradeStatus.CLOSED: 4}, "the trades were never all closed", fault_worker)

    with tenancy.system_context():
        for trade in PaperTrade.objects.filter(pk__in=[t.pk for t in trades]):
            # The paper broker fills a take-profit limit at its price.
            assert (trade.close_reason, trade.close_price) == (CloseReason.TP_HIT, Decimal("6.50"))
        events = Counter(TradeEvent.objects.values_list("trade_id", "kind", "new_status"))
        new_events = events - events_before
        assert all(count == 1 for count in events.values()), events  # no transition recorded twice
        # One close per trade, and nothing else but the entry context the opens asked for.
        closes = Counter({key: n for key, n in new_events.items() if key[1] != EventKind.CONTEXT_CAPTURED})
        assert sorted(closes.values()) == [1] * 4
        assert {status for _, _, status in closes} == {TradeStatus.CLOSED}
        assert PaperOrder.objects.count() == orders_before  # no order placed again
        assert filled_exits(trades) == 4
    assert snapshots(trades) == 4
    print(f"\nfirst job after a SIGKILL ran {recovered:.1f} s after the kill (worker start included)")
