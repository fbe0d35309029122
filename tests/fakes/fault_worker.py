"""A real Celery worker with one fault hook, for the fault scenarios (tests/test_faults_*.py).

Run as `python -m tests.fakes.fault_worker` with the usual worker environment plus:

* FAULT_QUOTES: JSON {option symbol: [bid, ask]}: the market every layer of the worker sees (a
  `HandDrivenMarket`, open), so fills do not depend on a simulator.
* FAULT_NOW: ISO instant the worker's market clock is frozen at (the cycle's slot).
* FAULT_AT: "<module>:<function>:<n>:<before|after>": the n-th call of that function stops the
  worker before or after the real call. It sets the Redis key FAULT_KEY to "paused" and waits
  until the key says "resume" (then carries on) or the test kills the process. The test kills
  the worker at a known line instead of after a guessed sleep. Calls are counted in Redis, across
  a prefork pool's processes, and the pausing process leaves its pid (FAULT_KEY:pid), so a test can
  kill one pool process alone (Celery then re-queues its task: acks late, reject on worker lost).
* FAULT_COUNT: "<module>:<Class>.<method>", or several comma-separated: every call of each is
  counted in Redis (FAULT_KEY:count:<spec>), across the pool's processes: what a test counts at
  the provider, what a benchmark counts at the database cursor.
* FAULT_TASK_TIMES: when set, every task run adds its CPU seconds (the process's own, so a solo
  pool's) and wall seconds to the Redis hash FAULT_KEY:tasks, under "<task name>|cpu", "|wall",
  "|runs" and "|failed" (a run that did not end in SUCCESS), counts "|started" runs and
  "|expired" messages (discarded unrun: their `expires` had passed), and leaves its result's text
  under "<task name>|last"; the worker sets FAULT_KEY:ready once it consumes. What a benchmark splits a
  cycle's CPU by, job by job (bench/monitor_workers.py).

`FaultWorker` is the test's side: it starts, pauses, resumes and kills such workers. A test
helper: nothing in the application imports it.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
WAIT = 90  # seconds: a cold worker on a loaded two-core machine
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per step, the step appended after 0


def queue_keys() -> list[str]:
    """Every queue's Redis lists (settings.CELERY_TASK_QUEUES), one per priority step."""
    from django.conf import settings

    return [f"{queue.name}\x06\x16{step}" if step else queue.name
            for queue in settings.CELERY_TASK_QUEUES for step in PRIORITY_STEPS]


def _pause(client, key: str) -> None:
    client.set(f"{key}:pid", os.getpid())
    client.set(key, "paused")
    while client.get(key) != b"resume":
        time.sleep(0.05)
    client.set(key, "resumed")


def _install_hook(spec: str, key: str) -> None:
    import redis
    from django.conf import settings

    module_name, function_name, nth, when = spec.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, function_name)
    client = redis.Redis.from_url(settings.REDIS_URL)

    def hooked(*args, **kwargs):
        hit = client.incr(f"{key}:calls") == int(nth)
        if hit and when == "before":
            _pause(client, key)
        result = real(*args, **kwargs)
        if hit and when == "after":
            _pause(client, key)
        return result

    setattr(module, function_name, hooked)


def _install_counter(spec: str, key: str) -> None:
    import redis
    from django.conf import settings

    if "," in spec:
        for one in spec.split(","):
            _install_counter(one, key)
        return
    module_name, path = spec.split(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    real = getattr(owner, name)
    client = redis.Redis.from_url(settings.REDIS_URL)

    def counted(*args, **kwargs):
        client.incr(f"{key}:count:{spec}")
        return real(*args, **kwargs)

    setattr(owner, name, counted)


def _install_task_times(key: str) -> None:
    import redis
    from celery.signals import task_postrun, task_prerun, task_revoked, worker_ready
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    started: dict[str, tuple[float, float]] = {}

    def prerun(task_id=None, task=None, **kwargs):
        client.hincrby(f"{key}:tasks", f"{task.name}|started", 1)
        started[task_id] = (time.process_time(), time.perf_counter())

    def revoked(sender=None, expired=False, **kwargs):
        client.hincrby(f"{key}:tasks", f"{sender.name}|{'expired' if expired else 'revoked'}", 1)

    def postrun(task_id=None, task=None, retval=None, state=None, **kwargs):
        cpu, wall = started.pop(task_id, (time.process_time(), time.perf_counter()))
        with client.pipeline(transaction=False) as pipe:
            pipe.hincrbyfloat(f"{key}:tasks", f"{task.name}|cpu", time.process_time() - cpu)
            pipe.hincrbyfloat(f"{key}:tasks", f"{task.name}|wall", time.perf_counter() - wall)
            pipe.hincrby(f"{key}:tasks", f"{task.name}|runs", 1)
            pipe.hincrby(f"{key}:tasks", f"{task.name}|failed", int(state != "SUCCESS"))
            pipe.hset(f"{key}:tasks", f"{task.name}|last", str(retval)[:300])
            pipe.execute()

    # weak=False: the receivers are closures that nothing else keeps alive.
    task_prerun.connect(prerun, weak=False)
    task_postrun.connect(postrun, weak=False)
    task_revoked.connect(revoked, weak=False)
    worker_ready.connect(lambda **kwargs: client.set(f"{key}:ready", 1), weak=False)


def _install_market(quotes: dict, now: str) -> None:
    from brokers import market as market_registry
    from monitoring import clock as market_clock
    from tests.fakes.market import HandDrivenMarket

    hand = HandDrivenMarket(datetime.fromisoformat(now))
    for symbol, (bid, ask) in quotes.items():
        hand.set_quote(symbol, str(Decimal(bid)), str(Decimal(ask)))
    market_registry.use_market(hand)
    market_clock.now = lambda: hand.moment


def main() -> None:
    import django

    django.setup()
    if os.environ.get("FAULT_QUOTES"):
        _install_market(json.loads(os.environ["FAULT_QUOTES"]), os.environ["FAULT_NOW"])
    if os.environ.get("FAULT_AT"):
        _install_hook(os.environ["FAULT_AT"], os.environ["FAULT_KEY"])
    if os.environ.get("FAULT_COUNT"):
        _install_counter(os.environ["FAULT_COUNT"], os.environ["FAULT_KEY"])
    if os.environ.get("FAULT_TASK_TIMES"):
        _install_task_times(os.environ["FAULT_KEY"])
    from tradeoptions.celery import app

    app.worker_main(["worker", *sys.argv[1:]])


# -- the test's side ---------------------------------------------------------------------------


def database_url() -> str:
    """The database this test run uses, as a URL a subprocess can be given."""
    from django.db import connection

    db = connection.settings_dict
    if db["HOST"].startswith("/"):
        return f"postgres://{db['USER']}@/{quote(db['HOST'], safe='')}/{db['NAME']}"
    return f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'])}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class FaultWorker:
    """Starts, stops and kills `tests.fakes.fault_worker` processes, one at a time."""

    def __init__(self, redis_client, redis_url: str, *, quotes: dict, now: datetime) -> None:
        self.redis = redis_client
        self.redis_url = redis_url
        self.quotes, self.now = quotes, now
        self.key = f"fault:{uuid.uuid4().hex}"
        self.node = f"faults-{os.getpid()}@test"  # the same node name across restarts, as a service has
        self.process: subprocess.Popen | None = None
        self.log = ROOT / ".data" / f"fault-worker-{os.getpid()}.log"
        self.purge()

    def purge(self) -> None:
        """Drop jobs another scenario queued and no worker took: they must not run in this one."""
        self.redis.delete(*queue_keys())

    def start(self, *, hook: str = "", pool: tuple[str, ...] = ("--pool", "solo"), count: str = "",
              env: dict[str, str] | None = None) -> None:
        self.redis.delete(*self._keys())
        environment = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.test", "DATABASE_URL": database_url(),
            "REDIS_URL": self.redis_url, "FORCE_MARKET_OPEN": "true", "FAULT_KEY": self.key, "FAULT_AT": hook,
            "FAULT_QUOTES": json.dumps(self.quotes), "FAULT_NOW": self.now.isoformat(), "FAULT_COUNT": count,
            **(env or {}),
        }
        self.log.parent.mkdir(exist_ok=True)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.fault_worker", *pool, "--loglevel", "INFO",
                 "--without-mingle", "--without-gossip", "--without-heartbeat", "--hostname", self.node],
                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            )

    def wait_for(self, state: str = "paused") -> None:
        deadline = time.monotonic() + WAIT
        while self.redis.get(self.key) != state.encode():
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the worker never reached its hook\n{self.log.read_text()[-3000:]}"
            time.sleep(0.05)

    def counted(self, spec: str) -> int:
        return int(self.redis.get(f"{self.key}:count:{spec}") or 0)

    def ready(self) -> bool:
        """Consuming (FAULT_TASK_TIMES only)."""
        return bool(self.redis.get(f"{self.key}:ready"))

    def task_times(self) -> dict[str, str]:
        """FAULT_TASK_TIMES' hash: "<task name>|cpu" and the like, as text."""
        return {field.decode(): value.decode() for field, value in self.redis.hgetall(f"{self.key}:tasks").items()}

    def kill_paused_process(self) -> None:
        """SIGKILL the pool process paused at the hook, not the worker: as an OOM kill would."""
        os.kill(int(self.redis.get(f"{self.key}:pid")), signal.SIGKILL)

    def resume(self) -> None:
        self.redis.set(self.key, "resume")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def close(self) -> None:
        """Stop the worker, drop what it left queued and its log."""
        self.stop()
        self.purge()
        self.redis.delete(*self._keys())
        self.log.unlink(missing_ok=True)

    def _keys(self) -> list:
        return [self.key, f"{self.key}:calls", f"{self.key}:pid", f"{self.key}:tasks", f"{self.key}:ready",
                *self.redis.keys(f"{self.key}:count:*")]


if __name__ == "__main__":
    main()
