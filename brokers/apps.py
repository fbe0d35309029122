from django.apps import AppConfig


class BrokersConfig(AppConfig):
    """Talks to brokers: Tradier and the built-in local paper broker. Knows nothing of trades."""

    name = "brokers"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
