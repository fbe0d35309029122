"""Working orders at Tradier, over real HTTP to the fake Tradier: a resting OTOCO entry withdrawn
or re-priced, a close withdrawn, and fills that beat the cancel.

What Tradier does with a cancel of an OTOCO whose entry has already filled is UNCONFIRMED (the
reference has no source): the fake does both (`otoco_cancel_after_entry_fill`), the whole order
cancelled with its exits, or the cancel refused as "order already in finalized state" with the
exits working on, and the position must end protected by exactly one bracket either way.
"""

from decimal import Decimal

import pytest

from trades import services
from trades.services import orders

from .conftest import CONTRACT, trade_at_fake_tradier

TOKEN = "sbxTOKEN-working-4c3b2a1f0e"
ACCOUNT = "VA00006161"
WORKING = ("open", "partially_filled", "pending")


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    return trade_at_fake_tradier(fake_tradier, trader, token=TOKEN, account=ACCOUNT)


@pytest.fixture
def client(api_as, trader, tradier):
    return api_as(trader)


@pytest.fixture
def resting(client, open_body):
    body = client.post("/api/trades", open_body(entry_type="limit", limit_price="4.00"), format="json").json()
    assert body["status"] == "PENDING", body
    return body


@pytest.fixture
def before_cancel(monkeypatch):
    """`before_cancel(hook)`: the services' broker runs `hook()` right before its first cancel, and
    records every call it is asked to make."""
    real, calls = orders.broker_for, []

    def arm(hook):
        pending = [hook]

        class Racing:
            def __init__(self, inner):
                self.inner, self.supports_otoco = inner, inner.supports_otoco

            def __getattr__(self, name):
                target = getattr(self.inner, name)

                def call(*args, **kwargs):
                    calls.append(name)
                    if name == "cancel_order" and pending:
                        pending.pop()()
                    return target(*args, **kwargs)

                return call if callable(target) else target

        monkeypatch.setattr(orders, "broker_for", lambda account, *, market=None: Racing(real(account, market=market)))
        return calls

    return arm


def _working_exits(fake, trade_id) -> list[tuple[str, int]]:
    """(type, quantity) of every working sell of the trade at Tradier, legs included."""
    tops = [order for order in fake.orders.values() if order.parent is None
            and (order.tag or "").startswith(f"to-{trade_id}-")]
    nodes = [node for top in tops for node in ([top, *top.legs] if top.legs else [top])]
    return sorted((node.type, node.quantity) for node in nodes
                  if node.side == "sell_to_close" and node.active and node.status in WORKING)


def _held(fake) -> dict[str, int]:
    return {symbol: int(position.quantity) for symbol, position in fake.accounts[ACCOUNT].positions.items()}


def test_a_resting_otoco_is_withdrawn_whole(client, tradier, resting):
    response = client.post(f"/api/trades/{resting['id']}/entry/cancel", {"version": resting["version"]},
                           format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "CANCELED"
    (otoco,) = tradier.orders_tagged(f"to-{resting['id']}-entry")
    assert [otoco.status, *(leg.status for leg in otoco.legs)] == ["canceled"] * 4
    assert tradier.requests_for("DELETE", f"/orders/{otoco.id}")


def test_a_resting_otoco_is_repriced_as_a_new_otoco(client, tradier, resting):
    response = client.post(f"/api/trades/{resting['id']}/entry/reprice",
                           {"version": resting["version"], "limit_price": "4.20"}, format="json")
    assert response.status_code == 202, response.json()
    old, new = tradier.orders_tagged(f"to-{resting['id']}-entry")
    assert old.status == "canceled" and new.order_class == "otoco" and new.legs[0].price == Decimal("4.20")
    assert response.json()["entry_order_id"] == str(new.id)
    assert not tradier.requests_for("PUT")  # cancel/replace, never Tradier's modify


@pytest.mark.parametrize("mode", ["cancels_exits", "refused"])
@pytest.mark.parametrize("action", ["cancel", "reprice"])
def test_an_entry_filled_before_the_cancel_opens_under_exactly_one_bracket(client, tradier, resting, before_cancel,
                                                                           mode, action):
    tradier.otoco_cancel_after_entry_fill = mode
    calls = before_cancel(lambda: tradier.set_quote(CONTRACT, "3.90", "4.00"))  # the entry fills at 4.00
    body = {"version": resting["version"]} | ({"limit_price": "4.10"} if action == "reprice" else {})
    response = client.post(f"/api/trades/{resting['id']}/entry/{action}", body, format="json")
    assert response.status_code == 409, response.json()
    assert response.json()["errors"][0]["code"] == "order_already_filled"
    trade = response.json()["trade"]
    assert (trade["status"], trade["entry_price"], trade["qty"]) == ("OPEN", "4.0000", 2)
    assert not trade["unprotected"]
    assert _working_exits(tradier, resting["id"]) == [("limit", 2), ("stop", 2)]
    assert _held(tradier) == {CONTRACT: 2}
    assert "place_otoco_order" not in calls
    assert ("place_oco_order" in calls) == (mode == "cancels_exits")  # a new bracket only if the old one went


@pytest.fixture
def queued_close(client, tradier, open_body):
    """Bought at 4.30; the close's market sell rests on a book with no bid (as before the open)."""
    opened = client.post("/api/trades", open_body(), format="json").json()
    tradier.set_quote(CONTRACT, "0", "0.05")
    response = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def test_a_working_close_is_withdrawn_and_the_position_protected_again(client, tradier, queued_close):
    response = client.post(f"/api/trades/{queued_close['id']}/close/cancel", {"version": queued_close["version"]},
                           format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "OPEN" and not response.json()["unprotected"]
    (sell,) = tradier.orders_tagged(f"to-{queued_close['id']}-close")
    assert sell.status == "canceled"
    assert _working_exits(tradier, queued_close["id"]) == [("limit", 2), ("stop", 2)]
    assert _held(tradier) == {CONTRACT: 2}


@pytest.mark.parametrize("action", ["cancel", "reprice"])
def test_a_close_filled_before_the_cancel_is_closed_once(client, tradier, queued_close, before_cancel, action):
    calls = before_cancel(lambda: tradier.set_quote(CONTRACT, "5.00", "5.20"))  # the sell fills at 5.00
    body = {"version": queued_close["version"]}
    if action == "reprice":
        body |= {"order_type": "limit", "limit_price": "5.50"}
    response = client.post(f"/api/trades/{queued_close['id']}/close/{action}", body, format="json")
    assert response.status_code == 409, response.json()
    trade = response.json()["trade"]
    assert (trade["status"], trade["close_price"], trade["realized_pnl"]) == ("CLOSED", "5.0000", "140.00")
    assert [order.status for order in tradier.orders_tagged(f"to-{queued_close['id']}-close")] == ["filled"]
    assert "place_order" not in calls and "place_oco_order" not in calls
    assert _held(tradier) == {} and _working_exits(tradier, queued_close["id"]) == []


# --- a re-price within the risk limits and the buying power -----------------------------------


def _reprice(client, trade, price):
    return client.post(f"/api/trades/{trade['id']}/entry/reprice",
                       {"version": trade["version"], "limit_price": price}, format="json")


def _still_working_at(tradier, trade, price: str) -> None:
    """The OTOCO placed with the trade works at Tradier as it was: no cancel was sent."""
    (otoco,) = tradier.orders_tagged(f"to-{trade['id']}-entry")
    assert str(otoco.id) == trade["entry_order_id"] and otoco.status in WORKING
    assert otoco.legs[0].price == Decimal(price) and otoco.legs[0].status in WORKING
    assert not tradier.requests_for("DELETE")


def test_a_reprice_over_the_heat_limit_leaves_the_otoco_working(client, tradier, resting):
    response = _reprice(client, resting, "4.55")  # $310 down to the 3.00 stop; the limit is $300
    assert response.status_code == 422, response.json()
    (error,) = response.json()["errors"]
    assert (error["attr"], error["code"]) == ("limit_price", "risk_limit_exceeded")
    assert error["detail"].endswith("over your heat limit of 6%: the highest limit that fits is 4.50.")
    _still_working_at(tradier, resting, "4.00")


def test_a_reprice_beyond_the_buying_power_leaves_the_otoco_working(client, tradier, resting):
    tradier.accounts[ACCOUNT].cash = Decimal("850")  # $50 free beside the $800 the resting entry holds
    response = _reprice(client, resting, "4.30")
    assert response.status_code == 422, response.json()
    assert response.json()["errors"] == [{"code": "risk_limit_exceeded", "attr": "limit_price", "detail": (
        "At 4.30 this entry needs $60.00 more than its order holds now, and your buying power is $50.00: the "
        "highest limit that fits is 4.25.")}]
    _still_working_at(tradier, resting, "4.00")
    within = _reprice(client, resting, "4.25")  # the headroom told, its own $800 counted once
    assert within.status_code == 202, within.json()
    old, new = tradier.orders_tagged(f"to-{resting['id']}-entry")
    assert old.status == "canceled" and new.legs[0].price == Decimal("4.25") and new.status in WORKING


def test_a_reprice_lower_at_tradier_is_allowed_over_every_limit(client, trader, tradier, resting):
    tradier.accounts[ACCOUNT].cash = Decimal("800")  # not a cent free
    services.account_settings_update(user=trader, changes={"heat_limit_pct": Decimal("1")})
    assert _reprice(client, resting, "4.05").status_code == 422
    lower = _reprice(client, resting, "3.90")
    assert lower.status_code == 202, lower.json()
    old, new = tradier.orders_tagged(f"to-{resting['id']}-entry")
    assert old.status == "canceled" and new.legs[0].price == Decimal("3.90")
