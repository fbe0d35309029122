"""The API under polling load: gunicorn with the production settings, N traders polling.

500 simulated traders (BENCH_LOAD_USERS), each polling `GET /api/trades?status=OPEN` every 15 s
with an occasional detail and snapshot read, for 5 minutes (BENCH_LOAD_SECONDS), driven by locust
headless (bench/load/locustfile.py) against gunicorn (BENCH_LOAD_WORKERS workers) on this machine.
Prints requests/s, p50/p95/p99 and errors per endpoint, and the server's CPU time.

Run: `make bench ARGS="bench/bench_api_load.py"`. Target: zero errors, p95 under 100 ms.
"""

import csv
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
import requests
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection
from knox.models import AuthToken

from brokers.occ import build_symbol
from monitoring.models import PriceSnapshot
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus

USERS = int(os.environ.get("BENCH_LOAD_USERS", 500))
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", 300))
WORKERS = int(os.environ.get("BENCH_LOAD_WORKERS", 3))
OPEN_PER_USER, CLOSED_PER_USER, SNAPSHOTS_PER_TRADE = 3, 10, 120
ROOT = Path(__file__).resolve().parent.parent
EXPIRY = date(2026, 12, 18)
AT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _trade(owner, n: int, status: str) -> PaperTrade:
    strike = Decimal(500 + n % 40 * 5)
    closed = status == TradeStatus.CLOSED
    return PaperTrade(
        owner=owner, ticker="SPY", option_type="CALL", strike=strike, expiry=EXPIRY,
        option_symbol=build_symbol("SPY", EXPIRY, "CALL", strike), qty=1 + n % 3, entry_price=Decimal("4.30"),
        entry_date=AT - timedelta(days=n % 5), sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), status=status,
        current_price=Decimal("4.55"), close_price=Decimal("5.10") if closed else None, filled_qty=1 + n % 3,
        close_date=AT if closed else None, close_reason="TP_HIT" if closed else None,
        realized_pnl=Decimal("80.00") if closed else None,
    )


@pytest.fixture
def traders(django_db_blocker):
    """USERS traders with open and closed trades, price histories and one API token each."""
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"load{i}") for i in range(USERS)])
    with tenancy.system_context():
        trades = PaperTrade.objects.bulk_create(
            [_trade(user, n, TradeStatus.OPEN) for user in users for n in range(OPEN_PER_USER)]
            + [_trade(user, n, TradeStatus.CLOSED) for user in users for n in range(CLOSED_PER_USER)],
            batch_size=2000)
        held = [t for t in trades if t.status == TradeStatus.OPEN]
        PriceSnapshot.objects.bulk_create([
            PriceSnapshot(trade=t, owner_id=t.owner_id, timestamp=AT - timedelta(minutes=5 * k), kind="INTRADAY",
                          mark_price=Decimal("4.30") + Decimal(k % 17) / 100, source="simulated")
            for t in held for k in range(SNAPSHOTS_PER_TRADE)], batch_size=5000)
    first_open = {t.owner_id: t.pk for t in reversed(held)}
    return [(AuthToken.objects.create(user=user)[1], first_open[user.pk]) for user in users]


def _database_url() -> str:
    """The app role's URL, pointed at the benchmark's own (test) database."""
    base, _, _ = os.environ["DATABASE_URL"].rpartition("/")
    return f"{base}/{connection.settings_dict['NAME']}"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_gunicorn(port: int, log) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.production", "DJANGO_READ_DOT_ENV": "false",
           "DATABASE_URL": _database_url(), "SECRET_KEY": "load-" + Fernet.generate_key().decode() * 2,
           "ENCRYPTION_KEYS": Fernet.generate_key().decode(), "THROTTLE_USER": "100000/min"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "tradeoptions.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # its JSON access lines, kept apart
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not answer /healthz")


def _cpu_seconds(process: psutil.Process) -> float:
    tree = [process, *process.children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in tree if p.is_running())


@pytest.mark.django_db(transaction=True)
def bench_polling_load(traders, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{token} {trade_id}\n" for token, trade_id in traders))
    port = _free_port()
    server_log = (tmp_path / "gunicorn.log").open("w")
    server = _start_gunicorn(port, server_log)
    try:
        cpu = _cpu_seconds(psutil.Process(server.pid))
        subprocess.run(
            [str(Path(sys.executable).with_name("locust")), "-f", str(ROOT / "bench/load/locustfile.py"), "--headless",
             "-u", str(USERS), "-r", str(max(1, USERS // 10)), "-t", f"{SECONDS}s", "--host",
             f"http://127.0.0.1:{port}", "--csv", str(tmp_path / "load"), "--only-summary", "--loglevel", "WARNING"],
            env={**os.environ, "LOAD_TOKENS": str(tokens)}, check=False, timeout=SECONDS + 120)
        cpu = _cpu_seconds(psutil.Process(server.pid)) - cpu
    finally:
        server.terminate()
        server.wait(timeout=30)
        server_log.close()
    rows = list(csv.DictReader((tmp_path / "load_stats.csv").open()))
    print(f"\n{USERS} traders polling every 15 s for {SECONDS} s; gunicorn {WORKERS} workers, production settings")
    print(f"{'endpoint':<34}{'requests':>9}{'errors':>8}{'req/s':>8}"
          f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for row in rows:
        print(f"{row['Name']:<34}{row['Request Count']:>9}{row['Failure Count']:>8}{float(row['Requests/s']):>8.1f}"
              f"{row['50%']:>8}{row['95%']:>8}{row['99%']:>8}{float(row['Max Response Time']):>8.0f}")
    print(f"server CPU: {cpu:.1f} s over {SECONDS} s ({100 * cpu / SECONDS:.0f}% of one core)")
    total = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0
    failures = (tmp_path / "load_failures.csv").read_text()
    assert int(total["Failure Count"]) == 0, failures
