"""Commissions and fees become fields of a trade, and the commission per contract a setting of
the account (NULL there: the server's PAPER_COMMISSION_PER_CONTRACT).

Schema only, so that the ACCESS EXCLUSIVE lock this takes on trades_papertrade lasts milliseconds
on a table of any size:
  - the new columns have constant defaults, which PostgreSQL 11+ records in the catalogue without
    rewriting the table;
  - the CHECK constraints are added NOT VALID: new and updated rows are checked from now on, but
    existing rows are not scanned under this lock. 0016 validates them under SHARE UPDATE
    EXCLUSIVE (reads and writes go on), and 0017 backfills the filled trades in small batches.
Django's AddConstraint cannot say NOT VALID, so each constraint is raw SQL (what AddConstraint
would emit, plus NOT VALID) with the AddConstraint as its state: the models see the same
constraints as before. The reverse drops the constraints, then the columns.
"""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, models


def check_not_valid(table, model_name, name, check, condition):
    """A CHECK constraint added NOT VALID; the state is Django's own CheckConstraint."""
    return migrations.RunSQL(
        sql=f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" CHECK ({check}) NOT VALID',
        reverse_sql=f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"',
        state_operations=[migrations.AddConstraint(
            model_name=model_name, constraint=models.CheckConstraint(condition=condition, name=name))],
    )


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
        check_not_valid(
            'trades_accountsettings', 'accountsettings', 'settings_commission_per_contract_range',
            '"commission_per_contract" IS NULL OR ("commission_per_contract" >= 0 AND "commission_per_contract" <= 10)',
            models.Q(('commission_per_contract__isnull', True), models.Q(('commission_per_contract__gte', 0), ('commission_per_contract__lte', Decimal('10'))), _connector='OR'),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_commission_source_known',
            """"commission_source" = '' OR "commission_source" IN ('ACCOUNT_RATE', 'BACKFILL')""",
            models.Q(('commission_source', ''), ('commission_source__in', ['ACCOUNT_RATE', 'BACKFILL']), _connector='OR'),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_commission_per_contract_not_negative',
            '"commission_per_contract" IS NULL OR "commission_per_contract" >= 0',
            models.Q(('commission_per_contract__isnull', True), ('commission_per_contract__gte', 0), _connector='OR'),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_entry_commission_not_negative',
            '"entry_commission" IS NULL OR "entry_commission" >= 0',
            models.Q(('entry_commission__isnull', True), ('entry_commission__gte', 0), _connector='OR'),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_exit_commission_not_negative',
            '"exit_commission" IS NULL OR "exit_commission" >= 0',
            models.Q(('exit_commission__isnull', True), ('exit_commission__gte', 0), _connector='OR'),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_fees_not_negative',
            '"fees" IS NULL OR "fees" >= 0',
            models.Q(('fees__isnull', True), ('fees__gte', 0), _connector='OR'),
        ),
    ]
