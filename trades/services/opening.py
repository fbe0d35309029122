"""Opening a trade: validate against the market, check the risk limits, place it with the broker.

Order of work, all in the caller's transaction and the user's tenant context:
1. validate the contract and prices against the market-data source (no writes);
2. lock the user's settings row, so parallel opens of one user queue here, and check the risk
   limits against the trades already stored (so two opens cannot both squeeze under a limit);
3. write the PENDING trade and its first event — the row exists before any broker call, and
   every order carries a tag made from its id (`to-<id>-entry`, `-sl`, `-tp`);
4. place the entry (with both exits as one OTOCO for limit entries, otherwise the entry and,
   once it fills, the SL/TP as one OCO), and record the truth: OPEN, PENDING (working or to be
   reconciled), REJECTED with the broker's reason, or OPEN and marked for attention when the
   bracket could not be attached;
5. hand the context parts the scanner did not send to the collector, after the commit (the
   order book is already stored from the quote of step 1; see `context`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from brokers.base import BrokerError, BrokerProvider, Order, OrderStatus, Quote
from brokers.market import Market, OutsideCalendar, default_market
from brokers.occ import InvalidOptionSymbol, build_symbol
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from tradeoptions.words import day_text
from trades.models import (
    AccountSettings,
    Actor,
    EntryType,
    EventKind,
    OptionType,
    PaperTrade,
    TradeStatus,
)

from .alerts import risk_limit_refusal_tell
from .broker_health import broker_trading_check, broker_trouble_record
from .context import book_at_entry, context_errors, entry_context_request
from .costs import entry_costs
from .errors import BrokerAccountForbidden, InvalidTradeInput, RiskLimitExceeded, TradeError, price_text
from .exit_policies import exit_policy_checked
from .legs import single_leg_write
from .lifecycle import event_record, trade_transition
from .orders import (
    as_trade_error,
    bracket_ids,
    broker_of,
    entry_request,
    exit_requests,
    order_summary,
    split_legs,
    was_not_placed,
)
from .protection import bracket_attach
from .risk import TradePreview, bracket_from_pct, new_york_day_start, pct_errors, risk_room, trade_risk

TICKER = re.compile(r"[A-Z]{1,6}")
CONTEXT_FIELDS = (
    "strategy", "card_score", "ai_score", "ai_verdict", "gate_verdict", "technical_score", "sentiment_score",
    "delta_at_entry", "iv_at_entry", "signals_snapshot", "market_regime", "order_book_state", "ai_reasoning_log",
)
__all__ = ["TradeOpenInput", "TradeResult", "new_york_day_start", "trade_entry_update", "trade_open",
           "trade_open_check", "trade_risk"]


@dataclass(frozen=True)
class TradeOpenInput:
    """The stop-loss and the take-profit each come as a price (`sl_price`, `tp_price`) or as a
    percentage of the entry (`sl_pct` below it, `tp_pct` above it), never both; with neither, the
    preset saved for the trade's strategy (AccountSettings.strategy_presets) gives it."""

    ticker: str
    option_type: str
    strike: Decimal
    expiry: date
    qty: int
    sl_price: Decimal | None = None
    tp_price: Decimal | None = None
    limit_price: Decimal | None = None  # None: a market entry
    context: dict = field(default_factory=dict)
    sl_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    exit_policy: dict | None = None  # None: the strategy's preset policy, if any (exit_policies)


@dataclass(frozen=True)
class Checked:
    """A trade input as the market and the trader's presets resolve it."""

    symbol: str
    reference: Decimal  # the entry the checks use: the limit, or the ask of a market entry
    quote: Quote
    sl_price: Decimal
    tp_price: Decimal
    exit_policy: dict


@dataclass
class TradeResult:
    """A trade after a service acted on it, and what went wrong if anything did. The trade's rows
    are written either way (a REJECTED trade is a fact), so the caller must keep them."""

    trade: PaperTrade
    problem: TradeError | None = None


def trade_open(
    *,
    user: AbstractBaseUser,
    data: TradeOpenInput,
    idempotency_key: str | None = None,
    market: Market | None = None,
    actor: str = Actor.USER,
    actor_label: str = "api",
) -> TradeResult:
    """Open a long option trade for `user`. Raises InvalidTradeInput, RiskLimitExceeded or a broker
    configuration error before anything is written; afterwards it returns, whatever the broker did."""
    market = market or default_market()
    if unknown := set(data.context) - set(CONTEXT_FIELDS):
        raise ValueError(f"Unknown context fields: {sorted(unknown)}")
    try:
        with tenancy.acting_as(user.pk):
            checked = _validate(data, market, presets=_presets(user))
            entry_at = market.now()  # after the quote: the cut-off of everything the context may know
            context = {"order_book_state": book_at_entry(checked.quote, entry_at=entry_at), **data.context}
            account = _locked_account(user)
            broker = broker_of(account, market=market)
            broker_trading_check(account=account, mode=account.broker_mode)
            _room(user, account, data, checked, market).enforce()
            trade = PaperTrade.objects.create(
                owner=user, idempotency_key=idempotency_key or None, ticker=data.ticker,
                option_type=data.option_type, strike=data.strike, expiry=data.expiry, qty=data.qty,
                entry_type=EntryType.LIMIT if data.limit_price is not None else EntryType.MARKET,
                planned_entry_price=checked.reference, sl_price=checked.sl_price, tp_price=checked.tp_price,
                broker_mode=account.broker_mode, status=TradeStatus.PENDING, exit_policy=checked.exit_policy, **context,
            )
            single_leg_write(trade=trade)  # a single option is the one-leg case; no trade is without legs
            event_record(
                trade=trade, kind=EventKind.STATE_CHANGE, actor=actor, actor_user=_user(actor, user),
                actor_label=actor_label, new_status=TradeStatus.PENDING,
                payload={"option_symbol": checked.symbol, "qty": data.qty, "entry": trade.entry_type,
                         "planned_entry_price": checked.reference, "sl_price": checked.sl_price,
                         "tp_price": checked.tp_price, "broker_mode": account.broker_mode},
            )
    except RiskLimitExceeded as refused:  # nothing was written; the channels that chose it hear of it
        risk_limit_refusal_tell(owner_id=user.pk, refused=refused, at=market.now())
        raise
    # The PENDING trade has committed (unless the caller holds a transaction open) before its order
    # goes to the broker: whatever happens next, the order has a row that names it by its tag.
    with about_trade(trade.pk), tenancy.acting_as(user.pk):
        result = _place(trade, broker, at=market.now(), actor=actor, actor_user=_user(actor, user),
                        actor_label=actor_label)
    if isinstance(result.problem, BrokerAccountForbidden):  # the next open is refused before the broker
        broker_trouble_record(account=account, mode=trade.broker_mode, error=result.problem, at=market.now())
    # Only now, with the order placed: indicators and the regime are collected after the commit.
    if result.trade.status != TradeStatus.REJECTED:
        entry_context_request(trade=result.trade, entry_at=entry_at)
    return result


def trade_open_check(*, user: AbstractBaseUser, data: TradeOpenInput, market: Market | None = None) -> TradePreview:
    """Would `trade_open` accept this now? The same checks, in the same order (contract and prices
    against the market, the broker's configuration, the risk limits), raising the same errors;
    nothing is written, locked or sent to a broker. A later open can still be refused: the market
    and the stored trades move on, so `trade_open` checks again under its lock.

    Returns the preview: cost, risk and reward, and the room left under each limit, measured by
    the very `RiskRoom` that `trade_open` enforces. A RiskLimitExceeded carries it as `preview`."""
    market = market or default_market()
    if unknown := set(data.context) - set(CONTEXT_FIELDS):
        raise ValueError(f"Unknown context fields: {sorted(unknown)}")
    with tenancy.acting_as(user.pk):
        checked = _validate(data, market, presets=_presets(user))
        # Read, not created: a trader with no settings row yet is measured against the defaults.
        account = AccountSettings.objects.filter(owner=user).first() or AccountSettings(owner=user)
        broker_of(account, market=market)
        broker_trading_check(account=account, mode=account.broker_mode)
        room = _room(user, account, data, checked, market)
    preview = TradePreview(
        option_symbol=checked.symbol, option_type=data.option_type, strike=data.strike, qty=data.qty,
        entry_price=checked.reference, sl_price=checked.sl_price, tp_price=checked.tp_price,
        commission_per_contract=account.commission_rate, room=room,
    )
    if (problem := room.breach()) is not None:
        problem.preview = preview  # the form shows what the trade would take and how little is left
        raise problem
    return preview


def _presets(user: AbstractBaseUser) -> dict:
    """The trader's per-strategy stop and target presets (their tenant context is on)."""
    row = AccountSettings.objects.filter(owner=user).values_list("strategy_presets", flat=True).first()
    return row or {}


def _room(user, account: AccountSettings, data: TradeOpenInput, checked: Checked, market: Market):
    return risk_room(user=user, account=account, now=market.now(),
                     trade_risk=trade_risk(checked.reference, checked.sl_price, data.qty))


def _user(actor: str, user: AbstractBaseUser) -> AbstractBaseUser | None:
    return user if actor == Actor.USER else None


def _validate(data: TradeOpenInput, market: Market, *, presets: dict) -> Checked:
    """The contract, prices and context checked against the market; the symbol, the reference
    entry price (limit, or the ask of a market entry), the quote it came from, and the stop and
    target as prices (from a percentage of the reference, or the strategy's preset)."""
    now = market.now()
    errors: dict[str, list[str]] = context_errors(data.context, entry_at=now)
    sl_pct, tp_pct = data.sl_pct, data.tp_pct
    preset = presets.get(data.context.get("strategy") or "", {})
    if data.sl_price is None and sl_pct is None and preset.get("sl_pct") is not None:
        sl_pct = Decimal(preset["sl_pct"])
    if data.tp_price is None and tp_pct is None and preset.get("tp_pct") is not None:
        tp_pct = Decimal(preset["tp_pct"])
    errors.update(pct_errors(sl_pct=sl_pct, tp_pct=tp_pct))
    try:
        # A preset's scale-out simply does nothing on one contract; one the trader asks for is refused.
        policy = (exit_policy_checked(preset.get("exit_policy")) if data.exit_policy is None
                  else exit_policy_checked(data.exit_policy, quantity=data.qty))
    except InvalidTradeInput as error:
        errors.update(error.field_errors)
    for name, price, pct, words in (("sl", data.sl_price, sl_pct, "stop-loss"),
                                    ("tp", data.tp_price, tp_pct, "take-profit")):
        if price is not None and pct is not None:
            errors[f"{name}_pct"] = [f"Give the {words} as a price or as a percentage, not both."]
        elif price is None and pct is None:
            errors[f"{name}_price"] = [f"Give a {words} price, or a percentage of the entry."]
    if not TICKER.fullmatch(data.ticker or ""):
        errors["ticker"] = ["Unknown ticker format: 1 to 6 capital letters."]
    for name in ("strike", "sl_price", "tp_price", "limit_price"):
        value = getattr(data, name)
        if value is not None and value <= 0:
            errors[name] = ["Must be greater than zero."]
    if data.qty <= 0:
        errors["qty"] = ["Must be a positive whole number of contracts."]
    today = now.astimezone(ZoneInfo(settings.MARKET_TIME_ZONE)).date()
    if data.expiry < today:
        errors["expiry"] = [f"{day_text(data.expiry)} is in the past."]
    elif problem := _expiry_problem(data.expiry, market, now):
        errors["expiry"] = [problem]
    symbol = ""
    if not errors.keys() & {"ticker", "strike", "expiry"}:
        try:
            symbol = build_symbol(data.ticker, data.expiry, data.option_type, data.strike)
        except InvalidOptionSymbol as error:
            errors["option_symbol"] = [str(error)]
    if errors:
        raise InvalidTradeInput(errors)

    quote = market.quotes([symbol]).get(symbol)
    contract = (f"{data.ticker} {data.strike.normalize():f} {OptionType(data.option_type).label.lower()} "
                f"expiring {day_text(data.expiry)}")
    if quote is None:
        raise InvalidTradeInput({"option_symbol": [
            f"The market-data source lists no {contract} ({symbol}): check the strike and the expiry."]})
    reference = data.limit_price
    if reference is None:
        if not quote.ask:
            raise InvalidTradeInput({"limit_price": [
                f"The {contract} has no ask to price a market order: give a limit price."]})
        reference = quote.ask
    sl = data.sl_price if sl_pct is None else bracket_from_pct(reference, sl_pct, stop=True)
    tp = data.tp_price if tp_pct is None else bracket_from_pct(reference, tp_pct, stop=False)
    sl_field, tp_field = ("sl_price" if sl_pct is None else "sl_pct"), ("tp_price" if tp_pct is None else "tp_pct")
    if sl <= 0:
        errors[sl_field] = [f"{sl_pct}% below the entry ({price_text(reference)}) leaves no stop-loss price: "
                            f"give a smaller percentage."]
    elif sl >= reference:
        errors[sl_field] = [f"A long option's stop-loss must be below the entry ({price_text(reference)})."]
    if tp <= reference:
        errors[tp_field] = [f"A long option's take-profit must be above the entry ({price_text(reference)})."]
    if errors:
        raise InvalidTradeInput(errors)
    return Checked(symbol=symbol, reference=reference, quote=quote, sl_price=sl, tp_price=tp, exit_policy=policy)


def _expiry_problem(expiry: date, market: Market, now: datetime) -> str | None:
    """Why contracts expiring on `expiry` (not in the past) cannot be traded now, or None. A date
    beyond the exchange calendar's range is refused here, as a fact about the field."""
    try:
        if not market.is_trading_day(expiry):
            return f"{day_text(expiry)} is not a trading day: options expire on trading days."
        if market.expiry_cutoff(expiry) <= now:
            return f"Contracts expiring {day_text(expiry)} have stopped trading."
    except OutsideCalendar:
        return f"{day_text(expiry)} is beyond the market calendar: no contract expiring then can be traded yet."
    return None


def _locked_account(user: AbstractBaseUser) -> AccountSettings:
    """The user's settings row, locked until the transaction ends: opens of one user queue here."""
    account = AccountSettings.objects.select_for_update().filter(owner=user).first()
    if account is None:
        AccountSettings.objects.get_or_create(owner=user)
        account = AccountSettings.objects.select_for_update().get(owner=user)
    return account


def _place(trade: PaperTrade, broker: BrokerProvider, *, at: datetime, **who) -> TradeResult:
    entry = entry_request(trade)
    if trade.entry_type == EntryType.LIMIT and broker.supports_otoco:
        sl, tp = exit_requests(trade, quantity=trade.qty, sl=trade.sl_price, tp=trade.tp_price)
        try:
            order = broker.place_otoco_order(entry, sl, tp)
        except BrokerError as error:
            return _entry_failed(trade, error, **who)
        entry_leg = split_legs(order)[0] or order
        trade = trade_entry_update(trade_id=trade.pk, entry=entry_leg,
                                   changes={"entry_order_id": order.id, **bracket_ids(order)}, **who)
        return TradeResult(trade)
    try:
        order = broker.place_order(entry)
    except BrokerError as error:
        return _entry_failed(trade, error, **who)
    trade = trade_entry_update(trade_id=trade.pk, entry=order, changes={"entry_order_id": order.id}, **who)
    if trade.status == TradeStatus.OPEN:
        trade = bracket_attach(trade=trade, broker=broker, at=at, **who)
    return TradeResult(trade)


place_entry = _place  # the entry as first placed, or placed again at a new price (`working.entry_reprice`)


def _entry_failed(trade: PaperTrade, error: BrokerError, **who) -> TradeResult:
    problem = as_trade_error(error, trade=trade)
    if was_not_placed(error):
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.REJECTED, kind=EventKind.ORDER_REJECTED,
            changes={"status_reason": problem.message[:255]}, payload={"error": problem.code}, **who,
        )
    else:  # the entry may exist at the broker: keep the trade PENDING and look its tag up later
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.PENDING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": f"Entry order outcome unknown, reconcile by its tag: {error}"[:255]},
            payload={"error": problem.code}, **who,
        )
    problem.trade = trade
    return TradeResult(trade, problem)


def trade_entry_update(
    *, trade_id: int, entry: Order, changes: dict | None = None, actor: str = Actor.SYSTEM,
    actor_user: AbstractBaseUser | None = None, actor_label: str = "",
) -> PaperTrade:
    """Record what the broker says of a trade's entry order (also for the monitor's order sync).

    Filled: OPEN at the fill price. Partly filled and working: still PENDING, filled qty recorded.
    Cancelled or expired after a partial fill: OPEN with the filled qty. Cancelled or expired
    without a fill: CANCELED. Rejected: REJECTED with the broker's reason. Working: PENDING.
    """
    changes = dict(changes or {})
    filled = entry.fill.quantity if entry.fill else entry.filled_quantity
    who = {"actor": actor, "actor_user": actor_user, "actor_label": actor_label,
           "payload": {"order": order_summary(entry)}}
    if filled and (entry.status == OrderStatus.FILLED or entry.status.is_final):
        trade = PaperTrade.objects.get(pk=trade_id)
        changes.update(
            entry_price=entry.fill.price, entry_date=entry.fill.at or timezone.now(), filled_qty=filled,
            broker_fill_price=entry.fill.price, broker_fill_time=entry.fill.at, **entry_costs(trade, filled=filled),
        )
        if filled < trade.qty:  # the rest was cancelled: the trade is what was bought
            changes["qty"] = filled
        return trade_transition(trade_id=trade_id, to=TradeStatus.OPEN, kind=EventKind.ORDER_FILLED,
                                changes=changes, **who)
    if entry.status == OrderStatus.REJECTED or entry.status == OrderStatus.ERROR:
        changes["status_reason"] = (entry.reason or "Rejected by the broker.")[:255]
        return trade_transition(trade_id=trade_id, to=TradeStatus.REJECTED, kind=EventKind.ORDER_REJECTED,
                                changes=changes, **who)
    if entry.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
        changes["status_reason"] = f"The entry order was {entry.status.value} before it filled."
        return trade_transition(trade_id=trade_id, to=TradeStatus.CANCELED, kind=EventKind.ORDER_CANCELED,
                                changes=changes, **who)
    if filled:
        changes.update(filled_qty=filled, **entry_costs(PaperTrade.objects.get(pk=trade_id), filled=filled))
    kind = EventKind.ORDER_FILLED if filled else EventKind.ORDER_PLACED
    return trade_transition(trade_id=trade_id, to=TradeStatus.PENDING, kind=kind, changes=changes, **who)


# Shared with the multi-leg opening (`spread_opening`): one set of rules for what every open checks.
expiry_problem = _expiry_problem
locked_account = _locked_account
entry_failed = _entry_failed
acting_user = _user
