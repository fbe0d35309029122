"""The price history becomes a table partitioned by month (PostgreSQL declarative partitioning).

Why: at 100 M rows one heap and one set of indexes make retention a huge DELETE and every index
deep. By month, old history leaves as a whole partition (archived to Parquet first, then detached
and dropped: monitoring/partitions.py), and the indexes of the current month stay small.

What changes in the database (the Django model keeps `id` as its primary key; nothing in the ORM
state changes, so this is SQL only):
- the primary key becomes (id, timestamp): PostgreSQL wants the partition key in every unique
  constraint. (trade, timestamp, kind) already has it. `id` keeps its own sequence, still unique
  in practice; nothing points at a snapshot by id (no foreign key references this table).
- one partition per UTC month, `monitoring_pricesnapshot_y2026m11`, plus
  `monitoring_pricesnapshot_default` for a row no month covers yet (written before its month was
  created: nothing is refused). Partitions are made by `snapshot_partition_create(month)` and
  dropped by `snapshot_partition_drop(month, archived_rows)`: SECURITY DEFINER functions owned by
  the schema owner, executable by the system group (the worker's beat job) only, because only the
  owner of a table may change its partitions. The drop refuses unless the partition holds exactly
  the number of rows the caller archived.
- every partition carries the parent's row-level security (ENABLE + FORCE, the same two
  policies), so reading one directly shows no more than the parent would; the runtime roles get
  no privileges on partitions anyway (tradeoptions/db.py), only on the parent.

The rows are copied month by month into the new table, which gets its indexes, foreign keys,
reference trigger and policies after the copy (building an index once beats updating it per row),
and the copy is counted against the old table before that one is dropped: the migration fails
rather than lose a row. The identity's position moves to the new sequence, so no id is reused.
The reverse copies everything back into a plain table the same way.

Frozen as written that day: the functions and policies live here, not in live code.
"""

from django.db import migrations

COLUMNS = ("id, \"timestamp\", kind, mark_price, bid, ask, delta, gamma, theta, vega, iv, underlying, source, "
           "quote_time, owner_id, trade_id, delayed")

TABLE_BODY = """
    "timestamp" timestamp with time zone NOT NULL,
    kind varchar(12) NOT NULL,
    mark_price numeric(12,4) NOT NULL,
    bid numeric(12,4),
    ask numeric(12,4),
    delta numeric(12,6),
    gamma numeric(12,6),
    theta numeric(12,6),
    vega numeric(12,6),
    iv numeric(12,6),
    underlying numeric(12,4),
    source varchar(16) NOT NULL,
    quote_time timestamp with time zone,
    owner_id integer NOT NULL,
    trade_id bigint NOT NULL,
    delayed boolean DEFAULT false NOT NULL,
    CONSTRAINT snapshot_kind_known CHECK (kind IN ('INTRADAY', 'PRE_MARKET', 'POST_MARKET', 'FILL')),
    CONSTRAINT snapshot_prices_not_negative CHECK (mark_price >= 0 AND (bid IS NULL OR bid >= 0)
                                                   AND (ask IS NULL OR ask >= 0))
"""

# Everything the table has besides its columns, under the names Django gave them.
DEPENDENTS = """
CREATE INDEX monitoring_pricesnapshot_owner_id_9a30d98b ON monitoring_pricesnapshot (owner_id);
CREATE INDEX snapshot_time_brin ON monitoring_pricesnapshot USING brin ("timestamp");
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT monitoring_pricesnap_trade_id_be977f67_fk_trades_pa
    FOREIGN KEY (trade_id) REFERENCES trades_papertrade (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT monitoring_pricesnapshot_owner_id_9a30d98b_fk_auth_user_id
    FOREIGN KEY (owner_id) REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED;
CREATE TRIGGER tenant_reference_trade_id BEFORE INSERT OR UPDATE OF trade_id, owner_id ON monitoring_pricesnapshot
    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_snapshot_trade();
ALTER TABLE monitoring_pricesnapshot ENABLE ROW LEVEL SECURITY;
ALTER TABLE monitoring_pricesnapshot FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_owner ON monitoring_pricesnapshot
    USING (owner_id = (SELECT app_user_id())) WITH CHECK (owner_id = (SELECT app_user_id()));
CREATE POLICY system_context ON monitoring_pricesnapshot TO tradeoptions_system
    USING (current_setting('app.system', true) = 'on') WITH CHECK (current_setting('app.system', true) = 'on');
"""

# The new table gets the old one's privileges, whoever they were given to (post_migrate grants the
# runtime roles theirs again anyway; this keeps any other, such as the test suite's TRUNCATE).
KEEP_PRIVILEGES = """
DO $$
DECLARE
    granted record;
BEGIN
    FOR granted IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS grantee,
                          a.privilege_type
                     FROM pg_class c, aclexplode(c.relacl) a
                    WHERE c.oid = '{source}'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON TABLE monitoring_pricesnapshot TO %s', granted.privilege_type, granted.grantee);
    END LOOP;
END $$;
"""

FUNCTIONS = r"""
CREATE FUNCTION snapshot_partition_create(month date) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
-- The partition of monitoring_pricesnapshot for `month` (its UTC calendar month), with the
-- parent's row-level security. Rows of that month already in the default partition move into it.
-- Returns its name when it was made, NULL when it already existed (so: idempotent).
DECLARE
    first_moment timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
    next_month timestamptz := (date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    partition text := 'monitoring_pricesnapshot_' || to_char(month, '"y"YYYY"m"MM');
    strays boolean := false;
    caller_system text := COALESCE(current_setting('app.system', true), '');
    grantee oid;
BEGIN
    IF to_regclass(format('public.%I', partition)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Forced row-level security binds the owner too: see (and move) every tenant's rows.
    PERFORM set_config('app.system', 'on', true);
    IF to_regclass('public.monitoring_pricesnapshot_default') IS NOT NULL THEN
        SELECT EXISTS (SELECT 1 FROM monitoring_pricesnapshot_default
                        WHERE "timestamp" >= first_moment AND "timestamp" < next_month) INTO strays;
    END IF;
    IF strays THEN  -- PostgreSQL refuses a new partition whose rows sit in the default: move them
        ALTER TABLE monitoring_pricesnapshot DETACH PARTITION monitoring_pricesnapshot_default;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF monitoring_pricesnapshot FOR VALUES FROM (%L) TO (%L)',
                   partition, first_moment, next_month);
    -- Reached through the parent only: whatever default privileges gave the new table goes.
    FOR grantee IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
                    WHERE c.oid = format('public.%I', partition)::regclass AND a.grantee <> c.relowner LOOP
        IF grantee = 0 THEN
            EXECUTE format('REVOKE ALL ON TABLE %I FROM PUBLIC', partition);
        ELSE
            EXECUTE format('REVOKE ALL ON TABLE %I FROM %I', partition, pg_get_userbyid(grantee));
        END IF;
    END LOOP;
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', partition);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', partition);
    EXECUTE format('CREATE POLICY tenant_owner ON %I USING (owner_id = (SELECT app_user_id())) '
                   'WITH CHECK (owner_id = (SELECT app_user_id()))', partition);
    EXECUTE format('CREATE POLICY system_context ON %I TO tradeoptions_system '
                   'USING (current_setting(''app.system'', true) = ''on'') '
                   'WITH CHECK (current_setting(''app.system'', true) = ''on'')', partition);
    -- Rows move last: their foreign-key checks wait for the commit, and PostgreSQL alters no table
    -- with such checks pending.
    IF strays THEN
        EXECUTE format('WITH moved AS (DELETE FROM monitoring_pricesnapshot_default WHERE "timestamp" >= %L '
                       'AND "timestamp" < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                       first_moment, next_month, partition);
        ALTER TABLE monitoring_pricesnapshot ATTACH PARTITION monitoring_pricesnapshot_default DEFAULT;
    END IF;
    PERFORM set_config('app.system', caller_system, true);
    RETURN partition;
END $$;

CREATE FUNCTION snapshot_partition_drop(month date, archived_rows bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
-- Detach and drop the partition of `month`, only if it holds exactly `archived_rows` rows (the
-- caller's archive): a row written since the archive was read makes it refuse, and the detach
-- rolls back with the error. Returns the rows dropped, NULL when there is no such partition.
DECLARE
    partition text := 'monitoring_pricesnapshot_' || to_char(month, '"y"YYYY"m"MM');
    held bigint;
    caller_system text := COALESCE(current_setting('app.system', true), '');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                    WHERE inhparent = 'public.monitoring_pricesnapshot'::regclass
                      AND inhrelid = to_regclass(format('public.%I', partition))) THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('app.system', 'on', true);  -- count every tenant's rows
    EXECUTE format('ALTER TABLE monitoring_pricesnapshot DETACH PARTITION %I', partition);
    EXECUTE format('SELECT count(*) FROM %I', partition) INTO held;
    IF held IS DISTINCT FROM archived_rows THEN
        RAISE EXCEPTION 'partition % holds % rows, % were archived: kept', partition, held, archived_rows;
    END IF;
    EXECUTE format('DROP TABLE %I', partition);
    PERFORM set_config('app.system', caller_system, true);
    RETURN held;
END $$;

REVOKE ALL ON FUNCTION snapshot_partition_create(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION snapshot_partition_drop(date, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snapshot_partition_create(date) TO tradeoptions_system;
GRANT EXECUTE ON FUNCTION snapshot_partition_drop(date, bigint) TO tradeoptions_system;
"""

# The two reference guards that read the catalogue learn about partitions. The snapshot guard fires
# on a month's partition, but says what it said before, naming the parent (the table the statement
# named) and the parent's foreign key. The owner-change guard (brokers 0008) skips a partition's
# copy of its parent's foreign key: the parent covers every partition, and the runtime roles may
# not read partitions directly. Each copied from its migration, then changed.
GUARDS = r"""
CREATE OR REPLACE FUNCTION refuse_cross_tenant_snapshot_trade() RETURNS trigger
    LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp
AS $$
-- BEFORE INSERT OR UPDATE OF trade_id, owner_id ON monitoring_pricesnapshot, FOR EACH ROW. It fires on
-- the month's partition: the error names the table the statement named, as before partitioning.
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
     WHERE c.conrelid = 'public.monitoring_pricesnapshot'::regclass AND c.contype = 'f'
       AND c.confrelid = 'public.trades_papertrade'::regclass
       AND cardinality(c.conkey) = 1 AND a.attname = 'trade_id';
    foreign_key := coalesce(foreign_key, '');
    RAISE EXCEPTION USING
        ERRCODE = 'foreign_key_violation',
        MESSAGE = format('insert or update on table "%s" violates foreign key constraint "%s"',
                         'monitoring_pricesnapshot', foreign_key),
        DETAIL = 'Key is not present in table "trades_papertrade".',
        SCHEMA = TG_TABLE_SCHEMA, TABLE = 'monitoring_pricesnapshot', CONSTRAINT = foreign_key;
END $$;

CREATE OR REPLACE FUNCTION refuse_owner_change_while_referenced() RETURNS trigger
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
           AND c.conparentid = 0  -- a partition's copy of its parent's key: the parent is read instead
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

GUARDS_BEFORE = r"""
CREATE OR REPLACE FUNCTION refuse_cross_tenant_snapshot_trade() RETURNS trigger
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

CREATE OR REPLACE FUNCTION refuse_owner_change_while_referenced() RETURNS trigger
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

# Checking the foreign keys reads trades_papertrade, whose forced row-level security binds its
# owner too: the migration works in the system context (the owner is in the system group).
SYSTEM_ON = "SELECT set_config('app.system', 'on', true);"
SYSTEM_OFF = "SELECT set_config('app.system', '', true);"

FORWARD = f"""
{SYSTEM_ON}
ALTER TABLE monitoring_pricesnapshot RENAME TO monitoring_pricesnapshot_plain;
-- Read by its owner, this migration, without a tenant context: it is dropped at the end anyway.
ALTER TABLE monitoring_pricesnapshot_plain NO FORCE ROW LEVEL SECURITY;
ALTER SEQUENCE monitoring_pricesnapshot_id_seq RENAME TO monitoring_pricesnapshot_plain_id_seq;

CREATE SEQUENCE monitoring_pricesnapshot_id_seq AS bigint;
CREATE TABLE monitoring_pricesnapshot (
    id bigint NOT NULL DEFAULT nextval('monitoring_pricesnapshot_id_seq'),
    {TABLE_BODY}
) PARTITION BY RANGE ("timestamp");
ALTER SEQUENCE monitoring_pricesnapshot_id_seq OWNED BY monitoring_pricesnapshot.id;
SELECT setval('monitoring_pricesnapshot_id_seq',
              GREATEST(s.last_value, (SELECT COALESCE(max(id), 0) FROM monitoring_pricesnapshot_plain), 1),
              s.is_called OR EXISTS (SELECT 1 FROM monitoring_pricesnapshot_plain))
  FROM monitoring_pricesnapshot_plain_id_seq s;
CREATE TABLE monitoring_pricesnapshot_default PARTITION OF monitoring_pricesnapshot DEFAULT;
ALTER TABLE monitoring_pricesnapshot_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE monitoring_pricesnapshot_default FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_owner ON monitoring_pricesnapshot_default
    USING (owner_id = (SELECT app_user_id())) WITH CHECK (owner_id = (SELECT app_user_id()));
CREATE POLICY system_context ON monitoring_pricesnapshot_default TO tradeoptions_system
    USING (current_setting('app.system', true) = 'on') WITH CHECK (current_setting('app.system', true) = 'on');
{FUNCTIONS}
-- A partition for every month from the oldest row's (or this one) to three months after this one,
-- each filled with its month's rows in one statement (the batch); a row dated later still (none
-- should be) goes to the default partition. Then the whole is counted against the old table.
DO $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date;
    copied bigint := 0;
    batch bigint;
    kept bigint;
BEGIN
    SELECT LEAST(date_trunc('month', min("timestamp") AT TIME ZONE 'UTC')::date, this_month)
      INTO month FROM monitoring_pricesnapshot_plain;
    month := COALESCE(month, this_month);
    WHILE month <= this_month + interval '3 months' LOOP
        PERFORM snapshot_partition_create(month);
        INSERT INTO monitoring_pricesnapshot ({COLUMNS})
        SELECT {COLUMNS} FROM monitoring_pricesnapshot_plain
         WHERE "timestamp" >= (month::timestamp AT TIME ZONE 'UTC')
           AND "timestamp" < ((month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        GET DIAGNOSTICS batch = ROW_COUNT;
        copied := copied + batch;
        month := month + interval '1 month';
    END LOOP;
    INSERT INTO monitoring_pricesnapshot ({COLUMNS})
    SELECT {COLUMNS} FROM monitoring_pricesnapshot_plain WHERE "timestamp" >= (month::timestamp AT TIME ZONE 'UTC');
    GET DIAGNOSTICS batch = ROW_COUNT;
    copied := copied + batch;
    SELECT count(*) INTO kept FROM monitoring_pricesnapshot_plain;
    IF kept <> copied THEN
        RAISE EXCEPTION 'monitoring_pricesnapshot: % rows copied of %, nothing changed', copied, kept;
    END IF;
END $$;

{KEEP_PRIVILEGES.format(source="monitoring_pricesnapshot_plain")}
DROP TABLE monitoring_pricesnapshot_plain;
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT monitoring_pricesnapshot_pkey PRIMARY KEY (id, "timestamp");
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT snapshot_one_per_slot UNIQUE (trade_id, "timestamp", kind);
{DEPENDENTS}
{GUARDS}
{SYSTEM_OFF}
"""

REVERSE = f"""
{SYSTEM_ON}
ALTER TABLE monitoring_pricesnapshot RENAME TO monitoring_pricesnapshot_partitioned;
ALTER TABLE monitoring_pricesnapshot_partitioned NO FORCE ROW LEVEL SECURITY;
ALTER SEQUENCE monitoring_pricesnapshot_id_seq RENAME TO monitoring_pricesnapshot_partitioned_id_seq;

CREATE TABLE monitoring_pricesnapshot (
    id bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY,
    {TABLE_BODY}
);
-- Partition by partition (the batch), then the whole counted against the partitioned table.
DO $$
DECLARE
    part regclass;
    copied bigint := 0;
    batch bigint;
    kept bigint;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits
                 WHERE inhparent = 'monitoring_pricesnapshot_partitioned'::regclass
                 ORDER BY inhrelid::regclass::text LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', part);
        EXECUTE format('INSERT INTO monitoring_pricesnapshot ({COLUMNS}) SELECT {COLUMNS} FROM %s', part);
        GET DIAGNOSTICS batch = ROW_COUNT;
        copied := copied + batch;
    END LOOP;
    SELECT count(*) INTO kept FROM monitoring_pricesnapshot_partitioned;
    IF kept <> copied THEN
        RAISE EXCEPTION 'monitoring_pricesnapshot: % rows copied of %, nothing changed', copied, kept;
    END IF;
END $$;
SELECT setval(pg_get_serial_sequence('monitoring_pricesnapshot', 'id'),
              GREATEST(s.last_value, (SELECT COALESCE(max(id), 0) FROM monitoring_pricesnapshot), 1),
              s.is_called OR EXISTS (SELECT 1 FROM monitoring_pricesnapshot))
  FROM monitoring_pricesnapshot_partitioned_id_seq s;

{KEEP_PRIVILEGES.format(source="monitoring_pricesnapshot_partitioned")}
DROP TABLE monitoring_pricesnapshot_partitioned;
DROP FUNCTION snapshot_partition_create(date);
DROP FUNCTION snapshot_partition_drop(date, bigint);
{GUARDS_BEFORE}
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT monitoring_pricesnapshot_pkey PRIMARY KEY (id);
ALTER TABLE monitoring_pricesnapshot ADD CONSTRAINT snapshot_one_per_slot UNIQUE (trade_id, "timestamp", kind);
{DEPENDENTS}
{SYSTEM_OFF}
"""


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0006_snapshot_delayed"),
        ("brokers", "0008_refuse_cross_tenant_references"),  # its owner-change guard is replaced here
    ]

    operations = [migrations.RunSQL(sql=FORWARD, reverse_sql=REVERSE)]
