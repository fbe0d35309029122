"""Trade rows (events, idempotency keys, webhook events and deliveries) point only at their owner's rows.

The guard and its reasons are in brokers/0008_refuse_cross_tenant_references, which creates the
functions `refuse_cross_tenant_reference` and `refuse_owner_change_while_referenced`; this
migration adds their triggers to the tables of this app (the trade and the webhook event are
referenced, so their owner cannot change under their references). Frozen as written that day (the
templates are copied, not imported: a migration imports no live code).
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


OWNER_CHANGE_TRIGGER = """
CREATE TRIGGER tenant_referenced_owner BEFORE UPDATE OF owner_id ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_owner_change_while_referenced();
"""


def referenced(table: str) -> migrations.RunSQL:
    return migrations.RunSQL(sql=OWNER_CHANGE_TRIGGER.format(table=table),
                             reverse_sql=f"DROP TRIGGER IF EXISTS tenant_referenced_owner ON {table};")


class Migration(migrations.Migration):
    dependencies = [
        ("trades", "0010_trade_exit_filled"),
        ("brokers", "0008_refuse_cross_tenant_references"),
    ]

    operations = [
        guard("trades_tradeevent", "trade_id", "trades_papertrade"),
        guard("trades_idempotencykey", "trade_id", "trades_papertrade"),
        guard("trades_webhookevent", "trade_id", "trades_papertrade"),
        guard("trades_webhookdelivery", "event_id", "trades_webhookevent"),
        referenced("trades_papertrade"),
        referenced("trades_webhookevent"),
    ]
