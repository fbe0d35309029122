"""A bracket leg that fills between any two steps of a partial sale (a scale-out or a trader's
partial close), and a process killed between them.

The harness is the close's (test_services_exit_races): the production Tradier client over real
HTTP to the fake Tradier (which accepts a sell its working exits already cover, or refuses it),
and the local paper broker; the market moves through the stop or the target right before the
n-th broker call, for every n. After each run and the monitor's catch-up:

- the account never holds a negative quantity, and never more is sold than was bought;
- every contract sold is in exactly one of the trade's parts, and a closed trade's P&L is the
  sum of its parts', gross and net, to the cent;
- the position is without a working exit for at most the sale's two steps in between (the
  cancel's answer and the sell), never longer;
- a trade still open has a bracket for exactly what it holds.
"""

from dataclasses import replace
from decimal import Decimal

import pytest

from brokers.base import BrokerError, Fill, Order, OrderStatus
from brokers.models import PaperOrder
from brokers.paper import LocalPaperBroker
from tradeoptions import tenancy
from trades import services
from trades.models import Actor, ExitPartReason, TradeExitPart, TradeStatus
from trades.services import closing, parts
from trades.services.lifecycle import trade_transition

from . import test_services_exit_races as races
from .conftest import CONTRACT, EXPIRY
from .test_services_exit_races import BROKERS, QTY, THROUGH, ProcessDied, Venue, _killed, _open, _trade

venue, racing = races.venue, races.racing  # the close's fixtures: the broker behaviours, the racing broker

SALE = ["cancel_order", "place_order", "place_oco_order"]  # the bracket, the part's sell, the rest's bracket
CASES = [(broker, leg, at) for broker in BROKERS for leg in THROUGH for at in range(len(SALE) + 1)]


def _sell_part(venue, trade, racing, *, at, fill):
    armed = racing(at=at, fill=fill, look=venue.look)
    result = services.trade_part_sell(user=venue.user, trade_id=trade.pk, version=trade.version, quantity=1,
                                      reason=ExitPartReason.PARTIAL_CLOSE, market=venue.market)
    armed.broker.after_last()
    return armed.broker, result


def _sold(venue, trade_id) -> int:
    """Contracts the trade's sells executed, at the broker."""
    if venue.fake is not None:
        return sum(o.exec_quantity for o in venue.fake.orders.values()
                   if not o.legs and o.side == "sell_to_close" and o.exec_quantity
                   and (o.parent or o).tag.startswith(f"to-{trade_id}-"))
    with tenancy.acting_as(venue.user.pk):
        return sum(PaperOrder.objects.filter(tag__startswith=f"to-{trade_id}-", side="sell_to_close")
                   .values_list("filled_quantity", flat=True))


def _working_exit_quantities(venue) -> list[int]:
    if venue.fake is not None:
        with venue.fake._lock:
            return sorted(o.quantity - o.exec_quantity for o in venue.fake.orders.values()
                          if o.side == "sell_to_close" and not o.legs and o.active
                          and o.status in ("pending", "open", "partially_filled"))
    with tenancy.acting_as(venue.user.pk):
        return sorted(PaperOrder.objects.filter(side="sell_to_close", active=True,
                                                status__in=["pending", "open", "partially_filled"])
                      .values_list("quantity", flat=True))


def _parts(trade_id):
    with tenancy.system_context():
        return list(TradeExitPart.objects.filter(trade_id=trade_id).order_by("filled_at", "id"))


def _promises_hold(venue, trade, seen):
    final = _trade(trade.pk)
    assert min(position for position, _ in seen) >= 0, f"the account went short: {seen}"
    sold = _sold(venue, trade.pk)
    parts = _parts(trade.pk)
    assert sold <= QTY and sum(part.quantity for part in parts) == sold, (sold, parts)
    assert seen[-1][0] == QTY - sold
    if final.status == TradeStatus.CLOSED:
        assert sold == QTY
        assert final.realized_pnl == sum((part.pnl_gross for part in parts), Decimal(0))
        assert final.realized_pnl_net == sum((part.pnl_net for part in parts), Decimal(0))
    else:
        assert final.status == TradeStatus.OPEN and not final.part_pending_qty
        assert final.quantity_open == QTY - sold
        assert _working_exit_quantities(venue) == [final.quantity_open] * 2, "the rest's bracket, and only it"
    return final, parts


@pytest.mark.parametrize(("venue", "leg", "at"), CASES, indirect=["venue"],
                         ids=[f"{b}-{leg}-before-call-{at}" for b, leg, at in CASES])
def test_a_leg_filling_between_any_two_steps_of_a_partial_sale_never_oversells_or_strands(venue, leg, at, racing):
    trade = _open(venue.user, venue.market)
    broker, _ = _sell_part(venue, trade, racing, at=at, fill=lambda: venue.move(leg))
    assert broker.fired, "the market move never happened"
    for _ in range(2):  # the monitor: a fill that came after the answer, then the rest's bracket
        venue.catch_up()
    seen = [*broker.seen, venue.look()]
    naked = [stranded for _, stranded in seen]
    assert not any(a and b and c for a, b, c in zip(naked, naked[1:], naked[2:], strict=False)), (
        f"held without an exit for more than the sale's two steps: {list(zip(broker.calls, naked, strict=False))}")
    final, parts = _promises_hold(venue, trade, seen)
    if at == 0:  # the bracket sold everything before the sale began: no part, one exit
        assert (final.status, [p.reason for p in parts]) == (TradeStatus.CLOSED, [ExitPartReason.FINAL])


@pytest.mark.parametrize("venue", BROKERS, indirect=True)
def test_with_nothing_filling_a_partial_sale_cancels_sells_then_protects_the_rest(venue, racing):
    trade = _open(venue.user, venue.market)
    broker, result = _sell_part(venue, trade, racing, at=None, fill=None)
    assert broker.calls == SALE and result.problem is None
    venue.catch_up()
    final, parts = _promises_hold(venue, trade, [*broker.seen, venue.look()])
    assert (final.status, final.quantity_open, [(p.quantity, p.reason) for p in parts]) == (
        TradeStatus.OPEN, 1, [(1, ExitPartReason.PARTIAL_CLOSE)])
    assert parts[0].pnl_gross == (parts[0].price - final.entry_price) * 100


@pytest.mark.parametrize("killed_before", [1, 2])
def test_a_partial_sale_the_process_left_between_steps_is_finished_by_the_monitor(trader, market, racing,
                                                                                 killed_before):
    """Killed after the cancel (nothing sold yet) or after the sell (the rest unprotected): the
    trade records the step; the monitor sells once only, then protects the rest."""
    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    racing(at=killed_before, fill=_killed, look=venue.look)
    with pytest.raises(ProcessDied):
        services.trade_part_sell(user=trader, trade_id=trade.pk, version=trade.version, quantity=1,
                                 reason=ExitPartReason.PARTIAL_CLOSE, market=market)
    stuck = _trade(trade.pk)
    assert stuck.status == TradeStatus.OPEN and stuck.part_pending_qty == 1
    with pytest.raises(services.InvalidTransition, match="A part of this position is being sold"):
        services.trade_close(user=trader, trade_id=trade.pk, version=stuck.version, market=market)
    for _ in range(3):  # 90 s apart: past the time a request could still be at work on it
        market.advance(seconds=90)
        venue.catch_up()
    final, parts = _promises_hold(venue, trade, [venue.look()])
    assert (final.status, final.quantity_open, [p.quantity for p in parts]) == (TradeStatus.OPEN, 1, [1])


def test_a_part_larger_than_the_position_is_refused_on_its_field(trader, market):
    trade = _open(trader, market)
    with pytest.raises(services.InvalidTradeInput) as refused:
        services.trade_part_sell(user=trader, trade_id=trade.pk, version=trade.version, quantity=QTY,
                                 reason=ExitPartReason.PARTIAL_CLOSE, market=market)
    assert refused.value.field_errors["quantity"] == [
        "The position holds 2 contracts: a partial close sells fewer (close the trade to sell them all)."]
    assert _trade(trade.pk).version == trade.version



# --- The reviewer's defects: each test failed before its fix ---------------------------------------

SYSTEM = {"actor": Actor.SYSTEM, "actor_label": "test"}


def _open_four(user, market):
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY,
                                   qty=4, sl_price=Decimal("4.00"), tp_price=Decimal("6.50"))
    return services.trade_open(user=user, data=data, market=market, **SYSTEM).trade


def _paper(user, market) -> LocalPaperBroker:
    return LocalPaperBroker(user.pk, starting_cash=Decimal("10000"), market=market)


def test_a_second_sale_killed_before_its_sell_was_saved_is_not_mistaken_for_the_first_sales_unfilled_sell(
        trader, market, monkeypatch):
    """The first sale's sell ends unfilled; the second's is placed (and fills) but the process
    dies before its id is saved. The monitor must find the second sell (its own tag), not the
    first one: else it re-brackets all 4 contracts while only 3 are held."""
    venue = Venue("paper", trader, market)
    trade = _open_four(trader, market)
    market.set_quote(CONTRACT, None, "4.30")  # no bid: the first sale's market sell rests unfilled
    services.trade_part_sell(user=trader, trade_id=trade.pk, version=trade.version, quantity=1,
                             reason=ExitPartReason.PARTIAL_CLOSE, market=market)
    resting = _trade(trade.pk)
    assert resting.part_order_id and resting.part_pending_qty == 1
    with tenancy.acting_as(trader.pk):
        _paper(trader, market).cancel_order(resting.part_order_id)
    venue.catch_up()
    idle = _trade(trade.pk)
    assert (idle.part_pending_qty, idle.quantity_open, _working_exit_quantities(venue)) == (0, 4, [4, 4])

    market.set_quote(CONTRACT, "4.80", "5.00")
    real = parts.trade_transition

    def dies_at_the_save(**kwargs):
        if (kwargs.get("changes") or {}).get("part_order_id"):
            raise ProcessDied
        return real(**kwargs)

    monkeypatch.setattr(parts, "trade_transition", dies_at_the_save)
    with pytest.raises(ProcessDied):
        services.trade_part_sell(user=trader, trade_id=trade.pk, version=idle.version, quantity=1,
                                 reason=ExitPartReason.PARTIAL_CLOSE, market=market)
    monkeypatch.setattr(parts, "trade_transition", real)
    assert not _trade(trade.pk).part_order_id
    for _ in range(3):
        market.advance(seconds=90)
        venue.catch_up()
    final = _trade(trade.pk)
    assert (final.status, final.part_pending_qty, final.quantity_open) == (TradeStatus.OPEN, 0, 3)
    assert [p.quantity for p in _parts(trade.pk)] == [1] and _sold(venue, trade.pk) == 1
    assert _working_exit_quantities(venue) == [3, 3], "the bracket covers what is held, never more"
    with tenancy.acting_as(trader.pk):
        tags = sorted(PaperOrder.objects.filter(tag__startswith=f"to-{trade.pk}-part").values_list("tag", flat=True))
    assert tags == [f"to-{trade.pk}-part1", f"to-{trade.pk}-part2"]


def test_a_part_whose_row_cannot_be_written_leaves_the_trade_as_it_was(trader, market, monkeypatch):
    trade = _open(trader, market)

    def refused(*args, **kwargs):
        raise RuntimeError("the part's row could not be written")

    monkeypatch.setattr(parts, "part_row_create", refused)
    monkeypatch.setattr(closing, "part_row_create", refused)
    legs_sold = closing.Withdrawal(orders=[], exit_fill=None, final=True, sold=1, proceeds=Decimal("6.50"))
    with tenancy.acting_as(trader.pk):
        with pytest.raises(RuntimeError):
            parts.part_record(trade=trade, quantity=1, proceeds=Decimal("4.80"), at=market.now(),
                              reason=ExitPartReason.PARTIAL_CLOSE, **SYSTEM)
        with pytest.raises(RuntimeError):
            closing.exit_fills_record(trade=trade, withdrawn=legs_sold, **SYSTEM)
    after = _trade(trade.pk)
    assert (after.version, after.exit_filled_qty, after.bracket_order_id) == (
        trade.version, 0, trade.bracket_order_id)


def _pending(trade, market, order_id):
    with tenancy.acting_as(trade.owner_id):
        return trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, changes={
            "part_pending_qty": 1, "part_pending_reason": ExitPartReason.PARTIAL_CLOSE, "part_order_id": order_id,
            "part_started_at": market.now()}, **SYSTEM)


class _Reads:
    """A broker that answers `get_order` with `answer` (or raises it) and counts the reads; the
    rest is `inner`'s (the paper broker's)."""

    def __init__(self, answer, inner=None) -> None:
        self.answer, self.reads, self.inner = answer, [], inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_order(self, order_id):
        self.reads.append(order_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_sell_reported_sold_without_its_price_stays_pending_until_the_broker_gives_the_price(trader, market):
    trade = _pending(_open(trader, market), market, "777")
    priceless = Order(id="777", status=OrderStatus.FILLED, order_class="option", tag=f"to-{trade.pk}-part1",
                      quantity=1, filled_quantity=1)
    priced = replace(priceless, fill=Fill(quantity=1, price=Decimal("4.80"), at=market.now()))
    broker = _Reads(priced)
    with tenancy.acting_as(trader.pk):
        after = parts.part_sale_confirm(trade=trade, sell=priceless, broker=broker, **SYSTEM)
        assert (after.version, after.part_pending_qty, _parts(trade.pk)) == (trade.version, 1, [])
        resumed = services.part_sale_resume(trade=after, broker=broker, found=[priceless], at=market.now(),
                                            **SYSTEM)
    assert broker.reads == ["777"], "listed without a price: read again"
    assert (resumed.part_pending_qty, resumed.exit_filled_qty) == (0, 1)
    assert [(p.quantity, p.price) for p in _parts(trade.pk)] == [(1, Decimal("4.80"))]


def test_a_sale_whose_sell_cannot_be_read_five_looks_running_is_released_with_its_bracket(trader, market):
    venue = Venue("paper", trader, market)
    trade = _pending(_open(trader, market), market, "424242")
    broker = _Reads(BrokerError("order 424242 not found"), _paper(trader, market))
    for look in range(1, parts.SELL_UNREADABLE_LOOKS + 1):
        with tenancy.acting_as(trader.pk):
            trade = services.part_sale_resume(trade=trade, broker=broker, found=[], at=market.now(), **SYSTEM)
        assert bool(trade.part_pending_qty) == (look < parts.SELL_UNREADABLE_LOOKS), look
    assert "could not be read" in trade.attention_reason and not trade.part_order_id
    assert trade.bracket_order_id and _working_exit_quantities(venue) == [2, 2], "everything held, protected"
