"""A price snapshot points only at a trade of its own owner, with the lookup planned once.

The guard and its reasons are in brokers/0008_refuse_cross_tenant_references. Its generic
function looks the referenced row up with dynamic SQL, planned again for every row; the monitor
writes every held trade's snapshot in one statement each cycle, and on 10,000 snapshots that made
the insert about six times slower (docs/benchmarks.md, bench/bench_tenant_references.py). So this
table's trigger runs the same rule with static SQL, which PL/pgSQL plans once per session: the
trade must be visible to the caller (SECURITY INVOKER: the caller's row-level security) and have
the snapshot's owner_id, else the same error as the generic guard, PostgreSQL's own for a missing
key.

It stays a BEFORE ROW trigger. A statement-level check over a transition table would cost less,
but it runs after the row is in the unique (trade, timestamp, kind) index: a snapshot at the slot
of another tenant's trade would fail as a duplicate (or be skipped by ON CONFLICT DO NOTHING)
while a missing trade fails as a missing key, telling the one from the other again. Frozen as
written that day.
"""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION refuse_cross_tenant_snapshot_trade() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
-- BEFORE INSERT OR UPDATE OF trade_id, owner_id ON monitoring_pricesnapshot, FOR EACH ROW.
DECLARE
    referenced_owner bigint;
    foreign_key name;
BEGIN
    IF NEW.trade_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT t.owner_id INTO referenced_owner FROM public.trades_papertrade t WHERE t.id = NEW.trade_id;
    IF referenced_owner = NEW.owner_id THEN
        RETURN NEW;
    END IF;
    SELECT c.conname INTO foreign_key
      FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
     WHERE c.conrelid = TG_RELID AND c.contype = 'f' AND c.confrelid = 'public.trades_papertrade'::regclass
       AND cardinality(c.conkey) = 1 AND a.attname = 'trade_id';
    foreign_key := coalesce(foreign_key, '');
    RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = format('insert or update on table "%s" violates foreign key constraint "%s"',
                         TG_TABLE_NAME, foreign_key),
        DETAIL = 'Key is not present in table "trades_papertrade".',
        SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, CONSTRAINT = foreign_key;
END $$;
"""

# Rows written before the guard must already agree, or the guard would refuse their next save.
# Row-level security is forced on the owner too, so the check runs in the system context.
EXISTING = """
SELECT set_config('app.system', 'on', true);
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM monitoring_pricesnapshot c JOIN trades_papertrade p ON p.id = c.trade_id
                WHERE p.owner_id <> c.owner_id) THEN
        RAISE EXCEPTION 'monitoring_pricesnapshot.trade_id points at rows of another owner: fix them first';
    END IF;
END $$;
SELECT set_config('app.system', '', true);
"""

TRIGGER = """
CREATE TRIGGER tenant_reference_trade_id BEFORE INSERT OR UPDATE OF trade_id, owner_id ON monitoring_pricesnapshot
    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_snapshot_trade();
"""


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_snapshot_trade_index_served_by_unique")]

    operations = [
        migrations.RunSQL(
            sql=FUNCTION + EXISTING + TRIGGER,
            reverse_sql="""
                DROP TRIGGER IF EXISTS tenant_reference_trade_id ON monitoring_pricesnapshot;
                DROP FUNCTION IF EXISTS refuse_cross_tenant_snapshot_trade();
            """,
        ),
    ]
