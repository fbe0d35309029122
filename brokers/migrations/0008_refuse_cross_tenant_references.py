"""A row may only point at a row of its own owner, and cannot learn whether another tenant's id exists.

PostgreSQL's foreign-key checks bypass row-level security: without this, a tenant could insert a
row pointing at another tenant's row (the check finds it) and tell an existing id from a missing
one (only the missing one fails, at commit; a unique index holding the key, such as a snapshot's
(trade, timestamp, kind), even tells it at once, as a duplicate).

Each foreign key between two owner-scoped tables gets a BEFORE INSERT OR UPDATE OF <column>,
owner_id row trigger running `refuse_cross_tenant_reference(column, referenced table)`. The
function is SECURITY INVOKER, so it looks the referenced row up under the caller's own row-level
security, and it also requires the same owner_id (the system context sees every tenant, so there
the owner comparison is what refuses). Another tenant's row and no row at all raise the same
error, PostgreSQL's own for a missing key (23503, same message, detail and fields). A NULL
reference passes. It relies only on "invisible to the caller" and owner_id, never on how the
policies are written, and being BEFORE ROW it refuses before the row reaches any unique index.
Each referenced table also refuses a change of owner while rows of the old owner point at it
(`refuse_owner_change_while_referenced`).

The functions live here, in the app every other app's migrations may depend on; trades and
analytics add the triggers to their tables; monitoring gives the snapshot table, written in bulk,
a copy with static SQL (see there). `tests/test_tenant_references.py` reads every foreign key
between owner-scoped tables from the catalogue and fails if one lacks its guard. Frozen as written
that day.
"""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION refuse_cross_tenant_reference() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
-- TG_ARGV: the referencing column, and the referenced table (in the trigger table's schema),
-- whose key is id.
DECLARE
    referenced regclass := format('%I.%I', TG_TABLE_SCHEMA, TG_ARGV[1])::regclass;
    is_null boolean;
    referenced_owner bigint;
    foreign_key name;
BEGIN
    EXECUTE format('SELECT ($1).%1$I IS NULL, (SELECT r.owner_id FROM %2$s r WHERE r.id = ($1).%1$I)',
                   TG_ARGV[0], referenced)
       INTO is_null, referenced_owner USING NEW;
    IF is_null OR referenced_owner = NEW.owner_id THEN
        RETURN NEW;
    END IF;
    SELECT c.conname INTO foreign_key
      FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
     WHERE c.conrelid = TG_RELID AND c.contype = 'f' AND c.confrelid = referenced
       AND cardinality(c.conkey) = 1 AND a.attname = TG_ARGV[0];
    foreign_key := coalesce(foreign_key, '');
    -- Word for word what ri_ReportViolation says when the referencing table has row-level security
    -- (it then leaves the key's value out of the detail).
    RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = format('insert or update on table "%s" violates foreign key constraint "%s"',
                         TG_TABLE_NAME, foreign_key),
        DETAIL = format('Key is not present in table "%s".', TG_ARGV[1]),
        SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, CONSTRAINT = foreign_key;
END $$;
"""

# The other way to point across tenants: re-own a row that rows of its owner point at (only the
# system context could; a tenant's policy refuses handing a row to someone else). Rare, so the
# referencing tables are read from the catalogue each time: a new foreign key is covered at once.
# The error is PostgreSQL's own for a key still referenced, as it words it under row-level security.
OWNER_CHANGE = r"""
CREATE FUNCTION refuse_owner_change_while_referenced() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
-- BEFORE UPDATE OF owner_id, FOR EACH ROW, on a table that other owner-scoped tables reference by id.
DECLARE
    foreign_key record;
    still_referenced boolean;
BEGIN
    IF NEW.owner_id IS NOT DISTINCT FROM OLD.owner_id THEN
        RETURN NEW;
    END IF;
    FOR foreign_key IN
        SELECT c.conname, c.conrelid::regclass AS referencing, r.relname, a.attname
          FROM pg_constraint c
          JOIN pg_class r ON r.oid = c.conrelid
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.confrelid = TG_RELID AND c.contype = 'f' AND cardinality(c.conkey) = 1
           AND EXISTS (SELECT FROM pg_attribute o WHERE o.attrelid = c.conrelid AND o.attname = 'owner_id'
                                                   AND NOT o.attisdropped)
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s r WHERE r.%I = $1 AND r.owner_id <> $2)',
                       foreign_key.referencing, foreign_key.attname)
           INTO still_referenced USING OLD.id, NEW.owner_id;
        IF still_referenced THEN
            RAISE EXCEPTION USING
                ERRCODE = 'foreign_key_violation',
                MESSAGE = format('update or delete on table "%s" violates foreign key constraint "%s" on table "%s"',
                                 TG_TABLE_NAME, foreign_key.conname, foreign_key.relname),
                DETAIL = format('Key is still referenced from table "%s".', foreign_key.relname),
                SCHEMA = TG_TABLE_SCHEMA, TABLE = foreign_key.relname, CONSTRAINT = foreign_key.conname;
        END IF;
    END LOOP;
    RETURN NEW;
END $$;
"""

OWNER_CHANGE_TRIGGER = """
CREATE TRIGGER tenant_referenced_owner BEFORE UPDATE OF owner_id ON {table}
    FOR EACH ROW EXECUTE FUNCTION refuse_owner_change_while_referenced();
"""


def referenced(table: str) -> migrations.RunSQL:
    return migrations.RunSQL(sql=OWNER_CHANGE_TRIGGER.format(table=table),
                             reverse_sql=f"DROP TRIGGER IF EXISTS tenant_referenced_owner ON {table};")


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
    dependencies = [("brokers", "0007_paperfill_open_index_led_by_owner")]

    operations = [
        migrations.RunSQL(sql=FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS refuse_cross_tenant_reference();"),
        migrations.RunSQL(sql=OWNER_CHANGE, reverse_sql="DROP FUNCTION IF EXISTS refuse_owner_change_while_referenced();"),
        guard("brokers_paperorder", "parent_id", "brokers_paperorder"),
        guard("brokers_paperfill", "order_id", "brokers_paperorder"),
        referenced("brokers_paperorder"),
    ]
