from django.apps import AppConfig


class TradesConfig(AppConfig):
    """Owns the trade lifecycle: trades, their audit events and each user's account settings."""

    name = "trades"
