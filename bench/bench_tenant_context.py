"""What the signed tenant context costs: typical tenant queries on the web role, under the old
tenant policy (the bare `app.user_id` setting) and the new one (`(SELECT app_user_id())`, which
checks an HMAC once per query).

BENCH_USERS (20) users own BENCH_TRADES_EACH (500) trades each, a fifth of them open (the rest canceled), with 3
events per trade. Each iteration is one request's worth of work for a random user: enter
`tenancy.acting_as` (its read and write round trips), list the 50 newest open trades, read one
trade and its events, leave. The policies on the two tables are switched between the variants by
the schema owner, in the same database; the Python side (HMAC signing, ~5 µs) is the same in both.
Prints median and p95 per iteration and per query kind, and the cost of `app_user_id()` alone.
"""

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from brokers.occ import build_symbol
from tests.factories import UserFactory
from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade, TradeEvent, TradeStatus

USERS = int(os.environ.get("BENCH_USERS", 20))
TRADES_EACH = int(os.environ.get("BENCH_TRADES_EACH", 500))
ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", 1000))
TABLES = ["trades_papertrade", "trades_tradeevent"]
OLD = "owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint"
NEW = "owner_id = (SELECT app_user_id())"
EXPIRY = datetime(2027, 1, 15, tzinfo=UTC).date()


def _seed() -> dict[int, list[int]]:
    trades_of = {}
    start = datetime(2026, 1, 5, 15, tzinfo=UTC)
    for number in range(USERS):
        user = UserFactory(username=f"bench-tenant-{number}")
        with tenancy.acting_as(user.pk):
            trades = PaperTrade.objects.bulk_create([
                PaperTrade(owner=user, ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY,
                           option_symbol=build_symbol("SPY", EXPIRY, "CALL", Decimal("570")), qty=1, filled_qty=1,
                           entry_price=Decimal("4.00"), entry_date=start + timedelta(minutes=n),
                           sl_price=Decimal("2.50"), tp_price=Decimal("6.50"),
                           status=TradeStatus.OPEN if n % 5 == 0 else TradeStatus.CANCELED)
                for n in range(TRADES_EACH)
            ], batch_size=2000)
            TradeEvent.objects.bulk_create([
                TradeEvent(owner=user, trade=trade, kind=EventKind.STATE_CHANGE, actor=Actor.SYSTEM,
                           actor_label="bench", payload={"n": k})
                for trade in trades for k in range(3)
            ], batch_size=5000)
        trades_of[user.pk] = [trade.pk for trade in trades]
    return trades_of


def _set_policy(owner, expression: str) -> None:
    for table in TABLES:
        owner.execute(f"ALTER POLICY tenant_owner ON {table} USING ({expression}) WITH CHECK ({expression})")


def _run(trades_of: dict[int, list[int]], rng: random.Random) -> dict[str, list[float]]:
    timings = {"request": [], "list": [], "detail": []}
    users = list(trades_of)
    for _ in range(ITERATIONS):
        user = rng.choice(users)
        trade_id = rng.choice(trades_of[user])
        began = time.perf_counter()
        with tenancy.acting_as(user):
            listed = time.perf_counter()
            rows = list(PaperTrade.objects.filter(status=TradeStatus.OPEN).order_by("-entry_date")[:50])
            detailed = time.perf_counter()
            trade = PaperTrade.objects.get(pk=trade_id)
            events = list(TradeEvent.objects.filter(trade=trade).order_by("created_at"))
            done = time.perf_counter()
        ended = time.perf_counter()
        assert len(rows) == 50 and len(events) == 3 and all(row.owner_id == user for row in rows)
        timings["list"].append(detailed - listed)
        timings["detail"].append(done - detailed)
        timings["request"].append(ended - began)
    return timings


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)]


def _function_cost(rounds: int = 2000) -> float:
    """µs per app_user_id() call with a valid signature (one server round trip subtracted)."""
    with tenancy.acting_as(1), connection.cursor() as cursor:
        cursor.execute("SELECT count(app_user_id()) FROM generate_series(1, %s)", [rounds])  # warm
        started = time.perf_counter()
        cursor.execute("SELECT count(app_user_id()) FROM generate_series(1, %s)", [rounds])
        with_function = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute("SELECT count(1) FROM generate_series(1, %s)", [rounds])
        without = time.perf_counter() - started
    return (with_function - without) / rounds * 1e6


@pytest.mark.django_db(transaction=True)
def bench_tenant_context(connect_as, web_role):
    trades_of = _seed()
    connection.close()
    owner = connect_as(settings.DATABASE_OWNER["USER"], autocommit=True)
    for table in TABLES:
        owner.execute(f"ANALYZE {table}")
    results, plans = {}, {}
    try:
        for variant, expression in [("old", OLD), ("new", NEW), ("old again", OLD), ("new again", NEW)]:
            _set_policy(owner, expression)
            _run(trades_of, random.Random(0))  # warm caches and plans
            results[variant] = _run(trades_of, random.Random(1))
            plans.setdefault(expression, _plan(next(iter(trades_of))))
    finally:
        _set_policy(owner, NEW)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        role = cursor.fetchone()[0]
    print(f"\ntenant queries as {role}: {USERS} users x {TRADES_EACH} trades (1/5 open, the rest canceled; "
          f"3 events each), {ITERATIONS} iterations per variant")
    print(f"{'policy':<12}{'request med':>13}{'p95':>8}{'list med':>10}{'p95':>8}{'detail med':>12}{'p95':>8}  (ms)")
    for variant, timings in results.items():
        print(f"{variant:<12}"
              f"{statistics.median(timings['request']) * 1000:>13.3f}{_p95(timings['request']) * 1000:>8.3f}"
              f"{statistics.median(timings['list']) * 1000:>10.3f}{_p95(timings['list']) * 1000:>8.3f}"
              f"{statistics.median(timings['detail']) * 1000:>12.3f}{_p95(timings['detail']) * 1000:>8.3f}")
    print(f"app_user_id() alone: {_function_cost():.1f} µs per call (evaluated once per table per query)")
    for expression, plan in plans.items():
        print(f"plan of the list under {expression}:\n  " + "\n  ".join(plan))


def _plan(user_id: int) -> list[str]:
    with tenancy.acting_as(user_id), connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT * FROM trades_papertrade WHERE status = 'OPEN' "
                       "ORDER BY entry_date DESC LIMIT 50")
        return [row[0] for row in cursor.fetchall()]
