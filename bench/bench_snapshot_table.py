"""The price-history table at scale: 10 million snapshots (BENCH_SNAPSHOT_ROWS).

2,000 held trades (BENCH_SNAPSHOT_TRADES) over 200 users, each with an equal share of the history
at 5-minute slots (BENCH_SNAPSHOT_STEP_MINUTES: a wider step spreads the same rows over more
months), written in one INSERT … SELECT generate_series under the system context into the table
partitioned by month, whose months are made first (monitoring/partitions.py), as the beat job would.
Prints the load rate, the partitions, storage per million rows (heap and indexes), the median time of
one trade's chart query, of the latest mark of one trade and of the latest-mark query for a user's
positions (each as that user, under RLS), and the time and rate of a monitor cycle's snapshot insert
on top of the full table.

Run: `make bench ARGS="bench/bench_snapshot_table.py"` (about 5 minutes at 10 million rows here).
"""

import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from brokers.occ import build_symbol
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.models import PriceSnapshot
from monitoring.partitions import partition_months, snapshot_partitions_prepare
from monitoring.services import snapshot_positions
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus
from trades.selectors import trade_snapshots

ROWS = int(os.environ.get("BENCH_SNAPSHOT_ROWS", 10_000_000))
TRADES = int(os.environ.get("BENCH_SNAPSHOT_TRADES", 2000))
STEP_MINUTES = int(os.environ.get("BENCH_SNAPSHOT_STEP_MINUTES", 5))
USERS = 200
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # a Tuesday, midday in New York
EXPIRY = date(2026, 12, 18)
# Two ways to ask for the latest snapshot of several trades. (The app itself keeps each trade's
# latest mark on its row, written by the cycle, so no page or API read needs either.)
LATEST_MARKS = {
    "DISTINCT ON": """
        SELECT DISTINCT ON (trade_id) trade_id, timestamp, mark_price
          FROM monitoring_pricesnapshot WHERE trade_id = ANY(%s) ORDER BY trade_id, timestamp DESC""",
    "LATERAL … LIMIT 1": """
        SELECT t.id, s.timestamp, s.mark_price FROM unnest(%s::bigint[]) AS t(id)
          CROSS JOIN LATERAL (SELECT timestamp, mark_price FROM monitoring_pricesnapshot
                               WHERE trade_id = t.id ORDER BY timestamp DESC LIMIT 1) s""",
}


@pytest.fixture
def history():
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"snap{i}") for i in range(USERS)])
    with tenancy.system_context():
        trades = PaperTrade.objects.bulk_create([
            PaperTrade(owner=users[n % USERS], ticker="SPY", option_type="CALL", strike=Decimal(500 + n % 50),
                       expiry=EXPIRY, option_symbol=build_symbol("SPY", EXPIRY, "CALL", Decimal(500 + n % 50)),
                       qty=1, filled_qty=1, entry_price=Decimal("4.30"), entry_date=NOW - timedelta(days=30),
                       sl_price=Decimal("0.01"), tp_price=Decimal("99"), status=TradeStatus.OPEN)
            for n in range(TRADES)], batch_size=2000)
        per_trade = ROWS // TRADES
        first = NOW - timedelta(minutes=STEP_MINUTES * per_trade)
        months = (NOW.year - first.year) * 12 + NOW.month - first.month
        snapshot_partitions_prepare(at=first, ahead=months + 1)  # up to the month after NOW's
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("""
                INSERT INTO monitoring_pricesnapshot (trade_id, owner_id, timestamp, kind, mark_price, bid, ask, source)
                SELECT t.id, t.owner_id, %s - make_interval(mins => %s * s), 'INTRADAY',
                       4 + (s %% 97) / 100.0, 3.95 + (s %% 97) / 100.0, 4.05 + (s %% 97) / 100.0, 'simulated'
                  FROM trades_papertrade t CROSS JOIN generate_series(1, %s) s
                 WHERE t.id = ANY(%s)""", [NOW, STEP_MINUTES, per_trade, [t.pk for t in trades]])
            loaded = cursor.rowcount
            cursor.execute("ANALYZE monitoring_pricesnapshot")
        seconds = time.perf_counter() - started
    return trades, loaded, seconds


def _median_ms(run, times: int = 25) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _sizes() -> tuple[int, int]:
    """Heap and index bytes of the table: of all its partitions, the parent itself holding none."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)) "
                       "FROM pg_partition_tree('monitoring_pricesnapshot')")
        return tuple(int(size) for size in cursor.fetchone())


def _latest_mark(trade_id: int):
    with connection.cursor() as cursor:
        cursor.execute("SELECT timestamp, mark_price FROM monitoring_pricesnapshot WHERE trade_id = %s "
                       "ORDER BY timestamp DESC LIMIT 1", [trade_id])
        return cursor.fetchone()


@pytest.mark.django_db
def bench_ten_million_snapshots(history):
    trades, loaded, load_seconds = history
    heap, indexes = _sizes()
    one = trades[TRADES // 2]
    mine = [t.pk for t in trades if t.owner_id == one.owner_id]
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM monitoring_pricesnapshot "  # partitions only through their parent
                       "WHERE tableoid = 'monitoring_pricesnapshot_default'::regclass")
        strays = cursor.fetchone()[0]
    with tenancy.acting_as(one.owner_id):
        chart = _median_ms(lambda: trade_snapshots(trade=one))
        points = len(trade_snapshots(trade=one))
        latest_one = _median_ms(lambda: _latest_mark(one.pk))
        assert _latest_mark(one.pk)[0] == NOW - timedelta(minutes=STEP_MINUTES)

        latest_ms, plans = {}, {}
        for name, sql in LATEST_MARKS.items():
            def latest(sql=sql):
                with connection.cursor() as cursor:
                    cursor.execute(sql, [mine])
                    return cursor.fetchall()

            latest_ms[name] = _median_ms(latest, times=7)
            assert len(latest()) == len(mine)
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + sql, [mine])
                plans[name] = " / ".join(line.strip() for line, in cursor.fetchall()[:3])
    provider = SimulatedProvider(seed="bench", clock=lambda: NOW)
    snapshot_positions(provider=provider, at=NOW - timedelta(minutes=1))  # warm the provider's paths
    started = time.perf_counter()
    report = snapshot_positions(provider=provider, at=NOW + timedelta(minutes=1))
    cycle = time.perf_counter() - started
    per_million = 1_000_000 / loaded
    print(f"\nsnapshot table: {loaded:,} rows over {TRADES} trades ({loaded // TRADES} each), {USERS} users")
    months = partition_months()
    print(f"partitioned by month: {len(months)} months ({months[0]:%Y-%m} to {months[-1]:%Y-%m}) and the default "
          f"({strays} rows), one row every {STEP_MINUTES} minutes a trade")
    print(f"load: {load_seconds:.1f} s ({loaded / load_seconds:,.0f} rows/s, one INSERT … SELECT, then ANALYZE)")
    print(f"storage: heap {heap / 2**20:,.0f} MiB + indexes {indexes / 2**20:,.0f} MiB; "
          f"per million rows {heap * per_million / 2**20:.0f} + {indexes * per_million / 2**20:.0f} MiB")
    print(f"one trade's chart ({loaded // TRADES} rows thinned to {points}), as its owner: {chart:.1f} ms median")
    print(f"latest mark of one trade, as its owner: {latest_one:.2f} ms median")
    for name, ms in latest_ms.items():
        print(f"latest snapshot of a user's {len(mine)} positions, {name}, as the user: {ms:.2f} ms median")
        print(f"    plan: {plans[name][:150]}")
    print(f"monitor cycle insert on top: {report.written} snapshots in {cycle * 1000:.0f} ms "
          f"({report.written / cycle:,.0f} rows/s, quotes included)")
    assert report.written == TRADES
    with tenancy.system_context():
        assert PriceSnapshot.objects.filter(timestamp__gt=NOW).count() == TRADES
