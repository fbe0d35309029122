"""Expiry settlement on an early-close day, through the order task (eager), over the simulated market.

Friday 2026-11-27, the day after Thanksgiving, closes at 13:00: contracts expiring that day stop
trading then, and are settled from the underlying's 13:00 close.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest
from django.core.cache import cache

from brokers import market as market_registry
from brokers.models import PaperFill, PaperOrder
from brokers.occ import build_symbol
from brokers.paper import LocalPaperBroker
from monitoring import clock as market_clock
from monitoring import services, tasks
from monitoring.market import MarketDataMarket
from monitoring.marketdata import provider_for
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, CloseReason, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_open

EXPIRY = date(2026, 11, 27)
MORNING = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 in New York
CLOSE = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 13:00: the early close


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at


@pytest.fixture
def clock(monkeypatch):
    """One injected clock for every layer: the provider, the market, and the tasks' `now`."""
    cache.clear()
    ticking = Clock(MORNING)
    market = MarketDataMarket(provider_for("simulated", clock=ticking), clock=ticking)
    monkeypatch.setattr(market_registry, "_market", market)
    monkeypatch.setattr(market_clock, "now", ticking)
    return ticking


def _spot(at):
    return provider_for("simulated", clock=lambda: at).underlying_quotes(["SPY"])["SPY"].last


def _open(user, option_type, strike, sl=None):
    market = market_registry.default_market()
    quote = market.quotes([build_symbol("SPY", EXPIRY, option_type, strike)]).popitem()[1]
    data = TradeOpenInput(ticker="SPY", option_type=option_type, strike=strike, expiry=EXPIRY, qty=1,
                          sl_price=sl or max((quote.ask / 10).quantize(Decimal("0.01"), ROUND_DOWN), Decimal("0.01")),
                          tp_price=(quote.ask * Decimal("3")).quantize(Decimal("0.01")))
    return trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM, actor_label="scanner").trade


def _trade(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def test_expiring_positions_settle_at_the_early_close_otm_at_zero_and_itm_at_intrinsic(trader, clock):
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"account_balance": Decimal("1000000"),
                                                                          "heat_limit_pct": Decimal("50")})
    # The simulated market is deterministic: pick strikes in and out of the money at the close.
    low, high = sorted([_spot(MORNING), _spot(CLOSE)])
    itm = _open(trader, "CALL", (low - 8).quantize(Decimal("1")))
    otm = _open(trader, "PUT", (low - 10).quantize(Decimal("1")))
    assert itm.status == otm.status == TradeStatus.OPEN and itm.bracket_order_id and otm.bracket_order_id

    clock.at = CLOSE - timedelta(minutes=1)
    tasks.sync_orders.apply().get()
    assert [_trade(t.pk).status for t in (itm, otm)] == [TradeStatus.OPEN] * 2  # not before the cutoff

    clock.at = CLOSE + timedelta(minutes=1)
    result = tasks.sync_orders.apply().get()
    assert "EXPIRED" in result
    close = _spot(CLOSE)
    itm, otm = _trade(itm.pk), _trade(otm.pk)
    assert (otm.status, otm.close_reason, otm.close_price) == (TradeStatus.CLOSED, CloseReason.EXPIRED, Decimal(0))
    assert (itm.status, itm.close_reason) == (TradeStatus.CLOSED, CloseReason.EXPIRED_ITM)
    assert itm.close_price == close - itm.strike > 0 and itm.close_date == CLOSE
    assert itm.realized_pnl == ((itm.close_price - itm.entry_price) * 100).quantize(Decimal("0.01"))
    assert otm.realized_pnl == -otm.entry_price * 100
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.filter(status__in=["open", "pending", "partially_filled"]).exists()
        settled = TradeEvent.objects.filter(trade=itm, new_status=TradeStatus.CLOSED).get()
    assert settled.payload["source"] == "EXPIRY" and Decimal(settled.payload["underlying_close"]) == close
    assert not itm.attention_reason and not otm.attention_reason  # an expired bracket is no alarm
    with tenancy.acting_as(trader.pk):  # the paper broker's own books agree: same price, nothing held
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("1000000"))
        assert broker.get_positions() == []
        settlements = PaperFill.objects.filter(filled_at=CLOSE, side="sell_to_close")
        assert {fill.option_symbol: fill.price for fill in settlements} == {
            itm.option_symbol: itm.close_price, otm.option_symbol: Decimal(0)}
        assert broker.get_account_balance().close_pl == (itm.realized_pnl + otm.realized_pnl) - sum(
            fill.commission for fill in PaperFill.objects.all())

    versions = (itm.version, otm.version)
    clock.at = CLOSE + timedelta(minutes=2)
    tasks.sync_orders.apply().get()  # idempotent
    assert (_trade(itm.pk).version, _trade(otm.pk).version) == versions


def test_nothing_expires_on_a_holiday_and_the_cycle_rests_overnight(trader, clock):
    clock.at = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # Thanksgiving
    assert tasks.sync_orders.apply().get().endswith("skipped='market closed')")
    report = services.settle_expiries(provider=provider_for("simulated", clock=clock), at=clock.at)
    assert report.settled == {} and report.deferred == 0


def test_a_contract_dated_good_friday_settles_at_thursdays_close(trader, monkeypatch):
    """Good Friday 2026-04-03 has no session: its contracts expire at Thursday's 16:00 EDT close,
    and must be settled then, not at Monday's open."""
    from tests.factories import PaperTradeFactory

    cache.clear()
    thursday_close = datetime(2026, 4, 2, 20, 0, tzinfo=UTC)
    at = Clock(thursday_close - timedelta(minutes=1))
    monkeypatch.setattr(market_registry, "_market", MarketDataMarket(provider_for("simulated", clock=at), clock=at))
    trade = PaperTradeFactory(owner=trader, expiry=date(2026, 4, 3), qty=1)
    assert services.settle_expiries(provider=provider_for("simulated", clock=at), at=at.at).settled == {}
    at.at = thursday_close
    report = services.settle_expiries(provider=provider_for("simulated", clock=at), at=at.at)
    assert sum(report.settled.values()) == 1
    settled = _trade(trade.pk)
    assert settled.status == TradeStatus.CLOSED and settled.close_date == thursday_close
