"""The local paper broker moves a resting stop natively: same order, new stop, matched at once."""

from decimal import Decimal

import pytest

from brokers.base import BrokerProvider, OrderStatus, StopModifyRefused
from brokers.models import PaperOrder
from brokers.tests.test_paper_broker import CONTRACT, broker, buy, exits, market  # noqa: F401 - fixtures


def test_the_paper_broker_speaks_the_whole_contract(broker):  # noqa: F811
    assert isinstance(broker, BrokerProvider)


def test_the_stop_leg_moves_in_place_and_keeps_its_id(broker, market):  # noqa: F811
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits(sl="3.00"))
    stop_id = bracket.leg("stop").id

    moved = broker.modify_stop(stop_id, Decimal("3.60"))

    assert (moved.id, moved.status, moved.stop_price) == (stop_id, OrderStatus.OPEN, Decimal("3.60"))
    assert PaperOrder.objects.get(pk=stop_id).stop_price == Decimal("3.60")
    market.set_quote(CONTRACT, "3.55", "3.70")  # above the old stop, through the new one
    assert broker.match() == 1
    done = broker.get_order(bracket.id)
    assert done.leg("stop").fill.price == Decimal("3.55") and done.leg("limit").status == OrderStatus.CANCELED


def test_given_the_ocos_own_id_its_stop_leg_moves(broker):  # noqa: F811
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits(sl="3.00"))
    moved = broker.modify_stop(bracket.id, Decimal("3.40"))
    assert moved.id == bracket.leg("stop").id and moved.stop_price == Decimal("3.40")


def test_a_stop_moved_through_the_bid_fills_at_once(broker):  # noqa: F811
    broker.place_order(buy())  # the book is 4.10 / 4.30
    bracket = broker.place_oco_order(*exits(sl="3.00"))
    moved = broker.modify_stop(bracket.leg("stop").id, Decimal("4.20"))
    assert moved.status == OrderStatus.FILLED and moved.fill.price == Decimal("4.10")


def test_a_finished_stop_is_refused_as_finalized(broker, market):  # noqa: F811
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits(sl="3.00", tp="6.50"))
    market.set_quote(CONTRACT, "6.70", "6.90")
    broker.match()  # the target fills, the stop is cancelled with it

    with pytest.raises(StopModifyRefused) as refused:
        broker.modify_stop(bracket.leg("stop").id, Decimal("3.50"))
    assert refused.value.finalized


def test_the_target_leg_is_not_a_stop(broker):  # noqa: F811
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits())
    with pytest.raises(StopModifyRefused) as refused:
        broker.modify_stop(bracket.leg("limit").id, Decimal("3.50"))
    assert not refused.value.finalized and "not a stop" in refused.value.reason
