"""What a trade's legs make, in the words and figures every read-out of finished trades shares:
the History, Performance, the data set, the exports and the knowledge server's tools (issue 19).

Pure: legs in (anything with option_symbol, option_type, strike, expiry, side, ratio, entry_price,
exit_price: a TradeLeg, or a dict read by values()), words and Decimals out; the math is
trades/spreads.py, the held-price convention trades/net_price.py. Readers reach it through
trades.selectors.

* The label names the template as a trader says it: "Iron condor 490/495/515/520", "Put credit
  spread 500/495" (a vertical's strike nearer the money first: the one sold in a credit spread,
  bought in a debit one), "Long straddle 500", "Long call 570".
* `max_loss` is the honest denominator of a return: what the position could lose at entry, in
  dollars (a credit spread's width × 100 − credit, a debit trade's debit, a single option's
  premium). `return_on_max_loss_pct` = realized P&L / max loss × 100; for a single option it equals
  the old P&L / (entry × contracts × 100).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .services.errors import InvalidTradeInput
from .spreads import SpreadLeg, SpreadPosition, SpreadRisk, spread_risk, strike_text

LONG = "LONG"
SINGLE = "single"


def _get(leg, name: str):
    return leg[name] if isinstance(leg, dict) else getattr(leg, name)


def _strikes(legs, option_type: str | None = None) -> list[Decimal]:
    return sorted({_get(leg, "strike") for leg in legs if option_type in (None, _get(leg, "option_type"))})


def _joined(strikes: Iterable[Decimal]) -> str:
    return "/".join(strike_text(Decimal(strike)) for strike in strikes)


def _right(legs) -> str:
    return _get(legs[0], "option_type").capitalize()


def _held(legs) -> str:
    return "Long" if all(_get(leg, "side") == LONG for leg in legs) else "Short"


def _short_day(day) -> str:
    return f"{day:%b} {day.day}"


def strategy_label(strategy_type: str, net_direction: str, legs: Sequence) -> str:
    """The trade's strategy in a trader's words, with its strikes (see the module's docstring)."""
    if not legs:
        return strategy_type.replace("_", " ").capitalize()
    right = _right(legs)
    if strategy_type == SINGLE or len(legs) == 1:
        return f"{_held(legs)} {right.lower()} {strike_text(Decimal(_get(legs[0], 'strike')))}"
    if strategy_type == "vertical":
        strikes = _strikes(legs)
        near_first = strikes if right == "Call" else strikes[::-1]
        return f"{right} {net_direction} spread {_joined(near_first)}"
    if strategy_type in ("straddle", "strangle"):
        strikes = _strikes(legs, "PUT") + _strikes(legs, "CALL")
        return f"{_held(legs)} {strategy_type} {_joined(dict.fromkeys(strikes))}"
    if strategy_type == "iron_condor":
        return f"Iron condor {_joined(_strikes(legs, 'PUT') + _strikes(legs, 'CALL'))}"
    if strategy_type == "butterfly":
        return f"{right} butterfly {_joined(_strikes(legs))}"
    if strategy_type == "calendar":
        days = sorted({_get(leg, "expiry") for leg in legs})
        return f"{right} calendar {_joined(_strikes(legs))} {'/'.join(_short_day(day) for day in days)}"
    return f"{strategy_type.replace('_', ' ').capitalize()} {_joined(_strikes(legs))}"


def _price(value) -> str:
    return "" if value is None else format(Decimal(value), "f")


def legs_text(legs: Sequence) -> str:
    """The legs as one compact cell: `long 1 SPY261218P00490000 @0.8000>0.3000; short 1 …` (side,
    contracts per unit, OCC symbol, entry fill > exit fill per share; no exit yet: nothing after >).
    Starts with a word, never + or −, so a spreadsheet keeps it as text."""
    return "; ".join(f"{_get(leg, 'side').lower()} {_get(leg, 'ratio')} {_get(leg, 'option_symbol')} "
                     f"@{_price(_get(leg, 'entry_price'))}>{_price(_get(leg, 'exit_price'))}" for leg in legs)


def legs_json(legs: Sequence) -> str:
    """The legs as a JSON array (the data set's `legs`): side, ratio, option_symbol, option_type,
    strike, expiry, entry_price, exit_price, exit_reason; decimals as exact strings."""
    def one(leg) -> dict:
        return {"side": _get(leg, "side"), "ratio": _get(leg, "ratio"), "option_symbol": _get(leg, "option_symbol"),
                "option_type": _get(leg, "option_type"), "strike": _price(_get(leg, "strike")),
                "expiry": _get(leg, "expiry").isoformat(), "entry_price": _price(_get(leg, "entry_price")) or None,
                "exit_price": _price(_get(leg, "exit_price")) or None, "exit_reason": _get(leg, "exit_reason") or ""}
    return json.dumps([one(leg) for leg in legs], separators=(",", ":"))


def risk_of(strategy_type: str, units: int, legs: Sequence, single_entry: Decimal | None = None) -> SpreadRisk | None:
    """Max profit, max loss, breakevens and width from the legs' entry fills (a single option whose
    leg has no fill: `single_entry`, the trade's entry). None when a fill is missing, the legs expire
    on different dates (a calendar needs a model of its back month) or make no position."""
    spread_legs = []
    for leg in legs:
        premium = _get(leg, "entry_price")
        if premium is None and strategy_type == SINGLE:
            premium = single_entry
        if premium is None:
            return None
        spread_legs.append(SpreadLeg.from_symbol(_get(leg, "option_symbol"), _get(leg, "side"),
                                                 ratio=_get(leg, "ratio"), premium=premium))
    try:
        position = SpreadPosition(tuple(spread_legs), units, strategy_type)
    except InvalidTradeInput:
        return None
    return None if not spread_legs or len(position.expiries) > 1 else spread_risk(position)


@dataclass(frozen=True)
class StrategyFacts:
    """A trade's structure and the figures its returns are measured against."""

    strategy_type: str
    net_direction: str
    label: str
    leg_count: int
    legs_text: str
    legs_json: str
    width: Decimal | None
    max_profit: Decimal | None  # dollars; None: unlimited or not known
    max_loss: Decimal | None  # dollars, positive; None: unlimited or not known
    breakevens: tuple[Decimal, ...]
    return_on_max_loss_pct: Decimal | None

    def as_columns(self) -> dict:
        """The export's cells, written to the places the API writes them (width 3, dollars 2,
        breakevens 4, joined by ";")."""
        return {"strategy_type": self.strategy_type, "net_direction": self.net_direction,
                "strategy_label": self.label, "leg_count": self.leg_count, "width": _places(self.width, 3),
                "max_profit": _places(self.max_profit, 2), "max_loss": _places(self.max_loss, 2),
                "breakevens": ";".join(format(_places(price, 4), "f") for price in self.breakevens),
                "return_on_max_loss_pct": self.return_on_max_loss_pct}


def _places(value: Decimal | None, places: int) -> Decimal | None:
    return None if value is None else value.quantize(Decimal(1).scaleb(-places))


def return_on_max_loss(pnl: Decimal | None, max_loss: Decimal | None) -> Decimal | None:
    """P&L over the max loss at entry, in % to 2 places (None without both, or a max loss of 0)."""
    if pnl is None or not max_loss:
        return None
    return (Decimal(pnl) * 100 / max_loss).quantize(Decimal("0.01"))


def strategy_facts(*, strategy_type: str, net_direction: str, units: int, legs: Sequence,
                   entry_price: Decimal | None = None, realized_pnl: Decimal | None = None) -> StrategyFacts:
    """Everything above for one trade; `legs` in order, `units` the trade's qty."""
    risk = risk_of(strategy_type, units, legs, entry_price)
    width = risk.width if risk else (spread_risk_width(legs) if legs else None)
    max_loss = risk.max_loss if risk else None
    return StrategyFacts(
        strategy_type=strategy_type, net_direction=net_direction,
        label=strategy_label(strategy_type, net_direction, legs), leg_count=len(legs), legs_text=legs_text(legs),
        legs_json=legs_json(legs), width=width, max_profit=risk.max_profit if risk else None, max_loss=max_loss,
        breakevens=risk.breakevens if risk else (), return_on_max_loss_pct=return_on_max_loss(realized_pnl, max_loss))


def spread_risk_width(legs: Sequence) -> Decimal:
    """The widest gap between neighbouring strikes of one right, from the legs' contracts alone."""
    width = Decimal(0)
    for option_type in ("CALL", "PUT"):
        strikes = _strikes(legs, option_type)
        width = max([width, *(high - low for low, high in zip(strikes, strikes[1:], strict=False))])
    return width
