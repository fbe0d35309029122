"""Where a monitor cycle's CPU and database time go at scale, step by step, in this one process
(issue 20): the book of bench_full_cycle_scale.py (BENCH_TRADES, default 100,000), then each
coordinator's share, one snapshot shard and one order shard's steps (shard 0 of BENCH_SHARDS,
default 2), each timed for CPU (process_time), wall and the wall spent inside database calls,
a cold and a steady cycle. BENCH_PROFILE=1 prints each step's cProfile top functions as well;
BENCH_EXPLAIN=<statement prefixes> the EXPLAIN ANALYZE of the statements starting so (run once
more in a savepoint rolled back: their steps' times then count them twice); BENCH_SYNC=0 leaves
the order sync out. A diagnostic, not a regression gate: it asserts nothing about timings.

Run: `BENCH_TRADES=100000 make bench ARGS="bench/bench_cycle_steps_profile.py"`."""

import cProfile
import io
import os
import pstats
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

import pytest
from bench_full_cycle_scale import TRADES, scale_book  # noqa: F401  (the fixture)
from django.db import connection

from brokers.market import default_market
from brokers.models import BrokerMode
from monitoring import clock as market_clock
from monitoring import services, sharding
from monitoring.expiry import settle_expiries
from monitoring.marketdata import provider_for
from monitoring.sync import sync_orders

SHARDS = int(os.environ.get("BENCH_SHARDS", 2))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
EXPLAIN = tuple(os.environ.get("BENCH_EXPLAIN", "").split(",")) if os.environ.get("BENCH_EXPLAIN") else ()


def _explained(execute, sql, params, many, context):
    """With BENCH_EXPLAIN=<prefixes>: a statement starting with one of them is first run under
    EXPLAIN ANALYZE in a savepoint rolled back (its plan printed), then for real."""
    if EXPLAIN and not many and sql.lstrip().startswith(EXPLAIN):
        cursor = context["cursor"]
        cursor.execute("SAVEPOINT explained")
        execute("EXPLAIN (ANALYZE, BUFFERS, VERBOSE) " + sql, params, many, context)
        print("\n".join(row[0] for row in cursor.fetchall()))
        cursor.execute("ROLLBACK TO SAVEPOINT explained")
    return execute(sql, params, many, context)


class DatabaseClock:
    def __init__(self):
        self.seconds, self.queries = 0.0, 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.queries += 1


@contextmanager
def measured(label: str, rows: list):
    database = DatabaseClock()
    profiler = cProfile.Profile() if PROFILE else None
    cpu, wall = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(database), connection.execute_wrapper(_explained):
        if profiler:
            profiler.enable()
        yield
        if profiler:
            profiler.disable()
    rows.append((label, time.process_time() - cpu, time.perf_counter() - wall, database.seconds, database.queries))
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(f"\n===== {label} (tottime)\n{out.getvalue()}")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        print(f"\n===== {label} (cumulative)\n{out.getvalue()}")


@pytest.mark.django_db(transaction=True)
def bench_the_cycle_steps_in_one_process(scale_book, redis_client, settings):  # noqa: F811
    settings.FORCE_MARKET_OPEN = True
    distinct, loaded = scale_book
    at = datetime.now(UTC)
    shard = sharding.Shard(0, SHARDS)
    rows = []
    for attempt in ("cold", "steady"):
        snap_slot = services.cycle_slot(at)
        with measured(f"{attempt}: coordinator snapshot_prices", rows):
            sharding.snapshot_quotes_share(provider=provider_for(), job="s", slot=snap_slot, ttl=600)
        factory = partial(provider_for, clock=market_clock.now)
        with measured(f"{attempt}: coordinator match_paper_orders", rows):
            sharding.order_quotes_share(market=default_market(), provider_factory=factory, job="m", slot=at, at=at,
                                        ttl=600, broker_modes=[BrokerMode.LOCAL_PAPER])
        with measured(f"{attempt}: coordinator sync_orders", rows):
            sharding.order_quotes_share(market=default_market(), provider_factory=factory, job="o", slot=at, at=at,
                                        ttl=600)
        with measured(f"{attempt}: snapshot shard", rows):
            services.snapshot_positions(provider=sharding.SharedQuotes(job="s", slot=snap_slot), at=at,
                                        slot=snap_slot, shard=shard)
        market = sharding.SharedMarket(default_market(), job="o", slot=at)
        stocks = sharding.SharedStocks(factory, job="o", slot=at)
        with measured(f"{attempt}: order shard: exit policies", rows):
            services.apply_exit_policies(provider=stocks, market=market, at=at, shard=shard)
        with measured(f"{attempt}: order shard: net exits", rows):
            services.watch_net_exits(market=market, at=at, shard=shard)
        with measured(f"{attempt}: order shard: paper matching", rows):
            services.match_paper_orders(market=market, shard=shard)
        if os.environ.get("BENCH_SYNC", "1") == "1":
            with measured(f"{attempt}: order shard: sync", rows):
                sync_orders(market=market, at=at, shard=shard)
        with measured(f"{attempt}: order shard: expiry", rows):
            settle_expiries(provider=stocks, at=at, market=market, shard=shard)
        with measured(f"{attempt}: order shard: pin risk", rows):
            services._pin_risk(stocks, at, shard)
        at += services.SNAPSHOT_PERIOD  # the steady cycle: the next snapshot slot
    print(f"\ncycle steps in one process: {TRADES} trades, {distinct} contracts, shard {shard}; "
          f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'step':<48}{'cpu s':>8}{'wall s':>8}{'db s':>8}{'queries':>9}")
    for label, cpu, wall, db, queries in rows:
        print(f"{label:<48}{cpu:>8.2f}{wall:>8.2f}{db:>8.2f}{queries:>9}")
