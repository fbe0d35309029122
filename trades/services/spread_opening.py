"""Opening a multi-leg trade (issue 19): 2–4 legs as one order, its exits as held prices.

The single option's path (`opening.trade_open`) stays as it is; this one shares its rules (the
expiry checks, the locked settings row, the risk room, the broker's trading check, a failed
placement's handling) and differs where a spread differs (docs/spreads.md, "The lifecycle of a
spread trade"):

1. the legs are checked (contracts the market lists, one underlying, unexpired, ratios in lowest
   terms), their template recognised or the one named checked (`trades.spreads.TEMPLATES`);
2. the direction is the trader's `net_direction`, else the sign of the legs' current mid net
   (positive: a debit); the held entry is the limit, or the natural net of a market entry (every
   buy at its ask, every sale at its bid) in that direction;
3. the exits are held prices, given as prices or as a share of the max profit /
   a multiple of the credit (`net_price`), and must lie on the right sides of the entry;
4. a position that is not defined-risk needs the account's `allow_naked_short_options`; the risk
   limits count the position's MAX LOSS (an unlimited one: its loss at the stop), and its
   buying power (width × 100 − credit, the debit for bought options) must fit the broker's;
5. the PENDING trade, its legs (positions 0..n, the row's contract = leg 0's) and its first event
   are written in one transaction, then ONE multileg order goes out with the tag
   `to-<id>-entry`; an outcome not known is looked up by that tag later, never sent twice.

`spread_entry_update` records what the broker says of that order, for the open and for the
monitor's sync: each leg's entry fill, the trade's entry = the held net of the legs' fills in the
direction the trade was opened with (so the held entry × its sign is exactly the signed sum of the
legs' fills; a market fill on the other side of zero is entered at 0 and flagged, `_crossed_zero`),
the entry commission on every contract of every leg; no bracket is placed (the monitor is it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from math import gcd
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from brokers.base import (
    BrokerError,
    Order,
    OrderPurpose,
    OrderSide,
    OrderStatus,
    Quote,
    SpreadOrderRequest,
    SpreadPriceType,
)
from brokers.base import SpreadLeg as OrderLeg
from brokers.market import Market, default_market
from brokers.occ import InvalidOptionSymbol, OptionContract, build_symbol, parse_symbol, underlying_of_root
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from tradeoptions.words import day_text
from trades import net_price
from trades.models import (
    CONTRACT_MULTIPLIER,
    AccountSettings,
    Actor,
    EntryType,
    EventKind,
    LegSide,
    PaperTrade,
    TradeLeg,
    TradeStatus,
)
from trades.spreads import (
    LONG,
    SHORT,
    TEMPLATES,
    SpreadLeg,
    SpreadPosition,
    contract_text,
    is_defined_risk,
    spread_risk,
)

from .alerts import risk_limit_refusal_tell
from .broker_health import broker_trading_check, broker_trouble_record
from .context import context_errors
from .costs import entry_costs
from .errors import BrokerAccountForbidden, InvalidTradeInput, RiskLimitExceeded, price_text
from .exit_policies import exit_policy_checked
from .lifecycle import event_record, trade_transition
from .opening import (
    CONTEXT_FIELDS,
    TICKER,
    TradeResult,
    acting_user,
    entry_failed,
    expiry_problem,
    locked_account,
    trade_entry_update,
)
from .orders import broker_of, order_summary, trade_order_tag
from .risk import max_loss_at, risk_room

CENT = Decimal("0.01")
ZERO = Decimal(0)
MIN_LEGS, MAX_LEGS = 2, 4
SIDES = {"LONG": LONG, "SHORT": SHORT, "BUY": LONG, "SELL": SHORT}  # buy/sell as the order form says it
MAX_CREDIT_MULTIPLE = Decimal(10)
NAKED_REFUSED = (
    "This position sells options that no bought option covers (a naked short: its loss is unlimited), and "
    "your account does not allow naked short options (turn it on in Settings). The broker must allow it "
    "too: Tradier writes uncovered options only for an account approved for them (its option level) and "
    "holds naked-option margin against them; the local paper broker writes none unless the server allows "
    "it (PAPER_ALLOW_NAKED_SHORTS), and then holds the legs' worst payout at expiry up to the highest strike.")

__all__ = ["SpreadLegInput", "SpreadOpenInput", "max_loss_at", "spread_entry_update", "spread_open",
           "strategy_of"]


@dataclass(frozen=True)
class SpreadLegInput:
    """One leg as the trader names it: an OCC symbol, or its right, strike and expiry; bought
    (LONG, or `buy`) or sold (SHORT, `sell`), `ratio` contracts per unit."""

    side: str
    ratio: int = 1
    option_symbol: str = ""
    option_type: str | None = None
    strike: Decimal | None = None
    expiry: date | None = None


@dataclass(frozen=True)
class SpreadOpenInput:
    """`qty` units of the legs on `ticker`. Prices are held prices (docs/spreads.md): positive, a
    debit's what is paid, a credit's what is received. The target is `tp_price` or
    `take_profit_pct_of_max` (1–99 % of the max profit); the stop `sl_price` or, for a credit trade,
    `stop_loss_credit_multiple` (2: buy back at twice the credit)."""

    ticker: str
    legs: tuple[SpreadLegInput, ...]
    qty: int
    strategy_type: str | None = None  # None: recognised from the legs
    limit_price: Decimal | None = None  # None: a market entry
    net_direction: str | None = None  # None: the sign of the legs' current mid net
    sl_price: Decimal | None = None
    tp_price: Decimal | None = None
    take_profit_pct_of_max: Decimal | None = None
    stop_loss_credit_multiple: Decimal | None = None
    context: dict = field(default_factory=dict)
    exit_policy: dict | None = None


@dataclass(frozen=True)
class CheckedSpread:
    position: SpreadPosition  # premiums 0: the contracts, sides and ratios
    strategy: str
    direction: str
    reference: Decimal  # the held entry the checks use: the limit, or the natural net
    sl_price: Decimal
    tp_price: Decimal
    max_loss: Decimal | None  # dollars for the whole trade at the reference; None: unlimited
    buying_power: Decimal | None  # what opening holds; None: not defined-risk (the broker's margin)
    exits_from: dict  # how a share of max profit / a credit multiple became prices (for the audit log)
    exit_policy: dict


def spread_open(
    *,
    user: AbstractBaseUser,
    data: SpreadOpenInput,
    idempotency_key: str | None = None,
    market: Market | None = None,
    actor: str = Actor.USER,
    actor_label: str = "api",
) -> TradeResult:
    """Open a multi-leg trade for `user`. Raises InvalidTradeInput, RiskLimitExceeded or a broker
    configuration error before anything is written; afterwards it returns, whatever the broker did."""
    market = market or default_market()
    if unknown := set(data.context) - set(CONTEXT_FIELDS):
        raise ValueError(f"Unknown context fields: {sorted(unknown)}")
    try:
        trade, account, broker = _checked_and_written(user, data, market, idempotency_key=idempotency_key,
                                                      who={"actor": actor, "actor_user": acting_user(actor, user),
                                                           "actor_label": actor_label})
    except RiskLimitExceeded as refused:  # nothing was written; the channels that chose it hear of it
        risk_limit_refusal_tell(owner_id=user.pk, refused=refused, at=market.now())
        raise
    # The PENDING trade and its legs have committed before the order goes to the broker.
    with about_trade(trade.pk), tenancy.acting_as(user.pk):
        result = _place(trade, broker, actor=actor, actor_user=acting_user(actor, user), actor_label=actor_label)
    if isinstance(result.problem, BrokerAccountForbidden):
        broker_trouble_record(account=account, mode=trade.broker_mode, error=result.problem, at=market.now())
    return result


def _checked_and_written(user, data: SpreadOpenInput, market: Market, *, idempotency_key: str | None, who: dict):
    """The checks, the risk room (RiskLimitExceeded) and the PENDING trade's write: (trade, the
    settings row as it stood, its broker)."""
    with tenancy.acting_as(user.pk):
        stored = AccountSettings.objects.filter(owner=user).first() or AccountSettings(owner=user)
        checked = spread_checked(data, market, allow_naked=stored.allow_naked_short_options)
        broker = broker_of(stored, market=market)
        broker_trading_check(account=stored, mode=stored.broker_mode)
    _within_buying_power(checked, broker)  # a broker read: before the settings row is locked
    with tenancy.acting_as(user.pk):
        account = locked_account(user)
        if account.allow_naked_short_options != stored.allow_naked_short_options or account.broker_mode != \
                stored.broker_mode:  # changed meanwhile: check again as the row now stands
            checked = spread_checked(data, market, allow_naked=account.allow_naked_short_options)
            broker = broker_of(account, market=market)
        risk_room(user=user, account=account, now=market.now(), trade_risk=_heat_of(checked, data.qty)).enforce()
        trade = _trade_write(user, account, data, checked, idempotency_key=idempotency_key, who=who)
    return trade, account, broker


def _trade_write(user, account: AccountSettings, data: SpreadOpenInput, checked: CheckedSpread, *,
                 idempotency_key: str | None, who: dict) -> PaperTrade:
    first = checked.position.legs[0]
    trade = PaperTrade.objects.create(
        owner=user, idempotency_key=idempotency_key or None, ticker=data.ticker, option_type=first.option_type,
        strike=first.strike, expiry=first.expiry, qty=data.qty, strategy_type=checked.strategy,
        net_direction=checked.direction,
        entry_type=EntryType.LIMIT if data.limit_price is not None else EntryType.MARKET,
        planned_entry_price=checked.reference, sl_price=checked.sl_price, tp_price=checked.tp_price,
        broker_mode=account.broker_mode, status=TradeStatus.PENDING, exit_policy=checked.exit_policy, **data.context,
    )
    TradeLeg.objects.bulk_create([
        TradeLeg(owner_id=user.pk, trade=trade, position=index, option_symbol=leg.symbol,
                 option_type=leg.option_type, strike=leg.strike, expiry=leg.expiry, side=leg.side, ratio=leg.ratio)
        for index, leg in enumerate(checked.position.legs)
    ])
    event_record(
        trade=trade, kind=EventKind.STATE_CHANGE, new_status=TradeStatus.PENDING, **who,
        payload={"strategy_type": checked.strategy, "net_direction": checked.direction, "qty": data.qty,
                 "legs": [{"option_symbol": leg.symbol, "side": leg.side, "ratio": leg.ratio}
                          for leg in checked.position.legs],
                 "entry": trade.entry_type, "planned_entry_price": checked.reference,
                 "sl_price": checked.sl_price, "tp_price": checked.tp_price, **checked.exits_from,
                 "max_loss": checked.max_loss, "buying_power": checked.buying_power,
                 "broker_mode": account.broker_mode},
    )
    return trade


# --- checks -------------------------------------------------------------------------------------


def spread_checked(data: SpreadOpenInput, market: Market, *, allow_naked: bool) -> CheckedSpread:
    """The legs, prices and exits checked against the market and the account's naked-short switch;
    InvalidTradeInput, field by field, in the trader's words, otherwise."""
    now = market.now()
    errors: dict[str, list[str]] = context_errors(data.context, entry_at=now)
    if not TICKER.fullmatch(data.ticker or ""):
        errors["ticker"] = ["Unknown ticker format: 1 to 6 capital letters."]
    if data.qty <= 0:
        errors["qty"] = ["Must be a positive whole number of spreads."]
    if data.limit_price is not None and (data.limit_price <= 0 or data.limit_price != data.limit_price.quantize(CENT)):
        errors["limit_price"] = ["A spread's limit is its net price per share: above 0, in whole cents."]
    if data.net_direction not in (None, net_price.DEBIT, net_price.CREDIT):
        errors["net_direction"] = ["Say debit (you pay the net) or credit (you receive it)."]
    if data.strategy_type is not None and data.strategy_type not in TEMPLATES:
        errors["strategy_type"] = [f"Choose one of {_template_names()}."]
    try:
        policy = exit_policy_checked(data.exit_policy, quantity=data.qty, multi_leg=True)  # a spread closes whole
    except InvalidTradeInput as error:
        policy = {}
        errors.update(error.field_errors)
    legs = _legs(data, now, market, errors)
    if errors:
        raise InvalidTradeInput(errors)
    try:
        position = SpreadPosition(legs, data.qty)
    except InvalidTradeInput as error:
        raise InvalidTradeInput({("qty" if name == "quantity" else name): texts
                                 for name, texts in error.field_errors.items()}) from None
    strategy = _strategy(position, data.strategy_type)
    if not allow_naked and not is_defined_risk(position):
        raise InvalidTradeInput({"legs": [NAKED_REFUSED]})
    quotes = market.quotes([leg.symbol for leg in legs])
    if missing := [leg for leg in legs if leg.symbol not in quotes]:
        raise InvalidTradeInput({"legs": [
            f"The market-data source lists no {_leg_name(leg)} ({leg.symbol}): check its strike and expiry."
            for leg in missing]})
    direction, reference = _entry(data, legs, quotes)
    sl, tp, exits_from = _exits(data, position, direction, reference)
    max_loss = max_loss_at(position, net_price.direction_sign(direction) * reference)
    buying_power = None if max_loss is None or not is_defined_risk(position) else max(
        max_loss, net_price.direction_sign(direction) * reference * data.qty * CONTRACT_MULTIPLIER, ZERO)
    return CheckedSpread(position=replace(position, strategy=strategy), strategy=strategy, direction=direction,
                         reference=reference, sl_price=sl, tp_price=tp, max_loss=max_loss, buying_power=buying_power,
                         exits_from=exits_from, exit_policy=policy)


def _legs(data: SpreadOpenInput, now, market: Market, errors: dict) -> tuple[SpreadLeg, ...]:
    """The legs as contracts, or the reasons they are not (in `errors`, on `legs`)."""
    problems: list[str] = []
    if not MIN_LEGS <= len(data.legs) <= MAX_LEGS:
        problems.append(f"A multi-leg trade has {MIN_LEGS} to {MAX_LEGS} legs; this one has {len(data.legs)}.")
    today = now.astimezone(ZoneInfo(settings.MARKET_TIME_ZONE)).date()
    legs = []
    for number, given in enumerate(data.legs, start=1):
        try:
            contract = (parse_symbol(given.option_symbol.strip().upper()) if given.option_symbol else OptionContract(
                root=data.ticker, expiry=given.expiry, option_type=given.option_type, strike=given.strike))
            build_symbol(contract.root, contract.expiry, contract.option_type, contract.strike)
        except (InvalidOptionSymbol, TypeError, AttributeError) as error:
            problems.append(f"Leg {number}: {error}" if isinstance(error, InvalidOptionSymbol) else
                            f"Leg {number}: give its option symbol, or its type, strike and expiry.")
            continue
        side = SIDES.get(str(given.side).upper())
        if side is None:
            problems.append(f"Leg {number}: say whether it is bought (LONG) or sold (SHORT).")
            continue
        if isinstance(given.ratio, bool) or not isinstance(given.ratio, int) or given.ratio < 1:
            problems.append(f"Leg {number}: its ratio is a whole number of contracts per spread, at least 1.")
            continue
        if data.ticker and contract.root != data.ticker and underlying_of_root(contract.root) != data.ticker:
            problems.append(f"Leg {number} ({contract.symbol}) is an option on {underlying_of_root(contract.root)}, "
                            f"not {data.ticker}: every leg must be on the trade's underlying.")
        if contract.expiry < today:
            problems.append(f"Leg {number} expired on {day_text(contract.expiry)}.")
        elif problem := expiry_problem(contract.expiry, market, now):
            problems.append(f"Leg {number}: {problem}")
        legs.append(SpreadLeg(contract, side, given.ratio))
    if legs and len(legs) == len(data.legs) and (common := _common_factor(leg.ratio for leg in legs)) > 1:
        problems.append(f"The ratios share a factor of {common}: that is {common} units of the smaller spread. "
                        f"Give ratios in lowest terms and {common} times the quantity.")
    if problems:
        errors.setdefault("legs", []).extend(problems)
    return tuple(legs)


def _common_factor(ratios) -> int:
    factor = 0
    for ratio in ratios:
        factor = gcd(factor, ratio)
    return factor


def _leg_name(leg: SpreadLeg) -> str:
    return f"{contract_text(leg.contract)} {leg.option_type.lower()}"


def _template_names() -> str:
    return ", ".join(name.replace("_", " ") for name in TEMPLATES)


def _strategy(position: SpreadPosition, named: str | None) -> str:
    """The template the legs make: the one named, checked, or the one recognised. Legs that make
    none of them are refused rather than stored under a label they do not earn."""
    found = strategy_of(position)
    if named is not None and found != named:
        made = f"they make a {found.replace('_', ' ')}" if found else "they make none of the strategies tracked"
        raise InvalidTradeInput({"strategy_type": [
            f"These legs are not a {named.replace('_', ' ')}: {made}. {_TEMPLATE_WORDS[named]}"]})
    if found is None:
        raise InvalidTradeInput({"strategy_type": [
            f"These legs make none of the strategies tracked ({_template_names()}): check the sides, strikes, "
            f"expiries and ratios."]})
    return found


_TEMPLATE_WORDS = {
    "vertical": "A vertical buys one option and sells another of the same type and expiry at another strike.",
    "straddle": "A straddle buys (or sells) a call and a put at one strike and expiry.",
    "strangle": "A strangle buys (or sells) a put below and a call above, one expiry.",
    "iron_condor": "An iron condor sells a put and a call and buys one further out on each side, one expiry.",
    "butterfly": "A butterfly buys the lower and upper wing and sells two at the middle strike, one type and expiry.",
    "calendar": "A calendar sells the front expiry and buys a later one, one type and strike.",
}


def strategy_of(position: SpreadPosition) -> str | None:
    """The template of trades.spreads that makes exactly these legs (contracts, sides, ratios), or None."""
    legs = position.legs
    mine = {(leg.symbol, leg.side, leg.ratio) for leg in legs}
    root, expiry = legs[0].contract.root, legs[0].expiry
    calls = sorted(leg.strike for leg in legs if leg.option_type == "CALL")
    puts = sorted(leg.strike for leg in legs if leg.option_type == "PUT")
    kind = legs[0].option_type
    strikes = sorted(leg.strike for leg in legs)
    expiries = sorted({leg.expiry for leg in legs})
    tries = {
        "vertical": [{"expiry": expiry, "option_type": kind, "lower": strikes[0], "upper": strikes[-1],
                      "credit": credit} for credit in (False, True)],
        "straddle": [{"expiry": expiry, "strike": strikes[0], "short": short} for short in (False, True)],
        "strangle": [{"expiry": expiry, "put_strike": (puts or [0])[0], "call_strike": (calls or [0])[0],
                      "short": short} for short in (False, True)],
        "iron_condor": [{"expiry": expiry, "long_put": puts[0], "short_put": puts[-1], "short_call": calls[0],
                         "long_call": calls[-1]}] if puts and calls else [],
        "butterfly": [{"expiry": expiry, "option_type": kind, "lower": strikes[0], "middle": strikes[len(strikes) // 2],
                       "upper": strikes[-1]}],
        "calendar": [{"option_type": kind, "strike": strikes[0], "front_expiry": expiries[0],
                      "back_expiry": expiries[-1]}],
    }
    for name, attempts in tries.items():
        for kwargs in attempts:
            try:
                made = TEMPLATES[name](root=root, **kwargs)
            except (InvalidTradeInput, ValueError, InvalidOptionSymbol):
                continue
            if {(leg.symbol, leg.side, leg.ratio) for leg in made.legs} == mine:
                return name
    return None


def _entry(data: SpreadOpenInput, legs: Sequence[SpreadLeg], quotes: dict[str, Quote]) -> tuple[str, Decimal]:
    """The direction (the trader's, else the sign of the mid net) and the held entry the checks
    use: the limit, or the natural net of a market entry (buys at the ask, sales at the bid)."""
    mid = _net(legs, quotes, _mid)
    natural = _net(legs, quotes, lambda leg, quote: quote.ask if leg.side == LONG else (quote.bid or None))
    direction = data.net_direction
    if direction is None:
        basis = mid if mid is not None else natural
        if basis is None or basis == 0:
            raise InvalidTradeInput({"net_direction": [
                "The legs' quotes do not say whether this spread costs or pays (no mid, or a net of 0): say "
                "debit or credit."]})
        direction = net_price.direction_of(basis)
    if data.limit_price is not None:
        return direction, data.limit_price
    if natural is None:
        raise InvalidTradeInput({"limit_price": [
            "A leg has no ask to buy at or no bid to sell at, so a market order has no price: give a limit price."]})
    held = net_price.held_price(direction, natural)
    if held <= 0:
        paid = "receives" if natural < 0 else "costs"
        raise InvalidTradeInput({"net_direction": [
            f"At the quotes this spread {paid} {price_text(abs(natural))} per share, so it is not a {direction}: "
            f"a market order would not open the trade you describe."]})
    return direction, held


def _mid(leg: SpreadLeg, quote: Quote) -> Decimal | None:
    if quote.bid is None or quote.ask is None:
        return None
    return (quote.bid + quote.ask) / 2


def _net(legs, quotes, price_of) -> Decimal | None:
    total = ZERO
    for leg in legs:
        price = price_of(leg, quotes[leg.symbol])
        if price is None:
            return None
        total += leg.sign * leg.ratio * price
    return total


def _exits(data: SpreadOpenInput, position: SpreadPosition, direction: str,
           entry: Decimal) -> tuple[Decimal, Decimal, dict]:
    """The stop and target as held prices, and how they were derived (recorded in the audit log)."""
    errors: dict[str, list[str]] = {}
    derived: dict = {}
    tp, sl = data.tp_price, data.sl_price
    share, multiple = data.take_profit_pct_of_max, data.stop_loss_credit_multiple
    if tp is not None and share is not None:
        errors["take_profit_pct_of_max"] = [
            "Give the take-profit as a price or as a share of the max profit, not both."]
    elif share is not None:
        if not 1 <= share <= 99:
            errors["take_profit_pct_of_max"] = ["A share of the max profit is 1 to 99 %."]
        elif (best := _max_profit_per_share(position, direction, entry)) is None:
            errors["take_profit_pct_of_max"] = [
                "This position's max profit is not a fixed amount (unlimited, or modelled across two expiries): "
                "give the take-profit as a price."]
        else:
            tp = net_price.target_at_share_of_max_profit(direction, entry=entry, max_profit=best, percent=share)
            tp = tp.quantize(CENT, rounding=ROUND_HALF_UP)
            derived["take_profit"] = {"pct_of_max": f"{share.normalize():f}", "max_profit_per_share": best,
                                      "tp_price": tp}
    if sl is not None and multiple is not None:
        errors["stop_loss_credit_multiple"] = [
            "Give the stop-loss as a price or as a multiple of the credit, not both."]
    elif multiple is not None:
        if direction != net_price.CREDIT:
            errors["stop_loss_credit_multiple"] = [
                "A stop as a multiple of the credit is for a credit trade; this one pays a debit: give a stop-loss "
                "price."]
        elif not 1 < multiple <= MAX_CREDIT_MULTIPLE:
            errors["stop_loss_credit_multiple"] = [
                f"A multiple of the credit is above 1 (buy back for more than was received) and at most "
                f"{MAX_CREDIT_MULTIPLE}."]
        else:
            sl = net_price.stop_at_credit_multiple(credit=entry, multiple=multiple)
            sl = sl.quantize(CENT, rounding=ROUND_HALF_UP)
            derived["stop_loss"] = {"credit_multiple": f"{multiple.normalize():f}", "sl_price": sl}
    if sl is None and "stop_loss_credit_multiple" not in errors:
        also = " (or, for a credit trade, a multiple of the credit)" if direction == net_price.CREDIT else ""
        errors["sl_price"] = [f"Give a stop-loss price{also}."]
    if tp is None and "take_profit_pct_of_max" not in errors:
        errors["tp_price"] = ["Give a take-profit price, or a share of the max profit."]
    if errors:
        raise InvalidTradeInput(errors)
    if not net_price.exits_in_order(direction, entry=entry, stop=sl, target=tp):
        errors = _exit_sides(direction, entry, sl, tp, stop_field="sl_price" if multiple is None else
                             "stop_loss_credit_multiple",
                             target_field="tp_price" if share is None else "take_profit_pct_of_max")
        raise InvalidTradeInput(errors)
    return sl, tp, derived


def _exit_sides(direction: str, entry: Decimal, sl: Decimal, tp: Decimal, *, stop_field: str,
                target_field: str) -> dict[str, list[str]]:
    """Which exit is on the wrong side of the entry, in the trader's words."""
    errors = {}
    held = price_text(entry)
    if direction == net_price.DEBIT:
        if not sl < entry:
            errors[stop_field] = [f"A debit trade's stop-loss must be below the {held} debit paid."]
        if not tp > entry:
            errors[target_field] = [f"A debit trade's take-profit must be above the {held} debit paid."]
        if sl <= 0:
            errors[stop_field] = ["A stop-loss is a price above 0."]
    else:
        if not sl > entry:
            errors[stop_field] = [f"A credit trade's stop-loss is what buying it back costs at worst: above the "
                                  f"{held} credit received."]
        if not tp < entry:
            errors[target_field] = [f"A credit trade's take-profit is a cheaper buy-back: below the {held} credit "
                                    f"received."]
    return errors


def _max_profit_per_share(position: SpreadPosition, direction: str, entry: Decimal) -> Decimal | None:
    """Per share of one unit, at this entry; None when unlimited or modelled (two expiries)."""
    if len(position.expiries) > 1:
        return None
    signed = net_price.direction_sign(direction) * entry
    bare = replace(position, legs=tuple(replace(leg, premium=ZERO, iv=None) for leg in position.legs), quantity=1)
    best = spread_risk(bare).max_profit
    return None if best is None else best / CONTRACT_MULTIPLIER - signed


def _heat_of(checked: CheckedSpread, qty: int) -> Decimal:
    """What the heat limit counts for this trade: its max loss; an unlimited one (a naked short the
    account allows) counts its loss at the stop."""
    if checked.max_loss is not None:
        return checked.max_loss
    return abs(checked.sl_price - checked.reference) * qty * CONTRACT_MULTIPLIER


def _within_buying_power(checked: CheckedSpread, broker) -> None:
    """A defined-risk spread holds its buying power (width × 100 − credit; a debit spread its
    debit): refused here when the broker reports less. A broker that cannot say now is left to
    refuse the order itself."""
    if checked.buying_power is None:
        return
    try:
        available = broker.get_account_balance().option_buying_power
    except BrokerError:
        return
    if available is not None and checked.buying_power > available:
        name = checked.strategy.replace("_", " ")
        raise RiskLimitExceeded(
            f"This {name} holds ${checked.buying_power:,.2f} of buying power (the most it can lose: the width × 100 "
            f"less the credit, or the debit) and your buying power is ${available:,.2f}.",
            limit="buying_power", current=checked.buying_power, allowed=available, field="qty")


# --- the order and its fills --------------------------------------------------------------------


def spread_order_request(trade: PaperTrade, legs: Sequence[TradeLeg]) -> SpreadOrderRequest:
    """The entry as one multileg order: every leg opened (bought or sold), ratio × units contracts."""
    if trade.entry_type == EntryType.LIMIT:
        price_type = SpreadPriceType.DEBIT if trade.net_direction == net_price.DEBIT else SpreadPriceType.CREDIT
        price = trade.planned_entry_price.quantize(CENT)
    else:
        price_type, price = SpreadPriceType.MARKET, None
    return SpreadOrderRequest(
        underlying=trade.ticker, price_type=price_type, price=price, tag=trade_order_tag(trade, OrderPurpose.ENTRY),
        legs=tuple(OrderLeg(leg.option_symbol, OrderSide.BUY_TO_OPEN if leg.side == LegSide.LONG
                            else OrderSide.SELL_TO_OPEN, leg.ratio * trade.qty) for leg in legs))


def _place(trade: PaperTrade, broker, **who) -> TradeResult:
    legs = list(TradeLeg.objects.filter(trade=trade).order_by("position"))
    try:
        order = broker.place_spread_order(spread_order_request(trade, legs))
    except BrokerError as error:
        return entry_failed(trade, error, **who)
    return TradeResult(spread_entry_update(trade_id=trade.pk, entry=order, changes={"entry_order_id": order.id},
                                           **who))


def spread_entry_update(
    *, trade_id: int, entry: Order, changes: dict | None = None, actor: str = Actor.SYSTEM,
    actor_user: AbstractBaseUser | None = None, actor_label: str = "",
) -> PaperTrade:
    """Record what the broker says of a multi-leg trade's entry order (the open, the monitor's sync,
    a cancel that met a fill). Units filled, with the order finished or whole: OPEN, each leg at its
    own fill, the trade at the held net of them. Some units filled and still working: PENDING with
    `filled_qty`. Nothing filled: as a single option's entry (`trade_entry_update`: working,
    cancelled, expired, refused with the broker's words)."""
    changes = dict(changes or {})
    units = entry.fill.quantity if entry.fill else entry.filled_quantity
    if not units:
        return trade_entry_update(trade_id=trade_id, entry=entry, changes=changes, actor=actor,
                                  actor_user=actor_user, actor_label=actor_label)
    who = {"actor": actor, "actor_user": actor_user, "actor_label": actor_label}
    with transaction.atomic():
        trade = PaperTrade.objects.select_for_update().get(pk=trade_id)
        legs = list(TradeLeg.objects.filter(trade=trade).order_by("position"))
        contracts = units * sum(leg.ratio for leg in legs)
        if not (entry.status == OrderStatus.FILLED or entry.status.is_final):  # some units, more to come
            changes.update(filled_qty=units, **entry_costs(trade, filled=contracts))
            return trade_transition(trade_id=trade_id, to=TradeStatus.PENDING, kind=EventKind.ORDER_FILLED,
                                    changes=changes, payload={"order": order_summary(entry)}, **who)
        fills = _leg_fills(entry, legs)
        if fills is None:  # units filled, yet a leg tells no price: a person must look
            changes["attention_reason"] = ("The spread's entry filled but a leg's fill price is not reported: "
                                           "check the legs at the broker.")[:255]
            return trade_transition(trade_id=trade_id, to=TradeStatus.PENDING, kind=EventKind.ATTENTION_NEEDED,
                                    changes=changes, payload={"order": order_summary(entry)}, **who)
        net = sum((leg.sign * leg.ratio * fills[leg.option_symbol] for leg in legs), ZERO)
        held = net_price.held_price(trade.net_direction, net)  # the planned direction: its exits mean it
        at = entry.fill.at if entry.fill and entry.fill.at else timezone.now()
        changes.update(entry_price=max(held, ZERO), entry_date=at, filled_qty=units,
                       broker_fill_price=max(held, ZERO), broker_fill_time=entry.fill.at if entry.fill else None,
                       **entry_costs(trade, filled=contracts))
        if units < trade.qty:  # the rest was cancelled: the trade is what filled
            changes["qty"] = units
        told = (_crossed_zero(trade.net_direction, net), _uneven(entry, legs, units))
        if problems := [problem for problem in told if problem]:
            changes["attention_reason"] = " ".join(problems)[:255]  # both told when both happened
        for leg in legs:
            TradeLeg.objects.filter(pk=leg.pk).update(entry_price=fills[leg.option_symbol])
        return trade_transition(
            trade_id=trade_id, to=TradeStatus.OPEN, kind=EventKind.ORDER_FILLED, changes=changes, **who,
            payload={"order": order_summary(entry), "net": net,
                     "leg_fills": {leg.option_symbol: fills[leg.option_symbol] for leg in legs}})


def _crossed_zero(direction: str, net: Decimal) -> str:
    """Words for a market entry that filled on the other side of zero (the market moved between
    the check and the fill). The trade keeps its planned direction, so its exits keep their meaning,
    and is entered at 0: its P&L reads better than the legs' fills by the amount crossed, which
    the legs keep exactly; a person decides whether to keep it."""
    held = net_price.held_price(direction, net)
    if held >= 0:
        return ""
    filled = net_price.CREDIT if direction == net_price.DEBIT else net_price.DEBIT
    return (f"Planned as a {direction}, the spread filled at a {-held:.2f} {filled}: it is recorded at 0.00, "
            f"so its P&L reads {-held * 100:.2f} dollars a unit better than its fills. Check it and its exits.")


def _leg_fills(entry: Order, legs: Sequence[TradeLeg]) -> dict[str, Decimal] | None:
    """Each leg's average fill per share, by contract, or None when one is not reported."""
    reported = {leg.option_symbol: leg.fill.price for leg in entry.legs if leg.option_symbol and leg.fill}
    if any(leg.option_symbol not in reported for leg in legs):
        return None
    return reported


def _uneven(entry: Order, legs: Sequence[TradeLeg], units: int) -> str:
    """Words for a spread the broker filled leg by leg unevenly (more of a leg than whole units)."""
    ratio = {leg.option_symbol: leg.ratio for leg in legs}
    extra = [f"{order.filled_quantity - units * ratio[order.option_symbol]} more {order.option_symbol}"
             for order in entry.legs if order.option_symbol in ratio
             and order.filled_quantity > units * ratio[order.option_symbol]]
    return f"The broker filled the legs unevenly: it holds {', '.join(extra)} than the trade." if extra else ""
