"""Two PostgreSQL roles: the schema owner runs migrations, the app role runs everything else.

The app role owns no tables and is neither superuser nor BYPASSRLS, so row-level security
applies to it even when application code forgets a filter. The app role's privileges are
granted here, after every migrate, so they follow the schema without a manual step.
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


def grant_app_role_privileges(using: str = "default", **kwargs) -> None:
    """post_migrate: give the app role exactly what it needs on every table of the schema."""
    connection = connections[using]
    role = app_role()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        if cursor.fetchone()[0] == role:
            return  # migrating as the app role itself (single-role set-up): nothing to grant
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        )
        tables = [row[0] for row in cursor.fetchall()]
        grantee = sql.Identifier(role)
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(grantee))
        for table in tables:
            privileges = "SELECT, INSERT" if table in APPEND_ONLY_TABLES else "SELECT, INSERT, UPDATE, DELETE"
            cursor.execute(
                sql.SQL("GRANT " + privileges + " ON TABLE {} TO {}").format(sql.Identifier(table), grantee)
            )
        cursor.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(grantee))
