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

from decimal import Decimal

import pytest

from brokers.models import PaperOrder
from tradeoptions import tenancy
from trades import services
from trades.models import ExitPartReason, TradeExitPart, TradeStatus

from . import test_services_exit_races as races
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

