"""System checks of the market data this app owns."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

NOT_REAL = ("simulated", "replay")


def real_broker_modes() -> list[str]:
    """The Tradier modes a trader can trade in on this server."""
    modes = []
    if getattr(settings, "ALLOW_TRADIER_SANDBOX", True):
        modes.append("Tradier sandbox")
    if getattr(settings, "ALLOW_LIVE_TRADING", False):
        modes.append("Tradier live")
    return modes


@register(Tags.compatibility)
def real_quotes_with_a_real_broker(app_configs, **kwargs):
    """Tradier trades must be priced, stopped and expired off real quotes: simulated (or replayed)
    quotes next to a real broker are refused when DEBUG is off, unless explicitly allowed."""
    source = (getattr(settings, "MARKET_DATA_SOURCE", "simulated") or "simulated").strip().lower()
    modes = real_broker_modes()
    if settings.DEBUG or source not in NOT_REAL or not modes:
        return []
    if getattr(settings, "ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER", False):
        return []
    return [
        Error(
            f"MARKET_DATA_SOURCE={source} while {' and '.join(modes)} trading is possible: Tradier trades would be "
            f"priced, stopped and expired off {source} quotes, not the market's.",
            hint="Set MARKET_DATA_SOURCE=tradier (TRADIER_MARKET_DATA_TOKEN) or orats (ORATS_TOKEN); or switch the "
                 "Tradier modes off (ALLOW_TRADIER_SANDBOX=false, ALLOW_LIVE_TRADING=false); or, for a demo, accept "
                 "it with ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER=true.",
            id="monitoring.E001",
        )
    ]
