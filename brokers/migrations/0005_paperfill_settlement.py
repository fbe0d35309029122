from django.db import migrations, models

# Fills recorded before the flag existed: settle_expired_positions wrote them as a filled
# sell-to-close of no order type, no quote, no commission, whose reason names the expiry.
# Row-level security is forced on both tables, so the backfill runs in the system context
# (transaction-local, like every other use of it).
BACKFILL = """
    SELECT set_config('app.system', 'on', true);
    UPDATE brokers_paperfill AS fill SET settlement = true
      FROM brokers_paperorder AS o
     WHERE o.id = fill.order_id AND o.order_type = '' AND left(o.reason, 8) = 'Expired '
       AND fill.bid IS NULL AND fill.ask IS NULL AND fill.quote_time IS NULL AND fill.commission = 0;
    SELECT set_config('app.system', '', true);
"""


class Migration(migrations.Migration):
    dependencies = [("brokers", "0004_paper_account_row_level_security")]

    operations = [
        migrations.AddField(model_name="paperfill", name="settlement", field=models.BooleanField(default=False)),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
