from django.db import migrations

from tradeoptions.rls import enable_row_level_security


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [enable_row_level_security("monitoring_pricesnapshot")]
