"""The monitor cycle: what runs while the market is open to keep every position true.

Every function here sees all tenants: it runs in `tenancy.system_context()`, because marking
positions is a system job over every user's trades (no web request can reach it). Work is
batched so that database round trips stay constant however many positions are open, and each
distinct contract is quoted once per cycle however many users hold it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

from django.core.cache import cache
from django.db import connection

from brokers.market import Market, default_market
from brokers.models import BrokerMode
from brokers.paper import FillRules, groups_due, match_group, working_symbols
from tradeoptions import tenancy
from tradeoptions.sqlarrays import array_param
from trades.models import CONTRACT_MULTIPLIER, PaperTrade, StrategyType, TradeLeg, TradeStatus
from trades.selectors import LegQuote, commission_rates, held_mark
from trades.services import (
    ExitPoliciesReport,
    LegMark,
    NetExitsReport,
    TradeMark,
    exit_policies_apply,
    leg_marks_record,
    marks_record,
    spread_exits_watch,
)

from . import clock as market_clock
from .expiry import ExpiryReport, intrinsic_value, pin_risk_watch, settle_expiries
from .marketdata import MarketDataError, MarketDataProvider, OptionQuote
from .models import SnapshotKind
from .sharding import Shard, leg_quotable
from .sync import SyncReport, sync_orders

__all__ = [
    "BookendReport", "ExpiryReport", "OrdersCycleReport", "SnapshotReport", "SyncReport", "cycle_slot",
    "intrinsic_value", "match_paper_orders", "orders_cycle", "schedules_install", "settle_expiries",
    "snapshot_positions", "sync_orders", "take_due_bookends",
]

logger = logging.getLogger(__name__)

SNAPSHOT_PERIOD = timedelta(seconds=40)
DAY = 24 * 60 * 60
HELD_STATUSES = (TradeStatus.OPEN, TradeStatus.CLOSING)  # a position exists at the broker


def cycle_slot(at: datetime, period: timedelta = SNAPSHOT_PERIOD) -> datetime:
    """The scheduled slot `at` falls in. Snapshots are stamped with it, not with the wall clock,
    so a retried or duplicated cycle writes onto the same (trade, slot, kind) and is ignored."""
    seconds = int(period.total_seconds())
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


@dataclass(frozen=True)
class SnapshotReport:
    slot: datetime
    kind: str
    trades: int
    contracts: int
    written: int
    unquoted: int
    skipped: str = ""


def snapshot_positions(*, provider: MarketDataProvider, at: datetime, kind: str = SnapshotKind.INTRADAY,
                       slot: datetime | None = None, shard: Shard | None = None) -> SnapshotReport:
    """Quote every held contract once, write one snapshot per held trade, refresh the trades' marks.

    Intraday snapshots only happen while the market is open (or FORCE_MARKET_OPEN); bookends are
    taken by their own schedule at their own times. Three round trips to the database in all, and
    two more when a multi-leg trade is held (its legs read, their quotes written), however many:
    every leg is quoted in the same one request as the single options (docs/spreads.md, "Marks").
    With `shard`, only that shard's accounts (monitoring/sharding.py; the provider is then the
    cycle's shared quotes).
    """
    slot = slot or cycle_slot(at)
    if kind == SnapshotKind.INTRADAY and not market_clock.is_market_open(at):
        return SnapshotReport(slot, kind, 0, 0, 0, 0, skipped="market closed")
    with tenancy.system_context():
        positions = PaperTrade.objects.filter(status__in=HELD_STATUSES)
        held = list(
            (shard.of(positions) if shard else positions).with_held_qty().order_by("id")
            .values_list("id", "owner_id", "option_symbol", "entry_price", "held", "strategy_type", "net_direction")
        )
        trades = [row[:5] for row in held if row[5] == StrategyType.SINGLE]
        spreads = [row for row in held if row[5] != StrategyType.SINGLE]
        legs = _spread_legs(spreads)
    if not held:
        return SnapshotReport(slot, kind, 0, 0, 0, 0)
    # Quoted outside any transaction: a slow provider must not hold a connection idle in one.
    quotes = provider.option_quotes(sorted({symbol for _, _, symbol, _, _ in trades}
                                           | {leg.option_symbol for legs_of in legs.values() for leg in legs_of
                                              if leg_quotable(leg, at)}))
    rows = [_snapshot_row(trade, quotes[trade[2]]) for trade in trades if trade[2] in quotes]
    spread_rows = [row for row in (_spread_row(spread, legs.get(spread[0], []), quotes) for spread in spreads)
                   if row is not None]
    with tenancy.system_context():
        _commit_without_waiting()
        written = _insert_snapshots(rows + spread_rows, slot, kind, source=_source(quotes),
                                    delayed=bool(getattr(provider, "delayed", False)))
        if spreads:
            _update_leg_marks(legs, quotes, at)
        _update_marks(rows + spread_rows, at)
    unquoted = len(held) - len(rows) - len(spread_rows)
    if unquoted:
        logger.warning("snapshot %s: %d held trade(s) had no quote this cycle", slot.isoformat(), unquoted)
    return SnapshotReport(slot, kind, len(held), len(quotes), written, unquoted)


def _commit_without_waiting() -> None:
    """The cycle's snapshots and marks commit without waiting for the WAL to reach the disk
    (for this transaction only): a crash of PostgreSQL can lose the last fraction of a second of
    them, never a part of a cycle (atomic all the same), and the next cycle writes its own. A
    shard's commit (50,000 snapshots, their index entries and the trades' marks at 100,000 trades)
    otherwise waits for that flush while its worker holds the cycle up."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _spread_legs(spreads: list[tuple]) -> dict[int, list[TradeLeg]]:
    """The held multi-leg trades' legs, by trade, in order: one query, and none without one."""
    if not spreads:
        return {}
    legs = defaultdict(list)
    for leg in (TradeLeg.objects.filter(trade_id__in=[spread[0] for spread in spreads])
                .only("id", "trade_id", "position", "option_symbol", "side", "ratio", "exit_price", "exit_reason")
                .order_by("trade_id", "position")):
        legs[leg.trade_id].append(leg)
    return legs


def _leg_quote(quote: OptionQuote) -> LegQuote:
    return LegQuote(bid=quote.bid, ask=quote.ask, mark=quote.mark if quote.mark is not None else quote.mid)


def _spread_row(spread: tuple, legs: list[TradeLeg], quotes: dict[str, OptionQuote]) -> dict | None:
    """A multi-leg trade's snapshot and mark: its held mid, held natural sides and P&L from this
    cycle's quotes of every leg (trades.selectors.held_mark), with the position's net greeks per unit
    (Σ side × ratio × greek). None, so the trade keeps its last net, when a leg has no quote or no
    mark this cycle: a net is never made of one cycle's quotes and another's."""
    trade_id, owner_id, _, entry, units, _, direction = spread
    held = [leg for leg in legs if not leg.exit_reason]
    if not held or entry is None or any(leg.option_symbol not in quotes for leg in held):
        return None
    # A leg that has left the position (a calendar's settled front month) counts at its exit price.
    leg_quotes = {leg.option_symbol: LegQuote(bid=leg.exit_price, ask=leg.exit_price, mark=leg.exit_price)
                  for leg in legs if leg.exit_reason}
    leg_quotes.update({leg.option_symbol: _leg_quote(quotes[leg.option_symbol]) for leg in held})
    mark = held_mark(net_direction=direction, legs=legs, entry=entry, units=units, quotes=leg_quotes)
    if mark is None:
        return None
    legs = held
    first = quotes[legs[0].option_symbol]
    return {
        "trade_id": trade_id, "owner_id": owner_id, "mark": mark.mid, "bid": mark.bid, "ask": mark.ask,
        **{greek: _net_greek(greek, legs, quotes) for greek in ("delta", "gamma", "theta", "vega")},
        "iv": None, "underlying": first.underlying_price, "quote_time": min(quotes[leg.option_symbol].quote_time
                                                                            for leg in legs),
        "pnl": mark.unrealized_pnl,
    }


def _net_greek(name: str, legs: list[TradeLeg], quotes: dict[str, OptionQuote]):
    values = [getattr(quotes[leg.option_symbol], name) for leg in legs]
    if any(value is None for value in values):
        return None
    return sum((leg.sign * leg.ratio * value for leg, value in zip(legs, values, strict=True)), Decimal(0))


def _update_leg_marks(legs: dict[int, list[TradeLeg]], quotes: dict[str, OptionQuote], at: datetime) -> None:
    """Hand every quoted leg's quote to trades (one UPDATE), a leg of a trade whose net is not
    written this cycle included: its own quote is fresh, and its `marked_at` tells the pages so."""
    marks = []
    for legs_of in legs.values():
        for leg in legs_of:
            quote = quotes.get(leg.option_symbol)
            if quote is not None:
                mark = _leg_quote(quote)
                marks.append(LegMark(leg_id=leg.pk, bid=quote.bid, ask=quote.ask, mark=mark.mark, iv=quote.iv))
    leg_marks_record(marks=marks, at=at)


def _source(quotes: dict[str, OptionQuote]) -> str:
    return next(iter(quotes.values())).source if quotes else ""


def _snapshot_row(trade, quote: OptionQuote) -> dict:
    trade_id, owner_id, symbol, entry, held = trade
    mark = quote.mark if quote.mark is not None else quote.mid
    pnl = (mark - entry) * held * CONTRACT_MULTIPLIER if mark is not None else None
    return {
        "trade_id": trade_id, "owner_id": owner_id, "mark": mark, "bid": quote.bid, "ask": quote.ask,
        "delta": quote.delta, "gamma": quote.gamma, "theta": quote.theta, "vega": quote.vega, "iv": quote.iv,
        "underlying": quote.underlying_price, "quote_time": quote.quote_time, "pnl": pnl,
    }


def _column(rows, name):
    return array_param([row[name] for row in rows])


def _insert_snapshots(rows: list[dict], slot: datetime, kind: str, *, source: str, delayed: bool = False) -> int:
    """One INSERT for all rows; the unique (trade, timestamp, kind) makes a rerun a no-op."""
    rows = [row for row in rows if row["mark"] is not None]
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monitoring_pricesnapshot
                (trade_id, owner_id, timestamp, kind, mark_price, bid, ask, delta, gamma, theta, vega, iv,
                 underlying, source, delayed, quote_time)
            SELECT trade_id, owner_id, %s, %s, mark, bid, ask, delta, gamma, theta, vega, iv, underlying, %s, %s, qt
              FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                          %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                          %s::timestamptz[])
                AS v(trade_id, owner_id, mark, bid, ask, delta, gamma, theta, vega, iv, underlying, qt)
            ON CONFLICT (trade_id, timestamp, kind) DO NOTHING
            """,
            [slot, kind, source, delayed, *[_column(rows, name) for name in (
                "trade_id", "owner_id", "mark", "bid", "ask", "delta", "gamma", "theta", "vega", "iv",
                "underlying", "quote_time")]],
        )
        return cursor.rowcount


def _update_marks(rows: list[dict], at: datetime) -> None:
    """Hand the cycle's marks to trades, which owns the trade row (one UPDATE for all of them).
    Inside the snapshot's transaction, so the marks and the snapshots commit together."""
    marks_record(marks=[TradeMark(trade_id=row["trade_id"], mark=row["mark"], bid=row["bid"], ask=row["ask"],
                                  unrealized_pnl=row["pnl"]) for row in rows if row["mark"] is not None], at=at)


def match_paper_orders(*, market: Market | None = None, rules: FillRules | None = None,
                       exit_policies_provider: MarketDataProvider | None = None, shard: Shard | None = None) -> int:
    """Fill and expire every account's working orders at the local paper broker, against one
    batch of fresh quotes. Cross-tenant by nature, so in the system context.

    Most groups, most cycles, neither fill nor expire: the broker's `groups_due` decides for every
    working group at once, with `fill_price`'s rules, which can change now (and notes the rest as
    looked at this session, the broker's gap rule). Only those go through the broker's locked
    `match_group`, each in its own transaction (so a user's cancel never waits for the whole cycle
    and one bad group cannot undo the others' fills). Each account's fills are charged its own
    commission per contract (trades' `AccountSettings.commission_rate`).

    With `exit_policies_provider`, the local paper trades' exit policies look at the market first
    (the broker's native trailing: a stop moved now is the one matched now). With `shard`, only
    the accounts whose id is the shard's index modulo its count (monitoring/sharding.py): each
    group is matched by exactly one shard.
    """
    given_rules = rules is not None  # tests fix one set of rules; otherwise each account's commission
    market, rules = market or default_market(), rules or FillRules.from_settings()
    now = market.now()
    if exit_policies_provider is not None:
        apply_exit_policies(provider=exit_policies_provider, market=market, at=now,
                            broker_modes=[BrokerMode.LOCAL_PAPER], shard=shard)
    owners = (shard.index, shard.count) if shard else (0, 1)
    with tenancy.system_context():
        symbols = working_symbols(shard=owners)
    if symbols is None:
        return 0
    quotes = market.quotes(symbols) if market.is_open(now) else {}
    with tenancy.system_context():
        due = groups_due(quotes=quotes, now=now, session=market.session_close(now), rules=rules, shard=owners)
        rates = {} if given_rules else commission_rates(owner_ids={group.owner_id for group in due})
    fills = 0
    for group in due:
        owner_rules = rules if given_rules or group.owner_id not in rates else replace(
            rules, commission_per_contract=rates[group.owner_id])
        try:
            with tenancy.system_context():
                fills += match_group(group.head_id, quotes=quotes, market=market, rules=owner_rules, now=now)
        except Exception:  # one broken group must not stop the others; it is retried next cycle
            logger.exception("paper order group %s could not be matched", group.head_id)
    return fills


AFTER_CLOSE = timedelta(hours=1)


@dataclass(frozen=True)
class OrdersCycleReport:
    fills: int
    sync: SyncReport | None
    expiry: ExpiryReport | None
    policies: ExitPoliciesReport | None = None
    net_exits: NetExitsReport | None = None
    pin_risk_alerts: int = 0
    skipped: str = ""  # last: the repr ends with why a cycle did nothing


def orders_cycle(*, provider: MarketDataProvider, market: Market | None = None,
                 at: datetime | None = None, shard: Shard | None = None) -> OrdersCycleReport:
    """One order cycle: the exit policies, the multi-leg trades' net watch (`watch_net_exits`),
    local-paper matching, then the order sync, then expiry settlement.

    Matching runs first so that a local-paper fill becomes the trade's state in the same cycle
    (the separate 20-second matching job only makes fills arrive sooner). Runs during the session
    and for an hour after each close, so that day orders that expired at the close and contracts
    that expired today are processed; nothing polls overnight (a starting worker reconciles once).

    With `shard`, every step touches only that shard's accounts (`owner_id % N == i`,
    monitoring/sharding.py); the market and the provider are then the coordinator's shared quotes.
    """
    market = market or default_market()
    at = at or market.now()
    if not orders_cycle_due(at):
        return OrdersCycleReport(0, None, None, skipped="market closed")
    policies = apply_exit_policies(provider=provider, market=market, at=at, shard=shard)
    net_exits = watch_net_exits(market=market, at=at, shard=shard)
    fills = match_paper_orders(market=market, shard=shard)
    report = sync_orders(market=market, at=at, shard=shard)
    expiry = settle_expiries(provider=provider, at=at, market=market, shard=shard)
    return OrdersCycleReport(fills, report, expiry, policies=policies, net_exits=net_exits,
                             pin_risk_alerts=_pin_risk(provider, at, shard))


def orders_cycle_due(at: datetime) -> bool:
    """The order cycle works during the session and for an hour after each close."""
    return market_clock.is_market_open(at) or at - last_close(at) <= AFTER_CLOSE


def watch_net_exits(*, market: Market, at: datetime, shard: Shard | None = None) -> NetExitsReport:
    """Be the multi-leg trades' bracket, while the market is open: a held mark past its stop or
    target sends the closing multileg order (after the exit policies, so a stop they just moved is
    the one judged). A market order is only sent while it can fill."""
    if not market.is_open(at):
        return NetExitsReport()
    try:
        return spread_exits_watch(market=market, accounts=shard.of if shard else None)
    except Exception:  # the matching and the order sync after it must run whatever this met
        logger.exception("net exits could not be watched this cycle")
        return NetExitsReport()


def _pin_risk(provider: MarketDataProvider, at: datetime, shard: Shard | None = None) -> int:
    """The pin-risk alerts of this cycle (its failure must not undo what the cycle did)."""
    if not market_clock.is_market_open(at):
        return 0
    try:
        return pin_risk_watch(provider=provider, at=at, shard=shard)
    except Exception:
        logger.exception("pin risk could not be watched this cycle")
        return 0


def apply_exit_policies(*, provider: MarketDataProvider, market: Market, at: datetime,
                        broker_modes: list[str] | None = None, shard: Shard | None = None) -> ExitPoliciesReport:
    """Let every open trade's exit policy look at the market, while it is open: the option's bid
    from the quotes the local paper broker matches against (so a moved stop and the quote that
    moved it are what the matching sees next), the stock's last price from the data provider.
    Runs before the matching, so a stop moved now is the one the paper broker holds."""
    if not market.is_open(at):
        return ExitPoliciesReport()
    try:
        return exit_policies_apply(
            option_bids=lambda symbols: {symbol: quote.bid for symbol, quote in market.quotes(symbols).items()},
            underlying_prices=partial(_stock_prices, provider),
            now=at, today=market_clock.market_date(at), session_close=market.session_close(at), market=market,
            broker_modes=broker_modes, accounts=shard.of if shard else None)
    except Exception:  # the matching and the order sync after it must run whatever the policies met
        logger.exception("exit policies could not be applied this cycle")
        return ExitPoliciesReport()


def _stock_prices(provider: MarketDataProvider, tickers: list[str]) -> dict:
    """The stocks' last prices; none when the source is down (the stock stops wait, the rest go on)."""
    try:
        return {ticker: quote.last for ticker, quote in provider.underlying_quotes(tickers).items()}
    except MarketDataError as error:
        logger.warning("no stock prices for exit policies this cycle: %s", error)
        return {}


def last_close(at: datetime) -> datetime:
    """The close of the latest session that has closed by `at`."""
    day = market_clock.market_date(at)
    session = market_clock.session_for(day)
    if session.close is not None and session.close <= at:
        return session.close
    return market_clock.session_for(market_clock.previous_trading_day(day)).close


@dataclass(frozen=True)
class BookendReport:
    kind: str
    due: datetime | None
    taken: SnapshotReport | None = None
    missed: bool = False


def take_due_bookends(*, provider: MarketDataProvider, at: datetime) -> list[BookendReport]:
    """Take the pre- and post-market bookends whose moment has come, each exactly once.

    Beat only fires this every minute; the calendar decides (9:25, and 5 minutes after the real
    close: 16:05, or 13:05 on an early close; nothing on holidays). Each bookend is stamped with its
    scheduled time and marked done in Redis once taken, so it is quoted once per day and kind
    however often this runs (and the database's unique slot catches any race). A bookend found
    late is still taken while its quotes mean the same thing (the pre-market one until the open,
    the post-market one until the next pre-market, across nights and weekends), else it is
    recorded as missed, once.
    """
    reports = []
    for kind, due, until in _bookend_windows(at):
        if at < due or cache.get(_bookend_key("done", kind, due)):
            continue
        if at >= until:
            if cache.add(_bookend_key("missed", kind, due), 1, 7 * DAY):
                logger.warning("bookend %s due %s missed: the cycle did not run before %s", kind, due, until)
                reports.append(BookendReport(kind, due, missed=True))
            continue
        taken = snapshot_positions(provider=provider, at=at, kind=kind, slot=due)
        cache.set(_bookend_key("done", kind, due), 1, 7 * DAY)
        reports.append(BookendReport(kind, due, taken=taken))
    return reports


def _recent_sessions(at: datetime) -> list:
    """The last trading day before `at`'s New York date, and that date too if it is one: what a
    job that catches up across nights and weekends has to look at."""
    today = market_clock.market_date(at)
    days = [market_clock.previous_trading_day(today)]
    if market_clock.is_trading_day(today):
        days.append(today)
    return days


def _bookend_key(state: str, kind: str, due: datetime) -> str:
    return f"bookend-{state}:{kind}:{due.isoformat()}"


def _bookend_windows(at: datetime) -> list[tuple[str, datetime, datetime]]:
    """(kind, due, until) for the last session that has begun by `at` and, if today's has not
    yet, today's pre-market one too."""
    windows = []
    for day in _recent_sessions(at):
        session = market_clock.session_for(day)
        next_pre_market = market_clock.next_open(session.close) - market_clock.BOOKEND
        windows += [
            (SnapshotKind.PRE_MARKET, session.pre_market_bookend, session.open),
            (SnapshotKind.POST_MARKET, session.post_market_bookend, next_pre_market),
        ]
    return windows


def schedules_install() -> list[str]:
    """Make django-celery-beat's periodic tasks match `schedules.JOBS`: create, update, switch
    off (SCHEDULE_<NAME>=false) and retire jobs no longer listed. Returns what it did."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from .schedules import JOBS

    done = []
    for job in JOBS:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(job.every.total_seconds()), period=IntervalSchedule.SECONDS
        )
        enabled = bool(getattr(settings, job.setting, True))
        task, created = PeriodicTask.objects.update_or_create(
            name=job.task,
            defaults={"task": job.task, "interval": interval, "crontab": None, "enabled": enabled,
                      "description": job.why, "expire_seconds": int(job.every.total_seconds())},
        )
        done.append(f"{'created' if created else 'updated'} {job.task} every {job.every} "
                    f"({'on' if enabled else f'off: {job.setting}'})")
    listed = [job.task for job in JOBS]
    retired = PeriodicTask.objects.filter(task__startswith="monitoring.").exclude(name__in=listed)
    for name in retired.values_list("name", flat=True):
        done.append(f"retired {name}")
    retired.update(enabled=False)
    return done


FORENSICS_AFTER_CLOSE = timedelta(minutes=15)


def forensic_days_due(*, at: datetime) -> list:
    """The trading days whose forensic targets (analytics) should be computed now, each once:
    a session counts once its post-market bookend is 10 minutes past, so its last marks exist.
    The previous session is included, so a night the workers were down is caught up."""
    due = []
    for day in _recent_sessions(at):
        ready = market_clock.session_for(day).close + FORENSICS_AFTER_CLOSE
        if at >= ready and cache.add(f"forensics-sent:{day.isoformat()}", 1, 7 * DAY):
            due.append(day)
    return due


# After the expiry settlement (at the close) and the order sync's last fills: the day is final.
REPORT_AFTER_CLOSE = timedelta(minutes=30)


def report_days_due(*, at: datetime) -> list:
    """The sessions whose reports (analytics) should be sent now, each once: a session counts
    REPORT_AFTER_CLOSE after its real close (13:00 + 30 min on an early close). A holiday or a
    weekend has no session, so no report. The previous session is included, so a night the
    workers were down is caught up; each trader's channels are told at most once a day anyway
    (the messages' dedupe key), so a second request is harmless."""
    due = []
    for day in _recent_sessions(at):
        ready = market_clock.session_for(day).close + REPORT_AFTER_CLOSE
        if at >= ready and cache.add(_reports_key(day), 1, 7 * DAY):
            due.append(day)
    return due


def report_day_again(day) -> None:
    """A trader's report of session `day` failed: the next request asks for the day again (while
    it is one of the recent sessions); the channels already told are spared by their dedupe keys."""
    cache.delete(_reports_key(day))


def _reports_key(day) -> str:
    return f"reports-sent:{day.isoformat()}"
