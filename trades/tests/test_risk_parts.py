"""The risk limits count a trade's parts (docs/pnl.md, "Partial closes"): a part sold on a trade
still open reaches the daily loss limit the day it sells, a trade closed today whose earlier parts
sold on earlier days counts only today's, and heat and premium count only the contracts held."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from tests.factories import ClosedTradeFactory, PaperTradeFactory, TradeExitPartFactory, account_with
from tradeoptions import tenancy
from trades.models import ExitPartReason, TradeStatus
from trades.services.risk import active_exposure, realized_today, risk_room

# 11:00 in New York on a Tuesday; yesterday is Monday.
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False):
        yield



def _room(user, account):
    with tenancy.acting_as(user.pk):
        return risk_room(user=user, account=account, trade_risk=Decimal(0), now=timezone.now())


def test_three_of_four_sold_at_a_loss_today_reach_the_daily_loss_limit(trader, clock):
    trade = PaperTradeFactory(owner=trader, status=TradeStatus.OPEN, qty=4, filled_qty=4, exit_filled_qty=3,
                              exit_filled_price=Decimal("3.80"))  # 4 @ 4.20, stop 3.00
    TradeExitPartFactory(trade=trade, quantity=3, price=Decimal("3.80"), reason=ExitPartReason.PARTIAL_CLOSE,
                         filled_at=timezone.now() - timedelta(hours=1), pnl_gross=Decimal("-120.00"),
                         commission=Decimal("3.90"))
    account = account_with(trader, daily_loss_limit=Decimal("100"), heat_limit_pct=Decimal("100"))

    room = _room(trader, account)

    assert room.realized_today == Decimal("-123.90")
    assert room.breach().limit == "daily_loss_limit"
    # The contract still held is the only one at risk: (4.20 − 3.00) × 1 × 100, premium 4.20 × 100.
    assert (room.heat, room.positions) == (Decimal("120.00"), 1)


def test_a_trade_closed_today_counts_only_the_parts_sold_today(trader, clock):
    trade = ClosedTradeFactory(owner=trader, qty=2, filled_qty=2, entry_date=NOW - timedelta(days=2),
                               close_date=NOW - timedelta(hours=1), close_price=Decimal("3.85"),
                               realized_pnl=Decimal("-70.00"))
    TradeExitPartFactory(trade=trade, quantity=1, price=Decimal("3.70"), reason=ExitPartReason.PARTIAL_CLOSE,
                         filled_at=NOW - timedelta(days=1), pnl_gross=Decimal("-50.00"), commission=Decimal("1.30"))
    TradeExitPartFactory(trade=trade, quantity=1, price=Decimal("4.00"), reason=ExitPartReason.FINAL,
                         filled_at=NOW - timedelta(hours=1), pnl_gross=Decimal("-20.00"), commission=Decimal("1.30"))
    # A trade closed today before parts were recorded counts by its own net P&L.
    ClosedTradeFactory(owner=trader, close_date=NOW - timedelta(hours=2), close_price=Decimal("4.00"),
                       realized_pnl=Decimal("-40.00"))
    # Closed yesterday: not today's.
    ClosedTradeFactory(owner=trader, close_date=NOW - timedelta(days=1), realized_pnl=Decimal("-500.00"))

    with tenancy.acting_as(trader.pk):
        assert realized_today(trader, now=timezone.now()) == Decimal("-61.30")  # −21.30 − 40
    account = account_with(trader, daily_loss_limit=Decimal("62"))
    assert _room(trader, account).breach() is None


def test_a_pending_trade_counts_its_whole_qty_and_a_partly_sold_one_what_it_holds(trader, clock):
    PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, qty=3, entry_price=None,
                      planned_entry_price=Decimal("2.00"), sl_price=Decimal("1.50"))
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN, qty=4, filled_qty=4, exit_filled_qty=1,
                      exit_filled_price=Decimal("5.00"))
    with tenancy.acting_as(trader.pk):
        exposure = active_exposure(trader)
    # Pending: (2.00 − 1.50) × 3 × 100 = 150; open: (4.20 − 3.00) × 3 × 100 = 360.
    assert exposure["heat"] == Decimal("510.00")
    assert exposure["premium"] == Decimal("600.00") + Decimal("1260.00")
