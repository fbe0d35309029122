"""The price history's monthly partitions against the real database: made ahead idempotently,
rows waiting in the default partition moved into their month, and months past retention archived
to Parquet, read back and counted, then dropped, or kept when the count disagrees.

Months here are in the year 2000, before any partition the migration made (from the database's
own month on), so whatever today is, nothing else is made, archived or dropped by these tests.
"""

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from math import ceil

import psycopg
import pyarrow.parquet as pq
import pytest
import time_machine
from django.conf import settings
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from monitoring import partitions, tasks
from monitoring.models import PriceSnapshot, SnapshotKind
from tests.factories import ClosedTradeFactory, PaperTradeFactory, PriceSnapshotFactory
from tradeoptions import tenancy
from trades.selectors import SNAPSHOT_FIELDS, lifetime_snapshots, trade_snapshots, trade_snapshots_json
from trades.serializers import SnapshotSerializer, json_columns

JANUARY, FEBRUARY, MARCH, APRIL = (date(2000, month, 1) for month in (1, 2, 3, 4))


def _at(month: date, day: int = 10, hour: int = 15) -> datetime:
    return datetime(month.year, month.month, day, hour, tzinfo=UTC)


def _months() -> set[date]:
    return {month for month in partitions.partition_months() if month.year == 2000}


def _placed(*snapshots) -> dict[int, str]:
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT id, tableoid::regclass::text FROM monitoring_pricesnapshot WHERE id = ANY(%s)",
                       [[snapshot.pk for snapshot in snapshots]])
        return dict(cursor.fetchall())


def _settled() -> None:
    """Check the foreign keys of this test's rows now: they are deferred to the commit, and a table
    with checks pending cannot be altered (the job runs in a transaction of its own)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _snapshots(trade, month: date, count: int) -> list[PriceSnapshot]:
    return [PriceSnapshotFactory(trade=trade, timestamp=_at(month) + timedelta(minutes=5 * n),
                                 mark_price=Decimal("4.1250") + n, bid=None, delta=Decimal("0.431234"),
                                 quote_time=_at(month) - timedelta(seconds=n), delayed=n % 2 == 1)
            for n in range(count)]


def test_months_ahead_are_made_once(db):
    assert partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=2) == [
        "monitoring_pricesnapshot_y2000m01", "monitoring_pricesnapshot_y2000m02", "monitoring_pricesnapshot_y2000m03"]
    assert partitions.snapshot_partitions_prepare(at=_at(FEBRUARY), ahead=2) == ["monitoring_pricesnapshot_y2000m04"]
    assert partitions.snapshot_partitions_prepare(at=_at(FEBRUARY), ahead=2) == []
    assert _months() == {JANUARY, FEBRUARY, MARCH, APRIL}
    with connection.cursor() as cursor:  # the parent's policies, and no privilege of the runtime roles
        cursor.execute("SELECT relrowsecurity, relforcerowsecurity, relacl::text[], "
                       "(SELECT array_agg(polname ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid) "
                       "FROM pg_class c WHERE relname = 'monitoring_pricesnapshot_y2000m04'")
        enabled, forced, acl, policies = cursor.fetchone()
    assert enabled and forced and policies == ["system_context", "tenant_owner"]
    assert not any(role in entry for entry in acl or [] for role in ("tradeoptions_app", "tradeoptions_worker"))


def test_rows_waiting_in_the_default_partition_move_into_their_new_month(trader):
    trade = PaperTradeFactory(owner=trader)
    waiting = _snapshots(trade, MARCH, 3)
    assert set(_placed(*waiting).values()) == {"monitoring_pricesnapshot_default"}
    with tenancy.acting_as(trader.pk):
        before = list(PriceSnapshot.objects.filter(pk__in=[s.pk for s in waiting]).order_by("pk").values())
    partitions.snapshot_partitions_prepare(at=_at(FEBRUARY), ahead=1)
    assert set(_placed(*waiting).values()) == {"monitoring_pricesnapshot_y2000m03"}
    with tenancy.acting_as(trader.pk):
        assert list(PriceSnapshot.objects.filter(pk__in=[s.pk for s in waiting]).order_by("pk").values()) == before


def test_months_past_retention_are_archived_read_back_and_dropped(trader, other_trader, tmp_path):
    partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=2)
    january = _snapshots(PaperTradeFactory(owner=trader), JANUARY, 4) + _snapshots(
        PaperTradeFactory(owner=other_trader), JANUARY, 3)
    february = _snapshots(PaperTradeFactory(owner=trader), FEBRUARY, 2)
    _settled()
    assert partitions.snapshot_partitions_retire(at=_at(APRIL), keep_months=0, archive_dir=tmp_path) == []
    with tenancy.system_context():
        expected = list(PriceSnapshot.objects.filter(pk__in=[s.pk for s in january]).order_by("pk").values())

    # April, keeping two months before it: February and March stay, January goes.
    [archived] = partitions.snapshot_partitions_retire(at=_at(APRIL), keep_months=2, archive_dir=tmp_path)
    assert (archived.month, archived.rows) == (JANUARY, 7)
    assert archived.path == tmp_path / "monitoring_pricesnapshot_y2000m01.parquet"
    assert list(tmp_path.iterdir()) == [archived.path]  # no partial file left behind
    assert _months() == {FEBRUARY, MARCH}
    table = pq.read_table(archived.path)
    assert table.to_pylist() == expected
    assert str(table.schema.field("mark_price").type) == "decimal128(12, 4)"
    with tenancy.system_context():
        assert not PriceSnapshot.objects.filter(pk__in=[s.pk for s in january]).exists()
        assert PriceSnapshot.objects.filter(pk__in=[s.pk for s in february]).count() == 2

    # Again: nothing more to do. A month archived before and written to again gets a second file.
    assert partitions.snapshot_partitions_retire(at=_at(APRIL), keep_months=2, archive_dir=tmp_path) == []
    partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=0)
    _snapshots(PaperTradeFactory(owner=trader), JANUARY, 1)
    _settled()
    [again] = partitions.snapshot_partitions_retire(at=_at(APRIL), keep_months=2, archive_dir=tmp_path)
    assert again.path.name == "monitoring_pricesnapshot_y2000m01.2.parquet" and again.rows == 1
    assert pq.read_metadata(archived.path).num_rows == 7


def test_a_row_written_after_the_archive_keeps_the_month(trader, tmp_path, monkeypatch, caplog):
    partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=0)
    trade = PaperTradeFactory(owner=trader)
    _snapshots(trade, JANUARY, 2)
    _settled()
    write = partitions._write_archive

    def write_then_a_late_row(month, path):
        rows = write(month, path)
        with tenancy.acting_as(trader.pk):
            PriceSnapshot.objects.create(trade=trade, owner=trader, timestamp=_at(JANUARY, day=20),
                                         kind=SnapshotKind.FILL, mark_price=Decimal("1"), source="simulated")
        return rows

    monkeypatch.setattr(partitions, "_write_archive", write_then_a_late_row)
    assert partitions.snapshot_partitions_retire(at=_at(APRIL), keep_months=1, archive_dir=tmp_path) == []
    assert "holds 3 rows, 2 were archived: kept" in caplog.text
    assert _months() == {JANUARY}
    with tenancy.system_context():  # the late row rolled back with the refused drop; the two are there
        assert PriceSnapshot.objects.filter(trade=trade).count() == 2
    with pytest.raises(DatabaseError, match="holds 2 rows, 5 were archived"), tenancy.system_context(), \
            connection.cursor() as cursor:
        cursor.execute("SELECT snapshot_partition_drop(%s, %s)", [JANUARY, 5])
    assert _months() == {JANUARY}


def test_only_the_system_group_may_change_partitions(connect_as):
    web = connect_as(settings.DATABASE_APP_ROLE)
    for call in ("SELECT snapshot_partition_create('2000-05-01')", "SELECT snapshot_partition_drop('2000-05-01', 0)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            web.execute(call)
        web.rollback()


def test_the_beat_job_makes_months_ahead_and_retires_by_the_settings(trader, settings, tmp_path):
    settings.SNAPSHOT_PARTITIONS_AHEAD = 1
    settings.SNAPSHOT_ARCHIVE_DIR = tmp_path
    with time_machine.travel(_at(JANUARY), tick=False):
        outcome = tasks.maintain_snapshot_partitions.apply().get()
    assert "monitoring_pricesnapshot_y2000m02" in outcome and "archived and dropped: none" in outcome
    assert _months() == {JANUARY, FEBRUARY}
    _snapshots(PaperTradeFactory(owner=trader), JANUARY, 2)
    _settled()
    settings.SNAPSHOT_RETENTION_MONTHS = 1
    with time_machine.travel(_at(MARCH), tick=False):
        outcome = tasks.maintain_snapshot_partitions.apply().get()
    assert "monitoring_pricesnapshot_y2000m01.parquet" in outcome
    assert _months() == {FEBRUARY, MARCH, APRIL}
    settings.SCHEDULE_MAINTAIN_SNAPSHOT_PARTITIONS = False
    assert tasks.maintain_snapshot_partitions.apply().get() == "disabled"


def _plan_months(queryset) -> set[str]:
    """The partitions a query's plan reads."""
    return set(re.findall(r"monitoring_pricesnapshot_(y\d{4}m\d{2}|default)\b", queryset.explain()))


def _thinned(rows: list[dict], max_points: int) -> list[dict]:
    """The chart's thinning (every n-th row, and the last) applied to the whole, unbounded history."""
    if len(rows) <= max_points:
        return rows
    step = ceil(len(rows) / (max_points - 1))
    return [row for n, row in enumerate(rows) if n % step == 0 or n == len(rows) - 1]


def test_a_trades_chart_reads_only_the_months_it_lived_in_and_the_same_rows(trader):
    """Issue 20: the chart of a trade held from February into March reads two months' partitions,
    not every month kept, and returns exactly what the unbounded history gives."""
    partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=5)  # January to June 2000
    others = [PaperTradeFactory(owner=trader, entry_date=_at(JANUARY, day=2)) for _ in range(2)]
    for other in others:
        for month in (JANUARY, FEBRUARY, MARCH, APRIL, date(2000, 5, 1), date(2000, 6, 1)):
            _snapshots(other, month, 3)
    entered, closed = _at(FEBRUARY, day=20), _at(MARCH, day=10)
    trade = ClosedTradeFactory(owner=trader, entry_date=entered, close_date=closed)
    slot = entered
    while slot <= closed:  # one mark every six hours while held
        PriceSnapshotFactory(trade=trade, timestamp=slot, mark_price=Decimal("4.1250") + slot.day)
        slot += timedelta(hours=6)
    held = PaperTradeFactory(owner=trader, entry_date=_at(date(2000, 5, 1), day=3))
    _snapshots(held, date(2000, 5, 1), 4)
    _snapshots(held, date(2000, 6, 1), 4)
    with tenancy.acting_as(trader.pk):
        whole = list(trade.snapshots.order_by("timestamp", "kind").values(*SNAPSHOT_FIELDS))
        assert len(whole) == 77  # 2000 is a leap year: 9 days of February, 10 of March, 4 a day
        assert trade_snapshots(trade=trade) == whole
        assert trade_snapshots(trade=trade, max_points=10) == _thinned(whole, 10)
        assert _plan_months(lifetime_snapshots(trade)) == {"y2000m02", "y2000m03"}
        # The chart's JSON, written in the same statement, reads the same two months.
        with CaptureQueriesContext(connection) as queries:
            body = trade_snapshots_json(trade=trade, columns=json_columns(SnapshotSerializer()), time_zone="UTC")
        assert len(json.loads(body)) == 77
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + queries.captured_queries[0]["sql"])
            plan = "\n".join(line for line, in cursor.fetchall())
        assert set(re.findall(r"monitoring_pricesnapshot_(y\d{4}m\d{2}|default)\b", plan)) == {"y2000m02", "y2000m03"}
        held_whole = list(held.snapshots.order_by("timestamp", "kind").values(*SNAPSHOT_FIELDS))
        assert len(held_whole) == 8 and trade_snapshots(trade=held) == held_whole
        # Held: no end yet, so every month from its entry's on (the migration's months too), none before.
        held_months = _plan_months(lifetime_snapshots(held))
        assert {"y2000m05", "y2000m06"} <= held_months
        assert not held_months & {"y2000m01", "y2000m02", "y2000m03", "y2000m04"}


def test_a_mark_slotted_just_before_the_entry_or_after_the_close_stays_on_the_chart(trader):
    """A cycle's slot is floored, so the first mark can sit seconds before the fill, in the month
    before it; a backfilled bar's mark can follow the close. The margin keeps both."""
    partitions.snapshot_partitions_prepare(at=_at(JANUARY), ahead=3)
    entered = datetime(2000, 2, 1, 0, 0, 20, tzinfo=UTC)
    closed = datetime(2000, 2, 29, 23, 59, 50, tzinfo=UTC)
    trade = ClosedTradeFactory(owner=trader, entry_date=entered, close_date=closed)
    stamps = [datetime(2000, 1, 31, 23, 59, 40, tzinfo=UTC), _at(FEBRUARY, day=15),
              datetime(2000, 3, 1, 0, 10, tzinfo=UTC)]
    for stamp in stamps:
        PriceSnapshotFactory(trade=trade, timestamp=stamp)
    with tenancy.acting_as(trader.pk):
        assert [row["timestamp"] for row in trade_snapshots(trade=trade)] == stamps
