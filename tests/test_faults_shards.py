"""The sharded snapshot cycle through a real Celery worker on Redis (monitoring/sharding.py): the
beat's one coordinator fans out N shard tasks, every held trade of every tenant gets exactly one
snapshot a slot, the provider is asked once however many shards run, and a pool process killed
in the middle of a shard has its shard redone by Celery (acks late, reject on worker lost)
without a row written twice or a trade left out.

The worker is `tests.fakes.fault_worker` (a real `celery worker` on the test Redis and the test
database, connecting as the worker role, so row-level security applies as in production), with a
prefork pool so that a pool process can die while its worker lives on.
"""

import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache

from monitoring import sharding, tasks
from monitoring.heartbeats import PREFIX
from monitoring.models import PriceSnapshot
from monitoring.services import cycle_slot
from tests.factories import PaperTradeFactory, UserFactory
from tests.fakes.fault_worker import WAIT, FaultWorker
from tradeoptions import tenancy

AT = datetime(2026, 12, 1, 15, 0, 5, tzinfo=UTC)  # Tuesday 10:00 in New York: the worker's frozen clock
PROVIDER_CALLS = "monitoring.marketdata.simulated:SimulatedProvider.option_quotes"


@pytest.fixture
def fault_worker(redis_client, settings):
    worker = FaultWorker(redis_client, settings.REDIS_URL, quotes={}, now=AT)
    yield worker
    worker.close()


@pytest.fixture
def book(transactional_db, redis_client):
    """Nine traders, one to three held calls each: every shard of 1, 2 or 4 has accounts. The
    worker's clock is frozen, so each scenario starts without an earlier one's slot in Redis."""
    cache.delete(PREFIX + tasks.SNAPSHOT_JOB)
    for key in redis_client.scan_iter(match="*cycle-*"):
        redis_client.delete(key)
    return [PaperTradeFactory(owner=user, entry_price=Decimal("5"))
            for n, user in enumerate(UserFactory.create_batch(9)) for _ in range(1 + n % 3)]


def snapshot_rows(trades) -> Counter:
    with tenancy.system_context():
        return Counter(PriceSnapshot.objects.filter(trade__in=trades).values_list("trade_id", "timestamp"))


def until_every_trade_is_marked(trades, worker: FaultWorker) -> Counter:
    deadline = time.monotonic() + WAIT
    while len(rows := snapshot_rows(trades)) < len(trades) or cache.get(PREFIX + tasks.SNAPSHOT_JOB) is None:
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{len(rows)} of {len(trades)} marked\n{worker.log.read_text()[-3000:]}"
        time.sleep(0.2)
    return rows


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_n_shards_mark_every_trade_once_from_one_provider_call(book, fault_worker, shards):
    fault_worker.start(pool=("--pool", "prefork", "--concurrency", "2"), count=PROVIDER_CALLS,
                       env={"MONITOR_SHARDS": str(shards)})
    tasks.snapshot_prices.apply_async(expires=300)
    rows = until_every_trade_is_marked(book, fault_worker)
    assert rows == Counter({(trade.pk, cycle_slot(AT)): 1 for trade in book})
    # Rows are written ON CONFLICT DO NOTHING, so they cannot show a shard run twice: its runs can.
    assert sharding.shard_runs(job=tasks.SNAPSHOT_JOB, slot=cycle_slot(AT), count=shards) == dict.fromkeys(
        range(shards), 1)
    assert fault_worker.counted(PROVIDER_CALLS) == 1  # one batched quote request for the cycle, whatever N
    log = fault_worker.log.read_text()
    assert log.count("monitoring.snapshot_shard[") >= shards  # received (and succeeded) lines of N shards
    assert f"{shards} shard(s) sent" in log


@pytest.mark.parametrize("hook", [
    "monitoring.services:_update_marks:1:before",    # inside the shard's transaction: nothing committed
    "monitoring.services:snapshot_positions:1:after",  # committed, not yet noted done
])
def test_a_pool_process_killed_mid_shard_has_its_shard_redone_once(book, fault_worker, hook):
    fault_worker.start(hook=hook, pool=("--pool", "prefork", "--concurrency", "1"), count=PROVIDER_CALLS,
                       env={"MONITOR_SHARDS": "2"})
    tasks.snapshot_prices.apply_async(expires=300)
    fault_worker.wait_for("paused")
    fault_worker.kill_paused_process()  # the worker lives on; Celery re-queues the lost shard
    rows = until_every_trade_is_marked(book, fault_worker)
    assert rows == Counter({(trade.pk, cycle_slot(AT)): 1 for trade in book})
    # Each shard ran to its end once: the killed try never did, its redone copy did, no copy after that.
    assert sharding.shard_runs(job=tasks.SNAPSHOT_JOB, slot=cycle_slot(AT), count=2) == {0: 1, 1: 1}
    assert fault_worker.counted(PROVIDER_CALLS) == 1  # the redone shard read the shared quotes, not the provider
    log = fault_worker.log.read_text()
    assert "WorkerLostError" in log or "exited prematurely" in log, log[-3000:]
    assert "took over the lock of a pool process that died" in log  # not left waiting out the dead try's lock
