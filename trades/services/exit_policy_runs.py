"""Applying exit policies: the monitor hands over quotes, this moves stops and asks for closes.

Every open trade with a policy is evaluated by the pure engine (`exit_policies`) against one
look at the market. What it answers is carried out through the paths a trader's own requests
take, so their locks, version checks, broker sequences and audit events hold unchanged:

* a multi-leg trade is judged on its held mid (`current_price`, the marks' work) in its own
  direction, and since no broker holds its stop, a stop move is the row's `sl_price` alone
  (`spread_stop_move`: the version claim and the audit event a bracket move writes, so the stop's
  path shows it); its closes go through the same policy close, which sends the closing multileg order;
* a stop move is the broker's modify of the resting stop where it has one (`stop_move_in_place`),
  else `brackets_adjust` (cancel the OCO, place the new one); either way the system is the actor
  and the audit event carries the policy and the quote that moved it;
* a time stop or the stock's trailing level goes through the close (`trade_policy_close`), with
  the trade's version: a close already asked for is a conflict, never a second sell;
* a scale-out sells its part through the partial sale (`trade_part_sell`: cancel the bracket,
  sell the part, place the bracket for the rest), once: the trade remembers it fired.

The high-water marks are written on every look (they are the trailing stops' memory), the stop
only when it moves by the step and a tick, and at most once per EXIT_POLICY_MIN_INTERVAL_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import DecimalField, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest, Least

from brokers.base import BrokerError
from brokers.market import Market
from tradeoptions import tenancy
from trades.models import (
    CONTRACT_MULTIPLIER,
    Actor,
    CloseReason,
    EventKind,
    ExitPartReason,
    OptionType,
    PaperTrade,
    StrategyType,
    TradeStatus,
)
from trades.net_price import CREDIT, direction_sign

from .brackets import brackets_adjust, stop_move_in_place
from .closing import trade_policy_close
from .errors import TradeError
from .exit_policies import (
    CloseWhy,
    ExitDecision,
    ExitPolicy,
    ExitState,
    Observation,
    commission_per_share,
    exit_policy_evaluate,
)
from .lifecycle import trade_transition
from .parts import trade_part_sell

logger = logging.getLogger(__name__)

CLOSE_REASONS = {CloseWhy.SESSION_END: CloseReason.TIME_STOP, CloseWhy.DAYS_TO_EXPIRY: CloseReason.TIME_STOP,
                 CloseWhy.HOURS_HELD: CloseReason.TIME_STOP, CloseWhy.UNDERLYING: CloseReason.STOCK_STOP}

OptionBids = Callable[[list[str]], dict[str, Decimal | None]]
UnderlyingPrices = Callable[[list[str]], dict[str, Decimal]]


@dataclass(frozen=True)
class ExitPoliciesReport:
    watched: int = 0
    stops_moved: int = 0
    closes_asked: int = 0
    parts_sold: int = 0


def exit_policies_apply(*, option_bids: OptionBids, underlying_prices: UnderlyingPrices, now: datetime,
                        today: date, session_close: datetime | None, market: Market,
                        broker_modes: list[str] | None = None,
                        accounts: Callable[[QuerySet], QuerySet] | None = None) -> ExitPoliciesReport:
    """One look at every open trade with a policy (at the `broker_modes` given, else at every
    broker; of the `accounts` given, else of every account: a sharded monitor cycle's).
    `option_bids` and `underlying_prices` are asked only for the contracts and stocks those trades
    need (the stocks only where a policy trails one), outside any transaction."""
    retry = timedelta(seconds=settings.EXIT_POLICY_MIN_INTERVAL_SECONDS)
    with tenancy.system_context():
        # An OPEN trade whose policy close was asked for came back open (the sell was refused or did
        # not fill): it is watched again after the interval, so a passing broker error at 15:45 does
        # not carry the position past the bell.
        watched = (PaperTrade.objects.filter(status=TradeStatus.OPEN, part_pending_qty=0)
                   .filter(Q(exit_requested_at__isnull=True) | Q(exit_requested_at__lt=now - retry))
                   .exclude(exit_policy={}))
        if broker_modes is not None:
            watched = watched.filter(broker_mode__in=broker_modes)
        if accounts is not None:
            watched = accounts(watched)
        trades = list(watched.select_related("owner").prefetch_related("legs").order_by("id"))
    if not trades:
        return ExitPoliciesReport()
    policies = {trade.pk: ExitPolicy.from_stored(trade.exit_policy) for trade in trades}
    bids = option_bids(sorted({trade.option_symbol for trade in trades if not _multi_leg(trade)}))
    stocks = _stocks(trade.ticker for trade in trades if _trails_stock(policies[trade.pk]))
    prices = underlying_prices(stocks) if stocks else {}
    interval = timedelta(seconds=settings.EXIT_POLICY_MIN_INTERVAL_SECONDS)
    moved = closes = parts = 0
    for trade in trades:
        if _multi_leg(trade):
            if trade.current_price is None:  # not marked yet: nothing to judge
                continue
            price = trade.current_price  # the held mid: the price a spread's exits are in
        elif trade.option_symbol not in bids:
            continue
        else:
            price = bids[trade.option_symbol]
        seen = Observation(bid=price, underlying=prices.get(trade.ticker), now=now, today=today,
                           session_close=session_close)
        decision = exit_policy_evaluate(policies[trade.pk], exit_state_of(trade), seen, min_interval=interval)
        _remember_high_water(trade, decision)
        try:
            if decision.close is not None:
                closes += _close(trade, decision, seen, market)
            elif decision.scale_out and not _multi_leg(trade):  # a spread closes whole (its policy has none)
                parts += _scale_out(trade, decision, seen, market)
            elif decision.stop is not None and _short_of_target(trade, decision.stop):
                moved += _move_stop(trade, decision, seen, market)
        except (TradeError, BrokerError, PaperTrade.DoesNotExist) as error:  # refused now; the next look tries again
            logger.warning("exit policy of trade %s not applied: %s", trade.pk, error)
    return ExitPoliciesReport(len(trades), moved, closes, parts)


def _multi_leg(trade: PaperTrade) -> bool:
    return trade.strategy_type != StrategyType.SINGLE


def _short_of_target(trade: PaperTrade, stop) -> bool:
    """A stop still on the losing side of the target (below it for a debit, above for a credit)."""
    return direction_sign(trade.net_direction) * (trade.tp_price - stop) > 0


def exit_state_of(trade: PaperTrade) -> ExitState:
    """The engine's view of a trade: commissions per share are the entry's plus the exit's at the
    trade's rate, spread over the contracts held (what breakeven has to cover). `exit_requested`
    stays False: the look only watches OPEN trades with no close pending (a close that came back
    open is watched again after the interval, in `exit_policies_apply`)."""
    if _multi_leg(trade):
        return _spread_exit_state(trade)
    commission = commission_per_share(entry_commission=trade.entry_commission, rate=trade.commission_per_contract,
                                      held=trade.held_qty)
    return ExitState(entry=trade.entry_price, stop=trade.sl_price, option_type=trade.option_type,
                     opened_at=trade.entry_date, expiry=trade.expiry, commission_per_share=commission,
                     high_water=trade.exit_high_water, underlying_extreme=trade.exit_underlying_extreme,
                     last_moved_at=trade.exit_stop_moved_at, held=trade.held_qty,
                     scaled_out=trade.exit_scaled_out_at is not None)


def _spread_exit_state(trade: PaperTrade) -> ExitState:
    """A multi-leg trade in the engine's terms: its held prices in its direction, the nearest leg's
    expiry (a calendar's front month ends the trade's days), and commissions per share of one unit:
    the entry's and the exit's at the trade's rate, per contract per leg."""
    legs = list(trade.legs.all())
    units = trade.held_qty or 1
    contracts = units * sum(leg.ratio for leg in legs)
    commission = (trade.entry_commission + (trade.commission_per_contract or Decimal(0)) * contracts) / (
        units * CONTRACT_MULTIPLIER)
    return ExitState(entry=trade.entry_price, stop=trade.sl_price, option_type=trade.option_type,
                     opened_at=trade.entry_date, expiry=min((leg.expiry for leg in legs), default=trade.expiry),
                     commission_per_share=commission, high_water=trade.exit_high_water,
                     last_moved_at=trade.exit_stop_moved_at, held=trade.held_qty, direction=trade.net_direction,
                     cent_grid=True)


def _trails_stock(policy: ExitPolicy) -> bool:
    return policy.underlying_trail_pct is not None or policy.underlying_trail_amount is not None


def _stocks(tickers: Iterable[str]) -> list[str]:
    return sorted(set(tickers))


def _remember_high_water(trade: PaperTrade, decision: ExitDecision) -> None:
    """Write the marks only ever further (GREATEST/LEAST in the UPDATE): two looks running side by
    side (the paper matching job and the order cycle) cannot pull a high-water mark back."""
    stock_best = Least if trade.option_type == OptionType.PUT else Greatest
    marks = {name: value for name, value in (("exit_high_water", decision.high_water),
                                             ("exit_underlying_extreme", decision.underlying_extreme))
             if value is not None and getattr(trade, name) != value}
    if not marks:
        return
    # A credit trade's best price is its lowest cost to close.
    best = {"exit_high_water": Least if trade.net_direction == CREDIT else Greatest,
            "exit_underlying_extreme": stock_best}
    with tenancy.system_context():
        # The version too: a policy set meanwhile reset the marks, and the old policy's must not return.
        PaperTrade.objects.filter(pk=trade.pk, status=TradeStatus.OPEN, version=trade.version).update(**{
            name: best[name](Coalesce(F(name), _price(value)), _price(value)) for name, value in marks.items()})
    for name, value in marks.items():
        setattr(trade, name, value)


def _price(value: Decimal) -> Value:
    return Value(value, output_field=DecimalField(max_digits=12, decimal_places=4))


def _because(trade: PaperTrade, decision: ExitDecision, seen: Observation) -> dict:
    """What the audit event keeps: the policy, why it acted, and the quote that made it act."""
    return {"policy": trade.exit_policy, "why": decision.why,
            "high_water": _text(decision.high_water), "underlying_extreme": _text(decision.underlying_extreme),
            "quote": {"bid": _text(seen.bid), "underlying": _text(seen.underlying), "at": seen.now.isoformat()}}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _move_stop(trade: PaperTrade, decision: ExitDecision, seen: Observation, market: Market) -> int:
    """In place where the broker can (one request), else cancel and replace (the adjust's path); a
    multi-leg trade's stop is the monitor's own (`spread_stop_move`)."""
    because = _because(trade, decision, seen)
    if _multi_leg(trade):
        return spread_stop_move(trade=trade, new_sl=decision.stop, because=because, at=market.now())
    moves = {"user": trade.owner, "trade_id": trade.pk, "version": trade.version, "new_sl": decision.stop,
             "market": market, "because": because}
    result = stop_move_in_place(**moves) or brackets_adjust(**moves)
    if result.problem is not None:
        logger.warning("exit policy of trade %s could not move the stop: %s", trade.pk, result.problem)
        return 0
    return 1


def spread_stop_move(*, trade: PaperTrade, new_sl: Decimal, because: dict, at: datetime) -> int:
    """Move a multi-leg trade's stop: only the row holds it (the monitor compares the held mark with
    it each cycle), so the move is a versioned write with the event a bracket move writes (the
    stop's path on the chart shows it, with the policy's why). A trade that changed meanwhile
    (closed, adjusted) raises VersionConflict: the next look sees it as it is."""
    with tenancy.acting_as(trade.owner_id):
        trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.BRACKET_ADJUSTED,
                         expected_version=trade.version,
                         changes={"sl_price": new_sl, "exit_stop_moved_at": at},
                         payload={"from": {"sl_price": trade.sl_price}, "to": {"sl_price": new_sl},
                                  "exit_policy": because},
                         actor=Actor.SYSTEM, actor_label="exit-policy")
    return 1


def _scale_out(trade: PaperTrade, decision: ExitDecision, seen: Observation, market: Market) -> int:
    """Sell the first target's part; the stop the decision may also move is the next look's."""
    result = trade_part_sell(user=trade.owner, trade_id=trade.pk, version=trade.version,
                             quantity=decision.scale_out, reason=ExitPartReason.SCALE_OUT,
                             because=_because(trade, decision, seen), market=market)
    if result.problem is not None:
        logger.warning("exit policy of trade %s could not scale out: %s", trade.pk, result.problem)
        return 0
    return 1


def _close(trade: PaperTrade, decision: ExitDecision, seen: Observation, market: Market) -> int:
    result = trade_policy_close(user=trade.owner, trade_id=trade.pk, version=trade.version,
                                reason=CLOSE_REASONS[decision.close], because=_because(trade, decision, seen),
                                market=market)
    if result.problem is not None:
        logger.warning("exit policy of trade %s could not close it: %s", trade.pk, result.problem)
    return 1
