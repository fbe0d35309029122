"""A trade's forensics point only at a trade of their own owner.

The guard and its reasons are in brokers/0008_refuse_cross_tenant_references, which creates the
function `refuse_cross_tenant_reference`; this migration adds its triggers to the tables of this app, frozen as
written that day (the templates are copied, not imported: a migration imports no live code).
"""

from django.db import migrations

# Rows written before the guard must already agree, or the guard would refuse their next save.
# Row-level security is forced on the owner too, so the check runs in the system context.
EXISTING = """
SELECT set_config('app.system', 'on', true);
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM {table} c JOIN {referenced} p ON p.id = c.{column} WHERE p.owner_id <> c.owner_id) THEN
        RAISE EXCEPTION '{table}.{column} points at rows of another owner: fix them before this migration';
    END IF;
END $$;
SELECT set_config('app.system', '', true);
"""

TRIGGER = """
CREATE TRIGGER tenant_reference_{column} BEFORE INSERT OR UPDATE OF {column}, owner_id ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_reference('{column}', '{referenced}');
"""


def guard(table: str, column: str, referenced: str) -> migrations.RunSQL:
    return migrations.RunSQL(
        sql=EXISTING.format(table=table, column=column, referenced=referenced)
        + TRIGGER.format(table=table, column=column, referenced=referenced),
        reverse_sql=f"DROP TRIGGER IF EXISTS tenant_reference_{column} ON {table};",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0002_forensics_minute_bars"),
        ("trades", "0011_refuse_cross_tenant_references"),
    ]

    operations = [
        guard("analytics_tradeforensics", "trade_id", "trades_papertrade"),
    ]
