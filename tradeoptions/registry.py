"""What the project package shows but an app knows: the market's status (`/market-status`, the
`/healthz` probe) and the periodic jobs' health (`/healthz`).

The project package imports no app. The app that knows registers a provider here in its
`AppConfig.ready()` (monitoring registers both); asking before any app did raises NotRegistered,
which the probe reports like any other failure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol


class NotRegistered(LookupError):
    pass


class Session(Protocol):
    is_trading_day: bool
    early_close: bool
    close: datetime | None


class MarketStatus(Protocol):
    at: datetime
    is_open: bool
    forced: bool  # FORCE_MARKET_OPEN, never in production
    next_open: datetime
    next_close: datetime
    session: Session


# Each job's last success as JSON, and the jobs whose lateness makes the probe unhealthy now.
JobsReport = tuple[dict[str, dict], list[str]]

_providers: dict[str, Callable] = {}


def register_market_status(provider: Callable[[], MarketStatus]) -> None:
    _providers["market_status"] = provider


def register_jobs_report(provider: Callable[[], JobsReport]) -> None:
    _providers["jobs_report"] = provider


def market_status() -> MarketStatus:
    return _provider("market_status")()


def jobs_report() -> JobsReport:
    return _provider("jobs_report")()


def _provider(name: str) -> Callable:
    try:
        return _providers[name]
    except KeyError:
        raise NotRegistered(f"No installed app registered the {name} provider.") from None

