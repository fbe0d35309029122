"""The Tradier client against the fake Tradier, over real HTTP: every scenario is a conversation the
real sandbox could have with us."""

import logging
import socket
import time
import traceback
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests

from brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerProvider,
    BrokerRateLimited,
    BrokerUnavailable,
    OrderDuration,
    OrderOutcomeUnknown,
    OrderPurpose,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    order_tag,
)
from brokers.tests.conftest import ACCOUNT, LIVE_TOKEN, SANDBOX_TOKEN
from brokers.tradier import ConfirmPolicy, RetryPolicy, TradierMarketData, TradierRequestError
from tests.fakes.tradier import LIVE, NOT_ENOUGH_BUYING_POWER, SANDBOX

CALL = "SPY300118C00500000"
PUT = "SPY300118P00450000"


def buy(quantity=1, *, order_type=OrderType.MARKET, limit=None, stop=None, trade=7, duration=OrderDuration.DAY,
        purpose=OrderPurpose.ENTRY, symbol=CALL):
    return OrderRequest(
        option_symbol=symbol, side=OrderSide.BUY_TO_OPEN, quantity=quantity, order_type=order_type,
        limit_price=None if limit is None else Decimal(limit), stop_price=None if stop is None else Decimal(stop),
        tag=order_tag(trade, purpose), duration=duration,
    )


def sell(quantity=1, *, order_type, limit=None, stop=None, trade=7, purpose, duration=OrderDuration.GTC,
         symbol=CALL):
    return OrderRequest(
        option_symbol=symbol, side=OrderSide.SELL_TO_CLOSE, quantity=quantity, order_type=order_type,
        limit_price=None if limit is None else Decimal(limit), stop_price=None if stop is None else Decimal(stop),
        tag=order_tag(trade, purpose), duration=duration,
    )


def stop_loss(stop="1.50", **kwargs):
    return sell(order_type=OrderType.STOP, stop=stop, purpose=OrderPurpose.STOP_LOSS, **kwargs)


def take_profit(limit="3.00", **kwargs):
    return sell(order_type=OrderType.LIMIT, limit=limit, purpose=OrderPurpose.TAKE_PROFIT, **kwargs)


def raw_get(fake, path, token=SANDBOX_TOKEN, accept="application/json", environment=SANDBOX):
    """What Tradier itself sends back, to show the quirk the client has to survive."""
    return requests.get(f"{fake.url(environment)}{path}", headers={"Authorization": f"Bearer {token}",
                                                                   "Accept": accept}, timeout=2)


# --- The wire format ----------------------------------------------------------------------------


def test_the_client_implements_the_broker_contract(tradier):
    assert isinstance(tradier, BrokerProvider)


def test_every_request_carries_bearer_token_json_accept_and_a_form_body(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    tradier.place_order(buy(2, order_type=OrderType.LIMIT, limit="2.05"))

    post = fake_tradier.requests_for("POST", "/orders")[0]
    assert post.authorized
    assert post.content_type.startswith("application/x-www-form-urlencoded")
    assert post.form == {
        "class": "option", "duration": "day", "tag": "to-7-entry", "symbol": "SPY", "option_symbol": CALL,
        "side": "buy_to_open", "quantity": "2", "type": "limit", "price": "2.05",
    }
    assert all(r.accept == "application/json" for r in fake_tradier.requests)


def test_without_accept_json_tradier_answers_xml(fake_tradier, sandbox_account):
    """Why the client always asks for JSON: XML is Tradier's default."""
    response = raw_get(fake_tradier, f"/accounts/{ACCOUNT}/balances", accept="*/*")
    assert response.headers["Content-Type"] == "application/xml"
    assert response.text.startswith("<?xml")


def test_a_json_body_is_not_a_form_and_tradier_sees_no_order(fake_tradier, sandbox_account):
    response = requests.post(f"{fake_tradier.url()}/accounts/{ACCOUNT}/orders", json={"class": "option"},
                             headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "Accept": "application/json"},
                             timeout=2)
    assert response.status_code == 400
    assert fake_tradier.orders == {}


# --- Place and confirm --------------------------------------------------------------------------


def test_a_market_buy_is_confirmed_and_fills_at_the_ask_not_the_mid(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.20")
    order = tradier.place_order(buy(2))

    assert order.status == OrderStatus.FILLED
    assert order.fill.price == Decimal("2.2") and order.fill.quantity == 2
    assert order.quantity == 2 and order.filled_quantity == 2  # from "2.00000000"
    assert order.limit_price is None  # a market order has no price key
    assert order.tag == "to-7-entry"
    assert order.created_at.tzinfo is not None
    # The client looked until the order left `pending`: once pending, once decided.
    assert len(fake_tradier.requests_for("GET", f"/orders/{order.id}")) == 2
    [position] = tradier.get_positions()
    assert (position.symbol, position.quantity, position.cost_basis) == (CALL, 2, Decimal("440.0"))


def test_a_rejected_order_raises_with_tradiers_reason(tradier, fake_tradier):
    """The "200 OK but actually failed" case: the POST says ok, the order says rejected."""
    fake_tradier.set_quote(CALL, "60.00", "61.00")
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_order(buy(2, order_type=OrderType.LIMIT, limit="60.50"))  # $12,100 of $10,000
    assert rejected.value.reason == NOT_ENOUGH_BUYING_POWER
    assert rejected.value.tag == "to-7-entry"
    assert fake_tradier.order(rejected.value.order_id).status == "rejected"


def test_a_field_tradier_refuses_at_once_raises_order_rejected_without_polling(tradier, fake_tradier):
    request = buy()
    object.__setattr__(request, "quantity", 0)  # slipped past our own checks somehow
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_order(request)
    assert "IncorrectOrderQuantity" in rejected.value.reason
    assert fake_tradier.requests_for("GET") == []


def test_an_order_still_pending_after_the_bounded_wait_is_returned_pending(make_client, sandbox_account, fake_tradier):
    fake_tradier.pending_views = 1000
    client = make_client(confirm=ConfirmPolicy(attempts=4, first_delay=0.01, max_delay=0.02))
    started = time.monotonic()
    order = client.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert order.status == OrderStatus.PENDING
    assert len(fake_tradier.requests_for("GET", f"/orders/{order.id}")) == 4
    assert time.monotonic() - started < 1.0  # short growing pauses, no blind sleep(1)


def test_an_order_placed_but_unreadable_for_now_is_reported_placed_and_pending(tradier, fake_tradier):
    """Tradier took the order and then stopped answering: the caller must not think it failed."""
    fake_tradier.inject("500", method="GET", path="/orders/", times=100)
    order = tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert order.status == OrderStatus.PENDING and order.tag == "to-7-entry" and order.order_class == "option"
    [placed] = fake_tradier.orders_tagged("to-7-entry")
    assert order.id == str(placed.id)
    fake_tradier._faults.clear()
    statuses = [tradier.get_order(order.id).status for _ in range(2)]  # the first look is still undecided
    assert statuses == [OrderStatus.PENDING, OrderStatus.OPEN]


def test_selling_what_is_not_held_is_rejected(tradier, fake_tradier):
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_order(take_profit())
    assert "exceeds the 0 held" in rejected.value.reason


# --- Fills driven by quotes ---------------------------------------------------------------------


def test_a_take_profit_limit_fills_when_the_bid_reaches_it(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.50", "2.60")
    order = tradier.place_order(take_profit("3.00"))
    assert order.status == OrderStatus.OPEN and order.limit_price == Decimal("3.0")

    fake_tradier.set_quote(CALL, "2.95", "3.05")
    assert tradier.get_order(order.id).status == OrderStatus.OPEN
    fake_tradier.set_quote(CALL, "3.10", "3.20")
    filled = tradier.get_order(order.id)
    assert filled.status == OrderStatus.FILLED and filled.fill.price == Decimal("3.1")
    assert tradier.get_positions() == []


def test_a_stop_comes_back_as_stop_price_and_a_gap_fills_below_it(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    order = tradier.place_order(stop_loss("1.50"))
    assert order.stop_price == Decimal("1.5")  # sent as `stop`, read back from `stop_price`

    fake_tradier.set_quote(CALL, "1.20", "1.30")  # gapped straight through the stop
    filled = tradier.get_order(order.id)
    assert filled.status == OrderStatus.FILLED and filled.fill.price == Decimal("1.2")


def test_a_partial_fill_reports_what_executed(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "1.00", "1.10", size=2)
    order = tradier.place_order(buy(5))
    assert order.status == OrderStatus.PARTIALLY_FILLED
    assert (order.filled_quantity, order.remaining_quantity, order.fill.quantity) == (2, 3, 2)


def test_day_orders_expire_at_the_close_and_gtc_orders_survive(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    day = tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00", trade=1))
    gtc = tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00", trade=2, duration=OrderDuration.GTC))
    fake_tradier.end_of_day()
    assert tradier.get_order(day.id).status == OrderStatus.EXPIRED
    assert tradier.get_order(gtc.id).status == OrderStatus.OPEN
    assert tradier.get_order(gtc.id).duration == OrderDuration.GTC


# --- OCO and OTOCO ------------------------------------------------------------------------------


def test_an_oco_goes_out_with_indexed_legs_and_a_fill_cancels_its_sibling(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    oco = tradier.place_oco_order(stop_loss("1.50"), take_profit("3.00"))

    form = fake_tradier.requests_for("POST", "/orders")[0].form
    assert form["class"] == "oco" and form["tag"] == "to-7-sl" and form["duration"] == "gtc"
    assert (form["side[0]"], form["option_symbol[0]"], form["type[0]"], form["stop[0]"]) == (
        "sell_to_close", CALL, "stop", "1.50")
    assert (form["type[1]"], form["price[1]"], form["quantity[1]"]) == ("limit", "3.00", "1")
    assert "price[0]" not in form and "stop[1]" not in form
    assert oco.status == OrderStatus.OPEN and oco.order_class == "oco" and oco.tag == "to-7-sl"
    assert [leg.status for leg in oco.legs] == [OrderStatus.OPEN, OrderStatus.OPEN]

    fake_tradier.set_quote(CALL, "3.05", "3.15")
    done = tradier.get_order(oco.id)
    assert done.status == OrderStatus.FILLED
    assert done.leg(OrderType.LIMIT).status == OrderStatus.FILLED
    assert done.leg(OrderType.LIMIT).fill.price == Decimal("3.05")
    assert done.leg(OrderType.STOP).status == OrderStatus.CANCELED


@pytest.mark.parametrize(
    ("sl", "tp", "reason"),
    [
        (stop_loss("1.50"), sell(order_type=OrderType.STOP, stop="1.00", purpose="tp"), "different types"),
        (stop_loss("1.50"), take_profit("3.00", symbol=PUT), "same option_symbol"),
        (stop_loss("1.50", duration=OrderDuration.DAY), take_profit("3.00"), "same duration"),
    ],
)
def test_an_oco_breaking_tradiers_rules_is_rejected_even_though_the_answer_is_200(tradier, fake_tradier, sl, tp,
                                                                                  reason):
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_oco_order(sl, tp)
    assert reason in rejected.value.reason
    assert fake_tradier.orders == {}


def test_an_otoco_enters_then_brackets_and_the_stop_cancels_the_target(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    entry = buy(order_type=OrderType.LIMIT, limit="1.80")  # a day entry with GTC exits: per-leg durations
    otoco = tradier.place_otoco_order(entry, stop_loss("1.20"), take_profit("2.80"))

    form = fake_tradier.requests_for("POST", "/orders")[0].form
    assert "duration" not in form
    assert (form["duration[0]"], form["duration[1]"], form["duration[2]"]) == ("day", "gtc", "gtc")
    assert form["tag"] == "to-7-entry"
    assert otoco.status == OrderStatus.OPEN
    assert [leg.status for leg in otoco.legs] == [OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.PENDING]

    fake_tradier.set_quote(CALL, "1.70", "1.78")  # entry fills at the ask; brackets go live
    live = tradier.get_order(otoco.id)
    assert [leg.status for leg in live.legs] == [OrderStatus.FILLED, OrderStatus.OPEN, OrderStatus.OPEN]
    assert live.legs[0].fill.price == Decimal("1.78")

    fake_tradier.set_quote(CALL, "1.10", "1.20")
    done = tradier.get_order(otoco.id)
    assert done.status == OrderStatus.FILLED
    assert [leg.status for leg in done.legs] == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELED]
    assert tradier.get_positions() == []


def test_an_otoco_the_account_cannot_pay_for_is_rejected(tradier, fake_tradier):
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_otoco_order(buy(50, order_type=OrderType.LIMIT, limit="5.00"), stop_loss(quantity=50),
                                 take_profit(quantity=50))
    assert rejected.value.reason == NOT_ENOUGH_BUYING_POWER


def test_an_otoco_with_a_market_entry_is_refused(tradier, fake_tradier):
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_otoco_order(buy(), stop_loss(), take_profit())
    assert "type[0] is invalid" in rejected.value.reason


# --- Cancel -------------------------------------------------------------------------------------


def test_cancel_returns_the_cancelled_order(tradier, fake_tradier):
    order = tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert tradier.cancel_order(order.id).status == OrderStatus.CANCELED


def test_cancelling_an_order_that_already_filled_is_not_an_error_and_says_it_filled(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    order = tradier.place_order(buy())
    response = requests.delete(f"{fake_tradier.url()}/accounts/{ACCOUNT}/orders/{order.id}", timeout=2,
                               headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "Accept": "application/json"})
    assert response.status_code == 400 and "already in finalized state" in response.text

    assert tradier.cancel_order(order.id).status == OrderStatus.FILLED


def test_cancelling_an_unknown_order_is_an_error(tradier):
    with pytest.raises(TradierRequestError):
        tradier.cancel_order("999")


# --- Idempotent placement -----------------------------------------------------------------------


def test_a_post_that_times_out_after_tradier_took_the_order_is_found_by_its_tag_not_placed_twice(
    tradier, fake_tradier
):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    fake_tradier.inject("hang_after", method="POST", path="/orders")
    started = time.monotonic()

    order = tradier.place_order(buy())

    assert len(fake_tradier.orders_tagged("to-7-entry")) == 1
    assert len(fake_tradier.requests_for("POST", "/orders")) == 1
    assert order.tag == "to-7-entry" and order.status == OrderStatus.FILLED
    assert time.monotonic() - started < fake_tradier.hang_seconds  # it did not wait for the late answer


def test_a_post_lost_before_tradier_saw_it_is_sent_again_once_the_tag_is_known_absent(tradier, fake_tradier):
    fake_tradier.inject("drop", method="POST", path="/orders")
    order = tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert len(fake_tradier.requests_for("POST", "/orders")) == 2
    assert [o.id for o in fake_tradier.orders_tagged("to-7-entry")] == [int(order.id)]
    # The lookups (several, since Tradier's list can lag an accepted POST) came between the POSTs.
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_tradier.requests]
    assert methods[:5] == [("POST", "orders")] + [("GET", "orders")] * 3 + [("POST", "orders")]


def test_an_order_the_list_shows_only_late_is_found_and_not_sent_again(tradier, fake_tradier, monkeypatch):
    real_lookup, looks = type(tradier).find_order_by_tag, []

    def lagging_lookup(self, tag):
        looks.append(tag)
        return None if len(looks) < 2 else real_lookup(self, tag)  # the first look misses it

    fake_tradier.inject("hang_after", method="POST", path="/orders")  # accepted, but the answer is lost
    monkeypatch.setattr(type(tradier), "find_order_by_tag", lagging_lookup)
    tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert len(looks) == 2 and len(fake_tradier.requests_for("POST", "/orders")) == 1
    assert len(fake_tradier.orders_tagged("to-7-entry")) == 1


def test_a_500_on_a_post_is_unknown_too_and_never_doubles_the_order(tradier, fake_tradier):
    fake_tradier.inject("500", method="POST", path="/orders")
    tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert len(fake_tradier.orders_tagged("to-7-entry")) == 1


def test_when_both_attempts_are_lost_the_outcome_is_unknown_and_nothing_was_placed(tradier, fake_tradier):
    fake_tradier.inject("drop", method="POST", path="/orders", times=2)
    with pytest.raises(OrderOutcomeUnknown) as unknown:
        tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert unknown.value.tag == "to-7-entry"
    assert fake_tradier.orders_tagged("to-7-entry") == []
    assert tradier.find_order_by_tag("to-7-entry") is None


def test_an_oco_that_timed_out_is_found_by_its_tag(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.inject("hang_after", method="POST", path="/orders")
    oco = tradier.place_oco_order(stop_loss(), take_profit())
    assert oco.order_class == "oco" and len(oco.legs) == 2
    assert len(fake_tradier.orders_tagged("to-7-sl")) == 1


def test_a_rejected_earlier_attempt_with_the_same_tag_does_not_stop_a_retry(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "60.00", "61.00")
    with pytest.raises(OrderRejected):
        tradier.place_order(buy(2, order_type=OrderType.LIMIT, limit="60.50"))
    fake_tradier.inject("drop", method="POST", path="/orders")
    order = tradier.place_order(buy(1, order_type=OrderType.LIMIT, limit="50.00"))
    assert order.status == OrderStatus.OPEN
    statuses = sorted(o.status for o in fake_tradier.orders_tagged("to-7-entry"))
    assert statuses == ["open", "rejected"]


def test_a_refused_connection_means_nothing_was_sent_and_is_not_unknown(make_client, sandbox_account):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{closed_port}/sandbox/v1")
    with pytest.raises(BrokerUnavailable) as unavailable:
        client.place_order(buy())
    assert not isinstance(unavailable.value, OrderOutcomeUnknown)
    assert "not sent" in str(unavailable.value)


# --- Errors: auth, maintenance, server errors, throttling ---------------------------------------


def test_a_wrong_token_is_an_auth_error_at_once_without_retries(make_client, sandbox_account, fake_tradier):
    client = make_client(token="not-a-real-token-123")
    with pytest.raises(BrokerAuthError) as refused:
        client.get_positions()
    assert "Invalid Access Token" in str(refused.value)
    assert len(fake_tradier.requests) == 1


def test_a_sandbox_token_on_the_live_url_is_refused(make_client, sandbox_account, fake_tradier):
    client = make_client(environment=LIVE)
    with pytest.raises(BrokerAuthError) as refused:
        client.get_account_balance()
    assert "no apiproduct match" in str(refused.value)
    assert raw_get(fake_tradier, f"/accounts/{ACCOUNT}/balances", environment=LIVE).json()["fault"]


def test_a_live_token_works_on_the_live_url_only(make_client, fake_tradier):
    fake_tradier.add_account(token=LIVE_TOKEN, account_id="6YA00001", cash=Decimal("500"), environment=LIVE)
    assert make_client(token=LIVE_TOKEN, environment=LIVE, account_id="6YA00001").get_positions() == []
    with pytest.raises(BrokerAuthError):
        make_client(token=LIVE_TOKEN, environment=SANDBOX, account_id="6YA00001").get_positions()


def test_an_order_placed_with_a_bad_token_is_not_retried(make_client, sandbox_account, fake_tradier):
    with pytest.raises(BrokerAuthError):
        make_client(token="expired-token-abc").place_order(buy())
    assert len(fake_tradier.requests) == 1


def test_a_maintenance_page_is_unavailable_not_garbage_and_is_not_hammered(tradier, fake_tradier):
    fake_tradier.maintenance = True
    with pytest.raises(BrokerUnavailable) as down:
        tradier.get_quotes([CALL])
    assert "maintenance" in str(down.value)
    assert len(fake_tradier.requests) == 1


def test_a_maintenance_page_on_a_post_places_nothing(tradier, fake_tradier):
    fake_tradier.inject("html_503", method="POST")
    with pytest.raises(BrokerUnavailable):
        tradier.place_order(buy())
    assert fake_tradier.orders == {}
    assert len(fake_tradier.requests_for("POST")) == 1


def test_a_500_on_a_read_is_retried(tradier, fake_tradier):
    fake_tradier.inject("500", method="GET", path="/positions")
    assert tradier.get_positions() == []
    assert len(fake_tradier.requests_for("GET", "/positions")) == 2


def test_a_read_that_keeps_failing_gives_up_after_the_bounded_retries(make_client, sandbox_account, fake_tradier):
    client = make_client(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02))
    fake_tradier.inject("500", method="GET", times=10)
    with pytest.raises(BrokerUnavailable) as down:
        client.get_account_balance()
    assert "HTTP 500" in str(down.value)
    assert len(fake_tradier.requests) == 3


def test_a_read_that_times_out_is_retried(tradier, fake_tradier):
    fake_tradier.hang_seconds = 0.6
    fake_tradier.inject("hang_after", method="GET", path="/balances")
    balance = tradier.get_account_balance()
    assert balance.total_cash == Decimal("10000")
    assert len(fake_tradier.requests_for("GET", "/balances")) == 2


def test_a_429_on_a_read_is_retried_after_the_pause(tradier, fake_tradier):
    fake_tradier.inject("429", method="GET", path="/positions")
    assert tradier.get_positions() == []
    assert len(fake_tradier.requests_for("GET", "/positions")) == 2


def test_a_quota_violation_400_is_throttling_too(tradier, fake_tradier):
    fake_tradier.inject("quota_400", method="GET", path="/positions")
    assert tradier.get_positions() == []
    assert len(fake_tradier.requests_for("GET", "/positions")) == 2


def test_the_client_stops_before_tradier_says_no(make_client, sandbox_account, fake_tradier):
    """Tradier allows three market-data calls a minute. After the second its headers say one is
    left, which is held back for a racing process: the third call is refused here, never sent."""
    fake_tradier.budgets["market_data"] = 3
    client = make_client(max_wait=0.2)
    fake_tradier.set_quote(CALL, "1.00", "1.10")
    client.get_quotes([CALL])
    client.get_quotes([CALL])
    with pytest.raises(BrokerRateLimited) as limited:
        client.get_quotes([CALL])
    assert limited.value.retry_after > 50
    assert len(fake_tradier.requests_for("GET", "/markets")) == 2
    assert client.get_positions() == []  # other groups carry on


def test_past_tradiers_limit_a_429_blocks_the_group_and_the_caller_is_told_not_kept_waiting(
    make_client, sandbox_account, fake_tradier
):
    """Another app spent the budget behind our back: Tradier says no, and we stop asking."""
    fake_tradier.budgets["standard"] = 1
    raw_get(fake_tradier, f"/accounts/{ACCOUNT}/positions")  # someone else's call
    client = make_client(max_wait=0.2)
    started = time.monotonic()
    with pytest.raises(BrokerRateLimited):
        client.get_positions()
    assert time.monotonic() - started < 1.0
    assert len(fake_tradier.requests_for("GET", "/positions")) == 2


# --- Quirks of the JSON ---------------------------------------------------------------------------


def test_one_order_comes_back_as_an_object_none_as_the_string_null(tradier, fake_tradier):
    assert raw_get(fake_tradier, f"/accounts/{ACCOUNT}/orders").json() == {"orders": "null"}
    assert tradier.get_orders() == []

    tradier.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    assert isinstance(raw_get(fake_tradier, f"/accounts/{ACCOUNT}/orders").json()["orders"]["order"], dict)
    assert [order.tag for order in tradier.get_orders()] == ["to-7-entry"]


def test_every_page_of_orders_is_read(make_client, sandbox_account, fake_tradier):
    client = make_client()
    client._page_size = 4
    for trade in range(10):
        client.place_order(buy(order_type=OrderType.LIMIT, limit="0.50", trade=trade))
    assert sorted(order.tag for order in client.get_orders()) == sorted(f"to-{t}-entry" for t in range(10))
    pages = [r.query["page"] for r in fake_tradier.requests_for("GET") if r.path.endswith("/orders")]
    assert pages == ["1", "2", "3"]


def test_positions_single_none_and_many(tradier, fake_tradier):
    assert raw_get(fake_tradier, f"/accounts/{ACCOUNT}/positions").json() == {"positions": "null"}
    assert tradier.get_positions() == []
    fake_tradier.add_position(ACCOUNT, CALL, 3, Decimal("600"))
    assert isinstance(raw_get(fake_tradier, f"/accounts/{ACCOUNT}/positions").json()["positions"]["position"], dict)
    [position] = tradier.get_positions()
    assert position.quantity == Decimal(3) and str(position.quantity) == "3"
    assert position.cost_basis == Decimal("600") and position.acquired_at.tzinfo == UTC
    fake_tradier.add_position(ACCOUNT, PUT, -1, Decimal("-150"))
    assert {p.symbol: p.quantity for p in tradier.get_positions()} == {CALL: 3, PUT: -1}


def test_balances_keep_every_digit_tradier_sends(tradier, fake_tradier):
    fake_tradier.accounts[ACCOUNT].cash = Decimal("17798.36")
    text = raw_get(fake_tradier, f"/accounts/{ACCOUNT}/balances").text
    assert '"total_cash": 17798.360000000000000000000000' in text
    balance = tradier.get_account_balance()
    assert balance.total_cash == Decimal("17798.36") and isinstance(balance.total_cash, Decimal)
    assert balance.option_buying_power == Decimal("17798.36")
    assert balance.account_type == "margin"


def test_a_cash_account_reports_cash_available_as_buying_power(make_client, fake_tradier):
    fake_tradier.add_account(token=SANDBOX_TOKEN, account_id=ACCOUNT, cash=Decimal("2500"), account_type="cash")
    balance = make_client().get_account_balance()
    assert balance.account_type == "cash" and balance.option_buying_power == Decimal("2500")


def test_quotes_one_many_unknown_and_epoch_milliseconds(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10", last="2.05")
    fake_tradier.set_quote(PUT, "1.00", "1.20")
    single = raw_get(fake_tradier, f"/markets/quotes?symbols={CALL},NOPE").json()["quotes"]
    assert isinstance(single["quote"], dict) and single["unmatched_symbols"] == {"symbol": "NOPE"}

    quotes = tradier.get_quotes([CALL, PUT, "NOPE", CALL])
    assert set(quotes) == {CALL, PUT}
    call = quotes[CALL]
    assert (call.bid, call.ask, call.last, call.mid) == (Decimal("2.0"), Decimal("2.1"), Decimal("2.05"),
                                                         Decimal("2.05"))
    assert call.bid_at.tzinfo == UTC and abs((datetime.now(UTC) - call.bid_at).total_seconds()) < 60
    assert call.greeks.delta == Decimal("0.5") and call.greeks.updated_at.tzinfo == UTC
    assert tradier.get_quotes(["NOPE"]) == {}


def test_quote_times_in_epoch_seconds_read_the_same(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    in_ms = tradier.get_quotes([CALL])[CALL].bid_at
    fake_tradier.epoch_seconds = True
    in_s = tradier.get_quotes([CALL])[CALL].bid_at
    assert abs((in_ms - in_s).total_seconds()) < 1


def test_the_broker_and_the_market_data_reader_read_one_quote_payload_alike(tradier, fake_tradier):
    """One parser: an odd count (Tradier's floats, a fractional size) is None on both sides, not
    an error for the broker and a None for the market data."""
    fake_tradier.set_quote(CALL, "2.00", "2.10", last="2.05")
    fake_tradier.set_quote_fields(CALL, bidsize=12.5, volume="1200.00000000", open_interest=None)
    reader = TradierMarketData(base_url=fake_tradier.url(SANDBOX), token=SANDBOX_TOKEN,
                               retry=RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.01))
    try:
        row = reader.quotes([CALL.lower()])[CALL]
    finally:
        reader.close()
    quote = tradier.get_quotes([CALL])[CALL]
    assert quote == row.quote and row.kind == "option"
    assert (quote.bid_size, quote.volume) == (None, 1200)
    chain = tradier.get_option_chain("SPY", date(2030, 1, 18))
    assert [entry.quote for entry in chain if entry.symbol == CALL] == [quote]


def test_an_option_chain_and_an_empty_one(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    fake_tradier.set_quote(PUT, "1.00", "1.20")
    fake_tradier.set_quote("SPY300215C00500000", "3.00", "3.20")  # another expiry
    chain = tradier.get_option_chain("SPY", date(2030, 1, 18))
    assert {(e.symbol, e.option_type, e.strike) for e in chain} == {(CALL, "CALL", Decimal("500.0")),
                                                                   (PUT, "PUT", Decimal("450.0"))}
    assert all(e.expiry == date(2030, 1, 18) and e.underlying == "SPY" for e in chain)
    assert raw_get(fake_tradier, "/markets/options/chains?symbol=QQQ&expiration=2030-01-18").json() == {
        "options": None}
    assert tradier.get_option_chain("QQQ", date(2030, 1, 18)) == []


def test_a_200_carrying_errors_is_an_error(tradier, fake_tradier):
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_oco_order(stop_loss(), sell(order_type=OrderType.STOP, stop="1.00", purpose="tp"))
    post = fake_tradier.requests_for("POST")[0]
    assert post.form["class"] == "oco"
    assert "different types" in rejected.value.reason


# --- Secrets ------------------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_exceptions_or_reprs(make_client, sandbox_account, fake_tradier, caplog,
                                                            redis_client, namespace):
    caplog.set_level(logging.DEBUG)  # everything: ours, requests', urllib3's (which settings keep at INFO)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    seen = []

    def remember(error):
        seen.extend([str(error), repr(error), "".join(traceback.format_exception(error))])

    good = make_client()
    seen.append(repr(good))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    fake_tradier.inject("hang_after", method="POST", path="/orders")
    good.place_order(buy())
    for failure, call in [
        ("drop", lambda: good.place_order(buy(trade=8, order_type=OrderType.LIMIT, limit="1.00"))),
        ("html_503", good.get_positions),
        ("500", good.get_account_balance),
    ]:
        fake_tradier.inject(failure, times=10)
        with pytest.raises(BrokerError) as error:
            call()
        remember(error.value)
        fake_tradier._faults.clear()
    with pytest.raises(BrokerAuthError) as refused:
        make_client(environment=LIVE).get_positions()
    remember(refused.value)
    with pytest.raises(OrderRejected) as rejected:
        good.place_order(buy(500, order_type=OrderType.LIMIT, limit="9.00", trade=9))
    remember(rejected.value)

    logged = caplog.text
    assert "looking its tag up" in logged and "urllib3" in logged, "the scenario must log, or it proves nothing"
    everything = caplog.text + "\n".join(seen)
    assert SANDBOX_TOKEN not in everything
    stored = b"".join(redis_client.dump(key) or b"" for key in redis_client.scan_iter(match=f"{namespace}:*"))
    assert SANDBOX_TOKEN.encode() not in stored


def test_the_account_number_never_appears_in_messages_or_our_logs(make_client, sandbox_account, fake_tradier,
                                                                   caplog):
    """Broker errors reach sync warnings, a trade's status_reason and the auth-failure webhook:
    they name the request (`/accounts/…/orders`) but not the trader's account number."""
    caplog.set_level(logging.DEBUG, logger="brokers")
    seen = []
    client = make_client(retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    fake_tradier.inject("drop", method="POST", path="/orders")
    client.place_order(buy(order_type=OrderType.LIMIT, limit="1.00"))
    for failure, call in [("500", client.get_account_balance), ("html_503", client.get_positions),
                          ("drop", client.get_positions)]:
        fake_tradier.inject(failure, times=10)
        with pytest.raises(BrokerError) as error:
            call()
        seen.append(str(error.value))
        fake_tradier._faults.clear()
    for call in (lambda: client.cancel_order("999"), make_client(environment=LIVE).get_positions):
        with pytest.raises(BrokerError) as error:
            call()
        seen.append(str(error.value))

    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("brokers"))
    assert "DELETE /accounts/…/orders/999" in "\n".join(seen), "messages still say which request failed"
    assert "POST /accounts/…/orders" in ours
    assert ACCOUNT not in "\n".join(seen) + ours


def test_the_account_number_is_not_in_the_clients_repr(make_client, sandbox_account):
    """A client lands in tracebacks, debug logs and Celery task reprs: it names its base URL, not
    the trader's account number."""
    client = make_client()
    shown = f"{client!r} {client!s}"
    assert "TradierClient" in shown and "account=…" in shown
    assert ACCOUNT not in shown
