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

The four targets go to the trade's own fields; the rest to `TradeForensics`. Running it again
gives the same rows (an upsert and an update of the same values): idempotent.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from tradeoptions import tenancy
from trades.models import PaperTrade

from . import selectors
from .models import FirstTouch, TradeForensics

OFFSETS = {"pnl_15m": timedelta(minutes=15), "pnl_1h": timedelta(hours=1)}
CHUNK = 2000  # trades per batch: bounds memory on long backfills


def _decimal(value, places: str) -> Decimal | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return Decimal(str(value)).quantize(Decimal(places))


def targets_frame(trades: pd.DataFrame, path: pd.DataFrame) -> pd.DataFrame:
    """The forensic values per trade (indexed by trade id), from `selectors.path_trades` and
    `selectors.price_paths` frames. Pure and vectorised: the unit tests' hand-computed paths go
    straight in here."""
    info = trades.set_index("id")
    entry = info["entry4"].reindex(path["trade_id"]).to_numpy(dtype=np.int64)
    path = path.assign(excursion=(path["mark4"].to_numpy() - entry) * 100 / entry)
    out = pd.DataFrame(index=info.index)

    for name, offset in OFFSETS.items():
        moments = pd.DataFrame({"trade_id": info.index, "timestamp": info["entry_date"] + offset})
        found = pd.merge_asof(moments.sort_values("timestamp"), path.sort_values("timestamp"), on="timestamp",
                              by="trade_id", direction="backward").set_index("trade_id")["mark4"]
        # ten-thousandths of a dollar per share × 100 shares a contract = cents per contract
        cents = (found.reindex(info.index) - info["entry4"]) * info["qty_held"]
        out[name] = cents / 100

    grouped = path.groupby("trade_id")["excursion"]
    best, worst = grouped.idxmax(), grouped.idxmin()  # first row of the extreme: paths are in time order
    out["mfe_pct"] = path.loc[best.to_numpy(), "excursion"].to_numpy()
    out["mfe_at"] = path.loc[best.to_numpy(), "timestamp"].to_numpy()
    out["mae_pct"] = path.loc[worst.to_numpy(), "excursion"].to_numpy()
    out["mae_at"] = path.loc[worst.to_numpy(), "timestamp"].to_numpy()

    after_entry = path[path["point"] > 0]
    tp = info["tp4"].reindex(after_entry["trade_id"]).to_numpy()
    sl = info["sl4"].reindex(after_entry["trade_id"]).to_numpy()
    marks = after_entry["mark4"].to_numpy()
    tp_at = after_entry[marks >= tp].groupby("trade_id")["timestamp"].min().reindex(info.index)
    sl_at = after_entry[marks <= sl].groupby("trade_id")["timestamp"].min().reindex(info.index)
    tp_first = tp_at.notna() & (sl_at.isna() | (tp_at < sl_at))
    sl_first = sl_at.notna() & (tp_at.isna() | (sl_at < tp_at))
    out["first_touch"] = np.select([tp_first, sl_first], [FirstTouch.TP, FirstTouch.SL], FirstTouch.NEITHER)
    out["first_touch_at"] = tp_at.where(tp_first, sl_at.where(sl_first))
    out["snapshots"] = path[path["point"] == 1].groupby("trade_id").size().reindex(info.index, fill_value=0)
    out["owner_id"] = info["owner_id"]
    return out


def _records(values: pd.DataFrame, now) -> list[TradeForensics]:
    forensics = []
    for trade_id, row in zip(values.index.tolist(), values.to_dict("records"), strict=True):  # output rows
        pnl_15m, pnl_1h = _decimal(row["pnl_15m"], "0.01"), _decimal(row["pnl_1h"], "0.01")
        mfe, mae = _decimal(round(row["mfe_pct"], 4), "0.0001"), _decimal(round(row["mae_pct"], 4), "0.0001")
        first_at = row["first_touch_at"]
        forensics.append(TradeForensics(
            trade_id=trade_id, owner_id=row["owner_id"], pnl_15m=pnl_15m, pnl_1h=pnl_1h, mfe_pct=mfe, mae_pct=mae,
            mfe_at=row["mfe_at"].to_pydatetime(), mae_at=row["mae_at"].to_pydatetime(),
            first_touch=row["first_touch"], first_touch_at=None if pd.isna(first_at) else first_at.to_pydatetime(),
            snapshot_count=int(row["snapshots"]), computed_at=now,
        ))
    return forensics


def trade_targets_compute(*, closed_from: date, closed_to: date, owner_id: int | None = None,
                          progress=None) -> int:
    """Compute and store the forensic targets of every trade closed on New York dates
    `closed_from`..`closed_to` (of one owner if given). Returns how many trades were done.

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
    starts = range(0, len(ids), CHUNK)
    for start in (progress or (lambda items, **_: items))(starts, total=len(starts), desc="chunks"):
        done += _compute_chunk(ids[start : start + CHUNK])
    return done


def _compute_chunk(ids: list[int]) -> int:
    with tenancy.system_context(), transaction.atomic():
        chunk = PaperTrade.objects.filter(id__in=ids)
        frame = selectors.path_trades(chunk)
        values = targets_frame(frame, selectors.price_paths(chunk, frame))
        forensics = _records(values, timezone.now())
        TradeForensics.objects.bulk_create(
            forensics, update_conflicts=True, unique_fields=["trade"], batch_size=1000,
            update_fields=["pnl_15m", "pnl_1h", "mfe_pct", "mae_pct", "mfe_at", "mae_at", "first_touch",
                           "first_touch_at", "snapshot_count", "computed_at"],
        )
        # The trade's own target fields, copied from the rows just written in one UPDATE (bulk_update's
        # per-row CASE is quadratic in the batch).
        mine = TradeForensics.objects.filter(trade=OuterRef("pk"))
        chunk.update(**{f"target_{name}": Subquery(mine.values(name)[:1])
                        for name in ("pnl_15m", "pnl_1h", "mfe_pct", "mae_pct")})
    return len(forensics)
