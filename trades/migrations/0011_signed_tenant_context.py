"""The tenant policy accepts a user id only when it is signed for this transaction, and the
system context only for members of tradeoptions_system (never the web role).

app_user_id() (tradeoptions 0001) checks the signature; the sub-select makes it an initplan,
evaluated once per query rather than once per row. Frozen here, like every policy migration.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("trades", "0010_trade_exit_filled"),
        ("tradeoptions", "0001_signed_tenant_context"),
    ]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_papertrade
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_papertrade TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_papertrade
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_papertrade TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_tradeevent
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_tradeevent TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_tradeevent
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_tradeevent TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_accountsettings
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_accountsettings TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_accountsettings
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_accountsettings TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_idempotencykey
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_idempotencykey TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_idempotencykey
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_idempotencykey TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_webhookevent
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_webhookevent TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_webhookevent
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_webhookevent TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON trades_webhookdelivery
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON trades_webhookdelivery TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON trades_webhookdelivery
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON trades_webhookdelivery TO PUBLIC;
            """,
        ),
    ]
