"""Validate the CHECK constraints 0020 added NOT VALID, under SHARE UPDATE EXCLUSIVE, in a
transaction apart from 0020's lock. The reverse leaves them validated (0020's reverse drops them)."""

from django.db import migrations

CONSTRAINTS = [
    ('trades_papertrade', 'trade_strategy_type_known'),
    ('trades_papertrade', 'trade_net_direction_known'),
]


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0020_trade_legs'),
    ]

    operations = [
        migrations.RunSQL(
            sql=f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"',
            reverse_sql=migrations.RunSQL.noop,
        )
        for table, name in CONSTRAINTS
    ]
