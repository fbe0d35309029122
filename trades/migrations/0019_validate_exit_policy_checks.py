"""Validate the CHECK constraints 0018 added NOT VALID, under SHARE UPDATE EXCLUSIVE (the monitor
and the API keep reading and writing trades), in a transaction apart from 0018's lock. The
reverse leaves them validated (0018's reverse drops them)."""

from django.db import migrations

CONSTRAINTS = [
    ('trades_papertrade', 'trade_close_reason_known'),
    ('trades_webhookevent', 'webhook_event_kind_known'),
]


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0018_exit_policy'),
    ]

    operations = [
        migrations.RunSQL(
            sql=f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"',
            reverse_sql=migrations.RunSQL.noop,
        )
        for table, name in CONSTRAINTS
    ]
