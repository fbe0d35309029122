"""Arbitrary SQL on the web role cannot reach another tenant's rows.

The attacker is Mallory's worst case: SQL of her choice runs on the web role (an injection inside
Alice's signed-in request, or DATABASE_URL's credentials leaked), with Alice's valid tenant
context already set, as the web process sets it. Every trick in the book for switching tenants
or leaving row-level security behind must leave her with no row of Bob's, in every table that
has the tenant policy: either the statement is refused, or it sees nothing.

The rows are committed (a transactional test), so a connection of its own sees them; the
positive controls show that the same connection does see rows when a context is valid, so a
zero means "refused", not "no data".
"""


import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg import errors, sql

from analytics.models import FirstTouch, TradeForensics
from tests.factories import UserFactory, a_row_in_every_owned_table
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

pytestmark = pytest.mark.django_db(transaction=True)
CONTRACT = "SPY261218C00570000"
RANDOM_SIGNATURE = "0f" * 32


def _tenant_tables() -> list[str]:
    """Every table the tenant policy protects, from the catalogue (not a list that may go stale).
    A partition carries its parent's policies but is reached through the parent only."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT p.tablename FROM pg_policies p JOIN pg_class c ON c.oid = format('%I.%I', "
                       "p.schemaname, p.tablename)::regclass WHERE p.policyname = 'tenant_owner' "
                       "AND NOT c.relispartition ORDER BY p.tablename")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def tenants():
    """Alice and Bob each own a row in every table with the tenant policy, committed."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    market = HandDrivenMarket()
    market.set_quote(CONTRACT, "4.10", "4.30")
    for owner in (alice, bob):
        trade = a_row_in_every_owned_table(owner, market=market, contract=CONTRACT)
        with tenancy.acting_as(owner.pk):
            TradeForensics.objects.create(trade=trade, owner=owner, first_touch=FirstTouch.NEITHER,
                                          snapshot_count=0, computed_at=timezone.now())
    tables = _tenant_tables()
    with tenancy.system_context(), connection.cursor() as cursor:
        for table in tables:
            for owner in (alice, bob):
                cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE owner_id = %s").format(sql.Identifier(table)),
                               [owner.pk])
                assert cursor.fetchone()[0] >= 1, f"{table} has no row of {owner.username}"
    return alice, bob, tables


def _state(raw: psycopg.Connection) -> tuple[int, int]:
    """This transaction's backend pid and start, as tenancy._context reads them."""
    return raw.execute("SELECT pg_backend_pid(), (extract(epoch FROM now()) * 1000000)::bigint").fetchone()


def _sign_in(raw: psycopg.Connection, user_id: int) -> str:
    """What the web process does at the start of a request's transaction: returns the signature."""
    signature = tenancy.sign(str(user_id), *_state(raw))
    raw.execute("SELECT set_config('app.user_id', %s, true), set_config('app.user_sig', %s, true)",
                [str(user_id), signature])
    return signature


def _claim(raw: psycopg.Connection, user_id: int, signature: str, *, local: bool = True) -> None:
    raw.execute("SELECT set_config('app.user_id', %s, %s), set_config('app.user_sig', %s, %s)",
                [str(user_id), local, signature, local])


def _rows_of(raw: psycopg.Connection, tables: list[str], owner_id: int) -> dict[str, int]:
    """Rows of `owner_id` seen, per table with any (none when the tenant is out of reach)."""
    seen = {}
    for table in tables:
        count = raw.execute(sql.SQL("SELECT count(*) FROM {} WHERE owner_id = %s").format(sql.Identifier(table)),
                            [owner_id]).fetchone()[0]
        if count:
            seen[table] = count
    return seen


@pytest.fixture
def mallory(connect_as, tenants):
    """A web-role connection inside Alice's signed-in request."""
    alice, bob, tables = tenants
    raw = connect_as(settings.DATABASE_APP_ROLE)
    assert raw.execute("SELECT current_user").fetchone()[0] == "tradeoptions_app"
    _sign_in(raw, alice.pk)
    return raw, alice, bob, tables


# --- Positive controls: the same connection sees rows when (and only when) the context is right.

def test_the_web_role_with_a_valid_signature_sees_its_own_rows_only(mallory):
    raw, alice, bob, tables = mallory
    assert set(_rows_of(raw, tables, alice.pk)) == set(tables)
    assert _rows_of(raw, tables, bob.pk) == {}
    total = {table: raw.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
             for table in tables}
    assert total == _rows_of(raw, tables, alice.pk)


def test_the_worker_role_in_the_system_context_sees_every_tenant(connect_as, tenants):
    alice, bob, tables = tenants
    raw = connect_as(settings.DATABASE_WORKER_ROLE)
    raw.execute("SELECT set_config('app.system', 'on', true)")
    assert set(_rows_of(raw, tables, alice.pk)) == set(_rows_of(raw, tables, bob.pk)) == set(tables)


def test_a_signature_is_good_for_its_own_backend_and_transaction(mallory):
    """The replay cases below would pass vacuously if no signature ever worked: this one does."""
    raw, alice, bob, tables = mallory
    _sign_in(raw, bob.pk)  # as the web process would for Bob, in this very transaction
    assert set(_rows_of(raw, tables, bob.pk)) == set(tables)


# --- The tricks. Each runs in the transaction of Alice's request; then Bob's rows are counted in
# the same transaction (or, when the statement was refused, in the next one).

def _system_on_local(raw, ctx):
    raw.execute("SELECT set_config('app.system', 'on', true)")


def _system_on_session(raw, ctx):
    raw.execute("SELECT set_config('app.system', 'on', false)")


def _system_on_by_set(raw, ctx):
    raw.execute("SET app.system = 'on'")


def _bob_unsigned(raw, ctx):
    raw.execute("SELECT set_config('app.user_id', %s, true)", [str(ctx["bob"])])


def _bob_unsigned_with_system(raw, ctx):
    raw.execute("SELECT set_config('app.user_id', %s, true), set_config('app.user_sig', '', true), "
                "set_config('app.system', 'on', true)", [str(ctx["bob"])])


def _bob_random_signature(raw, ctx):
    _claim(raw, ctx["bob"], RANDOM_SIGNATURE)


def _bob_with_alices_signature(raw, ctx):
    _claim(raw, ctx["bob"], ctx["alice_signature"])


def _bob_with_a_signature_for_another_backend(raw, ctx):
    """Bob's genuine signature from another session (as pg_stat_activity would show it)."""
    with tenancy.acting_as(ctx["bob"]), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.user_sig')")
        seen = cursor.fetchone()[0]
    _claim(raw, ctx["bob"], seen)


def _bob_with_a_signature_from_an_earlier_transaction(raw, ctx):
    """Bob's genuine signature on this very backend, from a transaction that has ended."""
    raw.rollback()
    earlier = tenancy.sign(str(ctx["bob"]), *_state(raw))
    raw.rollback()
    _claim(raw, ctx["bob"], earlier)


def _bob_signed_at_session_level_earlier(raw, ctx):
    raw.rollback()
    earlier = tenancy.sign(str(ctx["bob"]), *_state(raw))
    _claim(raw, ctx["bob"], earlier, local=False)
    raw.commit()


def _bob_with_uppercase_or_padded_signature(raw, ctx):
    raw.execute("SELECT set_config('app.user_id', %s, true), set_config('app.user_sig', %s, true)",
                [f" {ctx['bob']}", ctx["alice_signature"].upper()])


def _garbage(raw, ctx):
    """Values no signer makes: they must give no rows, and no error that would break a request."""
    for user_id, signature in [("abc", RANDOM_SIGNATURE), ("9" * 30, RANDOM_SIGNATURE), ("-1", RANDOM_SIGNATURE),
                               (str(ctx["bob"]), "zz" * 32), (str(ctx["bob"]), RANDOM_SIGNATURE * 2)]:
        raw.execute("SELECT set_config('app.user_id', %s, true), set_config('app.user_sig', %s, true)",
                    [user_id, signature])
        assert raw.execute("SELECT app_user_id()").fetchone()[0] is None


def _set_role(role):
    def trick(raw, ctx):
        raw.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        raw.execute("SELECT set_config('app.system', 'on', true)")
    trick.__name__ = f"_set_role_{role}"
    return trick


def _reset_role(raw, ctx):
    raw.execute("RESET ROLE")
    raw.execute("SELECT set_config('app.system', 'on', true)")


def _set_session_authorization(raw, ctx):
    raw.execute("SET SESSION AUTHORIZATION tradeoptions_worker")


def _read_the_key(raw, ctx):
    raw.execute("SELECT inner_pad, outer_pad FROM tenancy_private.hmac_key")


def _call_app_user_id_with_arguments(raw, ctx):
    raw.execute("SELECT app_user_id(%s)", [ctx["bob"]])


def _replace_app_user_id(raw, ctx):
    raw.execute("CREATE OR REPLACE FUNCTION public.app_user_id() RETURNS bigint LANGUAGE sql AS "
                f"'SELECT {int(ctx['bob'])}::bigint'")


def _shadow_app_user_id_in_pg_temp(raw, ctx):
    raw.execute("CREATE FUNCTION pg_temp.app_user_id() RETURNS bigint LANGUAGE sql AS "
                f"'SELECT {int(ctx['bob'])}::bigint'")
    raw.execute("SET LOCAL search_path = pg_temp, public")
    _claim(raw, ctx["bob"], RANDOM_SIGNATURE)


def _shadow_what_app_user_id_calls(raw, ctx):
    """A temporary sha256() and `=` that would accept any signature, if the function found them."""
    raw.execute("CREATE FUNCTION pg_temp.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$SELECT '\\x00'::bytea$$")
    raw.execute("CREATE FUNCTION pg_temp.decode(text, text) RETURNS bytea LANGUAGE sql AS $$SELECT '\\x00'::bytea$$")
    raw.execute("SET LOCAL search_path = pg_temp, public")
    _claim(raw, ctx["bob"], RANDOM_SIGNATURE)


def _alter_policy(raw, ctx):
    raw.execute("ALTER POLICY tenant_owner ON trades_papertrade USING (true)")


def _create_policy(raw, ctx):
    raw.execute("CREATE POLICY mallory ON trades_papertrade USING (true)")


def _disable_row_level_security(raw, ctx):
    raw.execute("ALTER TABLE trades_papertrade DISABLE ROW LEVEL SECURITY")


def _no_force_row_level_security(raw, ctx):
    raw.execute("ALTER TABLE trades_papertrade NO FORCE ROW LEVEL SECURITY")


def _row_security_off(raw, ctx):
    raw.execute("SET row_security = off")


def _grant_herself_the_system_group(raw, ctx):
    raw.execute("GRANT tradeoptions_system TO tradeoptions_app")


def _role_default_in_this_database(raw, ctx):
    """A per-database default for her own role: her next session would start with it."""
    database = sql.Identifier(raw.info.dbname)
    try:
        raw.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET app.system = 'on'").format(database))
        raw.commit()
        ctx["reconnect"] = True
    finally:
        raw.rollback()


def _temporary_view(raw, ctx):
    raw.execute("CREATE TEMPORARY VIEW everything AS SELECT * FROM trades_papertrade")
    ctx["extra"] = raw.execute("SELECT count(*) FROM everything WHERE owner_id = %s", [ctx["bob"]]).fetchone()[0]


def _security_definer_temp_function(raw, ctx):
    raw.execute("CREATE FUNCTION pg_temp.everything() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS "
                f"'SELECT count(*) FROM public.trades_papertrade WHERE owner_id = {int(ctx['bob'])}'")
    ctx["extra"] = raw.execute("SELECT pg_temp.everything()").fetchone()[0]


def _statistics(raw, ctx):
    """pg_stats would show a column's most common values, Bob's included."""
    ctx["extra"] = raw.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'trades_papertrade'").fetchone()[0]


def _copy_out(raw, ctx):
    with raw.cursor().copy("COPY trades_papertrade (owner_id) TO STDOUT") as copy:
        ctx["extra"] = sum(1 for row in copy.rows() if int(row[0]) == ctx["bob"])


TRICKS = [
    _system_on_local, _system_on_session, _system_on_by_set, _bob_unsigned, _bob_unsigned_with_system,
    _bob_random_signature, _bob_with_alices_signature, _bob_with_a_signature_for_another_backend,
    _bob_with_a_signature_from_an_earlier_transaction, _bob_signed_at_session_level_earlier,
    _bob_with_uppercase_or_padded_signature, _garbage,
    _set_role("tradeoptions_worker"), _set_role("tradeoptions_system"), _set_role("tradeoptions_owner"),
    _set_role("tradeoptions_backup"), _reset_role, _set_session_authorization, _read_the_key,
    _call_app_user_id_with_arguments, _replace_app_user_id, _shadow_app_user_id_in_pg_temp,
    _shadow_what_app_user_id_calls, _alter_policy, _create_policy, _disable_row_level_security,
    _no_force_row_level_security, _row_security_off, _grant_herself_the_system_group,
    _role_default_in_this_database, _temporary_view, _security_definer_temp_function, _statistics, _copy_out,
]
# What a refusal may look like: no privilege, or (for a function that does not exist) no such thing.
REFUSALS = (errors.InsufficientPrivilege, errors.UndefinedFunction)


@pytest.mark.parametrize("trick", TRICKS, ids=[trick.__name__.lstrip("_") for trick in TRICKS])
def test_no_trick_on_the_web_role_reaches_another_tenant(mallory, connect_as, trick):
    raw, alice, bob, tables = mallory
    alice_signature = raw.execute("SELECT current_setting('app.user_sig')").fetchone()[0]
    ctx = {"bob": bob.pk, "alice_signature": alice_signature, "extra": 0}
    try:
        trick(raw, ctx)
    except REFUSALS:
        raw.rollback()
    except errors.FeatureNotSupported:  # row_security = off: "query would be affected by row-level security"
        raw.rollback()
    if ctx.get("reconnect"):
        raw = connect_as(settings.DATABASE_APP_ROLE)
    try:
        assert ctx["extra"] == 0
        assert _rows_of(raw, tables, bob.pk) == {}
    except errors.InsufficientPrivilege as refused:  # row_security = off refuses every RLS query
        assert "row-level security" in str(refused)
    finally:
        if ctx.get("reconnect"):
            raw.execute(sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} RESET ALL").format(
                sql.Identifier(raw.info.dbname)))
            raw.commit()
