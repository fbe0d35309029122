"""PostgreSQL roles: the schema owner runs migrations; the web role (DATABASE_URL) and the worker
role (DATABASE_WORKER_URL: Celery, beat, ops commands) run everything else.

Neither runtime role owns tables or is superuser or BYPASSRLS, so row-level security applies to
them even when application code forgets a filter; only the worker role is in the system group
(deploy/postgres/roles.sql). Their privileges are granted here, after every migrate, so they
follow the schema without a manual step, and so is the tenant context's key (tradeoptions/tenancy.py).
"""

from contextlib import contextmanager

from django.conf import settings
from django.db import connections
from psycopg import sql

CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT")
# Append-only audit tables: the app role may add rows, never change or remove them.
APPEND_ONLY_TABLES = {"trades_tradeevent"}


@contextmanager
def as_schema_owner(alias: str = "default"):
    """Run the block on `alias` connected as DATABASE_OWNER_URL's role (same database name)."""
    connection = connections[alias]
    saved = {key: connection.settings_dict.get(key) for key in CREDENTIALS}
    owner = settings.DATABASE_OWNER
    connection.close()
    connection.settings_dict.update({key: owner.get(key) for key in CREDENTIALS})
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def app_role() -> str:
    return settings.DATABASE_APP_ROLE


def runtime_roles() -> list[str]:
    """The web role and the worker role (one, in a single-role set-up)."""
    return list(dict.fromkeys([settings.DATABASE_APP_ROLE, settings.DATABASE_WORKER_ROLE]))


def grant_app_role_privileges(using: str = "default", **kwargs) -> None:
    """post_migrate: give the runtime roles exactly what they need on every table of the schema
    `public` (never the schema tenancy_private, which holds the tenant context's key)."""
    connection = connections[using]
    roles = runtime_roles()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] in roles:
            return  # a runtime role itself (single-role set-up, or a test's flush): nothing to grant
        # Partitions (the price history's months) are reached through their parent only, which
        # alone is checked for privileges and policies when a query names the parent.
        cursor.execute(
            "SELECT c.relname, c.relispartition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) = current_user"
        )
        rows = cursor.fetchall()
        tables = [name for name, partition in rows if not partition]
        grantees = sql.SQL(", ").join(sql.Identifier(role) for role in roles)
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(grantees))
        for partition in (name for name, partition in rows if partition):
            cursor.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(sql.Identifier(partition), grantees))
        for table in tables:
            privileges = "SELECT, INSERT" if table in APPEND_ONLY_TABLES else "SELECT, INSERT, UPDATE, DELETE"
            cursor.execute(
                sql.SQL("GRANT " + privileges + " ON TABLE {} TO {}").format(sql.Identifier(table), grantees)
            )
        cursor.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(grantees))


def store_tenant_context_key(using: str = "default", **kwargs) -> None:
    """post_migrate: give the database the pads of TENANT_CONTEXT_KEY, with which app_user_id()
    checks signatures. Only the schema owner (who owns the table) writes them; the runtime
    roles cannot even see the schema."""
    from .tenancy import context_key, context_key_pads

    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableowner = current_user FROM pg_tables WHERE schemaname = 'tenancy_private' "
            "AND tablename = 'hmac_key'"
        )
        row = cursor.fetchone()
        if not row or not row[0]:
            return  # not migrated that far yet, or not the owner (a test's flush)
        inner, outer = context_key_pads(context_key())
        cursor.execute(
            "INSERT INTO tenancy_private.hmac_key (id, inner_pad, outer_pad) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad",
            [inner, outer],
        )
