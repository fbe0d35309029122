"""A row points only at rows of its own owner, and no tenant can learn whether another's id exists.

PostgreSQL's own foreign-key checks bypass row-level security: before brokers/0008 (and the
trigger migrations of trades, monitoring and analytics), Bob could insert a snapshot pointing at
Alice's trade, and tell her trade ids from missing ones by which insert failed. Every foreign key
between two owner-scoped tables now carries a trigger that refuses both alike, with PostgreSQL's
own error for a missing key, and a referenced row cannot change owner under rows that point at
it. Raw SQL and the ORM, on the application's connection (the app role).
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError, IntegrityError

from analytics.models import TradeForensics
from monitoring.models import PriceSnapshot
from tests.factories import (
    ChannelMessageFactory,
    ClosedTradeFactory,
    PaperFillFactory,
    PaperOrderFactory,
    PaperTradeFactory,
    PriceSnapshotFactory,
    PushSubscriptionFactory,
    TradeEventFactory,
    TradeExitPartFactory,
    WebhookDeliveryFactory,
    WebhookEventFactory,
)
from tradeoptions import tenancy
from trades import services
from trades.models import Actor, EventKind, TradeEvent

# (referencing table, column, referenced table): every foreign key between owner-scoped tables.
# The catalogue test below fails when this list and the database disagree, so a new foreign key
# must be listed here, and is then held to every scenario of this file.
GUARDED = [
    ("analytics_tradeforensics", "trade_id", "trades_papertrade"),
    ("brokers_paperfill", "order_id", "brokers_paperorder"),
    ("brokers_paperorder", "parent_id", "brokers_paperorder"),
    ("monitoring_pricesnapshot", "trade_id", "trades_papertrade"),
    ("trades_channelmessage", "channel_id", "trades_notificationchannel"),
    ("trades_idempotencykey", "trade_id", "trades_papertrade"),
    ("trades_pushsubscription", "channel_id", "trades_notificationchannel"),
    ("trades_tradeevent", "trade_id", "trades_papertrade"),
    ("trades_tradeexitpart", "trade_id", "trades_papertrade"),
    ("trades_tradeleg", "trade_id", "trades_papertrade"),
    ("trades_webhookdelivery", "event_id", "trades_webhookevent"),
    ("trades_webhookevent", "trade_id", "trades_papertrade"),
]
NULLABLE = {("brokers_paperorder", "parent_id"), ("trades_idempotencykey", "trade_id"),
            ("trades_tradeevent", "trade_id"), ("trades_webhookevent", "trade_id")}
APPEND_ONLY = {"trades_tradeevent"}  # the app role may only read and add to the audit log (tradeoptions/db.py)
UPDATABLE = [guarded for guarded in GUARDED if guarded[0] not in APPEND_ONLY]
# The guard (brokers/0008) takes the column and the referenced table as trigger arguments; the
# snapshot table's own copy of it (monitoring/0004, static SQL for speed) checks one key only.
GUARD = "refuse_cross_tenant_reference"
DEDICATED_GUARDS = {"refuse_cross_tenant_snapshot_trade": ("trade_id", "trades_papertrade")}
# ...and every referenced table refuses a new owner while rows of the old one point at it.
OWNER_GUARD = "refuse_owner_change_while_referenced"
TRIGGER_ROW, TRIGGER_BEFORE, TRIGGER_INSERT, TRIGGER_UPDATE = 1, 2, 4, 16  # pg_trigger.tgtype bits


@pytest.fixture
def two_tenants(trader, other_trader):
    """Alice and Bob each have a row on both sides of every guarded foreign key, all pointing at
    their own rows: a trade with its leg, an event, a part sold, a snapshot, an idempotency key and a
    webhook event with its delivery; a closed trade with forensics; a bracket order with a leg, a fill,
    and a notification channel with a message."""
    for owner in (trader, other_trader):
        trade = PaperTradeFactory(owner=owner)
        TradeEventFactory(trade=trade)
        TradeExitPartFactory(trade=trade)
        PriceSnapshotFactory(trade=trade)
        claim = services.idempotency_claim(user=owner, key="scan-1", fingerprint="f" * 64)
        services.idempotency_store(claim=claim, status=201, body={}, trade=trade)
        WebhookDeliveryFactory(owner=owner, event=WebhookEventFactory(owner=owner, trade=trade))
        closed = ClosedTradeFactory(owner=owner)
        with tenancy.acting_as(owner.pk):
            TradeForensics.objects.create(trade=closed, owner=owner, mfe_pct=Decimal("12"), mae_pct=Decimal("-5"),
                                          first_touch="TP", snapshot_count=3, computed_at=closed.close_date)
        bracket = PaperOrderFactory(owner=owner, order_class="oco", option_symbol="", side="", order_type="")
        PaperOrderFactory(owner=owner, parent=bracket, status="open")
        PaperFillFactory(owner=owner)
        ChannelMessageFactory(owner=owner)
        PushSubscriptionFactory(owner=owner)
    return trader, other_trader


def _execute(statement: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def _one(statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def _refusal(statement: str, params=(), *, immediate: bool = False) -> tuple:
    """Everything the client is told about a refused statement (the error's code, message, detail
    and fields), after checking it is refused as a foreign-key violation. `immediate`: check the
    (deferred, as Django makes them) foreign keys at the statement rather than at commit."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        if immediate:
            _execute("SET CONSTRAINTS ALL IMMEDIATE")
        _execute(statement, params)
    if immediate:
        _execute("SET CONSTRAINTS ALL DEFERRED")
    diag = caught.value.__cause__.diag
    told = (diag.sqlstate, diag.message_primary, diag.message_detail, diag.message_hint, diag.schema_name,
            diag.table_name, diag.column_name, diag.constraint_name, diag.context, str(caught.value))
    assert diag.sqlstate == "23503", told
    return told


def _first_id(table: str, owner_id: int) -> int:
    """One of the owner's rows of `table` (read in the system context, so any owner's)."""
    key = "trade_id" if table == "analytics_tradeforensics" else "id"
    with tenancy.system_context():
        return _one(f"SELECT {key} FROM {table} WHERE owner_id = %s ORDER BY {key} LIMIT 1", [owner_id])[0]


def _missing_id(table: str) -> int | uuid.UUID:
    """An id no row of `table` has, in any tenant."""
    with tenancy.system_context():
        if _one("SELECT atttypid = 'uuid'::regtype FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'id'", [table])[0]:
            return uuid.uuid4()  # webhook events
        return _one(f"SELECT coalesce(max(id), 0) + 1000 FROM {table}")[0]


def _foreign_key_name(table: str, column: str) -> str:
    return _one(
        """SELECT c.conname FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND a.attname = %s""", [table, column])[0]


def _copy_with(table: str, column: str) -> str:
    """INSERT one of an owner's rows again, with `column` set to a parameter (then the owner id)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id' "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position", [table])
        columns = [name for name, in cursor.fetchall()]
    selected = ", ".join("%s" if name == column else name for name in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM {table} WHERE owner_id = %s LIMIT 1"


def test_every_foreign_key_between_owner_scoped_tables_is_guarded(db):
    """The catalogue decides: a foreign key from a table with an owner_id to another such table
    needs an enabled BEFORE INSERT OR UPDATE OF <column>, owner_id row trigger running the guard
    with that column and that table (or a dedicated copy of the guard for that key)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, fa.attname, cardinality(c.conkey)
              FROM pg_constraint c
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
              JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
             WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
               AND c.conparentid = 0  -- a partition's copy of its parent's key: the parent's is listed
               AND EXISTS (SELECT 1 FROM pg_attribute o WHERE o.attrelid = c.conrelid AND o.attname = 'owner_id'
                                                          AND NOT o.attisdropped)
               AND EXISTS (SELECT 1 FROM pg_attribute o WHERE o.attrelid = c.confrelid AND o.attname = 'owner_id'
                                                          AND NOT o.attisdropped)
             ORDER BY 1, 2
            """
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(
            """
            SELECT t.tgfoid::regproc::text, t.tgrelid::regclass::text, t.tgtype, t.tgenabled, t.tgargs,
                   ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = t.tgrelid AND attnum = ANY(t.tgattr)
                          ORDER BY attname)
              FROM pg_trigger t WHERE t.tgfoid::regproc::text = ANY(%s) AND NOT t.tgisinternal
            """, [[GUARD, *DEDICATED_GUARDS]])
        guarded = set()
        wanted = TRIGGER_ROW | TRIGGER_BEFORE | TRIGGER_INSERT | TRIGGER_UPDATE
        for function, table, kind, enabled, arguments, columns in cursor.fetchall():
            column, referenced = DEDICATED_GUARDS.get(function) or bytes(arguments).decode().split("\0")[:2]
            if kind & wanted == wanted and enabled in ("O", "A") and columns == sorted([column, "owner_id"]):
                guarded.add((table, column, referenced))
    assert [(table, column, referenced) for table, column, referenced, _, _ in foreign_keys] == GUARDED, (
        "List the new foreign key in GUARDED (and give it the guard's trigger in its migration)")
    assert all(key == "id" and width == 1 for _, _, _, key, width in foreign_keys), (
        "the guard looks referenced rows up by their id: teach it another key before guarding this one")
    unguarded = [(table, column) for table, column, referenced, _, _ in foreign_keys
                 if (table, column, referenced) not in guarded]
    assert unguarded == []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.tgrelid::regclass::text FROM pg_trigger t
             WHERE t.tgfoid = %s::regproc AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')
               AND t.tgtype & %s = %s
               AND ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = t.tgrelid AND attnum = ANY(t.tgattr))
                   = ARRAY['owner_id'::name]
            """, [OWNER_GUARD, wanted, TRIGGER_ROW | TRIGGER_BEFORE | TRIGGER_UPDATE])
        owner_guarded = {table for table, in cursor.fetchall()}
    assert {referenced for _, _, referenced, _, _ in foreign_keys} - owner_guarded == set()


def test_the_refusal_reads_word_for_word_like_postgresqls_own(two_tenants):
    """PostgreSQL's own answer for a missing key on a table with row-level security (an event's
    acting user, a key the guard does not cover), checked at once: the guard's answer for a
    trade is the same sentence with the constraint and table names of its own foreign key."""
    _, bob = two_tenants
    event = "trades_tradeevent"
    trade_fk, actor_fk = _foreign_key_name(event, "trade_id"), _foreign_key_name(event, "actor_user_id")
    with tenancy.acting_as(bob.pk):
        native = _refusal(_copy_with(event, "actor_user_id"), [_missing_id("auth_user"), bob.pk], immediate=True)
        guarded = _refusal(_copy_with(event, "trade_id"), [_missing_id("trades_papertrade"), bob.pk])
    code, message, detail, hint, schema, table, column, constraint = native[:8]
    assert (message, detail, constraint) == (
        f'insert or update on table "{event}" violates foreign key constraint "{actor_fk}"',
        'Key is not present in table "auth_user".', actor_fk)  # no key value: the table has row-level security
    assert guarded[:8] == (code, message.replace(actor_fk, trade_fk), detail.replace("auth_user", "trades_papertrade"),
                           hint, schema, table, column, trade_fk)


@pytest.mark.parametrize(("table", "column", "referenced"), GUARDED)
def test_bob_inserting_a_reference_to_alices_row_is_told_it_does_not_exist(two_tenants, table, column, referenced):
    alice, bob = two_tenants
    alices, missing = _first_id(referenced, alice.pk), _missing_id(referenced)
    with tenancy.acting_as(bob.pk):
        rows = _one(f"SELECT count(*) FROM {table}")[0]
        to_alices = _refusal(_copy_with(table, column), [alices, bob.pk])
        to_nothing = _refusal(_copy_with(table, column), [missing, bob.pk])
        assert _one(f"SELECT count(*) FROM {table}")[0] == rows
    assert to_alices == to_nothing
    foreign_key = _foreign_key_name(table, column)
    assert to_alices[1:3] == (f'insert or update on table "{table}" violates foreign key constraint "{foreign_key}"',
                              f'Key is not present in table "{referenced}".')
    assert to_alices[4:8] == ("public", table, None, foreign_key)


def test_a_unique_index_on_the_reference_tells_bob_nothing_either(two_tenants):
    """The guard refuses before the row reaches an index: a snapshot at the very slot of Alice's,
    or forensics for her trade that has them, would otherwise fail as a duplicate (or, in the
    cycle's ON CONFLICT DO NOTHING, pass as a no-op) where a missing trade fails as missing."""
    alice, bob = two_tenants
    with tenancy.system_context():
        trade_id, slot, kind = _one("SELECT trade_id, timestamp, kind FROM monitoring_pricesnapshot "
                                    "WHERE owner_id = %s", [alice.pk])
        analysed = _one("SELECT trade_id FROM analytics_tradeforensics WHERE owner_id = %s", [alice.pk])[0]
    missing = _missing_id("trades_papertrade")
    snapshot = ("INSERT INTO monitoring_pricesnapshot (trade_id, owner_id, timestamp, kind, mark_price, source) "
                "VALUES (%s, %s, %s, %s, 4.35, 'simulated')")
    with tenancy.acting_as(bob.pk):
        assert _refusal(snapshot, [trade_id, bob.pk, slot, kind]) == _refusal(snapshot, [missing, bob.pk, slot, kind])
        forensics = _copy_with("analytics_tradeforensics", "trade_id")
        assert _refusal(forensics, [analysed, bob.pk]) == _refusal(forensics, [missing, bob.pk])
    with tenancy.system_context():
        skipped = snapshot + " ON CONFLICT (trade_id, timestamp, kind) DO NOTHING"
        assert _refusal(skipped, [trade_id, bob.pk, slot, kind]) == _refusal(skipped, [missing, bob.pk, slot, kind])


@pytest.mark.parametrize(("table", "column", "referenced"), UPDATABLE)
def test_bob_moving_a_reference_to_alices_row_is_told_it_does_not_exist(two_tenants, table, column, referenced):
    alice, bob = two_tenants
    alices, missing = _first_id(referenced, alice.pk), _missing_id(referenced)
    moved = f"UPDATE {table} SET {column} = %s WHERE owner_id = %s AND {column} IS NOT NULL"
    with tenancy.acting_as(bob.pk):
        assert _refusal(moved, [alices, bob.pk]) == _refusal(moved, [missing, bob.pk])


@pytest.mark.parametrize(("table", "column", "referenced"), GUARDED)
def test_the_system_context_cannot_write_bobs_row_pointing_at_alices(two_tenants, table, column, referenced):
    """The system context sees every tenant's rows: the owner comparison is what refuses there."""
    alice, bob = two_tenants
    alices, missing = _first_id(referenced, alice.pk), _missing_id(referenced)
    with tenancy.system_context():
        assert _refusal(_copy_with(table, column), [alices, bob.pk]) == _refusal(
            _copy_with(table, column), [missing, bob.pk])


@pytest.mark.parametrize(("table", "column", "referenced"), UPDATABLE)
def test_the_system_context_cannot_move_bobs_reference_nor_hand_his_row_to_alice(two_tenants, table, column,
                                                                                  referenced):
    alice, bob = two_tenants
    alices = _first_id(referenced, alice.pk)
    with tenancy.system_context():
        _refusal(f"UPDATE {table} SET {column} = %s WHERE owner_id = %s AND {column} IS NOT NULL", [alices, bob.pk])
        _refusal(f"UPDATE {table} SET owner_id = %s WHERE owner_id = %s AND {column} IS NOT NULL", [alice.pk, bob.pk])


@pytest.mark.parametrize(("table", "column", "referenced"), GUARDED)
def test_the_system_context_cannot_hand_alice_a_row_that_bobs_rows_point_at(two_tenants, table, column, referenced):
    alice, bob = two_tenants
    with tenancy.system_context():
        pointed_at = _one(f"SELECT {column} FROM {table} WHERE owner_id = %s AND {column} IS NOT NULL LIMIT 1",
                          [bob.pk])[0]
        told = _refusal(f"UPDATE {referenced} SET owner_id = %s WHERE id = %s", [alice.pk, pointed_at])
        assert _one(f"SELECT owner_id FROM {referenced} WHERE id = %s", [pointed_at])[0] == bob.pk
    # Refused as still referenced, or, where the row itself points at Bob's (a webhook event at his
    # trade), first as pointing across tenants.
    assert told[1].startswith((f'update or delete on table "{referenced}" violates foreign key constraint "',
                               f'insert or update on table "{referenced}" violates foreign key constraint "'))


def test_a_row_nothing_points_at_may_change_owner(two_tenants):
    """Only references hold the owner: ops may still move a row no one points at."""
    alice, bob = two_tenants
    unreferenced = PaperTradeFactory(owner=bob, legs=False)  # a trade's legs point at it
    with tenancy.system_context():
        assert _execute("UPDATE trades_papertrade SET owner_id = %s WHERE id = %s", [alice.pk, unreferenced.pk]) == 1


@pytest.mark.parametrize(("table", "column", "referenced"), UPDATABLE)
def test_bob_keeps_and_clears_references_to_his_own_rows(two_tenants, table, column, referenced):
    _, bob = two_tenants
    with tenancy.acting_as(bob.pk):
        assert _execute(f"UPDATE {table} SET {column} = {column}, owner_id = owner_id WHERE owner_id = %s "
                        f"AND {column} IS NOT NULL", [bob.pk]) >= 1
        if (table, column) in NULLABLE:
            assert _execute(f"UPDATE {table} SET {column} = NULL WHERE owner_id = %s", [bob.pk]) >= 1


def test_bob_writes_snapshots_and_events_for_his_own_trade_through_the_orm(two_tenants):
    _, bob = two_tenants
    trade = PaperTradeFactory(owner=bob)
    with tenancy.acting_as(bob.pk):
        snapshot = PriceSnapshot.objects.create(trade=trade, owner=bob, timestamp=datetime(2026, 12, 1, 15, tzinfo=UTC),
                                                mark_price=Decimal("4.35"), source="simulated")
        TradeEvent.objects.create(trade=trade, owner=bob, kind=EventKind.STATE_CHANGE, actor=Actor.SYSTEM)
        TradeEvent.objects.create(trade=None, owner=bob, kind=EventKind.SETTINGS_CHANGED, actor=Actor.SYSTEM)
        snapshot.mark_price = Decimal("4.40")
        snapshot.save()  # an UPDATE of every column, the reference included
        assert PriceSnapshot.objects.filter(trade=trade).count() == 1


def _orm_refusal(write) -> tuple:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        write()
    diag = caught.value.__cause__.diag
    return diag.sqlstate, diag.message_primary, diag.message_detail, diag.constraint_name, str(caught.value)


def test_through_the_orm_alices_trade_and_no_trade_look_the_same_to_bob(two_tenants):
    alice, bob = two_tenants
    alices, missing = _first_id("trades_papertrade", alice.pk), _missing_id("trades_papertrade")
    at = datetime(2026, 12, 1, 15, tzinfo=UTC)
    with tenancy.acting_as(bob.pk):
        def snapshot_of(trade_id):
            return lambda: PriceSnapshot.objects.create(trade_id=trade_id, owner=bob, timestamp=at,
                                                        mark_price=Decimal("4.35"), source="simulated")

        def event_of(trade_id):
            return lambda: TradeEvent.objects.create(trade_id=trade_id, owner=bob, kind=EventKind.STATE_CHANGE,
                                                     actor=Actor.USER)

        assert _orm_refusal(snapshot_of(alices)) == _orm_refusal(snapshot_of(missing))
        assert _orm_refusal(event_of(alices)) == _orm_refusal(event_of(missing))
        own = PriceSnapshot.objects.get(owner=bob)

        def moved_to(trade_id):
            def move():
                own.trade_id = trade_id
                own.save()
            return move

        assert _orm_refusal(moved_to(alices)) == _orm_refusal(moved_to(missing))


@pytest.mark.django_db(transaction=True)
def test_the_guard_is_not_installed_over_rows_that_already_point_across_tenants(trader, other_trader):
    """Such a row would be refused at its next save: the migration stops and says which column."""
    alices = PaperTradeFactory(owner=trader)
    call_command("migrate", "monitoring", "0003", stdout=StringIO())
    try:
        # In SQL: the model of today has columns (`delayed`) that the table at 0003 does not.
        with tenancy.system_context(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO monitoring_pricesnapshot (trade_id, owner_id, timestamp, kind, mark_price, delta, gamma,"
                " theta, vega, iv, source) VALUES (%s, %s, %s, 'INTRADAY', 4.35, 0, 0, 0, 0, 0, 'simulated')",
                [alices.pk, other_trader.pk, datetime(2026, 12, 1, tzinfo=UTC)])
        with pytest.raises(DatabaseError, match="monitoring_pricesnapshot.trade_id points at rows of another owner"):
            call_command("migrate", "monitoring", stdout=StringIO())
        with tenancy.system_context():
            PriceSnapshot.objects.filter(owner=other_trader).delete()
    finally:
        call_command("migrate", stdout=StringIO())
    with tenancy.system_context(), pytest.raises(IntegrityError), transaction.atomic():
        PriceSnapshot.objects.create(trade=alices, owner=other_trader, timestamp=datetime(2026, 12, 1, tzinfo=UTC),
                                     mark_price=Decimal("4.35"), source="simulated")
