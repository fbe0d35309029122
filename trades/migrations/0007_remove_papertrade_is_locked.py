from django.db import migrations


class Migration(migrations.Migration):
    """`is_locked` was never set: work in flight holds the row lock, and final trades are
    immutable through the transition table (and, for staff, the admin and `trade_staff_edit`)."""

    dependencies = [("trades", "0006_merge_idempotency_lease")]

    operations = [migrations.RemoveField(model_name="papertrade", name="is_locked")]
