"""What the cross-tenant reference guard costs the snapshot write path.

10,000 snapshots (BENCH_REFERENCE_ROWS) for 2,000 held trades of 200 users, written the way the
monitor cycle writes them (one INSERT … SELECT FROM unnest(…) in the system context), then the
same as one user writing 10,000 snapshots of his own 10 trades (the guard's lookup then goes
through his row-level security policy). Each way of guarding runs BENCH_REPEAT times, in turns,
on an emptied table, with only its own trigger enabled (the schema owner switches them):

* none: no guard at all (PostgreSQL's deferred foreign-key check only, as before);
* static row trigger: the table's own guard (monitoring/0004), static SQL planned once;
* generic row trigger: the generic guard (brokers/0008), dynamic SQL planned for every row,
  attached here for the comparison only;
* statement trigger: the same rule once per statement over a transition table (one hash anti
  join), attached here for the comparison only; not used, see monitoring/0004 for why.

Prints the median of each and the extra time over none. Run:
`make bench ARGS="bench/bench_tenant_references.py"`.
"""

import os
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from brokers.occ import build_symbol
from tradeoptions import tenancy
from tradeoptions.db import as_schema_owner
from trades.models import PaperTrade, TradeStatus

ROWS = int(os.environ.get("BENCH_REFERENCE_ROWS", 10_000))
TRADES = int(os.environ.get("BENCH_REFERENCE_TRADES", 2000))
USERS = 200
REPEAT = int(os.environ.get("BENCH_REPEAT", 7))
NOW = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
EXPIRY = date(2026, 12, 18)
TABLE = "monitoring_pricesnapshot"
INSERT = """
    INSERT INTO monitoring_pricesnapshot
        (trade_id, owner_id, timestamp, kind, mark_price, bid, ask, delta, gamma, theta, vega, iv, source)
    SELECT trade_id, owner_id, at, 'INTRADAY', 4.20, 4.10, 4.30, 0.5, 0.01, -0.05, 0.1, 0.3, 'simulated'
      FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS v(trade_id, owner_id, at)
"""
COMPARED = """
CREATE TRIGGER bench_generic_row BEFORE INSERT OR UPDATE OF trade_id, owner_id ON monitoring_pricesnapshot
    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_reference('trade_id', 'trades_papertrade');
CREATE FUNCTION bench_statement_guard() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM (SELECT count(*) AS refused FROM new_rows n
                              LEFT JOIN public.trades_papertrade t ON t.id = n.trade_id AND t.owner_id = n.owner_id
                             WHERE n.trade_id IS NOT NULL AND t.id IS NULL) c WHERE c.refused > 0) THEN
        RAISE EXCEPTION 'refused' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_statement AFTER INSERT ON monitoring_pricesnapshot
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bench_statement_guard();
"""
GUARDS = {"static row trigger": "tenant_reference_trade_id", "generic row trigger": "bench_generic_row",
          "statement trigger": "bench_statement"}


@pytest.fixture
def held_trades():
    users = get_user_model().objects.bulk_create([get_user_model()(username=f"ref{i}") for i in range(USERS)])
    with tenancy.system_context():
        trades = PaperTrade.objects.bulk_create([
            PaperTrade(owner=users[n % USERS], ticker="SPY", option_type="CALL", strike=Decimal(500 + n % 50),
                       expiry=EXPIRY, option_symbol=build_symbol("SPY", EXPIRY, "CALL", Decimal(500 + n % 50)),
                       qty=1, filled_qty=1, entry_price=Decimal("4.30"), entry_date=NOW - timedelta(days=1),
                       sl_price=Decimal("0.01"), tp_price=Decimal("99"), status=TradeStatus.OPEN)
            for n in range(TRADES)], batch_size=2000)
    return [(trade.pk, trade.owner_id) for trade in trades]


def _owner_sql(statement: str) -> None:
    with as_schema_owner(), connection.cursor() as cursor:
        cursor.execute(statement)


@contextmanager
def compared_guards():
    _owner_sql(COMPARED)
    try:
        yield
    finally:
        _owner_sql(f"""DROP TRIGGER bench_statement ON {TABLE}; DROP FUNCTION bench_statement_guard();
                       DROP TRIGGER bench_generic_row ON {TABLE};
                       ALTER TABLE {TABLE} ENABLE TRIGGER {GUARDS['static row trigger']};""")


def _only(guard: str) -> None:
    _owner_sql("; ".join(f"ALTER TABLE {TABLE} {'ENABLE' if name == guard else 'DISABLE'} TRIGGER {trigger}"
                         for name, trigger in GUARDS.items()))


def _rows(trades: list[tuple[int, int]]) -> list[list]:
    """ROWS snapshots: every trade once per 5-minute slot, as many slots as it takes."""
    picked = [trades[n % len(trades)] for n in range(ROWS)]
    slots = [NOW - timedelta(minutes=5 * (n // len(trades))) for n in range(ROWS)]
    return [[trade for trade, _ in picked], [owner for _, owner in picked], slots]


def _timed_insert(rows: list[list], context) -> float:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {TABLE}")
    with context():
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(INSERT, rows)
            assert cursor.rowcount == len(rows[0])
        return time.perf_counter() - started


def _compare(rows: list[list], context) -> dict[str, float]:
    seconds = {name: [] for name in ["none", *GUARDS]}
    for round_ in range(REPEAT):
        for name in seconds if round_ % 2 == 0 else reversed(list(seconds)):
            _only(name)
            seconds[name].append(_timed_insert(rows, context))
    return {name: statistics.median(values) * 1000 for name, values in seconds.items()}


@pytest.mark.django_db(transaction=True)
def bench_snapshot_inserts_with_and_without_the_reference_guard(held_trades):
    owner_id = held_trades[0][1]
    own = [trade for trade in held_trades if trade[1] == owner_id]
    with compared_guards():
        results = {
            f"system context ({TRADES} trades of {USERS} users, the monitor's way)":
                _compare(_rows(held_trades), tenancy.system_context),
            f"one user ({len(own)} trades of his own, under his policy)":
                _compare(_rows(own), lambda: tenancy.acting_as(owner_id)),
        }
    print(f"\n{ROWS:,} snapshots in one INSERT … SELECT unnest; median of {REPEAT} runs each, "
          "table emptied before each")
    for label, ms in results.items():
        print(f"{label}:")
        for name, value in ms.items():
            extra = value - ms["none"]
            print(f"  {name:<20} {value:7.1f} ms" + (
                f"   +{extra:6.1f} ms  (+{100 * extra / ms['none']:4.0f} %, {1000 * extra / ROWS:5.1f} µs a row)"
                if name != "none" else ""))
