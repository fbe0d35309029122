"""Which broker an account's orders go to: the one place that decides, and guards live trading."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from django.conf import settings

from .base import BrokerAuthError, BrokerError, BrokerProvider
from .market import Market
from .models import BrokerMode
from .paper import LocalPaperBroker
from .tradier import TradierClient


class BrokerAccount(Protocol):
    """What the factory reads of an account's settings (trades.AccountSettings has it all)."""

    owner_id: int
    broker_mode: str
    tradier_account_id: str
    account_balance: Decimal

    def broker_token(self, mode: str) -> str: ...


class LiveTradingDisabled(BrokerError):
    """Live trading is switched off on this server (ALLOW_LIVE_TRADING)."""


def tradier_base_url(mode: str) -> str:
    """Each environment has its own base URL; a token is only ever sent to its own."""
    sandbox, live = settings.TRADIER_SANDBOX_URL.rstrip("/"), settings.TRADIER_LIVE_URL.rstrip("/")
    if sandbox == live:
        raise BrokerError("TRADIER_SANDBOX_URL and TRADIER_LIVE_URL are the same: refusing to mix environments.")
    return sandbox if mode == BrokerMode.TRADIER_SANDBOX else live


def broker_for(account: BrokerAccount, *, market: Market | None = None) -> BrokerProvider:
    """The broker for `account`'s mode: LOCAL_PAPER (default), TRADIER_SANDBOX or TRADIER_LIVE.

    Live needs ALLOW_LIVE_TRADING on; each Tradier mode uses its own URL with its own token, so a
    sandbox token can never reach the live host or the reverse.
    """
    mode = BrokerMode(account.broker_mode)
    if mode == BrokerMode.LOCAL_PAPER:
        return LocalPaperBroker(account.owner_id, starting_cash=account.account_balance, market=market)
    if mode == BrokerMode.TRADIER_LIVE and not settings.ALLOW_LIVE_TRADING:
        raise LiveTradingDisabled("Live trading is switched off on this server (ALLOW_LIVE_TRADING).")
    token = account.broker_token(mode)
    if not token:
        raise BrokerAuthError(f"No {mode.label} token is set: add one in your settings.")
    if not account.tradier_account_id:
        raise BrokerError("No Tradier account id is set: add it in your settings.")
    return _tradier_client(tradier_base_url(mode), token, account.tradier_account_id)


@lru_cache(maxsize=256)
def _tradier_client(base_url: str, token: str, account_id: str) -> TradierClient:
    """One client per account and token in each process, so its connection pool is reused.
    A new token (rotated or replaced) makes a new client."""
    return TradierClient(base_url=base_url, token=token, account_id=account_id)
