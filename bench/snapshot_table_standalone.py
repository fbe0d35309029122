"""The price-history table at 100 M rows (issue 20), loaded once into a database of its own, then
measured as often as wanted.

Why not the pytest bench (bench_snapshot_table.py): its test database and its one transaction
make a 100 M-row load one ~hour-long statement that is thrown away after a single measurement.
Here the load happens once, month by month, and `measure` can be re-run (quiet machine, after a
code change) against the same rows.

The history is shaped like production's: BENCH_SNAPSHOT_TRADES trades (20,000) of BENCH_SNAPSHOT_USERS
users (2,000), each marked every BENCH_SNAPSHOT_STEP_MINUTES (5) for BENCH_SNAPSHOT_TRADE_ROWS slots
(5,000: about 17 days), their entries spread evenly over the BENCH_SNAPSHOT_MONTHS (13) before NOW,
so about 900 trades are held at any moment and rows arrive interleaved in time order, as the
monitor writes them (not one trade's rows side by side, which would flatter every per-trade read).
Trades whose slots would run past NOW are still held (OPEN, marked up to NOW); the others are
CLOSED at their last slot.

Each month is written into a table of its own with generate_series (one INSERT … SELECT in time
order, synchronous_commit off), then gets the partition's indexes, policies and privileges, and
is attached to the parent (a CHECK constraint of the month's bounds spares the attach its scan;
the parent's foreign keys are validated on attach), then VACUUM ANALYZE. The measured table is an
ordinary logged one, indexed and attached exactly as `snapshot_partition_create` makes a month.

Run (a database of its own; the migrate makes the schema and the signed tenant context's key):

    createdb -h 127.0.0.1 -U tradeoptions_owner tradeoptions_snap100m
    export DB=tradeoptions_snap100m SECRET_KEY=bench-only-not-secret
    export DATABASE_URL=postgres://tradeoptions_app@127.0.0.1:5432/$DB
    export DATABASE_WORKER_URL=postgres://tradeoptions_worker@127.0.0.1:5432/$DB
    export DATABASE_OWNER_URL=postgres://tradeoptions_owner@127.0.0.1:5432/$DB
    .venv/bin/python manage.py migrate
    nice -n 10 .venv/bin/python bench/snapshot_table_standalone.py load
    .venv/bin/python bench/snapshot_table_standalone.py measure
    dropdb -h 127.0.0.1 -U tradeoptions_owner tradeoptions_snap100m
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.local")
os.environ.setdefault("TRADEOPTIONS_PROCESS", "worker")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import F, Q, Window  # noqa: E402
from django.db.models.functions import RowNumber  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from rest_framework.test import APIRequestFactory, force_authenticate  # noqa: E402

from brokers.occ import build_symbol  # noqa: E402
from monitoring.partitions import TABLE, partition_months, partition_name  # noqa: E402
from tradeoptions import tenancy  # noqa: E402
from trades import api, selectors  # noqa: E402
from trades.models import PaperTrade, TradeStatus  # noqa: E402
from trades.serializers import SnapshotSerializer  # noqa: E402

TRADES = int(os.environ.get("BENCH_SNAPSHOT_TRADES", 20_000))
USERS = int(os.environ.get("BENCH_SNAPSHOT_USERS", 2_000))
TRADE_ROWS = int(os.environ.get("BENCH_SNAPSHOT_TRADE_ROWS", 5_000))
STEP = timedelta(minutes=int(os.environ.get("BENCH_SNAPSHOT_STEP_MINUTES", 5)))
MONTHS = int(os.environ.get("BENCH_SNAPSHOT_MONTHS", 13))
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # a Tuesday, midday in New York
EXPIRY = date(2027, 1, 15)
LATEST_OF_MANY = """
    SELECT t.id, s.timestamp, s.mark_price FROM unnest(%s::bigint[]) AS t(id)
      CROSS JOIN LATERAL (SELECT timestamp, mark_price FROM monitoring_pricesnapshot
                           WHERE trade_id = t.id ORDER BY timestamp DESC LIMIT 1) s"""
LATEST_ONE = ("SELECT timestamp, mark_price FROM monitoring_pricesnapshot WHERE trade_id = %s "
              "ORDER BY timestamp DESC LIMIT 1")


def _schedule() -> list[tuple[datetime, datetime]]:
    """Each trade's first and last slot, on one grid of STEP before NOW: entries evenly spread so
    the last trade's full run would end at NOW + its lifetime / 2 (so some trades are held now)."""
    lifetime = STEP * (TRADE_ROWS - 1)
    start = NOW - timedelta(days=30.4 * MONTHS) + lifetime / 2
    stride = (NOW - start) / TRADES
    slots = []
    for n in range(TRADES):
        first = start + stride * n - lifetime / 2
        first = NOW - STEP * ((NOW - first) // STEP)  # onto the grid
        slots.append((first, min(first + lifetime, NOW - STEP)))
    return slots


def _owner_connection() -> psycopg.Connection:
    owner = settings.DATABASE_OWNER
    return psycopg.connect(host=owner["HOST"], port=owner["PORT"] or 5432, user=owner["USER"],
                           password=owner["PASSWORD"] or None, dbname=owner["NAME"])


def _month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)


def load() -> None:
    schedule = _schedule()
    total = sum((last - first) // STEP + 1 for first, last in schedule)
    print(f"loading {total:,} snapshots: {TRADES:,} trades of {USERS:,} users, one every {STEP}", flush=True)
    started = time.perf_counter()
    with tenancy.system_context():
        users = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"snap{i}") for i in range(USERS)], batch_size=2000)
        trades = []
        for n, (first, last) in enumerate(schedule):
            strike = Decimal(500 + n % 50)
            held = last >= NOW - STEP
            trades.append(PaperTrade(
                owner=users[n % USERS], ticker="SPY", option_type="CALL", strike=strike, expiry=EXPIRY,
                option_symbol=build_symbol("SPY", EXPIRY, "CALL", strike), qty=1, filled_qty=1,
                entry_price=Decimal("4.30"), entry_date=first, sl_price=Decimal("0.01"), tp_price=Decimal("99"),
                status=TradeStatus.OPEN if held else TradeStatus.CLOSED,
                close_date=None if held else last, close_price=None if held else Decimal("4.50"),
                close_reason=None if held else "MANUAL_CLOSE"))
        trades = PaperTrade.objects.bulk_create(trades, batch_size=2000)
    print(f"users and trades: {time.perf_counter() - started:.1f} s", flush=True)
    with _owner_connection() as owner, owner.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'; SET work_mem = '256MB'")
        cursor.execute("CREATE TEMP TABLE bench_schedule (trade_id bigint, owner_id int, first_at timestamptz, "
                       "last_at timestamptz)")
        cursor.execute("INSERT INTO bench_schedule SELECT * FROM unnest(%s::bigint[], %s::int[], "
                       "%s::timestamptz[], %s::timestamptz[])",
                       [[t.pk for t in trades], [t.owner_id for t in trades],
                        [f for f, _ in schedule], [last for _, last in schedule]])
        owner.commit()
        month, loaded = _month_start(min(f for f, _ in schedule)), 0
        while month <= NOW:
            loaded += _load_month(owner, cursor, month, loaded)
            month = _next_month(month)
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [TABLE, loaded])
        cursor.execute(f"ANALYZE {TABLE}")
        owner.commit()
    print(f"loaded {loaded:,} rows in {time.perf_counter() - started:.0f} s", flush=True)


def _load_month(owner: psycopg.Connection, cursor: psycopg.Cursor, month: datetime, base: int) -> int:
    """The month's rows, ids following `base` (the rows loaded before)."""
    started = time.perf_counter()
    name, after = partition_name(month.date()), _next_month(month)
    cursor.execute("SELECT to_regclass(%s)", [name])
    if cursor.fetchone()[0] is not None:  # made empty by migrate's "this month and the next"
        cursor.execute(f"SELECT count(*) FROM {name}")
        if cursor.fetchone()[0]:
            raise SystemExit(f"{name} already holds rows: load into a fresh database")
        cursor.execute(f"DROP TABLE {name}")
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    step = STEP.total_seconds()
    cursor.execute(f"""
        INSERT INTO {name} (id, trade_id, owner_id, "timestamp", kind, mark_price, bid, ask, delta, gamma, theta,
                            vega, iv, underlying, source, quote_time, delayed)
        SELECT %(base)s + row_number() OVER (), trade_id, owner_id, at, 'INTRADAY',
               4 + (k %% 97) / 100.0, 3.95 + (k %% 97) / 100.0, 4.05 + (k %% 97) / 100.0,
               0.45 + (k %% 11) / 100.0, 0.021, -0.052, 0.11, 0.2 + (k %% 13) / 100.0, 590 + (k %% 89) / 10.0,
               'simulated', at - interval '2 seconds', false
          FROM (SELECT s.trade_id, s.owner_id, at,
                       (extract(epoch FROM %(now)s::timestamptz - at) / %(step)s)::bigint AS k
                  FROM bench_schedule s
                 CROSS JOIN LATERAL generate_series(
                       s.first_at + make_interval(secs => %(step)s * greatest(0, ceil(
                           extract(epoch FROM %(month)s::timestamptz - s.first_at) / %(step)s))),
                       least(s.last_at, %(after)s::timestamptz - interval '1 microsecond'),
                       make_interval(secs => %(step)s)) at
                 WHERE s.first_at < %(after)s AND s.last_at >= %(month)s
                 ORDER BY at, s.trade_id) slots""",
                   {"base": base, "now": NOW, "step": step, "month": month, "after": after})
    rows = cursor.rowcount
    inserted = time.perf_counter()
    # The attach validates the parent's foreign keys with a join that forced row-level security
    # binds too (the owner included): in the system context it sees every trade.
    cursor.execute("SELECT set_config('app.system', 'on', true)")
    cursor.execute(f"""
        ALTER TABLE {name} ADD PRIMARY KEY (id, "timestamp");
        ALTER TABLE {name} ADD UNIQUE (trade_id, "timestamp", kind);
        CREATE INDEX ON {name} (owner_id);
        CREATE INDEX ON {name} USING brin ("timestamp");
        ALTER TABLE {name} ADD CONSTRAINT bench_month_bounds
            CHECK ("timestamp" >= '{month.isoformat()}' AND "timestamp" < '{after.isoformat()}');
        ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{month.isoformat()}') TO ('{after.isoformat()}');
        ALTER TABLE {name} DROP CONSTRAINT bench_month_bounds;
        ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {name} FORCE ROW LEVEL SECURITY;
        CREATE POLICY tenant_owner ON {name} USING (owner_id = (SELECT app_user_id()))
            WITH CHECK (owner_id = (SELECT app_user_id()));
        CREATE POLICY system_context ON {name} TO tradeoptions_system
            USING (current_setting('app.system', true) = 'on') WITH CHECK (current_setting('app.system', true) = 'on');
    """)
    cursor.execute("SELECT DISTINCT a.grantee::regrole::text FROM pg_class c, aclexplode(c.relacl) a "
                   "WHERE c.oid = %s::regclass AND a.grantee NOT IN (0, c.relowner)", [name])
    for (grantee,) in cursor.fetchall():
        cursor.execute(f'REVOKE ALL ON TABLE {name} FROM "{grantee}"')
    cursor.execute(f"REVOKE ALL ON TABLE {name} FROM PUBLIC")
    owner.commit()
    indexed = time.perf_counter()
    owner.autocommit = True
    cursor.execute(f"VACUUM (ANALYZE) {name}")
    owner.autocommit = False
    print(f"{name}: {rows:,} rows; insert {inserted - started:.0f} s, indexes + attach {indexed - inserted:.0f} s, "
          f"vacuum analyze {time.perf_counter() - indexed:.0f} s", flush=True)
    return rows


def _cpu_ms(run, times: int = 15) -> float:
    """The median client CPU of a run (time.process_time): comparable on a shared, loaded machine."""
    samples = []
    for _ in range(times):
        started = time.process_time()
        run()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def _orm_chart(trade: PaperTrade) -> list[dict]:
    """The chart as it was read before its one-statement version: a count, then the ORM's window."""
    snapshots = selectors.lifetime_snapshots(trade).order_by("timestamp", "kind")
    total = snapshots.count()
    if total <= selectors.MAX_CHART_POINTS:
        return list(snapshots.values(*selectors.SNAPSHOT_FIELDS))
    step = -(-total // (selectors.MAX_CHART_POINTS - 1))
    numbered = snapshots.annotate(n=Window(RowNumber(), order_by=[F("timestamp").asc(), F("kind").asc()]))
    thinned = numbered.annotate(slot=(F("n") - 1) % step).filter(Q(slot=0) | Q(n=total))
    return list(thinned.order_by("timestamp", "kind").values(*selectors.SNAPSHOT_FIELDS))


def _timed_ms(run, times: int = 15) -> tuple[float, float]:
    """The first run (whatever of it the caches do not hold yet) and the median of `times` more."""
    samples = []
    for _ in range(times + 1):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples[0], statistics.median(samples[1:])


def _plan(sql: str, params=None) -> str:
    """The plan's shape in a few lines: its top nodes, how many month partitions it reads, the
    buffers of the whole and the execution time (EXPLAIN ANALYZE, as the current user)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, params)
        lines = [line for line, in cursor.fetchall()]
    nodes = [line.strip().removeprefix("->").strip().split(" (actual")[0] for line in lines
             if "(actual" in line][:4]
    months = {name for line in lines for name in re.findall(rf"{TABLE}_(y\d{{4}}m\d{{2}}|default)\b", line)}
    buffers = next((line.strip() for line in lines if line.strip().startswith("Buffers:")), "")
    timing = "; ".join(line.strip() for line in lines if line.startswith(("Planning Time", "Execution Time")))
    return (f"    plan: {' / '.join(nodes)}\n    reads {len(months)} partitions ({', '.join(sorted(months))}); "
            f"{buffers}; {timing}")


def _last_query(run) -> str:
    with CaptureQueriesContext(connection) as queries:
        run()
    return queries.captured_queries[-1]["sql"]


def _unbounded(trade: PaperTrade):
    """The chart as it was before issue 20's bound: every month's partition asked."""
    with mock.patch.object(selectors, "lifetime_snapshots", lambda trade: trade.snapshots.all()):
        return selectors.trade_snapshots(trade=trade)


def _endpoint(trade: PaperTrade):
    """GET /api/trades/<id>/snapshots end to end but for the middleware: the view (its trade lookup,
    its tenant context, the chart) and the rendered body, as the trade's owner. No throttle (it
    would count in the cache)."""
    view = api.TradeViewSet.as_view({"get": "snapshots"}, throttle_classes=[])
    owner = trade.owner

    def get() -> bytes:
        request = APIRequestFactory().get(f"/api/trades/{trade.pk}/snapshots", HTTP_ACCEPT="application/json")
        force_authenticate(request, user=owner)
        response = view(request, pk=str(trade.pk))
        assert response.status_code == 200, response.status_code
        return response.render().content if hasattr(response, "render") else response.content

    return get


def _endpoint_through_drf(get):
    """The endpoint as it was before the chart's JSON was written by PostgreSQL: rows as dicts, DRF's
    serializer and JSON renderer."""
    def before() -> bytes:
        with mock.patch.object(api, "_chart_json", lambda request, trade: None):
            return get()

    return before


def _endpoint_line(trade: PaperTrade) -> str:
    """The endpoint's wall and CPU medians (of 21, warm) with the chart's JSON from PostgreSQL and
    through DRF (before), after checking both answer the same bytes."""
    after = _endpoint(trade)
    before = _endpoint_through_drf(after)
    body = after()
    assert body == before(), "the SQL JSON differs from DRF's"
    _, wall = _timed_ms(after, times=21)
    cpu = _cpu_ms(after, times=21)
    _, wall_before = _timed_ms(before, times=21)
    cpu_before = _cpu_ms(before, times=21)
    return (f"  GET /snapshots end to end (view + rendering, {len(body):,} bytes, median of 21 warm): "
            f"{wall:.1f} ms wall, {cpu:.1f} ms CPU; through DRF (before): {wall_before:.1f} ms wall, "
            f"{cpu_before:.1f} ms CPU")


def _distinct_on_latest(trade_ids: list[int]) -> list[dict]:
    """marks_freshness's latest snapshots as they were read before issue 20."""
    return list(PaperTrade.snapshots.rel.related_model.objects.filter(trade_id__in=trade_ids)
                .order_by("trade_id", "-timestamp", "-kind").distinct("trade_id")
                .values("trade_id", "timestamp", "source", "delayed", "quote_time"))


def measure() -> None:
    print(f"load average at start: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")
        rows = cursor.fetchone()[0]
        cursor.execute("SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)) "
                       f"FROM pg_partition_tree('{TABLE}')")
        heap, indexes = (int(size) for size in cursor.fetchone())
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE tableoid = '{TABLE}_default'::regclass")
        strays = cursor.fetchone()[0]
        trades = list(PaperTrade.objects.order_by("id"))
    months = partition_months()
    print(f"snapshot table: {rows:,} rows, {len(trades):,} trades; {len(months)} months "
          f"({months[0]:%Y-%m} to {months[-1]:%Y-%m}) and the default ({strays} rows)")
    print(f"storage: heap {heap / 2**30:.1f} GiB + indexes {indexes / 2**30:.1f} GiB; per million rows "
          f"{heap / rows * 1e6 / 2**20:.0f} + {indexes / rows * 1e6 / 2**20:.0f} MiB")
    # An old trade (closed most of a year ago, over two months), a recent closed one, a held one.
    old = next(t for t in trades if t.close_date and t.entry_date.month != t.close_date.month
               and t.entry_date > _month_start(trades[0].entry_date) + timedelta(days=62))
    recent = next(t for t in reversed(trades) if t.status == TradeStatus.CLOSED)
    held = next(t for t in reversed(trades) if t.status == TradeStatus.OPEN)
    for label, trade in (("old closed", old), ("recent closed", recent), ("held", held)):
        with tenancy.acting_as(trade.owner_id):
            points = len(selectors.trade_snapshots(trade=trade))
            assert selectors.trade_snapshots(trade=trade) == _unbounded(trade) == _orm_chart(trade)
            first, chart = _timed_ms(lambda trade=trade: selectors.trade_snapshots(trade=trade))
            _, orm = _timed_ms(lambda trade=trade: _orm_chart(trade))
            cpu, orm_cpu = (_cpu_ms(lambda trade=trade: selectors.trade_snapshots(trade=trade)),
                            _cpu_ms(lambda trade=trade: _orm_chart(trade)))
            api_cpu = _cpu_ms(lambda trade=trade: SnapshotSerializer(selectors.trade_snapshots(trade=trade),
                                                                     many=True).data)
            _, unbounded = _timed_ms(lambda trade=trade: _unbounded(trade))
            first_latest, latest = _timed_ms(lambda trade=trade: _fetch(LATEST_ONE, [trade.pk]))
            print(f"{label} trade {trade.pk} ({trade.entry_date:%Y-%m-%d %H:%M} to "
                  f"{(trade.close_date or NOW):%Y-%m-%d %H:%M}), as its owner:")
            print(f"  chart ({points} points): first {first:.1f} ms, median {chart:.1f} ms; "
                  f"without the lifetime bound {unbounded:.1f} ms median")
            print(f"  client CPU (median of 15): {cpu:.1f} ms; through the ORM (count + window, before) "
                  f"{orm_cpu:.1f} ms CPU, {orm:.1f} ms wall median; the endpoint's serializer on top: "
                  f"{api_cpu:.1f} ms CPU in all")
            print(_plan(_last_query(lambda trade=trade: selectors.trade_snapshots(trade=trade))))
            print(f"  latest mark (ORDER BY timestamp DESC LIMIT 1): first {first_latest:.2f} ms, "
                  f"median {latest:.2f} ms")
            print(_plan(LATEST_ONE, [trade.pk]))
            sql_json = _last_query(lambda trade=trade: selectors.trade_snapshots_json(
                trade=trade, columns=api.json_columns(SnapshotSerializer()), time_zone="UTC"))
        print(_endpoint_line(trade))
        with tenancy.acting_as(trade.owner_id):
            print(_plan(sql_json))
    mine = [t.pk for t in trades if t.owner_id == held.owner_id]
    held_mine = [t.pk for t in trades if t.owner_id == held.owner_id and t.status == TradeStatus.OPEN]
    with tenancy.acting_as(held.owner_id):
        for label, ids in (("", mine), (" held", held_mine)):
            first, ms = _timed_ms(lambda ids=ids: _fetch(LATEST_OF_MANY, [ids]))
            print(f"latest mark of a user's {len(ids)}{label} positions, LATERAL … LIMIT 1: first {first:.2f} ms, "
                  f"median {ms:.2f} ms")
        print(_plan(LATEST_OF_MANY, [mine]))

        def freshness():  # a page of the user's 10 trades (the list asks for its held ones only),
            # a moment after the last cycle, so the held trade's quote is live and its first cycle asked
            return selectors.marks_freshness(trade_ids=mine, now=NOW - STEP, market_open=True)

        answer = freshness()
        assert len(answer) == len(mine)
        with mock.patch.object(selectors, "_latest_snapshots", _distinct_on_latest):
            assert freshness() == answer  # the same answer as before issue 20
            before_first, before = _timed_ms(freshness, times=3)
        with CaptureQueriesContext(connection) as queries:
            freshness()
        first, ms = _timed_ms(freshness, times=7)
        print(f"marks_freshness (the trade list's mark source and frozen flag) of the user's {len(mine)} "
              f"trades, {len(queries.captured_queries)} queries: first {first:.1f} ms, median {ms:.1f} ms")
        for query in queries.captured_queries:
            print(_plan(query["sql"]))
        print(f"  before issue 20 (DISTINCT ON … trade_id IN for the latest): first {before_first:.1f} ms, "
              f"median {before:.1f} ms")
    print(f"load average at end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


def _fetch(sql: str, params) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


if __name__ == "__main__":
    {"load": load, "measure": measure}[sys.argv[1]]()
