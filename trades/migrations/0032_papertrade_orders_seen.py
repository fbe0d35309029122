"""The order sync's per-trade watermark (`monitoring.sync`, its pre-filter): `orders_seen_at`,
the database-clock time up to which every change of the trade's account's paper orders has been
looked at with this trade, and `orders_seen_version`, the trade's `version` that look saw.

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
            sql="ALTER TABLE trades_papertrade ADD COLUMN orders_seen_at timestamptz NULL, "
                "ADD COLUMN orders_seen_version integer NULL;",
            reverse_sql="ALTER TABLE trades_papertrade DROP COLUMN IF EXISTS orders_seen_at, "
                        "DROP COLUMN IF EXISTS orders_seen_version;",
        ),
    ]
