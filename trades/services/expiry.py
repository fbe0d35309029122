"""Expiry of a multi-leg trade: each leg settles at its own expiry, and the trade closes when the
last one has (docs/spreads.md, "Expiry").

The monitor (`monitoring.expiry`) brings the facts: for each leg whose settlement moment has
passed, the underlying's settlement price (the close at the cutoff; an AM-settled index's
expiry-day opening) and that moment. This module decides, leg by leg (`brokers.settlement`):
out of the money → EXPIRED at 0; in the money → CASH_SETTLED (index), EXERCISED (long) or
ASSIGNED (short), at intrinsic value to the cent. Each leg's `exit_price` and `exit_reason` are
written with an audit event in one transaction with the trade's change.

When every leg has settled, the trade closes as EXPIRED: `close_price` is the held net of the
legs' exits (a credit trade's is what the settlement cost it, positive), and `realized_pnl` is
Σ over legs of side × ratio × (exit − entry) × units × 100, exactly. No commission is charged on
contracts an expiry settles (`costs.SETTLED_WITHOUT_COMMISSION`).

**A calendar (or any trade whose legs expire on different days) is kept OPEN** after its front
leg settles: that leg keeps its exit price and reason, and the back leg stays held, marked, and
closed later by an exit, a manual close or its own expiry. Closing the back leg at the front's
cutoff would sell it into the last minutes of a session at whatever bid is there; the paper
broker, like a real account, still holds it, so the trade's rows and the ledger agree. Readers
of a partly settled trade count a settled leg at its `exit_price` and send orders for the live
legs only (`live_legs`).

At Tradier expiry and assignment happen at the broker. The legs are settled here only once the
account no longer shows their contracts (a read that fails, or a contract still shown, waits:
no close is guessed); an account that now shows shares of the underlying, which an equity
option's assignment or exercise delivers, marks the trade for the trader's attention in those
words (what Tradier reports around expiry is UNCONFIRMED in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from brokers.base import BrokerError, BrokerProvider, OrderStatus
from brokers.models import BrokerMode
from brokers.occ import parse_symbol
from brokers.settlement import ASSIGNED, EXERCISED, leg_settlement
from trades.models import (
    CONTRACT_MULTIPLIER,
    CloseReason,
    EventKind,
    LegSide,
    NotificationEvent,
    PaperTrade,
    TradeEvent,
    TradeLeg,
    TradeStatus,
)
from trades.net_price import direction_sign

from .channel_delivery import channel_messages_write
from .costs import exit_costs
from .lifecycle import trade_flag, trade_transition

CENT = Decimal("0.01")
EXPIRY = "EXPIRY"


@dataclass(frozen=True)
class LegSettlementPrice:
    """The underlying's settlement price for a leg's expiry, and when it was fixed."""

    underlying: Decimal
    at: datetime


def live_legs(trade: PaperTrade) -> list[TradeLeg]:
    """The legs still held: neither closed by an order nor settled at expiry."""
    return [leg for leg in trade.legs.order_by("position") if not leg.exit_reason]


def spread_realized_pnl(legs: list[TradeLeg], units: int) -> Decimal:
    """Σ side × ratio × (exit − entry) × units × 100 over legs that have both prices."""
    return sum((leg.sign * leg.ratio * (leg.exit_price - leg.entry_price) * units * CONTRACT_MULTIPLIER
                for leg in legs), Decimal(0))


def spread_expiry_settle(*, trade: PaperTrade, broker: BrokerProvider, prices: dict[str, LegSettlementPrice],
                         **who) -> str | None:
    """Settle the trade's live legs that have a settlement price in `prices` (by option symbol).
    Returns the trade's close reason when it closed, "SETTLED" when legs settled and others are
    still held, None when nothing could be settled this time (the broker did not answer, still
    shows the contracts, or a closing order filled and its fill is the outcome)."""
    if trade.close_order_id:  # a closing multileg order: it ends first, and its fill wins over expiry
        try:
            close = broker.cancel_order(trade.close_order_id)
        except BrokerError:
            return None
        if close.status == OrderStatus.FILLED or not close.status.is_final:
            return None  # the close's fill (or its end) is the monitor's order sync to record
        if close.filled_quantity or any(leg.filled_quantity for leg in close.legs):
            return _broken_close_flagged(trade, who)  # those legs left by the order, not at intrinsic
    due = [leg for leg in live_legs(trade) if leg.option_symbol in prices]
    if not due:
        return None
    shares = None
    if trade.broker_mode != BrokerMode.LOCAL_PAPER:
        held = _broker_holdings(broker)
        if held is None or any(held.get(leg.option_symbol) for leg in due):
            return None  # the broker has not settled them yet: nothing is guessed
        shares = held.get(trade.ticker) or None
    return _settle(trade, due, prices, shares=shares, who=who)


BROKEN_CLOSE_AT_EXPIRY = (
    "The closing order ended with only some legs filled and the rest reached expiry: nothing is settled "
    "here, since the filled legs were already closed. Check the positions at the broker and close the "
    "trade by hand.")


def _broken_close_flagged(trade: PaperTrade, who: dict) -> None:
    """A broken spread (its closing order filled some legs) is a person's to settle: told once."""
    if trade.attention_reason != BROKEN_CLOSE_AT_EXPIRY:
        trade_flag(trade_id=trade.pk, changes={"attention_reason": BROKEN_CLOSE_AT_EXPIRY},
                   payload={"source": EXPIRY, "close_order_id": trade.close_order_id},
                   actor=who.get("actor", "SYSTEM"), actor_label=who.get("actor_label", ""))
    return None


def _broker_holdings(broker: BrokerProvider) -> dict[str, Decimal] | None:
    try:
        return {position.symbol: position.quantity for position in broker.get_positions()}
    except BrokerError:
        return None


def _settle(trade: PaperTrade, due: list[TradeLeg], prices: dict[str, LegSettlementPrice], *,
            shares: Decimal | None, who: dict) -> str:
    settled = []
    for leg in due:
        price = prices[leg.option_symbol]
        outcome = leg_settlement(root=parse_symbol(leg.option_symbol).root, option_type=leg.option_type,
                                 strike=leg.strike, is_long=leg.side == LegSide.LONG, underlying=price.underlying)
        leg.exit_price, leg.exit_reason = outcome.value, outcome.reason
        settled.append({"leg": leg.option_symbol, "side": leg.side, "ratio": leg.ratio, "reason": outcome.reason,
                        "value": outcome.value, "underlying": price.underlying, "at": price.at})
    legs = list(trade.legs.order_by("position"))
    by_symbol = {leg.option_symbol: leg for leg in due}
    legs = [by_symbol.get(leg.option_symbol, leg) for leg in legs]
    at = max(prices[leg.option_symbol].at for leg in due)
    payload = {"source": EXPIRY, "legs": settled}
    changes = {"close_order_id": ""} if trade.close_order_id else {}
    delivered = [{**row, "contract": by_symbol[row["leg"]]} for row in settled
                 if row["reason"] in (ASSIGNED, EXERCISED)]
    if shares and delivered and (expected := _shares_expected(trade, delivered)):
        changes["attention_reason"] = _shares_told(trade, shares, expected, delivered)
    with transaction.atomic():
        for leg in due:
            leg.save(update_fields=["exit_price", "exit_reason"])
        if all(leg.exit_reason for leg in legs):
            changes.update(_close_changes(trade, legs, at))
            closed = trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, kind=EventKind.STATE_CHANGE,
                                      expected_version=trade.version, changes=changes, payload=payload, **who)
            return str(closed.close_reason)
        trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.STATE_CHANGE,
                         expected_version=trade.version, changes=changes,
                         payload={**payload, "still_held": [leg.option_symbol for leg in legs if not leg.exit_reason]},
                         **who)
    return "SETTLED"


def _close_changes(trade: PaperTrade, legs: list[TradeLeg], at: datetime) -> dict:
    """The closed trade's outcome from its legs' entries and exits."""
    net = sum((leg.sign * leg.ratio * leg.exit_price for leg in legs), Decimal(0))
    held = direction_sign(trade.net_direction) * net
    pnl = spread_realized_pnl(legs, trade.qty)
    basis = trade.entry_price * trade.qty * CONTRACT_MULTIPLIER if trade.entry_price else None
    hours = Decimal((at - trade.entry_date).total_seconds()) / 3600 if trade.entry_date else None
    return {
        # Not cut at 0: a trade whose legs expired on different days can end below 0 in its own
        # direction (a calendar's assigned front month, then a worthless back month), a real loss
        # beyond the debit that the P&L counts too (docs/spreads.md, "Expiry").
        "close_price": held,
        "close_date": at,
        "close_reason": CloseReason.EXPIRED,
        "realized_pnl": pnl.quantize(CENT),
        "realized_pnl_pct": (pnl * 100 / basis).quantize(Decimal("0.0001")) if basis else None,
        "hold_duration_h": hours.quantize(CENT) if hours is not None else None,
        "unrealized_pnl": None,
        **exit_costs(trade, reason=CloseReason.EXPIRED),
    }


def _shares_expected(trade: PaperTrade, delivered: list[dict]) -> int:
    """The shares this trade's exercised and assigned legs deliver, signed (a call exercised or a
    put assigned buys them; a call assigned or a put exercised sells them): ratio × units × 100 a leg."""
    return sum((1 if row["contract"].option_type == "CALL" else -1) * (1 if row["side"] == LegSide.LONG else -1)
               * row["ratio"] * trade.qty * CONTRACT_MULTIPLIER for row in delivered)


def _shares_told(trade: PaperTrade, shares: Decimal, expected: int, delivered: list[dict]) -> str:
    """The attention reason for shares an assignment or exercise left in the account: what the
    account holds, and what of it this trade delivered (the trader may have held shares before)."""
    legs = ", ".join(f"{'short' if row['side'] == LegSide.SHORT else 'long'} {_contract_words(row['contract'])} "
                     f"{'assigned' if row['reason'] == ASSIGNED else 'exercised'}" for row in delivered)
    held = f"{abs(shares).normalize():f} shares of {trade.ticker} {'short' if shares < 0 else 'long'}"
    rest = ""
    if shares != expected:
        rest = (", the rest is not this trade's" if shares * expected > 0 and abs(shares) > abs(expected)
                else ", not what they alone leave: check the holding")
    return (f"Expiry delivered stock: the account now holds {held}; this trade's legs ({legs}) deliver "
            f"{abs(expected)} {'short' if expected < 0 else 'long'}{rest}. Nothing here manages them: sell or "
            "cover them at the broker.")[:255]



# --- Pin risk ---------------------------------------------------------------------------------


def near_the_strike(*, strike: Decimal, underlying: Decimal, distance_pct: Decimal) -> bool:
    """The underlying lies within `distance_pct` percent of the strike (0 or less: never)."""
    return distance_pct > 0 and abs(underlying - strike) <= strike * distance_pct / 100


def pin_risk_alert(*, trade: PaperTrade, leg: TradeLeg, underlying: Decimal, cutoff: datetime,
                   distance_pct: Decimal, **who) -> bool:
    """Tell the trader that a short leg may end near its strike: whether it is assigned is then
    anyone's guess until the next morning, and so is the position they wake up with. Told once
    per leg and expiry (the audit log remembers it: the leg's symbol carries its expiry), as an
    attention reason on the trade, an ATTENTION_NEEDED event and a message on every notification
    channel that chose it. The monitor decides when (the last hour before the cutoff); this
    decides whether. Returns whether the trader was told now."""
    if leg.side != LegSide.SHORT or leg.exit_reason or not near_the_strike(
            strike=leg.strike, underlying=underlying, distance_pct=distance_pct):
        return False
    if TradeEvent.objects.filter(trade_id=trade.pk, kind=EventKind.ATTENTION_NEEDED,
                                 payload__pin_risk__leg=leg.option_symbol).exists():
        return False
    words = _pin_risk_words(trade, leg, underlying, cutoff)
    with transaction.atomic():
        trade_flag(trade_id=trade.pk, changes={"attention_reason": words},
                   payload={"pin_risk": {"leg": leg.option_symbol, "strike": leg.strike, "underlying": underlying,
                                         "cutoff": cutoff, "distance_pct": distance_pct}}, **who)
        channel_messages_write(owner_id=trade.owner_id, kind=NotificationEvent.PIN_RISK, data={
            "trade": {"ticker": trade.ticker, "strike": leg.strike, "option_type": leg.option_type,
                      "expiry": leg.expiry, "qty": trade.qty * leg.ratio},
            "attention_reason": words})
    return True


def _pin_risk_words(trade: PaperTrade, leg: TradeLeg, underlying: Decimal, cutoff: datetime) -> str:
    closes = cutoff.astimezone(ZoneInfo(settings.MARKET_TIME_ZONE))
    gap = abs(underlying - leg.strike).quantize(CENT)
    return (f"Pin risk: {trade.ticker} at {underlying} is within {gap} of your short {_contract_words(leg)}, "
            f"which expires at {closes:%H:%M} ET. "
            f"Ending near the strike, it may or may not be assigned: close or roll it before then.")[:255]


def _contract_words(leg: TradeLeg) -> str:
    """A leg as a trader says it: "575 put, Nov 27"."""
    return f"{leg.strike.normalize():f} {'call' if leg.option_type == 'CALL' else 'put'}, {leg.expiry:%b %-d}"
