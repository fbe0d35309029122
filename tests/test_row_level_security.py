"""Tenant isolation in PostgreSQL itself: raw SQL on the test process's connection (the worker
role, under the same tenant policy as the web role; tests/test_tenant_context.py connects as the
web role itself).

These scenarios hold even if application code forgot a filter, because the database applies
the policies to every statement.
"""


import pytest
from django.db import connection, transaction
from django.db.utils import IntegrityError, ProgrammingError

from tests.factories import a_row_in_every_owned_table
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy
from trades.models import AccountSettings

OWNED_TABLES = [
    "trades_papertrade", "trades_tradeevent", "trades_accountsettings", "trades_idempotencykey",
    "monitoring_pricesnapshot", "brokers_paperaccount", "brokers_paperorder", "brokers_paperfill",
    "trades_webhookevent", "trades_webhookdelivery", "trades_tradeexitpart", "trades_tradeleg",
    "trades_notificationchannel", "trades_channelmessage",
    "trades_pushsubscription",
]
# The audit log cannot be updated or deleted at all (see trades/tests/test_models.py).
MUTABLE_TABLES = [table for table in OWNED_TABLES if table != "trades_tradeevent"]
CONTRACT = "SPY261218C00570000"
# A row that points at one of Alice's rows and is given to Bob is refused before the policy looks at
# it, by the reference guard (its owner is not the referenced row's: tests/test_tenant_references.py).
REFUSED = ((ProgrammingError, IntegrityError), "row-level security|violates foreign key constraint")


@pytest.fixture
def two_tenants(trader, other_trader):
    """Alice and Bob each have one row in every owned table: a trade with its leg, an event, a
    snapshot and an idempotency key, their settings, a paper account with one filled order, a webhook
    event with one delivery attempt, and a notification channel with one message."""
    market = HandDrivenMarket()
    market.set_quote(CONTRACT, "4.10", "4.30")
    for owner in (trader, other_trader):
        a_row_in_every_owned_table(owner, market=market, contract=CONTRACT)
    return trader, other_trader


def _count(table: str, owner_id: int | None = None) -> int:
    with connection.cursor() as cursor:
        if owner_id is None:
            cursor.execute(f"SELECT count(*) FROM {table}")
        else:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE owner_id = %s", [owner_id])
        return cursor.fetchone()[0]


def _execute(statement: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def _columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'id' "
            "AND is_generated = 'NEVER' "  # a generated column (paper fills' expiry) cannot be written
            "ORDER BY ordinal_position",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_alice_sees_only_her_own_rows(two_tenants, table):
    alice, bob = two_tenants
    with tenancy.acting_as(alice.pk):
        assert _count(table) == 1
        assert _count(table, alice.pk) == 1
        assert _count(table, bob.pk) == 0


@pytest.mark.parametrize("table", MUTABLE_TABLES)
def test_alice_cannot_update_bobs_rows(two_tenants, table):
    alice, bob = two_tenants
    with tenancy.acting_as(alice.pk):
        assert _execute(f"UPDATE {table} SET owner_id = owner_id WHERE owner_id = %s", [bob.pk]) == 0


@pytest.mark.parametrize("table", MUTABLE_TABLES)
def test_alice_cannot_delete_bobs_rows(two_tenants, table):
    alice, bob = two_tenants
    with tenancy.acting_as(alice.pk):
        assert _execute(f"DELETE FROM {table} WHERE owner_id = %s", [bob.pk]) == 0
    with tenancy.acting_as(bob.pk):
        assert _count(table) == 1


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_alice_cannot_insert_a_row_owned_by_bob(two_tenants, table):
    alice, bob = two_tenants
    columns = _columns(table)
    selected = ", ".join("%s" if name == "owner_id" else name for name in columns)
    with tenancy.acting_as(alice.pk), pytest.raises(REFUSED[0], match=REFUSED[1]):
        with transaction.atomic():
            _execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM {table}", [bob.pk])


@pytest.mark.parametrize("table", MUTABLE_TABLES)
def test_alice_cannot_hand_her_row_to_bob(two_tenants, table):
    alice, bob = two_tenants
    with tenancy.acting_as(alice.pk), pytest.raises(REFUSED[0], match=REFUSED[1]):
        with transaction.atomic():
            _execute(f"UPDATE {table} SET owner_id = %s WHERE owner_id = %s", [bob.pk, alice.pk])


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_without_a_context_nothing_is_visible(two_tenants, table):
    with tenancy.acting_as(None):
        assert _count(table) == 0
    assert _count(table) == 0  # outside any context block, too


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_the_system_context_sees_every_tenant(two_tenants, table):
    with tenancy.system_context():
        assert _count(table) == 2


def test_a_context_ends_with_its_block(two_tenants):
    alice, bob = two_tenants
    with tenancy.acting_as(alice.pk):
        with tenancy.acting_as(bob.pk):
            assert tenancy.current_user_id() == bob.pk
        assert tenancy.current_user_id() == alice.pk
        with tenancy.system_context():
            assert tenancy.in_system_context()
        assert not tenancy.in_system_context()
    assert tenancy.current_user_id() is None


def test_a_failed_block_does_not_leave_its_context_behind(two_tenants):
    alice, _ = two_tenants
    with pytest.raises(RuntimeError):
        with tenancy.system_context():
            raise RuntimeError("the job failed")
    assert not tenancy.in_system_context()
    assert _count("trades_papertrade") == 0


def test_orm_reads_are_scoped_by_the_database_even_without_a_filter(two_tenants):
    alice, _ = two_tenants
    with tenancy.acting_as(alice.pk):
        assert list(AccountSettings.objects.values_list("owner_id", flat=True)) == [alice.pk]


def test_every_owned_table_has_forced_row_level_security_with_policies(db):
    """The catalogue, not a list in this file, decides which tables must be protected."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
              FROM information_schema.columns col
              JOIN pg_class c ON c.relname = col.table_name AND c.relkind IN ('r', 'p')
              JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = col.table_schema
             WHERE col.table_schema = 'public' AND col.column_name = 'owner_id'
             ORDER BY c.relname
            """
        )
        rows = cursor.fetchall()
    assert {row[0] for row in rows} >= set(OWNED_TABLES)
    unprotected = [name for name, enabled, forced, policies in rows if not (enabled and forced and policies == 2)]
    assert unprotected == []


def test_every_owned_table_has_the_tenant_policy_on_its_owner_column(db):
    """Both policies: the tenant one compares owner_id with the signed user id (app_user_id(), once
    per query), the system one heeds `app.system` for the system group only, never the web role."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.tablename, p.policyname, p.roles::text[], p.qual, p.with_check
              FROM pg_policies p
              JOIN information_schema.columns col
                ON col.table_schema = p.schemaname AND col.table_name = p.tablename AND col.column_name = 'owner_id'
             WHERE p.schemaname = 'public'
            """
        )
        policies = {(table, name): (roles, using, check) for table, name, roles, using, check in cursor.fetchall()}
    tables = {table for table, _ in policies}
    assert tables >= set(OWNED_TABLES)
    for table in tables:
        roles, using, check = policies[(table, "tenant_owner")]
        assert roles == ["public"]
        assert using == check == "(owner_id = ( SELECT app_user_id() AS app_user_id))"
        roles, using, check = policies[(table, "system_context")]
        assert roles == ["tradeoptions_system"]
        assert using == check == "(current_setting('app.system'::text, true) = 'on'::text)"
