"""A real Celery worker that says when each task started and ended, for the load scenarios
(tests/test_faults_burst.py).

Run as `python -m tests.fakes.timed_worker <celery worker arguments>` with the usual worker
environment plus TIMINGS_KEY: a Redis list onto which every task run (in the pool's child
processes too) pushes one JSON line {"id", "task", "retries", "event", "state", "at"}: `event`
is "started", "ended" (with the run's `state`: SUCCESS, RETRY, FAILURE) or "expired" (the
worker discarded the message: its `expires` had passed), `at` the Redis server's clock (the one
clock the test and every worker share, whatever time-machine does to the test's). The worker
pushes {"event": "ready"} once it consumes.

`TimedWorkers` is the test's side. A test helper: nothing in the application imports it.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.fakes.fault_worker import database_url, queue_keys

ROOT = Path(__file__).resolve().parents[2]
WAIT = 90  # seconds: a cold worker on a loaded two-core machine


def redis_time(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def _recorder():
    import redis
    from celery.signals import task_postrun, task_prerun, task_revoked, worker_ready
    from django.conf import settings

    key = os.environ["TIMINGS_KEY"]
    clients: dict[int, redis.Redis] = {}

    def push(**line) -> None:
        client = clients.get(os.getpid())  # one connection per process: pool children fork
        if client is None:
            client = clients[os.getpid()] = redis.Redis.from_url(settings.REDIS_URL)
        client.rpush(key, json.dumps({**line, "at": redis_time(client)}))

    def run(event):
        def record(sender=None, task_id=None, task=None, state=None, **kwargs):
            push(id=task_id, task=sender.name, retries=task.request.retries, event=event, state=state)

        return record

    def expired(sender=None, request=None, expired=False, **kwargs):
        push(id=request.id, task=sender.name, retries=0, event="expired" if expired else "revoked")

    # weak=False: the receivers are closures that nothing else keeps alive.
    task_prerun.connect(run("started"), weak=False)
    task_postrun.connect(run("ended"), weak=False)
    task_revoked.connect(expired, weak=False)
    worker_ready.connect(lambda **kwargs: push(event="ready"), weak=False)


def main() -> None:
    import django

    django.setup()
    _recorder()
    from tradeoptions.celery import app

    app.worker_main(["worker", *sys.argv[1:]])


# -- the test's side ---------------------------------------------------------------------------


class TimedWorkers:
    """Starts `tests.fakes.timed_worker` processes on chosen queues, all recording to one list."""

    def __init__(self, redis_client, key: str, environment: dict[str, str]) -> None:
        self.redis, self.key = redis_client, key
        self.environment = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.test", "DATABASE_URL": database_url(),
            "TIMINGS_KEY": key, **environment,
        }
        self.processes: list[tuple[subprocess.Popen, Path]] = []
        self.redis.delete(key, *queue_keys())

    def start_as_in_the_procfile(self, name: str) -> None:
        """The Procfile's worker `name` (`make run`), with its queues and concurrency, under a
        node name of this test's."""
        line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}: "))
        words = line.split(": ", 1)[1].split()
        assert words[:4] == ["celery", "-A", "tradeoptions", "worker"], line
        arguments = words[4:]
        del arguments[arguments.index("--hostname"):arguments.index("--hostname") + 2]
        self.start(name, arguments)

    def start(self, name: str, arguments: list[str]) -> None:
        log = ROOT / ".data" / f"timed-worker-{name}-{os.getpid()}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.timed_worker", *arguments, "--without-mingle", "--without-gossip",
                 "--without-heartbeat", "--hostname", f"{name}-{os.getpid()}@test"],
                cwd=ROOT, env=self.environment, stdout=out, stderr=subprocess.STDOUT,
            )
        self.processes.append((process, log))

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.redis.lrange(self.key, 0, -1)]

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while sum(line["event"] == "ready" for line in self.lines()) < len(self.processes):
            self.check_alive()
            assert time.monotonic() < deadline, f"a worker never became ready\n{self.logs()}"
            time.sleep(0.2)

    def check_alive(self) -> None:
        for process, log in self.processes:
            assert process.poll() is None, log.read_text()[-3000:]

    def logs(self) -> str:
        return "\n".join(log.read_text()[-2000:] for _, log in self.processes)

    def close(self) -> None:
        for process, _ in self.processes:
            process.terminate()
        for process, log in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.unlink(missing_ok=True)
        self.redis.delete(self.key, *queue_keys())


if __name__ == "__main__":
    main()
