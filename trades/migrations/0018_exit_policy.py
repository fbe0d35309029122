"""Exit policies (issue 18): the policy and its memory on the trade, and two close reasons
(TIME_STOP, STOCK_STOP) with the webhook kind that reports them.

As 0014: the new columns have constant defaults (no table rewrite), and the two widened CHECK
constraints are dropped and added again NOT VALID, so the ACCESS EXCLUSIVE lock lasts
milliseconds on a table of any size; 0019 validates them under SHARE UPDATE EXCLUSIVE. The SQL
is written out here as it is today (a migration is frozen), with Django's constraint as state.
"""

from django.conf import settings
from django.db import migrations, models

CLOSE_REASONS = ['TP_HIT', 'SL_HIT', 'MANUAL_CLOSE', 'EXPIRED', 'EXPIRED_ITM', 'TIME_STOP', 'STOCK_STOP']
WEBHOOK_KINDS = ['trade.opened', 'trade.tp_hit', 'trade.sl_hit', 'trade.manual_close', 'trade.policy_exit',
                 'trade.expired', 'trade.rejected', 'broker.auth_failed', 'trade.oversold']


def _listed(values):
    return ", ".join(f"'{value}'" for value in values)


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
        ('trades', '0017_backfill_commissions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='papertrade',
            name='trade_close_reason_known',
        ),
        migrations.RemoveConstraint(
            model_name='webhookevent',
            name='webhook_event_kind_known',
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_high_water',
            field=models.DecimalField(blank=True, decimal_places=4, max_digits=12, null=True),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_policy',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_request_reason',
            field=models.CharField(blank=True, choices=[('TP_HIT', 'Take-profit hit'), ('SL_HIT', 'Stop-loss hit'), ('MANUAL_CLOSE', 'Closed manually'), ('EXPIRED', 'Expired worthless'), ('EXPIRED_ITM', 'Expired in the money (settled at intrinsic)'), ('TIME_STOP', 'Time stop'), ('STOCK_STOP', 'Stock trailing stop')], max_length=12),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_requested_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_stop_moved_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='exit_underlying_extreme',
            field=models.DecimalField(blank=True, decimal_places=4, max_digits=12, null=True),
        ),
        migrations.AlterField(
            model_name='papertrade',
            name='close_reason',
            field=models.CharField(blank=True, choices=[('TP_HIT', 'Take-profit hit'), ('SL_HIT', 'Stop-loss hit'), ('MANUAL_CLOSE', 'Closed manually'), ('EXPIRED', 'Expired worthless'), ('EXPIRED_ITM', 'Expired in the money (settled at intrinsic)'), ('TIME_STOP', 'Time stop'), ('STOCK_STOP', 'Stock trailing stop')], max_length=12, null=True),
        ),
        migrations.AlterField(
            model_name='webhookevent',
            name='kind',
            field=models.CharField(choices=[('trade.opened', 'Trade opened'), ('trade.tp_hit', 'Take-profit hit'), ('trade.sl_hit', 'Stop-loss hit'), ('trade.manual_close', 'Closed manually'), ('trade.policy_exit', 'Closed by its exit policy (time or stock stop)'), ('trade.expired', 'Expired'), ('trade.rejected', 'Rejected by the broker'), ('broker.auth_failed', 'Broker refused the credentials'), ('trade.oversold', 'The broker account holds the contract short')], max_length=32),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_close_reason_known',
            f'"close_reason" IS NULL OR "close_reason" IN ({_listed(CLOSE_REASONS)})',
            models.Q(('close_reason__isnull', True), ('close_reason__in', CLOSE_REASONS), _connector='OR'),
        ),
        check_not_valid(
            'trades_webhookevent', 'webhookevent', 'webhook_event_kind_known',
            f'"kind" IN ({_listed(WEBHOOK_KINDS)})',
            models.Q(('kind__in', WEBHOOK_KINDS)),
        ),
    ]
