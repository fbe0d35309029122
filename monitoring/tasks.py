"""Celery tasks of the monitor: adapters that take no objects, decide nothing, and call services.

Hygiene shared by all: explicit names; soft/hard time limits below the Redis visibility timeout;
`expires` equal to the period, so a backlog never replays stale cycles; acks late with reject on
worker loss (settings); a Redis lock so two cycles of one job never overlap (a slow cycle makes
the next one skip and say so); retries with backoff and jitter for transient market-data errors.
Only the order jobs (`sync_orders`, `reconcile_orders`) may place an order (a filled entry gets
its bracket), so they are never retried automatically: an unclear outcome is reconciled by tag
on the next cycle, not resent.
"""

import logging
import os
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial

from celery import current_task, group, shared_task
from celery.signals import celeryd_init, worker_ready
from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection

from brokers.market import default_market
from brokers.models import BrokerMode
from tradeoptions import backups

from . import clock as market_clock
from . import context, partitions, services, sharding
from .heartbeats import heartbeat_record
from .marketdata import ProviderUnavailable, provider_for
from .schedules import JOBS

logger = logging.getLogger(__name__)
PERIODS = {job.task: job.every.total_seconds() for job in JOBS}
JOB_SETTINGS = {job.task: job.setting for job in JOBS}


# Who holds a job lock: this worker node and this boot of it (forked pool children inherit both).
# A lock left by an earlier boot of the same node was held by a worker that was killed.
_holder = {"node": "", "boot": uuid.uuid4().hex}


@celeryd_init.connect
def _remember_node(sender=None, **kwargs):
    _holder["node"] = str(sender or "")


def _node() -> str:
    """This worker's node name: from start-up, or else from the task being run (request.hostname),
    whichever order Celery imported this module in."""
    return _holder["node"] or str(getattr(getattr(current_task, "request", None), "hostname", None) or "")


def _lock_token() -> str:
    return f"{_node()}|{_holder['boot']}|{uuid.uuid4().hex}"


@contextmanager
def exclusive(name: str, ttl: float):
    """Hold the job's lock for at most `ttl` seconds; yields False when another cycle holds it."""
    lock = get_redis_connection("default").lock(f"lock:{name}", timeout=ttl, blocking=False)
    acquired = lock.acquire(blocking=False, token=_lock_token())
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except Exception:  # expired meanwhile: the next cycle may already hold a new lock
                logger.warning("%s outlived its lock", name)


def _enabled(task: str) -> bool:
    return getattr(settings, JOB_SETTINGS[task], True)


def monitor_task(name: str, *, retry: bool = True):
    period = PERIODS[name]
    # Limits scale with the period but stay under an hour, below Redis' visibility timeout.
    limits = {"soft_time_limit": min(max(period * 3, 60), 1800), "time_limit": min(max(period * 4, 90), 2400)}
    retries = {"autoretry_for": (ProviderUnavailable,), "retry_backoff": 2, "retry_backoff_max": min(period, 600),
               "retry_jitter": True, "max_retries": 3} if retry else {}
    return shared_task(name=name, bind=True, expires=period, **limits, **retries)


def _run(task, work, *, shard_task: str = ""):
    """One whole cycle under the job's lock. A job that can be sharded (`shard_task`) runs
    unsharded as shard count 0 in the job's "one count in force" scheme (`sharding.count_in_force`):
    while shards of the count before still hold their locks it skips (they may be syncing its
    accounts), and once it runs, a late shard of that count finds itself superseded. One Redis GET
    when the count is already 0."""
    if not _enabled(task.name):
        return "disabled"
    with exclusive(task.name, ttl=task.time_limit) as acquired:
        if not acquired:
            logger.info("%s skipped: the previous cycle is still running", task.name)
            return "skipped: previous cycle still running"
        if shard_task and (running := sharding.count_in_force(job=task.name, shard_task=shard_task, wanted=0)):
            _warn_held_shard_locks(task.name, shard_task=shard_task, count=running)
            return f"skipped: shards of {running} still running"
        outcome = work()
    heartbeat_record(task.name)  # a completed cycle, for /healthz (an exception records nothing)
    return outcome


def _warn_held_shard_locks(job: str, *, shard_task: str, count: int) -> None:
    """A WARNING, not INFO: the unsharded job records no heartbeat while it skips, and a shard lock
    a killed worker left behind (one not restarted under its node name, which would free it) holds
    it off until the lock expires, up to the shard's hard time limit. The holder and the time left
    let an operator tell that from a shard still at work (docs/operations.md, "count 0")."""
    held = sharding.held_shard_locks(shard_task=shard_task, count=count)
    logger.warning("%s skipped: shards of %s still running; it runs once their locks are gone: %s", job, count,
                   "; ".join(f"{key} held by {holder}, expires in {ttl:.0f} s" for key, ttl, holder in held)
                   or "none held now (released meanwhile)")


def _sharded() -> bool:
    """MONITOR_SHARDS: 0 (or less) runs each cycle as one task; a number or `auto` shards it."""
    return settings.MONITOR_SHARDS == sharding.AUTO or settings.MONITOR_SHARDS > 0


def _shards(task) -> int:
    """This cycle's shard count: MONITOR_SHARDS, or the live monitor workers' processes for `auto`."""
    return sharding.shard_count(settings.MONITOR_SHARDS, live_processes=partial(_monitor_processes, task.app))


def _monitor_processes(app) -> int:
    """The pool processes of the live workers on the `monitor` queue, asked of them (a second at most)."""
    inspect = app.control.inspect(timeout=1.0)
    return sharding.monitor_processes(inspect.stats(), inspect.active_queues())


@monitor_task("monitoring.snapshot_prices")
def snapshot_prices(self):
    at = market_clock.now()
    if _sharded():
        return _snapshot_fan_out(self, at=at)
    return _run(self, lambda: repr(services.snapshot_positions(provider=provider_for(), at=at)),
                shard_task=snapshot_shard.name)


SNAPSHOT_JOB = "monitoring.snapshot_prices"
ORDERS_JOB = "monitoring.sync_orders"
MATCH_JOB = "monitoring.match_paper_orders"


def _shared_for(job: str) -> int:
    """The shared quotes and the done set outlive the shard tasks (which expire after one period)."""
    return int(PERIODS[job] * 3)


SHARED_FOR = _shared_for(SNAPSHOT_JOB)


def _slot(job: str, at: datetime) -> datetime:
    return services.cycle_slot(at, timedelta(seconds=PERIODS[job]))


def _fan_out(task, *, at: datetime, share, shard_task) -> str:
    """Every sharded job's coordinator (MONITOR_SHARDS set): under the job's lock, `share(slot)`
    asks the provider once for everybody and leaves the answer in Redis, then one task per shard
    goes out as a Celery group. Its heartbeat is recorded by the last shard to finish, not here:
    a cycle is done when its shards are. A coordinator whose slot was sent already (delayed into
    the slot of the one after it) skips, as a cycle that finds the previous one running does."""
    slot = _slot(task.name, at)
    with exclusive(task.name, ttl=task.time_limit) as acquired:
        if not acquired:
            logger.info("%s skipped: the previous cycle is still running", task.name)
            return "skipped: the previous cycle is still running"
        if sharding.slot_was_sent(job=task.name, slot=slot):
            logger.info("%s skipped: the %s slot was sent already (a delayed cycle)", task.name, slot.isoformat())
            return f"skipped: the {slot.isoformat()} slot was sent already"
        # Counted only now, for a cycle that runs (`auto` asks the workers, up to a second).
        count = sharding.count_in_force(job=task.name, shard_task=shard_task.name, wanted=_shards(task))
        quoted = share(slot)
        group(shard_task.si(slot.isoformat(), at.isoformat(), index, count) for index in range(count)).apply_async()
        sharding.slot_sent(job=task.name, slot=slot, count=count, ttl=_shared_for(task.name))
    return f"{slot.isoformat()}: {quoted} contract(s) quoted, {count} shard(s) sent"


def _snapshot_fan_out(task, *, at: datetime) -> str:
    if not _enabled(task.name):
        return "disabled"
    if not market_clock.is_market_open(at):
        heartbeat_record(task.name)
        return "market closed"
    return _fan_out(task, at=at, shard_task=snapshot_shard, share=lambda slot: (
        sharding.snapshot_quotes_share(provider=provider_for(), job=task.name, slot=slot, ttl=SHARED_FOR)))


_TAKE_OVER = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
              "return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return false")


def _process_token() -> str:
    return f"{_node()}|{_holder['boot']}|{os.getpid()}-{uuid.uuid4().hex}"


def _left_by_a_lost_process(token: bytes | None) -> bool:
    """Was this lock taken by a pool process of this very worker that has died since (killed,
    OOM)? Celery re-queues such a process's task at once (acks late, reject on worker lost), and
    the redelivered copy must not wait out the lock its dead first try left behind."""
    holder = token.decode(errors="replace").split("|") if token else []
    if len(holder) != 3 or holder[0] != _node() or holder[1] != _holder["boot"]:
        return False
    pid = holder[2].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


SUPERSEDED = "superseded"


@contextmanager
def exclusive_shard(*, job: str, shard_task: str, shard: sharding.Shard, ttl: float):
    """`exclusive` for one shard: two copies of a shard never run at once, and a copy whose
    earlier try died with its pool process takes that try's lock over (an earlier boot's is freed
    at worker start, `release_locks_left_by`). Only a shard of the job's count in force takes its
    lock (`sharding.count_in_force`); one of a superseded count yields SUPERSEDED."""
    client = get_redis_connection("default")
    key, token, ttl_ms = sharding.shard_lock_key(shard_task, shard), _process_token(), int(ttl * 1000)
    taken = sharding.shard_lock_take(job=job, shard_task=shard_task, shard=shard, token=token, ttl_ms=ttl_ms)
    if taken < 0:
        yield SUPERSEDED
        return
    acquired = taken == 1
    if not acquired:
        held = client.get(key)
        if _left_by_a_lost_process(held):
            acquired = bool(client.register_script(_TAKE_OVER)(keys=[key], args=[held, token, ttl_ms]))
            if acquired:
                logger.warning("%s: took over the lock of a pool process that died", key)
    try:
        yield acquired
    finally:
        if acquired and not client.register_script(_RELEASE_IF_HELD_BY)(keys=[key], args=[token]):
            logger.warning("%s outlived its lock", key)


def shard_task(name: str, job: str):
    """A shard of `job`: acked late and re-queued when its process dies, expired after one period
    of the job, never retried by itself (a shard that fails leaves its accounts to the next cycle,
    like the unsharded job). Acked late, so a shard whose process died is redelivered once and
    redone if not noted done: the order shards may place orders, and the sync adopts by tag what
    the lost try placed (a retry on error, by contrast, could resend an order, so there is none)."""
    coordinator = PERIODS[job]
    return shared_task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True, expires=coordinator,
                       soft_time_limit=min(max(coordinator * 3, 60), 1800),
                       time_limit=min(max(coordinator * 4, 90), 2400))


def _quotes_age(*, job: str, slot: datetime, quoted_at: str) -> float:
    stamped = sharding.shared_quoted_at(job=job, slot=slot) or datetime.fromisoformat(quoted_at)
    return (market_clock.now() - stamped).total_seconds()


def _run_shard(task, *, job: str, slot: str, index: int, count: int, work, yields_to: str = "",
               quoted_at: str = "", fresh_for: float = 0) -> str:
    """One shard of one cycle slot, at most once a slot: a redelivered copy of a finished shard
    does nothing, two copies never run at once (a copy whose first try died takes its lock over),
    and the shard that completes the slot records the job's heartbeat. `work(shard, slot)` reads
    the coordinator's share (`QuotesGone` when it has expired: the accounts wait a cycle). While
    the job lock `yields_to` is held the shard does nothing and is not noted done (its accounts
    wait for the next cycle): checked after taking its own lock, as the other side does, so the
    two never run together. With `fresh_for`, a shard that starts more than that many seconds
    after its coordinator's quotes came in skips its slot, not noted done: it would fill at old
    prices stamped now. Their age counts from when the market answered (the share records it), not
    from the coordinator's start: a provider slower than `fresh_for` must not make every shard
    skip. `quoted_at` (the coordinator's start) stands in for a share written without the time."""
    shard, slot_at = sharding.Shard(index, count), datetime.fromisoformat(slot)
    if sharding.shard_is_done(job=job, slot=slot_at, shard=shard):
        return f"shard {shard} of {slot}: done already"
    if fresh_for and (age := _quotes_age(job=job, slot=slot_at, quoted_at=quoted_at)) > fresh_for:
        logger.info("%s shard %s skipped: its quotes are %.1f s old (at most %s)", job, shard, age, fresh_for)
        return f"shard {shard} of {slot}: skipped, its quotes are {age:.1f} s old"
    with exclusive_shard(job=job, shard_task=task.name, shard=shard, ttl=task.time_limit) as acquired:
        if acquired == SUPERSEDED:
            logger.info("%s shard %s skipped: the job's shard count has changed", job, shard)
            return f"shard {shard} of {slot}: skipped, its count is superseded"
        if not acquired:
            logger.info("%s shard %s skipped: it is still running for an earlier cycle", job, shard)
            return f"shard {shard} of {slot}: skipped, still running"
        if sharding.shard_is_done(job=job, slot=slot_at, shard=shard):
            return f"shard {shard} of {slot}: done already"
        if yields_to and get_redis_connection("default").exists(f"lock:{yields_to}"):
            logger.info("%s shard %s skipped: %s is running", job, shard, yields_to)
            return f"shard {shard} of {slot}: skipped, {yields_to} is running"
        try:
            report = work(shard, slot_at)
        except sharding.QuotesGone as gone:
            logger.warning("%s shard %s: %s; its accounts wait for the next cycle", job, shard, gone)
            return str(gone)
        if sharding.shard_done(job=job, slot=slot_at, shard=shard, ttl=_shared_for(job)):
            heartbeat_record(job)  # the cycle is complete: every shard of it is done
    return repr(report)


@shard_task("monitoring.snapshot_shard", SNAPSHOT_JOB)
def snapshot_shard(self, slot: str, at: str, index: int, count: int):
    """Mark one shard's accounts for one cycle slot, from the quotes the coordinator shared."""
    def mark(shard, slot_at):
        quotes = sharding.SharedQuotes(job=SNAPSHOT_JOB, slot=slot_at)
        return services.snapshot_positions(provider=quotes, at=datetime.fromisoformat(at), slot=slot_at, shard=shard)

    return _run_shard(self, job=SNAPSHOT_JOB, slot=slot, index=index, count=count, work=mark)


@monitor_task("monitoring.match_paper_orders")
def match_paper_orders(self):
    # Runs after hours too: that is when day orders expire. No quotes are fetched while closed.
    # The local paper broker's exit policies look at the quotes first, so a moved stop is matched now.
    if _sharded():
        return _orders_fan_out(self, at=market_clock.now(), shard_task=match_paper_orders_shard,
                               broker_modes=[BrokerMode.LOCAL_PAPER])
    provider = provider_for(clock=market_clock.now)
    return _run(self, lambda: f"{services.match_paper_orders(exit_policies_provider=provider)} fill(s)",
                shard_task=match_paper_orders_shard.name)


def _orders_fan_out(task, *, at: datetime, shard_task, broker_modes=None) -> str:
    """The order jobs' coordinator: option quotes from the market and stock prices from the
    provider, once for every shard (none while the market is closed: nothing is matched then)."""
    if not _enabled(task.name):
        return "disabled"
    if task.name == ORDERS_JOB and not services.orders_cycle_due(at):
        heartbeat_record(task.name)
        return "market closed"
    provider_factory = partial(provider_for, clock=market_clock.now)
    return _fan_out(task, at=at, shard_task=shard_task, share=lambda slot: sharding.order_quotes_share(
        market=default_market(), provider_factory=provider_factory, job=task.name, slot=slot, at=at,
        ttl=_shared_for(task.name), broker_modes=broker_modes))


def _shared(job: str, slot_at: datetime) -> tuple[sharding.SharedMarket, sharding.SharedStocks]:
    """An order shard's market and provider: the coordinator's quotes (never the provider's), and
    the real provider only for the daily bars that settle an expiry."""
    return (sharding.SharedMarket(default_market(), job=job, slot=slot_at),
            sharding.SharedStocks(partial(provider_for, clock=market_clock.now), job=job, slot=slot_at))


@shard_task("monitoring.match_paper_orders_shard", MATCH_JOB)
def match_paper_orders_shard(self, slot: str, at: str, index: int, count: int):
    """Match one shard's local-paper orders (its exit policies first), from the shared quotes,
    only while they are at most MATCH_QUOTES_MAX_AGE seconds old (a fill is stamped now)."""
    def match(shard, slot_at):
        market, stocks = _shared(MATCH_JOB, slot_at)
        return f"{services.match_paper_orders(market=market, exit_policies_provider=stocks, shard=shard)} fill(s)"

    return _run_shard(self, job=MATCH_JOB, slot=slot, index=index, count=count, work=match, quoted_at=at,
                      fresh_for=settings.MATCH_QUOTES_MAX_AGE)


@monitor_task("monitoring.take_bookends")
def take_bookends(self):
    at = market_clock.now()
    return _run(self, lambda: repr(services.take_due_bookends(provider=provider_for(), at=at)))


@monitor_task("monitoring.sync_orders", retry=False)
def sync_orders(self):
    at = market_clock.now()
    if _sharded():
        return _orders_fan_out(self, at=at, shard_task=orders_shard)
    # The provider reads the same clock as the cycle (one clock through every layer).
    return _run(self, lambda: repr(services.orders_cycle(provider=provider_for(clock=market_clock.now), at=at)),
                shard_task=orders_shard.name)


@shard_task("monitoring.orders_shard", ORDERS_JOB)
def orders_shard(self, slot: str, at: str, index: int, count: int):
    """One shard's order cycle (exit policies, net exits, matching, order sync, expiry, pin risk),
    from the shared quotes. It may place orders, so it is never retried: a redelivery after a
    lost process redoes a shard not yet done, and the sync adopts by tag what the lost try placed."""
    def cycle(shard, slot_at):
        market, stocks = _shared(ORDERS_JOB, slot_at)
        return services.orders_cycle(provider=stocks, market=market, at=datetime.fromisoformat(at), shard=shard)

    return _run_shard(self, job=ORDERS_JOB, slot=slot, index=index, count=count, work=cycle,
                      yields_to=RECONCILE_JOB)


RECONCILE_JOB = "monitoring.reconcile_orders"


def _locks_held(prefix: str) -> bool:
    return next(get_redis_connection("default").scan_iter(match=f"lock:{prefix}*", count=1000), None) is not None


@shared_task(name="monitoring.reconcile_orders", bind=True, expires=600, soft_time_limit=300, time_limit=400)
def reconcile_orders(self):
    """The order sync with its orphan guard, once, whatever the hour: sent when a worker starts
    (after a deploy or a crash) and available to ops. Not on the beat schedule: outside the
    session nothing polls. Shares the order sync's lock, so the two never overlap; sharded, it
    also holds its own, which order shards yield to, and skips while one of them runs."""
    with exclusive(ORDERS_JOB, ttl=self.time_limit) as acquired:
        if not acquired:
            return "skipped: an order sync is running"
        with exclusive(RECONCILE_JOB, ttl=self.time_limit) as mine:
            if not mine:
                return "skipped: a reconcile is running"
            if _locks_held(f"{orders_shard.name}:"):
                return "skipped: order shards are running"
            return repr(services.sync_orders(at=market_clock.now()))


@monitor_task("monitoring.request_forensics")
def request_forensics(self):
    def send():
        days = services.forensic_days_due(at=market_clock.now())
        for day in days:  # by name: monitoring does not import analytics (they are peers)
            self.app.send_task("analytics.compute_targets", args=[day.isoformat()])
        return f"forensics requested for {[day.isoformat() for day in days]}"

    return _run(self, send)


@monitor_task("monitoring.request_reports")
def request_reports(self):
    def send():
        days = services.report_days_due(at=market_clock.now())
        for day in days:  # by name: monitoring does not import analytics (they are peers)
            self.app.send_task("analytics.send_reports", args=[day.isoformat()])
        return f"reports requested for {[day.isoformat() for day in days]}"

    return _run(self, send)


@monitor_task("monitoring.purge_idempotency_keys")
def purge_idempotency_keys(self):
    from trades.services import idempotency_keys_purge

    return _run(self, lambda: f"{idempotency_keys_purge()} key(s) purged")


# The entry context is background work: a spent rate budget defers it (a fresh run later, with
# jitter, nothing held meanwhile) up to ENTRY_CONTEXT_DEFERRALS times; a source that is down is
# retried with backoff up to ENTRY_CONTEXT_OUTAGE_RETRIES times. Both count in `request.retries`,
# so the task's bound is their sum and each kind is bounded on its own by what is passed down.
ENTRY_CONTEXT_OUTAGE_RETRIES = 3
ENTRY_CONTEXT_DEFERRALS = 30


@shared_task(name="monitoring.collect_entry_context", bind=True, expires=24 * 3600, soft_time_limit=120,
             time_limit=180, autoretry_for=(ProviderUnavailable,), retry_backoff=30, retry_backoff_max=600,
             retry_jitter=True, max_retries=ENTRY_CONTEXT_OUTAGE_RETRIES + ENTRY_CONTEXT_DEFERRALS)
def collect_entry_context(self, trade_id: int, owner_id: int, entry_at: str, deferrals: int = 0):
    """Fill a new trade's missing context as of its entry (`entry_at`, ISO 8601), as its owner.
    Idempotent: only empty parts are written. Its market data is background work for the rate
    budget: when no slot is left it defers itself instead of waiting in a worker slot. A source
    that is down is retried (the bars before the entry will not change); on the last attempt
    what is missing is recorded instead."""
    report = context.entry_context_collect(
        trade_id=trade_id, owner_id=owner_id, entry_at=datetime.fromisoformat(entry_at),
        provider=partial(provider_for, background=True),
        retry_unavailable=self.request.retries - deferrals < ENTRY_CONTEXT_OUTAGE_RETRIES,
        defer_throttled=deferrals < ENTRY_CONTEXT_DEFERRALS, deferrals=deferrals,
    )
    if report.retry_in is not None:
        raise self.retry(countdown=report.retry_in, kwargs={"deferrals": deferrals + 1})
    return repr(report)


def entry_context_requested(*, trade_id: int, owner_id: int, entry_at: datetime) -> None:
    """The collector the trades app calls once an open has committed: queue the task, with ids and
    an ISO instant (JSON-safe), without publish retries, so a down queue fails fast for the open."""
    collect_entry_context.apply_async(args=[trade_id, owner_id, entry_at.isoformat()], retry=False)


@monitor_task("monitoring.resend_webhooks")
def resend_webhooks(self):
    from trades.services import channel_messages_resend, webhook_events_resend

    # Only queues (on the webhooks queue): lost webhook tasks, lost channel messages, and channel
    # messages whose quiet hours are over.
    return _run(self, lambda: f"{webhook_events_resend()} webhook event(s) and "
                              f"{channel_messages_resend()} channel message(s) queued again")


@monitor_task("monitoring.maintain_snapshot_partitions", retry=False)
def maintain_snapshot_partitions(self):
    def maintain():
        at = market_clock.now()
        made = partitions.snapshot_partitions_prepare(at=at, ahead=settings.SNAPSHOT_PARTITIONS_AHEAD)
        retired = partitions.snapshot_partitions_retire(at=at, keep_months=settings.SNAPSHOT_RETENTION_MONTHS,
                                                        archive_dir=settings.SNAPSHOT_ARCHIVE_DIR)
        return f"partitions made: {made or 'none'}; archived and dropped: {[str(a.path) for a in retired] or 'none'}"

    return _run(self, maintain)


@monitor_task("monitoring.back_up_database", retry=False)
def back_up_database(self):
    def back_up():
        if not backups.backup_due(at=market_clock.now(), directory=settings.BACKUP_DIR, hour=settings.BACKUP_HOUR):
            return "not due"
        if not settings.BACKUP_DATABASE_URL:
            logger.error("no nightly backup: BACKUP_DATABASE_URL is not set (the tradeoptions_backup role's URL)")
            return "not configured"
        dump = backups.backup_take(directory=settings.BACKUP_DIR, keep=settings.BACKUP_KEEP,
                                   database_url=settings.BACKUP_DATABASE_URL, timeout=self.soft_time_limit)
        return f"backup written: {dump}"

    return _run(self, back_up)


_RELEASE_IF_HELD_BY = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def release_locks_left_by(node: str) -> list[str]:
    """Free the job locks an earlier boot of worker `node` still holds: that boot was killed
    (SIGKILL, OOM, power) before its `finally`, and without this every job it was running would
    skip as "still running" until the lock's TTL (up to its hard time limit, minutes). Locks of
    other nodes, and of this boot, are left alone. Returns the jobs freed."""
    client = get_redis_connection("default")
    release = client.register_script(_RELEASE_IF_HELD_BY)
    freed = []
    for key in client.scan_iter(match="lock:*"):
        token = client.get(key)
        holder = token.decode(errors="replace").split("|") if token else []
        stale = len(holder) == 3 and holder[0] == node and holder[1] != _holder["boot"]
        if stale and release(keys=[key], args=[token]):
            freed.append(key.decode().removeprefix("lock:"))
    for job in freed:
        logger.warning("%s: released the lock a killed boot of %s left behind", job, node)
    return freed


@worker_ready.connect
def reconcile_at_worker_start(sender=None, **kwargs):
    """Reconcile orders with trades when a worker starts (after a deploy or a crash), once even
    when several workers start together. A killed earlier boot of this node first gives back
    its job locks, so its jobs (and this reconcile) run now, not after the locks expire."""
    node = _holder["node"] or str(getattr(sender, "hostname", "") or "")
    if node:
        release_locks_left_by(node)
    if cache.add("reconcile-at-start", 1, 60):
        reconcile_orders.delay()
