"""Trades 0014–0017 (commissions per trade, the history index) on a table of 200,000 trades
(BENCH_MIGRATION_TRADES), while a second connection updates single trades in a loop, as the
monitor cycle and the API do.

For each migration after trades 0013, in the order `migrate` applies them: its wall time
(`call_command("migrate", "trades", <name>)`, as the schema owner, post-migrate grants included)
and the longest time one single-row UPDATE (system context, its own transaction) took while that
migration ran, which is how long a writer waits on the migration's locks, and of that how long
the updater's backend was seen waiting on a lock (pg_stat_activity polled every 5 ms; the rest
is the busy 2-core machine). The updater's median
and longest UPDATE with no migration running are printed first, for scale.

The trades are 100 users' mix of closed (1 in 10 expired), open, and never-filled trades, loaded
at 0013 in one INSERT … SELECT generate_series, then VACUUM ANALYZE. The script reads the
migration graph, so it measures whatever migrations the checkout has (docs/benchmarks.md shows the
one-transaction migrations of before as well).

Run: `make bench ARGS="bench/migration_commission_bench.py"` (named: it is not collected with
the bench_*.py files, being a few minutes long).
"""

import os
import random
import statistics
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.migrations.loader import MigrationLoader

from brokers.occ import build_symbol
from tradeoptions import tenancy
from tradeoptions.db import as_schema_owner
from trades.models import CloseReason, PaperTrade, TradeStatus

TRADES = int(os.environ.get("BENCH_MIGRATION_TRADES", 200_000))
USERS = 100
BEFORE = "0013_account_strategy_presets"
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
EXPIRY = date(2026, 12, 18)
PAUSE = 0.002  # seconds between the updater's UPDATEs


def _template(owner, n):
    """One of ten kinds of trade: 6 closed (1 of them expired), 2 open, 2 never filled."""
    strike = Decimal(500 + n)
    common = dict(owner=owner, ticker="SPY", option_type="CALL", strike=strike, expiry=EXPIRY, qty=1 + n % 4,
                  option_symbol=build_symbol("SPY", EXPIRY, "CALL", strike), sl_price=Decimal("0.50"),
                  tp_price=Decimal("9.00"))
    if n in (8, 9):
        return PaperTrade(**common, status=TradeStatus.CANCELED, status_reason="Not filled.")
    filled = dict(filled_qty=1 + n % 4, entry_price=Decimal("4.30"), entry_date=NOW - timedelta(days=20))
    if n in (6, 7):
        return PaperTrade(**common, **filled, status=TradeStatus.OPEN)
    reason = CloseReason.EXPIRED if n == 5 else CloseReason.TP_HIT
    return PaperTrade(**common, **filled, status=TradeStatus.CLOSED, close_reason=reason,
                      close_price=Decimal("0") if n == 5 else Decimal("9.00"), close_date=NOW - timedelta(days=1),
                      exit_filled_qty=0 if n == 5 else 1 + n % 4, realized_pnl=Decimal("100"))


def _later_migrations():
    """trades' migrations after 0013, in the order `migrate` applies them."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan = loader.graph.forwards_plan(loader.graph.leaf_nodes("trades")[0])
    names = [name for app, name in plan if app == "trades"]
    return names[names.index(BEFORE) + 1:]


def _load_trades():
    """TRADES trades at 0013's schema: ten templates per user, copied by generate_series."""
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"mig{i}") for i in range(USERS)])
    with tenancy.system_context():
        PaperTrade.objects.bulk_create([_template(user, n) for user in users for n in range(10)])
    call_command("migrate", "trades", BEFORE, stdout=StringIO())
    with transaction.atomic(), tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(quote_ident(column_name), ', ') FROM information_schema.columns "
                       "WHERE table_name = 'trades_papertrade' AND column_name <> 'id'")
        columns = cursor.fetchone()[0]
        copies = TRADES // (USERS * 10) - 1
        cursor.execute(f"INSERT INTO trades_papertrade ({columns}) SELECT {columns} "  # noqa: S608 (catalogue names)
                       f"FROM trades_papertrade CROSS JOIN generate_series(1, %s)", [copies])
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE entry_price IS NOT NULL) FROM trades_papertrade")
        total, filled = cursor.fetchone()
        cursor.execute("SELECT array_agg(id) FROM trades_papertrade WHERE status = 'OPEN'")
        open_ids = cursor.fetchone()[0]
    with as_schema_owner() as owner, owner.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE trades_papertrade")
    return total, filled, open_ids


class Updater(threading.Thread):
    """Single-trade UPDATEs in a loop on a connection of its own; each sample is (start, seconds)."""

    def __init__(self, ids):
        super().__init__(daemon=True)
        self.ids, self.samples, self.stop = ids, [], threading.Event()
        self.ready = threading.Event()

    def run(self):
        updater = connections["default"]  # this thread's own connection
        updater.ensure_connection()  # now, before `migrate` swaps the shared credentials
        with updater.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pid = cursor.fetchone()[0]
        self.ready.set()
        pick = random.Random(7)
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                with transaction.atomic(), tenancy.system_context(), updater.cursor() as cursor:
                    cursor.execute("UPDATE trades_papertrade SET version = version + 1 WHERE id = %s",
                                   [pick.choice(self.ids)])
                self.samples.append((started, time.perf_counter() - started))
                time.sleep(PAUSE)
        finally:
            updater.close()

    def longest(self, start, end):
        """The longest UPDATE that was running at some moment between start and end."""
        return max((seconds for began, seconds in self.samples if began < end and began + seconds > start),
                   default=0.0)


class LockWatcher(threading.Thread):
    """Polls pg_stat_activity every POLL seconds: the spans (start, seconds) during which the
    updater's backend waited on a heavyweight lock, to tell lock waits from a busy CPU."""

    POLL = 0.005

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.spans, self.stop = pid, [], threading.Event()
        self.ready = threading.Event()

    def run(self):
        watcher = connections["default"]
        watcher.ensure_connection()
        self.ready.set()
        waiting_since = None
        try:
            with watcher.cursor() as cursor:
                while not self.stop.is_set():
                    cursor.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", [self.pid])
                    now, waiting = time.perf_counter(), cursor.fetchone()[0]
                    if waiting and waiting_since is None:
                        waiting_since = now
                    elif not waiting and waiting_since is not None:
                        self.spans.append((waiting_since, now - waiting_since))
                        waiting_since = None
                    time.sleep(self.POLL)
        finally:
            watcher.close()

    def longest(self, start, end):
        return max((seconds for began, seconds in self.spans if began < end and began + seconds > start),
                   default=0.0)


@pytest.mark.django_db(transaction=True)
def bench_commission_migrations():
    names = _later_migrations()
    total, filled, open_ids = _load_trades()
    print(f"\ntrades_papertrade: {total:,} trades ({filled:,} filled), {USERS} users; migrating trades "
          f"{BEFORE} -> {names[-1]}, one single-trade UPDATE every {PAUSE * 1000:.0f} ms beside it")

    updater = Updater(open_ids)
    updater.start()
    updater.ready.wait()
    watcher = LockWatcher(updater.pid)
    watcher.start()
    watcher.ready.wait()
    time.sleep(2)
    calm = [seconds for began, seconds in updater.samples]
    print(f"updater alone: {len(calm)} UPDATEs in 2 s, median {statistics.median(calm) * 1000:.1f} ms, "
          f"longest {max(calm) * 1000:.1f} ms")
    print(f"{'migration':48} {'seconds':>8} {'longest UPDATE ms':>18} {'of it on a lock':>16} {'UPDATEs':>8}")
    windows = []
    for name in names:
        started = time.perf_counter()
        call_command("migrate", "trades", name, stdout=StringIO())
        ended = time.perf_counter()
        windows.append((name, started, ended))
        time.sleep(0.2)  # let the UPDATE that waited last finish
    updater.stop.set()
    watcher.stop.set()
    updater.join()
    watcher.join()
    for name, started, ended in windows:
        during = sum(started <= began < ended for began, _ in updater.samples)
        print(f"{name:48} {ended - started:8.2f} {updater.longest(started, ended) * 1000:18.0f} "
              f"{watcher.longest(started, ended) * 1000:16.0f} {during:8}")
    first, last = windows[0][1], windows[-1][2]
    print(f"{'all':48} {last - first:8.2f} {updater.longest(first, last) * 1000:18.0f} "
          f"{watcher.longest(first, last) * 1000:16.0f}")

    started = time.perf_counter()
    call_command("migrate", "trades", names[-1], stdout=StringIO())
    print(f"(`migrate` with nothing to apply, its post-migrate grants: {time.perf_counter() - started:.2f} s)")
    with transaction.atomic(), tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT commission_source, count(*) FROM trades_papertrade GROUP BY 1 ORDER BY 1")
        print("commission_source after:", dict(cursor.fetchall()))
