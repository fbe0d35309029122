"""The schema in migrations matches the models, migrations are frozen, and the RLS migrations
can be reversed."""

import ast
import importlib
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from psycopg import sql

from brokers.models import PaperFill
from monitoring.models import PriceSnapshot, SnapshotKind
from tests.factories import (
    ClosedTradeFactory,
    PaperFillFactory,
    PaperOrderFactory,
    PaperTradeFactory,
    PriceSnapshotFactory,
)
from tradeoptions import tenancy
from tradeoptions.db import as_schema_owner
from trades.models import CloseReason, CommissionSource, EventKind, PaperTrade, TradeEvent, TradeLeg, TradeStatus


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
    return modules


def _is_frozen(module: str) -> bool:
    """Django (its migrations, models, settings) and the standard library never change under a
    migration; our apps, the project package and other libraries may."""
    top = module.split(".")[0]
    return top == "django" or (top in sys.stdlib_module_names and not module.startswith("."))


def test_migrations_import_no_live_code():
    """A migration carries its SQL and its values as they were that day: importing live code (the
    RLS helper, a model's default function) would change an applied migration behind its back."""
    files = sorted(Path(settings.BASE_DIR).glob("*/migrations/0*.py"))
    assert len(files) > 10  # every app's migrations are found
    live = {f"{path.relative_to(settings.BASE_DIR)}: {module}"
            for path in files for module in _imported_modules(path) if not _is_frozen(module)}
    assert live == set()


@pytest.fixture(autouse=True)
def _flushable_after_migrating_back(request):
    """A test that migrates back and forth drops and recreates tables (the legs' table goes with
    trades 0020), and a table made again lacks the TRUNCATE that tests alone get (conftest's
    django_db_setup): grant it again before the flush that ends a transactional test."""
    marker = request.node.get_closest_marker("django_db")
    if not (marker and marker.kwargs.get("transaction")):
        yield
        return
    request.getfixturevalue("transactional_db")  # set up before this fixture, so torn down after it
    yield
    with as_schema_owner() as owner, owner.cursor() as cursor:
        cursor.execute(sql.SQL("GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {}").format(
            sql.Identifier(settings.DATABASE_WORKER_ROLE)))


def _rls_state(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relrowsecurity, relforcerowsecurity, (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) "
            "FROM pg_class c WHERE relname = %s",
            [table],
        )
        return cursor.fetchone()


def test_models_and_migrations_agree(db):
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_row_level_security_migrations_reverse_and_reapply():
    call_command("migrate", "monitoring", "0001", stdout=StringIO())
    assert _rls_state("monitoring_pricesnapshot") == (False, False, 0)
    call_command("migrate", stdout=StringIO())
    assert _rls_state("monitoring_pricesnapshot") == (True, True, 2)


@pytest.mark.django_db(transaction=True)
def test_paper_fill_migrations_mark_earlier_settlements_and_closed_positions(trader):
    """Fills recorded before brokers 0005/0006: expiry settlements are recognised, fills of
    positions back to zero are closed, a position still held stays open."""
    closed, held = "SPY261218C00570000", "QQQ261218P00500000"
    PaperFillFactory(owner=trader, option_symbol=closed, side="buy_to_open", quantity=2)
    settlement = PaperOrderFactory(owner=trader, option_symbol=closed, side="sell_to_close", order_type="",
                                   quantity=2, reason="Expired worthless (SPY closed at $561.00).")
    PaperFillFactory(owner=trader, order=settlement, option_symbol=closed, side="sell_to_close", quantity=2,
                     price=Decimal("0"), commission=Decimal("0"), bid=None, ask=None, mid=None, quote_time=None)
    PaperFillFactory(owner=trader, option_symbol=held, side="buy_to_open", quantity=3)
    PaperFillFactory(owner=trader, option_symbol=held, side="sell_to_close", quantity=1, bid=None, ask=None,
                     mid=None, quote_time=None)  # a sale without a quote is still a sale
    call_command("migrate", "brokers", "0004", stdout=StringIO())
    call_command("migrate", stdout=StringIO())
    with tenancy.acting_as(trader.pk):
        rows = set(PaperFill.objects.values_list("option_symbol", "side", "settlement", "position_closed", "expiry"))
    assert rows == {
        (closed, "buy_to_open", False, True, date(2026, 12, 18)),
        (closed, "sell_to_close", True, True, date(2026, 12, 18)),
        (held, "buy_to_open", False, False, date(2026, 12, 18)),
        (held, "sell_to_close", False, False, date(2026, 12, 18)),
    }


@pytest.mark.django_db(transaction=True)
def test_account_numbers_already_in_the_audit_log_are_masked_and_it_stays_append_only(trader, other_trader):
    """Settings events written before trades 0011 carried the account number in clear; the
    migration masks them to the last four, for every tenant, and touches nothing else."""
    def settings_event(owner, changes):
        with tenancy.acting_as(owner.pk):
            return TradeEvent.objects.create(owner=owner, kind=EventKind.SETTINGS_CHANGED, actor="USER",
                                             actor_user=owner, payload={"changes": changes, "tokens": {}}).pk

    call_command("migrate", "trades", "0010", stdout=StringIO())
    switched = settings_event(trader, {"tradier_account_id": {"from": "VA00001234", "to": "6YA00005151"},
                                       "broker_mode": {"from": "TRADIER_SANDBOX", "to": "TRADIER_LIVE"}})
    short = settings_event(other_trader, {"tradier_account_id": {"from": "", "to": "VA12"}})
    limits = settings_event(trader, {"max_positions": {"from": 5, "to": 8}})
    call_command("migrate", stdout=StringIO())

    with tenancy.system_context():
        payloads = dict(TradeEvent.objects.filter(pk__in=[switched, short, limits]).values_list("pk", "payload"))
    assert payloads[switched]["changes"] == {"tradier_account_id": {"from": "…1234", "to": "…5151"},
                                             "broker_mode": {"from": "TRADIER_SANDBOX", "to": "TRADIER_LIVE"}}
    assert payloads[short]["changes"] == {"tradier_account_id": {"from": "", "to": "…"}}
    assert payloads[limits]["changes"] == {"max_positions": {"from": 5, "to": 8}}
    # The trigger is back on: even the schema owner, seeing every row, cannot rewrite an event.
    with (as_schema_owner() as owner, pytest.raises(DatabaseError, match="append-only"), transaction.atomic(),
          owner.cursor() as cursor):
        cursor.execute("SELECT set_config('app.system', 'on', true)")
        cursor.execute("UPDATE trades_tradeevent SET payload = '{}' WHERE id = %s", [switched])


@pytest.mark.django_db(transaction=True)
def test_trades_filled_before_commissions_were_fields_are_charged_the_configured_rate(trader, other_trader,
                                                                                       settings, monkeypatch):
    """trades 0017 backfills every filled trade, of every tenant, at the configured rate x
    contracts x legs filled (an expiry settles without one), says so, and changes nothing else;
    in batches of BATCH_SIZE ids (2 here: the five trades take three), each in the system context."""
    backfill_migration = importlib.import_module("trades.migrations.0017_backfill_commissions")
    monkeypatch.setattr(backfill_migration, "BATCH_SIZE", 2)
    closed = ClosedTradeFactory(owner=trader, qty=3, filled_qty=3)  # 3 bought, 3 sold
    partly = ClosedTradeFactory(owner=other_trader, qty=4, filled_qty=2)  # the rest of the entry was cancelled
    expired = ClosedTradeFactory(owner=trader, qty=3, close_reason=CloseReason.EXPIRED, close_price=Decimal("0"),
                                 exit_filled_qty=1, exit_filled_price=Decimal("5"), realized_pnl=Decimal("-760"))
    held = PaperTradeFactory(owner=trader, qty=2, status=TradeStatus.OPEN)
    never = PaperTradeFactory(owner=trader, status=TradeStatus.CANCELED, entry_price=None, entry_date=None)
    settings.PAPER_COMMISSION_PER_CONTRACT = "0.65"
    call_command("migrate", "trades", "0013", stdout=StringIO())
    with CaptureQueriesContext(connection) as queries:
        call_command("migrate", stdout=StringIO())

    statements = [query["sql"].strip() for query in queries]
    batches = [n for n, sql in enumerate(statements) if sql.startswith("UPDATE trades_papertrade")]
    ids = [trade.pk for trade in (closed, partly, expired, held, never)]
    assert len(batches) == len(range(min(ids), max(ids) + 1, 2)) == 3
    assert all(statements[n - 1] == "SELECT set_config('app.system', 'on', true)" for n in batches)
    with connection.cursor() as cursor:  # added NOT VALID and CONCURRENTLY, valid in the end
        checks = ["settings_commission_per_contract_range", "trade_commission_source_known",
                  "trade_commission_per_contract_not_negative", "trade_entry_commission_not_negative",
                  "trade_exit_commission_not_negative", "trade_fees_not_negative"]
        cursor.execute("SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY(%s)", [checks])
        assert dict(cursor.fetchall()) == dict.fromkeys(checks, True)
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'trade_owner_closed_idx'::regclass")
        assert cursor.fetchone() == (True,)
    columns = ("entry_commission", "exit_commission", "commission_source", "commission_per_contract",
               "realized_pnl")
    with tenancy.system_context():
        rows = {row[0]: row[1:] for row in PaperTrade.objects.values_list("pk", *columns)}
    backfill, rate = CommissionSource.BACKFILL, Decimal("0.6500")
    assert rows == {
        closed.pk: (Decimal("1.95"), Decimal("1.95"), backfill, rate, Decimal("240.00")),
        partly.pk: (Decimal("1.30"), Decimal("1.30"), backfill, rate, Decimal("320.00")),  # 2 contracts each way
        expired.pk: (Decimal("1.95"), Decimal("0.65"), backfill, rate, Decimal("-760.00")),  # 1 sold before expiry
        held.pk: (Decimal("1.30"), Decimal("0.00"), backfill, rate, None),
        never.pk: (Decimal("0.00"), Decimal("0.00"), "", None, None),
    }


@pytest.mark.django_db(transaction=True)
def test_the_exit_policy_migrations_reverse_and_reapply_keeping_trades_and_validating_the_widened_checks(trader):
    """trades 0018 adds the policy columns and widens two CHECKs NOT VALID; 0019 validates them."""
    closed = ClosedTradeFactory(owner=trader)
    call_command("migrate", "trades", "0017", stdout=StringIO())
    call_command("migrate", stdout=StringIO())
    with connection.cursor() as cursor:
        checks = ["trade_close_reason_known", "webhook_event_kind_known"]
        cursor.execute("SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY(%s)", [checks])
        assert dict(cursor.fetchall()) == dict.fromkeys(checks, True)
    with tenancy.system_context():
        kept = PaperTrade.objects.get(pk=closed.pk)
        assert (kept.close_reason, kept.exit_policy, kept.exit_request_reason) == (closed.close_reason, {}, "")
        PaperTrade.objects.filter(pk=closed.pk).update(close_reason=CloseReason.TIME_STOP)


def _months_after(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return month.replace(year=index // 12, month=index % 12 + 1)


def _partition_of(month: datetime) -> str:
    return f"monitoring_pricesnapshot_y{month:%Y}m{month:%m}"


@pytest.mark.django_db(transaction=True)
def test_the_snapshot_table_becomes_partitioned_by_month_and_back_losing_nothing(trader, other_trader, connect_as):
    """monitoring 0007: snapshots of several months (the oldest over a year back) and one dated past
    the months made ahead (the default partition's) keep every value and id, each lands in its
    month's partition, the ORM reads and writes them, and row-level security still separates the
    tenants for the web role. Its reverse is as lossless. Months follow the database's clock, as
    the migration's own do."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')")
        this_month = cursor.fetchone()[0].replace(tzinfo=UTC)
    call_command("migrate", "monitoring", "0006", stdout=StringIO())
    offsets = {-14: trader, -2: other_trader, -1: trader, 0: other_trader, 2: trader, 9: trader}
    made, home = [], {}  # the partition each snapshot should end up in
    for offset, owner in offsets.items():
        trade = PaperTradeFactory(owner=owner)
        for day, kind in [(0, SnapshotKind.INTRADAY), (0, SnapshotKind.PRE_MARKET), (27, SnapshotKind.FILL)]:
            moment = _months_after(this_month, offset) + timedelta(days=day, hours=14, minutes=35, seconds=offset % 7)
            made.append(PriceSnapshotFactory(trade=trade, timestamp=moment, kind=kind, delayed=offset < 0,
                                             mark_price=Decimal("20.1234") + offset, delta=Decimal("0.512345"),
                                             quote_time=moment - timedelta(seconds=3)))
            home[made[-1].pk] = ("monitoring_pricesnapshot_default" if offset > 3  # past the months made ahead
                                 else _partition_of(_months_after(this_month, offset)))
    last_month_end = PriceSnapshotFactory(trade=made[-1].trade, timestamp=_months_after(this_month, -1)
                                          - timedelta(microseconds=1))  # the last instant of a month
    columns = [field.attname for field in PriceSnapshot._meta.concrete_fields]

    def every_row():
        with tenancy.system_context():
            return list(PriceSnapshot.objects.order_by("id").values_list(*columns))

    before = every_row()
    assert len(before) == 19
    call_command("migrate", "monitoring", stdout=StringIO())
    assert every_row() == before

    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT id, tableoid::regclass::text FROM monitoring_pricesnapshot")
        placed = dict(cursor.fetchall())
    assert placed == {**home, last_month_end.pk: _partition_of(_months_after(this_month, -2))}
    with connection.cursor() as cursor:  # every month from the oldest row's to three ahead, and the default
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                       "WHERE inhparent = 'monitoring_pricesnapshot'::regclass")
        partitions = {row[0] for row in cursor.fetchall()}
    assert partitions == {_partition_of(_months_after(this_month, n)) for n in range(-14, 4)} | {
        "monitoring_pricesnapshot_default"}

    # The ORM, as a tenant: a new row gets the next id; an update and a delete find their rows.
    held = made[9]  # other_trader's, this month
    with tenancy.acting_as(other_trader.pk):
        added = PriceSnapshot.objects.create(trade=held.trade, owner=other_trader, timestamp=held.timestamp
                                             + timedelta(minutes=5), mark_price=Decimal("5"), source="simulated")
        assert added.pk > max(row[0] for row in before)
        assert PriceSnapshot.objects.filter(pk=held.pk).update(mark_price=Decimal("4.50")) == 1
        assert PriceSnapshot.objects.get(pk=held.pk).mark_price == Decimal("4.5000")
        PriceSnapshot.objects.filter(pk=made[3].pk).delete()
        assert PriceSnapshot.objects.count() == 6  # 3 + 3 - 1 + 1
    with tenancy.acting_as(trader.pk):
        assert PriceSnapshot.objects.count() == 13
        assert not PriceSnapshot.objects.filter(owner=other_trader).exists()

    # The web role: its own rows through the parent, none without a context, no partition directly.
    web = connect_as(settings.DATABASE_APP_ROLE)
    with web.transaction():
        pid, started = web.execute(
            "SELECT pg_backend_pid(), (extract(epoch FROM now()) * 1000000)::bigint").fetchone()
        web.execute("SELECT set_config('app.user_id', %s, true), set_config('app.user_sig', %s, true)",
                    [str(trader.pk), tenancy.sign(str(trader.pk), pid, started)])
        assert web.execute("SELECT count(*), count(*) FILTER (WHERE owner_id <> %s) FROM monitoring_pricesnapshot",
                           [trader.pk]).fetchone() == (13, 0)
    assert web.execute("SELECT count(*) FROM monitoring_pricesnapshot").fetchone() == (0,)
    web.rollback()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        web.execute(f"SELECT count(*) FROM {_partition_of(this_month)}")
    web.rollback()

    # Back to a plain table and forward again: still every row, and ids go on from where they were.
    after = every_row()
    call_command("migrate", "monitoring", "0006", stdout=StringIO())
    assert every_row() == after
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'monitoring_pricesnapshot'")
        assert cursor.fetchone() == ("r",)
    call_command("migrate", stdout=StringIO())
    assert every_row() == after
    with tenancy.acting_as(trader.pk):
        newest = PriceSnapshot.objects.create(trade=made[0].trade, owner=trader, timestamp=this_month,
                                              mark_price=Decimal("1"), source="simulated")
    assert newest.pk > added.pk


LEG_FIELDS = ("owner_id", "position", "option_symbol", "option_type", "strike", "expiry", "side", "ratio",
              "entry_price", "exit_price")


def _legs_by_trade() -> dict[int, list[tuple]]:
    with tenancy.system_context():
        legs = {}
        for trade_id, *leg in TradeLeg.objects.order_by("trade_id", "position").values_list("trade_id", *LEG_FIELDS):
            legs.setdefault(trade_id, []).append(tuple(leg))
        return legs


def _as_one_leg(trade: PaperTrade) -> list[tuple]:
    """The leg the backfill must give `trade`: its own contract, bought, one per unit, its fills."""
    return [(trade.owner_id, 0, trade.option_symbol, trade.option_type, trade.strike, trade.expiry, "LONG", 1,
             trade.entry_price, trade.close_price)]


@pytest.mark.django_db(transaction=True)
def test_every_trade_made_before_legs_gets_its_one_leg_and_the_reverse_removes_them(trader, other_trader,
                                                                                    monkeypatch):
    """trades 0022 gives every trade, of every tenant and in every state, exactly one leg equal to
    its old fields, in batches of BATCH_SIZE ids (2 here) each in the system context, skipping
    trades that have one already; the reverse takes them away again, keeping every trade."""
    backfill = importlib.import_module("trades.migrations.0022_backfill_trade_legs")
    monkeypatch.setattr(backfill, "BATCH_SIZE", 2)
    trades = [
        ClosedTradeFactory(owner=trader, qty=3),
        ClosedTradeFactory(owner=other_trader, option_type="PUT", strike=Decimal("512.5"), close_price=Decimal("0"),
                           close_reason=CloseReason.EXPIRED),
        PaperTradeFactory(owner=trader, status=TradeStatus.OPEN),
        PaperTradeFactory(owner=other_trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None),
        PaperTradeFactory(owner=trader, status=TradeStatus.CANCELED, entry_price=None, entry_date=None),
    ]
    with tenancy.system_context():
        before = {trade.pk: trade for trade in PaperTrade.objects.all()}
    columns = [field.attname for field in PaperTrade._meta.concrete_fields]
    rows_before = {pk: [getattr(trade, name) for name in columns] for pk, trade in before.items()}

    call_command("migrate", "trades", "0021", stdout=StringIO())  # the reverse: legs gone, trades kept
    assert _legs_by_trade() == {}
    with tenancy.system_context():
        assert {t.pk: [getattr(t, name) for name in columns] for t in PaperTrade.objects.all()} == rows_before
    call_command("migrate", "trades", "0019", stdout=StringIO())  # before the legs' table: and back
    call_command("migrate", "trades", "0021", stdout=StringIO())
    # A trade that already has its leg (written by the new code while the backfill runs) keeps it.
    kept = trades[2]
    leg_at_0021 = MigrationExecutor(connection).loader.project_state(
        ("trades", "0021_validate_trade_leg_checks")).apps.get_model("trades", "TradeLeg")  # the table as it was then
    with tenancy.system_context():
        kept_leg = leg_at_0021.objects.create(**dict(zip(LEG_FIELDS, _as_one_leg(before[kept.pk])[0], strict=True)),
                                           trade_id=kept.pk).pk
    with CaptureQueriesContext(connection) as queries:
        call_command("migrate", "trades", stdout=StringIO())

    statements = [query["sql"].strip() for query in queries]
    batches = [n for n, sql in enumerate(statements) if sql.startswith("INSERT INTO trades_tradeleg")]
    ids = sorted(before)
    assert len(batches) == len(range(ids[0], ids[-1] + 1, 2)) == 3
    assert all(statements[n - 1] == "SELECT set_config('app.system', 'on', true)" for n in batches)
    assert _legs_by_trade() == {pk: _as_one_leg(trade) for pk, trade in before.items()}
    with tenancy.system_context():
        assert TradeLeg.objects.get(trade_id=kept.pk).pk == kept_leg  # not written twice
        assert set(PaperTrade.objects.values_list("strategy_type", "net_direction")) == {("single", "debit")}
        assert {t.pk: [getattr(t, name) for name in columns] for t in PaperTrade.objects.all()} == rows_before
    with connection.cursor() as cursor:
        checks = ["trade_strategy_type_known", "trade_net_direction_known"]
        cursor.execute("SELECT conname, convalidated FROM pg_constraint WHERE conname = ANY(%s)", [checks])
        assert dict(cursor.fetchall()) == dict.fromkeys(checks, True)
    assert _rls_state("trades_tradeleg") == (True, True, 2)


def _close_price_check() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conname = 'trade_close_price_not_negative'")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_close_price_either_side_migration_reverses_and_refuses_while_a_spread_closed_below_zero(trader):
    """trades 0026 lets a multi-leg close_price go below 0; its reverse puts the older check back,
    and refuses in words while a trade closed below 0 (docs: the migration's docstring)."""
    call_command("migrate", "trades", "0025_trade_leg_quotes_and_exit", stdout=StringIO())  # an empty table
    assert "strategy_type" not in _close_price_check()
    call_command("migrate", stdout=StringIO())
    assert "strategy_type" in _close_price_check()
    fly = ClosedTradeFactory(owner=trader)
    with tenancy.system_context():
        PaperTrade.objects.filter(pk=fly.pk).update(strategy_type="butterfly", close_price=Decimal("-0.10"))
    refused = rf"Cannot reverse trades 0026: multi-leg trades closed below 0 \(ids \[{fly.pk}\]"
    with pytest.raises(RuntimeError, match=refused):
        call_command("migrate", "trades", "0025_trade_leg_quotes_and_exit", stdout=StringIO())
    assert "strategy_type" in _close_price_check()  # nothing reversed
    with tenancy.system_context():
        assert PaperTrade.objects.get(pk=fly.pk).close_price == Decimal("-0.10")
    call_command("migrate", stdout=StringIO())


_CHANGED_XID = importlib.import_module("brokers.migrations.0011_paperorder_changed_xid")


def _run_changed_xid_forward_sql(cursor) -> None:
    """brokers 0011's forward SQL, as `migrate` runs it (one statement per list item)."""
    for operation in _CHANGED_XID.Migration.operations:
        for statement in [operation.sql] if isinstance(operation.sql, str) else operation.sql:
            cursor.execute(statement)


def _changed_xid_schema(cursor) -> tuple:
    """(the column's type, the trigger's definition, (the index is valid, its definition))."""
    cursor.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                   "WHERE attrelid = 'brokers_paperorder'::regclass AND attname = 'changed_xid' AND NOT attisdropped")
    column = cursor.fetchall()
    cursor.execute("SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                   "WHERE tgrelid = 'brokers_paperorder'::regclass AND tgname = 'paperorder_changed_xid'")
    trigger = cursor.fetchall()
    cursor.execute("SELECT indisvalid, pg_get_indexdef(indexrelid) FROM pg_index "
                   "WHERE indexrelid = to_regclass('paperorder_owner_changed_idx')")
    return column, trigger, cursor.fetchall()


def _stamped(order_id: int) -> bool:
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT changed_xid IS NOT NULL FROM brokers_paperorder WHERE id = %s", [order_id])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_changed_xid_migration_completes_a_half_run_and_runs_again_to_the_same_end(trader):
    """brokers 0011 is not atomic (its index is built CONCURRENTLY): a build that failed leaves the
    column, function and trigger in place, an INVALID index, and the migration unrecorded. Running
    it again completes it (the invalid index is rebuilt, not kept), and so does running it twice."""
    PaperOrderFactory.create_batch(2, owner=trader)  # one owner twice: a unique index on it fails
    call_command("migrate", "brokers", "0010_paperorder_price_type", stdout=StringIO())
    with as_schema_owner() as owner, owner.cursor() as cursor:  # the steps before the index, as first shipped
        cursor.execute("ALTER TABLE brokers_paperorder ADD COLUMN changed_xid xid8 NULL")
        cursor.execute(_CHANGED_XID.FUNCTION.replace("CREATE OR REPLACE", "CREATE"))
        cursor.execute("CREATE TRIGGER paperorder_changed_xid BEFORE INSERT OR UPDATE ON brokers_paperorder "
                       "FOR EACH ROW EXECUTE FUNCTION paperorder_note_change()")
        with pytest.raises(DatabaseError):  # a CONCURRENTLY build that failed half-way
            cursor.execute("CREATE UNIQUE INDEX CONCURRENTLY paperorder_owner_changed_idx "
                           "ON brokers_paperorder (owner_id)")
        assert _changed_xid_schema(cursor)[2][0][0] is False  # left behind INVALID
    call_command("migrate", stdout=StringIO())
    expected = (
        [("xid8",)],
        [("CREATE TRIGGER paperorder_changed_xid BEFORE INSERT OR UPDATE ON public.brokers_paperorder "
          "FOR EACH ROW EXECUTE FUNCTION paperorder_note_change()",)],
        [(True, "CREATE INDEX paperorder_owner_changed_idx ON public.brokers_paperorder "
                "USING btree (owner_id, changed_xid)")],
    )
    with as_schema_owner() as owner, owner.cursor() as cursor:
        assert _changed_xid_schema(cursor) == expected
        _run_changed_xid_forward_sql(cursor)
        _run_changed_xid_forward_sql(cursor)
        assert _changed_xid_schema(cursor) == expected
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"  # the 5 s held for the migration's own steps only
    assert _stamped(PaperOrderFactory(owner=trader).pk)  # the trigger stamps



@pytest.mark.django_db(transaction=True)
def test_the_changed_xid_migration_gives_up_behind_a_long_transaction_instead_of_queueing_everyone():
    """Its ADD COLUMN waits at most 5 s for its lock (then the run fails and is run again), instead
    of holding every paper-order query queued behind it for as long as a reader runs."""
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("LOCK TABLE brokers_paperorder IN ACCESS SHARE MODE")  # a long read, still open
        with as_schema_owner() as owner, owner.cursor() as cursor:
            cursor.execute("SET statement_timeout = '30s'")  # without the lock_timeout: fail, not hang
            with pytest.raises(DatabaseError, match="lock timeout"):
                cursor.execute(_CHANGED_XID.COLUMN_AND_TRIGGER)
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "0"  # the connection's own setting, untouched
