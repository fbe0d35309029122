from django.db import migrations


# Row-level security as written when this migration was made, frozen here (no live helper may
# change it later): ENABLE + FORCE, a fail-closed policy for the owner (no `app.user_id`, no
# rows) and one for the system context.
class Migration(migrations.Migration):
    dependencies = [("brokers", "0003_paper_account_reserve_and_session")]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER TABLE brokers_paperaccount ENABLE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperaccount FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON brokers_paperaccount
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON brokers_paperaccount
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON brokers_paperaccount;
                DROP POLICY IF EXISTS tenant_owner ON brokers_paperaccount;
                ALTER TABLE brokers_paperaccount NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE brokers_paperaccount DISABLE ROW LEVEL SECURITY;
            """,
        ),
    ]
