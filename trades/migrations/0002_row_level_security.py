"""Tenant isolation in the database, and the audit log made append-only below the ORM."""

from django.db import migrations

from tradeoptions.rls import enable_row_level_security


class Migration(migrations.Migration):
    dependencies = [("trades", "0001_initial")]

    operations = [
        enable_row_level_security("trades_papertrade"),
        enable_row_level_security("trades_tradeevent"),
        enable_row_level_security("trades_accountsettings"),
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
