"""The snapshot job, end to end through a real Celery worker on Redis."""

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from monitoring import tasks
from monitoring.models import PriceSnapshot
from tests.factories import PaperTradeFactory, UserFactory
from tradeoptions import tenancy

ROOT = Path(__file__).resolve().parents[2]


def _url_of_this_test_database() -> str:
    db = connection.settings_dict
    if db["HOST"].startswith("/"):
        return f"postgres://{db['USER']}@/{quote(db['HOST'], safe='')}/{db['NAME']}"
    return f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker():
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.test",
                   "DATABASE_URL": _url_of_this_test_database(), "FORCE_MARKET_OPEN": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradeoptions", "worker", "--pool", "solo", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--hostname", f"test-{os.getpid()}@%h"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_snapshots_every_held_position(worker):
    held = [PaperTradeFactory(owner=UserFactory(), entry_price=Decimal("5")) for _ in range(3)]
    tasks.snapshot_prices.apply_async(expires=300)  # a cold worker on a busy machine may take a while
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline and written < len(held):
        time.sleep(0.5)
        with tenancy.system_context():
            written = PriceSnapshot.objects.filter(trade__in=held).count()
        assert worker.poll() is None, worker.stdout.read()
    assert written == len(held)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_syncs_orders_and_cancels_an_orphan(worker):
    from django.utils import timezone

    from brokers.models import PaperOrder
    from trades.models import EventKind, TradeEvent, TradeStatus

    trade = PaperTradeFactory(owner=UserFactory(), status=TradeStatus.CLOSED, close_price=Decimal("5"),
                              close_date=timezone.now(), close_reason="MANUAL_CLOSE")
    with tenancy.acting_as(trade.owner_id):  # an exit left working after its trade closed
        orphan = PaperOrder.objects.create(
            owner_id=trade.owner_id, order_class="option", tag=f"to-{trade.pk}-tp", option_symbol=trade.option_symbol,
            underlying="SPY", side="sell_to_close", order_type="limit", duration="gtc", quantity=1,
            limit_price=Decimal("999"), created_at=timezone.now(), updated_at=timezone.now())
    tasks.sync_orders.apply_async(expires=300)
    deadline = time.monotonic() + 60
    status = "open"
    while time.monotonic() < deadline and status == "open":
        time.sleep(0.5)
        with tenancy.acting_as(trade.owner_id):
            status = PaperOrder.objects.get(pk=orphan.pk).status
        assert worker.poll() is None, worker.stdout.read()
    assert status == "canceled"
    with tenancy.acting_as(trade.owner_id):
        events = TradeEvent.objects.filter(trade=trade, kind=EventKind.ORDER_CANCELED, actor_label="orphan_guard")
        assert events.exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fills_the_entry_context_of_a_trade_just_opened(worker, monkeypatch):
    """The open commits, its hook queues the collection on Redis, the worker fills the context as of the entry."""
    from datetime import datetime, timedelta

    from brokers import market as market_registry
    from brokers.occ import build_symbol
    from monitoring import clock as market_clock
    from tests.fakes.market import HandDrivenMarket
    from trades.models import PaperTrade
    from trades.services import TradeOpenInput, trade_open

    hand = HandDrivenMarket(market_clock.now() - timedelta(minutes=1))  # the worker's simulated market: real time
    expiry = (hand.moment + timedelta(days=40)).date()
    expiry += timedelta(days=(4 - expiry.weekday()) % 7)
    hand.set_quote(build_symbol("NVDA", expiry, "CALL", Decimal("140")), "4.10", "4.30")
    monkeypatch.setattr(market_registry, "_market", hand)
    data = TradeOpenInput(ticker="NVDA", option_type="CALL", strike=Decimal("140"), expiry=expiry, qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
    trade = trade_open(user=UserFactory(), data=data, market=hand).trade
    deadline = time.monotonic() + 60
    regime = {}
    while time.monotonic() < deadline and not regime:
        time.sleep(0.5)
        with tenancy.acting_as(trade.owner_id):
            regime = PaperTrade.objects.get(pk=trade.pk).market_regime
        assert worker.poll() is None, worker.stdout.read()
    assert regime["sector_etf"] == "XLK" and regime["source"] == "simulated"
    with tenancy.acting_as(trade.owner_id):
        signals = PaperTrade.objects.get(pk=trade.pk).signals_snapshot
    assert 0 <= signals["daily"]["rsi14"] <= 100
    assert datetime.fromisoformat(signals["as_of"]) <= hand.moment
