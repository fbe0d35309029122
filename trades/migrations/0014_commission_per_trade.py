"""Commissions and fees become fields of a trade, and the commission per contract a setting of
the account (NULL there: the server's PAPER_COMMISSION_PER_CONTRACT).

Backfill: every trade whose entry filled (OPEN, CLOSING, CLOSED) is charged what the paper broker
charged it, at the rate configured when this migration runs (PAPER_COMMISSION_PER_CONTRACT: every
account's own rate is still NULL here) x contracts x legs filled:
  - the entry leg: rate x contracts bought (`filled_qty`, or `qty` where it was never counted);
  - the exit leg of a CLOSED trade: rate x contracts bought, except for a trade that expired, whose
    held contracts were settled by the expiry without commission: rate x `exit_filled_qty` (what
    exit legs sold before it).
Backfilled trades say so (`commission_source` = BACKFILL) and carry the rate. Nothing else is
changed (`realized_pnl` keeps its gross value); the reverse drops the new columns. Row-level
security is forced on the table, so the update runs in the system context (transaction-local).
"""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, models


BACKFILL = """
    SELECT set_config('app.system', 'on', true);
    UPDATE trades_papertrade
       SET commission_per_contract = %(rate)s,
           commission_source = 'BACKFILL',
           entry_commission = round(%(rate)s * coalesce(nullif(filled_qty, 0), qty), 2),
           exit_commission = CASE
               WHEN status <> 'CLOSED' THEN 0
               WHEN close_reason IN ('EXPIRED', 'EXPIRED_ITM') THEN round(%(rate)s * exit_filled_qty, 2)
               ELSE round(%(rate)s * coalesce(nullif(filled_qty, 0), qty), 2) END
     WHERE status IN ('OPEN', 'CLOSING', 'CLOSED') AND entry_price IS NOT NULL;
    SELECT set_config('app.system', '', true);
"""


def backfill_commissions(apps, schema_editor):
    rate = Decimal(str(settings.PAPER_COMMISSION_PER_CONTRACT))
    schema_editor.execute(BACKFILL, {"rate": rate})


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0013_account_strategy_presets'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='accountsettings',
            name='commission_per_contract',
            field=models.DecimalField(blank=True, decimal_places=4, max_digits=6, null=True),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='commission_per_contract',
            field=models.DecimalField(blank=True, decimal_places=4, help_text="The rate the trade's commissions were (and its exit's will be) charged at, per contract.", max_digits=6, null=True),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='commission_source',
            field=models.CharField(blank=True, choices=[('ACCOUNT_RATE', "The account's commission per contract"), ('BACKFILL', 'Backfilled at the configured rate (migration 0014)')], max_length=12),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='entry_commission',
            field=models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=14),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_commission',
            field=models.DecimalField(decimal_places=2, default=Decimal('0'), max_digits=14),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='fees',
            field=models.DecimalField(decimal_places=2, default=Decimal('0'), help_text='Regulatory and exchange fees, if reported.', max_digits=14),
        ),
        migrations.AddConstraint(
            model_name='accountsettings',
            constraint=models.CheckConstraint(condition=models.Q(('commission_per_contract__isnull', True), models.Q(('commission_per_contract__gte', 0), ('commission_per_contract__lte', Decimal('10'))), _connector='OR'), name='settings_commission_per_contract_range'),
        ),
        migrations.AddConstraint(
            model_name='papertrade',
            constraint=models.CheckConstraint(condition=models.Q(('commission_source', ''), ('commission_source__in', ['ACCOUNT_RATE', 'BACKFILL']), _connector='OR'), name='trade_commission_source_known'),
        ),
        migrations.AddConstraint(
            model_name='papertrade',
            constraint=models.CheckConstraint(condition=models.Q(('commission_per_contract__isnull', True), ('commission_per_contract__gte', 0), _connector='OR'), name='trade_commission_per_contract_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='papertrade',
            constraint=models.CheckConstraint(condition=models.Q(('entry_commission__isnull', True), ('entry_commission__gte', 0), _connector='OR'), name='trade_entry_commission_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='papertrade',
            constraint=models.CheckConstraint(condition=models.Q(('exit_commission__isnull', True), ('exit_commission__gte', 0), _connector='OR'), name='trade_exit_commission_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='papertrade',
            constraint=models.CheckConstraint(condition=models.Q(('fees__isnull', True), ('fees__gte', 0), _connector='OR'), name='trade_fees_not_negative'),
        ),
        migrations.RunPython(backfill_commissions, migrations.RunPython.noop),
    ]
