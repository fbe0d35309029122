from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Owns schedules, market data and the monitor cycle, and the price history it writes."""

    name = "monitoring"

    def ready(self):
        from brokers import market

        from .market import MarketDataMarket

        # Brokers and trades need quotes and the exchange clock but cannot import us: hand them over.
        market.use_market(MarketDataMarket())
