"""Validate the commission CHECK constraints 0014 added NOT VALID.

VALIDATE CONSTRAINT scans the table under SHARE UPDATE EXCLUSIVE only: the monitor cycle and the
API keep reading and writing trades while it runs (only other DDL and VACUUM wait). It runs in a
transaction of its own, apart from 0014, whose ACCESS EXCLUSIVE lock would otherwise be held for
the scans. Nothing to undo: the reverse leaves the constraints validated (0014's reverse drops them).
"""

from django.db import migrations

CONSTRAINTS = [
    ('trades_accountsettings', 'settings_commission_per_contract_range'),
    ('trades_papertrade', 'trade_commission_source_known'),
    ('trades_papertrade', 'trade_commission_per_contract_not_negative'),
    ('trades_papertrade', 'trade_entry_commission_not_negative'),
    ('trades_papertrade', 'trade_exit_commission_not_negative'),
    ('trades_papertrade', 'trade_fees_not_negative'),
]


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0015_merge_commissions_and_history_index'),
    ]

    operations = [
        migrations.RunSQL(
            sql=f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"',
            reverse_sql=migrations.RunSQL.noop,
        )
        for table, name in CONSTRAINTS
    ]
