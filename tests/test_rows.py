"""`tradeoptions.rows.instances_of` builds the very instances a queryset would, field by field."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from brokers.models import PaperOrder
from tests.factories import ClosedTradeFactory, PaperOrderFactory, PaperTradeFactory
from tradeoptions import tenancy
from tradeoptions.rows import instances_of
from trades.models import PaperTrade, TradeStatus

AT = datetime(2026, 12, 1, 15, 0, 7, 123456, tzinfo=UTC)
EXPIRY = date(2026, 12, 18)


def _fields(instance):
    return [(field.attname, type(getattr(instance, field.attname)), repr(getattr(instance, field.attname)))
            for field in type(instance)._meta.concrete_fields]


@pytest.mark.django_db
def test_trades_and_orders_read_as_json_are_the_querysets_instances(trader, other_trader):
    PaperTradeFactory(owner=trader, expiry=EXPIRY, entry_date=AT, status=TradeStatus.PENDING,
                      entry_price=Decimal("0.0500"), signals_snapshot={"rsi": 61.25, "note": "été", "n": [1, None]})
    PaperTradeFactory(owner=other_trader, expiry=EXPIRY, entry_date=AT, bracket_order_id="42",
                      current_price=Decimal("1.10"), unrealized_pnl=Decimal("-620.00"),
                      exit_policy={"trail": "0.25", "steps": [{"at": 1.5}]},
                      close_in_flight_since=AT, attention_reason="a trader's words, \"quoted\"\nover lines")
    ClosedTradeFactory(owner=trader, expiry=EXPIRY, entry_date=AT, close_date=AT, realized_pnl=Decimal("220.00"))
    PaperOrderFactory(owner=trader, created_at=AT, updated_at=AT, limit_price=Decimal("9999.0000"))
    with tenancy.system_context():
        for queryset in (PaperTrade.objects.all(), PaperTrade.objects.filter(owner=trader),
                         PaperTrade.objects.filter(status="nothing"), PaperOrder.objects.all()):
            expected = list(queryset.order_by("id"))
            read = instances_of(queryset)
            assert [type(one) for one in read] == [type(one) for one in expected]
            assert [_fields(one) for one in read] == [_fields(one) for one in expected]
            assert all(not one._state.adding and one._state.db == "default" for one in read)
            assert [{**one.__dict__, "_state": None} for one in read] == [
                {**one.__dict__, "_state": None} for one in expected]
    assert len(expected) == 1 and len(_fields(expected[0])) > 20


@pytest.mark.django_db
def test_a_field_with_a_loader_of_its_own_is_refused_not_loaded_raw(monkeypatch):
    """An encrypted text field reports itself as a TextField; loading its stored text as is would
    hand out ciphertext as the value."""
    from django.db.models import CharField

    monkeypatch.setattr(CharField, "from_db_value", lambda self, value, expression, connection: value,
                        raising=False)
    with tenancy.system_context(), pytest.raises(TypeError, match="CharField"):
        instances_of(PaperTrade.objects.all())
