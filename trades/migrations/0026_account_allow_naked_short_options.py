from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('trades', '0025_trade_leg_quotes_and_exit'),
    ]

    operations = [
        migrations.AddField(
            model_name='accountsettings',
            name='allow_naked_short_options',
            field=models.BooleanField(default=False),
        ),
    ]
