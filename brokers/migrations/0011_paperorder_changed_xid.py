"""`changed_xid`: the transaction that last changed a paper order, for the order sync's
pre-filter (`monitoring.sync`, `paper_look`).

`updated_at` cannot serve: it is the broker's time of the order's last event (a fill's time is
read from it), written with the caller's clock, which is the market's (a simulated or replayed
market's too) and sometimes in the past (a settlement is dated at the expiry cutoff). And no time
at all answers "was this change visible to the sync's read" exactly: a transaction stamps its
time when it writes but commits later, maybe after the read. A transaction id does: the sync keeps
the snapshot its read saw (`pg_current_snapshot()`), and an order changed since is one whose
`changed_xid` that snapshot does not see (`pg_visible_in_snapshot`), committed before or after.

A BEFORE INSERT OR UPDATE row trigger stamps `pg_current_xact_id()` (the top-level transaction's
id, which is what snapshots know: never a savepoint's) on every insert and on every update that
changes anything but the matching's bookkeeping (`last_session_close`, `updated_at`: noting that
matching looked at a working order this session changes nothing the sync reads); an update that
changes nothing else keeps the stamp it had (a full `save()` would otherwise write back whatever
the instance held). The column is the database's alone: the model does not declare it, so Django
never writes it.

Cheap on a big table: a nullable column without a default is a catalogue change (no rewrite);
rows from before carry NULL, "changed before anyone looked", which is safe because a trade the
sync never looked at is looked at whatever its orders (its watermark is NULL). The index that
answers "has this account an order changed since that snapshot" is built CONCURRENTLY (no write
lock), so this migration is not atomic. Row-level security is per table, so the policies already
cover the new column.

Safe to run again after a failed attempt (the migration is recorded only when every step
succeeded). The column, function and trigger are one transaction (one multi-statement query), each
step idempotent (`ADD COLUMN IF NOT EXISTS`, `CREATE OR REPLACE`; PostgreSQL 14 or later, the
project runs 16), with a `lock_timeout` of 5 s: ADD COLUMN needs the ACCESS EXCLUSIVE lock for a
moment, and a request queued behind a long transaction would queue every paper-order query behind
it; past 5 s the attempt fails instead, and is simply run again. A CONCURRENTLY build that failed
(cancelled, a deadlock) leaves an INVALID index of that name, which `IF NOT EXISTS` would keep for
good (never used, yet written to): it is dropped before the build.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION paperorder_note_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - '{changed_xid,last_session_close,updated_at}'::text[])
           IS NOT DISTINCT FROM (to_jsonb(OLD) - '{changed_xid,last_session_close,updated_at}'::text[]) THEN
        NEW.changed_xid := OLD.changed_xid;
    ELSE
        NEW.changed_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;
"""

# One query, so one implicit transaction: all of it or none, and the lock_timeout ends with it.
COLUMN_AND_TRIGGER = (
    "SELECT set_config('lock_timeout', '5s', true);\n"
    "ALTER TABLE brokers_paperorder ADD COLUMN IF NOT EXISTS changed_xid xid8 NULL;\n"
    + FUNCTION
    + "CREATE OR REPLACE TRIGGER paperorder_changed_xid BEFORE INSERT OR UPDATE ON brokers_paperorder "
      "FOR EACH ROW EXECUTE FUNCTION paperorder_note_change();"
)

DROP_INVALID_INDEX = """
DO $$
BEGIN
    PERFORM set_config('lock_timeout', '5s', true);
    IF EXISTS (SELECT 1 FROM pg_index
                WHERE indexrelid = to_regclass('paperorder_owner_changed_idx') AND NOT indisvalid) THEN
        DROP INDEX paperorder_owner_changed_idx;
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("brokers", "0010_paperorder_price_type")]

    operations = [
        migrations.RunSQL(
            sql=[COLUMN_AND_TRIGGER],
            reverse_sql=["DROP TRIGGER IF EXISTS paperorder_changed_xid ON brokers_paperorder;",
                         "DROP FUNCTION IF EXISTS paperorder_note_change();",
                         "ALTER TABLE brokers_paperorder DROP COLUMN IF EXISTS changed_xid;"],
        ),
        migrations.RunSQL(sql=[DROP_INVALID_INDEX], reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(
            sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS paperorder_owner_changed_idx "
                "ON brokers_paperorder (owner_id, changed_xid);",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS paperorder_owner_changed_idx;",
        ),
    ]
