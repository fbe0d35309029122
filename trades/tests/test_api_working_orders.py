"""Working orders under the trader's control: a resting limit entry withdrawn or re-priced, a
pending close withdrawn or switched between market and limit, an order outside market hours
queued for the open and withdrawn before it fills; and a fill that beats any of these, which
wins, is recorded once, and leaves the position neither naked nor sold twice.

The local paper broker here (the hand-driven market: open Tuesday 2026-12-01 10:00 New York,
SPY 18 Dec 26 570 C at 4.10 / 4.30); Tradier's side is in test_tradier_working_orders.py.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.models import PaperOrder
from tradeoptions import tenancy
from trades import services
from trades.models import EventKind, PaperTrade, TradeEvent
from trades.services import orders

from .conftest import CONTRACT


@pytest.fixture
def client(api_as, trader, market):
    return api_as(trader)


@pytest.fixture
def resting(client, open_body):
    """Alice's limit entry at 4.00 under a 4.30 ask: PENDING, its OTOCO resting at the broker."""
    body = client.post("/api/trades", open_body(entry_type="limit", limit_price="4.00"), format="json").json()
    assert body["status"] == "PENDING" and body["queued_for_open"] is False
    return body


@pytest.fixture
def queued_close(client, market, open_body):
    """Alice's trade bought at market (4.30), then closed after the bell: its sell waits for the open."""
    opened = client.post("/api/trades", open_body(), format="json").json()
    assert opened["status"] == "OPEN"
    market.open = False
    market.moment = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 17:00 in New York
    response = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


class Racing:
    """The trader's real broker, with `before[method]` run right before its first such call: the
    market moving and the broker filling what it can, between two steps of a request."""

    def __init__(self, inner, before):
        self.inner, self.before, self.calls = inner, dict(before), []
        self.supports_otoco = inner.supports_otoco

    def __getattr__(self, name):
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            self.calls.append(name)
            if hook := self.before.pop(name, None):
                hook(self.inner)
            return target(*args, **kwargs)

        return call


@pytest.fixture
def racing(monkeypatch):
    """`racing(cancel_order=hook)`: the services' broker runs `hook(broker)` before that call."""
    real, made = orders.broker_for, []

    def arm(**before):
        def broker_for(account, *, market=None):
            made.append(Racing(real(account, market=market), before))
            return made[-1]

        monkeypatch.setattr(orders, "broker_for", broker_for)
        return made

    return arm


def _orders(user, **filters):
    with tenancy.acting_as(user.pk):
        return list(PaperOrder.objects.filter(**filters).order_by("id"))


def _working_exits(user, trade_id):
    """The trade's working sells: bracket legs and close orders."""
    return [order for order in _orders(user, side="sell_to_close", tag__startswith=f"to-{trade_id}-")
            if order.status in ("open", "pending", "partially_filled") and order.active]


def _held(broker_user, market):
    from brokers.paper import LocalPaperBroker

    with tenancy.acting_as(broker_user.pk):
        positions = LocalPaperBroker(broker_user.pk, starting_cash=Decimal(10000), market=market).get_positions()
    return {position.symbol: position.quantity for position in positions}


# --- the entry ------------------------------------------------------------------------------


def test_a_resting_entry_is_withdrawn_and_the_trade_cancelled(client, trader, resting):
    url = f"/api/trades/{resting['id']}/entry/cancel"
    response = client.post(url, {"version": resting["version"]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "CANCELED" and body["queued_for_open"] is False
    assert {order.status for order in _orders(trader, tag=f"to-{resting['id']}-entry")} == {"canceled"}
    requested = [event for event in body["events"] if event["payload"].get("requested") == "entry_cancel"]
    assert len(requested) == 1 and requested[0]["actor_username"] == "alice"
    assert body["events"][-1]["kind"] == "ORDER_CANCELED" and body["events"][-1]["new_status"] == "CANCELED"
    again = client.post(url, {"version": resting["version"]}, format="json")  # a repeat changes nothing
    assert again.status_code == 409 and again.json()["trade"]["status"] == "CANCELED"


def test_a_resting_entry_is_repriced_by_cancel_and_replace_with_its_bracket(client, trader, resting):
    response = client.post(f"/api/trades/{resting['id']}/entry/reprice",
                           {"version": resting["version"], "limit_price": "4.20"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "PENDING" and body["planned_entry_price"] == "4.2000"
    assert body["entry_order_id"] != resting["entry_order_id"]
    heads = _orders(trader, tag=f"to-{resting['id']}-entry", parent__isnull=True)
    assert [head.status for head in heads] == ["canceled", "open"]
    entry, sl, tp = _orders(trader, parent_id=heads[-1].pk)
    assert (entry.limit_price, sl.stop_price, tp.limit_price) == (Decimal("4.20"), Decimal("3.00"), Decimal("6.50"))
    assert Decimal(body["events"][-2]["payload"]["repriced_to"]) == Decimal("4.20")


def test_a_reprice_to_the_ask_fills_and_opens_protected(client, trader, resting, market):
    response = client.post(f"/api/trades/{resting['id']}/entry/reprice",
                           {"version": resting["version"], "limit_price": "4.30"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and body["entry_price"] == "4.3000" and not body["unprotected"]
    assert len(_working_exits(trader, resting["id"])) == 2  # the OTOCO's stop and target, one group


@pytest.mark.parametrize("price", ["3.00", "6.50", "2.00"])
def test_a_reprice_outside_the_bracket_is_refused_and_sends_nothing(client, trader, resting, price):
    response = client.post(f"/api/trades/{resting['id']}/entry/reprice",
                           {"version": resting["version"], "limit_price": price}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "limit_price"
    assert [o.status for o in _orders(trader, tag=f"to-{resting['id']}-entry", parent__isnull=True)] == ["open"]


def test_a_reprice_at_or_under_the_stop_says_the_stop_must_lie_below_the_entry(client, resting):
    response = client.post(f"/api/trades/{resting['id']}/entry/reprice",
                           {"version": resting["version"], "limit_price": "3.00"}, format="json")
    assert response.json()["errors"] == [{"code": "invalid", "attr": "limit_price", "detail": (
        "The stop-loss (3.00) would be at or above an entry at 3.00: a long option's stop must lie below its "
        "entry. Give a limit above 3.00, or cancel the entry and open it again with a lower stop.")}]


# --- a re-price within the risk limits and the buying power -----------------------------------


def _reprice(client, trade, price):
    return client.post(f"/api/trades/{trade['id']}/entry/reprice",
                       {"version": trade["version"], "limit_price": price}, format="json")


def _left_as_it_was(client, trader, trade) -> None:
    """Nothing claimed, nothing cancelled: the entry rests at its price, under the version the trader saw."""
    stored = client.get(f"/api/trades/{trade['id']}").json()
    assert (stored["version"], stored["planned_entry_price"]) == (trade["version"], trade["planned_entry_price"])
    (head,) = _orders(trader, tag=f"to-{trade['id']}-entry", parent__isnull=True)
    entry = _orders(trader, parent_id=head.pk)[0]
    assert (head.status, head.pk, entry.limit_price) == ("open", int(trade["entry_order_id"]), Decimal(
        trade["planned_entry_price"]))


def test_a_reprice_within_the_limits_counts_the_trades_own_risk_once(client, trader, resting):
    # The heat limit is $300 (6 % of $5,000). At 4.25 the entry risks $250 down to its 3.00 stop:
    # under the limit alone, over it beside the $200 the 4.00 order it replaces risks now.
    response = _reprice(client, resting, "4.25")
    assert response.status_code == 202, response.json()
    assert response.json()["planned_entry_price"] == "4.2500"
    heads = _orders(trader, tag=f"to-{resting['id']}-entry", parent__isnull=True)
    assert [head.status for head in heads] == ["canceled", "open"]


def test_a_reprice_over_the_heat_limit_is_refused_with_the_room_left_and_the_order_kept(client, trader, resting):
    response = _reprice(client, resting, "4.55")  # $310 down to the stop, over the $300 limit
    assert response.status_code == 422, response.json()
    assert response.json()["errors"] == [{"code": "risk_limit_exceeded", "attr": "limit_price", "detail": (
        "At 4.55 this entry would risk $310.00 down to its stop (3.00), and risk at the stops would be $310.00, "
        "6.20% of your $5,000.00 balance, over your heat limit of 6%: the highest limit that fits is 4.50.")}]
    _left_as_it_was(client, trader, resting)
    assert _reprice(client, resting, "4.50").status_code == 200  # the headroom told is real (4.50 buys at the ask)


def test_a_reprice_beyond_the_buying_power_is_refused_and_the_order_kept(client, trader, open_body):
    services.account_settings_update(user=trader, changes={"heat_limit_pct": Decimal("100")})
    resting = client.post("/api/trades", open_body(entry_type="limit", limit_price="4.00", qty=10),
                          format="json").json()
    # $5,000 of cash, $4,006.50 held by the entry (10 × 4.00 × 100 and $6.50 commission): $993.50 free.
    response = _reprice(client, resting, "5.10")
    assert response.status_code == 422, response.json()
    assert response.json()["errors"] == [{"code": "risk_limit_exceeded", "attr": "limit_price", "detail": (
        "At 5.10 this entry needs $1,100.00 more than its order holds now, and your buying power is $993.50: the "
        "highest limit that fits is 4.99.")}]
    _left_as_it_was(client, trader, resting)


def test_a_reprice_lower_is_allowed_over_every_limit(client, trader, resting, open_body):
    services.account_settings_update(user=trader, changes={"heat_limit_pct": Decimal("100")})
    assert client.post("/api/trades", open_body(qty=1), format="json").json()["status"] == "OPEN"
    services.account_settings_update(user=trader, changes={"max_positions": 1, "heat_limit_pct": Decimal("1")})
    higher = _reprice(client, resting, "4.05")
    assert higher.status_code == 422 and higher.json()["errors"][0]["detail"] == (
        "Besides this one, 1 trade is open or pending and your limit is 1 at a time: until one ends, this entry "
        "can only be re-priced at or below its current 4.00.")
    _left_as_it_was(client, trader, resting)
    lower = _reprice(client, resting, "3.90")
    assert lower.status_code == 202, lower.json()
    assert lower.json()["planned_entry_price"] == "3.9000"


def test_a_reprice_higher_waits_for_tomorrow_once_the_daily_loss_limit_is_hit(client, trader, market, resting,
                                                                               open_body):
    services.account_settings_update(user=trader, changes={"heat_limit_pct": Decimal("100")})
    lost = client.post("/api/trades", open_body(qty=1), format="json").json()  # bought at 4.30, sold at 2.50
    market.set_quote(CONTRACT, "2.50", "2.70")
    closed = client.post(f"/api/trades/{lost['id']}/close", {"version": lost["version"]}, format="json").json()
    assert closed["status"] == "CLOSED", closed
    response = _reprice(client, resting, "4.05")
    assert response.status_code == 422 and response.json()["errors"][0]["detail"].startswith(
        "Today's realized loss is $")
    assert response.json()["errors"][0]["detail"].endswith(
        "and your daily loss limit is $150.00: until tomorrow, this entry can only be re-priced at or below its "
        "current 4.00.")


def test_an_open_trade_has_no_entry_to_cancel(client, trader, open_body):
    opened = client.post("/api/trades", open_body(), format="json").json()
    response = client.post(f"/api/trades/{opened['id']}/entry/cancel", {"version": opened["version"]}, format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "invalid_state"
    assert response.json()["trade"]["status"] == "OPEN" and len(_working_exits(trader, opened["id"])) == 2


def test_a_stale_version_is_refused_with_the_trade_and_sends_nothing(client, trader, resting):
    stale = client.post(f"/api/trades/{resting['id']}/entry/cancel", {"version": resting["version"] - 1},
                        format="json")
    assert stale.status_code == 409 and stale.json()["errors"][0]["code"] == "version_conflict"
    assert stale.json()["trade"]["status"] == "PENDING"
    assert [o.status for o in _orders(trader, tag=f"to-{resting['id']}-entry", parent__isnull=True)] == ["open"]


@pytest.mark.parametrize("action", ["cancel", "reprice"])
def test_an_entry_that_fills_before_the_cancel_opens_the_trade_protected(client, trader, market, resting, racing,
                                                                         action):
    def fill(broker):
        market.set_quote(CONTRACT, "3.90", "4.00")
        assert broker.match() == 1

    made = racing(cancel_order=fill)
    body = {"version": resting["version"]} | ({"limit_price": "4.10"} if action == "reprice" else {})
    response = client.post(f"/api/trades/{resting['id']}/entry/{action}", body, format="json")
    assert response.status_code == 409, response.json()
    answer = response.json()
    assert answer["errors"][0]["code"] == "order_already_filled"
    trade = answer["trade"]
    assert trade["status"] == "OPEN" and trade["entry_price"] == "4.0000" and trade["qty"] == 2
    assert not trade["unprotected"] and trade["bracket_order_id"]
    # The cancel went to the whole OTOCO and took its exits: one new bracket protects the position.
    assert len(_working_exits(trader, resting["id"])) == 2
    assert _held(trader, market) == {CONTRACT: 2}
    assert "place_otoco_order" not in made[-1].calls  # nothing bought at the new price


# --- the close ----------------------------------------------------------------------------


def test_outside_market_hours_the_form_and_the_close_say_queued_for_the_open(client, market, open_body,
                                                                              queued_close):
    assert queued_close["status"] == "CLOSING" and queued_close["queued_for_open"] is True
    assert queued_close["next_session_open"] == "2026-12-02T14:30:00Z"
    check = client.post("/api/trades/validate", open_body(entry_type="limit", limit_price="3.20", qty=1),
                        format="json")
    answer = check.json()
    assert (answer["valid"], answer["queued_for_open"], answer["next_session_open"]) == (
        True, True, "2026-12-02T14:30:00Z")
    listed = client.get("/api/trades").json()["results"]
    assert [trade["queued_for_open"] for trade in listed] == [True]


def test_an_entry_queued_for_the_open_with_an_idempotency_key_is_answered_and_replayed(client, market, open_body):
    """The form sends every open with an Idempotency-Key; after the bell its answer carries the
    next open, which is stored for the replay as JSON (a datetime there once made it a 500)."""
    market.open = False
    market.moment = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 17:00 in New York
    body = open_body(entry_type="limit", limit_price="4.00")
    first = client.post("/api/trades", body, format="json", HTTP_IDEMPOTENCY_KEY="after-the-bell")
    assert first.status_code == 201, first.content
    answer = first.json()
    assert (answer["status"], answer["queued_for_open"], answer["next_session_open"]) == (
        "PENDING", True, "2026-12-02T14:30:00Z")
    again = client.post("/api/trades", body, format="json", HTTP_IDEMPOTENCY_KEY="after-the-bell")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == answer["id"] and again.json()["next_session_open"] == "2026-12-02T14:30:00Z"


def test_a_queued_close_is_withdrawn_and_the_position_protected_again(client, trader, market, queued_close):
    (sell,) = _orders(trader, tag=f"to-{queued_close['id']}-close")
    response = client.post(f"/api/trades/{queued_close['id']}/close/cancel", {"version": queued_close["version"]},
                           format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and body["close_order_id"] == "" and not body["unprotected"]
    assert body["queued_for_open"] is False
    assert [order.status for order in _orders(trader, pk=sell.pk)] == ["canceled"]
    exits = _working_exits(trader, queued_close["id"])
    assert sorted((o.order_type, o.quantity) for o in exits) == [("limit", 2), ("stop", 2)]
    assert _held(trader, market) == {CONTRACT: 2}
    market.open, market.moment = True, datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    market.set_quote(CONTRACT, "5.00", "5.20")  # the open: nothing sells, the withdrawn close stays withdrawn
    from brokers.paper import LocalPaperBroker
    with tenancy.acting_as(trader.pk):
        assert LocalPaperBroker(trader.pk, starting_cash=Decimal(10000), market=market).match() == 0
    assert _held(trader, market) == {CONTRACT: 2}


def test_a_queued_close_switches_to_limit_and_back_to_market(client, trader, queued_close):
    url = f"/api/trades/{queued_close['id']}/close/reprice"
    limit = client.post(url, {"version": queued_close["version"], "order_type": "limit", "limit_price": "5.10"},
                        format="json")
    assert limit.status_code == 202, limit.json()
    sells = _orders(trader, tag=f"to-{queued_close['id']}-close")
    assert [(s.order_type, s.limit_price, s.status) for s in sells] == [
        ("market", None, "canceled"), ("limit", Decimal("5.10"), "open")]
    assert limit.json()["close_order_id"] == str(sells[-1].pk)
    assert queued_close["close_order"] == {"order_type": "market", "limit_price": None}  # the row says how it sells
    assert limit.json()["close_order"] == {"order_type": "limit", "limit_price": "5.1000"}
    market = client.post(url, {"version": limit.json()["version"], "order_type": "market"}, format="json")
    assert market.status_code == 202 and market.json()["status"] == "CLOSING"
    assert client.get("/api/trades").json()["results"][0]["close_order"] == {"order_type": "market",
                                                                              "limit_price": None}
    assert [s.status for s in _orders(trader, tag=f"to-{queued_close['id']}-close")] == ["canceled", "canceled",
                                                                                       "open"]
    missing = client.post(url, {"version": market.json()["version"], "order_type": "limit"}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["attr"] == "limit_price"


@pytest.mark.parametrize("action", ["cancel", "reprice"])
def test_a_close_that_fills_before_the_cancel_is_closed_once_at_its_fill(client, trader, market, queued_close,
                                                                         racing, action):
    def the_open_fills_the_sell(broker):
        market.open, market.moment = True, datetime(2026, 12, 2, 14, 31, tzinfo=UTC)
        market.set_quote(CONTRACT, "5.00", "5.20")
        assert broker.match() == 1

    made = racing(cancel_order=the_open_fills_the_sell)
    body = {"version": queued_close["version"]}
    if action == "reprice":
        body |= {"order_type": "limit", "limit_price": "5.50"}
    response = client.post(f"/api/trades/{queued_close['id']}/close/{action}", body, format="json")
    assert response.status_code == 409, response.json()
    assert response.json()["errors"][0]["code"] == "order_already_filled"
    trade = response.json()["trade"]
    assert (trade["status"], trade["close_reason"], trade["close_price"]) == ("CLOSED", "MANUAL_CLOSE", "5.0000")
    assert trade["realized_pnl"] == "140.00"  # (5.00 − 4.30) × 2 × 100, once
    assert made[-1].calls == ["cancel_order"]  # no second sell, no bracket
    assert [s.status for s in _orders(trader, tag=f"to-{queued_close['id']}-close")] == ["filled"]
    assert _held(trader, market) == {} and _working_exits(trader, queued_close["id"]) == []
    with tenancy.acting_as(trader.pk):
        closed = TradeEvent.objects.filter(trade_id=queued_close["id"], new_status="CLOSED")
        assert closed.count() == 1 and closed.get().kind == EventKind.ORDER_FILLED


def test_the_monitor_leaves_a_trade_alone_while_a_request_works_its_orders(client, trader, market, queued_close,
                                                                           racing):
    """The sell fills at the open while the withdrawal is at the broker: the monitor's cycle in
    that moment must not record it beside the request (which does, once)."""
    from monitoring import sync

    seen = {}

    def the_monitor_runs_now(broker):
        market.open, market.moment = True, datetime(2026, 12, 2, 14, 31, tzinfo=UTC)
        market.set_quote(CONTRACT, "5.00", "5.20")
        broker.match()
        with tenancy.acting_as(trader.pk):
            trade = PaperTrade.objects.get(pk=queued_close["id"])
        seen["changed"] = sync.sync_trade(trade, sync.OrderBook(broker.get_orders()), broker, market, market.now())

    racing(cancel_order=the_monitor_runs_now)
    response = client.post(f"/api/trades/{queued_close['id']}/close/cancel", {"version": queued_close["version"]},
                           format="json")
    assert seen == {"changed": 0}
    assert response.status_code == 409 and response.json()["trade"]["status"] == "CLOSED"


def test_a_close_being_sent_by_another_request_is_not_touched(client, trader, queued_close):
    from trades.services.closing import trade_order_lease

    with trade_order_lease(queued_close["id"]) as ours:
        assert ours
        response = client.post(f"/api/trades/{queued_close['id']}/close/cancel",
                               {"version": queued_close["version"]}, format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "orders_busy"
    assert [s.status for s in _orders(trader, tag=f"to-{queued_close['id']}-close")] == ["open"]


def test_another_traders_trade_is_not_found(api_as, other_trader, resting):
    response = api_as(other_trader).post(f"/api/trades/{resting['id']}/entry/cancel",
                                         {"version": resting["version"]}, format="json")
    assert response.status_code == 404


def test_the_new_actions_are_documented(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in ("entry/cancel", "entry/reprice", "close/cancel", "close/reprice"):
        operation = paths[f"/api/trades/{{id}}/{path}"]["post"]
        assert {"200", "409"} <= operation["responses"].keys() and operation["summary"]


def test_a_close_whose_sell_never_reached_the_broker_is_withdrawn_under_a_new_bracket(client, trader, market,
                                                                                     open_body, scripted_broker):
    """The sell's answer was lost and no sell is listed under its tag: the close has no order to
    cancel. Withdrawing it reads the bracket's end again (already cancelled, nothing filled) and
    places the bracket again: OPEN and protected, nothing sold."""
    from brokers.base import OrderOutcomeUnknown

    opened = client.post("/api/trades", open_body(), format="json").json()
    scripted_broker(trader).fail("place_order", OrderOutcomeUnknown("timed out", tag=f"to-{opened['id']}-close"))
    closing = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert closing.status_code == 502 and closing.json()["trade"]["status"] == "CLOSING"
    response = client.post(f"/api/trades/{opened['id']}/close/cancel",
                           {"version": closing.json()["trade"]["version"]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and not body["unprotected"] and body["bracket_order_id"] != opened[
        "bracket_order_id"]
    assert _orders(trader, tag=f"to-{opened['id']}-close") == []
    assert sorted((o.order_type, o.quantity) for o in _working_exits(trader, opened["id"])) == [("limit", 2),
                                                                                              ("stop", 2)]
