"""POST /api/trades/{id}/adjust: every branch, including the ones that must not leave a naked position."""

from decimal import Decimal

import pytest

from brokers.base import BrokerUnavailable, OrderRejected
from brokers.models import PaperOrder
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades.models import EventKind, PaperTrade, TradeEvent, TradeStatus

from .conftest import CONTRACT


@pytest.fixture
def broker(scripted_broker, trader):
    return scripted_broker(trader)


@pytest.fixture
def opened(api_as, trader, broker, open_body):
    """Alice's trade at 4.30 with its bracket 3.00 / 6.50; the bid is 4.10."""
    body = api_as(trader).post("/api/trades", open_body(), format="json").json()
    broker.calls.clear()
    return body


def _adjust(api_as, user, trade, **changes):
    return api_as(user).post(f"/api/trades/{trade['id']}/adjust", {"version": trade["version"], **changes},
                             format="json")


def _working_brackets(user):
    """(stop, limit) prices of every working OCO of the user."""
    with tenancy.acting_as(user.pk):
        heads = PaperOrder.objects.filter(order_class="oco", status="open")
        return [tuple(sorted((leg.order_type, leg.stop_price or leg.limit_price) for leg in head.legs.all()))
                for head in heads]


def _trade(user, trade_id):
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(pk=trade_id)


def test_a_new_stop_replaces_the_oco_and_is_logged(api_as, trader, opened, broker):
    response = _adjust(api_as, trader, opened, new_sl="3.50")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["sl_price"] == "3.5000" and body["tp_price"] == "6.5000" and body["override_count"] == 1
    assert body["version"] == opened["version"] + 1 and body["bracket_order_id"] != opened["bracket_order_id"]
    assert _working_brackets(trader) == [(("limit", Decimal("6.5")), ("stop", Decimal("3.5")))]
    adjusted = body["events"][-1]
    assert adjusted["kind"] == EventKind.BRACKET_ADJUSTED
    assert adjusted["payload"]["from"] == {"sl_price": "3.0000", "tp_price": "6.5000"}
    assert adjusted["payload"]["to"] == {"sl_price": "3.5000", "tp_price": "6.5000"}
    assert broker.calls == ["cancel_order", "place_oco_order"]


def test_both_legs_can_move_at_once(api_as, trader, opened):
    body = _adjust(api_as, trader, opened, new_sl="3.80", new_tp="5.00").json()
    assert (body["sl_price"], body["tp_price"]) == ("3.8000", "5.0000")


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"new_sl": "4.20"}, "new_sl", "bracket_would_fill_immediately"),  # above the 4.10 bid: fires at once
        ({"new_sl": "4.10"}, "new_sl", "bracket_would_fill_immediately"),
        ({"new_tp": "4.00"}, "new_tp", "bracket_would_fill_immediately"),  # at or below the bid: fills at once
        ({"new_sl": "7.00"}, "new_sl", "invalid"),  # above the take-profit
        ({"new_sl": "-1"}, "new_sl", "min_value"),
    ],
    ids=["sl-above-bid", "sl-at-bid", "tp-below-bid", "sl-above-tp", "negative"],
)
def test_refusals_before_the_broker_change_nothing(api_as, trader, opened, broker, changes, field, code):
    response = _adjust(api_as, trader, opened, **changes)
    assert response.status_code == 400, response.json()
    (error,) = response.json()["errors"]
    assert error["attr"] == field and (error["code"] == code or code == "required")
    assert broker.calls == [] and _trade(trader, opened["id"]).version == opened["version"]


def test_an_empty_adjust_is_told_beside_both_inputs(api_as, trader, opened, broker):
    response = _adjust(api_as, trader, opened, new_sl=None, new_tp=None)
    assert response.status_code == 400
    assert {error["attr"]: error["detail"] for error in response.json()["errors"]} == {
        "new_sl": "Give a new stop-loss, or a new take-profit.",
        "new_tp": "Give a new take-profit, or a new stop-loss.",
    }
    assert broker.calls == []


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"new_sl": "4.2"}, "A stop-loss at 4.20 is at or above the bid (4.10): it would fire at once, "
                            "so it was not moved."),
        ({"new_tp": "4.0000"}, "A take-profit at 4.00 is at or below the bid (4.10): it would fill at once, "
                               "so it was not moved."),
        # The stop-loss kept is the stored 3.0000: the message says 3.00.
        ({"new_tp": "2.5", "allow_immediate": True}, "The stop-loss (3.00) must be below the take-profit (2.50)."),
    ],
    ids=["sl-above-bid", "tp-below-bid", "kept-sl-above-new-tp"],
)
def test_refusals_show_prices_with_two_decimals(api_as, trader, opened, changes, detail):
    (error,) = _adjust(api_as, trader, opened, **changes).json()["errors"]
    assert error["detail"] == detail


def test_allow_immediate_lets_a_stop_above_the_bid_through(api_as, trader, opened):
    response = _adjust(api_as, trader, opened, new_sl="4.20", allow_immediate=True)
    assert response.status_code == 200 and response.json()["sl_price"] == "4.2000"


def test_a_stale_version_is_409_with_the_current_trade(api_as, trader, opened, broker):
    _adjust(api_as, trader, opened, new_sl="3.50")
    response = _adjust(api_as, trader, opened, new_sl="3.60")
    assert response.status_code == 409 and response.json()["trade"]["sl_price"] == "3.5000"
    assert broker.calls == ["cancel_order", "place_oco_order"]  # the second request reached no broker


def test_a_failed_cancel_changes_nothing(api_as, trader, opened, broker):
    broker.fail("cancel_order", BrokerUnavailable("down"))
    response = _adjust(api_as, trader, opened, new_sl="3.50")
    assert response.status_code == 502
    body = response.json()
    assert body["errors"][0]["code"] == "bracket_replace_failed" and "nothing was changed" in body["errors"][0][
        "detail"]
    assert body["trade"]["sl_price"] == "3.0000" and _working_brackets(trader) == [
        (("limit", Decimal("6.5")), ("stop", Decimal("3")))]


def test_a_placement_that_fails_once_succeeds_on_the_retry(api_as, trader, opened, broker):
    broker.fail("place_oco_order", BrokerUnavailable("blip"))
    response = _adjust(api_as, trader, opened, new_sl="3.50")
    assert response.status_code == 200 and response.json()["sl_price"] == "3.5000"
    assert broker.calls == ["cancel_order", "place_oco_order", "place_oco_order"]


@pytest.mark.parametrize("failures", [
    [BrokerUnavailable("down"), BrokerUnavailable("still down")],
    [OrderRejected("stop price not allowed")],  # a refusal is not retried
], ids=["unavailable-twice", "refused"])
def test_when_the_new_bracket_fails_the_old_one_is_restored(api_as, trader, opened, broker, failures):
    broker.fail("place_oco_order", *failures)
    response = _adjust(api_as, trader, opened, new_sl="3.50")
    assert response.status_code == 502
    body = response.json()
    assert body["errors"][0]["code"] == "bracket_replace_failed" and "previous one was restored" in body[
        "errors"][0]["detail"]
    trade = body["trade"]
    assert trade["sl_price"] == "3.0000" and trade["override_count"] == 0 and not trade["needs_attention"]
    assert trade["bracket_order_id"] != opened["bracket_order_id"]  # the restored bracket is a new order
    assert _working_brackets(trader) == [(("limit", Decimal("6.5")), ("stop", Decimal("3")))]
    assert broker.calls.count("place_oco_order") == len(failures) + 1
    assert trade["events"][-1]["payload"]["restored"] is True


def test_when_nothing_can_be_placed_the_trade_is_flagged_unprotected(api_as, trader, opened, broker):
    broker.fail("place_oco_order", *[BrokerUnavailable("down")] * 4)
    response = _adjust(api_as, trader, opened, new_sl="3.50")
    assert response.status_code == 502
    body = response.json()
    assert body["errors"][0]["code"] == "position_unprotected" and "act now" in body["errors"][0]["detail"]
    assert body["trade"]["needs_attention"] and "Position unprotected" in body["trade"]["attention_reason"]
    assert body["trade"]["bracket_order_id"] == "" and _working_brackets(trader) == []
    with tenancy.acting_as(trader.pk):
        assert TradeEvent.objects.filter(trade_id=opened["id"], kind=EventKind.ATTENTION_NEEDED).exists()


def test_a_leg_that_filled_before_the_cancel_closes_the_trade_at_its_fill(api_as, trader, opened, broker, market):
    market.set_quote(CONTRACT, "2.90", "3.00")
    with tenancy.acting_as(trader.pk):
        assert broker.inner.match() == 1  # the stop fired at the broker; the monitor has not synced yet
    response = _adjust(api_as, trader, opened, new_tp="6.00")
    assert response.status_code == 409 and "filled before" in response.json()["errors"][0]["detail"]
    trade = response.json()["trade"]
    assert (trade["status"], trade["close_reason"]) == ("CLOSED", "SL_HIT")
    assert trade["close_price"] == "2.9000" and trade["tp_price"] == "6.5000"  # closed at the fill, not adjusted
    assert broker.calls == ["cancel_order"]


def test_only_an_open_trade_can_be_adjusted(api_as, trader, market):
    pending = PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    response = api_as(trader).post(f"/api/trades/{pending.pk}/adjust", {"version": 1, "new_sl": "3.5"},
                                   format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "invalid_state"
