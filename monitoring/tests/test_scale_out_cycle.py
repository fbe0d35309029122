"""Scale-out and partial closes end to end at the local paper broker: a trade opened over HTTP
with a policy, quotes moved by hand, the monitor's order cycle run as beat runs it."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from brokers.models import PaperFill, PaperOrder
from monitoring import tasks
from tests.factories import UserFactory
from tradeoptions import tenancy
from trades.models import Actor, CloseReason, ExitPartReason, PaperTrade, TradeExitPart, TradeStatus

from .conftest import SANDBOX_ACCOUNT

CONTRACT = "SPY261218C00570000"


pytestmark = pytest.mark.usefixtures("fresh_cache", "exit_policy_clock")


def _open(api_as, user, policy, qty=5):
    body = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": date(2026, 12, 18).isoformat(),
            "qty": qty, "entry_type": "market", "sl_price": "4.00", "tp_price": "8.00", "strategy": "momentum",
            "exit_policy": policy}
    answer = api_as(user).post("/api/trades", body, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def _cycle(market, trade_id, bid, ask, **delta):
    market.set_quote(CONTRACT, bid, ask)
    market.advance(**delta)
    tasks.sync_orders.apply().get()
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=trade_id)


def _sold(user) -> int:
    with tenancy.system_context():
        return sum(fill.quantity for fill in PaperFill.objects.filter(owner_id=user.pk, side="sell_to_close"))


def _parts(trade_id):
    with tenancy.system_context():
        return list(TradeExitPart.objects.filter(trade_id=trade_id).order_by("filled_at", "id"))


def _working_exits(user):
    with tenancy.system_context():
        return list(PaperOrder.objects.filter(owner_id=user.pk, status="open", parent__isnull=False,
                                              side="sell_to_close"))


def test_a_scale_out_sells_its_share_once_and_the_rest_rides_the_trailing_stop(api_as, trader, market):
    opened = _open(api_as, trader, {"scale_out_at_pct": "20", "scale_out_pct": "50", "trail_amount": "0.50",
                                    "trail_after_pct": "10", "min_step": "0.10"})
    trade_id = opened["id"]
    assert opened["entry_price"] == "4.3000" and opened["quantity_open"] == 5

    trade = _cycle(market, trade_id, "5.00", "5.20", seconds=20)  # +16 %: no scale-out yet; the stop trails
    assert trade.held_qty == 5 and trade.sl_price == Decimal("4.50") and not _parts(trade_id)
    trade = _cycle(market, trade_id, "5.20", "5.40", minutes=2)  # +20.9 %: half of 5, rounded down: 2 sold
    assert (trade.status, trade.held_qty, trade.part_pending_qty) == (TradeStatus.OPEN, 3, 0)
    [part] = _parts(trade_id)
    assert (part.quantity, part.price, part.reason) == (2, Decimal("5.20"), ExitPartReason.SCALE_OUT)
    assert part.pnl_gross == Decimal("180.00")  # (5.20 - 4.30) x 2 x 100
    # The bracket now covers the 3 left, never 5: stop and target each for 3.
    assert sorted(order.quantity for order in _working_exits(trader)) == [3, 3]
    assert _sold(trader) == 2

    trade = _cycle(market, trade_id, "5.60", "5.80", minutes=2)  # once only: no second scale-out
    assert trade.held_qty == 3 and len(_parts(trade_id)) == 1 and trade.sl_price == Decimal("5.10")
    trade = _cycle(market, trade_id, "5.05", "5.25", minutes=2)  # through the stop: the rest is sold
    assert (trade.status, trade.close_reason) == (TradeStatus.CLOSED, CloseReason.SL_HIT)
    assert _sold(trader) == 5
    parts = _parts(trade_id)
    assert [(p.quantity, p.reason) for p in parts] == [(2, ExitPartReason.SCALE_OUT), (3, ExitPartReason.FINAL)]
    assert parts[1].pnl_gross == Decimal("225.00")  # (5.05 - 4.30) x 3 x 100
    assert trade.realized_pnl == sum(p.pnl_gross for p in parts) == Decimal("405.00")
    assert trade.realized_pnl_net == sum(p.pnl_net for p in parts)
    assert trade.commission_total == sum(p.commission for p in parts)

    body = api_as(trader).get(f"/api/trades/{trade_id}").json()
    assert body["quantity_open"] == 0
    assert [(p["quantity"], p["reason"]) for p in body["parts"]] == [(2, "SCALE_OUT"), (3, "FINAL")]
    assert [h["quantity_open"] for h in body["quantity_history"]] == [5, 3, 0]
    with tenancy.system_context():
        events = [e for e in PaperTrade.objects.get(pk=trade_id).events.all() if "part" in e.payload]
    assert [(e.actor, e.actor_label) for e in events] == [(Actor.SYSTEM, "exit-policy")]


def test_a_scale_out_whose_sell_was_refused_fires_again_at_the_next_look(api_as, trader, market, monkeypatch):
    """A refused sell sold nothing: the scale-out has not happened, so the next look sells it."""
    from brokers.base import OrderRejected, parse_order_tag
    from brokers.paper import LocalPaperBroker

    place, refusals = LocalPaperBroker.place_order, []

    def refuse_the_first_part_sell(self, request):
        parsed = parse_order_tag(request.tag)
        if parsed is not None and parsed[1] == "part" and not refusals:
            refusals.append(request.tag)
            raise OrderRejected("market closed for this contract", tag=request.tag)
        return place(self, request)

    monkeypatch.setattr(LocalPaperBroker, "place_order", refuse_the_first_part_sell)
    opened = _open(api_as, trader, {"scale_out_at_pct": "20", "scale_out_pct": "50"})
    trade_id = opened["id"]
    market.set_quote(CONTRACT, "5.20", "5.40")  # +20.9 %: the sell is refused
    market.advance(seconds=20)
    assert "parts_sold=0" in str(tasks.sync_orders.apply().get()), "a refused part is no part sold"
    with tenancy.system_context():
        trade = PaperTrade.objects.get(pk=trade_id)
    assert refusals and (trade.held_qty, trade.part_pending_qty, trade.exit_scaled_out_at) == (5, 0, None)
    assert not _parts(trade_id) and sorted(order.quantity for order in _working_exits(trader)) == [5, 5]
    trade = _cycle(market, trade_id, "5.20", "5.40", minutes=2)  # the next look after the interval
    assert (trade.held_qty, trade.part_pending_qty) == (3, 0) and trade.exit_scaled_out_at is not None
    assert [(p.quantity, p.reason) for p in _parts(trade_id)] == [(2, ExitPartReason.SCALE_OUT)]
    assert sorted(order.quantity for order in _working_exits(trader)) == [3, 3]


def test_a_manual_partial_close_sells_part_and_keeps_the_rest_protected(api_as, trader, market):
    opened = _open(api_as, trader, {}, qty=3)
    trade_id = opened["id"]
    market.set_quote(CONTRACT, "4.80", "5.00")
    answer = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": opened["version"], "quantity": 1},
                                 format="json")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["status"], body["quantity_open"]) == ("OPEN", 2)
    assert [(p["quantity"], p["price"], p["reason"], p["pnl_gross"]) for p in body["parts"]] == [
        (1, "4.800000", "PARTIAL_CLOSE", "50.00")]
    assert sorted(order.quantity for order in _working_exits(trader)) == [2, 2]

    too_many = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": body["version"], "quantity": 5},
                                   format="json")
    assert too_many.status_code == 400
    [error] = too_many.json()["errors"]
    assert error["attr"] == "quantity" and error["detail"].startswith("The position holds 2 contracts")
    full = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": body["version"], "quantity": 2},
                               format="json")
    assert full.status_code == 200 and full.json()["status"] == "CLOSED"
    closed = api_as(trader).get(f"/api/trades/{trade_id}").json()
    assert [p["quantity"] for p in closed["parts"]] == [1, 2] and _sold(trader) == 3
    assert Decimal(closed["realized_pnl"]) == sum(Decimal(p["pnl_gross"]) for p in closed["parts"])
    assert Decimal(closed["realized_pnl_net"]) == sum(Decimal(p["pnl_net"]) for p in closed["parts"])


# --- Random price paths at the paper broker --------------------------------------------------------

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York


class ScaleOutAtThePaperBroker(RuleBasedStateMachine):
    """A trade with a scale-out and a trailing stop, opened over HTTP, then a random path of bids,
    each one the monitor's order cycle at the local paper broker. Whatever the path: the stop never
    loosens, no more than was bought is ever sold, every contract leaves once (the paper ledger's
    sells add up to the trade's parts), and a closed trade's P&L is the sum of its parts, to the cent."""

    market = None
    api_as = None

    @initialize(qty=st.integers(2, 6), share=st.sampled_from(["25", "50", "99"]),
                gain=st.sampled_from(["5", "15"]), trail=st.sampled_from(["0.20", "0.50"]))
    def open_trade(self, qty, share, gain, trail):
        self.market.moment = START
        self.market.set_quote(CONTRACT, "4.10", "4.30")
        self.user = UserFactory()
        opened = _open(self.api_as, self.user, {"scale_out_at_pct": gain, "scale_out_pct": share,
                                                "trail_amount": trail}, qty=qty)
        self.trade_id, self.bought, self.stop = opened["id"], qty, Decimal(opened["sl_price"])

    @rule(cents=st.integers(380, 820), minutes=st.integers(1, 4))
    def quote(self, cents, minutes):
        bid = Decimal(cents) / 100
        trade = _cycle(self.market, self.trade_id, str(bid), str(bid + Decimal("0.20")), minutes=minutes)
        if trade.status == TradeStatus.OPEN:
            assert trade.sl_price >= self.stop, "the stop never loosens"
            self.stop = trade.sl_price
        sold = _sold(self.user)
        assert sold <= self.bought, "never more sold than bought"
        parts = _parts(self.trade_id)
        assert sum(part.quantity for part in parts) == sold, "each contract sold is in exactly one part"
        assert sold + trade.quantity_open == (self.bought if trade.status != TradeStatus.CLOSED else sold)
        assert len([p for p in parts if p.reason == ExitPartReason.SCALE_OUT]) <= 1
        if trade.status == TradeStatus.CLOSED:
            assert sold == self.bought, "a closed trade has sold every contract, once"
            assert trade.realized_pnl == sum((p.pnl_gross for p in parts), Decimal(0))
            assert trade.realized_pnl_net == sum((p.pnl_net for p in parts), Decimal(0))
        else:
            assert sorted(o.quantity for o in _working_exits(self.user)) == [trade.quantity_open] * 2, (
                "the bracket covers exactly what is held")


def test_random_paths_with_a_scale_out_keep_every_promise(db, api_as, market):
    ScaleOutAtThePaperBroker.market, ScaleOutAtThePaperBroker.api_as = market, staticmethod(api_as)
    run_state_machine_as_test(ScaleOutAtThePaperBroker, settings=settings(
        max_examples=12, stateful_step_count=8, deadline=None, suppress_health_check=list(HealthCheck)))


def test_a_scale_out_at_tradier_cancels_sells_and_protects_the_rest_over_http(trader, tradier, market):
    """The same policy at the fake Tradier (real HTTP): the OCO cannot change its quantity, so it is
    cancelled, the part sold, and a new OCO placed for the rest; then the rest's stop fills."""
    from trades import services as trade_services
    from trades.models import Actor

    from .conftest import trade_as_stored

    data = trade_services.TradeOpenInput(
        ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=4,
        sl_price=Decimal("4.00"), tp_price=Decimal("8.00"),
        exit_policy={"scale_out_at_pct": "20", "scale_out_pct": "25"})
    trade = trade_services.trade_open(user=trader, data=data, market=market, actor=Actor.SYSTEM,
                                      actor_label="scanner").trade
    first_bracket = trade.bracket_order_id
    for bid, ask in (("5.20", "5.40"), ("5.25", "5.45")):  # the part's look, then the monitor's catch-up
        market.set_quote(CONTRACT, bid, ask)
        tradier.set_quote(CONTRACT, bid, ask)
        market.advance(minutes=1)
        tasks.sync_orders.apply().get()
    trade = trade_as_stored(trade.pk)
    assert (trade.status, trade.quantity_open, trade.part_pending_qty) == (TradeStatus.OPEN, 3, 0)
    assert trade.bracket_order_id and trade.bracket_order_id != first_bracket
    [part] = _parts(trade.pk)
    assert (part.quantity, part.reason, part.price) == (1, ExitPartReason.SCALE_OUT, Decimal("5.20"))
    working = [o for o in tradier.orders.values() if not o.legs and o.side == "sell_to_close"
               and o.status in ("open", "pending")]
    assert sorted(o.quantity for o in working) == [3, 3]
    assert tradier.accounts[SANDBOX_ACCOUNT].positions[CONTRACT].quantity == 3

    market.set_quote(CONTRACT, "3.90", "4.10")
    tradier.set_quote(CONTRACT, "3.90", "4.10")  # the rest's stop fills at the fake
    market.advance(minutes=1)
    tasks.sync_orders.apply().get()
    closed = trade_as_stored(trade.pk)
    assert (closed.status, closed.close_reason) == (TradeStatus.CLOSED, CloseReason.SL_HIT)
    assert CONTRACT not in tradier.accounts[SANDBOX_ACCOUNT].positions or (
        tradier.accounts[SANDBOX_ACCOUNT].positions[CONTRACT].quantity == 0)
    parts = _parts(trade.pk)
    assert [(p.quantity, p.reason) for p in parts] == [(1, ExitPartReason.SCALE_OUT), (3, ExitPartReason.FINAL)]
    assert closed.realized_pnl == sum(p.pnl_gross for p in parts)
    assert closed.realized_pnl_net == sum(p.pnl_net for p in parts)
