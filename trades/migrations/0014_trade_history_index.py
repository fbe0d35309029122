"""The trade history's index (owner, status, close date, id), built CONCURRENTLY: a plain CREATE
INDEX holds a SHARE lock that blocks every write to trades_papertrade (the monitor cycle, fills,
closes) for the whole build. CONCURRENTLY cannot run inside a transaction, hence atomic = False;
a build that fails leaves an INVALID index, which the reverse (DROP INDEX CONCURRENTLY) removes.
"""

from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('trades', '0013_account_strategy_presets'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='papertrade',
            index=models.Index(fields=['owner', 'status', '-close_date', '-id'], name='trade_owner_closed_idx'),
        ),
    ]
