from django.db import migrations


# Row-level security as written when this migration was made, frozen here (no live helper may
# change it later): ENABLE + FORCE, a fail-closed policy for the owner (no `app.user_id`, no
# rows) and one for the system context.
class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER TABLE monitoring_pricesnapshot ENABLE ROW LEVEL SECURITY;
                ALTER TABLE monitoring_pricesnapshot FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON monitoring_pricesnapshot
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON monitoring_pricesnapshot
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON monitoring_pricesnapshot;
                DROP POLICY IF EXISTS tenant_owner ON monitoring_pricesnapshot;
                ALTER TABLE monitoring_pricesnapshot NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE monitoring_pricesnapshot DISABLE ROW LEVEL SECURITY;
            """,
        ),
    ]
