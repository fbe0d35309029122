"""Market data behind one interface (base.MarketDataProvider), chosen by MARKET_DATA_SOURCE.

Settings read here, all optional except where a source needs them:
`MARKET_DATA_SOURCE` (simulated | orats | replay | tradier), `MARKET_DATA_SEED`
(simulated; default "tradeoptions"), `ORATS_URL`, `ORATS_TOKEN`, `ORATS_LIVE` (use the live
endpoints), `ORATS_MAX_WORKERS` (parallel underlyings), `MARKET_DATA_REPLAY_FILE` (replay CSV),
`TRADIER_MARKET_DATA_TOKEN` (one read-only token for the whole system) and
`TRADIER_MARKET_DATA_URL` (default `TRADIER_LIVE_URL`: the sandbox's data is 15 minutes late).

`provider_for(background=True)` is for work that can come back later (the entry context): its
Tradier requests never wait for the shared rate budget nor touch its reserved share; a request
with no slot raises `ProviderThrottled` at once, saying when to ask again.
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
    ProviderThrottled,
    ProviderUnavailable,
    UnderlyingQuote,
    UnknownSymbol,
    UnsupportedRequest,
)

SOURCES = ("simulated", "orats", "replay", "tradier")

__all__ = [
    "Bar", "Interval", "MarketDataError", "MarketDataProvider", "OptionQuote", "ProviderAuthError",
    "ProviderResponseError", "ProviderThrottled", "ProviderUnavailable", "SOURCES", "UnderlyingQuote",
    "UnknownSymbol", "UnsupportedRequest", "provider_for",
]


def provider_for(source: str | None = None, *, clock: market_clock.Clock = market_clock.now,
                 background: bool = False) -> MarketDataProvider:
    """The provider for `source` (default: settings.MARKET_DATA_SOURCE), reading settings at call
    time; `background`: its requests are background work for the shared rate budget (see above)."""
    source = (source or getattr(settings, "MARKET_DATA_SOURCE", "simulated") or "simulated").strip().lower()
    if source == "simulated":
        from .simulated import SimulatedProvider

        return SimulatedProvider(seed=getattr(settings, "MARKET_DATA_SEED", "tradeoptions"), clock=clock)
    if source == "orats":
        from brokers.ratelimit import BACKGROUND, CRITICAL, RateLimiter

        from .orats import RATE_GROUP, RATE_LIMIT, OratsClient, OratsProvider

        token = getattr(settings, "ORATS_TOKEN", "")
        if not token:
            raise ImproperlyConfigured("MARKET_DATA_SOURCE=orats needs ORATS_TOKEN.")
        # ORATS' own budget, in buckets of its own (namespace), shared by every process like Tradier's.
        limiter = RateLimiter(token, limits={RATE_GROUP: RATE_LIMIT}, namespace="orats",
                              priority=BACKGROUND if background else CRITICAL)
        client = OratsClient(base_url=getattr(settings, "ORATS_URL", "https://api.orats.io/datav2"), token=token,
                             limiter=limiter)
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
        from brokers.ratelimit import BACKGROUND, CRITICAL, RateLimiter, limits_for
        from brokers.tradier import TradierMarketData

        from .tradier import TradierMarketDataProvider

        token = getattr(settings, "TRADIER_MARKET_DATA_TOKEN", "")
        if not token:
            raise ImproperlyConfigured(
                "MARKET_DATA_SOURCE=tradier needs TRADIER_MARKET_DATA_TOKEN (a Tradier token with market-data access)."
            )
        url = getattr(settings, "TRADIER_MARKET_DATA_URL", "") or settings.TRADIER_LIVE_URL
        # The buckets are the ones a broker client builds for the same token and URL: one budget.
        limiter = RateLimiter(token, limits=limits_for(url), priority=BACKGROUND if background else CRITICAL)
        return TradierMarketDataProvider(TradierMarketData(base_url=url, token=token, limiter=limiter), clock=clock,
                                         delayed="sandbox" in url)
    raise ImproperlyConfigured(f"MARKET_DATA_SOURCE={source!r} is not one of {', '.join(SOURCES)}.")
