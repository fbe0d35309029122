"""Backfill: every trade whose entry filled (OPEN, CLOSING, CLOSED) is charged what the paper broker
charged it, at the rate configured when this migration runs (PAPER_COMMISSION_PER_CONTRACT: every
account's own rate is still NULL here) x contracts x legs filled:
  - the entry leg: rate x contracts bought (`filled_qty`, or `qty` where it was never counted);
  - the exit leg of a CLOSED trade: rate x contracts bought, except for a trade that expired, whose
    held contracts were settled by the expiry without commission: rate x `exit_filled_qty` (what
    exit legs sold before it).
Backfilled trades say so (`commission_source` = BACKFILL) and carry the rate. Nothing else is
changed (`realized_pnl` keeps its gross value); the reverse changes nothing (0014's reverse drops
the columns).

Not one UPDATE of the whole table in one transaction: that would hold row locks on every filled
trade until the end, stalling the monitor cycle and the API. atomic = False, and the trades are
updated in windows of BATCH_SIZE ids, each window in a transaction of its own, so a concurrent
write waits for one batch at most. Row-level security is forced on the table, so each batch turns
on the system context (transaction-local), as the one-statement backfill did. Only trades not yet
charged (`commission_source` = '') are touched: the same rows as the one-statement backfill on its
run, and a backfill restarted after a failure neither charges a trade twice nor overwrites what
the running code charged in between.
"""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, transaction

BATCH_SIZE = 5000  # ids a transaction; tests shrink it to cross batch boundaries

SYSTEM_CONTEXT_ON = "SELECT set_config('app.system', 'on', true)"
SYSTEM_CONTEXT_OFF = "SELECT set_config('app.system', '', true)"
ID_RANGE = "SELECT min(id), max(id) FROM trades_papertrade"
BACKFILL_BATCH = """
    UPDATE trades_papertrade
       SET commission_per_contract = %(rate)s,
           commission_source = 'BACKFILL',
           entry_commission = round(%(rate)s * coalesce(nullif(filled_qty, 0), qty), 2),
           exit_commission = CASE
               WHEN status <> 'CLOSED' THEN 0
               WHEN close_reason IN ('EXPIRED', 'EXPIRED_ITM') THEN round(%(rate)s * exit_filled_qty, 2)
               ELSE round(%(rate)s * coalesce(nullif(filled_qty, 0), qty), 2) END
     WHERE id >= %(first)s AND id < %(after)s
       AND status IN ('OPEN', 'CLOSING', 'CLOSED') AND entry_price IS NOT NULL
       AND commission_source = ''
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


def backfill_commissions(apps, schema_editor):
    connection = schema_editor.connection
    rate = Decimal(str(settings.PAPER_COMMISSION_PER_CONTRACT))
    lowest, highest = _in_system_context(connection, ID_RANGE)
    if lowest is None:
        return  # no trades
    for first in range(lowest, highest + 1, BATCH_SIZE):
        _in_system_context(connection, BACKFILL_BATCH, {"rate": rate, "first": first, "after": first + BATCH_SIZE})


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('trades', '0016_validate_commission_checks'),
    ]

    operations = [
        migrations.RunPython(backfill_commissions, migrations.RunPython.noop),
    ]
