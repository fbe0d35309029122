"""Exit policies beyond a fixed bracket (issue 18): trailing stops, a breakeven move, time stops.

A policy is stored on the trade (`PaperTrade.exit_policy`, decimal text like the presets) and
evaluated by one pure function, `exit_policy_evaluate`: given the policy, what the trade knows
(entry, current stop, the best bid and underlying seen) and one market observation, it answers
the new stop (or none), the new high-water marks and whether a time or underlying stop says
"close now". No database, no broker, no clock: the monitor feeds it, the tests drive it.

Rules a trader can rely on:

* The stop never loosens: a new stop is always above the current one.
* A new stop is on the option's tick grid ($0.01 under $3, $0.05 from $3 up) and strictly below
  the bid it was computed from: a move that would be marketable at once is capped one tick under
  the bid, so moving the stop never is what sells the position (the stop leg does that).
* Gentle on the broker: the stop moves only by at least the policy's minimum step and one tick,
  and at most once per `min_interval`.
* Trailing on the underlying (for traders who watch the stock's chart): the best underlying
  price since the policy was set (the high for a call, the low for a put) carries a trailing
  level; when the stock crosses back through it, the trade is closed. That is the stop a trader
  draws on the stock's chart; it is not translated into an option price (a delta mapping drifts
  with gamma and time and would move the option stop for reasons the chart does not show).
* Scale-out: once the bid is a given gain over the entry, a share of the contracts (rounded down,
  at least one, never all) is sold once; the rest rides the stop (trades.services.parts sells it).
* A multi-leg trade (docs/spreads.md) is judged on its held price, in its own direction
  (`ExitState.direction`): a debit spread as a single option, on its held mid; a credit trade is
  short its price, so its best price is the lowest cost to close seen, its gain is the entry credit
  less that, its trailing stop trails DOWN above the price, breakeven is the credit less the
  commissions, a new stop is always below the current one, one cent above the held mid at least,
  and on the cent grid (a spread's net trades in cents). Scale-out and the stock's trailing level
  are single-option rules (`exit_policy_checked(multi_leg=True)` refuses them).
* Time stops (N minutes before the session's close, early closes included as the caller passes
  the real close; N calendar days to expiry in New York; H hours held) ask for the close once:
  after an exit was asked for, the engine answers nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from trades.models import CONTRACT_MULTIPLIER
from trades.net_price import DEBIT, direction_sign

from .errors import InvalidTradeInput

CENT, NICKEL, HUNDRED = Decimal("0.01"), Decimal("0.05"), Decimal(100)
NICKEL_FROM = Decimal(3)  # the penny program: options at $3 and up trade in nickels

# Keys of a stored policy, each decimal text; every one optional.
PERCENT_KEYS = ("trail_pct", "trail_after_pct", "underlying_trail_pct", "breakeven_after_pct", "scale_out_at_pct",
                "scale_out_pct")
AMOUNT_KEYS = ("trail_amount", "min_step", "underlying_trail_amount")
COUNT_KEYS = ("close_minutes_before_close", "close_days_to_expiry", "close_after_hours")
POLICY_KEYS = (*PERCENT_KEYS, *AMOUNT_KEYS, *COUNT_KEYS)
LABELS = {
    "trail_pct": "the trailing stop's percentage", "trail_amount": "the trailing stop's distance in dollars",
    "trail_after_pct": "the gain that starts the trailing", "min_step": "the minimum step of a stop move",
    "underlying_trail_pct": "the stock trailing stop's percentage",
    "underlying_trail_amount": "the stock trailing stop's distance in dollars",
    "breakeven_after_pct": "the gain that moves the stop to breakeven",
    "close_minutes_before_close": "the minutes before the close", "close_days_to_expiry": "the days to expiry",
    "close_after_hours": "the hours held",
    "scale_out_at_pct": "the gain that sells the first part", "scale_out_pct": "the share of contracts sold there",
}
LIMITS = {  # (lowest, highest) a trader can mean; beyond is a typo
    "trail_pct": (Decimal("0.1"), Decimal(99)), "trail_after_pct": (Decimal(0), Decimal(1000)),
    "underlying_trail_pct": (Decimal("0.1"), Decimal(50)), "breakeven_after_pct": (Decimal(0), Decimal(1000)),
    "trail_amount": (CENT, Decimal(1000)), "min_step": (CENT, Decimal(100)),
    "underlying_trail_amount": (CENT, Decimal(10000)),
    "close_minutes_before_close": (Decimal(1), Decimal(390)), "close_days_to_expiry": (Decimal(0), Decimal(365)),
    "close_after_hours": (Decimal(1), Decimal(24 * 365)),
    "scale_out_at_pct": (Decimal("0.1"), Decimal(1000)), "scale_out_pct": (Decimal(1), Decimal(99)),
}


class CloseWhy:
    """Why the engine asks for a close (the trade's close reason is CloseReason.TIME_STOP for the
    time stops and CloseReason.UNDERLYING_STOP for the stock's trailing level)."""

    SESSION_END = "session_end"
    DAYS_TO_EXPIRY = "days_to_expiry"
    HOURS_HELD = "hours_held"
    UNDERLYING = "underlying"


@dataclass(frozen=True)
class ExitPolicy:
    trail_pct: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_after_pct: Decimal | None = None
    min_step: Decimal | None = None
    underlying_trail_pct: Decimal | None = None
    underlying_trail_amount: Decimal | None = None
    breakeven_after_pct: Decimal | None = None
    close_minutes_before_close: int | None = None
    close_days_to_expiry: int | None = None
    close_after_hours: int | None = None
    scale_out_at_pct: Decimal | None = None
    scale_out_pct: Decimal | None = None

    @classmethod
    def from_stored(cls, stored: dict | None) -> ExitPolicy:
        """From the trade's JSON (already checked by `exit_policy_checked`)."""
        values = {}
        for key, text in (stored or {}).items():
            values[key] = int(text) if key in COUNT_KEYS else Decimal(text)
        return cls(**values)

    @property
    def empty(self) -> bool:
        return all(getattr(self, key) is None for key in POLICY_KEYS)

    @property
    def moves_stop(self) -> bool:
        return self.trail_pct is not None or self.trail_amount is not None or self.breakeven_after_pct is not None

    def scale_out_quantity(self, held: int) -> int:
        """Contracts the first target sells out of `held`: the share, rounded down to whole
        contracts, at least one and never all (0: no scale-out, or too few contracts for one)."""
        if self.scale_out_pct is None or held < 2:
            return 0
        share = int((held * self.scale_out_pct / HUNDRED).to_integral_value(rounding=ROUND_FLOOR))
        return min(max(share, 1), held - 1)


@dataclass(frozen=True)
class ExitState:
    """What the trade knows. `high_water`: the best bid since the policy was set; `underlying_extreme`:
    the underlying's high (call) or low (put) since then; `exit_requested`: a close was asked for."""

    entry: Decimal
    stop: Decimal
    option_type: str  # "CALL" or "PUT"
    opened_at: datetime
    expiry: date
    commission_per_share: Decimal = Decimal(0)  # entry and exit commission, per share held
    high_water: Decimal | None = None
    underlying_extreme: Decimal | None = None
    last_moved_at: datetime | None = None
    exit_requested: bool = False
    held: int = 0  # contracts held now (what a scale-out sells a share of)
    scaled_out: bool = False  # the scale-out already fired: it fires once
    direction: str = DEBIT  # a credit trade is short its price (trades.net_price): its exits mirror
    cent_grid: bool = False  # a spread's net is priced in cents, not on one option's tick grid

    @property
    def sign(self) -> int:
        return direction_sign(self.direction)

    def tick(self, price: Decimal) -> Decimal:
        return CENT if self.cent_grid else price_tick(price)

    def on_grid(self, price: Decimal, rounding: str) -> Decimal:
        if not self.cent_grid:
            return on_tick(price, rounding)
        return (price / CENT).to_integral_value(rounding=rounding) * CENT


@dataclass(frozen=True)
class Observation:
    """One look at the market: the option's bid (a multi-leg trade's held mid), the underlying's
    price, the time, the New York date, and the close of the session under way (None when the
    market is closed)."""

    bid: Decimal | None
    underlying: Decimal | None
    now: datetime
    today: date
    session_close: datetime | None


@dataclass(frozen=True)
class ExitDecision:
    stop: Decimal | None  # the new stop, when it moves
    high_water: Decimal | None
    underlying_extreme: Decimal | None
    close: str | None = None  # a CloseWhy, when the trade is to be closed now
    why: str = ""
    scale_out: int = 0  # contracts to sell now at the first target (the rest rides the stop)


def commission_per_share(*, entry_commission: Decimal, rate: Decimal | None, held: int) -> Decimal:
    """What breakeven has to cover per share: the entry's commission paid and the exit's at the
    trade's rate, spread over the contracts held (the live look and the exit replay both ask here)."""
    held = held or 1
    return (entry_commission + (rate or Decimal(0)) * held) / (held * CONTRACT_MULTIPLIER)


def price_tick(price: Decimal) -> Decimal:
    """The option's price increment at `price` ($0.01 under $3, $0.05 from $3 up; the simulator's
    `option_tick` is the same rule, with pennies throughout for SPY, QQQ and IWM)."""
    return CENT if price < NICKEL_FROM else NICKEL


def on_tick(price: Decimal, rounding: str = ROUND_FLOOR) -> Decimal:
    """`price` on the tick grid, rounded down (or up with ROUND_CEILING)."""
    tick = price_tick(price)
    level = (price / tick).to_integral_value(rounding=rounding) * tick
    return level.quantize(CENT)


def exit_policy_evaluate(policy: ExitPolicy, state: ExitState, seen: Observation, *,
                         min_interval: timedelta = timedelta(0)) -> ExitDecision:
    """The policy's answer to one observation (see the module docstring for the rules)."""
    high = _best(state.high_water, seen.bid, higher=state.sign > 0)
    extreme = _best(state.underlying_extreme, seen.underlying, higher=state.option_type != "PUT")
    if state.exit_requested:
        return ExitDecision(None, high, extreme)
    close = _time_stop(policy, state, seen) or _underlying_stop(policy, state, seen, extreme)
    if close:
        return ExitDecision(None, high, extreme, close=close[0], why=close[1])
    stop, why = _new_stop(policy, state, seen, high, min_interval)
    if sell := _scale_out(policy, state, seen):
        return ExitDecision(stop, high, extreme, why=sell[1], scale_out=sell[0])
    return ExitDecision(stop, high, extreme, why=why)


def _scale_out(policy: ExitPolicy, state: ExitState, seen: Observation) -> tuple[int, str] | None:
    """The first target: once the bid is `scale_out_at_pct` over the entry, sell the policy's
    share; once only (`scaled_out`), and never the whole position."""
    if state.scaled_out or policy.scale_out_at_pct is None or seen.bid is None or state.entry <= 0:
        return None
    quantity = policy.scale_out_quantity(state.held)
    if quantity <= 0 or state.sign * (seen.bid - state.entry) / state.entry * HUNDRED < policy.scale_out_at_pct:
        return None
    return quantity, f"scale-out: {quantity} of {state.held} at +{policy.scale_out_at_pct.normalize():f}%"


def _best(known: Decimal | None, new: Decimal | None, *, higher: bool) -> Decimal | None:
    if new is None or known is None:
        return known if new is None else new
    return max(known, new) if higher else min(known, new)


def _time_stop(policy: ExitPolicy, state: ExitState, seen: Observation) -> tuple[str, str] | None:
    minutes = policy.close_minutes_before_close
    if minutes is not None and seen.session_close is not None and seen.now >= seen.session_close - timedelta(
            minutes=minutes):
        return CloseWhy.SESSION_END, f"{minutes} minutes before the close"
    days = policy.close_days_to_expiry
    if days is not None and (state.expiry - seen.today).days <= days:
        return CloseWhy.DAYS_TO_EXPIRY, f"{days} days to expiry"
    hours = policy.close_after_hours
    if hours is not None and seen.now - state.opened_at >= timedelta(hours=hours):
        return CloseWhy.HOURS_HELD, f"held {hours} hours"
    return None


def _underlying_stop(policy: ExitPolicy, state: ExitState, seen: Observation,
                     extreme: Decimal | None) -> tuple[str, str] | None:
    if seen.underlying is None or extreme is None:
        return None
    if policy.underlying_trail_pct is None and policy.underlying_trail_amount is None:
        return None
    put = state.option_type == "PUT"
    if policy.underlying_trail_amount is not None:
        distance = policy.underlying_trail_amount
    else:
        distance = extreme * policy.underlying_trail_pct / HUNDRED
    level = extreme + distance if put else extreme - distance
    crossed = seen.underlying >= level if put else seen.underlying <= level
    if not crossed:
        return None
    return CloseWhy.UNDERLYING, f"the stock at {seen.underlying} crossed its trailing level {level.quantize(CENT)}"


def _new_stop(policy: ExitPolicy, state: ExitState, seen: Observation, high: Decimal | None,
              min_interval: timedelta) -> tuple[Decimal | None, str]:
    if seen.bid is None or high is None or not policy.moves_stop:
        return None, ""
    if state.last_moved_at is not None and seen.now - state.last_moved_at < min_interval:
        return None, ""
    # In the trade's direction: +1 a debit (stops below, moving up), -1 a credit (stops above, moving down).
    sign = state.sign
    looser, tighter = (ROUND_FLOOR, ROUND_CEILING) if sign > 0 else (ROUND_CEILING, ROUND_FLOOR)
    candidates: list[tuple[Decimal, str]] = []
    gain_pct = sign * (high - state.entry) / state.entry * HUNDRED if state.entry > 0 else Decimal(0)
    trailing = policy.trail_pct is not None or policy.trail_amount is not None
    if trailing and gain_pct >= (policy.trail_after_pct or 0):
        distance = policy.trail_amount if policy.trail_amount is not None else high * policy.trail_pct / HUNDRED
        candidates.append((state.on_grid(high - sign * distance, looser), "trailing"))
    if policy.breakeven_after_pct is not None and gain_pct >= policy.breakeven_after_pct:
        candidates.append((state.on_grid(state.entry + sign * state.commission_per_share, tighter), "breakeven"))
    if not candidates:
        return None, ""
    level, why = max(candidates, key=lambda candidate: sign * candidate[0])  # the tightest
    beyond_price = state.on_grid(seen.bid - sign * CENT, looser)  # one tick on the losing side of the price
    if sign * (level - beyond_price) > 0:
        level, why = beyond_price, f"{why}, one tick {'under' if sign > 0 else 'over'} the {_price_word(state)}"
    if level <= 0 or sign * (level - state.stop) < max(policy.min_step or CENT, state.tick(level)):
        return None, ""
    return level, why


def _price_word(state: ExitState) -> str:
    return "held mid" if state.cent_grid else "bid"


def exit_policy_checked(raw, *, quantity: int | None = None, multi_leg: bool = False) -> dict[str, str]:
    """A policy as stored: known keys only, each an exact decimal text within its range, at most one
    of % and $ per trailing stop, a scale-out's gain and share together and (given the trade's
    `quantity`) only on two contracts or more; for a `multi_leg` trade, neither a scale-out (a
    spread closes whole in this release) nor a stock trailing stop (one stock level means nothing
    for a straddle's two sides). InvalidTradeInput on `exit_policy`, every problem at once, in the
    trader's words. An empty dict is no policy."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidTradeInput({"exit_policy": ["Give the exit policy as its settings, such as a trailing "
                                                 "stop percentage."]})
    problems: list[str] = []
    unknown = sorted(set(raw) - set(POLICY_KEYS))
    if unknown:
        problems.append("Unknown exit policy settings: " + ", ".join(map(str, unknown))[:200] + ".")
    checked: dict[str, str] = {}
    for key in POLICY_KEYS:
        if raw.get(key) in (None, ""):
            continue
        value = _number(raw[key])
        low, high = LIMITS[key]
        if value is None:
            problems.append(f"{LABELS[key].capitalize()} must be a number such as \"20\".")
        elif key in COUNT_KEYS and value != value.to_integral_value():
            problems.append(f"{LABELS[key].capitalize()} must be a whole number.")
        elif not low <= value <= high:
            problems.append(f"{LABELS[key].capitalize()} must be between {low.normalize():f} and "
                            f"{high.normalize():f}.")
        else:
            checked[key] = format(value.normalize(), "f")
    for pct, amount, what in (("trail_pct", "trail_amount", "the trailing stop"),
                              ("underlying_trail_pct", "underlying_trail_amount", "the stock trailing stop")):
        if pct in checked and amount in checked:
            problems.append(f"Give {what} as a percentage or as a dollar distance, not both.")
    given = {key for key in POLICY_KEYS if raw.get(key) not in (None, "")}  # a typo there is told once, above
    if "trail_after_pct" in checked and not given & {"trail_pct", "trail_amount"}:
        problems.append("A gain that starts the trailing needs a trailing stop (a percentage or a dollar distance).")
    problems += _scale_out_problems(checked, given, quantity)
    if multi_leg:
        problems += _multi_leg_problems(given)
    if problems:
        raise InvalidTradeInput({"exit_policy": problems})
    return checked


def _scale_out_problems(checked: dict[str, str], given: set[str], quantity: int | None) -> list[str]:
    """What was given, not what passed, says whether both halves came: a typo in one is told once."""
    if ("scale_out_at_pct" in given) != ("scale_out_pct" in given):
        return ["A scale-out needs both the gain that sells the first part and the share of contracts sold there."]
    if "scale_out_pct" in checked and quantity is not None and quantity < 2:
        return [f"A scale-out sells part of the position and keeps the rest: it needs at least 2 contracts, "
                f"this trade has {quantity}."]
    return []


def _multi_leg_problems(given: set[str]) -> list[str]:
    problems = []
    if given & {"scale_out_at_pct", "scale_out_pct"}:
        problems.append("A spread closes whole in this release: a scale-out cannot sell part of it. Use a "
                        "trailing stop, breakeven or a time stop instead.")
    if given & {"underlying_trail_pct", "underlying_trail_amount"}:
        problems.append("A stock trailing stop watches one direction of the stock, which a spread's legs do not "
                        "share: trail the spread's own price instead (a trailing stop percentage or distance).")
    return problems


def _number(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
