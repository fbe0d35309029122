"""Multi-leg trades (issue 19), the model: a trade has legs (TradeLeg: contract, side, ratio, the
per-leg entry and exit fills), a strategy type and a net debit or credit. 0022 gives every existing
trade its one leg.

The new trade columns have constant defaults (no table rewrite); their two CHECK constraints are
added NOT VALID, as 0018 does, and 0021 validates them under SHARE UPDATE EXCLUSIVE. The leg table
gets row-level security as every owned table has it today (ENABLE + FORCE, the tenant policy on
the signed user id, the system policy for the system group only; tests/test_row_level_security.py
checks the catalogue) and the cross-tenant reference guard on `trade_id` (the functions of
brokers 0008). All SQL is frozen here as written that day.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

STRATEGY_TYPES = ['single', 'vertical', 'straddle', 'strangle', 'iron_condor', 'butterfly', 'calendar']
NET_DIRECTIONS = ['debit', 'credit']


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


ROW_LEVEL_SECURITY = """
    ALTER TABLE trades_tradeleg ENABLE ROW LEVEL SECURITY;
    ALTER TABLE trades_tradeleg FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_owner ON trades_tradeleg
        USING (owner_id = (SELECT app_user_id()))
        WITH CHECK (owner_id = (SELECT app_user_id()));
    CREATE POLICY system_context ON trades_tradeleg TO tradeoptions_system
        USING (current_setting('app.system', true) = 'on')
        WITH CHECK (current_setting('app.system', true) = 'on');
"""
NO_ROW_LEVEL_SECURITY = """
    DROP POLICY IF EXISTS system_context ON trades_tradeleg;
    DROP POLICY IF EXISTS tenant_owner ON trades_tradeleg;
    ALTER TABLE trades_tradeleg NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE trades_tradeleg DISABLE ROW LEVEL SECURITY;
"""
# The table is new and empty: no existing row to check before the guard.
REFERENCE_GUARD = """
CREATE TRIGGER tenant_reference_trade_id BEFORE INSERT OR UPDATE OF trade_id, owner_id ON trades_tradeleg
    FOR EACH ROW EXECUTE FUNCTION refuse_cross_tenant_reference('trade_id', 'trades_papertrade');
"""

class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0019_validate_exit_policy_checks'),
        ('brokers', '0008_refuse_cross_tenant_references'),
        ('tradeoptions', '0001_signed_tenant_context'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='TradeLeg',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveSmallIntegerField(default=0, help_text="The leg's place in the order, from 0.")),
                ('option_symbol', models.CharField(max_length=21)),
                ('option_type', models.CharField(choices=[('CALL', 'Call'), ('PUT', 'Put')], max_length=4)),
                ('strike', models.DecimalField(decimal_places=3, max_digits=9)),
                ('expiry', models.DateField()),
                ('side', models.CharField(choices=[('LONG', 'Long (bought)'), ('SHORT', 'Short (sold)')], max_length=5)),
                ('ratio', models.PositiveSmallIntegerField(default=1, help_text='Contracts of this leg per unit of the trade.')),
                ('entry_price', models.DecimalField(blank=True, decimal_places=4, help_text='Entry fill, per share.', max_digits=12, null=True)),
                ('exit_price', models.DecimalField(blank=True, decimal_places=4, help_text='Exit fill, per share.', max_digits=12, null=True)),
            ],
            options={
                'ordering': ['trade', 'position'],
            },
        ),
        migrations.AddField(
            model_name='papertrade',
            name='net_direction',
            field=models.CharField(choices=[('debit', 'Net debit (paid)'), ('credit', 'Net credit (received)')], default='debit', max_length=6),
        ),
        migrations.AddField(
            model_name='papertrade',
            name='strategy_type',
            field=models.CharField(choices=[('single', 'Single option'), ('vertical', 'Vertical spread'), ('straddle', 'Straddle'), ('strangle', 'Strangle'), ('iron_condor', 'Iron condor'), ('butterfly', 'Butterfly'), ('calendar', 'Calendar')], default='single', max_length=12),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_strategy_type_known',
            f'"strategy_type" IN ({_listed(STRATEGY_TYPES)})', models.Q(('strategy_type__in', STRATEGY_TYPES)),
        ),
        check_not_valid(
            'trades_papertrade', 'papertrade', 'trade_net_direction_known',
            f'"net_direction" IN ({_listed(NET_DIRECTIONS)})', models.Q(('net_direction__in', NET_DIRECTIONS)),
        ),
        migrations.AddField(
            model_name='tradeleg',
            name='owner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='tradeleg',
            name='trade',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='legs', to='trades.papertrade'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.UniqueConstraint(fields=('trade', 'position'), name='leg_position_unique_per_trade'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.UniqueConstraint(fields=('trade', 'option_symbol'), name='leg_contract_unique_per_trade'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('side__in', ['LONG', 'SHORT'])), name='leg_side_known'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('option_type__in', ['CALL', 'PUT'])), name='leg_option_type_known'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('ratio__gte', 1)), name='leg_ratio_positive'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('strike__gt', 0)), name='leg_strike_positive'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('entry_price__isnull', True), ('entry_price__gte', 0), _connector='OR'), name='leg_entry_price_not_negative'),
        ),
        migrations.AddConstraint(
            model_name='tradeleg',
            constraint=models.CheckConstraint(condition=models.Q(('exit_price__isnull', True), ('exit_price__gte', 0), _connector='OR'), name='leg_exit_price_not_negative'),
        ),
        migrations.RunSQL(sql=ROW_LEVEL_SECURITY, reverse_sql=NO_ROW_LEVEL_SECURITY),
        migrations.RunSQL(sql=REFERENCE_GUARD,
                          reverse_sql="DROP TRIGGER IF EXISTS tenant_reference_trade_id ON trades_tradeleg;"),
    ]
