"""Each snapshot says whether its source is delayed by design. A database default, so that the
column costs no table rewrite on the large table and writers that do not name it still work."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0005_merge_security_hardening'),
    ]

    operations = [
        migrations.AddField(
            model_name='pricesnapshot',
            name='delayed',
            field=models.BooleanField(db_default=False, default=False, help_text='The source is late by design (ORATS delayed, Tradier sandbox).'),
        ),
    ]
