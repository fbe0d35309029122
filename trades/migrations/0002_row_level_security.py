"""Tenant isolation in the database, and the audit log made append-only below the ORM."""

from django.db import migrations


# Row-level security as written when this migration was made, frozen here (no live helper may
# change it later): ENABLE + FORCE, a fail-closed policy for the owner (no `app.user_id`, no
# rows) and one for the system context.
class Migration(migrations.Migration):
    dependencies = [("trades", "0001_initial")]

    operations = [
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_papertrade ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_papertrade FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_papertrade
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON trades_papertrade
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON trades_papertrade;
                DROP POLICY IF EXISTS tenant_owner ON trades_papertrade;
                ALTER TABLE trades_papertrade NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_papertrade DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_tradeevent ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_tradeevent FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_tradeevent
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON trades_tradeevent
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON trades_tradeevent;
                DROP POLICY IF EXISTS tenant_owner ON trades_tradeevent;
                ALTER TABLE trades_tradeevent NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_tradeevent DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                ALTER TABLE trades_accountsettings ENABLE ROW LEVEL SECURITY;
                ALTER TABLE trades_accountsettings FORCE ROW LEVEL SECURITY;
                CREATE POLICY tenant_owner ON trades_accountsettings
                    USING (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint)
                    WITH CHECK (owner_id = NULLIF(current_setting('app.user_id', true), '')::bigint);
                CREATE POLICY system_context ON trades_accountsettings
                    USING (current_setting('app.system', true) = 'on')
                    WITH CHECK (current_setting('app.system', true) = 'on');
            """,
            reverse_sql="""
                DROP POLICY IF EXISTS system_context ON trades_accountsettings;
                DROP POLICY IF EXISTS tenant_owner ON trades_accountsettings;
                ALTER TABLE trades_accountsettings NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE trades_accountsettings DISABLE ROW LEVEL SECURITY;
            """,
        ),
        migrations.RunSQL(
            sql="""
                CREATE FUNCTION trades_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'trade events are append-only (% refused)', TG_OP
                        USING ERRCODE = 'insufficient_privilege';
                END $$;
                CREATE TRIGGER tradeevent_append_only BEFORE UPDATE OR DELETE ON trades_tradeevent
                    FOR EACH ROW EXECUTE FUNCTION trades_refuse_event_change();
            """,
            reverse_sql="""
                DROP TRIGGER IF EXISTS tradeevent_append_only ON trades_tradeevent;
                DROP FUNCTION IF EXISTS trades_refuse_event_change();
            """,
        ),
    ]
