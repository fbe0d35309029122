from django.db import migrations


class Migration(migrations.Migration):
    """The idempotency claim's lease (0004_idempotency_claim_lease) was built beside the entry
    context and notifications; it touches only IdempotencyKey."""

    dependencies = [
        ("trades", "0005_merge_context_and_notifications"),
        ("trades", "0004_idempotency_claim_lease"),
    ]

    operations = []
