"""Monitor jobs measured through real Celery worker processes (tests/fakes/fault_worker.py), for
the sharding benchmarks (bench_monitor_shards.py, bench_full_cycle_scale.py).

`MonitorWorkers` starts N solo-pool workers with MONITOR_SHARDS = N, counting inside them (through
Redis) the database queries, the market-data provider's calls and the local paper broker's calls,
and each task's CPU and wall seconds by task name. `monitor_cycle` sends jobs as the beat does and
waits for each job's heartbeat (monitoring/heartbeats.py), not for a task's result: a sharded job's
cycle is done when its last shard records the heartbeat, an unsharded one's when its one task does,
so the same harness measures either without change.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import lcm

import psutil
from django.core.cache import cache

from monitoring.heartbeats import PREFIX
from monitoring.tasks import PERIODS
from tests.fakes.fault_worker import WAIT, FaultWorker, queue_keys

QUERIES = ("django.db.backends.utils:CursorWrapper.execute", "django.db.backends.utils:CursorWrapper.executemany")
PROVIDER_CALLS = tuple(f"monitoring.marketdata.simulated:SimulatedProvider.{name}"
                       for name in ("option_quotes", "underlying_quotes", "bars", "expirations"))
BROKER_CALLS = tuple(f"brokers.paper:LocalPaperBroker.{name}" for name in (
    "get_quotes", "get_option_chain", "place_order", "place_oco_order", "place_otoco_order", "place_spread_order",
    "cancel_order", "modify_stop", "get_order", "get_orders", "find_order_by_tag", "get_positions",
    "get_account_balance"))
COUNTED = {"queries": QUERIES, "provider calls": PROVIDER_CALLS, "broker calls": BROKER_CALLS}
TIMES = ("cpu", "wall", "runs", "started", "failed", "expired", "revoked")  # fault_worker's FAULT_TASK_TIMES
# Seconds between moments that start a fresh slot of every monitor job (snapshots 40 s, matching
# 20 s, orders 60 s): a cycle sent one second into such a moment never finds a job's slot already
# done by the cycle before (its shards would do nothing and record no heartbeat).
SLOT = lcm(*(int(PERIODS[job]) for job in ("monitoring.snapshot_prices", "monitoring.match_paper_orders",
                                           "monitoring.sync_orders")))


class MonitorWorkers:
    """`count` solo-pool worker processes with MONITOR_SHARDS = count; a context manager."""

    def __init__(self, redis_client, redis_url: str, count: int, *, env: dict[str, str] | None = None) -> None:
        self.count = count
        self.workers = [FaultWorker(redis_client, redis_url, quotes={}, now=datetime.now(UTC)) for _ in range(count)]
        self.env = {"FAULT_QUOTES": "", "FAULT_TASK_TIMES": "1", "MONITOR_SHARDS": str(count), **(env or {})}

    def __enter__(self) -> MonitorWorkers:
        # A starting worker reconciles every account's orders once (reconcile_at_worker_start): not
        # what is measured, and with thousands of accounts it holds a solo worker for minutes.
        cache.set("reconcile-at-start", 1, 3600)
        specs = ",".join(spec for specs in COUNTED.values() for spec in specs)
        for n, worker in enumerate(self.workers):
            worker.node = f"bench{n}-{os.getpid()}@bench"
            worker.start(count=specs, env=self.env)
        deadline = time.monotonic() + WAIT
        while not all(worker.ready() for worker in self.workers):
            self.check_alive()
            assert time.monotonic() < deadline, f"a worker never became ready\n{self.log_tail()}"
            time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            worker.close()

    def check_alive(self) -> None:
        for worker in self.workers:
            assert worker.process.poll() is None, worker.log.read_text()[-3000:]

    def log_tail(self) -> str:
        return "\n".join(worker.log.read_text()[-2000:] for worker in self.workers if worker.log.exists())

    def cpu(self) -> float:
        """CPU seconds of every worker process so far (and of any children they waited for)."""
        total = 0.0
        for worker in self.workers:
            times = psutil.Process(worker.process.pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def counts(self) -> dict[str, int]:
        return {label: sum(worker.counted(spec) for worker in self.workers for spec in specs)
                for label, specs in COUNTED.items()}

    def task_times(self) -> dict[str, dict[str, float]]:
        """{task name: {"cpu", "wall", "runs", "failed"}} summed over the workers."""
        times: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for worker in self.workers:
            for key, value in worker.task_times().items():
                task, _, what = key.rpartition("|")
                if what != "last":
                    times[task][what] += float(value)
        return times

    def idle(self) -> bool:
        """Nothing queued and no task running: whatever has not finished now never will."""
        client = self.workers[0].redis
        queued = sum(client.llen(key) for key in queue_keys())
        times = self.task_times().values()
        return queued == 0 and sum(t["started"] for t in times) == sum(t["runs"] for t in times)

    def last_results(self) -> str:
        return "; ".join(f"{key}: {value}" for worker in self.workers for key, value in worker.task_times().items()
                         if key.endswith("|last"))


@dataclass
class Cycle:
    wall: float  # from sending the jobs to the last heartbeat
    cpu: float  # every worker process's CPU seconds meanwhile
    job_walls: dict[str, float | None]  # job -> seconds from sending to its heartbeat; None: none came
    counts: dict[str, int]  # COUNTED's labels -> calls during the cycle
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # task name -> cpu, wall, runs, failed


def next_slot_start() -> None:
    """Wait for a fresh slot of every monitor job (the workers read the real clock), a second into it."""
    time.sleep(SLOT - time.time() % SLOT + 1)


def monitor_cycle(workers: MonitorWorkers, jobs: list, *, timeout: float = 3600) -> Cycle:
    """Send `jobs` (monitor tasks, in the beat's order) at once and wait for each one's heartbeat.
    Sent with a long expiry: the beat's own (one period) would let a job queued behind a long one
    expire unrun, which is what a too-small pool does, but then there is no cycle to measure. The
    tasks the jobs send (a sharded job's shards) keep their own expiry, as in production.
    A job whose tasks expired in the queue (or were dropped) records no heartbeat: the cycle ends
    once nothing is queued or running any more, that job's wall None (see `Cycle.tasks`' expired)."""
    names = [job.name for job in jobs]
    cache.delete_many([PREFIX + name for name in names])
    counts, tasks, cpu = workers.counts(), workers.task_times(), workers.cpu()
    started = time.perf_counter()
    for job in jobs:
        job.apply_async(expires=timeout)
    walls: dict[str, float] = {}
    deadline, idle_since = time.monotonic() + timeout, None
    while len(walls) < len(names):
        stamps = cache.get_many([PREFIX + name for name in names if name not in walls])
        for name in names:
            if name not in walls and PREFIX + name in stamps:
                walls[name] = time.perf_counter() - started
        workers.check_alive()
        failed = {task for task, times in workers.task_times().items()
                  if times["failed"] > tasks.get(task, {}).get("failed", 0)}
        assert not failed, f"{sorted(failed)} failed: {workers.last_results()}\n{workers.log_tail()}"
        assert time.monotonic() < deadline, f"no heartbeat from {sorted(set(names) - set(walls))}: " \
                                            f"{workers.last_results()}\n{workers.log_tail()}"
        idle_since = (idle_since or time.monotonic()) if workers.idle() else None
        if idle_since is not None and time.monotonic() - idle_since > 2:
            break  # a job's task expired or was dropped: no heartbeat is coming
        time.sleep(0.05)
    wall = max(walls.values(), default=time.perf_counter() - started)
    after = _settled(workers)  # the last task notes its times just after its heartbeat
    cpu = workers.cpu() - cpu
    spent = {task: {what: times.get(what, 0) - tasks.get(task, {}).get(what, 0) for what in TIMES}
             for task, times in after.items()}
    now = workers.counts()
    return Cycle(wall=wall, cpu=cpu, job_walls={name: walls.get(name) for name in names},
                 counts={label: now[label] - counts[label] for label in now},
                 tasks={task: times for task, times in spent.items() if times.get("runs") or times.get("expired")})


def _settled(workers: MonitorWorkers, quiet: float = 1.0, longest: float = 15.0) -> dict[str, dict[str, float]]:
    """The task times once they have not changed for `quiet` seconds (at most `longest`)."""
    times, since, deadline = workers.task_times(), time.monotonic(), time.monotonic() + longest
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        now = workers.task_times()
        if now != times:
            times, since = now, time.monotonic()
    return times
