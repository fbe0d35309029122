"""The numbers of a trade before it is sent: its cost, its risk and reward, and the room left under
the trader's three risk limits. One home for them: `trade_open` enforces the limits from the same
`RiskRoom` that the preview (`trade_open_check`, the form's validate call) shows, so the two
cannot drift apart.

Everything is an exact Decimal; rounding is for display only (the API's serializers).
Stop and target may be given as a percentage of the entry; `bracket_from_pct` turns one into a
price, and `pct_errors` says which percentages make sense — for a trade and for a strategy preset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Count, DecimalField, Exists, F, OuterRef, Q, Sum, Value, When
from django.db.models.functions import Coalesce, Greatest, NullIf

from trades.models import (
    ACTIVE_STATUSES,
    CONTRACT_MULTIPLIER,
    AccountSettings,
    NetDirection,
    OptionType,
    PaperTrade,
    StrategyType,
    TradeExitPart,
    TradeStatus,
    realized_pnl_net_sql,
)
from trades.net_price import direction_sign
from trades.spreads import SpreadLeg, SpreadPosition, is_defined_risk, spread_risk

from .errors import InvalidTradeInput, RiskLimitExceeded

_MONEY = DecimalField(max_digits=20, decimal_places=4)
CENT = Decimal("0.01")
# A stop-loss percentage is how much of the entry the trader accepts to lose (30: the stop sits at
# 70 % of the entry): above 0 and below 100. A take-profit percentage is the gain aimed at (60: the
# target sits at 160 % of the entry): above 0, at most 1000 (an 11-bagger is a target nobody sets).
SL_PCT_MAX = Decimal(100)
TP_PCT_MAX = Decimal(1000)


def trade_risk(entry: Decimal, sl: Decimal, qty: int) -> Decimal:
    """Dollars lost if the stop-loss fills at its price: (entry − SL) × qty × 100, never negative."""
    return max(entry - sl, Decimal(0)) * qty * CONTRACT_MULTIPLIER


def new_york_day_start(moment: datetime) -> datetime:
    zone = ZoneInfo(settings.MARKET_TIME_ZONE)
    return datetime.combine(moment.astimezone(zone).date(), time.min, tzinfo=zone)


# --- Stop and target as a percentage ----------------------------------------------------------


def pct_errors(*, sl_pct: Decimal | None, tp_pct: Decimal | None) -> dict[str, list[str]]:
    """What is wrong with these percentages, by field, in the trader's words."""
    errors: dict[str, list[str]] = {}
    if sl_pct is not None and not 0 < sl_pct < SL_PCT_MAX:
        errors["sl_pct"] = ["A stop-loss percentage must be above 0 and below 100 (the most an option can lose)."]
    if tp_pct is not None and not 0 < tp_pct <= TP_PCT_MAX:
        errors["tp_pct"] = [f"A take-profit percentage must be above 0 and at most {TP_PCT_MAX}."]
    return errors


def bracket_from_pct(entry: Decimal, pct: Decimal, *, stop: bool) -> Decimal:
    """The stop (`stop`) `pct` % below `entry`, or the target `pct` % above it, to the cent."""
    factor = (100 - pct) / 100 if stop else (100 + pct) / 100
    return (entry * factor).quantize(CENT, rounding=ROUND_HALF_UP)


# --- The risk limits --------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskRoom:
    """The three limits measured for one more trade: what the stored trades use, what this trade
    adds (`trade_risk`), and the room left once it is placed.

    - max_positions: trades PENDING, OPEN or CLOSING, before this one;
    - daily_loss_limit: today's realized loss (net P&L of the parts sold since midnight in New
      York, of open trades as of closed ones — `realized_today` — counted when negative). Open
      risk is not added here: the heat limit bounds it;
    - heat_limit_pct: Σ (entry − SL) × contracts held × 100 over active trades plus this one (a
      pending trade counts its whole qty from its planned entry), as a percentage of account_balance.
    """

    positions: int
    max_positions: int
    realized_today: Decimal
    daily_loss_limit: Decimal
    heat: Decimal
    trade_risk: Decimal
    balance: Decimal
    heat_limit_pct: Decimal

    @property
    def positions_after(self) -> int:
        return self.positions + 1

    @property
    def positions_left(self) -> int:
        """Positions that could still be opened after this one."""
        return max(self.max_positions - self.positions_after, 0)

    @property
    def loss_today(self) -> Decimal:
        return max(-self.realized_today, Decimal(0))

    @property
    def daily_loss_left(self) -> Decimal:
        return max(self.daily_loss_limit - self.loss_today, Decimal(0))

    @property
    def heat_after(self) -> Decimal:
        return self.heat + self.trade_risk

    @property
    def heat_allowed(self) -> Decimal:
        """The heat limit in dollars."""
        return self.balance * self.heat_limit_pct / 100

    @property
    def heat_after_pct(self) -> Decimal | None:
        """None with a zero balance: no percentage of nothing."""
        return self.heat_after * 100 / self.balance if self.balance else None

    @property
    def heat_left(self) -> Decimal:
        """Dollars of risk that could still be added after this trade."""
        return max(self.heat_allowed - self.heat_after, Decimal(0))

    def highest_entry(self, *, sl: Decimal, qty: int) -> Decimal:
        """The highest entry whose risk down to `sl` still fits under the heat limit, to the cent
        below (`sl` itself when nothing fits): the headroom told when a re-price is refused."""
        room = max(self.heat_allowed - self.heat, Decimal(0))
        return sl + (room / (qty * CONTRACT_MULTIPLIER)).quantize(CENT, rounding=ROUND_DOWN)

    def breach(self) -> RiskLimitExceeded | None:
        """The first limit this trade would break, in the trader's words, or None."""
        if self.positions >= self.max_positions:
            return RiskLimitExceeded(
                f"{trades_are(self.positions)} open or pending and your limit is "
                f"{_count(self.max_positions, 'position')} at a time.",
                limit="max_positions", current=self.positions, allowed=self.max_positions)
        if self.loss_today > 0 and self.loss_today >= self.daily_loss_limit:
            return RiskLimitExceeded(
                f"Today's realized loss is ${self.loss_today:,.2f} and your daily loss limit is "
                f"${self.daily_loss_limit:,.2f}: no new trades until tomorrow.",
                limit="daily_loss_limit", current=self.loss_today, allowed=self.daily_loss_limit)
        pct = self.heat_after_pct
        if pct is None and self.heat_after > 0:
            return RiskLimitExceeded(
                f"Your account balance is $0.00, so no risk fits under the heat limit (this trade risks "
                f"${self.trade_risk:,.2f} at its stop).", limit="heat_limit_pct", current=Decimal("Infinity"),
                allowed=self.heat_limit_pct)
        if pct is not None and pct > self.heat_limit_pct:
            return RiskLimitExceeded(
                f"Risk at the stops would be ${self.heat_after:,.2f}, {pct:.2f}% of your "
                f"${self.balance:,.2f} balance, and your heat limit is {_pct_text(self.heat_limit_pct)}%.",
                limit="heat_limit_pct", current=pct.quantize(CENT), allowed=self.heat_limit_pct)
        return None

    def enforce(self) -> None:
        if (problem := self.breach()) is not None:
            raise problem


def trades_are(count: int) -> str:
    """"1 trade is", "3 trades are": the start of a sentence about the trades held."""
    return f"{count} trade is" if count == 1 else f"{count} trades are"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _pct_text(value: Decimal) -> str:
    """6.00 → "6", 5.50 → "5.5": a limit as the trader typed it."""
    return f"{value.normalize():f}"


def active_exposure(user: AbstractBaseUser, *, excluding: int | None = None) -> dict[str, Decimal | int]:
    """The caller's active trades in one read: how many, their risk (`heat`), the premium they
    commit (entry × contracts held × 100; a pending trade counts its qty from its planned entry).
    A single option's risk is its loss down to its stop; a multi-leg trade's is its MAX LOSS
    (`spread_heat`), and only a debit one commits premium.
    `excluding`: a trade left out, one being re-priced, so that it is not counted twice."""
    entry = Coalesce("entry_price", "planned_entry_price", Value(Decimal(0)))
    held = _open_qty()
    zero = Value(Decimal(0))
    single = Q(strategy_type=StrategyType.SINGLE)
    risk = Case(When(single, then=Greatest(entry - F("sl_price"), zero) * held * CONTRACT_MULTIPLIER),
                default=zero, output_field=_MONEY)
    premium = Case(When(single | Q(net_direction=NetDirection.DEBIT), then=entry * held * CONTRACT_MULTIPLIER),
                   default=zero, output_field=_MONEY)
    active = PaperTrade.objects.filter(owner=user, status__in=ACTIVE_STATUSES).exclude(pk=excluding)
    exposure = active.aggregate(
        positions=Count("pk"),
        heat=Coalesce(Sum(risk, output_field=_MONEY), zero, output_field=_MONEY),
        premium=Coalesce(Sum(premium, output_field=_MONEY), zero, output_field=_MONEY),
    )
    spreads = active.exclude(single).prefetch_related("legs")
    exposure["heat"] += sum((spread_heat(trade) for trade in spreads), Decimal(0))
    return exposure


def spread_heat(trade: PaperTrade) -> Decimal:
    """What a multi-leg trade puts at risk: its max loss at its entry (the planned one until it
    fills) on the units it holds (all it means to open while pending); an unlimited one (naked
    shorts the account allows) counts its loss at the stop."""
    units = trade.qty if trade.status == TradeStatus.PENDING else max(
        (trade.filled_qty or trade.qty) - trade.exit_filled_qty, 0)
    entry = trade.entry_price if trade.entry_price is not None else trade.planned_entry_price
    if not units or entry is None:
        return Decimal(0)
    legs = sorted(trade.legs.all(), key=lambda leg: leg.position)
    try:
        position = SpreadPosition(tuple(SpreadLeg.from_symbol(leg.option_symbol, leg.side, ratio=leg.ratio)
                                        for leg in legs), units)
    except InvalidTradeInput:
        return Decimal(0)
    worst = max_loss_at(position, direction_sign(trade.net_direction) * entry)
    if worst is None:
        return abs(trade.sl_price - entry) * units * CONTRACT_MULTIPLIER
    return worst


def max_loss_at(position: SpreadPosition, net: Decimal) -> Decimal | None:
    """Dollars the whole position can lose at expiry when opened at `net` per share of one unit
    (signed: + debit, − credit); None when unlimited. One expiry: exact, the payout of the legs'
    exercise values (trades.spreads with premiums 0) less what opening paid (a credit condor:
    width × 100 − credit, per unit). Two expiries (a calendar): the debit when defined-risk, the
    least it can lose, as trades.spreads bounds it (the back month's value is a model)."""
    paid = net * position.quantity * CONTRACT_MULTIPLIER
    if len(position.expiries) > 1:
        return max(paid, Decimal(0)) if is_defined_risk(position) else None
    bare = replace(position, legs=tuple(replace(leg, premium=Decimal(0), iv=None) for leg in position.legs))
    worst = spread_risk(bare).max_loss
    return None if worst is None else max(worst + paid, Decimal(0))


def _open_qty():
    """Contracts an active trade still puts at risk, in SQL: all it means to buy while its entry is
    pending, else what it holds (`PaperTrade.held_qty`: the filled entry less the parts sold), so
    that contracts already sold in a partial close count toward neither heat nor premium."""
    held = Greatest(Coalesce(NullIf(F("filled_qty"), 0), F("qty")) - F("exit_filled_qty"), 0)
    return Case(When(status=TradeStatus.PENDING, then=F("qty")), default=held)


def realized_today(user: AbstractBaseUser, *, now: datetime) -> Decimal:
    """`user`'s realized P&L since midnight in New York, net of commissions and fees: every part
    sold today (a partial close of a trade still open counts the day it sells; a trade closed today
    counts only the parts sold today), plus trades closed today that have no part rows (closed
    before partial closes were recorded). The one figure the daily loss limit and every "realized
    today" reader use (docs/pnl.md, "Partial closes"). Call it in the user's tenant context."""
    start = new_york_day_start(now)
    zero = Value(Decimal(0))
    parts = TradeExitPart.objects.filter(owner=user, filled_at__gte=start).aggregate(
        total=Coalesce(Sum("pnl_net", output_field=_MONEY), zero, output_field=_MONEY))
    unparted = PaperTrade.objects.filter(
        owner=user, status=TradeStatus.CLOSED, close_date__gte=start,
    ).exclude(Exists(TradeExitPart.objects.filter(trade=OuterRef("pk")))).aggregate(
        total=Coalesce(Sum(realized_pnl_net_sql(), output_field=_MONEY), zero, output_field=_MONEY))
    return parts["total"] + unparted["total"]


def risk_room(*, user: AbstractBaseUser, account: AccountSettings, trade_risk: Decimal, now: datetime,
              excluding: int | None = None) -> RiskRoom:
    """The limits measured on `user`'s stored trades (call it in their tenant context; `trade_open`
    does so with the settings row locked, so two opens cannot both squeeze under a limit).
    `excluding`: the trade `trade_risk` is about when it is stored already (a re-priced entry)."""
    exposure = active_exposure(user, excluding=excluding)
    # Net of commissions and fees: what the day really cost is what the limit is about.
    return RiskRoom(
        positions=exposure["positions"], max_positions=account.max_positions,
        realized_today=realized_today(user, now=now),
        daily_loss_limit=account.daily_loss_limit, heat=exposure["heat"], trade_risk=trade_risk,
        balance=account.account_balance, heat_limit_pct=account.heat_limit_pct,
    )


# --- The preview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradePreview:
    """What a trade would cost and risk, before it is sent. Money is in dollars for the whole
    order; risk and reward are premiums only (commissions are shown on their own), as a trade's
    realized P&L is. `entry_price` is the price the checks use: the limit, or the ask of a
    market entry (a market order may fill worse)."""

    option_symbol: str
    option_type: str
    strike: Decimal
    qty: int
    entry_price: Decimal
    sl_price: Decimal
    tp_price: Decimal
    commission_per_contract: Decimal
    room: RiskRoom

    @property
    def debit(self) -> Decimal:
        return self.entry_price * self.qty * CONTRACT_MULTIPLIER

    @property
    def commission(self) -> Decimal:
        return self.commission_per_contract * self.qty

    @property
    def total_cost(self) -> Decimal:
        return self.debit + self.commission

    @property
    def max_loss(self) -> Decimal:
        """To the stop: the same figure the heat limit adds for this trade."""
        return self.room.trade_risk

    @property
    def reward(self) -> Decimal:
        """To the target."""
        return (self.tp_price - self.entry_price) * self.qty * CONTRACT_MULTIPLIER

    @property
    def reward_r(self) -> Decimal | None:
        """Reward in units of risk (R); None when nothing is at risk."""
        return self.reward / self.max_loss if self.max_loss else None

    @property
    def breakeven(self) -> Decimal:
        """The underlying's price at expiry where the option is worth what was paid for it."""
        if self.option_type == OptionType.PUT:
            return self.strike - self.entry_price
        return self.strike + self.entry_price

    @property
    def balance_pct(self) -> Decimal | None:
        """The total cost as a percentage of the account balance; None with a zero balance."""
        return self.total_cost * 100 / self.room.balance if self.room.balance else None
