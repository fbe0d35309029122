"""Account numbers already written in clear to settings-change events are masked to their last
four characters, as the settings service now writes them ("…5151"; four characters or fewer: "…").

The audit log is append-only: a trigger refuses every UPDATE, for the schema owner too. This
migration alone switches it off, inside its own transaction (DDL is transactional in PostgreSQL:
if anything fails the trigger was never off), rewrites only the account number of
SETTINGS_CHANGED events, and switches it back on. Row-level security is forced on the table, so
the update runs in the system context (transaction-local). Masking cannot be undone: the reverse
changes nothing. Masking a masked number changes nothing, so running it twice is harmless.
"""

from django.db import migrations

MASK_ACCOUNT_NUMBERS = """
    ALTER TABLE trades_tradeevent DISABLE TRIGGER tradeevent_append_only;
    SELECT set_config('app.system', 'on', true);
    UPDATE trades_tradeevent
       SET payload = jsonb_set(payload, '{changes,tradier_account_id}', jsonb_build_object(
               'from', CASE WHEN coalesce(payload #>> '{changes,tradier_account_id,from}', '') = '' THEN ''
                            WHEN length(payload #>> '{changes,tradier_account_id,from}') <= 4 THEN '…'
                            ELSE '…' || right(payload #>> '{changes,tradier_account_id,from}', 4) END,
               'to', CASE WHEN coalesce(payload #>> '{changes,tradier_account_id,to}', '') = '' THEN ''
                          WHEN length(payload #>> '{changes,tradier_account_id,to}') <= 4 THEN '…'
                          ELSE '…' || right(payload #>> '{changes,tradier_account_id,to}', 4) END))
     WHERE kind = 'SETTINGS_CHANGED'
       AND jsonb_typeof(payload #> '{changes,tradier_account_id}') = 'object';
    SELECT set_config('app.system', '', true);
    ALTER TABLE trades_tradeevent ENABLE TRIGGER tradeevent_append_only;
"""


class Migration(migrations.Migration):
    dependencies = [("trades", "0010_trade_exit_filled")]

    operations = [migrations.RunSQL(MASK_ACCOUNT_NUMBERS, reverse_sql=migrations.RunSQL.noop)]
