from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Owns performance metrics and the learning data set (reads only)."""

    name = "analytics"
