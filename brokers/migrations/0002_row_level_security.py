from django.db import migrations


# Row-level security as written when this migration was made, frozen here (no live helper may
# change it later): ENABLE + FORCE, a fail-closed policy for the owner (no `app.user_id`, no
# rows) and one for the system context.
class Migration(migrations.Migration):
    dependencies = [("brokers", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER TABLE brokers_paperorder ENABLE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperorder FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON brokers_paperorder
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON brokers_paperorder
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON brokers_paperorder;
                DROP POLICY IF EXISTS tenant_owner ON brokers_paperorder;
                ALTER TABLE brokers_paperorder NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperorder DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE brokers_paperfill ENABLE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperfill FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON brokers_paperfill
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON brokers_paperfill
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON brokers_paperfill;
                DROP POLICY IF EXISTS tenant_owner ON brokers_paperfill;
                ALTER TABLE brokers_paperfill NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperfill DISABLE ROW LEVEL SECURITY;
            """,
        ),
    ]
