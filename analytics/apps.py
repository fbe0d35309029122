from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Owns performance metrics and the learning data set (reads only)."""

    name = "analytics"

    def ready(self) -> None:
        # A trade's detail carries what analytics knows about it; trades cannot import analytics.
        from trades.selectors import use_trade_explainer

        from .selectors import trade_explanation

        use_trade_explainer(trade_explanation)
