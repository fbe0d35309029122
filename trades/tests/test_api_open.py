"""POST /api/trades: validation, risk limits, placement with the broker, truthful failures."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from brokers.base import BrokerAuthError, BrokerUnavailable, OrderOutcomeUnknown
from brokers.models import BrokerMode, PaperOrder
from tests.factories import PaperTradeFactory, account_with
from tradeoptions import tenancy
from trades.models import CloseReason, EventKind, PaperTrade, TradeStatus

from .conftest import CONTRACT


def _orders(user):
    with tenancy.acting_as(user.pk):
        return list(PaperOrder.objects.order_by("id"))


def _trades(user):
    with tenancy.acting_as(user.pk):
        return list(PaperTrade.objects.filter(owner=user))


def test_a_market_entry_fills_at_the_ask_and_gets_its_bracket_as_one_oco(api_as, trader, market, open_body):
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and body["entry_price"] == "4.3000" and body["filled_qty"] == 2
    assert body["option_symbol"] == CONTRACT and body["strategy"] == "momentum"
    assert body["bracket_order_id"] and body["sl_order_id"] and body["tp_order_id"]
    assert [event["kind"] for event in body["events"]] == ["STATE_CHANGE", "ORDER_FILLED", "ORDER_PLACED"]
    assert body["events"][0]["new_status"] == "PENDING" and body["events"][1]["new_status"] == "OPEN"
    orders = _orders(trader)
    tags = {order.tag for order in orders}
    trade_id = body["id"]
    assert tags == {f"to-{trade_id}-entry", f"to-{trade_id}-sl", f"to-{trade_id}-tp"}
    oco = next(order for order in orders if order.order_class == "oco")
    with tenancy.acting_as(trader.pk):
        legs = {leg.order_type: leg for leg in oco.legs.all()}
    assert legs["stop"].stop_price == Decimal("3.00") and legs["limit"].limit_price == Decimal("6.50")
    assert all(leg.status == "open" and leg.duration == "gtc" for leg in legs.values())


def test_a_limit_entry_goes_as_one_otoco_and_waits_pending(api_as, trader, market, open_body):
    response = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.00"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "PENDING" and body["entry_price"] is None and body["planned_entry_price"] == "4.0000"
    assert body["entry_order_id"] == body["bracket_order_id"] and body["sl_order_id"] and body["tp_order_id"]
    (otoco,) = [order for order in _orders(trader) if order.parent_id is None]
    assert otoco.order_class == "otoco" and otoco.tag == f"to-{body['id']}-entry"


def test_a_marketable_limit_entry_opens_at_once(api_as, trader, market, open_body):
    response = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.50"), format="json")
    assert response.json()["status"] == "OPEN" and response.json()["entry_price"] == "4.3000"


def test_an_occ_symbol_is_as_good_as_the_parts(api_as, trader, market, open_body):
    body = open_body(ticker=None, option_type=None, strike=None, expiry=None, option_symbol=CONTRACT)
    response = api_as(trader).post("/api/trades", body, format="json")
    assert response.status_code == 201 and response.json()["option_symbol"] == CONTRACT


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"expiry": "2026-11-27"}, "expiry"),  # before the market's today
        ({"expiry": "2026-12-19"}, "expiry"),  # a Saturday
        ({"sl_price": "4.30"}, "sl_price"),  # not below the 4.30 ask
        ({"tp_price": "4.00"}, "tp_price"),
        ({"entry_type": "limit", "limit_price": "3.00"}, "sl_price"),  # SL at the limit entry
        ({"qty": 0}, "qty"),
        ({"sl_price": "-1"}, "sl_price"),
        ({"tp_price": "0"}, "tp_price"),
        ({"ticker": "sp-y"}, "ticker"),
        ({"strike": "571"}, "option_symbol"),  # a contract the market-data source does not know
        ({"ticker": None, "option_symbol": "SPY2612"}, "option_symbol"),
        ({"entry_type": "limit"}, "limit_price"),
        ({"strike": None}, "strike"),
    ],
    ids=lambda value: str(value),
)
def test_bad_input_is_refused_field_by_field_and_writes_nothing(api_as, trader, market, open_body, changes, field):
    response = api_as(trader).post("/api/trades", open_body(**changes), format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["type"] == "validation_error"
    assert field in [error["attr"] for error in body["errors"]]
    assert _trades(trader) == [] and _orders(trader) == []


def test_max_positions_counts_open_and_pending_trades(api_as, trader, market, open_body):
    account_with(trader, max_positions=2, heat_limit_pct=Decimal("100"))
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)
    PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["code"] == "risk_limit_exceeded" and error["attr"] == "max_positions"
    assert "2 trades are open or pending and your limit is 2 positions" in error["detail"]
    assert len(_trades(trader)) == 2 and _orders(trader) == []


def test_the_daily_loss_limit_counts_todays_realized_losses_in_new_york(api_as, trader, market, open_body):
    account_with(trader, daily_loss_limit=Decimal("150"))
    closed = {"status": TradeStatus.CLOSED, "close_price": Decimal("1"), "close_reason": CloseReason.SL_HIT}
    # 04:30 UTC on Dec 1 is 23:30 on Nov 30 in New York: yesterday's loss does not count.
    PaperTradeFactory(owner=trader, realized_pnl=Decimal("-500"), close_date=datetime(2026, 12, 1, 4, 30, tzinfo=UTC),
                      **closed)
    PaperTradeFactory(owner=trader, realized_pnl=Decimal("-100"), close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC),
                      **closed)
    assert api_as(trader).post("/api/trades", open_body(), format="json").status_code == 201
    PaperTradeFactory(owner=trader, realized_pnl=Decimal("-60"), close_date=datetime(2026, 12, 1, 14, 50, tzinfo=UTC),
                      **closed)
    response = api_as(trader).post("/api/trades", open_body(qty=1, sl_price="4.00"), format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["attr"] == "daily_loss_limit" and "$160.00" in error["detail"] and "$150.00" in error["detail"]


def test_the_daily_loss_limit_counts_commissions_and_fees(api_as, trader, market, open_body):
    account_with(trader, daily_loss_limit=Decimal("150"))
    PaperTradeFactory(owner=trader, status=TradeStatus.CLOSED, close_price=Decimal("1"),
                      close_reason=CloseReason.SL_HIT, close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC),
                      realized_pnl=Decimal("-148.00"),
                      entry_commission=Decimal("1.30"), exit_commission=Decimal("1.30"), fees=Decimal("0.04"))
    response = api_as(trader).post("/api/trades", open_body(qty=1, sl_price="4.00"), format="json")
    assert response.status_code == 422  # $148.00 gross, $150.64 net: the limit is spent
    (error,) = response.json()["errors"]
    assert error["attr"] == "daily_loss_limit" and "$150.64" in error["detail"]


def test_the_heat_limit_adds_this_trade_to_the_open_risk(api_as, trader, market, open_body):
    account_with(trader, heat_limit_pct=Decimal("6"))  # 6% of $5,000: $300 at the stops
    PaperTradeFactory(owner=trader, entry_price=Decimal("4.20"), sl_price=Decimal("3.70"), qty=1)  # $50
    assert api_as(trader).post("/api/trades", open_body(qty=1), format="json").status_code == 201  # + $130
    response = api_as(trader).post("/api/trades", open_body(qty=1), format="json")  # + $130 = $310
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["attr"] == "heat_limit_pct" and "$310.00" in error["detail"] and "6.20%" in error["detail"]


def test_a_broker_refusal_leaves_a_rejected_trade_with_the_reason(api_as, trader, market, open_body):
    account_with(trader, heat_limit_pct=Decimal("100"))
    response = api_as(trader).post("/api/trades", open_body(qty=20), format="json")  # $8,600 > $5,000 cash
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["code"] == "order_rejected" and "Insufficient buying power" in body["errors"][0]["detail"]
    assert body["trade"]["status"] == "REJECTED" and "Insufficient buying power" in body["trade"]["status_reason"]
    (trade,) = _trades(trader)
    assert trade.status == TradeStatus.REJECTED
    assert [order.status for order in _orders(trader)] == ["rejected"]


def test_no_token_for_the_sandbox_asks_to_reauthenticate_before_anything_is_written(api_as, trader, market,
                                                                                    open_body):
    account_with(trader, broker_mode=BrokerMode.TRADIER_SANDBOX, tradier_account_id="VA1")
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "broker_reauthenticate"
    assert _trades(trader) == []


@pytest.mark.parametrize(
    ("error", "http", "code", "status"),
    [
        (BrokerAuthError("401 from the broker"), 502, "broker_reauthenticate", TradeStatus.REJECTED),
        (BrokerUnavailable("maintenance"), 503, "broker_unavailable", TradeStatus.REJECTED),
        (OrderOutcomeUnknown("timed out twice", tag="to-1-entry"), 502, "broker_outcome_unknown",
         TradeStatus.PENDING),
    ],
    ids=["auth", "down", "unknown"],
)
def test_a_failed_entry_leaves_a_truthful_trade(api_as, trader, scripted_broker, open_body, error, http, code,
                                                status):
    scripted_broker(trader).fail("place_order", error)
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == http
    body = response.json()
    assert body["errors"][0]["code"] == code and body["trade"]["status"] == status
    (trade,) = _trades(trader)
    assert trade.status == status
    assert trade.needs_attention == (status == TradeStatus.PENDING)  # unknown outcome: reconcile by tag


def test_a_bracket_that_cannot_be_attached_is_retried_then_flagged(api_as, trader, scripted_broker, open_body):
    broker = scripted_broker(trader)
    broker.fail("place_oco_order", BrokerUnavailable("down"), BrokerUnavailable("still down"))
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "OPEN" and body["needs_attention"] is True
    assert "no SL/TP bracket" in body["attention_reason"]
    assert broker.calls.count("place_oco_order") == 2
    assert body["events"][-1]["kind"] == EventKind.ATTENTION_NEEDED


def test_a_bracket_that_fails_once_is_placed_on_the_retry(api_as, trader, scripted_broker, open_body):
    scripted_broker(trader).fail("place_oco_order", BrokerUnavailable("blip"))
    body = api_as(trader).post("/api/trades", open_body(), format="json").json()
    assert body["status"] == "OPEN" and not body["needs_attention"] and body["bracket_order_id"]


@pytest.mark.django_db(transaction=True)
def test_two_parallel_opens_cannot_both_squeeze_under_max_positions(api_as, trader, market, open_body,
                                                                    broker_held):
    account_with(trader, max_positions=1)
    broker_held.arm()
    entered, release = broker_held.entered, broker_held.release
    clients = [api_as(trader), api_as(trader)]
    answers = {}

    def send(index):
        try:
            answers[index] = clients[index].post("/api/trades", open_body(qty=1), format="json")
        finally:
            connection.close()

    first = threading.Thread(target=send, args=(0,))
    first.start()
    assert entered.wait(10)  # the first's PENDING trade has committed; its order is at the broker
    second = threading.Thread(target=send, args=(1,))
    second.start()
    second.join(10)  # refused at once: the committed PENDING trade counts against the limit
    assert first.is_alive() and answers[1].status_code == 422
    release.set()
    first.join(10)
    assert (answers[0].status_code, answers[1].status_code) == (201, 422)
    assert answers[1].json()["errors"][0]["attr"] == "max_positions"
    assert len(_trades(trader)) == 1


def test_idempotency_keys_are_invisible_to_other_tenants(api_as, trader, other_trader, market, open_body, app_cursor):
    api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="mine")
    with tenancy.acting_as(other_trader.pk):
        app_cursor.execute("SELECT count(*) FROM trades_idempotencykey")
        assert app_cursor.fetchone()[0] == 0
    with tenancy.acting_as(trader.pk):
        app_cursor.execute("SELECT count(*) FROM trades_idempotencykey")
        assert app_cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_the_trade_row_has_committed_before_its_order_reaches_the_broker(api_as, trader, market, open_body,
                                                                         broker_held):
    """Whatever happens to the process while the broker works, the order's trade exists."""
    broker_held.arm()
    client, answers = api_as(trader), {}

    def send():
        try:
            answers["open"] = client.post("/api/trades", open_body(), format="json")
        finally:
            connection.close()

    opening = threading.Thread(target=send)
    opening.start()
    assert broker_held.entered.wait(10)
    with tenancy.acting_as(trader.pk):  # this thread's own connection sees only committed rows
        seen_meanwhile = list(PaperTrade.objects.values_list("status", "entry_order_id"))
    broker_held.release.set()
    opening.join(10)
    assert seen_meanwhile == [("PENDING", "")]
    assert answers["open"].status_code == 201
