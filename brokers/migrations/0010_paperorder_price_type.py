from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("brokers", "0009_merge_security_hardening")]

    operations = [
        migrations.AddField(model_name="paperorder", name="price_type",
                            field=models.CharField(blank=True, max_length=8)),
    ]
