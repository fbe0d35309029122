"""The sharded snapshot cycle (monitoring/sharding.py) through real Celery worker processes.

10,000 open trades over 1,000 users and 150 underlyings on the simulated market (override with
BENCH_TRADES / BENCH_USERS / BENCH_UNDERLYINGS), marked by 1 and then 2 worker processes (solo
pools, MONITOR_SHARDS = workers), a cold and a steady cycle each. Prints per cycle: wall seconds
from sending the beat's one `snapshot_prices` to the last shard's heartbeat, CPU seconds of all
worker processes, database queries executed in the workers, and provider calls. Each number is
counted inside the workers (bench/monitor_workers.py, through Redis).
"""

import pytest
from bench_monitor_cycle import TRADES, UNDERLYINGS, USERS, book  # noqa: F401  (the fixture)
from django.db.models import Count
from monitor_workers import MonitorWorkers, monitor_cycle, next_slot_start

from monitoring import tasks
from monitoring.models import PriceSnapshot
from tradeoptions import tenancy


@pytest.mark.django_db(transaction=True)
def bench_the_sharded_snapshot_cycle_with_1_and_2_workers(book, redis_client, settings):  # noqa: F811
    rows = []
    for count in (1, 2):
        with MonitorWorkers(redis_client, settings.REDIS_URL, count) as workers:
            for label in ("cold", "steady"):
                next_slot_start()
                cycle = monitor_cycle(workers, [tasks.snapshot_prices], timeout=300)
                rows.append((f"{count} worker(s), {label}", cycle.wall, cycle.cpu, cycle.counts["queries"],
                             cycle.counts["provider calls"]))
    with tenancy.system_context():
        per_slot = set(PriceSnapshot.objects.values("timestamp").annotate(n=Count("id")).values_list("n", flat=True))
    print(f"\nsharded snapshot cycle: {TRADES} open trades, {USERS} users, {UNDERLYINGS} underlyings (simulated), "
          "solo-pool worker processes, MONITOR_SHARDS = workers")
    print(f"{'run':<26}{'wall s':>9}{'cpu s':>9}{'queries':>9}{'data calls':>12}")
    for label, wall, cpu, queries, calls in rows:
        print(f"{label:<26}{wall:>9.3f}{cpu:>9.3f}{queries:>9}{calls:>12}")
    print(f"snapshots per slot: {sorted(per_slot)} (every held trade once a slot)")
    assert per_slot == {TRADES}
