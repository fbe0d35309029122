from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Owns schedules, market data and the monitor cycle, and the price history it writes."""

    name = "monitoring"
