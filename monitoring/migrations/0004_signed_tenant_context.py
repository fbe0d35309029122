"""The tenant policy accepts a user id only when it is signed for this transaction, and the
system context only for members of tradeoptions_system (never the web role).

app_user_id() (tradeoptions 0001) checks the signature; the sub-select makes it an initplan,
evaluated once per query rather than once per row. Frozen here, like every policy migration.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_snapshot_trade_index_served_by_unique"),
        ("tradeoptions", "0001_signed_tenant_context"),
    ]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER POLICY tenant_owner ON monitoring_pricesnapshot
                    USING (owner_id = (SELECT app_user_id()))
                    WITH CHECK (owner_id = (SELECT app_user_id()));
                ALTER POLICY system_context ON monitoring_pricesnapshot TO tradeoptions_system;
            """,
            reverse_sql="""
                ALTER POLICY tenant_owner ON monitoring_pricesnapshot
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                ALTER POLICY system_context ON monitoring_pricesnapshot TO PUBLIC;
            """,
        ),
    ]
