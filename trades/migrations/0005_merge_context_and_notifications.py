from django.db import migrations


class Migration(migrations.Migration):
    """Entry context (0004_entry_context_event) and notifications (0004_notifications) were built
    side by side; neither touches the other's tables."""

    dependencies = [
        ("trades", "0004_entry_context_event"),
        ("trades", "0004_notifications"),
    ]

    operations = []
