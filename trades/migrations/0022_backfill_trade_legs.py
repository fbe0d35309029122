"""Backfill: every trade made before legs existed is a single option, so it gets its one leg: its
contract (symbol, right, strike, expiry), bought (LONG), ratio 1 (its `qty` stays the trade's:
contracts of a single option are units of a one-leg trade), its entry price as the leg's entry
fill and its close price as the leg's exit fill. The trade row itself is not touched (its new
columns already say `single` and `debit` by their defaults).

As 0017: atomic = False, and the trades are read in windows of BATCH_SIZE ids, each window in a
transaction of its own in the system context (row-level security is forced on both tables), so a
concurrent write waits for one batch at most. Only trades without a leg get one: a backfill
restarted after a failure, or one running while the new code writes legs at open, never gives a
trade a second leg (a trade and its leg commit together, so the statement sees both or neither;
ON CONFLICT DO NOTHING besides).

The reverse deletes, in the same windows, the legs of single-option trades (exactly what the
forward wrote or would write: derived from the trade's own fields, so nothing is lost), leaving
the table as 0020 made it.
"""

from django.db import migrations, transaction

BATCH_SIZE = 5000  # ids a transaction; tests shrink it to cross batch boundaries

SYSTEM_CONTEXT_ON = "SELECT set_config('app.system', 'on', true)"
SYSTEM_CONTEXT_OFF = "SELECT set_config('app.system', '', true)"
ID_RANGE = "SELECT min(id), max(id) FROM trades_papertrade"
BACKFILL_BATCH = """
    INSERT INTO trades_tradeleg (owner_id, trade_id, position, option_symbol, option_type, strike, expiry, side,
                                 ratio, entry_price, exit_price)
    SELECT t.owner_id, t.id, 0, t.option_symbol, t.option_type, t.strike, t.expiry, 'LONG', 1, t.entry_price,
           t.close_price
      FROM trades_papertrade t
     WHERE t.id >= %(first)s AND t.id < %(after)s
       AND NOT EXISTS (SELECT 1 FROM trades_tradeleg l WHERE l.trade_id = t.id)
    ON CONFLICT DO NOTHING
"""
REMOVE_BATCH = """
    DELETE FROM trades_tradeleg l
     USING trades_papertrade t
     WHERE t.id = l.trade_id AND t.id >= %(first)s AND t.id < %(after)s AND t.strategy_type = 'single'
"""


def _in_system_context(connection, statement, params=None):
    """Run one statement in its own transaction, in the system context, and return its cursor's
    first row (or None)."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(SYSTEM_CONTEXT_ON)
        cursor.execute(statement, params)
        row = cursor.fetchone() if cursor.description else None
        cursor.execute(SYSTEM_CONTEXT_OFF)
    return row


def _in_batches(statement):
    def run(apps, schema_editor):
        connection = schema_editor.connection
        lowest, highest = _in_system_context(connection, ID_RANGE)
        if lowest is None:
            return  # no trades
        for first in range(lowest, highest + 1, BATCH_SIZE):
            _in_system_context(connection, statement, {"first": first, "after": first + BATCH_SIZE})
    return run


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('trades', '0021_validate_trade_leg_checks'),
    ]

    operations = [
        migrations.RunPython(_in_batches(BACKFILL_BATCH), _in_batches(REMOVE_BATCH)),
    ]
