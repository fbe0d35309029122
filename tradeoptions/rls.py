"""Row-level security as reviewable schema: SQL for migrations, with its reverse."""

from django.db import migrations

USER_ID = "NULLIF(current_setting('app.user_id', true), '')::bigint"
SYSTEM_ON = "current_setting('app.system', true) = 'on'"


def enable_row_level_security(table: str, owner_column: str = "owner_id") -> migrations.RunSQL:
    """ENABLE + FORCE RLS on `table`, one policy for the owner and one for the system context.

    FORCE makes the policies apply to the table's owner too. Fail-closed: with no setting the
    owner comparison is NULL and no row qualifies.
    """
    return migrations.RunSQL(
        sql=f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
            CREATE POLICY tenant_owner ON {table}
                USING ({owner_column} = {USER_ID})
                WITH CHECK ({owner_column} = {USER_ID});
            CREATE POLICY system_context ON {table}
                USING ({SYSTEM_ON})
                WITH CHECK ({SYSTEM_ON});
        """,
        reverse_sql=f"""
            DROP POLICY IF EXISTS system_context ON {table};
            DROP POLICY IF EXISTS tenant_owner ON {table};
            ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
        """,
    )
