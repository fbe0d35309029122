"""The learning data set as a Parquet file: the same columns as the CSV, each with a real type.

Decimals stay exact: each is a `decimal128` with the scale the database keeps (prices 4 places,
dollars 2, greeks 6, scores 3), so nothing is rounded through a float on the way to a notebook
(pandas reads them as `Decimal` objects; `.astype(float)` is the reader's own choice). Instants
are `timestamp[us, tz=UTC]`, the expiry a `date32`, counts `int64`, `win` a boolean. The values
taken from context JSON keep the CSV's form, PostgreSQL's text of the JSON value, as `string`:
their JSON types vary from one scanner to the next, and a string column never refuses a row.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from .selectors import CONTEXT_COLUMNS, DATASET_COLUMNS

MEDIA_TYPE = "application/vnd.apache.parquet"

PRICE, MONEY, PCT, GREEK, SCORE = (pa.decimal128(18, 4), pa.decimal128(18, 2), pa.decimal128(18, 4),
                                   pa.decimal128(18, 6), pa.decimal128(18, 3))
INSTANT = pa.timestamp("us", tz="UTC")

TYPES: dict[str, pa.DataType] = {
    "trade_id": pa.int64(), "ticker": pa.string(), "option_type": pa.string(), "strike": pa.decimal128(18, 3),
    "expiry": pa.date32(), "dte_at_entry": pa.int64(), "entry_date": INSTANT, "entry_hour_ny": pa.int64(),
    "entry_weekday": pa.int64(), "qty": pa.int64(), "entry_type": pa.string(), "entry_price": PRICE,
    "sl_price": PRICE, "tp_price": PRICE, "sl_distance_pct": PCT, "tp_distance_pct": PCT, "planned_risk": MONEY,
    "strategy": pa.string(), "card_score": SCORE, "ai_score": SCORE, "technical_score": SCORE,
    "sentiment_score": SCORE, "ai_verdict": pa.string(), "gate_verdict": pa.string(), "delta_at_entry": GREEK,
    "iv_at_entry": GREEK, "broker_mode": pa.string(),
    **dict.fromkeys(CONTEXT_COLUMNS, pa.string()),
    "close_date": INSTANT, "close_reason": pa.string(), "close_price": PRICE, "realized_pnl": MONEY,
    "realized_pnl_pct": PCT, "r_multiple": PCT, "win": pa.bool_(), "realized_pnl_gross": MONEY,
    "realized_pnl_net": MONEY, "commission_total": MONEY, "fees": MONEY, "win_net": pa.bool_(),
    "hold_duration_h": pa.decimal128(18, 2),
    "max_gain": MONEY, "max_drawdown": MONEY, "target_pnl_15m": MONEY, "target_pnl_1h": MONEY,
    "target_mfe_pct": PCT, "target_mae_pct": PCT, "mfe_minutes": pa.float64(), "mae_minutes": pa.float64(),
    "first_touch": pa.string(), "forensics_snapshots": pa.int64(), "forensics_bars": pa.int64(),
    "forensics_bar_fallback": pa.string(),
    "strategy_type": pa.string(), "net_direction": pa.string(), "strategy_label": pa.string(),
    "leg_count": pa.int64(), "legs": pa.string(), "width": pa.decimal128(18, 3), "net_entry": PRICE,
    "max_profit": MONEY, "max_loss": MONEY, "breakevens": pa.list_(PRICE), "return_on_max_loss_pct": PCT,
}
SCHEMA = pa.schema([pa.field(name, TYPES[name]) for name in DATASET_COLUMNS])


def _exact(values: list, kind: pa.DataType) -> list:
    # Computed columns (rounded in SQL) may carry fewer places than the type: quantize, never round.
    step = Decimal(1).scaleb(-kind.scale)
    return [None if value is None else Decimal(value).quantize(step) for value in values]


def _column(values: list, kind: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(kind):
        values = _exact(values, kind)
    elif pa.types.is_list(kind) and pa.types.is_decimal(kind.value_type):  # breakevens
        values = [None if value is None else _exact(list(value), kind.value_type) for value in values]
    return pa.array(values, type=kind)


def dataset_parquet(rows: Iterable[dict]) -> bytes:
    """The rows of `selectors.dataset_rows` as one Parquet file (zstd-compressed), in memory."""
    rows = list(rows)
    table = pa.Table.from_arrays(
        [_column([row[name] for row in rows], SCHEMA.field(name).type) for name in DATASET_COLUMNS], schema=SCHEMA,
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()
