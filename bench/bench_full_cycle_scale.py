"""The full monitor cycle at scale, through real Celery worker processes (issue 20, "Measured").

100,000 open trades over 10,000 users and 500 underlyings on the simulated market (override with
BENCH_TRADES / BENCH_USERS / BENCH_UNDERLYINGS), each protected by a working OCO bracket at the
local paper broker that does not fill (a stop at a cent, a take-profit at $9,999: the cycle
measures looking, not filling). Each underlying has 24 contracts (3 listed expiries at least two
weeks out x calls and puts x strikes near 97, 99, 101 and 103 % of the spot, at the spacing chains
list: cheap stocks share some), so the book holds
thousands of distinct contracts, as a real one would, not one per underlying. Loaded in a few
INSERT ... SELECT statements (bench/books.py).

The cycle is what the beat sends when its three monitor jobs fall due together:
`monitoring.snapshot_prices`, `monitoring.match_paper_orders` and `monitoring.sync_orders`, sent at
once, in that order, to N solo-pool worker processes (MONITOR_SHARDS = N; BENCH_WORKERS, default
"1,2,4"), a cold cycle (fresh worker processes) and a steady one each, each at the start of a
fresh 40-second snapshot slot (the workers read the real clock). Done when every job's heartbeat
is recorded (monitoring/heartbeats.py): a sharded job's by its last shard, so the bench measures
the jobs unchanged whether or not they are sharded (bench/monitor_workers.py).

Prints per cycle: wall seconds from sending to each job's heartbeat and to the last one; CPU
seconds of all worker processes, and per trade (ms); database queries, market-data provider calls
and local paper broker calls, all counted inside the workers; and the CPU and wall seconds of
each task name (coordinator, shards, ...), where the cycle's time goes. A cycle that outlasts a
job's period means that job's beats skip (or, with a small pool, expire in the queue).

Run: `make bench ARGS="bench/bench_full_cycle_scale.py --timeout=7200"` (pytest's default limit
for a benchmark is 30 minutes; 100,000 trades on 1, 2 and 4 workers can take longer).
"""

import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import books
import pytest
from django.db import connection
from django.db.models import Count
from monitor_workers import MonitorWorkers, monitor_cycle, next_slot_start

from brokers.models import PaperOrder
from monitoring import clock as market_clock
from monitoring import tasks
from monitoring.marketdata import provider_for
from monitoring.marketdata.listing import simulated_expirations
from monitoring.models import PriceSnapshot
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus

TRADES = int(os.environ.get("BENCH_TRADES", 100_000))
USERS = int(os.environ.get("BENCH_USERS", 10_000))
UNDERLYINGS = int(os.environ.get("BENCH_UNDERLYINGS", 500))
WORKERS = [int(count) for count in os.environ.get("BENCH_WORKERS", "1,2,4").split(",")]
JOBS = (tasks.snapshot_prices, tasks.match_paper_orders, tasks.sync_orders)
MONEYNESS = (Decimal("0.97"), Decimal("0.99"), Decimal("1.01"), Decimal("1.03"))
EXPIRIES = 3
NEAREST = timedelta(days=14)  # a stop at a cent must not meet a bid of zero


def _variants(now: datetime) -> list[books.Variant]:
    first = market_clock.market_date(now) + NEAREST
    expiries = [day for day in simulated_expirations(now) if day >= first][:EXPIRIES]
    assert len(expiries) == EXPIRIES, expiries
    return [books.Variant(moneyness, expiry, side) for expiry in expiries for side in ("CALL", "PUT")
            for moneyness in MONEYNESS]


@pytest.fixture
def scale_book():
    """The book, quoted by the workers' own provider (MARKET_DATA_SEED), so strikes sit near the
    spots the workers see. Returns (distinct contracts, seconds to load)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    contracts = books.contracts_list(provider_for(), UNDERLYINGS, _variants(now), step=books.listed_step)
    books.trades_open(user_ids=books.users_create(USERS), contracts=contracts, start=0, end=TRADES, at=now)
    books.brackets_attach(at=now)
    with connection.cursor() as cursor:  # fresh planner statistics, as autovacuum would give a real book
        for model in (PaperTrade, PaperOrder):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    with tenancy.system_context():
        distinct = PaperTrade.objects.values("option_symbol").distinct().count()
    return distinct, time.perf_counter() - started


def _seconds(wall: float | None) -> str:
    return f"{'-' if wall is None else f'{wall:.1f}':>20}"


def _load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


@pytest.mark.django_db(transaction=True)
def bench_the_full_monitor_cycle_at_scale(scale_book, redis_client, settings):
    distinct, loaded = scale_book
    print(f"\nfull monitor cycle: {TRADES} open trades with OCO brackets ({2 * TRADES} working legs), {USERS} users, "
          f"{UNDERLYINGS} underlyings, {distinct} distinct contracts (simulated market, local paper broker); "
          f"loaded in {loaded:.0f} s; {_load()}")
    runs = []
    for count in WORKERS:
        with MonitorWorkers(redis_client, settings.REDIS_URL, count) as workers:
            for label in ("cold", "steady"):
                next_slot_start()
                cycle = monitor_cycle(workers, list(JOBS))
                runs.append((f"{count} worker(s), {label}", cycle))
                print(f"  {count} worker(s), {label}: {cycle.wall:.1f} s wall, {cycle.cpu:.1f} s CPU; {_load()}",
                      flush=True)
    short = {job.name: job.name.removeprefix("monitoring.") for job in JOBS}
    print("\nsolo-pool worker processes, MONITOR_SHARDS = workers; wall s from sending to each job's heartbeat")
    print(f"{'run':<22}{'cycle wall':>11}" + "".join(f"{name:>20}" for name in short.values())
          + f"{'cpu s':>9}{'cpu/trade ms':>14}{'queries':>9}{'data calls':>12}{'broker calls':>14}")
    for label, cycle in runs:
        print(f"{label:<22}{cycle.wall:>11.1f}" + "".join(_seconds(cycle.job_walls[name]) for name in short)
              + f"{cycle.cpu:>9.1f}{cycle.cpu / TRADES * 1000:>14.3f}{cycle.counts['queries']:>9}"
              + f"{cycle.counts['provider calls']:>12}{cycle.counts['broker calls']:>14}")
    print("\nwhere the time goes: each task's runs, CPU and wall seconds inside the workers (summed over them)")
    print(f"{'run':<22}{'task':<34}{'runs':>6}{'cpu s':>9}{'wall s':>9}{'expired':>9}")
    for label, cycle in runs:
        for task, spent in sorted(cycle.tasks.items(), key=lambda item: -item[1]["cpu"]):
            print(f"{label:<22}{task:<34}{spent['runs']:>6.0f}{spent['cpu']:>9.1f}{spent['wall']:>9.1f}"
                  f"{spent['expired']:>9.0f}")
    print("'-': the job recorded no heartbeat (a task of it expired in the queue behind the others: with the "
          "beat, that cycle is lost)")
    with tenancy.system_context():
        still_open = PaperTrade.objects.filter(status=TradeStatus.OPEN).exclude(bracket_order_id="").count()
        slots = list(PriceSnapshot.objects.values("timestamp").annotate(n=Count("id")).values_list("n", flat=True))
    per_slot = set(slots)
    marked = sum(cycle.job_walls[tasks.snapshot_prices.name] is not None for _, cycle in runs)
    print(f"still open and bracketed: {still_open}; snapshots per slot: {sorted(per_slot)}, "
          f"in {len(slots)} slot(s) for {marked} completed snapshot cycle(s)")
    assert still_open == TRADES  # nothing filled: every cycle looked at the whole book
    assert slots.count(TRADES) == marked  # a completed snapshot cycle marked every trade (an incomplete one: some)
