"""A finished month's partition physically ordered by (trade, time): `snapshot_partition_cluster`.

Rows arrive interleaved in time order (every held trade marked each cycle), so one trade's chart
reads about one heap page per row; CLUSTER on the month's (trade_id, timestamp, kind) index puts a
trade's rows side by side (issue 20: an old trade's chart 5,040 buffers to 133). Only the table's
owner may CLUSTER, hence a SECURITY DEFINER function owned by the schema owner, callable by the
system group only, like the partition functions of 0007. The index's own `indisclustered` flag,
set by CLUSTER, records which months are done.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION snapshot_partition_cluster(month date) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
-- CLUSTER the partition of `month` on its (trade_id, timestamp, kind) index, unless it is already
-- clustered on it. Takes an ACCESS EXCLUSIVE lock on that month only, for the whole rewrite: the
-- caller runs it outside market hours. Returns true when it clustered now, false when it was done
-- before, NULL when there is no such partition.
DECLARE
    partition text := 'monitoring_pricesnapshot_' || to_char(month, '"y"YYYY"m"MM');
    slot_index regclass;
    done boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                    WHERE inhparent = 'public.monitoring_pricesnapshot'::regclass
                      AND inhrelid = to_regclass(format('public.%I', partition))) THEN
        RETURN NULL;
    END IF;
    SELECT i.indexrelid::regclass, i.indisclustered INTO slot_index, done
      FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid
     WHERE i.indrelid = to_regclass(format('public.%I', partition))
       AND h.inhparent = 'public.snapshot_one_per_slot'::regclass;
    IF slot_index IS NULL THEN
        RAISE EXCEPTION 'partition % has no index of snapshot_one_per_slot', partition;
    END IF;
    IF done THEN
        RETURN false;
    END IF;
    EXECUTE format('CLUSTER %I USING %s', partition, slot_index);
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION snapshot_partition_cluster(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION snapshot_partition_cluster(date) TO tradeoptions_system;
"""

REVERSE = "DROP FUNCTION snapshot_partition_cluster(date);"


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0007_snapshots_partitioned_by_month")]

    operations = [migrations.RunSQL(sql=FORWARD, reverse_sql=REVERSE)]
