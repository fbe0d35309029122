"""`changed_at`: when a paper order last changed, by the database's clock, for the order sync's
pre-filter (`monitoring.sync`).

`updated_at` cannot serve: it is the broker's time of the order's last event (a fill's time is
read from it), written with the caller's clock, which is the market's (a simulated or replayed
market's too) and sometimes in the past (a settlement is dated at the expiry cutoff). The sync
needs "changed since I last looked" on one clock, whoever wrote: a BEFORE INSERT OR UPDATE row
trigger stamps `clock_timestamp()` on every insert and on every update that changes anything but
the matching's bookkeeping (`last_session_close`, `updated_at`: noting that matching looked at a
working order this session changes nothing the sync reads); an update that changes nothing else
keeps the stamp it had (a full `save()` would otherwise write back whatever the instance held).
The column is the database's alone: the model does not declare it, so Django never writes it.

Cheap on a big table: a nullable column without a default is a catalogue change (no rewrite);
rows from before carry NULL, "changed before anyone looked", which is safe because a trade the
sync never looked at is looked at whatever its orders (its watermark is NULL). The index that
answers "has this account an order changed since t" is built CONCURRENTLY (no write lock), so
this migration is not atomic. Row-level security is per table, so the policies already cover the
new column.
"""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION paperorder_note_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (to_jsonb(NEW) - '{changed_at,last_session_close,updated_at}'::text[])
           IS NOT DISTINCT FROM (to_jsonb(OLD) - '{changed_at,last_session_close,updated_at}'::text[]) THEN
        NEW.changed_at := OLD.changed_at;
    ELSE
        NEW.changed_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
"""


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("brokers", "0010_paperorder_price_type")]

    operations = [
        migrations.RunSQL(
            sql=["ALTER TABLE brokers_paperorder ADD COLUMN changed_at timestamptz NULL;", FUNCTION,
                 "CREATE TRIGGER paperorder_changed_at BEFORE INSERT OR UPDATE ON brokers_paperorder "
                 "FOR EACH ROW EXECUTE FUNCTION paperorder_note_change();"],
            reverse_sql=["DROP TRIGGER IF EXISTS paperorder_changed_at ON brokers_paperorder;",
                         "DROP FUNCTION IF EXISTS paperorder_note_change();",
                         "ALTER TABLE brokers_paperorder DROP COLUMN IF EXISTS changed_at;"],
        ),
        migrations.RunSQL(
            sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS paperorder_owner_changed_idx "
                "ON brokers_paperorder (owner_id, changed_at);",
            reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS paperorder_owner_changed_idx;",
        ),
    ]
