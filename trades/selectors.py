"""Reads of the trades app. Always scoped to the user passed in (row-level security backs it up)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, Min, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from brokers.base import BrokerAuthError, BrokerError, BrokerForbidden
from brokers.market import Market, OutsideCalendar, default_market
from brokers.models import BrokerMode
from tradeoptions import tenancy

from . import net_price
from .models import (
    ACTIVE_STATUSES,
    CONTRACT_MULTIPLIER,
    FINAL_STATUSES,
    UNFILLED_STATUSES,
    AccountSettings,
    ChannelMessage,
    EventKind,
    LegSide,
    NotificationChannel,
    PaperTrade,
    PushSubscription,
    StrategyType,
    TradeEvent,
    TradeExitPart,
    TradeLeg,
    TradeStatus,
    commission_total_sql,
    net_outcome_q,
    realized_pnl_net_sql,
)
from .net_price import direction_sign  # noqa: F401 (for analytics: the held-price sign)
from .services.broker_health import broker_trouble_key
from .services.errors import BrokerDown, InvalidTradeInput
from .services.marks import HELD
from .services.orders import as_trade_error, broker_of
from .services.risk import active_exposure
from .spreads import MODEL_RATE, OptionModel, SpreadLeg, SpreadPosition, SpreadRisk, spread_risk, spread_width
from .strategies import StrategyFacts, return_on_max_loss, strategy_facts, strategy_label  # noqa: F401 (for readers)

MAX_CHART_POINTS = 1000
SNAPSHOT_FIELDS = ("timestamp", "kind", "mark_price", "bid", "ask", "delta", "gamma", "theta", "vega", "iv",
                   "underlying", "quote_time", "source", "delayed")
# What a trade cost besides its premiums, as stored (trades.services.costs writes them).
COST_FIELDS = ("entry_commission", "exit_commission", "fees", "commission_per_contract", "commission_source")
# The export's columns, in a fixed order that callers may rely on. No secrets live on a trade;
# the idempotency key is left out all the same (it is the client's, not a fact about the trade).
EXPORT_COLUMNS = (
    "id", "status", "ticker", "option_type", "strike", "expiry", "option_symbol", "qty", "filled_qty",
    "entry_type", "planned_entry_price", "entry_price", "entry_date", "sl_price", "tp_price", "close_price",
    "close_date", "close_reason", "realized_pnl", "realized_pnl_pct", "hold_duration_h", "max_drawdown",
    "max_gain", "override_count", "strategy", "card_score", "ai_score", "ai_verdict", "gate_verdict",
    "technical_score", "sentiment_score", "delta_at_entry", "iv_at_entry", "broker_mode", "broker_fill_price",
    "broker_fill_time", "trigger_precision", "signals_snapshot", "market_regime", "order_book_state",
    "ai_reasoning_log", "created_at", "updated_at",
    # Added after the rest, so that earlier columns keep their places: `realized_pnl` above is the
    # gross figure (premiums only), `realized_pnl_net` is after commissions and fees (docs/pnl.md).
    *("realized_pnl_gross", "realized_pnl_net", "commission_total"), *COST_FIELDS,
    # What the legs make (issue 19; trades/strategies.py): read from the legs, one query per batch.
    *("strategy_type", "net_direction", "strategy_label", "leg_count", "legs", "width", "max_profit", "max_loss",
      "breakevens", "return_on_max_loss_pct"),
)
# The export's columns worked out from the legs, not stored on the trade row.
LEG_COLUMNS = ("strategy_label", "leg_count", "legs", "width", "max_profit", "max_loss", "breakevens",
               "return_on_max_loss_pct")
EXPORT_BATCH = 500


# Figures of a trade that are computed, by name, as SQL (the model's properties say the same).
TRADE_PNL_SQL = {"realized_pnl_gross": lambda: F("realized_pnl"), "realized_pnl_net": realized_pnl_net_sql,
                 "commission_total": commission_total_sql}


class TradeExplainer(Protocol):
    def __call__(self, trade: PaperTrade) -> dict:
        """What another app knows about the trade (its P&L attribution, forensics, context in words)."""
        ...


_explainer: TradeExplainer | None = None


def use_trade_explainer(explainer: TradeExplainer | None) -> None:
    """Called once at start-up by the app that explains trades (analytics; trades cannot import it)."""
    global _explainer
    _explainer = explainer


def trade_explanation(*, trade: PaperTrade) -> dict | None:
    """The registered explainer's account of the trade; None when no app registered one."""
    return None if _explainer is None else _explainer(trade)


@dataclass(frozen=True)
class TradeFilters:
    """What a list, the history and the export narrow the trades by. `day_from`..`day_to` are New
    York calendar days, both included: of the close for a closed trade, of the order for one that
    never filled (it has no close)."""

    status: str | None = None
    outcome: str | None = None
    strategy: str | None = None
    strategy_type: str | None = None
    ticker: str | None = None
    close_reason: str | None = None
    closed_from: datetime | None = None
    closed_to: datetime | None = None
    day_from: date | None = None
    day_to: date | None = None

    @property
    def unfilled(self) -> bool:
        return self.outcome == "unfilled" or self.status in UNFILLED_STATUSES


# Columns the history may be sorted by (`?ordering=name`, `-name` for descending). Every sort ends
# on the id, newest first, so that rows with equal values keep one order and pages never overlap.
HISTORY_ORDERING = ("close_date", "created_at", "realized_pnl", "realized_pnl_net", "realized_pnl_pct",
                    "hold_duration_h", "max_gain", "max_drawdown", "ticker", "strategy", "qty", "entry_price",
                    "close_price", "close_reason")
# Never NULL where the history sorts by them (a closed trade has its close, every trade its
# creation): sorted plainly, so the indexes on them serve the sort.
_NEVER_NULL = frozenset({"close_date", "created_at"})


def _ny_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(settings.MARKET_TIME_ZONE))


def _narrowed(trades: QuerySet[PaperTrade], filters: TradeFilters) -> QuerySet[PaperTrade]:
    if filters.status:
        trades = trades.filter(status=filters.status)
    if filters.outcome:
        trades = trades.outcome(filters.outcome)
    if filters.strategy:
        trades = trades.filter(strategy=filters.strategy)
    if filters.strategy_type:
        trades = trades.filter(strategy_type=filters.strategy_type)
    if filters.ticker:
        trades = trades.filter(ticker=filters.ticker.upper())
    if filters.close_reason:
        trades = trades.filter(close_reason=filters.close_reason)
    if filters.closed_from:
        trades = trades.filter(close_date__gte=filters.closed_from)
    if filters.closed_to:
        trades = trades.filter(close_date__lt=filters.closed_to)
    when = "created_at" if filters.unfilled else "close_date"
    if filters.day_from:
        trades = trades.filter(**{f"{when}__gte": _ny_midnight(filters.day_from)})
    if filters.day_to:
        trades = trades.filter(**{f"{when}__lt": _ny_midnight(filters.day_to + timedelta(days=1))})
    return trades


def trade_list(*, user: AbstractBaseUser, filters: TradeFilters | None = None,
               status: str | None = None) -> QuerySet[PaperTrade]:
    """The user's trades, newest first, narrowed by `filters`."""
    filters = filters or TradeFilters(status=status)
    return _narrowed(PaperTrade.objects.filter(owner=user), filters).order_by("-created_at", "-id")


def trade_history(*, user: AbstractBaseUser, filters: TradeFilters | None = None,
                  ordering: str | None = None) -> QuerySet[PaperTrade]:
    """Finished trades: the closed ones, most recently closed first; or, asked for (outcome
    `unfilled`, or their status), those whose entry never filled (canceled, rejected: the reason
    is their `status_reason`), most recently placed first. `ordering` is one of HISTORY_ORDERING,
    with "-" for descending; NULLs come last either way."""
    filters = filters or TradeFilters()
    trades = _narrowed(PaperTrade.objects.filter(owner=user), filters)
    if filters.unfilled:
        trades, default = trades.filter(status__in=UNFILLED_STATUSES), "-created_at"
    else:
        trades, default = trades.filter(status=TradeStatus.CLOSED), "-close_date"
    ordering = ordering or default
    name = ordering.removeprefix("-")
    if name not in HISTORY_ORDERING:
        raise ValueError(f"Cannot sort the history by {name!r}.")
    if name in _NEVER_NULL:
        return trades.order_by(ordering, "-id")
    if name in TRADE_PNL_SQL:  # computed, not stored: an alias (the model's property has the name)
        trades = trades.alias(**{name: TRADE_PNL_SQL[name]()})
    column = F(name)
    return trades.order_by(column.desc(nulls_last=True) if ordering.startswith("-") else column.asc(nulls_last=True),
                           "-id")


@dataclass(frozen=True)
class TradeTotals:
    """A set of trades summed up: how many, their P&L gross and net of commissions and fees, and the
    closed ones' wins, losses and breakevens (flat), counted on the net P&L as the outcome filter
    and Performance count them, with the win rate in % of the closed ones (None: none closed)."""

    count: int
    realized_pnl: Decimal | None
    realized_pnl_net: Decimal | None
    closed: int
    wins: int
    losses: int
    flat: int
    win_rate: Decimal | None


def trade_totals(*, trades: QuerySet[PaperTrade]) -> TradeTotals:
    """The totals of a whole filtered set (not of one page), in one query. The one place that
    sums P&L for the history."""
    closed = Q(status=TradeStatus.CLOSED)
    row = trades.order_by().aggregate(
        count=Count("id"), pnl=Sum("realized_pnl"), pnl_net=Sum(realized_pnl_net_sql()),
        closed=Count("id", filter=closed),
        **{key: Count("id", filter=closed & net_outcome_q(outcome))
           for key, outcome in (("wins", "win"), ("losses", "loss"), ("flat", "flat"))},
    )
    rate = (Decimal(row["wins"]) * 100 / row["closed"]).quantize(Decimal("0.01")) if row["closed"] else None
    return TradeTotals(realized_pnl=row.pop("pnl"), realized_pnl_net=row.pop("pnl_net"), **row, win_rate=rate)


def trade_with_events(*, user: AbstractBaseUser) -> QuerySet[PaperTrade]:
    """The user's trades with their audit log loaded in one more query (for detail views)."""
    events = TradeEvent.objects.select_related("actor_user").order_by("created_at", "id")
    return trade_list(user=user).prefetch_related(Prefetch("events", queryset=events))


# --- Where the exits stood over time ------------------------------------------------------------

EXIT_LEVELS = {"stop": "sl_price", "target": "tp_price"}


def exit_level_paths(*, trade: PaperTrade, events: Iterable[TradeEvent], now: datetime) -> dict[str, list[dict]]:
    """The stop-loss's and the take-profit's levels over time, for the chart: `{"stop": [...],
    "target": [...]}`, each a list of `{at, price, why}` steps in time order. The first is the
    level set at the open (from the trade's start), one more for each change and the last is the
    level still in force at the close (or `now`). The audit log is the source: every write of a
    trade's exits goes through `trade_transition`, whose event records the changed fields
    (`payload.changes`), and a move's event says who moved it (the trader, the exit policy with
    its reason, staff, the system). `events`: the trade's, in time order (the detail's prefetch:
    no query of its own). A change to the same level (an adjust of the other exit, a restored
    bracket) is no step."""
    events = [event for event in events if isinstance((event.payload or {}).get("changes"), dict)]
    start = trade.entry_date or trade.created_at
    end_at, end_why = (trade.close_date, "at the close") if trade.close_date else (now, "now")
    paths = {}
    for name, field in EXIT_LEVELS.items():
        moves = [event for event in events if field in event.payload["changes"]]
        first = (moves[0].payload.get("from") or {}).get(field) if moves else None
        level = Decimal(first) if first is not None else (
            Decimal(moves[0].payload["changes"][field]) if moves else getattr(trade, field))
        steps = [{"at": min([start, *(event.created_at for event in moves[:1])]), "price": level,
                  "why": "set at the open"}]
        for event in moves:
            price = Decimal(event.payload["changes"][field])
            if price != level:
                steps.append({"at": event.created_at, "price": price, "why": _moved_by(event)})
                level = price
        steps.append({"at": max(end_at, steps[-1]["at"]), "price": level, "why": end_why})
        paths[name] = steps
    return paths


def _moved_by(event: TradeEvent) -> str:
    """Who moved an exit, in the trader's words (the exit policy says why: trailing, breakeven)."""
    policy = event.payload.get("exit_policy")
    if event.actor_label == "exit-policy" and isinstance(policy, dict) and policy.get("why"):
        return f"exit policy: {policy['why']}"
    return {"USER": "moved by you", "STAFF": "moved by staff"}.get(event.actor, "moved by the system")


def trades_with_legs(trades: QuerySet[PaperTrade]) -> QuerySet[PaperTrade]:
    """`trades` with their legs loaded in one more query, in order (for lists and details)."""
    return trades.prefetch_related(Prefetch("legs", queryset=TradeLeg.objects.order_by("trade_id", "position")))


# --- A trade as a position of legs (issue 19; the math is trades/spreads.py) ---------------------


@dataclass(frozen=True)
class LegQuote:
    """A leg's latest quote, per share."""

    bid: Decimal | None
    ask: Decimal | None
    mark: Decimal | None


def trade_legs(trade: PaperTrade) -> list[TradeLeg]:
    """The trade's legs in order (from the prefetch, when `trades_with_legs` loaded them). Every
    trade opened has its legs; one written around `trade_open` without them (a bulk load) reads
    as the single option its row describes, so no reader has to care."""
    legs = sorted(trade.legs.all(), key=lambda leg: leg.position)
    return legs or [TradeLeg.single_of(trade)]


def leg_quotes(trade: PaperTrade) -> dict[str, LegQuote]:
    """Each leg's latest quote, by option symbol, while the trade holds a position (OPEN, CLOSING):
    a finished or unfilled trade has nothing to mark. A single option's is its trade's mark: the
    monitor writes it on the trade row (`marks_record`). A multi-leg trade's are on its legs (the
    monitor writes each leg's quote there), and count only when one cycle quoted every leg: a leg
    never marked, or left on an older cycle's quote, leaves none, so the net reads unknown."""
    if trade.status not in HELD:
        return {}
    if trade.strategy_type == StrategyType.SINGLE:
        return {trade.option_symbol: LegQuote(bid=trade.current_bid, ask=trade.current_ask, mark=trade.current_price)}
    legs = trade_legs(trade)
    if not legs_marked_together([leg for leg in legs if not leg.exit_reason]):
        return {}  # never a net of one cycle's quotes and another's: the trade's last net stands, stale
    # A leg settled at expiry while others are held (a calendar's front month) is worth its exit
    # price for good: that is its quote from then on (docs/spreads.md, "Expiry").
    return {leg.option_symbol: LegQuote(bid=leg.exit_price, ask=leg.exit_price, mark=leg.exit_price)
            if leg.exit_reason and leg.exit_price is not None else LegQuote(bid=leg.bid, ask=leg.ask, mark=leg.mark)
            for leg in legs}


def legs_marked_together(legs: Iterable[TradeLeg]) -> bool:
    """Every leg still held was quoted in one monitor cycle (the same `marked_at`): only then do
    their quotes make a net. A leg the cycle found no quote for keeps its last one, the others get
    this cycle's, and the trade keeps the last net it had (`trades.services.leg_marks_record`)."""
    times = {leg.marked_at for leg in legs}
    return len(times) == 1 and None not in times


def mark_stale(trade: PaperTrade) -> bool:
    """A held multi-leg trade whose net is older than some leg's quote: the last cycle could not
    quote every leg, so `current_price` is the last net every leg made, not this cycle's (the pages
    say "stale"). A single option's mark is one quote and never mixed: False."""
    if trade.strategy_type == StrategyType.SINGLE or trade.status not in HELD:
        return False
    times = {leg.marked_at for leg in trade_legs(trade) if not leg.exit_reason}
    return times != {None} and times != {trade.last_updated}  # never marked yet: not stale, unknown


def net_mark(legs: Iterable[TradeLeg], quotes: dict[str, LegQuote]) -> Decimal | None:
    """The net of the legs' marks per share of one unit: Σ side × ratio × mark (+ long, − short), so
    a debit position's is what it is worth, a credit position's (negative) what buying it back
    costs. None while a leg has no mark."""
    return _net(legs, quotes, lambda leg, quote: quote.mark)


def liquidation_value(legs: Iterable[TradeLeg], quotes: dict[str, LegQuote]) -> Decimal | None:
    """What closing every leg at its natural side brings, per share of one unit: each long sold at
    its bid, each short bought back at its ask (Σ side × ratio × that price; negative: closing
    costs). None while a leg lacks the side it would close at."""
    return _net(legs, quotes, lambda leg, quote: quote.bid if leg.side == LegSide.LONG else quote.ask)


def opening_value(legs: Iterable[TradeLeg], quotes: dict[str, LegQuote]) -> Decimal | None:
    """The other natural side: what opening the legs again brings, per share of one unit: each long
    bought at its ask, each short sold at its bid. None while a leg lacks that side."""
    return _net(legs, quotes, lambda leg, quote: quote.ask if leg.side == LegSide.LONG else quote.bid)


@dataclass(frozen=True)
class HeldMark:
    """A multi-leg trade's mark as its row keeps it (trades.net_price: held prices, all positive):
    `mid` from the legs' marks, `bid` what closing at the legs' natural sides gets (a debit sells
    for it, a credit pays it to buy back), `ask` the other natural side, and the unrealized P&L."""

    mid: Decimal
    bid: Decimal | None
    ask: Decimal | None
    unrealized_pnl: Decimal


def held_mark(*, net_direction: str, legs: Iterable[TradeLeg], quotes: dict[str, LegQuote], entry: Decimal,
              units: int) -> HeldMark | None:
    """The trade's held mark from this cycle's quotes of its legs; None when a leg has no mark (no
    net from part of the legs). The P&L is sign × (held mid − entry) × units × 100 (net_price.pnl),
    which equals Σ legs side × ratio × (mark − entry) × units × 100 when `entry` is the held net of
    the legs' entries. A held price below nothing (a butterfly's wings bid 0: selling them at the
    natural sides costs) is stored as 0: the row's prices are never negative; the P&L is not cut."""
    legs = list(legs)
    mid = net_price.held_price(net_direction, net_mark(legs, quotes))
    if mid is None:
        return None
    bid = net_price.held_price(net_direction, liquidation_value(legs, quotes))
    ask = net_price.held_price(net_direction, opening_value(legs, quotes))
    return HeldMark(mid=_not_negative(mid), bid=_not_negative(bid), ask=_not_negative(ask),
                    unrealized_pnl=net_price.pnl(net_direction, entry=entry, price=mid, units=units))


def _not_negative(price: Decimal | None) -> Decimal | None:
    return None if price is None else max(price, Decimal(0))


def _net(legs, quotes, price_of) -> Decimal | None:
    total = Decimal(0)
    for leg in legs:
        quote = quotes.get(leg.option_symbol)
        price = price_of(leg, quote) if quote is not None else None
        if price is None:
            return None
        total += leg.sign * leg.ratio * price
    return total


def position_dollars(trade: PaperTrade, per_share: Decimal | None) -> Decimal | None:
    """A per-share, per-unit figure for the units the trade holds, in dollars (× 100 a contract)."""
    return None if per_share is None else per_share * trade.held_qty * CONTRACT_MULTIPLIER


def position_of(trade: PaperTrade) -> SpreadPosition | None:
    """The trade as trades/spreads.py sees it: its legs at their entry fills (a single option not
    yet filled: at the entry it was planned at) and the IVs the monitor last wrote on them, `qty`
    units. None when a leg's entry price is not known yet (a spread not filled), or the rows
    describe no position the math accepts."""
    premiums = []
    for leg in trade_legs(trade):
        premium = leg.entry_price
        if premium is None and trade.strategy_type == StrategyType.SINGLE:
            premium = trade.planned_entry_price
        if premium is None:
            return None
        premiums.append((leg, premium))
    try:
        return SpreadPosition(tuple(SpreadLeg.from_symbol(leg.option_symbol, leg.side, ratio=leg.ratio, premium=premium,
                                                          iv=None if leg.iv is None else float(leg.iv))
                                    for leg, premium in premiums), trade.qty, trade.strategy_type)
    except InvalidTradeInput:
        return None


def position_width(legs: Iterable[TradeLeg]) -> Decimal | None:
    """The widest gap between neighbouring strikes of one right (trades.spreads.spread_width): known
    from the contracts alone, before any fill. None for legs that make no position."""
    try:
        return spread_width(SpreadPosition(tuple(SpreadLeg.from_symbol(leg.option_symbol, leg.side, ratio=leg.ratio)
                                                 for leg in legs)))
    except InvalidTradeInput:
        return None


def position_risk(trade: PaperTrade, market: Market | None = None) -> SpreadRisk | None:
    """Max profit, max loss, breakevens and width of the trade's position (trades.spreads). A
    calendar's are a model (`modelled`): the back legs valued with Black–Scholes at the IVs the
    monitor last wrote on them, as of that mark, at the front expiry's cutoff on the exchange
    calendar (`market`, default the registered one): 13:00 on an early close, the session before
    a holiday expiry. None when `position_of` has no position, a calendar's legs have no IV yet
    (never marked), or an expiry lies outside the market's calendar."""
    position = position_of(trade)
    if position is None:
        return None
    if len(position.expiries) == 1:
        return spread_risk(position)
    legs = trade_legs(trade)
    if any(leg.iv is None or leg.marked_at is None for leg in legs):
        return None
    market = market or default_market()
    model = OptionModel(as_of=max(leg.marked_at for leg in legs), rate=MODEL_RATE, cutoff=market.expiry_cutoff)
    try:
        return spread_risk(position, model)
    except OutsideCalendar:
        return None


def broker_troubles(*, user: AbstractBaseUser) -> list[dict]:
    """What the order cycle last met at the user's brokers and is not over (a refused token, an
    outage), per broker mode: code, detail, broker_mode, since. Never the token, nor its digest."""
    found = cache.get_many([broker_trouble_key(user.pk, mode) for mode in BrokerMode.values])
    return [{name: trouble[name] for name in ("code", "detail", "broker_mode", "since")}
            for _, trouble in sorted(found.items())]


def live_trades_open_count(*, user: AbstractBaseUser) -> int:
    """The user's active trades placed at Tradier live: real money, whatever mode they trade in now."""
    return PaperTrade.objects.active().filter(owner=user, broker_mode=BrokerMode.TRADIER_LIVE).count()


def trades_oversold(*, user: AbstractBaseUser) -> list[PaperTrade]:
    """The user's trades whose contract the broker account holds short, newest first: an alarm
    the portfolio shows in red whatever the trade's state (a closed trade's contract included)."""
    return list(PaperTrade.objects.filter(owner=user, oversold_qty__gt=0).order_by("-id"))


def commission_rates(*, owner_ids) -> dict[int, Decimal]:
    """Each account's commission per contract (its own, else the server's default), for the
    monitor's cross-tenant paper matching: one query whatever the count."""
    accounts = AccountSettings.objects.filter(owner_id__in=set(owner_ids))
    return {account.owner_id: account.commission_rate for account in accounts}


# How far outside its own lifetime a trade may have marks: a cycle's slot is floored (up to a
# cycle before the fill), a backfilled bar ends up to its length after the close.
SNAPSHOT_MARGIN = timedelta(days=1)


def _utc_month(at: datetime) -> datetime:
    moment = at.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _utc_month_after(at: datetime) -> datetime:
    month = _utc_month(at)
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def _lifetime_bounds(trade: PaperTrade) -> tuple[datetime | None, datetime | None]:
    """The first and the first-excluded instant of the UTC months the trade lived in (see
    `lifetime_snapshots`); None where there is no bound."""
    started = min((at for at in (trade.entry_date, trade.created_at) if at is not None), default=None)
    lower = _utc_month(started - SNAPSHOT_MARGIN) if started is not None else None
    upper = None
    if trade.status in FINAL_STATUSES and trade.close_date is not None:
        upper = _utc_month_after(trade.close_date + SNAPSHOT_MARGIN)
    return lower, upper


def lifetime_snapshots(trade: PaperTrade) -> QuerySet:
    """The trade's snapshots, bounded by the UTC months it lived in: from the month of its entry
    (or creation, whichever is first: an imported trade entered before it was created) to the
    month of its close for a final trade, each widened by SNAPSHOT_MARGIN. The price history is
    partitioned by UTC month, so the planner reads only those months' partitions instead of one
    index per month kept (issue 20: at 100 M rows over a year of months the difference is the
    chart's cost). The same rows as `trade.snapshots`: no snapshot is written outside these months
    (the monitor marks held trades only). A trade still held has no upper bound."""
    snapshots = trade.snapshots.all()
    lower, upper = _lifetime_bounds(trade)
    if lower is not None:
        snapshots = snapshots.filter(timestamp__gte=lower)
    if upper is not None:
        snapshots = snapshots.filter(timestamp__lt=upper)
    return snapshots


# The chart's rows in one statement: the trade's snapshots numbered in time order and counted by
# window functions, every n-th kept (n = ceil(total / (max_points - 1)), in integers) and always
# the last; all of them when they are few. One query, not a count and then a windowed ORM query,
# and plain tuples from the cursor: at 100 M rows the ORM's compile and row handling were ~14 ms
# of client CPU for 835 points (issue 20; docs/benchmarks.md). Both window functions over the one
# whole-partition frame (row_number ignores the frame): one WindowAgg over the rows, not two.
_CHART_SNAPSHOTS = """
    SELECT {fields} FROM (
        SELECT {fields}, row_number() OVER slots AS n, count(*) OVER slots AS total
          FROM {table} WHERE trade_id = %(trade)s{bounds}
        WINDOW slots AS (ORDER BY "timestamp", kind ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) numbered
     WHERE total <= %(points)s OR (n - 1) %% ((total + %(points)s - 2) / (%(points)s - 1)) = 0 OR n = total
     ORDER BY "timestamp", kind"""


def _chart_sql(trade: PaperTrade, max_points: int) -> tuple[str, dict]:
    """The chart's rows' statement for `trade_snapshots` and `trade_snapshots_json`, and its parameters."""
    if max_points < 2:
        raise ValueError("A chart needs at least two points: its first and its last.")
    lower, upper = _lifetime_bounds(trade)
    bounds = (' AND "timestamp" >= %(lower)s' if lower is not None else "") + (
        ' AND "timestamp" < %(upper)s' if upper is not None else "")
    sql = _CHART_SNAPSHOTS.format(fields=", ".join(f'"{field}"' for field in SNAPSHOT_FIELDS),
                                  table=PaperTrade.snapshots.rel.related_model._meta.db_table, bounds=bounds)
    return sql, {"trade": trade.pk, "points": max_points, "lower": lower, "upper": upper}


def trade_snapshots(*, trade: PaperTrade, max_points: int = MAX_CHART_POINTS) -> list[dict]:
    """The trade's price history in time order, thinned to at most `max_points` rows by keeping
    every n-th one (and always the last), so a long trade's chart stays light. Reads the
    monitoring app's snapshots by their table (row-level security scopes them): trades does not
    import monitoring. Only the months the trade lived in are read (`lifetime_snapshots`'s bounds)."""
    sql, params = _chart_sql(trade, max_points)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [dict(zip(SNAPSHOT_FIELDS, row, strict=True)) for row in cursor.fetchall()]



@dataclass(frozen=True)
class JsonColumn:
    """One key of a chart row as the database writes it (`trade_snapshots_json`): a snapshot
    column, and how its value is spelled: "text", "boolean", "datetime" (ISO 8601 in the given
    time zone, 'Z' for a zero offset) or "decimal" (text with `places` decimals)."""

    name: str
    kind: str
    places: int | None = None


def _datetime_json(column: str, time_zone: str) -> str:
    """SQL spelling a timestamptz column as Python's isoformat() of it in the time zone %(tz)s,
    with DRF's 'Z' for a zero offset: seconds always, microseconds only when there are some, the
    offset's seconds only when there are some. In UTC (the API's zone) without the offset's sums."""
    local = f"({column} AT TIME ZONE %(tz)s)"
    if time_zone == "UTC":
        return (f"""'"' || to_char({local}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
                f" || CASE WHEN {local} = date_trunc('second', {local}) THEN '' ELSE to_char({local}, '.US') END"
                """ || 'Z"'""")
    offset = f"(EXTRACT(EPOCH FROM {local} - ({column} AT TIME ZONE 'UTC'))::int)"
    return (f"""'"' || to_char({local}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
            f" || CASE WHEN {local} = date_trunc('second', {local}) THEN '' ELSE to_char({local}, '.US') END"
            f" || CASE WHEN {offset} = 0 THEN 'Z' ELSE CASE WHEN {offset} < 0 THEN '-' ELSE '+' END"
            f" || lpad((abs({offset}) / 3600)::text, 2, '0') || ':' || lpad((abs({offset}) %% 3600 / 60)::text, 2, '0')"
            f" || CASE WHEN abs({offset}) %% 60 = 0 THEN '' ELSE ':' || lpad((abs({offset}) %% 60)::text, 2, '0') END"
            """ END || '"'""")


def snapshot_places(name: str) -> int | None:
    """The decimal places a snapshot column stores (its numeric scale)."""
    return PaperTrade.snapshots.rel.related_model._meta.get_field(name).decimal_places


def _value_json(column: JsonColumn, time_zone: str) -> str:
    """SQL writing one column's value as JSON text, null for NULL. A decimal is its text, which has
    exactly the column's decimal places; other places are refused, not rounded (PostgreSQL rounds
    half away from zero, DRF half to even). Text goes through to_json, which escapes as Python's
    json.dumps does (ensure_ascii off), plus DRF's escapes of U+2028/U+2029."""
    name = f'"{column.name}"'
    if column.kind == "decimal":
        if column.places != snapshot_places(column.name):
            raise ValueError(f"{column.name} is stored with other decimal places than {column.places}.")
        spelled = f"""'"' || {name}::text || '"'"""
    elif column.kind == "datetime":
        spelled = _datetime_json(name, time_zone)
    elif column.kind == "boolean":
        spelled = f"CASE WHEN {name} THEN 'true' WHEN NOT {name} THEN 'false' END"
    elif column.kind == "text":
        spelled = fr"replace(replace(to_json({name})::text, chr(8232), '\u2028'), chr(8233), '\u2029')"
    else:
        raise ValueError(f"No JSON spelling for a {column.kind} column.")
    return f"coalesce({spelled}, 'null')"


def _row_json(columns: Sequence[JsonColumn], time_zone: str) -> str:
    if not columns or any(column.name not in SNAPSHOT_FIELDS for column in columns):
        raise ValueError("A chart row's keys are snapshot fields.")
    keys = [f"""'{"{" if index == 0 else ","}"{column.name}":' || {_value_json(column, time_zone)}"""
            for index, column in enumerate(columns)]
    return " || ".join(keys) + " || '}'"


# The chart's JSON body in the same statement as its rows (issue 20: building ~1,000 dicts and
# DRF's formatting of every Decimal and datetime cost ~30 ms of Python at 100 M rows, twice the
# query): each row written as JSON text by the database, the rows joined in time order.
_CHART_JSON = """
    SELECT coalesce('[' || string_agg({row}, ',' ORDER BY "timestamp", kind) || ']', '[]') FROM ({rows}) chart"""


def trade_snapshots_json(*, trade: PaperTrade, columns: Sequence[JsonColumn], time_zone: str,
                         max_points: int = MAX_CHART_POINTS) -> bytes:
    """`trade_snapshots`'s rows (the same thinning, bounds and row-level security) as a JSON array
    of objects with `columns`' keys in their order, compact (no spaces), written by PostgreSQL:
    the bytes a JSON response sends as they are. `time_zone`: an IANA name the times are shown in."""
    sql, params = _chart_sql(trade, max_points)
    sql = _CHART_JSON.format(row=_row_json(columns, time_zone), rows=sql)
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "tz": time_zone})
        return cursor.fetchone()[0].encode()


# --- What a held trade's mark is worth ---------------------------------------------------------

FRESH_FOR = timedelta(minutes=5)  # the top bar calls a mark older than this stale while the market is open
DELAYED_BY = timedelta(minutes=15)  # ORATS delayed and Tradier sandbox are 15 minutes late by design


@dataclass(frozen=True)
class MarkFreshness:
    """Where a held trade's latest mark came from, and whether it is news. `frozen`: the market
    reads open (really, or by FORCE_MARKET_OPEN) but the source has nothing new: its quote time
    has not moved for longer than a live quote may (FRESH_FOR, plus DELAYED_BY for a delayed
    source), counted on the monitor's cycles or on the clock, so the page must not show it as live."""

    source: str
    delayed: bool
    quote_time: datetime | None
    frozen: bool


# Each trade's latest snapshot, one backward index probe per trade and month (the unique
# (trade, timestamp, kind) index), stopping at the first row. Not DISTINCT ON with trade_id IN:
# the planner reads every snapshot of those trades in every month and sorts them (issue 20: at
# 10 M rows, 0.8 s for 10 trades against 0.25 ms this way; docs/benchmarks.md).
_LATEST_SNAPSHOTS = """
    SELECT t.id, s."timestamp", s.source, s.delayed, s.quote_time FROM unnest(%s::bigint[]) AS t(id)
     CROSS JOIN LATERAL (SELECT "timestamp", source, delayed, quote_time FROM {table}
                          WHERE trade_id = t.id ORDER BY "timestamp" DESC, kind DESC LIMIT 1) s"""


def _latest_snapshots(trade_ids: list[int]) -> list[dict]:
    """The latest snapshot of each trade that has one (row-level security scopes them)."""
    table = PaperTrade.snapshots.rel.related_model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_SNAPSHOTS.format(table=table), [trade_ids])
        return [dict(zip(("trade_id", "timestamp", "source", "delayed", "quote_time"), row, strict=True))
                for row in cursor.fetchall()]


def _live_for(delayed: bool) -> timedelta:
    """How old a quote may be and still count as live."""
    return FRESH_FOR + (DELAYED_BY if delayed else timedelta(0))


def marks_freshness(*, trade_ids: Iterable[int], now: datetime, market_open: bool) -> dict[int, MarkFreshness]:
    """For each trade with a snapshot: its latest mark's source, delay and quote time, and whether it
    is frozen. Two queries for a whole page of trades. Reads the monitoring app's snapshots through
    the reverse relation (trades does not import monitoring); row-level security scopes them."""
    snapshots = PaperTrade.snapshots.rel.related_model.objects
    latest = _latest_snapshots(list(trade_ids))
    # The first cycle that carried each latest quote: since then the source has had nothing new.
    # Asked only where it can matter: a quote already older than any live one may be is frozen
    # whatever its first cycle. A snapshot carries a quote the source gave before it was written
    # (a slot is floored by one cycle at most), so that cycle is looked for from a day before the
    # quote's time on: a day's index range of the trade in one or two months, not its whole history.
    quoted = [row for row in latest
              if row["quote_time"] is not None and now - row["quote_time"] <= _live_for(row["delayed"])]
    first_seen = {}
    if market_open and quoted:
        same_quote = Q()
        for row in quoted:
            same_quote |= Q(trade_id=row["trade_id"], quote_time=row["quote_time"],
                            timestamp__gte=row["quote_time"] - SNAPSHOT_MARGIN)
        first_seen = dict(snapshots.filter(same_quote).values("trade_id").annotate(first=Min("timestamp"))
                          .values_list("trade_id", "first"))
    answer = {}
    for row in latest:
        quote_time = row["quote_time"]
        frozen = False
        if market_open and quote_time is not None:
            allowed = _live_for(row["delayed"])
            unmoved_for = row["timestamp"] - first_seen.get(row["trade_id"], row["timestamp"])
            frozen = now - quote_time > allowed or unmoved_for > allowed
        answer[row["trade_id"]] = MarkFreshness(source=row["source"], delayed=row["delayed"], quote_time=quote_time,
                                                frozen=frozen)
    return answer


# --- How a pending close sells -----------------------------------------------------------------


@dataclass(frozen=True)
class PendingClose:
    """The working sell of a CLOSING trade: at market, or a limit at `limit_price`."""

    order_type: str
    limit_price: Decimal | None = None


def pending_closes(*, trade_ids: Iterable[int]) -> dict[int, PendingClose]:
    """For each CLOSING trade, how its working sell is priced, read from the audit log in one query.
    Every close the trader asks for sells at market; a switch (`close_reprice`) counts once its new
    sell is placed (a switch the broker refused left the old sell working). A move into CLOSING from
    another state starts a new close, at market again."""
    events = (TradeEvent.objects.filter(trade_id__in=list(trade_ids), trade__status=TradeStatus.CLOSING,
                                        new_status=TradeStatus.CLOSING)
              .filter(~Q(old_status=TradeStatus.CLOSING) | Q(kind=EventKind.ORDER_PLACED)
                      | Q(payload__requested="close_reprice"))
              .order_by("trade_id", "created_at", "id").values("trade_id", "old_status", "kind", "payload"))
    answer: dict[int, PendingClose] = {}
    asked: dict[int, PendingClose] = {}  # a switch sent, its new sell not yet placed
    for event in events:
        trade_id, payload = event["trade_id"], event["payload"] or {}
        if event["old_status"] != TradeStatus.CLOSING:
            answer[trade_id] = PendingClose(order_type="market")
            asked.pop(trade_id, None)
        elif payload.get("requested") == "close_reprice":
            limit = payload.get("limit_price")
            asked[trade_id] = PendingClose(order_type=payload.get("order_type", "market"),
                                           limit_price=Decimal(str(limit)) if limit is not None else None)
        elif event["kind"] == EventKind.ORDER_PLACED and trade_id in asked:
            answer[trade_id] = asked.pop(trade_id)
    return answer


def trade_export_rows(*, user_id: int, filters: TradeFilters | None = None) -> Iterator[dict]:
    """Every trade of the user (or those `filters` keep, as the list keeps them), oldest first, as
    EXPORT_COLUMNS dicts, streamed from the database.

    Meant to be consumed after the request's transaction has ended (a streamed response), so it
    opens its own transaction in the user's tenant context.
    """
    with tenancy.acting_as(user_id):
        stored = [name for name in EXPORT_COLUMNS if name not in TRADE_PNL_SQL and name not in LEG_COLUMNS]
        trades = _narrowed(PaperTrade.objects.filter(owner_id=user_id), filters or TradeFilters())
        rows = trades.order_by("created_at", "id").values(
            *stored, **{name: expression() for name, expression in TRADE_PNL_SQL.items()})
        batch: list[dict] = []
        for row in rows.iterator(chunk_size=EXPORT_BATCH):
            batch.append(row)
            if len(batch) == EXPORT_BATCH:
                yield from _with_leg_columns(batch)
                batch = []
        yield from _with_leg_columns(batch)


def _with_leg_columns(rows: list[dict]) -> list[dict]:
    """Export rows with LEG_COLUMNS filled in, their legs read in one query for the whole batch."""
    legs = legs_by_trade(trade_ids=[row["id"] for row in rows]) if rows else {}
    for row in rows:
        facts = row_strategy_facts(row, legs.get(row["id"], []))
        row.update(facts.as_columns(), legs=facts.legs_text)
    return rows


@dataclass(frozen=True)
class AccountSummary:
    """The trader's account at a glance. Where the money figures come from: the
    local paper ledger (its fills) or the Tradier account's balances (`broker_mode`); premium committed and open
    risk come from the trader's active trades here, as the risk limits count them."""

    broker_mode: str
    starting_balance: Decimal
    cash: Decimal
    buying_power: Decimal
    premium_committed: Decimal
    open_risk: Decimal
    realized_pnl: Decimal
    market_value: Decimal
    open_pnl: Decimal
    equity: Decimal
    open_positions: int


def account_summary(*, user: AbstractBaseUser, market: Market | None = None) -> AccountSummary:
    """Starting balance, cash, buying power, premium committed, open risk and realized P&L.

    The starting balance is the one in the settings: the local paper ledger starts from it, and
    the heat limit is measured against it. For the local paper broker the money comes from its
    ledger (cash and realized P&L after commissions, buying power less what working buys
    reserve), market value at the mids. For Tradier it is one
    read of the account's balances (`/v1/accounts/{id}/balances`).
    Raises a TradeError (the broker not set up, its token refused, it being down)."""
    with tenancy.acting_as(user.pk):
        account = AccountSettings.objects.filter(owner=user).first() or AccountSettings(owner=user)
        broker = broker_of(account, market=market)
        try:
            balance = broker.get_account_balance()
        except (BrokerAuthError, BrokerForbidden) as error:
            raise as_trade_error(error) from None
        except BrokerError as error:
            raise BrokerDown(f"Your balances could not be read from the broker: {error}") from None
        exposure = active_exposure(user)
    return AccountSummary(
        broker_mode=account.broker_mode, starting_balance=account.account_balance, cash=balance.total_cash,
        buying_power=balance.option_buying_power, premium_committed=exposure["premium"],
        open_risk=exposure["heat"], realized_pnl=balance.close_pl, market_value=balance.market_value,
        open_pnl=balance.open_pl, equity=balance.total_equity, open_positions=exposure["positions"],
    )


def exit_parts_of(*, trade_ids: Iterable[int]) -> dict[int, list[TradeExitPart]]:
    """The parts sold of each trade (docs/pnl.md, "Partial closes"), in the order they sold: one
    query for a whole page of trades."""
    parts: dict[int, list[TradeExitPart]] = {}
    for part in TradeExitPart.objects.filter(trade_id__in=list(trade_ids)).order_by("filled_at", "id"):
        parts.setdefault(part.trade_id, []).append(part)
    return parts


# --- The day after the close ---------------------------------------------------------------------


@dataclass(frozen=True)
class DayTrade:
    """A trade's money realized on one day: every part it sold that day (`closed`: its close was
    among them; else a partial close of a trade still open)."""

    trade: PaperTrade
    pnl_gross: Decimal
    pnl_net: Decimal
    closed: bool


@dataclass(frozen=True)
class DayReport:
    """A trader's day in one place, for the report after the close: the money realized (as the
    daily loss limit counts it: the parts sold that day), the trades opened, what is still at risk
    and what expires at the next session."""

    day: date
    realized: list[DayTrade]  # best first, on the net P&L
    opened: int
    open_positions: int
    open_risk: Decimal
    next_session: date
    expiring: list[PaperTrade]

    @property
    def pnl_gross(self) -> Decimal:
        return sum((row.pnl_gross for row in self.realized), Decimal(0))

    @property
    def pnl_net(self) -> Decimal:
        return sum((row.pnl_net for row in self.realized), Decimal(0))

    @property
    def best(self) -> DayTrade | None:
        return self.realized[0] if self.realized else None

    @property
    def worst(self) -> DayTrade | None:
        return self.realized[-1] if len(self.realized) > 1 else None

    @property
    def closed(self) -> int:
        return sum(1 for row in self.realized if row.closed)

    @property
    def empty(self) -> bool:
        return not (self.realized or self.opened or self.open_positions)


def day_report(*, user: AbstractBaseUser, day: date, next_session: date) -> DayReport:
    """`user`'s `day` (a New York date) as the report tells it; `next_session`: the trading day
    after it (the calendar is the caller's), whose expiries are "expiring tomorrow". Call it in
    the user's tenant context. Money is exact; the open risk is the heat limit's figure."""
    start, end = _ny_midnight(day), _ny_midnight(day + timedelta(days=1))
    sums: dict[int, list] = {}
    parts = TradeExitPart.objects.filter(owner=user, filled_at__gte=start, filled_at__lt=end)
    for row in parts.values("trade_id").annotate(gross=Sum("pnl_gross"), net=Sum("pnl_net")).order_by():
        sums[row["trade_id"]] = [row["gross"], row["net"]]
    unparted = PaperTrade.objects.filter(owner=user, status=TradeStatus.CLOSED, close_date__gte=start,
                                         close_date__lt=end, realized_pnl__isnull=False).exclude(
        Exists(TradeExitPart.objects.filter(trade=OuterRef("pk"))))
    for pk, gross, net in unparted.annotate(net=realized_pnl_net_sql()).values_list("pk", "realized_pnl", "net"):
        sums[pk] = [gross, net]
    trades = PaperTrade.objects.filter(owner=user).in_bulk(list(sums))
    realized = sorted((DayTrade(trade=trades[pk], pnl_gross=gross, pnl_net=net,
                                closed=trades[pk].status == TradeStatus.CLOSED
                                and trades[pk].close_date is not None and start <= trades[pk].close_date < end)
                       for pk, (gross, net) in sums.items()), key=lambda row: (-row.pnl_net, row.trade.pk))
    exposure = active_exposure(user)
    expiring = list(_expiring(user, after=day, by=next_session))
    opened = PaperTrade.objects.filter(owner=user, entry_date__gte=start, entry_date__lt=end).count()
    return DayReport(day=day, realized=realized, opened=opened, open_positions=exposure["positions"],
                     open_risk=exposure["heat"], next_session=next_session, expiring=expiring)


# --- Notification channels ----------------------------------------------------------------------

CHANNEL_LOG_LENGTH = 20  # deliveries per channel the settings page shows


def _expiring(user: AbstractBaseUser, *, after: date, by: date) -> QuerySet[PaperTrade]:
    """Active trades with a live leg expiring in (after, by], the soonest such leg first: a
    spread's row carries leg 0's expiry, which for a calendar may be the back month. One query;
    a trade stored without legs is judged by its row (a single option's only contract)."""
    legs = TradeLeg.objects.filter(trade=OuterRef("pk"), exit_reason="", expiry__gt=after, expiry__lte=by)
    return (PaperTrade.objects.filter(owner=user, status__in=ACTIVE_STATUSES)
            .filter(Exists(legs) | Q(expiry__gt=after, expiry__lte=by, strategy_type=StrategyType.SINGLE))
            .annotate(expiring_on=Coalesce(Subquery(legs.order_by("expiry").values("expiry")[:1]), F("expiry")))
            .order_by("expiring_on", "ticker", "pk"))


def channel_list(*, user: AbstractBaseUser) -> QuerySet[NotificationChannel]:
    """The trader's notification channels; the encrypted URL is never loaded for showing."""
    return NotificationChannel.objects.filter(owner=user).defer("url_encrypted").order_by("name", "pk")


def channel_log(*, user: AbstractBaseUser, channel_id: int, limit: int = CHANNEL_LOG_LENGTH) -> list[ChannelMessage]:
    """The channel's last deliveries, newest first, with their status and error (never the URL)."""
    return list(ChannelMessage.objects.filter(owner=user, channel_id=channel_id)
                .defer("body").order_by("-created_at")[:limit])


def push_subscription_list(*, user: AbstractBaseUser) -> QuerySet[PushSubscription]:
    """The trader's devices that take pushes, with their channel's name; the encrypted endpoint
    and keys are never loaded for showing."""
    return (PushSubscription.objects.filter(owner=user).select_related("channel")
            .defer("subscription_encrypted", "channel__url_encrypted").order_by("-created_at", "pk"))


# --- What a finished trade's legs make (the History, Performance, data set, exports, tools) -----


def legs_by_trade(*, trade_ids: Iterable[int]) -> dict[int, list[dict]]:
    """The legs of these trades, in order, as dicts, in one query (for rows read with values())."""
    found: dict[int, list[dict]] = {}
    for leg in TradeLeg.objects.filter(trade_id__in=list(trade_ids)).order_by("trade_id", "position").values(
            "trade_id", "option_symbol", "option_type", "strike", "expiry", "side", "ratio", "entry_price",
            "exit_price", "exit_reason"):
        found.setdefault(leg["trade_id"], []).append(leg)
    return found


def row_strategy_facts(row: dict, legs: list) -> StrategyFacts:
    """A trade row's (values(): strategy_type, net_direction, qty, entry_price, realized_pnl) label,
    legs and risk. A row stored without legs reads as the single option it describes."""
    if not legs and row.get("strategy_type", StrategyType.SINGLE) == StrategyType.SINGLE and row.get("option_symbol"):
        legs = [{"option_symbol": row["option_symbol"], "option_type": row["option_type"], "strike": row["strike"],
                 "expiry": row["expiry"], "side": LegSide.LONG, "ratio": 1, "entry_price": row.get("entry_price"),
                 "exit_price": row.get("close_price"), "exit_reason": ""}]
    return strategy_facts(strategy_type=row["strategy_type"], net_direction=row["net_direction"], units=row["qty"],
                          legs=legs, entry_price=row.get("entry_price"), realized_pnl=row.get("realized_pnl"))


def trade_strategy_facts(trade: PaperTrade) -> StrategyFacts:
    """A trade's label, legs and risk, from its legs (prefetched by `trades_with_legs`)."""
    return strategy_facts(strategy_type=trade.strategy_type, net_direction=trade.net_direction, units=trade.qty,
                          legs=trade_legs(trade), entry_price=trade.entry_price, realized_pnl=trade.realized_pnl)


def strategy_label_of(trade: PaperTrade, legs: list[TradeLeg] | None = None) -> str:
    """"Iron condor 490/495/515/520", "Put credit spread 500/495", "Long call 570" (trades/strategies.py)."""
    return strategy_label(trade.strategy_type, trade.net_direction, legs if legs is not None else trade_legs(trade))
