"""The exit replay's policies (issue 18): what a trailing stop, a breakeven move or a time stop
would have done on each closed trade's recorded path.

Each trade is walked through its recorded looks (entry fill, snapshots, close fill) with the
live engine itself, `trades.services.exit_policy_evaluate`, never a copy of its rules: a change
in the engine changes the replay. The trade's own stop and target (as they stood before any
policy moved the stop) stay the outer bracket, and the exit rule is the grid replay's, so the
two read alike:

* at every look after the entry, a mark at or below the stop exits at that mark (a gap fills at
  the mark, never at the stop), a mark at or above the target likewise;
* otherwise, during a regular session (the live look runs only then), the engine sees the look
  (the recorded mark as the bid, the stock's recorded price, the session's real close); a stop
  it moves counts from the next look on, a close it asks for sells at this look's mark;
* a trade nothing closed leaves where it really closed;
* a scale-out the engine asks for (a policy's first target) sells its contracts at this look's
  mark, as the live look sells them at the bid, and the rest rides on (the live look moves no stop
  on the look it scales out); each part's P&L is its own, exactly.

No ORM here: `analytics.selectors.exit_replay` loads the paths and hands them over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from trades.models import CONTRACT_MULTIPLIER
from trades.services import (
    ExitPolicy,
    ExitState,
    Observation,
    commission_per_share,
    exit_policy_evaluate,
)

CENT = Decimal("0.01")

# The fixed candidates every strategy is replayed with: (key, stored policy as a trade keeps it).
CANDIDATES: tuple[tuple[str, dict[str, str]], ...] = (
    ("trail_10", {"trail_pct": "10"}),
    ("trail_20", {"trail_pct": "20"}),
    ("trail_30", {"trail_pct": "30"}),
    ("trail_20_after_20", {"trail_pct": "20", "trail_after_pct": "20"}),
    ("breakeven_20", {"breakeven_after_pct": "20"}),
    ("breakeven_50", {"breakeven_after_pct": "50"}),
    ("stock_trail_2", {"underlying_trail_pct": "2"}),
    ("close_30_before_close", {"close_minutes_before_close": "30"}),
    ("close_1_dte", {"close_days_to_expiry": "1"}),
    ("close_after_24h", {"close_after_hours": "24"}),
)
PRESET, OWN = "preset", "own"

STOP, TARGET, POLICY, CLOSED = "stop", "target", "policy", "closed"  # how a replayed trade left


@dataclass(frozen=True)
class Look:
    """One recorded look at a trade: `point` 0 entry fill, 1 snapshot, 2 close fill; `seen`, what the
    engine is shown (the mark as the bid, the stock's price, the New York date and the close of the
    regular session under way), None outside the session: the engine is not asked then, as live."""

    at: datetime
    mark: Decimal
    underlying: Decimal | None
    point: int
    seen: Observation | None


@dataclass(frozen=True)
class ReplayTrade:
    id: int
    strategy: str
    option_type: str
    expiry: date
    entry: Decimal
    stop: Decimal  # the outer stop: the trade's own, before any policy moved it
    target: Decimal
    qty: int
    opened_at: datetime
    entry_commission: Decimal
    exit_commission: Decimal  # as booked for the real close
    rate: Decimal | None  # commission per contract of an exit the replay sells elsewhere
    fees: Decimal
    own_policy: dict = field(default_factory=dict)
    looks: tuple[Look, ...] = ()


@dataclass(frozen=True)
class Part:
    """Contracts a replayed scale-out sold before the exit: how many, at which mark, when."""

    quantity: int
    price: Decimal
    at: datetime


@dataclass(frozen=True)
class Exit:
    price: Decimal
    at: datetime
    how: str  # STOP, TARGET, POLICY or CLOSED (where the trade really closed, untouched)
    at_close: bool  # the replay leaves at the real close's look (its fill and commission as booked)
    parts: tuple[Part, ...] = ()  # scale-outs sold before it; the exit sells the rest


def start_state(trade: ReplayTrade) -> ExitState:
    """What the engine knows of the trade at its entry: the policy is set then, no high-water yet."""
    return ExitState(entry=trade.entry, stop=trade.stop, option_type=trade.option_type, opened_at=trade.opened_at,
                     expiry=trade.expiry, held=trade.qty, commission_per_share=commission_per_share(
                         entry_commission=trade.entry_commission, rate=trade.rate, held=trade.qty))


def trade_replay(trade: ReplayTrade, policy: ExitPolicy, *, min_interval: timedelta,
                 start: ExitState | None = None) -> Exit:
    """Where `trade` would have left under `policy` on its recorded looks (module docstring).
    `start`: `start_state(trade)`, when the caller replays the trade under many policies."""
    state = start or start_state(trade)
    idle = policy.empty
    last = trade.looks[-1]
    parts: list[Part] = []
    for look in trade.looks:
        if look.point == 0:
            continue
        closing = look.point == 2
        if look.mark <= state.stop:
            return Exit(look.mark, look.at, STOP, closing, tuple(parts))
        if trade.target > 0 and look.mark >= trade.target:
            return Exit(look.mark, look.at, TARGET, closing, tuple(parts))
        if closing or idle or look.seen is None:
            continue
        decision = exit_policy_evaluate(policy, state, look.seen, min_interval=min_interval)
        if decision.high_water != state.high_water or decision.underlying_extreme != state.underlying_extreme:
            state = replace(state, high_water=decision.high_water, underlying_extreme=decision.underlying_extreme)
        if decision.close is not None:
            return Exit(look.mark, look.at, POLICY, False, tuple(parts))
        if decision.scale_out:  # as the live look: the part sells now, the stop stays this look
            parts.append(Part(decision.scale_out, look.mark, look.at))
            state = replace(state, held=state.held - decision.scale_out, scaled_out=True)
        elif decision.stop is not None and decision.stop < trade.target:  # as live: never past the target
            state = replace(state, stop=decision.stop, last_moved_at=look.at)
    return Exit(last.mark, last.at, CLOSED, True, tuple(parts))


def pnl(trade: ReplayTrade, leave: Exit) -> tuple[Decimal, Decimal]:
    """(gross, net) dollars of the replayed exit, its scale-outs each at its own price. Net takes off
    the entry's commission and the fees as booked, and the exit's commission as booked when the
    replay leaves at the real close with every contract, else at the trade's rate per contract of
    each sale (sales the trade never made, to the cent each)."""
    rate = trade.rate or Decimal(0)
    rest = trade.qty - sum(part.quantity for part in leave.parts)
    gross = sum(((part.price - trade.entry) * part.quantity * CONTRACT_MULTIPLIER for part in leave.parts),
                (leave.price - trade.entry) * rest * CONTRACT_MULTIPLIER)
    exit_commission = sum(((rate * part.quantity).quantize(CENT) for part in leave.parts),
                          trade.exit_commission if leave.at_close and not leave.parts
                          else (rate * rest).quantize(CENT))
    return gross, gross - trade.entry_commission - trade.fees - exit_commission


@dataclass(frozen=True)
class Candidate:
    key: str
    policy: dict[str, str] | None  # None: each trade's own policy, as set on it
    preset: bool = False  # the trader's preset for the strategy (alone, or matching a fixed one)


def candidates_for(strategy: str, trades: list[ReplayTrade], presets: dict) -> list[Candidate]:
    """The fixed candidates, the trader's preset policy for the strategy (marked on the fixed one it
    equals, else added), and the trades' own policies when any of them had one."""
    preset = ((presets or {}).get(strategy) or {}).get("exit_policy") or {}
    out = [Candidate(key, policy, preset == policy) for key, policy in CANDIDATES]
    if preset and not any(candidate.preset for candidate in out):
        out.append(Candidate(PRESET, dict(preset), True))
    if any(trade.own_policy for trade in trades):
        out.append(Candidate(OWN, None))
    return out


def trails_stock(policy: dict | None) -> bool:
    return bool(policy) and ("underlying_trail_pct" in policy or "underlying_trail_amount" in policy)


@dataclass
class Tally:
    """One policy's replay over one strategy's trades."""

    trades: int = 0
    gross: Decimal = Decimal(0)
    net: Decimal = Decimal(0)
    wins: int = 0
    held: timedelta = timedelta(0)
    exits: dict[str, int] = field(default_factory=lambda: dict.fromkeys((STOP, TARGET, POLICY, CLOSED), 0))
    without_stock_price: int = 0

    def add(self, trade: ReplayTrade, leave: Exit) -> None:
        gross, net = pnl(trade, leave)
        self.trades += 1
        self.gross += gross
        self.net += net
        self.wins += net > 0
        self.held += leave.at - trade.opened_at
        self.exits[leave.how] += 1

    @property
    def avg_hold_hours(self) -> float | None:
        return round(self.held / timedelta(hours=1) / self.trades, 2) if self.trades else None


def strategy_replay(trades: list[ReplayTrade], candidates: Iterable[Candidate], *,
                    min_interval: timedelta) -> tuple[Tally, list[tuple[Candidate, Tally]]]:
    """The trades' own brackets replayed (no policy), and each candidate's replay."""
    own = Tally()
    starts = [start_state(trade) for trade in trades]
    for trade, start in zip(trades, starts, strict=True):
        own.add(trade, trade_replay(trade, ExitPolicy(), min_interval=min_interval, start=start))
    rows = []
    for candidate in candidates:
        tally = Tally()
        shared = None if candidate.policy is None else ExitPolicy.from_stored(candidate.policy)
        for trade, start in zip(trades, starts, strict=True):
            policy = shared if shared is not None else ExitPolicy.from_stored(trade.own_policy)
            tally.add(trade, trade_replay(trade, policy, min_interval=min_interval, start=start))
            if trails_stock(candidate.policy if candidate.policy is not None else trade.own_policy) and not any(
                    look.underlying is not None for look in trade.looks):
                tally.without_stock_price += 1
        rows.append((candidate, tally))
    return own, rows


def looks_of(rows: Iterable[tuple[datetime, Decimal, Decimal | None, int]],
             session: Callable[[datetime], tuple[date, datetime | None]]) -> tuple[Look, ...]:
    """Looks from (at, mark, underlying, point) rows; `session(at)` gives the New York date and the
    close of the regular session under way at `at` (None outside it)."""
    looks = []
    for at, mark, underlying, point in rows:
        today, close = session(at)
        seen = None if close is None else Observation(bid=mark, underlying=underlying, now=at, today=today,
                                                      session_close=close)
        looks.append(Look(at=at, mark=mark, underlying=underlying, point=point, seen=seen))
    return tuple(looks)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def _number(text: str) -> str:
    return format(Decimal(text).normalize(), "f")


def policy_words(policy: dict | None) -> str:
    """A policy in the words of its chips on the position row (static/js/exit_policy_chips.js)."""
    if policy is None:
        return "your own policy, as set on each trade"
    parts = []
    if "trail_pct" in policy or "trail_amount" in policy:
        by = f"{_number(policy['trail_pct'])} %" if "trail_pct" in policy else f"${Decimal(policy['trail_amount']):.2f}"
        after = f" after +{_number(policy['trail_after_pct'])} %" if "trail_after_pct" in policy else ""
        parts.append(f"trail {by}{after}")
    if "underlying_trail_pct" in policy:
        parts.append(f"stock trail {_number(policy['underlying_trail_pct'])} %")
    elif "underlying_trail_amount" in policy:
        parts.append(f"stock trail ${Decimal(policy['underlying_trail_amount']):.2f}")
    if "breakeven_after_pct" in policy:
        parts.append(f"breakeven at +{_number(policy['breakeven_after_pct'])} %")
    if "scale_out_pct" in policy and "scale_out_at_pct" in policy:
        parts.append(f"scale out {_number(policy['scale_out_pct'])} % at +{_number(policy['scale_out_at_pct'])} %")
    if "close_minutes_before_close" in policy:
        parts.append(f"close {policy['close_minutes_before_close']} min before the bell")
    if "close_days_to_expiry" in policy:
        parts.append(f"close at {policy['close_days_to_expiry']} DTE")
    if "close_after_hours" in policy:
        parts.append(f"close after {policy['close_after_hours']} h")
    return ", ".join(parts) or "no policy"
