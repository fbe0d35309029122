from django.db import migrations


class Migration(migrations.Migration):
    """Two branches of the same wave each added a trades migration after 0006."""

    dependencies = [
        ("trades", "0007_remove_papertrade_is_locked"),
        ("trades", "0007_trade_oversold_qty"),
    ]

    operations = []
