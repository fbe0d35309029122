"""What the broker says of an order becomes the trade's state: partial fills, cancels, refusals."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.base import Fill, Order, OrderStatus
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, EventKind, TradeStatus

AT = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def _entry(status, filled=0, price="4.30"):
    fill = Fill(quantity=filled, price=Decimal(price), at=AT) if filled else None
    return Order(id="77", status=OrderStatus(status), order_class="option", filled_quantity=filled, fill=fill,
                 reason="not enough buying power" if status == "rejected" else None)


@pytest.fixture
def pending(trader):
    return PaperTradeFactory(owner=trader, qty=5, status=TradeStatus.PENDING, entry_price=None, entry_date=None)


def _update(trade, order):
    with tenancy.acting_as(trade.owner_id):
        return services.trade_entry_update(trade_id=trade.pk, entry=order, actor_label="sync")


def test_a_partial_fill_keeps_the_trade_pending_with_the_filled_qty(pending):
    trade = _update(pending, _entry("partially_filled", filled=2))
    assert (trade.status, trade.filled_qty, trade.qty, trade.entry_price) == (TradeStatus.PENDING, 2, 5, None)
    with tenancy.acting_as(pending.owner_id):
        assert trade.events.last().kind == EventKind.ORDER_FILLED


def test_the_rest_cancelled_after_a_partial_fill_opens_with_what_was_bought(pending):
    trade = _update(pending, _entry("canceled", filled=2, price="4.25"))
    assert (trade.status, trade.qty, trade.filled_qty, trade.entry_price) == (TradeStatus.OPEN, 2, 2, Decimal("4.25"))
    assert trade.entry_date == AT and trade.broker_fill_price == Decimal("4.25")


def test_a_full_fill_opens_the_trade(pending):
    trade = _update(pending, _entry("filled", filled=5))
    assert (trade.status, trade.filled_qty, trade.held_qty) == (TradeStatus.OPEN, 5, 5)


@pytest.mark.parametrize(("status", "expected", "reason"), [
    ("expired", TradeStatus.CANCELED, "expired before it filled"),
    ("canceled", TradeStatus.CANCELED, "canceled before it filled"),
    ("rejected", TradeStatus.REJECTED, "not enough buying power"),
])
def test_an_entry_that_never_filled_ends_the_trade(pending, status, expected, reason):
    trade = _update(pending, _entry(status))
    assert trade.status == expected and reason in trade.status_reason
    with pytest.raises(services.InvalidTransition):  # final: nothing moves it again
        _update(pending, _entry("filled", filled=5))


def test_a_sell_that_expired_unfilled_puts_a_closing_trade_back_to_open(trader):
    trade = PaperTradeFactory(owner=trader, status=TradeStatus.CLOSING)
    with tenancy.acting_as(trader.pk):
        trade = services.close_confirm(trade_id=trade.pk, sell=_entry("expired"), actor="SYSTEM")
    assert trade.status == TradeStatus.OPEN and trade.close_reason is None


def test_a_confirmed_sell_closes_with_pnl_in_decimal(trader):
    trade = PaperTradeFactory(owner=trader, status=TradeStatus.CLOSING, qty=3, entry_price=Decimal("2.00"),
                              entry_date=datetime(2026, 11, 30, 15, 30, tzinfo=UTC))
    with tenancy.acting_as(trader.pk):
        trade = services.close_confirm(trade_id=trade.pk, sell=_entry("filled", filled=3, price="1.35"),
                                       actor="SYSTEM")
    assert trade.status == TradeStatus.CLOSED and trade.close_reason == CloseReason.MANUAL_CLOSE
    assert trade.realized_pnl == Decimal("-195.00") and trade.realized_pnl_pct == Decimal("-32.5000")
    assert trade.hold_duration_h == Decimal("24.00")
