"""The strategy builder's preview: a multi-leg position priced at the market now, with what it can
make and lose, where it breaks even, its greeks and its payoff at expiry and today.

It writes nothing and places nothing. The legs come from a template (`trades.spreads.TEMPLATES`)
or are given one by one; each is priced at its natural side (the ask to buy, the bid to sell)
from the same market quotes the open check reads (`brokers.market`), with the quote's implied
volatility for the model of today. The numbers are `trades.spreads`' (docs/spreads.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from brokers.base import Quote
from brokers.market import Market, OutsideCalendar, default_market
from tradeoptions.words import day_text

from .. import spreads
from ..spreads import (
    LONG,
    NetGreeks,
    OptionModel,
    PayoffPoint,
    SpreadLeg,
    SpreadPosition,
    SpreadRisk,
    contract_text,
    strike_text,
)
from .errors import InvalidTradeInput
from .spread_opening import SpreadLegInput

CUSTOM = "custom"
CHART_REACH = Decimal("0.06")  # the chart runs 6 % beyond the outer strikes (and spot): where the kinks show

# What each template takes besides the ticker and the quantity; the strike fields, then the dates.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "vertical": ("option_type", "lower", "upper", "expiry"),
    "straddle": ("strike", "expiry"),
    "strangle": ("put_strike", "call_strike", "expiry"),
    "iron_condor": ("long_put", "short_put", "short_call", "long_call", "expiry"),
    "butterfly": ("option_type", "lower", "middle", "upper", "expiry"),
    "calendar": ("option_type", "strike", "front_expiry", "back_expiry"),
}
FLAGS = {"vertical": "credit", "straddle": "short", "strangle": "short"}  # optional booleans
STRIKE_FIELDS = ("lower", "middle", "upper", "strike", "put_strike", "call_strike", "long_put", "short_put",
                 "short_call", "long_call")
DATE_FIELDS = ("expiry", "front_expiry", "back_expiry")
FIELD_WORDS = {"option_type": "call or put", "lower": "lower strike", "upper": "upper strike",
               "middle": "middle strike", "strike": "strike", "put_strike": "put strike",
               "call_strike": "call strike", "long_put": "bought put strike", "short_put": "sold put strike",
               "short_call": "sold call strike", "long_call": "bought call strike", "expiry": "expiry",
               "front_expiry": "front (sold) expiry", "back_expiry": "back (bought) expiry"}
UNLIMITED_LOSS = ("Unlimited risk: a sold call no bought call covers loses more the higher the stock goes, "
                  "without limit.")


@dataclass(frozen=True)
class SpreadPreviewInput:
    ticker: str
    qty: int
    strategy_type: str | None = None  # a template name; None (or "custom") with `legs`
    params: Mapping[str, object] | None = None  # the template's fields (TEMPLATE_FIELDS, FLAGS)
    legs: Sequence[SpreadLegInput] | None = None


@dataclass(frozen=True)
class PricedLeg:
    leg: SpreadLeg  # premium: the natural side; iv: the quote's
    bid: Decimal | None
    ask: Decimal | None

    @property
    def mid(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else (self.bid + self.ask) / 2


@dataclass(frozen=True)
class SpreadPreview:
    ticker: str
    strategy_type: str
    qty: int
    as_of: datetime
    underlying_price: Decimal
    legs: tuple[PricedLeg, ...]
    risk: SpreadRisk
    net_mid: Decimal | None  # per share of one spread, + debit − credit
    greeks: NetGreeks | None  # None: a leg has no implied volatility
    payoff: tuple[PayoffPoint, ...]
    today_modelled: bool  # the curve of today and the greeks could be worked out

    @property
    def net_direction(self) -> str:
        return "credit" if self.risk.net_premium < 0 else "debit"

    @property
    def net_price(self) -> Decimal:
        """The held price per share (docs/spreads.md): the debit paid, or the credit received."""
        return abs(self.risk.net_premium)

    @property
    def unlimited_loss(self) -> bool:
        return self.risk.max_loss is None

    @property
    def risk_note(self) -> str:
        return UNLIMITED_LOSS if self.unlimited_loss else self.risk.buying_power_rule


def spread_preview(*, data: SpreadPreviewInput, market: Market | None = None) -> SpreadPreview:
    """The position `data` describes, priced now. Raises InvalidTradeInput, field by field, for a
    template's missing or misordered strikes, an expiry that cannot be traded, a contract the
    market does not list or cannot price on the side the leg trades."""
    market = market or default_market()
    now = market.now()
    position, fields_of = _position(data)
    _check_expiries(position, fields_of, market, now)
    spot = market.underlying_price(data.ticker)
    if spot is None or spot <= 0:
        raise InvalidTradeInput({"ticker": [f"The market-data source has no price for {data.ticker} now."]})
    quotes = market.quotes([leg.symbol for leg in position.legs])
    priced = _priced(position, quotes, fields_of)
    position = SpreadPosition(tuple(item.leg for item in priced), position.quantity, position.strategy)
    model = OptionModel(as_of=now, rate=spreads.MODEL_RATE, cutoff=market.expiry_cutoff)
    has_iv = all(leg.iv is not None for leg in position.legs if market.expiry_cutoff(leg.expiry) > now)
    risk = spreads.spread_risk(position, model if len(position.expiries) > 1 else None)
    grid = spreads.price_grid(position, spot, reach=CHART_REACH)
    curve = spreads.payoff_curve(position, grid, model if has_iv else None)
    mids = [item.mid for item in priced]
    net_mid = None if None in mids else sum((item.leg.sign * item.leg.ratio * mid
                                             for item, mid in zip(priced, mids, strict=True)), Decimal(0))
    return SpreadPreview(
        ticker=data.ticker, strategy_type=position.strategy, qty=data.qty, as_of=now, underlying_price=spot,
        legs=tuple(priced), risk=risk, net_mid=net_mid,
        greeks=spreads.net_greeks(position, spot, model) if has_iv else None,
        payoff=curve, today_modelled=has_iv)


# --- the legs ----------------------------------------------------------------------------------

def _position(data: SpreadPreviewInput) -> tuple[SpreadPosition, dict[str, str]]:
    """The position, and for each contract symbol the request field that named it (for errors)."""
    if data.legs:
        return _given_legs(data)
    name = data.strategy_type
    if name not in spreads.TEMPLATES:
        raise InvalidTradeInput({"strategy_type": [
            "Pick a strategy (vertical, straddle, strangle, iron condor, butterfly, calendar) or give the legs."]})
    params = dict(data.params or {})
    missing = {field: [f"Give the {FIELD_WORDS[field]}."] for field in TEMPLATE_FIELDS[name]
               if params.get(field) in (None, "")}
    if missing:
        raise InvalidTradeInput(missing)
    arguments = {field: params[field] for field in TEMPLATE_FIELDS[name]}
    if name in FLAGS:
        arguments[FLAGS[name]] = bool(params.get(FLAGS[name]))
    position = spreads.TEMPLATES[name](root=data.ticker, quantity=data.qty, **arguments)
    return position, _fields_of(position, arguments)


def _fields_of(position: SpreadPosition, arguments: Mapping[str, object]) -> dict[str, str]:
    """Each leg's symbol → the strike field that chose it (the first whose strike it is)."""
    fields = {}
    for leg in position.legs:
        fields[leg.symbol] = next((field for field in STRIKE_FIELDS
                                   if field in arguments and Decimal(str(arguments[field])) == leg.strike), "legs")
    return fields


def _given_legs(data: SpreadPreviewInput) -> tuple[SpreadPosition, dict[str, str]]:
    legs, errors = [], []
    for number, given in enumerate(data.legs, start=1):
        if given.option_symbol:
            leg = SpreadLeg.from_symbol(given.option_symbol.upper(), given.side, ratio=given.ratio)
        elif given.option_type and given.strike is not None and given.expiry is not None:
            leg = SpreadLeg.of(data.ticker, given.option_type, given.strike, given.expiry, given.side,
                               ratio=given.ratio)
        else:
            errors.append(f"Leg {number}: give its option symbol, or its call or put, strike and expiry.")
            continue
        if leg.contract.root != data.ticker:
            errors.append(f"Leg {number} ({leg.symbol}) is not a {data.ticker} option.")
        legs.append(leg)
    if errors:
        raise InvalidTradeInput({"legs": errors})
    strategy = data.strategy_type if data.strategy_type in spreads.TEMPLATES else CUSTOM
    position = SpreadPosition(tuple(legs), data.qty, strategy)
    return position, dict.fromkeys((leg.symbol for leg in position.legs), "legs")


def _check_expiries(position: SpreadPosition, fields_of: Mapping[str, str], market: Market, now: datetime) -> None:
    """Every expiry a trading day whose contracts still trade."""
    errors: dict[str, list[str]] = {}
    for expiry in position.expiries:
        problem = _expiry_problem(expiry, market, now)
        if problem:
            field = _date_field(position, expiry, fields_of)
            errors.setdefault(field, []).append(problem)
    if errors:
        raise InvalidTradeInput(errors)


def _date_field(position: SpreadPosition, expiry: date, fields_of: Mapping[str, str]) -> str:
    if set(fields_of.values()) == {"legs"}:
        return "legs"
    if len(position.expiries) == 1:
        return "expiry"
    return "front_expiry" if expiry == position.expiries[0] else "back_expiry"


def _expiry_problem(expiry: date, market: Market, now: datetime) -> str | None:
    try:
        if market.expiry_cutoff(expiry) <= now:
            return f"Contracts expiring {day_text(expiry)} have stopped trading."
        if not market.is_trading_day(expiry):
            return f"{day_text(expiry)} is not a trading day: options expire on trading days."
    except OutsideCalendar:
        return f"{day_text(expiry)} is beyond the market calendar: no contract expiring then can be traded yet."
    return None


def _priced(position: SpreadPosition, quotes: Mapping[str, Quote], fields_of: Mapping[str, str]) -> list[PricedLeg]:
    """Each leg at its natural side: bought at the ask, sold at the bid; its IV from the quote."""
    errors: dict[str, list[str]] = {}
    priced = []
    for leg in position.legs:
        name = f"{contract_text(leg.contract)} {leg.option_type.lower()}"
        quote = quotes.get(leg.symbol)
        field = fields_of.get(leg.symbol, "legs")
        if quote is None:
            errors.setdefault(field, []).append(
                f"The market lists no {name} ({leg.symbol}): check the strike {strike_text(leg.strike)} "
                f"and the expiry.")
            continue
        price = quote.ask if leg.side == LONG else quote.bid
        if price is None or price <= 0:
            side = "no ask to buy it at" if leg.side == LONG else "no bid: nobody is buying it"
            errors.setdefault(field, []).append(f"The {name} has {side} now.")
            continue
        iv = quote.greeks.mid_iv if quote.greeks is not None else None
        priced.append(PricedLeg(
            leg=SpreadLeg(leg.contract, leg.side, leg.ratio, price, float(iv) if iv and iv > 0 else None),
            bid=quote.bid, ask=quote.ask))
    if errors:
        raise InvalidTradeInput(errors)
    return priced


__all__ = ["CUSTOM", "FLAGS", "TEMPLATE_FIELDS", "PricedLeg", "SpreadPreview",
           "SpreadPreviewInput", "spread_preview"]
