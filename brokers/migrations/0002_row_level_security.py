from django.db import migrations

from tradeoptions.rls import enable_row_level_security


class Migration(migrations.Migration):
    dependencies = [("brokers", "0001_initial")]

    operations = [
        enable_row_level_security("brokers_paperorder"),
        enable_row_level_security("brokers_paperfill"),
    ]
