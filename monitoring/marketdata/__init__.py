"""Market data behind one interface (base.MarketDataProvider), chosen by MARKET_DATA_SOURCE.

Settings read here, all optional except where a source needs them:
`MARKET_DATA_SOURCE` (simulated | orats | replay; tradier is not built yet), `MARKET_DATA_SEED`
(simulated; default "tradeoptions"), `ORATS_URL`, `ORATS_TOKEN`, `ORATS_LIVE` (use the live
endpoints), `ORATS_MAX_WORKERS` (parallel underlyings), `MARKET_DATA_REPLAY_FILE` (replay CSV).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from monitoring import clock as market_clock

from .base import (
    Bar,
    Interval,
    MarketDataError,
    MarketDataProvider,
    OptionQuote,
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailable,
    UnderlyingQuote,
    UnsupportedRequest,
)

SOURCES = ("simulated", "orats", "replay", "tradier")

__all__ = [
    "Bar", "Interval", "MarketDataError", "MarketDataProvider", "OptionQuote", "ProviderAuthError",
    "ProviderResponseError", "ProviderUnavailable", "SOURCES", "UnderlyingQuote", "UnsupportedRequest", "provider_for",
]


def provider_for(source: str | None = None, *, clock: market_clock.Clock = market_clock.now) -> MarketDataProvider:
    """The provider for `source` (default: settings.MARKET_DATA_SOURCE), reading settings at call time."""
    source = (source or getattr(settings, "MARKET_DATA_SOURCE", "simulated") or "simulated").strip().lower()
    if source == "simulated":
        from .simulated import SimulatedProvider

        return SimulatedProvider(seed=getattr(settings, "MARKET_DATA_SEED", "tradeoptions"), clock=clock)
    if source == "orats":
        from .orats import OratsClient, OratsProvider

        token = getattr(settings, "ORATS_TOKEN", "")
        if not token:
            raise ImproperlyConfigured("MARKET_DATA_SOURCE=orats needs ORATS_TOKEN.")
        client = OratsClient(base_url=getattr(settings, "ORATS_URL", "https://api.orats.io/datav2"), token=token)
        return OratsProvider(
            client, live=bool(getattr(settings, "ORATS_LIVE", False)),
            max_workers=int(getattr(settings, "ORATS_MAX_WORKERS", 4)), clock=clock,
        )
    if source == "replay":
        from .replay import ReplayProvider

        path = getattr(settings, "MARKET_DATA_REPLAY_FILE", "")
        if not path:
            raise ImproperlyConfigured("MARKET_DATA_SOURCE=replay needs MARKET_DATA_REPLAY_FILE (a CSV file).")
        return ReplayProvider(path, clock=clock)
    if source == "tradier":
        raise ImproperlyConfigured(
            "Tradier market data is not available yet: it arrives with the Tradier broker client. "
            "Use simulated, orats or replay."
        )
    raise ImproperlyConfigured(f"MARKET_DATA_SOURCE={source!r} is not one of {', '.join(SOURCES)}.")
