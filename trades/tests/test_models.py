"""What the database refuses to store, whatever the code above it does."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.utils import ProgrammingError
from django.utils import timezone

from tests.factories import PaperTradeFactory, TradeEventFactory
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeEvent, TradeStatus


@pytest.fixture
def open_trade(trader):
    return PaperTradeFactory(owner=trader)


def _refused(trade, **changes):
    with tenancy.acting_as(trade.owner_id), pytest.raises(IntegrityError), transaction.atomic():
        PaperTrade.objects.filter(pk=trade.pk).update(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"qty": 0},
        {"entry_price": Decimal("-0.01")},
        {"sl_price": Decimal("-1")},
        {"close_price": Decimal("-0.05")},
        {"current_bid": Decimal("-0.05")},
        {"status": "SOMETHING"},
        {"option_type": "BOTH"},
        {"close_reason": "BORED", "status": TradeStatus.CLOSING},
        {"broker_mode": "CASINO"},
        {"version": 0},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_the_database_refuses_impossible_values(open_trade, changes):
    _refused(open_trade, **changes)


def test_a_closed_trade_needs_its_close_price_date_and_reason(open_trade):
    _refused(open_trade, status=TradeStatus.CLOSED)
    _refused(open_trade, status=TradeStatus.CLOSED, close_price=Decimal("5"), close_reason="TP_HIT")
    with tenancy.acting_as(open_trade.owner_id):
        PaperTrade.objects.filter(pk=open_trade.pk).update(
            status=TradeStatus.CLOSED, close_price=Decimal("5"), close_date=timezone.now(), close_reason="TP_HIT"
        )


def test_an_open_trade_needs_its_fill(trader):
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperTradeFactory(owner=trader, status=TradeStatus.OPEN, entry_price=None)


def test_a_pending_trade_has_no_close_reason(trader):
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, close_reason="TP_HIT")


def test_an_idempotency_key_is_unique_per_owner(trader, other_trader):
    PaperTradeFactory(owner=trader, idempotency_key="scan-42")
    PaperTradeFactory(owner=other_trader, idempotency_key="scan-42")  # another user's key space
    PaperTradeFactory(owner=trader, idempotency_key=None)
    PaperTradeFactory(owner=trader, idempotency_key=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperTradeFactory(owner=trader, idempotency_key="scan-42")


def test_the_occ_symbol_is_derived_and_stored(trader):
    trade = PaperTradeFactory(owner=trader, ticker="SPY", option_type="PUT", strike=Decimal("12.5"),
                              expiry=date(2026, 12, 18))
    assert trade.option_symbol == "SPY261218P00012500"
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get(pk=trade.pk).option_symbol == "SPY261218P00012500"


def test_a_new_trade_starts_at_version_one(trader):
    assert PaperTradeFactory(owner=trader).version == 1


def test_trade_events_are_append_only_in_the_orm(trader):
    event = TradeEventFactory(trade=PaperTradeFactory(owner=trader))
    with tenancy.acting_as(trader.pk):
        with pytest.raises(TypeError):
            event.save()
        with pytest.raises(TypeError):
            event.delete()
        with pytest.raises(TypeError):
            TradeEvent.objects.filter(pk=event.pk).update(kind="ORDER_FILLED")
        with pytest.raises(TypeError):
            TradeEvent.objects.filter(pk=event.pk).delete()


def test_trade_events_are_append_only_in_the_database(trader):
    event = TradeEventFactory(trade=PaperTradeFactory(owner=trader))
    for statement in ("UPDATE trades_tradeevent SET kind = 'NOTE' WHERE id = %s",
                      "DELETE FROM trades_tradeevent WHERE id = %s"):
        with tenancy.acting_as(trader.pk), pytest.raises(ProgrammingError, match="permission denied"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [event.pk])
