"""The order sync's per-trade watermark (`monitoring.sync`, its pre-filter `paper_look`):
`orders_seen_snapshot`, the database snapshot the sync's last full look at the trade's account
read with (an order whose last change that snapshot does not see is new to it); `orders_seen_at`,
when that was (for the safety net's full look every ORDER_SYNC_FULL_LOOK_SECONDS); and
`orders_seen_version`, the trade's `version` that look saw (a transition since bumps it).

Columns of the database's alone (the model does not declare them, so no serializer, export or
`save()` ever carries them; the sync reads and writes them in SQL). Nullable, no default: adding
them rewrites nothing on a big table, and NULL means "never looked at", which the sync reads as
"look". Row-level security is per table, so the policies already cover them.

`IF NOT EXISTS` (safe to run again) and a `lock_timeout` of 5 s for this migration's transaction:
ADD COLUMN needs the ACCESS EXCLUSIVE lock for a moment, and waiting behind a long transaction
would queue every query of the table behind it; past 5 s the migration fails instead, and is
simply run again.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("trades", "0031_merge_0025_web_push_0030_channel_message_kinds_joined")]

    operations = [
        migrations.RunSQL(
            sql=["SELECT set_config('lock_timeout', '5s', true);",
                 "ALTER TABLE trades_papertrade ADD COLUMN IF NOT EXISTS orders_seen_snapshot pg_snapshot NULL, "
                 "ADD COLUMN IF NOT EXISTS orders_seen_at timestamptz NULL, "
                 "ADD COLUMN IF NOT EXISTS orders_seen_version integer NULL;"],
            reverse_sql="ALTER TABLE trades_papertrade DROP COLUMN IF EXISTS orders_seen_snapshot, "
                        "DROP COLUMN IF EXISTS orders_seen_at, DROP COLUMN IF EXISTS orders_seen_version;",
        ),
    ]
