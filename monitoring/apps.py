from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Owns schedules, market data and the monitor cycle, and the price history it writes."""

    name = "monitoring"

    def ready(self):
        from brokers import paper

        from .paper_market import MarketDataPaperMarket

        # The local paper broker fills against our market data; hand it over (it cannot import us).
        paper.use_market(MarketDataPaperMarket())
