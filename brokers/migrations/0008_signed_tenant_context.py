"""The tenant policy accepts a user id only when it is signed for this transaction, and the
system context only for members of tradeoptions_system (never the web role).

app_user_id() (tradeoptions 0001) checks the signature; the sub-select makes it an initplan,
evaluated once per query rather than once per row. Frozen here, like every policy migration.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0007_paperfill_open_index_led_by_owner"),
        ("tradeoptions", "0001_signed_tenant_context"),
    ]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON brokers_paperaccount
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON brokers_paperaccount TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON brokers_paperaccount
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON brokers_paperaccount TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON brokers_paperorder
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON brokers_paperorder TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON brokers_paperorder
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON brokers_paperorder TO PUBLIC;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON brokers_paperfill
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON brokers_paperfill TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON brokers_paperfill
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON brokers_paperfill TO PUBLIC;
            """,
        ),
    ]
