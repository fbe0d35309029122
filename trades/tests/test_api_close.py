"""POST /api/trades/{id}/close: the client's version, one sell order, the bracket cancelled."""

import threading

import pytest
from django.db import connection

from brokers.base import BrokerUnavailable, OrderRejected
from brokers.models import PaperOrder
from brokers.paper import LocalPaperBroker
from tradeoptions import tenancy
from trades.models import EventKind, PaperTrade, TradeEvent

from .conftest import CONTRACT, RULES


@pytest.fixture
def opened(api_as, trader, market, open_body):
    """Alice's trade, opened through the API: 2 contracts at 4.30, bracket 3.00 / 6.50."""
    body = api_as(trader).post("/api/trades", open_body(), format="json").json()
    assert body["status"] == "OPEN"
    return body


def _orders(user, **filters):
    with tenancy.acting_as(user.pk):
        return list(PaperOrder.objects.filter(**filters).order_by("id"))


def test_a_close_sells_at_the_bid_cancels_the_bracket_and_books_the_pnl(api_as, trader, market, opened):
    market.set_quote(CONTRACT, "5.00", "5.20")
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                   format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "CLOSED" and body["close_reason"] == "MANUAL_CLOSE"
    assert body["close_price"] == "5.0000" and body["realized_pnl"] == "140.00"  # (5.00 − 4.30) × 2 × 100
    assert body["realized_pnl_pct"] == "16.2791" and body["version"] > opened["version"]
    (sell,) = _orders(trader, tag=f"to-{opened['id']}-close")
    assert sell.status == "filled" and sell.side == "sell_to_close" and sell.quantity == 2
    assert {order.status for order in _orders(trader, parent_id=opened["bracket_order_id"])} == {"canceled"}
    kinds = [event["kind"] for event in body["events"]]
    assert kinds[-3:] == ["STATE_CHANGE", "ORDER_CANCELED", "ORDER_FILLED"]
    assert body["events"][-3]["new_status"] == "CLOSING" and body["events"][-1]["new_status"] == "CLOSED"


def test_a_stale_version_is_409_with_the_current_trade_and_sends_nothing(api_as, trader, market, opened):
    client = api_as(trader)
    client.post(f"/api/trades/{opened['id']}/adjust", {"version": opened["version"], "new_tp": "7.00"},
                format="json")
    response = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["errors"][0]["code"] == "version_conflict"
    assert body["trade"]["status"] == "OPEN" and body["trade"]["tp_price"] == "7.0000"
    assert body["trade"]["version"] == opened["version"] + 1
    assert _orders(trader, tag=f"to-{opened['id']}-close") == []
    with tenancy.acting_as(trader.pk):
        refusal = TradeEvent.objects.filter(trade_id=opened["id"], kind=EventKind.CONFLICT_REFUSED).get()
    assert refusal.payload == {"action": "close", "sent_version": opened["version"],
                               "current_version": opened["version"] + 1}


def test_a_close_while_the_market_is_shut_stays_closing_until_the_fill(api_as, trader, market, opened):
    market.open = False
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                   format="json")
    assert response.status_code == 202 and response.json()["status"] == "CLOSING"
    assert response.json()["close_order_id"]


def test_a_refused_sell_puts_the_trade_back_to_open_with_a_new_bracket(api_as, trader, scripted_broker,
                                                                        open_body):
    """The bracket is cancelled before the sell, so a refused sell must put an exit back at once."""
    scripted_broker(trader).fail("place_order", None, OrderRejected("market closed for this contract"))
    opened = api_as(trader).post("/api/trades", open_body(), format="json").json()
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                   format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["code"] == "order_rejected" and body["trade"]["status"] == "OPEN"
    assert body["trade"]["bracket_order_id"] not in ("", opened["bracket_order_id"])
    assert {order.status for order in _orders(trader, parent_id=opened["bracket_order_id"])} == {"canceled"}
    restored = _orders(trader, parent_id=body["trade"]["bracket_order_id"])
    assert {(order.status, order.quantity) for order in restored} == {("open", 2)}
    assert not body["trade"]["needs_attention"]


def test_a_bracket_that_cannot_be_cancelled_sells_nothing(api_as, trader, scripted_broker, open_body):
    """A failed cancel may have left the bracket working: a sell beside it could double the exit."""
    scripted_broker(trader).fail("cancel_order", BrokerUnavailable("down"))
    opened = api_as(trader).post("/api/trades", open_body(), format="json").json()
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                   format="json")
    assert response.status_code == 503 and response.json()["errors"][0]["code"] == "broker_unavailable"
    assert response.json()["trade"]["status"] == "OPEN"
    assert _orders(trader, tag=f"to-{opened['id']}-close") == []
    assert {order.status for order in _orders(trader, parent_id=opened["bracket_order_id"])} == {"open"}


def test_only_an_open_trade_can_be_closed(api_as, trader, market, opened):
    client = api_as(trader)
    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json").json()
    again = client.post(f"/api/trades/{opened['id']}/close", {"version": closed["version"]}, format="json")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "invalid_state"
    assert len(_orders(trader, tag=f"to-{opened['id']}-close")) == 1


@pytest.mark.parametrize("body", [{}, {"version": "x"}, {"version": 0}, {"version": 10**12}])
def test_a_close_without_a_valid_version_is_a_field_error(api_as, trader, market, opened, body):
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", body, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "version"


@pytest.mark.django_db(transaction=True)
def test_two_devices_closing_at_once_make_one_sell_one_200_one_409(api_as, trader, market, open_body,
                                                                   broker_held):
    opened = api_as(trader).post("/api/trades", open_body(), format="json").json()
    broker_held.arm()
    entered, release = broker_held.entered, broker_held.release
    clients = [api_as(trader), api_as(trader)]
    answers = {}

    def send(index):
        try:
            answers[index] = clients[index].post(f"/api/trades/{opened['id']}/close",
                                                 {"version": opened["version"]}, format="json")
        finally:
            connection.close()

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert entered.wait(10)  # the first's CLOSING has committed; its sell is at the broker
    second = threading.Thread(target=send, args=(1,))
    second.start()
    second.join(10)  # refused at once, with the trade as it stands: closing
    assert first.is_alive() and answers[1].status_code == 409
    assert answers[1].json()["trade"]["status"] == "CLOSING"
    release.set()
    first.join(10)
    assert answers[0].status_code == 200 and answers[1].status_code == 409
    assert len(_orders(trader, tag=f"to-{opened['id']}-close")) == 1
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get(pk=opened["id"]).close_reason == "MANUAL_CLOSE"


def test_a_close_that_finds_the_take_profit_filled_answers_200_with_that_fill_and_sells_nothing(
        api_as, trader, market, opened):
    """The observed short: the TP filled before the close's cancel reached the broker. The cancel's
    answer says so; the close is that fill (no sell is sent, nothing is left working)."""
    market.set_quote(CONTRACT, "6.60", "6.80")
    with tenancy.acting_as(trader.pk):
        assert LocalPaperBroker(trader.pk, starting_cash=0, market=market, rules=RULES).match() == 1
    response = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                   format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["close_reason"], body["close_price"]) == ("CLOSED", "TP_HIT", "6.5000")
    assert _orders(trader, tag=f"to-{opened['id']}-close") == []
    assert not any(order.status in ("open", "pending") for order in _orders(trader))


def test_a_partial_close_that_leaves_the_rest_without_a_stop_answers_as_the_full_close_does(
        api_as, trader, scripted_broker, open_body):
    """The part sold, but the rest's bracket could not be placed: not a 200, the close's "act now"."""
    full = api_as(trader).post("/api/trades", open_body(qty=3, sl_price="4.00"), format="json").json()
    scripted_broker(trader).fail("place_order", OrderRejected("market closed for this contract"))
    scripted_broker(trader).fail("place_oco_order", OrderRejected("exits refused for now"))
    whole = api_as(trader).post(f"/api/trades/{full['id']}/close", {"version": full["version"]}, format="json")
    assert whole.status_code == 502 and whole.json()["errors"][0]["code"] == "position_unprotected"

    opened = api_as(trader).post("/api/trades", open_body(qty=3, sl_price="4.00"), format="json").json()
    scripted_broker(trader).fail("place_oco_order", OrderRejected("exits refused for now"))
    part = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"], "quantity": 1},
                               format="json")
    assert part.status_code == whole.status_code
    [error] = part.json()["errors"]
    assert error["code"] == "position_unprotected" and error["detail"].endswith("act now.")
    assert whole.json()["errors"][0]["detail"].endswith("act now.")
    assert (part.json()["trade"]["status"], part.json()["trade"]["quantity_open"]) == ("OPEN", 2)
    assert part.json()["trade"]["needs_attention"]


def test_closing_every_contract_of_a_pending_trade_by_count_is_the_whole_close(api_as, trader, market, open_body):
    """A PENDING trade holds nothing yet: "close 2 of 2" answers as its close does, not as a partial sale."""
    pending = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.00", sl_price="3.80"),
                                  format="json").json()
    assert pending["status"] == "PENDING"
    by_count = api_as(trader).post(f"/api/trades/{pending['id']}/close",
                                   {"version": pending["version"], "quantity": 2}, format="json")
    other = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.00", sl_price="3.80"),
                                format="json").json()
    whole = api_as(trader).post(f"/api/trades/{other['id']}/close", {"version": other["version"]}, format="json")
    assert (by_count.status_code, by_count.json().get("errors")) == (whole.status_code, whole.json().get("errors"))
