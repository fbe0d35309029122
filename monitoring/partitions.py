"""The price history's monthly partitions: made ahead of time, and old ones archived then dropped.

The table is partitioned by UTC month (migration 0007). A month's rows need its partition to
exist before the month starts, or they land in the default partition (nothing is refused, but
that partition only grows); `snapshot_partitions_prepare` makes this month's and the next few.
Retention is whole months: a partition older than the kept months is written to a Parquet file
first, the file is read back and its row count checked, and only then is the partition detached
and dropped, by a database function that refuses if the partition holds another number of rows
than the file (a row written meanwhile keeps the partition, and the job tries again next time).

Both run as the worker in the system context: the partition functions belong to the schema owner
(only a table's owner may change its partitions) and only the system group may call them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.db import connection

from tradeoptions import tenancy

logger = logging.getLogger(__name__)

TABLE = "monitoring_pricesnapshot"
_MONTH_NAME = re.compile(rf"^{TABLE}_y(\d{{4}})m(\d{{2}})$")
PRICE, GREEK = pa.decimal128(12, 4), pa.decimal128(12, 6)
INSTANT = pa.timestamp("us", tz="UTC")
# The archive keeps every column with the database's own type and scale (nothing through a float).
ARCHIVE_SCHEMA = pa.schema([
    ("id", pa.int64()), ("timestamp", INSTANT), ("kind", pa.string()), ("mark_price", PRICE), ("bid", PRICE),
    ("ask", PRICE), ("delta", GREEK), ("gamma", GREEK), ("theta", GREEK), ("vega", GREEK), ("iv", GREEK),
    ("underlying", PRICE), ("source", pa.string()), ("quote_time", INSTANT), ("owner_id", pa.int64()),
    ("trade_id", pa.int64()), ("delayed", pa.bool_()),
])
BATCH_ROWS = 50_000


@dataclass(frozen=True)
class ArchivedMonth:
    month: date
    rows: int
    path: Path


def _month_of(at: datetime) -> date:
    moment = at.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def _months_after(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_y{month:%Y}m{month:%m}"


def partition_months() -> list[date]:
    """The months that have a partition, oldest first (the default partition is no month)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [TABLE])
        names = [row[0] for row in cursor.fetchall()]
    return sorted(date(int(m[1]), int(m[2]), 1) for m in map(_MONTH_NAME.match, names) if m)


def snapshot_partitions_prepare(*, at: datetime, ahead: int) -> list[str]:
    """Make the partitions of `at`'s month and the `ahead` months after it, where missing.
    Idempotent; returns the partitions made now."""
    made = []
    with tenancy.system_context(), connection.cursor() as cursor:
        for offset in range(max(ahead, 0) + 1):
            cursor.execute("SELECT snapshot_partition_create(%s)", [_months_after(_month_of(at), offset)])
            name = cursor.fetchone()[0]
            if name:
                made.append(name)
    if made:
        logger.info("snapshot partitions made: %s", ", ".join(made))
    return made


def snapshot_partitions_retire(*, at: datetime, keep_months: int, archive_dir: Path) -> list[ArchivedMonth]:
    """Archive, then drop, every month's partition older than `at`'s month and the `keep_months`
    before it. `keep_months` 0 keeps everything. Each month in its own transaction: one that
    fails (a row written meanwhile, a full disk) stays, and the others go on."""
    if keep_months <= 0:
        return []
    oldest_kept = _months_after(_month_of(at), -keep_months)
    retired = []
    for month in partition_months():
        if month >= oldest_kept:
            break
        try:
            retired.append(_retire(month, Path(archive_dir)))
        except Exception:
            logger.exception("snapshot partition %s kept: archiving or dropping it failed", partition_name(month))
    return retired


def _retire(month: date, archive_dir: Path) -> ArchivedMonth:
    path = _free_archive_path(archive_dir, month)
    with tenancy.system_context():
        rows = _write_archive(month, path)
        if pq.read_metadata(path).num_rows != rows:  # read back from disk before anything is dropped
            raise RuntimeError(f"{path} does not hold the {rows} rows written")
        with connection.cursor() as cursor:
            cursor.execute("SELECT snapshot_partition_drop(%s, %s)", [month, rows])
    logger.info("snapshot partition %s archived to %s (%s rows) and dropped", partition_name(month), path, rows)
    return ArchivedMonth(month=month, rows=rows, path=path)


def _free_archive_path(archive_dir: Path, month: date) -> Path:
    """Never overwrite an archive: a month archived before (then written to again, by a backfill)
    gets a second file beside the first."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    path, copy = archive_dir / f"{partition_name(month)}.parquet", 1
    while path.exists():
        copy += 1
        path = archive_dir / f"{partition_name(month)}.{copy}.parquet"
    return path


def _write_archive(month: date, path: Path) -> int:
    """The month's rows, read through the parent (pruned to the one partition) with a server-side
    cursor in batches, into a Parquet file written beside the target and renamed when complete."""
    partial = path.with_name(path.name + ".partial")
    columns = ", ".join(f'"{name}"' for name in ARCHIVE_SCHEMA.names)
    first, after = [datetime(m.year, m.month, 1, tzinfo=UTC) for m in (month, _months_after(month, 1))]
    rows = 0
    try:
        with pq.ParquetWriter(partial, ARCHIVE_SCHEMA, compression="zstd") as writer, \
                connection.chunked_cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {TABLE} WHERE timestamp >= %s AND timestamp < %s ORDER BY id",
                           [first, after])
            while batch := cursor.fetchmany(BATCH_ROWS):
                columns = zip(*batch, strict=True)
                writer.write_table(pa.Table.from_arrays(
                    [pa.array(values, type=kind) for values, kind in zip(columns, ARCHIVE_SCHEMA.types, strict=True)],
                    schema=ARCHIVE_SCHEMA))
                rows += len(batch)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return rows
