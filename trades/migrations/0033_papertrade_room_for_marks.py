"""Room on every page of trades_papertrade for the monitor's marks (issue 20).

Every 40 seconds the snapshot cycle writes each held trade's mark, bid/ask, P&L and `last_updated`
(trades/services/marks.py, one UPDATE). None of those columns is indexed, so PostgreSQL can keep
the new row version on the same page without touching an index (a HOT update), but only if the
page has room for it: on pages packed full (the default fillfactor of 100) every mark was a new
entry in each of the table's indexes: at 100,000 held trades the UPDATE of a shard's 50,000 took
about 10 s (docs/benchmarks.md, "The rest of the cycle at 100,000 trades"). With half of each
page kept free, a page's held trades all fit their next version beside the current one, and the
previous cycle's versions are pruned when the page is next read. The price: the table has twice
the pages (closed trades keep room they never use).

The setting applies to pages written from now on; rows on pages already full move once, on their
next update, to pages that have the room. SHARE UPDATE EXCLUSIVE: reads and writes go on meanwhile,
but it waits behind a running VACUUM or a schema change, so a `lock_timeout` of 5 s for this
migration's transaction: past it the migration fails, and is simply run again (setting the
fillfactor twice is harmless).
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [("trades", "0032_papertrade_orders_seen")]

    operations = [
        migrations.RunSQL(
            sql=["SELECT set_config('lock_timeout', '5s', true);",
                 "ALTER TABLE trades_papertrade SET (fillfactor = 50)"],
            reverse_sql="ALTER TABLE trades_papertrade RESET (fillfactor)",
        ),
    ]
