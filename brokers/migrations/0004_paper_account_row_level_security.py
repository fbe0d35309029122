from django.db import migrations

from tradeoptions.rls import enable_row_level_security


class Migration(migrations.Migration):
    dependencies = [("brokers", "0003_paper_account_reserve_and_session")]

    operations = [enable_row_level_security("brokers_paperaccount")]
