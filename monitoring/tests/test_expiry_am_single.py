"""A single AM-settled index option (a standard monthly SPX) settles at its expiry day's opening
print, as a spread's SPX leg does (docs/spreads.md, "Expiry and assignment, in detail"); before
issue 19 it settled at the 16:00 close. A PM weekly (SPXW) still settles at the close."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokers import market as market_registry
from brokers.occ import parse_symbol
from monitoring.expiry import settle_expiries
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeEvent, TradeStatus

from .test_spread_expiry import MONTHLY, MONTHLY_CLOSE, MONTHLY_OPEN, CalendarMarket, Prices

D = Decimal


@pytest.fixture
def prices():
    return Prices()


@pytest.fixture
def books(prices, monkeypatch):
    market = CalendarMarket(prices, datetime(2026, 12, 17, 15, 0, tzinfo=UTC))  # SPX's last trading day
    monkeypatch.setattr(market_registry, "_market", market)
    return market


def _stored(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def test_a_single_spx_monthly_settles_at_the_expiry_days_open_and_an_spxw_at_the_close(trader, books, prices):
    monthly = PaperTradeFactory(owner=trader, ticker="SPX", strike=D("6000"), expiry=MONTHLY, qty=1,
                                entry_price=D("20.00"), sl_price=D("10.00"), tp_price=D("40.00"))
    weekly = PaperTradeFactory(owner=trader, ticker="SPXW", strike=D("6050"), expiry=MONTHLY, qty=1,
                               entry_price=D("10.00"), sl_price=D("5.00"), tp_price=D("40.00"))
    assert parse_symbol(monthly.option_symbol).root == "SPX" and parse_symbol(weekly.option_symbol).root == "SPXW"
    prices.opening("SPX", MONTHLY, "6030.25")
    prices.close("SPX", MONTHLY, "6080")

    assert settle_expiries(provider=prices, at=MONTHLY_OPEN - timedelta(minutes=1), market=books).settled == {}
    settle_expiries(provider=prices, at=MONTHLY_OPEN + timedelta(minutes=1), market=books)
    settled = _stored(monthly.pk)
    assert (settled.status, settled.close_reason, settled.close_price, settled.close_date) == (
        TradeStatus.CLOSED, CloseReason.EXPIRED_ITM, D("30.25"), MONTHLY_OPEN)  # not the 16:00 close's 80
    assert settled.realized_pnl == D("1025.00")
    with tenancy.system_context():
        event = TradeEvent.objects.get(trade_id=monthly.pk, new_status=TradeStatus.CLOSED)
    assert D(event.payload["underlying_opening"]) == D("6030.25")
    assert _stored(weekly.pk).status == TradeStatus.OPEN  # SPXW trades until the close

    settle_expiries(provider=prices, at=MONTHLY_CLOSE + timedelta(minutes=1), market=books)
    weekly = _stored(weekly.pk)
    assert (weekly.close_reason, weekly.close_price, weekly.close_date) == (
        CloseReason.EXPIRED_ITM, D("30.00"), MONTHLY_CLOSE)
