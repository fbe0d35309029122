from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Owns schedules, market data and the monitor cycle, and the price history it writes."""

    name = "monitoring"

    def ready(self):
        from brokers import market
        from tradeoptions import registry
        from trades.services import use_entry_context_collector

        from . import checks, clock, heartbeats  # noqa: F401  (checks: registers the system checks)
        from .market import MarketDataMarket
        from .tasks import entry_context_requested

        # The project package shows the market's status and the jobs' health but imports no app
        # (looked up at each call, so that a test moving the clock moves them too).
        registry.register_market_status(lambda: clock.status())
        registry.register_jobs_report(lambda: heartbeats.jobs_report())

        # Brokers and trades need quotes and the exchange clock but cannot import us: hand them over.
        market.use_market(MarketDataMarket())
        # A new trade's indicators and market regime are collected here, by a task queued on commit.
        use_entry_context_collector(entry_context_requested)
