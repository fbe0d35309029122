"""The order sync's per-trade watermark (`monitoring.sync`, its pre-filter `paper_look`):
`orders_seen_snapshot`, the database snapshot the sync's last full look at the trade's account
read with (an order whose last change that snapshot does not see is new to it); `orders_seen_at`,
when that was (for the safety net's full look every ORDER_SYNC_FULL_LOOK_SECONDS); and
`orders_seen_version`, the trade's `version` that look saw (a transition since bumps it).

Columns of the database's alone (the model does not declare them, so no serializer, export or
`save()` ever carries them; the sync reads and writes them in SQL). Nullable, no default: adding
them rewrites nothing on a big table, and NULL means "never looked at", which the sync reads as
"look". Row-level security is per table, so the policies already cover them.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("trades", "0031_merge_0025_web_push_0030_channel_message_kinds_joined")]

    operations = [
        migrations.RunSQL(
            sql="ALTER TABLE trades_papertrade ADD COLUMN orders_seen_snapshot pg_snapshot NULL, "
                "ADD COLUMN orders_seen_at timestamptz NULL, ADD COLUMN orders_seen_version integer NULL;",
            reverse_sql="ALTER TABLE trades_papertrade DROP COLUMN IF EXISTS orders_seen_snapshot, "
                        "DROP COLUMN IF EXISTS orders_seen_at, DROP COLUMN IF EXISTS orders_seen_version;",
        ),
    ]
