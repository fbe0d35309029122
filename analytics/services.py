"""Writes of the analytics app: the forensic targets of closed trades.

`trade_targets_compute` reads each trade's recorded path (entry fill, every snapshot between entry
and close, close fill; see `selectors.price_paths`) and derives, vectorised over all trades at once:

- `target_pnl_15m` / `target_pnl_1h`: P&L in dollars of the held contracts at the last recorded
  price at or before entry + 15 minutes / + 1 hour. A trade closed before that moment has its
  realized P&L there (its close fill is on the path).
- `target_mfe_pct` / `target_mae_pct`: the best and worst price on the path as % of the entry
  price (the entry is on the path, so MFE ≥ 0 ≥ MAE), with the time each was first reached.
- `first_touch`: whether the path reached the take-profit (price ≥ TP) or the stop-loss (price ≤
  SL) first after the entry, or neither, and when.

All on the held price (trades/net_price.py): a credit trade's path is what buying it back costs, so
its P&L, its best and worst moments and its touches are read the other way round (TP at or below,
SL at or above). A multi-leg trade's path is its net: no contract's minute bars fill it.

The four targets go to the trade's own fields; the rest to `TradeForensics`, with the greeks
attribution of the realized P&L (`analytics.attribution`), so that Performance sums stored figures
instead of re-reading every snapshot of every trade. Running it again
gives the same rows (an upsert and an update of the same values): idempotent.

**Thin paths and minute bars.** The monitor snapshots every cycle (~40 s), but a worker outage, a
restart or a trade opened outside the monitor leaves holes. A trade's path is *thin* when, between
its entry and the first of entry + 1 hour, its close and the close of the entry's session, some
stretch longer than 5 minutes (`THIN_GAP`) has no recorded price; that window is where the
15-minute and 1-hour targets are read. For a thin trade the market-data provider is asked once for
one-minute bars of the contract from entry to close, and every bar that lies wholly inside the
holding period joins the path: its close (as a price at the bar's end, usable for the P&L
targets) and its high and low (for MFE/MAE and first touch, also stamped at the bar's end: the
moment they are known to have happened). When one bar reaches both the stop and the target, the
order inside the minute is unknown and the stop is counted first (the conservative reading).
A provider without option bars (`UnsupportedRequest`: ORATS, replay) leaves the path as recorded
and says so in `TradeForensics.bar_fallback`, as do an empty answer and a provider failure.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from monitoring import clock as market_clock
from monitoring.marketdata import Interval, MarketDataError, MarketDataProvider, UnsupportedRequest, provider_for
from tradeoptions import tenancy
from trades.models import PaperTrade
from trades.services import TradeTargets, targets_record

from . import attribution, selectors
from .models import BarFallback, FirstTouch, TradeForensics

logger = logging.getLogger(__name__)

OFFSETS = {"pnl_15m": timedelta(minutes=15), "pnl_1h": timedelta(hours=1)}
CHUNK = 2000  # trades per batch: bounds memory on long backfills
THIN_HORIZON = OFFSETS["pnl_1h"]  # the stretch after the entry where the time targets are read
THIN_GAP = timedelta(minutes=5)  # ~7 missed monitor cycles in a row
BAR_CLOSE, BAR_EXTREME = 1, 2  # the `bar` column of a path: 0 for recorded points


def _decimal(value, places: str) -> Decimal | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return Decimal(str(value)).quantize(Decimal(places))


def targets_frame(trades: pd.DataFrame, path: pd.DataFrame) -> pd.DataFrame:
    """The forensic values per trade (indexed by trade id), from `selectors.path_trades` and
    `selectors.price_paths` frames (joined by `with_bars` where bars were fetched). Pure and
    vectorised: the unit tests' hand-computed paths go straight in here."""
    info = trades.set_index("id")
    if "sign" not in info:  # a frame built by hand: every trade long its price
        info = info.assign(sign=1)
    if "bar" not in path:
        path = path.assign(bar=0)
    # On the held price (trades/net_price.py): a credit trade's mark is what buying back costs, so it gains,
    # reaches its target and finds its best moment as the mark falls. `sign` turns every comparison round.
    entry = info["entry4"].reindex(path["trade_id"]).to_numpy(dtype=np.int64)
    sign = info["sign"].reindex(path["trade_id"]).to_numpy(dtype=np.int64)
    path = path.assign(excursion=sign * (path["mark4"].to_numpy() - entry) * 100 / entry)
    out = pd.DataFrame(index=info.index)

    prices = path[path["bar"] != BAR_EXTREME].sort_values("timestamp")  # a bar's high/low is no price to exit at
    for name, offset in OFFSETS.items():
        moments = pd.DataFrame({"trade_id": info.index, "timestamp": info["entry_date"] + offset})
        found = pd.merge_asof(moments.sort_values("timestamp"), prices, on="timestamp",
                              by="trade_id", direction="backward").set_index("trade_id")["mark4"]
        # ten-thousandths of a dollar per share × 100 shares a contract = cents per contract
        cents = (found.reindex(info.index) - info["entry4"]) * info["qty_held"] * info["sign"]
        out[name] = cents / 100

    grouped = path.groupby("trade_id")["excursion"]
    best, worst = grouped.idxmax(), grouped.idxmin()  # first row of the extreme: paths are in time order
    out["mfe_pct"] = path.loc[best.to_numpy(), "excursion"].to_numpy()
    out["mfe_at"] = path.loc[best.to_numpy(), "timestamp"].to_numpy()
    out["mae_pct"] = path.loc[worst.to_numpy(), "excursion"].to_numpy()
    out["mae_at"] = path.loc[worst.to_numpy(), "timestamp"].to_numpy()

    after_entry = path[path["point"] > 0]
    held_sign = info["sign"].reindex(after_entry["trade_id"]).to_numpy()
    tp = info["tp4"].reindex(after_entry["trade_id"]).to_numpy() * held_sign
    sl = info["sl4"].reindex(after_entry["trade_id"]).to_numpy() * held_sign
    marks = after_entry["mark4"].to_numpy() * held_sign
    tp_at = after_entry[marks >= tp].groupby("trade_id")["timestamp"].min().reindex(info.index)
    sl_at = after_entry[marks <= sl].groupby("trade_id")["timestamp"].min().reindex(info.index)
    # A tie can only come from one bar reaching both: the stop is counted first.
    sl_first = sl_at.notna() & (tp_at.isna() | (sl_at <= tp_at))
    tp_first = tp_at.notna() & ~sl_first
    out["first_touch"] = np.select([tp_first, sl_first], [FirstTouch.TP, FirstTouch.SL], FirstTouch.NEITHER)
    out["first_touch_at"] = tp_at.where(tp_first, sl_at.where(sl_first))
    recorded = (path["point"] == 1) & (path["bar"] == 0)
    out["snapshots"] = path[recorded].groupby("trade_id").size().reindex(info.index, fill_value=0)
    out["bars"] = path[path["bar"] == BAR_CLOSE].groupby("trade_id").size().reindex(info.index, fill_value=0)
    out["owner_id"] = info["owner_id"]
    return out


def horizon_ends(trades: pd.DataFrame) -> pd.Series:
    """Per trade (by id), the end of the window `thin_trades` looks at: the first of entry + 1 hour,
    the close, and the close of the session the entry was in (after it, there are no prices)."""
    session_closes = {at: _session_close(at) for at in trades["entry_date"].unique()}
    session_close = pd.to_datetime(trades["entry_date"].map(session_closes), utc=True)
    ends = pd.concat([trades["entry_date"] + THIN_HORIZON, trades["close_date"], session_close], axis=1).min(axis=1)
    return pd.Series(ends.to_numpy(), index=trades["id"].to_numpy())


def _session_close(entry) -> datetime | None:
    try:
        return market_clock.next_close(pd.Timestamp(entry).to_pydatetime())
    except market_clock.OutsideCalendar:
        return None


def thin_trades(trades: pd.DataFrame, path: pd.DataFrame, ends: pd.Series) -> pd.Index:
    """Ids of the trades whose recorded path has a hole longer than THIN_GAP between the entry and
    `ends` (the window's end counts as a point, so a path that stops early is thin too)."""
    info = trades.set_index("id")
    start = info["entry_date"]
    end = ends.reindex(info.index).where(lambda stamp: stamp > start, start)
    lower = start.reindex(path["trade_id"]).to_numpy()
    upper = end.reindex(path["trade_id"]).to_numpy()
    inside = path.loc[(path["timestamp"].to_numpy() >= lower) & (path["timestamp"].to_numpy() <= upper),
                      ["trade_id", "timestamp"]]
    bounds = [pd.DataFrame({"trade_id": info.index, "timestamp": stamps.to_numpy()}) for stamps in (start, end)]
    points = pd.concat([inside, *bounds], ignore_index=True).sort_values(["trade_id", "timestamp"], ignore_index=True)
    widest = points.groupby("trade_id")["timestamp"].diff().groupby(points["trade_id"]).max()
    return widest.index[(widest > THIN_GAP).to_numpy()]


def minute_bars(trades: pd.DataFrame, thin: pd.Index,
                provider: MarketDataProvider) -> tuple[pd.DataFrame, dict[int, str]]:
    """The provider's one-minute bars of each thin trade's contract, as path rows (a close row and
    a high and a low row per bar, at the bar's end), and what became of each thin trade's request.
    One request per thin trade; after an UnsupportedRequest the provider is not asked again."""
    rows: list[tuple] = []
    outcome: dict[int, str] = {}
    supported = True
    for trade in trades[trades["id"].isin(thin)].itertuples(index=False):  # one provider call per thin trade
        if not getattr(trade, "single", 1):  # a spread's path is its net: no one contract's bars describe it
            outcome[trade.id] = BarFallback.UNSUPPORTED
            continue
        if not supported:
            outcome[trade.id] = BarFallback.UNSUPPORTED
            continue
        entry, close = trade.entry_date.to_pydatetime(), trade.close_date.to_pydatetime()
        try:
            bars = provider.bars(trade.option_symbol, Interval.MINUTE, entry, close)
        except UnsupportedRequest:
            supported = False
            outcome[trade.id] = BarFallback.UNSUPPORTED
            continue
        except MarketDataError as error:
            logger.warning("forensics: no minute bars for trade %s: %s", trade.id, error)
            outcome[trade.id] = BarFallback.FAILED
            continue
        inside = [bar for bar in bars if bar.start >= entry and bar.quote_time <= close]
        outcome[trade.id] = BarFallback.USED if inside else BarFallback.NO_BARS
        for bar in inside:  # output rows
            rows += [(trade.id, bar.quote_time, _ten_thousandths(bar.close), BAR_CLOSE),
                     (trade.id, bar.quote_time, _ten_thousandths(bar.high), BAR_EXTREME),
                     (trade.id, bar.quote_time, _ten_thousandths(bar.low), BAR_EXTREME)]
    frame = pd.DataFrame.from_records(rows, columns=["trade_id", "timestamp", "mark4", "bar"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return frame.astype({"trade_id": "int64", "mark4": "int64", "bar": "int64"}).assign(point=1), outcome


def _ten_thousandths(value: Decimal) -> int:
    return int((value * 10000).to_integral_value())


def with_bars(path: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    """The recorded path with the bars' rows, in time order per trade."""
    parts = [part for part in (path.assign(bar=0), bars) if len(part)]
    if not parts:
        return path.assign(bar=0)
    joined = pd.concat(parts, ignore_index=True).astype({"trade_id": "int64", "mark4": "int64", "point": "int64",
                                                          "bar": "int64"})
    return joined.sort_values(["trade_id", "timestamp", "point"], kind="stable", ignore_index=True)


GREEK_FIELDS = {f"greeks_{name}": name for name in (*attribution.PARTS, "unattributed", "execution")}


def greeks_fields(trades: pd.DataFrame, steps: pd.DataFrame) -> dict[int, dict]:
    """Per trade id, the `TradeForensics` greeks fields from `attribution.attribute`'s rows and
    the trades' realized P&L (`pnl`, cents)."""
    fields = {}
    for trade_id, pnl in zip(trades["id"].tolist(), trades["pnl"].tolist(), strict=True):  # output rows
        split = attribution.trade_attribution(steps.loc[trade_id] if trade_id in steps.index else None,
                                              pnl_cents=pnl)
        fields[trade_id] = {**{field: getattr(split, name) for field, name in GREEK_FIELDS.items()},
                            "greeks_steps": split.steps, "greeks_steps_missing": split.steps_without_greeks}
    return fields


def _records(values: pd.DataFrame, outcome: dict[int, str], now, greeks: dict[int, dict]) -> list[TradeForensics]:
    forensics = []
    for trade_id, row in zip(values.index.tolist(), values.to_dict("records"), strict=True):  # output rows
        pnl_15m, pnl_1h = _decimal(row["pnl_15m"], "0.01"), _decimal(row["pnl_1h"], "0.01")
        mfe, mae = _decimal(round(row["mfe_pct"], 4), "0.0001"), _decimal(round(row["mae_pct"], 4), "0.0001")
        first_at = row["first_touch_at"]
        forensics.append(TradeForensics(
            trade_id=trade_id, owner_id=row["owner_id"], pnl_15m=pnl_15m, pnl_1h=pnl_1h, mfe_pct=mfe, mae_pct=mae,
            mfe_at=row["mfe_at"].to_pydatetime(), mae_at=row["mae_at"].to_pydatetime(),
            first_touch=row["first_touch"], first_touch_at=None if pd.isna(first_at) else first_at.to_pydatetime(),
            snapshot_count=int(row["snapshots"]), bar_count=int(row["bars"]),
            bar_fallback=outcome.get(trade_id, BarFallback.NOT_NEEDED), computed_at=now, **greeks[trade_id],
        ))
    return forensics


def trade_targets_compute(*, closed_from: date, closed_to: date, owner_id: int | None = None,
                          provider: MarketDataProvider | None = None, progress=None) -> int:
    """Compute and store the forensic targets of every trade closed on New York dates
    `closed_from`..`closed_to` (of one owner if given). Returns how many trades were done.
    Thin paths are filled with `provider`'s minute bars (default: MARKET_DATA_SOURCE's).

    `progress` (optional) wraps the batches, as an ops command's progress bar does.
    Runs in the system context: it is the nightly job (and an ops backfill) over every tenant's
    closed trades, never reachable from a user's request. Each row is written with its own
    owner_id, which the table's policies keep as it is.
    """
    done = 0
    with tenancy.system_context():
        trades = PaperTrade.objects.closed().filter(
            close_date__gte=selectors._ny_midnight(closed_from),
            close_date__lt=selectors._ny_midnight(closed_to + timedelta(days=1)),
            entry_price__gt=0, entry_date__isnull=False,
        )
        if owner_id is not None:
            trades = trades.filter(owner_id=owner_id)
        ids = list(trades.order_by("id").values_list("id", flat=True))
    provider = provider or (provider_for() if ids else None)
    starts = range(0, len(ids), CHUNK)
    for start in (progress or (lambda items, **_: items))(starts, total=len(starts), desc="chunks"):
        done += _compute_chunk(ids[start : start + CHUNK], provider)
    return done


def _compute_chunk(ids: list[int], provider: MarketDataProvider) -> int:
    with tenancy.system_context():
        chunk = PaperTrade.objects.filter(id__in=ids)
        frame = selectors.path_trades(chunk)
        path = selectors.price_paths(chunk, frame)
        steps = attribution.attribute(selectors.greeks_paths(chunk))
    # The provider is asked outside any transaction: no row stays locked while it answers.
    bars, outcome = minute_bars(frame, thin_trades(frame, path, horizon_ends(frame)), provider)
    values = targets_frame(frame, with_bars(path, bars))
    forensics = _records(values, outcome, timezone.now(), greeks_fields(frame, steps))
    with tenancy.system_context(), transaction.atomic():
        TradeForensics.objects.bulk_create(
            forensics, update_conflicts=True, unique_fields=["trade"], batch_size=1000,
            update_fields=["pnl_15m", "pnl_1h", "mfe_pct", "mae_pct", "mfe_at", "mae_at", "first_touch",
                           "first_touch_at", "snapshot_count", "bar_count", "bar_fallback", "computed_at",
                           *GREEK_FIELDS, "greeks_steps", "greeks_steps_missing"],
        )
        # The trade's own target fields get the same figures, written by trades (which owns the row)
        # in one UPDATE, in the same transaction as the forensics.
        targets_record(targets=[TradeTargets(trade_id=row.trade_id, pnl_15m=row.pnl_15m, pnl_1h=row.pnl_1h,
                                             mfe_pct=row.mfe_pct, mae_pct=row.mae_pct) for row in forensics])
    return len(forensics)
