from django.db import models


class BrokerMode(models.TextChoices):
    """Where a user's orders go. Live is one deliberate, guarded setting away from paper."""

    LOCAL_PAPER = "LOCAL_PAPER", "Local paper"
    TRADIER_SANDBOX = "TRADIER_SANDBOX", "Tradier sandbox"
    TRADIER_LIVE = "TRADIER_LIVE", "Tradier live"
