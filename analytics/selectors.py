"""Reads for analytics. Every selector takes the user and filters by owner (row-level security
filters again underneath). Each loads what it needs in a constant number of queries, with money
already in integer cents (prices in ten-thousandths of a dollar) computed by PostgreSQL, and
hands the frame to the vectorised code in `analytics.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, ExtractHour, ExtractIsoWeekDay, NullIf, Round, TruncDate

from brokers.models import BrokerMode, PaperFill
from monitoring import clock
from monitoring.models import PriceSnapshot
from trades import selectors as trade_selectors
from trades.models import (
    CONTRACT_MULTIPLIER,
    AccountSettings,
    CloseReason,
    EventKind,
    NetDirection,
    PaperTrade,
    StrategyType,
    TradeEvent,
    TradeStatus,
    commission_total_sql,
    realized_pnl_net_sql,
)
from trades.selectors import SNAPSHOT_FIELDS

from . import attribution, explain, metrics, periods, policy_replay, stats
from .models import TradeForensics

DEFAULT_BALANCE = AccountSettings._meta.get_field("account_balance").default


def market_tz() -> ZoneInfo:
    return ZoneInfo(settings.MARKET_TIME_ZONE)


@dataclass(frozen=True)
class AnalyticsFilters:
    """Closed trades whose close falls on New York dates `closed_from`..`closed_to` (both
    included), of one strategy if given."""

    closed_from: date | None = None
    closed_to: date | None = None
    strategy: str | None = None
    strategy_type: str | None = None  # what the legs make (trades.models.StrategyType)


def _ny_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=market_tz())


def closed_trades(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None) -> QuerySet[PaperTrade]:
    filters = filters or AnalyticsFilters()
    trades = PaperTrade.objects.filter(owner=user).closed().filter(realized_pnl__isnull=False)
    if filters.closed_from:
        trades = trades.filter(close_date__gte=_ny_midnight(filters.closed_from))
    if filters.closed_to:
        trades = trades.filter(close_date__lt=_ny_midnight(filters.closed_to + timedelta(days=1)))
    if filters.strategy:
        trades = trades.filter(strategy=filters.strategy)
    if filters.strategy_type:
        trades = trades.filter(strategy_type=filters.strategy_type)
    return trades


def _held_qty():
    return Coalesce(NullIf(F("filled_qty"), Value(0)), F("qty"))


def _planned_risk_per_share():
    """Per share, the distance from the entry to the stop on the losing side, by the held-price
    convention (trades/net_price.py): entry − SL for a debit trade (every single option), SL − entry
    for a credit trade (short its price: its stop is a dearer buy-back). ≤ 0: no stop on that side."""
    return Case(When(net_direction=NetDirection.CREDIT, then=F("sl_price") - F("entry_price")),
                default=F("entry_price") - F("sl_price"))


def _target_distance_per_share():
    """Per share, the distance from the entry to the target on the winning side (held prices)."""
    return Case(When(net_direction=NetDirection.CREDIT, then=F("entry_price") - F("tp_price")),
                default=F("tp_price") - F("entry_price"))


def _cents(expression):
    return Cast(Round(expression * 100), BigIntegerField())


def _ten_thousandths(expression):
    return Cast(Round(expression * 10000), BigIntegerField())


TRADE_FRAME = ("id", "ticker", "strategy", "ai_verdict", "gate_verdict", "close_reason", "close_epoch", "pnl_gross",
               "pnl_net", "commission", "fees", "risk", "hold_h", "card_score", "ai_score", "technical_score",
               "sentiment_score", "entry_hour", "dte", "strategy_type", "net_direction", "units", "max_loss")
MONEY_COLUMNS = ("pnl_gross", "pnl_net", "commission", "fees", "risk")
SCORE_FIELDS = ("card_score", "ai_score", "technical_score", "sentiment_score")


class _Epoch(Func):
    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


class _EpochMicros(Func):
    """An instant as integer microseconds since 1970 (exact: EXTRACT gives numeric)."""

    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"
    output_field = BigIntegerField()


def _fetch(rows: QuerySet) -> list[tuple]:
    """The rows of a values_list() straight from the cursor (no per-row model or converter work:
    every column is already an int, float or string)."""
    query, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _instants(micros: pd.Series) -> pd.Series:
    return pd.to_datetime(micros.astype("int64"), unit="us", utc=True).astype("datetime64[ns, UTC]")


def trade_frame(trades: QuerySet[PaperTrade], *, basis: str = metrics.NET, attribution: bool = False) -> pd.DataFrame:
    """One row per trade: money in cents, scores as floats, `close_date` (UTC) and `day` (its New
    York date, as a midnight datetime64). PostgreSQL converts every value to an int, float or
    string, and the rows are read straight from the cursor: no Decimal or datetime objects per row.
    P&L comes on both bases (`pnl_gross`, `pnl_net`, with `commission` and `fees`); `pnl` is the
    one on `basis` (net by default), which the metrics read. `attribution` adds the columns of the
    stored greeks attribution (ATTRIBUTION_COLUMNS), so `greeks_attribution` need not read the
    trades again."""
    extra = _attribution_annotations() if attribution else {}
    rows = trades.annotate(
        **extra,
        close_epoch=_Epoch("close_date"),
        pnl_gross=_cents(F("realized_pnl")),
        pnl_net=_cents(realized_pnl_net_sql()),
        commission=_cents(commission_total_sql()),
        fees_cents=_cents(F("fees")),
        risk=_cents(_planned_risk_per_share() * _held_qty() * CONTRACT_MULTIPLIER),
        hold_h=Cast("hold_duration_h", FloatField()),
        **{f"{name}_f": Cast(name, FloatField()) for name in SCORE_FIELDS},
        entry_hour=ExtractHour("entry_date", tzinfo=market_tz()),
        dte=_Days(F("expiry"), TruncDate("entry_date", tzinfo=market_tz())),
        units=F("qty"),
        # A single option can lose its premium; a multi-leg trade's max loss comes from its legs below.
        premium_paid=_cents(F("entry_price") * _held_qty() * CONTRACT_MULTIPLIER),
    ).values_list(*TRADE_FRAME[:10], "fees_cents", "risk", "hold_h", *(f"{name}_f" for name in SCORE_FIELDS),
                  "entry_hour", "dte", "strategy_type", "net_direction", "units", "premium_paid",
                  *(("option_type", *extra) if attribution else ()))
    columns = [*TRADE_FRAME, *(ATTRIBUTION_COLUMNS if attribution else ())]
    frame = pd.DataFrame.from_records(_fetch(rows), columns=columns, coerce_float=True)
    frame = frame.astype({"id": "int64", **dict.fromkeys(MONEY_COLUMNS, "int64"), "close_epoch": "float64",
                          **{name: "float64" for name in ("hold_h", *SCORE_FIELDS, "max_loss")}})
    frame = _with_spread_max_loss(frame)
    frame = metrics.on_basis(frame, basis)
    frame["close_date"] = pd.to_datetime(frame["close_epoch"], unit="s", utc=True).dt.round("us")
    frame["day"] = frame["close_date"].dt.tz_convert(market_tz()).dt.tz_localize(None).dt.normalize()
    # Breakdown labels: the New York hour the trade was entered ("10:00"), its days to expiry bucket.
    hours = pd.to_numeric(frame["entry_hour"], errors="coerce")
    frame["entry_hour"] = [f"{int(hour):02d}:00" if hour == hour else "" for hour in hours.tolist()]
    frame["dte_bucket"] = pd.cut(pd.to_numeric(frame["dte"], errors="coerce"), DTE_BUCKETS[0],
                                 labels=DTE_BUCKETS[1]).astype(str).replace("nan", "")
    return frame


def _with_spread_max_loss(frame: pd.DataFrame) -> pd.DataFrame:
    """`max_loss` (cents, NaN: unlimited or not known) of each multi-leg trade from its legs' entry
    fills (trades/strategies.py: a credit spread's width × 100 − credit, a debit trade's debit), in
    one query for all of them; none when the frame has only single options."""
    spreads = frame.index[frame["strategy_type"] != StrategyType.SINGLE]
    if not len(spreads):
        return frame
    rows = frame.loc[spreads, ["id", "strategy_type", "net_direction", "units"]]
    legs = trade_selectors.legs_by_trade(trade_ids=rows["id"].tolist())
    losses = []
    for trade_id, strategy_type, direction, units in rows.itertuples(index=False):
        facts = trade_selectors.row_strategy_facts(
            {"strategy_type": strategy_type, "net_direction": direction, "qty": int(units)}, legs.get(trade_id, []))
        losses.append(np.nan if facts.max_loss is None else float(int(round(facts.max_loss * 100))))
    frame.loc[spreads, "max_loss"] = losses
    return frame


def starting_balance_cents(*, user: AbstractBaseUser) -> int:
    balance = AccountSettings.objects.filter(owner=user).values_list("account_balance", flat=True).first()
    return int((balance if balance is not None else DEFAULT_BALANCE) * 100)


def _sessions_between(days) -> list[date]:
    if not len(days):
        return []
    try:
        return clock.trading_days(min(days), max(days))
    except clock.OutsideCalendar:  # older than the calendar: the days with closes are all we have
        return []


# --- Performance ---------------------------------------------------------------------------------


def performance(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None,
                basis: str = metrics.NET, period: periods.Period | None = None) -> dict:
    """Everything the Performance tab shows, in three queries (the balance, the trades with their
    stored greeks attribution, the snapshots of those the nightly forensics have not attributed
    yet: none when all are), one more with multi-leg trades (their legs, for the max loss
    `by_strategy_type` measures returns against). Every P&L figure is on `basis`: net of
    commissions and fees (the default) or gross; `costs` gives both totals whatever the basis. Win
    rates carry their 95 % Wilson interval; Sharpe and Sortino wait for enough trading days. A
    `period` other than "all" narrows the closes to its New York dates; "all" leaves `filters`'
    own `from`/`to` to say which dates the answer covers."""
    if period is not None and period.name == "all":
        period = None
    if period is not None:
        filters = replace(filters or AnalyticsFilters(), closed_from=period.start, closed_to=period.end)
    start = starting_balance_cents(user=user)
    trades = closed_trades(user=user, filters=filters)
    frame = trade_frame(trades, basis=basis, attribution=True)
    curve, drawdown = metrics.equity_curve(frame, start)
    daily = metrics.daily_pnl(frame)
    by_strategy = _with_intervals(metrics.breakdown(frame, "strategy"))
    returns = metrics.max_loss_returns(frame, "strategy_type")
    by_strategy_type = [{**row, "label": StrategyType(row["strategy_type"]).label, **returns[row["strategy_type"]]}
                        for row in _with_intervals(metrics.breakdown(frame, "strategy_type"))]
    best = max(by_strategy, key=lambda row: Decimal(row["net_pnl"]), default=None)
    hold = frame.groupby("close_reason")["hold_h"].mean() if len(frame) else pd.Series(dtype=float)
    summary = stats.with_win_rate_interval(metrics.summary(frame))
    r_trades = int(metrics.with_outcomes(frame)["r"].notna().sum()) if len(frame) else 0
    return {
        "money": "strings of dollars with 2 decimals; ratios are numbers; undefined values are null",
        "basis": basis,
        "costs": metrics.costs(frame),
        "period": (period or _period_of(filters)).as_json(),
        "summary": {**summary, "avg_hold_hours": metrics.number(frame["hold_h"].mean(), 2), "r_trades": r_trades,
                    "expectancy_note": stats.expectancy_disagreement(
                        expectancy=summary["expectancy"], expectancy_r=summary["expectancy_r"],
                        trades=summary["trades"], r_trades=r_trades)},
        "max_drawdown": drawdown,
        "risk_adjusted": stats.gated_risk_adjusted(metrics.risk_adjusted(daily, _sessions_between(daily.index))),
        "by_close_reason": _with_intervals({**row, "avg_hold_hours": metrics.number(hold.get(row["close_reason"]), 2)}
                                           for row in metrics.breakdown(frame, "close_reason")),
        "by_strategy": by_strategy,
        "by_strategy_type": by_strategy_type,
        "best_strategy": best["strategy"] if best and Decimal(best["net_pnl"]) > 0 else None,
        "by_ticker": _with_intervals(metrics.breakdown(frame, "ticker")),
        "by_entry_hour": _with_intervals(metrics.breakdown(frame, "entry_hour")),
        "by_dte": _with_intervals(sorted(metrics.breakdown(frame, "dte_bucket"), key=_dte_order)),
        "by_ai_verdict": _with_intervals(metrics.breakdown(frame, "ai_verdict")),
        "by_gate_verdict": _with_intervals(metrics.breakdown(frame, "gate_verdict")),
        "by_card_score_decile": metrics.score_buckets(frame, "card_score"),
        "by_ai_score_decile": metrics.score_buckets(frame, "ai_score"),
        "equity_curve": {**curve, "drawdown": metrics.underwater(curve["equity"], curve["start"])},
        "pnl_distribution": metrics.pnl_histogram(frame),
        "daily": [{"date": day.isoformat(), "pnl": pnl, "trades": count}
                  for day, pnl, count in zip(daily.index, metrics.money_series(daily["pnl"].to_numpy()),
                                             daily["trades"].tolist(), strict=True)],
        "greeks_attribution": greeks_attribution(trades, frame),
    }


def _period_of(filters: AnalyticsFilters | None) -> periods.Period:
    """The period `from`/`to` filters describe, for callers that give no named period."""
    if filters and (filters.closed_from or filters.closed_to):
        return periods.Period("custom", filters.closed_from, filters.closed_to)
    return periods.Period("all", None, None)


def _with_intervals(rows) -> list[dict]:
    return [stats.with_win_rate_interval(row) for row in rows]


def _dte_order(row: dict) -> int:
    """DTE buckets nearest expiry first; trades without an entry date last."""
    labels = DTE_BUCKETS[1]
    return labels.index(row["dte_bucket"]) if row["dte_bucket"] in labels else len(labels)


# --- Calibration ----------------------------------------------------------------------------------

SCORES = ("card_score", "ai_score", "technical_score", "sentiment_score")


def calibration(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None,
                basis: str = metrics.NET) -> dict:
    """Realized win rate (with its Wilson interval) and expectancy per decile of each scanner score
    and per verdict, on `basis` (net by default). `monotonic` says whether the points rise at all; a
    score is flagged only when the data can support it (`verdict: non_monotonic`: a fall beyond the
    intervals of buckets with enough trades), and buckets with too few trades say so (`enough: false`)."""
    frame = trade_frame(closed_trades(user=user, filters=filters), basis=basis)
    scores = {}
    for score in SCORES:  # four scores, each vectorised over all trades
        buckets = metrics.score_buckets(frame, score)
        scores[score] = {**metrics.monotonicity(buckets), **stats.calibration_verdict(buckets),
                         "min_bucket_trades": stats.MIN_BUCKET_TRADES}
    return {
        "trades": len(frame),
        "scores": scores,
        "flagged": [name for name, result in scores.items() if result["verdict"] == "non_monotonic"],
        "by_ai_verdict": metrics.breakdown(frame, "ai_verdict"),
        "by_gate_verdict": metrics.breakdown(frame, "gate_verdict"),
    }


# --- Fill quality ---------------------------------------------------------------------------------

DTE_BUCKETS = ([-1, 0, 7, 30, 60, np.inf], ["0", "1-7", "8-30", "31-60", ">60"])
SPREAD_BUCKETS = ([-np.inf, 2, 5, 10, 20, np.inf], ["<2%", "2-5%", "5-10%", "10-20%", ">=20%"])
OCC = r"^(?P<ticker>[A-Z]{1,6})(?P<expiry>\d{6})[CP]\d{8}$"


def fill_quality(*, user: AbstractBaseUser) -> dict:
    """Slippage of every local-paper fill against the mid of the quote it filled against.

    Signed so that positive is a cost: a buy above the mid or a sell below it. Per share in
    dollars, in total dollars (× contracts × 100) and in basis points of the mid. Buckets: days
    to expiry at the fill (New York date), and the quoted spread as % of the mid. Fills without a
    two-sided quote are counted apart. Expiry settlements (sold to the expiry at intrinsic value
    against the underlying's close) are on the books as fills but were never at a market quote:
    they are neither slippage nor fills without a quote, only counted as `settlements`.
    """
    every = PaperFill.objects.filter(owner=user)
    fills = every.filter(settlement=False)
    buy = Q(side__startswith="buy")
    rows = fills.filter(mid__isnull=False, mid__gt=0, bid__isnull=False, ask__isnull=False).annotate(
        slip4=_ten_thousandths(Case(When(buy, then=F("price") - F("mid")), default=F("mid") - F("price"))),
        spread_pct=Cast((F("ask") - F("bid")) * 100 / F("mid"), FloatField()),
        mid_f=Cast("mid", FloatField()),
        day=TruncDate("filled_at", tzinfo=market_tz()),
    ).values_list("option_symbol", "quantity", "slip4", "spread_pct", "mid_f", "day")
    frame = pd.DataFrame.from_records(list(rows), columns=["symbol", "quantity", "slip4", "spread_pct", "mid", "day"])
    counts = every.aggregate(fills=Count("id", filter=Q(settlement=False)),
                             settlements=Count("id", filter=Q(settlement=True)))
    unquoted, settlements = counts["fills"] - len(frame), counts["settlements"]
    signed = "positive slippage is a cost (bought above or sold below the mid)"
    if frame.empty:
        return {"signed": signed, "fills": 0, "without_quote": unquoted, "settlements": settlements, "summary": None,
                "by_ticker": [],
                "by_dte": [], "by_spread": [], "tradier_sandbox": sandbox_fill_gaps(user=user)}
    parts = frame["symbol"].str.extract(OCC)
    expiry = pd.to_datetime("20" + parts["expiry"], format="%Y%m%d")
    frame = frame.assign(
        ticker=parts["ticker"],
        dte=(expiry - pd.to_datetime(frame["day"])).dt.days,
        # ten-thousandths of a dollar per share × 100 shares a contract = cents per contract: exact.
        slip_cents=frame["slip4"].astype("int64") * frame["quantity"].astype("int64"),
        bps=frame["slip4"].astype(float) / frame["mid"],  # (slip4 / 1e4) / mid × 1e4
    )
    frame["dte_bucket"] = pd.cut(frame["dte"], DTE_BUCKETS[0], labels=DTE_BUCKETS[1]).astype(str)
    frame["spread_bucket"] = pd.cut(frame["spread_pct"], SPREAD_BUCKETS[0], labels=SPREAD_BUCKETS[1],
                                    right=False).astype(str)
    return {
        "signed": signed,
        "fills": len(frame),
        "without_quote": unquoted,
        "settlements": settlements,
        "summary": _slippage_rows(frame.assign(_all="all"), "_all")[0],
        "by_ticker": _slippage_rows(frame, "ticker"),
        "by_dte": _slippage_rows(frame, "dte_bucket", order=DTE_BUCKETS[1]),
        "by_spread": _slippage_rows(frame, "spread_bucket", order=SPREAD_BUCKETS[1]),
        "tradier_sandbox": sandbox_fill_gaps(user=user),
    }


QUOTE_TOLERANCE = timedelta(minutes=2)  # three monitor cycles either side of the fill
SANDBOX_NOTE = ("Tradier sandbox fills against our market-data quote at that moment: the trade's snapshot nearest "
                "the fill (within 2 minutes either side), whose mark is the quoted mid. Positive is a cost: bought "
                "above or sold below it. The sandbox fills against its own (delayed) data, so this is the gap between "
                "its fills and the market we mark positions with, not slippage of a real market. Entries fill at the "
                "entry price, exits (stop, target, manual close) at the close price; expiries are settlements, not "
                "fills, and are left out.")


def sandbox_fill_gaps(*, user: AbstractBaseUser) -> dict:
    """The gap between each Tradier sandbox fill (entry and exit of the user's sandbox trades)
    and the mark of the snapshot nearest it, apart from the local paper broker's slippage: the
    sandbox is a different market, and mixing the two would hide both. Two queries."""
    trades = PaperTrade.objects.filter(owner=user, broker_mode=BrokerMode.TRADIER_SANDBOX, entry_date__isnull=False,
                                       entry_price__gt=0)
    rows = trades.annotate(
        qty_held=_held_qty(), entry4=_ten_thousandths(F("entry_price")), close4=_ten_thousandths(F("close_price")),
        entry_us=_EpochMicros("entry_date"), close_us=_EpochMicros("close_date"),
        settled=Q(close_reason__in=[CloseReason.EXPIRED, CloseReason.EXPIRED_ITM]),
    ).values_list("id", "option_symbol", "qty_held", "entry4", "entry_us", "close4", "close_us", "settled")
    columns = ["trade_id", "symbol", "quantity", "entry4", "entry_us", "close4", "close_us", "settled"]
    frame = pd.DataFrame.from_records(_fetch(rows), columns=columns)
    empty = {"note": SANDBOX_NOTE, "signed": "positive is a cost (bought above or sold below the mark)", "fills": 0,
             "without_quote": 0, "quote_lag_seconds_mean": None, "summary": None, "by_side": [], "by_ticker": []}
    if frame.empty:
        return empty
    exits = frame[frame["close_us"].notna() & ~frame["settled"].astype(bool)]
    fills = pd.concat([
        pd.DataFrame({"trade_id": frame["trade_id"], "symbol": frame["symbol"], "quantity": frame["quantity"],
                      "side": "entry (buy)", "price4": frame["entry4"], "at": frame["entry_us"]}),
        pd.DataFrame({"trade_id": exits["trade_id"], "symbol": exits["symbol"], "quantity": exits["quantity"],
                      "side": "exit (sell)", "price4": exits["close4"], "at": exits["close_us"]}),
    ], ignore_index=True).astype({"trade_id": "int64", "quantity": "int64", "price4": "int64", "at": "int64"})
    near = Q()
    for moment in ("entry_date", "close_date"):
        near |= Q(timestamp__gte=F(f"trade__{moment}") - QUOTE_TOLERANCE,
                  timestamp__lte=F(f"trade__{moment}") + QUOTE_TOLERANCE)
    nearby = PriceSnapshot.objects.filter(near, owner=user, trade__in=trades.values("id"), mark_price__gt=0)
    snapshots = nearby.annotate(
        mark4=_ten_thousandths(F("mark_price")), at_us=_EpochMicros("timestamp"),
    ).values_list("trade_id", "at_us", "mark4")
    quotes = pd.DataFrame.from_records(_fetch(snapshots), columns=["trade_id", "quoted_at", "mark4"]).astype("int64")
    matched = pd.merge_asof(
        fills.sort_values("at"), quotes.assign(at=quotes["quoted_at"]).sort_values("at"), on="at", by="trade_id",
        direction="nearest", tolerance=int(QUOTE_TOLERANCE.total_seconds() * 1_000_000),
    )
    quoted = matched[matched["mark4"].notna()].astype({"mark4": "int64", "quoted_at": "int64"})
    if quoted.empty:
        return {**empty, "fills": len(fills), "without_quote": len(fills)}
    buy = quoted["side"].str.startswith("entry")
    gap4 = np.where(buy, quoted["price4"] - quoted["mark4"], quoted["mark4"] - quoted["price4"]).astype(np.int64)
    quoted = quoted.assign(
        ticker=quoted["symbol"].str.extract(OCC)["ticker"], slip4=gap4,
        slip_cents=gap4 * quoted["quantity"].to_numpy(),  # ten-thousandths per share × 100 shares = cents
        bps=gap4 * 10_000 / quoted["mark4"].to_numpy(),
    )
    return {
        **empty,
        "fills": len(fills),
        "without_quote": len(fills) - len(quoted),
        "quote_lag_seconds_mean": metrics.number((quoted["at"] - quoted["quoted_at"]).abs().mean() / 1e6, 1),
        "summary": _slippage_rows(quoted.assign(_all="all"), "_all")[0],
        "by_side": _slippage_rows(quoted, "side"),
        "by_ticker": _slippage_rows(quoted, "ticker"),
    }


def _slippage_rows(frame: pd.DataFrame, key: str, order=None) -> list[dict]:
    stats = frame.groupby(key, sort=True).agg(
        fills=("slip4", "size"), contracts=("quantity", "sum"), total=("slip_cents", "sum"),
        per_share=("slip4", "mean"), bps_mean=("bps", "mean"), bps_median=("bps", "median"), bps_worst=("bps", "max"),
    )
    if order is not None:
        stats = stats.reindex([label for label in order if label in stats.index])
    name = None if key == "_all" else key
    return [
        {**({name: label} if name else {}), "fills": int(row.fills), "contracts": int(row.contracts),
         "slippage_total": metrics.money(row.total),
         "slippage_per_share": str(Decimal(str(round(row.per_share))).scaleb(-4).quantize(Decimal("0.0001"))),
         "slippage_bps_mean": metrics.number(row.bps_mean, 2), "slippage_bps_median": metrics.number(row.bps_median, 2),
         "slippage_bps_worst": metrics.number(row.bps_worst, 2)}
        for label, row in zip(stats.index, stats.itertuples(), strict=True)
    ]


# --- Price paths (exit replay and forensic targets) -----------------------------------------------


PATH_TRADE_COLUMNS = ("id", "owner_id", "strategy", "option_symbol", "qty_held", "entry4", "sl4", "tp4", "close4",
                      "entry_date", "close_date", "pnl", "sign", "single")


def path_trades(trades: QuerySet[PaperTrade]) -> pd.DataFrame:
    rows = trades.annotate(
        qty_held=_held_qty(), entry4=_ten_thousandths(F("entry_price")), sl4=_ten_thousandths(F("sl_price")),
        tp4=_ten_thousandths(F("tp_price")), close4=_ten_thousandths(F("close_price")), pnl=_cents(F("realized_pnl")),
        entry_us=_EpochMicros("entry_date"), close_us=_EpochMicros("close_date"),
        # The held-price sign (+1 debit, −1 credit: trades/net_price.py), and whether the path is one contract's.
        sign=Case(When(net_direction=NetDirection.CREDIT, then=Value(-1)), default=Value(1)),
        single=Case(When(strategy_type=StrategyType.SINGLE, then=Value(1)), default=Value(0)),
    ).order_by("id").values_list(*PATH_TRADE_COLUMNS[:-5], "entry_us", "close_us", "pnl", "sign", "single")
    frame = pd.DataFrame.from_records(_fetch(rows), columns=PATH_TRADE_COLUMNS)
    frame = frame.astype({name: "int64" for name in ("id", "owner_id", "qty_held", "entry4", "sl4", "tp4", "close4",
                                                      "entry_date", "close_date", "pnl", "sign", "single")})
    for column in ("entry_date", "close_date"):
        frame[column] = _instants(frame[column])
    return frame


def price_paths(trades: QuerySet[PaperTrade], frame: pd.DataFrame) -> pd.DataFrame:
    """Each trade's recorded path from entry to close, in time order: the entry fill, every
    snapshot (any kind) strictly between entry and close, and the close fill. Columns `trade_id`,
    `timestamp`, `mark4` (ten-thousandths of a dollar), `point` (0 entry, 1 snapshot, 2 close),
    `underlying4` (the stock's recorded price in ten-thousandths, NaN where none: the fills)."""
    snapshots = PriceSnapshot.objects.filter(
        trade__in=trades.values("id"), timestamp__gt=F("trade__entry_date"), timestamp__lt=F("trade__close_date"),
    ).annotate(mark4=_ten_thousandths(F("mark_price")), at_us=_EpochMicros("timestamp"),
               underlying4=_ten_thousandths(F("underlying")))
    middle = pd.DataFrame.from_records(_fetch(snapshots.values_list("trade_id", "at_us", "mark4", "underlying4")),
                                       columns=["trade_id", "timestamp", "mark4", "underlying4"]).assign(point=1)
    middle["timestamp"] = _instants(middle["timestamp"])
    middle["underlying4"] = middle["underlying4"].astype("float64")
    ends = [
        pd.DataFrame({"trade_id": frame["id"], "timestamp": frame["entry_date"], "mark4": frame["entry4"], "point": 0}),
        pd.DataFrame({"trade_id": frame["id"], "timestamp": frame["close_date"], "mark4": frame["close4"], "point": 2}),
    ]
    parts = [part for part in [*ends, middle] if len(part)]
    if not parts:
        return pd.DataFrame({"trade_id": pd.Series(dtype="int64"), "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                             "mark4": pd.Series(dtype="int64"), "point": pd.Series(dtype="int64"),
                             "underlying4": pd.Series(dtype="float64")})
    path = pd.concat(parts, ignore_index=True)
    if "underlying4" not in path:
        path["underlying4"] = np.nan
    path = path.astype({"trade_id": "int64", "mark4": "int64", "point": "int64", "underlying4": "float64"})
    return path.sort_values(["trade_id", "timestamp", "point"], kind="stable", ignore_index=True)


# --- Exit replay ----------------------------------------------------------------------------------

SL_GRID_PCT = (10, 20, 30, 40, 50, 60)
TP_GRID_PCT = (20, 40, 60, 80, 100, 150)
HINDSIGHT = ("Hindsight: each closed trade's recorded path (entry fill, snapshots, close fill) replayed with "
             "other stop-loss/take-profit distances from the entry. An exit happens at the first recorded mark "
             "at or beyond a level (so gaps fill at that mark); an untouched bracket exits where the trade "
             "really closed. The path after the real close is unknown, so wider brackets are judged on a "
             "truncated path. Single options only: spreads are not replayed. Not a forecast.")
REPLAY_BASIS = ("Like for like: every bracket, and your own stop and target, is replayed on the same recorded marks "
                "by the same exit rule, before commissions. The booked P&L comes from the real fills and can differ "
                "from your replayed brackets: commissions, a fill away from the recorded mark, a bracket moved during "
                "the trade, or a close by hand.")


def first_positions(path: pd.DataFrame, hit: np.ndarray, trades: pd.Index) -> np.ndarray:
    """Per trade (in `trades` order), the position within its path of the first row where `hit`
    is true; -1 when never."""
    first = path.loc[hit].groupby("trade_id", sort=False)["pos"].min()
    return first.reindex(trades, fill_value=-1).to_numpy(dtype=np.int64)


def replay_paths(*, user: AbstractBaseUser, filters: AnalyticsFilters | None
                 ) -> tuple[QuerySet[PaperTrade], pd.DataFrame, pd.DataFrame | None]:
    """The replays' input: the closed single-option trades with an entry price, their frame (`path_trades`, with
    the trader's own stop: the one set before any exit policy moved it, since a trailed stop is the
    policy's work, not the trader's bracket), and their recorded paths (None without trades)."""
    # Single options only: the replays move stops below and targets above the entry of a bought
    # premium, which a spread's held price (a credit trade's stop is above it) does not follow.
    trades_qs = closed_trades(user=user, filters=filters).filter(entry_price__gt=0, strategy_type=StrategyType.SINGLE)
    frame = path_trades(trades_qs)
    if frame.empty:
        return trades_qs, frame, None
    before = stops_before_policy(trades_qs)
    frame["sl4"] = frame["id"].map(before).fillna(frame["sl4"]).astype("int64")
    return trades_qs, frame, price_paths(trades_qs, frame)


def exit_replay(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None) -> dict:
    """Which bracket (SL % below entry, TP % above) would have done best per strategy."""
    trades_qs, frame, path = replay_paths(user=user, filters=filters)
    result = {"hindsight": True, "note": HINDSIGHT, "basis": REPLAY_BASIS, "sl_pct": list(SL_GRID_PCT),
              "tp_pct": list(TP_GRID_PCT), "strategies": []}
    if path is None:
        return result
    path["pos"] = path.groupby("trade_id").cumcount()
    info = frame.set_index("id")
    entry = info["entry4"].reindex(path["trade_id"]).to_numpy(dtype=float)
    running_low = path.groupby("trade_id")["mark4"].cummin().to_numpy(dtype=float)
    running_high = path.groupby("trade_id")["mark4"].cummax().to_numpy(dtype=float)
    ids = info.index
    # The path is sorted by trade id like `ids`, so each trade's rows are one slice of it.
    sizes = path.groupby("trade_id").size().reindex(ids).to_numpy(dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    last = offsets + sizes - 1
    marks = path["mark4"].to_numpy(dtype=np.int64)
    after_entry = path["point"].to_numpy() > 0
    sl_first = {pct: first_positions(path, after_entry & (running_low <= entry * (1 - pct / 100)), ids)
                for pct in SL_GRID_PCT}
    tp_first = {pct: first_positions(path, after_entry & (running_high >= entry * (1 + pct / 100)), ids)
                for pct in TP_GRID_PCT}
    entry4 = info["entry4"].to_numpy(dtype=np.int64)
    qty = info["qty_held"].to_numpy(dtype=np.int64)
    codes, strategies = pd.factorize(info["strategy"], sort=True)
    count = len(strategies)
    trades_of = np.bincount(codes, minlength=count)
    actual = np.bincount(codes, weights=info["pnl"].to_numpy(dtype=np.float64), minlength=count)
    big = np.iinfo(np.int64).max

    def exit_pnl(sl_at: np.ndarray, tp_at: np.ndarray) -> np.ndarray:
        """Cents per trade when exiting at the first of the two touches (-1: never touched), or
        where the trade really closed when neither was touched."""
        position = np.minimum(np.where(sl_at >= 0, sl_at, big), np.where(tp_at >= 0, tp_at, big))
        index = np.where(position == big, last, offsets + np.where(position == big, 0, position))
        return (marks[index] - entry4) * qty  # ten-thousandths per share × 100 shares = cents

    totals, wins = {}, {}
    for sl in SL_GRID_PCT:  # 36 grid cells, each vectorised over every trade
        for tp in TP_GRID_PCT:
            pnl_cents = exit_pnl(sl_first[sl], tp_first[tp])
            totals[sl, tp] = np.rint(np.bincount(codes, weights=pnl_cents, minlength=count)).astype(np.int64)
            wins[sl, tp] = np.bincount(codes, weights=pnl_cents > 0, minlength=count)
    # Like for like: each trade's own stop and target, replayed on the same path by the same rule.
    own_sl = info["sl4"].reindex(path["trade_id"]).to_numpy(dtype=float)
    own_tp = info["tp4"].reindex(path["trade_id"]).to_numpy(dtype=float)
    own = exit_pnl(first_positions(path, after_entry & (running_low <= own_sl), ids),
                   first_positions(path, after_entry & (own_tp > 0) & (running_high >= own_tp), ids))
    own_totals = np.rint(np.bincount(codes, weights=own, minlength=count)).astype(np.int64)
    for code, strategy in enumerate(strategies):  # output: one entry per strategy
        n = int(trades_of[code])
        rows = [{"sl_pct": sl, "tp_pct": tp, "total_pnl": metrics.money(totals[sl, tp][code]),
                 "avg_pnl": metrics.money_ratio(totals[sl, tp][code], n),
                 "win_rate": metrics.number(wins[sl, tp][code] / n)} for sl, tp in totals]
        best_at = int(np.argmax([totals[key][code] for key in totals]))
        booked = round(actual[code])
        comparison = stats.replay_comparison(best_cents=int(totals[list(totals)[best_at]][code]),
                                             own_cents=int(own_totals[code]), actual_cents=booked)
        result["strategies"].append({
            "strategy": strategy, "trades": n, "best": rows[best_at], "cells": rows,
            "actual_pnl": metrics.money(booked), "own_brackets_pnl": metrics.money(own_totals[code]),
            "comparison": {"verdict": comparison["verdict"], "sentence": comparison["sentence"],
                           "booked_minus_replayed": metrics.money(comparison["gap_to_booked_cents"])},
        })
    return result


# --- Exit replay: policies ------------------------------------------------------------------------

def exit_policy_replay(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None) -> dict:
    """Per strategy, what trailing, breakeven and time-stop exit policies would have done on the
    trades' recorded paths (POLICY_BASIS), each against the trades' own brackets replayed by the
    same rule. Apart from the grid replay: the engine walks every recorded look in Python, which
    costs far more than the grid's vectorised touches, and the heat map need not wait for it."""
    trades_qs, frame, path = replay_paths(user=user, filters=filters)
    result = {"hindsight": True, "basis": POLICY_BASIS, "max_looks": POLICY_REPLAY_LOOKS, "trades_replayed": 0,
              "trades_left_out": 0, "strategies": []}
    if path is None:
        return result
    kept = newest_within(frame, path, POLICY_REPLAY_LOOKS)
    policies = policy_replays(user=user, trades=trades_qs, frame=frame[frame["id"].isin(kept)],
                              path=path[path["trade_id"].isin(kept)])
    result.update(trades_replayed=len(kept), trades_left_out=len(frame) - len(kept),
                  strategies=[{"strategy": strategy, **policies[strategy]} for strategy in sorted(policies)])
    return result


# Recorded looks one request replays (each under a dozen policies, ~15 µs an engine call): the
# newest closes first. Snapshots come every 40 s: ~40 trades held a whole session, ~270 held an hour.
POLICY_REPLAY_LOOKS = 25_000


def newest_within(frame: pd.DataFrame, path: pd.DataFrame, budget: int) -> list[int]:
    """Ids of the most recently closed trades whose paths fit in `budget` looks together (the
    newest one always, whatever its length)."""
    sizes = path.groupby("trade_id").size()
    newest = frame.sort_values(["close_date", "id"], ascending=False)["id"]
    running = sizes.reindex(newest).fillna(0).cumsum().to_numpy()
    fits = running <= budget
    fits[0] = True
    return newest[fits].tolist()


POLICY_BASIS = (
    "Exit policies (trailing stops, breakeven moves, time stops), each replayed with the live engine on the same "
    "recorded path, inside your own stop and target as they were set before any policy moved the stop. At each "
    "recorded mark after the entry: a mark at or below the stop sells at that mark (a gap fills at the mark, "
    "never at the stop), a mark at or above the target likewise; otherwise, during the regular session only (as "
    "live), the policy sees the mark as the bid and the stock's recorded price, a stop it moves counts from the "
    "next recorded mark, and a close it asks for sells at this mark. Time stops use the exchange calendar's real "
    "close (13:00 on early closes). A trade nothing closed leaves where it really closed. A policy's scale-out "
    "sells its share of the contracts at the mark that reached its gain (the stop stays that look, as live) and "
    "the rest rides on; each part's P&L is its own. After commissions: each trade's entry commission and fees as "
    "booked, and its exit commission as booked when it leaves whole at the real close, else at the trade's rate "
    "per contract of each sale. \"Your own policy\" is the one each trade held at its "
    "close, replayed from the entry. A stock trailing stop needs the stock's price in the snapshots; trades "
    f"without one are counted. At most {POLICY_REPLAY_LOOKS:,} recorded marks are replayed at a time, the most "
    "recent closes first: narrow the dates or the strategy to reach older trades. Hindsight on a path that ends at "
    "the real close, not a forecast.")


def stops_before_policy(trades: QuerySet[PaperTrade]) -> dict[int, int]:
    """Per trade whose stop an exit policy moved, the stop before its first move (ten-thousandths),
    from the audit log: the "from" of the first bracket change the policy made. Setting a policy
    (`exit_policy_set`) writes a BRACKET_ADJUSTED event with an `exit_policy` key too, but no stop
    "from": only moves with one count, or a policy set after the open would make its later trailed
    stop read as the trader's own. One query."""
    moves = TradeEvent.objects.filter(trade__in=trades.values("id"), kind=EventKind.BRACKET_ADJUSTED,
                                      payload__has_key="exit_policy", payload__from__has_key="sl_price")
    rows = moves.order_by("trade_id", "created_at", "id").distinct("trade_id").values_list(
        "trade_id", KT("payload__from__sl_price"))
    return {trade_id: int(Decimal(stop) * 10000) for trade_id, stop in rows if stop}


POLICY_TRADE_FIELDS = ("id", "option_type", "expiry", "entry_commission", "exit_commission",
                       "commission_per_contract", "fees", "exit_policy")


def policy_replays(*, user: AbstractBaseUser, trades: QuerySet[PaperTrade], frame: pd.DataFrame,
                   path: pd.DataFrame) -> dict[str, dict]:
    """Per strategy, the exit policies replayed on the trades' recorded paths (`frame` and `path`
    as the grid replay loaded them, the stop already the one before any policy moved it), against
    the trades' own brackets replayed by the same rule, net of commissions. Two queries: the
    trades' costs and policies, and the trader's presets."""
    costs = {row[0]: row for row in trades.values_list(*POLICY_TRADE_FIELDS)}
    presets = AccountSettings.objects.filter(owner=user).values_list("strategy_presets", flat=True).first() or {}
    sessions: dict[date, clock.Session | None] = {}
    tz = market_tz()

    def session(at: datetime) -> tuple[date, datetime | None]:
        day = at.astimezone(tz).date()
        if day not in sessions:
            try:
                sessions[day] = clock.session_for(day)
            except clock.OutsideCalendar:
                sessions[day] = None
        found = sessions[day]
        return day, found.close if found is not None and found.contains(at) else None

    def price(ten_thousandths) -> Decimal:
        return Decimal(int(ten_thousandths)).scaleb(-4)

    looks: dict[int, list] = {}
    for trade_id, at, mark4, underlying4, point in zip(
            path["trade_id"].tolist(), (path["timestamp"].astype("int64") // 1000).tolist(), path["mark4"].tolist(),
            path["underlying4"].tolist(), path["point"].tolist(), strict=True):
        stock = None if underlying4 != underlying4 else price(underlying4)  # NaN: not recorded
        looks.setdefault(trade_id, []).append((policy_replay.instant(at), price(mark4), stock, point))
    by_strategy: dict[str, list[policy_replay.ReplayTrade]] = {}
    for row in frame.itertuples(index=False):
        _, option_type, expiry, entry_commission, exit_commission, rate, fees, own = costs[row.id]
        by_strategy.setdefault(row.strategy, []).append(policy_replay.ReplayTrade(
            id=row.id, strategy=row.strategy, option_type=option_type, expiry=expiry, entry=price(row.entry4),
            stop=price(row.sl4), target=price(row.tp4), qty=int(row.qty_held),
            opened_at=row.entry_date.to_pydatetime(), entry_commission=entry_commission,
            exit_commission=exit_commission, rate=rate, fees=fees, own_policy=own or {},
            looks=policy_replay.looks_of(looks[row.id], session)))
    interval = timedelta(seconds=settings.EXIT_POLICY_MIN_INTERVAL_SECONDS)
    return {strategy: _strategy_policies(strategy, replays, presets, interval)
            for strategy, replays in by_strategy.items()}


def _strategy_policies(strategy: str, replays: list, presets: dict, interval: timedelta) -> dict:
    """One strategy's policy table: its own brackets replayed, each candidate with its verdict, the best."""
    candidates = policy_replay.candidates_for(strategy, replays, presets)
    own, rows = policy_replay.strategy_replay(replays, candidates, min_interval=interval)
    own_cents = int(own.net * 100)

    def figures(tally: policy_replay.Tally) -> dict:
        return {"trades": tally.trades, "total_pnl": metrics.money(int(tally.net * 100)),
                "gross_pnl": metrics.money(int(tally.gross * 100)), "wins": tally.wins,
                "win_rate": metrics.number(tally.wins / tally.trades) if tally.trades else None,
                "avg_hold_hours": tally.avg_hold_hours, "exits": dict(tally.exits)}

    table = []
    for candidate, tally in rows:
        cents = int(tally.net * 100)
        table.append({"key": candidate.key, "policy": candidate.policy, "preset": candidate.preset,
                      "words": policy_replay.policy_words(candidate.policy), **figures(tally),
                      "vs_own_brackets": metrics.money(cents - own_cents),
                      **stats.policy_verdict(policy_cents=cents, own_cents=own_cents),
                      "trades_without_stock_price": tally.without_stock_price})
    best = max(table, key=lambda row: Decimal(row["total_pnl"]), default=None)
    if best is not None and int(Decimal(best["total_pnl"]) * 100) <= own_cents:
        best = None  # none beats the brackets: no policy is named best for doing as well or worse
    return {
        "trades": own.trades,
        "own_brackets": figures(own),
        "candidates": table,
        "best": best["key"] if best else None,
        "sentence": stats.best_policy_sentence(
            label=f"“{best['words']}”" if best else None,
            best_cents=int(Decimal(best["total_pnl"]) * 100) if best else None, own_cents=own_cents),
    }


# --- Data set -------------------------------------------------------------------------------------

TIMEFRAMES = ("1m", "5m", "15m", "1h", "daily")
SIGNAL_KEYS = ("rsi14", "macd_hist", "ema_9_21_cross", "ema_9_21_just_crossed", "squeeze", "squeeze_firing",
               "trend", "sma200_distance_pct")
REGIME_KEYS = ("spy_price", "spy_change_pct", "vix", "vix_change_pct", "sector_etf", "sector_change_pct",
               "sector_corr_30d", "as_of")
INTERNAL_KEYS = ("advance_decline", "put_call_ratio")  # each {"value", "missing"} in market_regime.internals
BOOK_KEYS = ("bid", "ask", "spread_pct", "volume", "open_interest", "delta", "gamma", "theta", "vega", "iv", "as_of")
AI_KEYS = ("confidence",)

CONTEXT_COLUMNS: dict[str, KT] = {
    **{f"signals_{tf}_{key}": KT(f"signals_snapshot__{tf}__{key}") for tf in TIMEFRAMES for key in SIGNAL_KEYS},
    "signals_as_of": KT("signals_snapshot__as_of"),
    **{f"regime_{key}": KT(f"market_regime__{key}") for key in REGIME_KEYS},
    **{f"regime_{key}": KT(f"market_regime__internals__{key}__value") for key in INTERNAL_KEYS},
    **{f"book_{key}": KT(f"order_book_state__{key}") for key in BOOK_KEYS},
    **{f"ai_{key}": KT(f"ai_reasoning_log__{key}") for key in AI_KEYS},
}


def _decimal(expression):
    return ExpressionWrapper(expression, output_field=DecimalField())


class _Minutes(Func):
    """Minutes from the second expression to the first."""

    arg_joiner = " - "
    template = "EXTRACT(EPOCH FROM (%(expressions)s)) / 60"
    output_field = FloatField()


class _Days(Func):
    arg_joiner = " - "
    template = "(%(expressions)s)"
    output_field = IntegerField()


INPUT_COLUMNS = ("trade_id", "ticker", "option_type", "strike", "expiry", "dte_at_entry", "entry_date",
                 "entry_hour_ny", "entry_weekday", "qty", "entry_type", "entry_price", "sl_price", "tp_price",
                 "sl_distance_pct", "tp_distance_pct", "planned_risk", "strategy", "card_score", "ai_score",
                 "technical_score", "sentiment_score", "ai_verdict", "gate_verdict", "delta_at_entry",
                 "iv_at_entry", "broker_mode")
TARGET_COLUMNS = ("close_date", "close_reason", "close_price", "realized_pnl", "realized_pnl_pct", "r_multiple",
                  "win", "realized_pnl_gross", "realized_pnl_net", "commission_total", "fees", "win_net",
                  "hold_duration_h", "max_gain", "max_drawdown", "target_pnl_15m", "target_pnl_1h",
                  "target_mfe_pct", "target_mae_pct", "mfe_minutes", "mae_minutes", "first_touch",
                  "forensics_snapshots", "forensics_bars", "forensics_bar_fallback")
# What the legs make (issue 19), known at the open; after the rest so that earlier columns keep
# their places. Worked out from the legs (trades/strategies.py), read in one query per answer.
STRUCTURE_COLUMNS = ("strategy_type", "net_direction", "strategy_label", "leg_count", "legs", "width", "net_entry",
                     "max_profit", "max_loss", "breakevens", "return_on_max_loss_pct")
DATASET_COLUMNS = (*INPUT_COLUMNS, *CONTEXT_COLUMNS, *TARGET_COLUMNS, *STRUCTURE_COLUMNS)
DATASET_SCHEMA_VERSION = 2  # 2: STRUCTURE_COLUMNS, and risk columns on the held price (docs/dataset.md)


def dataset_rows(*, user: AbstractBaseUser, filters: AnalyticsFilters | None = None) -> list[dict]:
    """One dict per closed trade of the user, DATASET_COLUMNS in order, oldest close first.
    Context JSON is flattened in SQL to a fixed list of columns (missing keys are empty). Risk and
    distances follow the held price (a credit trade's stop is above its entry); the structure
    columns come from the legs, read in one more query for every row."""
    rows = list(_dataset_query(user=user, filters=filters))
    legs = trade_selectors.legs_by_trade(trade_ids=[row["trade_id"] for row in rows]) if rows else {}
    for row in rows:
        trade_legs = legs.get(row["trade_id"], [])
        facts = trade_selectors.row_strategy_facts({**row, "option_symbol": row.pop("_option_symbol")}, trade_legs)
        # Signed, per share of one unit: + a debit paid, − a credit received (entry_price is the held one).
        net_entry = row["entry_price"] * trade_selectors.direction_sign(row["net_direction"])
        columns = facts.as_columns()  # to the places the API writes (width 3, dollars 2, breakevens 4)
        row.update({name: columns[name] for name in ("strategy_label", "leg_count", "width", "max_profit",
                                                      "max_loss", "return_on_max_loss_pct")},
                   legs=facts.legs_json, net_entry=net_entry,
                   breakevens=[price.quantize(Decimal("0.0001")) for price in facts.breakevens])
    return rows


def _dataset_query(*, user: AbstractBaseUser, filters: AnalyticsFilters | None) -> QuerySet:
    tz = market_tz()
    risk = _decimal(_planned_risk_per_share() * _held_qty() * CONTRACT_MULTIPLIER)
    entry = NullIf(F("entry_price"), Value(0))
    return closed_trades(user=user, filters=filters).order_by("close_date", "id").annotate(
        trade_id=F("id"),
        _option_symbol=F("option_symbol"),
        dte_at_entry=_Days(F("expiry"), TruncDate("entry_date", tzinfo=tz)),
        entry_hour_ny=ExtractHour("entry_date", tzinfo=tz),
        entry_weekday=ExtractIsoWeekDay("entry_date", tzinfo=tz),
        sl_distance_pct=Round(_decimal(_planned_risk_per_share() * 100 / entry), 4),
        tp_distance_pct=Round(_decimal(_target_distance_per_share() * 100 / entry), 4),
        planned_risk=Round(risk, 2),
        r_multiple=Round(_decimal(F("realized_pnl") / NullIf(risk, Value(0))), 4),
        win=Q(realized_pnl__gt=0),
        realized_pnl_gross=F("realized_pnl"),
        realized_pnl_net=realized_pnl_net_sql(),
        commission_total=commission_total_sql(),
        win_net=ExpressionWrapper(Q(realized_pnl__gt=commission_total_sql() + F("fees")), output_field=BooleanField()),
        mfe_minutes=Round(_Minutes(F("forensics__mfe_at"), F("entry_date")), 2),
        mae_minutes=Round(_Minutes(F("forensics__mae_at"), F("entry_date")), 2),
        first_touch=F("forensics__first_touch"),
        forensics_snapshots=F("forensics__snapshot_count"),
        forensics_bars=F("forensics__bar_count"),
        forensics_bar_fallback=F("forensics__bar_fallback"),
        **CONTEXT_COLUMNS,
    ).values(*(name for name in DATASET_COLUMNS if name not in STRUCTURE_COLUMNS[2:]), "_option_symbol")


# --- One trade's price history and forensics (the MCP trade capsule) ------------------------------


def snapshot_summary(*, trade: PaperTrade) -> dict:
    """How much price history a trade has, at a glance: snapshots per kind, the first and last
    recorded rows (SNAPSHOT_FIELDS) and the range of the mark, in four queries whatever the count.
    Only the months the trade lived in are read (`lifetime_snapshots`, as its chart)."""
    snapshots = trade_selectors.lifetime_snapshots(trade)
    totals = snapshots.aggregate(count=Count("id"), high=Max("mark_price"), low=Min("mark_price"))
    ordered = snapshots.order_by("timestamp", "kind").values(*SNAPSHOT_FIELDS)
    return {
        **totals,
        "by_kind": dict(snapshots.order_by("kind").values_list("kind").annotate(n=Count("id"))),
        "first": ordered.first(),
        "last": ordered.last(),
    }


def trade_forensics(*, user: AbstractBaseUser, trade_id: int) -> TradeForensics | None:
    """The trade's forensic values, or None until the nightly job has computed them."""
    return TradeForensics.objects.filter(owner=user, trade_id=trade_id).first()


# --- Greeks P&L attribution -----------------------------------------------------------------------

GREEK_INPUTS = ("underlying", "iv", "delta", "gamma", "theta", "vega")


def greeks_paths(trades: QuerySet[PaperTrade]) -> pd.DataFrame:
    """The snapshots of each trade while it was held (from its entry to its close, or to now), in
    time order, as `attribution.attribute` reads them: the quote's own time where the source gave
    one (theta runs on the time the price was observed), marks in ten-thousandths, greeks as floats
    (NaN where the source gave none). One query."""
    held = Q(timestamp__gte=F("trade__entry_date")) & (
        Q(trade__close_date__isnull=True) | Q(timestamp__lte=F("trade__close_date")))
    rows = PriceSnapshot.objects.filter(held, trade__in=trades.values("id")).annotate(
        at_us=_EpochMicros(Coalesce("quote_time", "timestamp")), mark4=_ten_thousandths(F("mark_price")),
        qty=Coalesce(NullIf(F("trade__filled_qty"), Value(0)), F("trade__qty")),
        **{f"{name}_f": Cast(name, FloatField()) for name in GREEK_INPUTS},
    ).order_by("trade_id", "timestamp", "kind").values_list(
        "trade_id", "at_us", "mark4", "qty", *(f"{name}_f" for name in GREEK_INPUTS))
    frame = pd.DataFrame.from_records(_fetch(rows), columns=["trade_id", "at", "mark4", "qty", *GREEK_INPUTS],
                                      coerce_float=True)
    frame = frame.astype({"trade_id": "int64", "mark4": "int64", "qty": "int64",
                          **{name: "float64" for name in GREEK_INPUTS}})
    frame["at"] = _instants(frame["at"])
    return frame


def trade_attribution(*, trade: PaperTrade) -> attribution.Attribution:
    """Where one trade's P&L came from (see `analytics.attribution`): realized once closed,
    unrealized while held, nothing before the entry filled."""
    if trade.status == TradeStatus.CLOSED:
        pnl = trade.realized_pnl
    else:
        held = trade.entry_date and trade.status in (TradeStatus.OPEN, TradeStatus.CLOSING)
        if held and trade.unrealized_pnl is None:
            return attribution.Attribution(available=False, note=attribution.NOT_MARKED)
        pnl = trade.unrealized_pnl if held else None
    steps = attribution.attribute(greeks_paths(PaperTrade.objects.filter(pk=trade.pk, owner_id=trade.owner_id)))
    row = steps.loc[trade.pk] if trade.pk in steps.index else None
    return attribution.trade_attribution(row, pnl_cents=None if pnl is None else int(pnl * 100))


ATTRIBUTION_GROUPS = ("option_type", "strategy")
ATTRIBUTION_PARTS = (*attribution.PARTS, "unattributed")
ATTRIBUTION_AMOUNTS = (*ATTRIBUTION_PARTS, "execution", "pnl")
OPTION_WORDS = {"CALL": "calls", "PUT": "puts"}


def greeks_attribution(trades: QuerySet[PaperTrade], frame: pd.DataFrame | None = None) -> dict:
    """The greeks attribution summed over closed trades: in total, by option type and by strategy,
    with one sentence a page can show ("Time decay (theta): your calls lost $84.10."). Trades whose
    snapshots explain nothing are counted apart (`trades_without_attribution`), never summed as
    zeros. The nightly forensics store each trade's split; only trades it has not reached yet
    (closed since) are attributed here from their snapshots. One query, two with such trades; one
    fewer given `frame`, the trades' `trade_frame(attribution=True)` (the same trades)."""
    frame = _stored_attribution(trades) if frame is None else _attribution_frame(
        frame[["id", "option_type", "strategy", "pnl_gross", *ATTRIBUTION_COLUMNS[1:]]].rename(
            columns={"pnl_gross": "pnl"}))
    fresh = frame.index[frame["stored"] == 0]
    if len(fresh):
        live = attribution.attribute(greeks_paths(trades.filter(id__in=fresh.tolist()))).reindex(fresh)
        explained = live["steps"].fillna(0).to_numpy() > live["steps_without_greeks"].fillna(0).to_numpy()
        live = live.fillna(0).astype("int64")
        frame.loc[fresh, "explained"] = explained.astype("int64")
        frame.loc[fresh, list(ATTRIBUTION_PARTS)] = live[list(ATTRIBUTION_PARTS)].to_numpy()
        frame.loc[fresh, "execution"] = frame.loc[fresh, "pnl"].to_numpy() - live["change"].to_numpy()
    counted = frame[frame["explained"] == 1]

    def sums(part: pd.DataFrame) -> dict:
        return {"trades": len(part), **{name: metrics.money(part[name].sum()) for name in ATTRIBUTION_AMOUNTS}}

    by = {key: [{key: label, **sums(part)} for label, part in counted.groupby(key, sort=True)]
          for key in ATTRIBUTION_GROUPS}
    return {
        "method": attribution.METHOD,
        "theta_days": attribution.THETA_DAYS,
        "trades": len(frame),
        "trades_without_attribution": int(len(frame) - len(counted)),
        "total": sums(counted),
        "by_option_type": by["option_type"],
        "by_strategy": by["strategy"],
        "sentence": theta_sentence(by["option_type"]),
    }


ATTRIBUTION_STORED = (*ATTRIBUTION_PARTS, "execution")
# What trade_frame(attribution=True) adds: the option type, whether the nightly forensics reached
# the trade (`stored`) and found a split (`explained`), and the stored split in cents.
ATTRIBUTION_COLUMNS = ("option_type", "stored", "explained", *ATTRIBUTION_STORED)


def _attribution_annotations() -> dict:
    """ATTRIBUTION_COLUMNS[1:] as annotations, in that order (the split's named `<part>_cents`)."""
    return {
        "stored": Case(When(forensics__isnull=False, then=1), default=0),
        "explained": Case(When(forensics__greeks_delta__isnull=False, then=1), default=0),
        **{f"{name}_cents": _cents(F(f"forensics__greeks_{name}")) for name in ATTRIBUTION_STORED},
    }


def _stored_attribution(trades: QuerySet[PaperTrade]) -> pd.DataFrame:
    """One row per trade (indexed by id): option type, strategy, P&L and the stored split in cents,
    `stored` (the nightly forensics reached it) and `explained` (its split is not empty)."""
    annotations = _attribution_annotations()
    rows = trades.annotate(pnl_cents=_cents(F("realized_pnl")), **annotations).values_list(
        "id", "option_type", "strategy", "pnl_cents", *annotations)
    return _attribution_frame(pd.DataFrame.from_records(
        _fetch(rows), columns=["id", "option_type", "strategy", "pnl", *ATTRIBUTION_COLUMNS[1:]]))


def _attribution_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The attribution rows (id, option_type, strategy, pnl, ATTRIBUTION_COLUMNS[1:]) indexed by id,
    amounts as int64 cents (a split not stored: 0), a trade without strategy labelled so."""
    frame = frame.set_index("id")
    frame = frame.fillna(dict.fromkeys(ATTRIBUTION_STORED, 0)).astype(
        dict.fromkeys(["pnl", *ATTRIBUTION_COLUMNS[1:]], "int64"))
    frame["strategy"] = frame["strategy"].replace("", "No strategy")
    return frame


def theta_sentence(by_option_type: list[dict]) -> str:
    """What time decay did to each option type, in one sentence ("" with nothing attributed)."""
    parts = []
    for row in by_option_type:
        theta = Decimal(row["theta"])
        words = OPTION_WORDS.get(row["option_type"], row["option_type"].lower())
        parts.append(f"your {words} {'lost' if theta < 0 else 'gained'} ${abs(theta):,.2f}")
    return f"Time decay (theta): {' and '.join(parts)}." if parts else ""


def trade_explanation(trade: PaperTrade) -> dict:
    """What analytics knows about one trade, for its detail (registered with trades in
    `AnalyticsConfig.ready`): the greeks attribution, the forensic targets, and the entry context
    in words. Read under the caller's tenant context, like the trade itself. Three queries."""
    row = TradeForensics.objects.filter(owner_id=trade.owner_id, trade_id=trade.pk).first()
    return {
        "attribution": trade_attribution(trade=trade).as_json(),
        "forensics": explain.forensics(row, entry_at=trade.entry_date),
        "entry_context": explain.entry_context(trade.signals_snapshot, trade.market_regime),
    }
