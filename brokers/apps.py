from django.apps import AppConfig


class BrokersConfig(AppConfig):
    """Talks to brokers: Tradier and the built-in local paper broker. Knows nothing of trades."""

    name = "brokers"
