"""Which broker an account's orders go to: the one place that decides, and guards live trading."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from django.conf import settings

from .base import (
    BrokerAuthError,
    BrokerError,
    BrokerProvider,
    Order,
    OrderRejected,
    OrderRequest,
    SpreadOrderRequest,
    is_live_tag,
)
from .market import Market
from .models import BrokerMode
from .paper import FillRules, LocalPaperBroker
from .tradier import TradierClient


class BrokerAccount(Protocol):
    """What the factory reads of an account's settings (trades.AccountSettings has it all)."""

    owner_id: int
    broker_mode: str
    tradier_account_id: str
    account_balance: Decimal
    commission_rate: Decimal  # per contract, charged by the local paper broker

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
        rules = replace(FillRules.from_settings(), commission_per_contract=account.commission_rate)
        return LocalPaperBroker(account.owner_id, starting_cash=account.account_balance, market=market, rules=rules)
    if mode == BrokerMode.TRADIER_LIVE and not settings.ALLOW_LIVE_TRADING:
        raise LiveTradingDisabled("Live trading is switched off on this server (ALLOW_LIVE_TRADING).")
    if mode == BrokerMode.TRADIER_SANDBOX and not settings.ALLOW_TRADIER_SANDBOX:
        raise BrokerError("The Tradier sandbox is switched off on this server (ALLOW_TRADIER_SANDBOX).")
    token = account.broker_token(mode)
    if not token:
        raise BrokerAuthError(f"No {mode.label} token is set: add one in your settings.")
    if not account.tradier_account_id:
        raise BrokerError("No Tradier account id is set: add it in your settings.")
    client = _tradier_client(tradier_base_url(mode), token, account.tradier_account_id)
    return LiveBroker(client, account_id=account.tradier_account_id) if mode == BrokerMode.TRADIER_LIVE else client


@lru_cache(maxsize=256)
def _tradier_client(base_url: str, token: str, account_id: str) -> TradierClient:
    """One client per account and token in each process, so its connection pool is reused.
    A new token (rotated or replaced) makes a new client."""
    return TradierClient(base_url=base_url, token=token, account_id=account_id)


live_log = logging.getLogger("brokers.live")


class LiveOrderUntagged(OrderRejected):
    """Refused before it was sent: an order to the live broker must carry a `live-` tag."""


class LiveBroker:
    """The live (real-money) broker: every order it places or cancels is logged as LIVE, and it
    refuses to send an order whose tag does not say `live-`, so no real order can go out looking
    like a paper one. Reads pass straight through. Log lines name tags, order ids and symbols,
    never the token or the account number."""

    live = True

    def __init__(self, inner: BrokerProvider, *, account_id: str = "") -> None:
        self._inner = inner
        self._account_id = account_id
        self.supports_otoco = inner.supports_otoco

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def place_order(self, request: OrderRequest) -> Order:
        return self._send("place_order", [request], _described([request]), lambda: self._inner.place_order(request))

    def place_oco_order(self, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        return self._send("place_oco_order", [sl_leg, tp_leg], _described([sl_leg, tp_leg]),
                          lambda: self._inner.place_oco_order(sl_leg, tp_leg))

    def place_otoco_order(self, entry: OrderRequest, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        return self._send("place_otoco_order", [entry, sl_leg, tp_leg], _described([entry, sl_leg, tp_leg]),
                          lambda: self._inner.place_otoco_order(entry, sl_leg, tp_leg))

    def place_spread_order(self, request: SpreadOrderRequest) -> Order:
        """Guarded like every placement: without it, `__getattr__` would hand the call straight
        to the client, unlogged and with no `live-` tag check."""
        legs = ", ".join(f"{leg.side.value} {leg.quantity} {leg.symbol}" for leg in request.legs)
        price = f" {request.price}" if request.price is not None else ""
        described = (f"{request.order_class} {request.price_type.value}{price} {request.underlying}: {legs} "
                     f"({request.tag})")
        return self._send("place_spread_order", [request], described,
                          lambda: self._inner.place_spread_order(request))

    def cancel_order(self, order_id: str) -> Order:
        live_log.warning("LIVE cancel of order %s", order_id, extra={"live": True, "order_id": order_id})
        try:
            order = self._inner.cancel_order(order_id)
        except BrokerError as error:  # a real order may still be working: say so as loudly as a placement
            live_log.error("LIVE cancel of order %s failed: %s", order_id, self._told(error),
                           extra={"live": True, "order_id": order_id})
            raise
        live_log.warning("LIVE order %s (%s) is %s", order.id, order.tag or "-", order.status.value,
                         extra={"live": True, "order_id": order.id, "tag": order.tag})
        return order

    def modify_stop(self, order_id: str, stop_price: Decimal) -> Order:
        live_log.warning("LIVE stop of order %s moves to %s", order_id, stop_price,
                         extra={"live": True, "order_id": order_id})
        try:
            order = self._inner.modify_stop(order_id, stop_price)
        except BrokerError as error:
            live_log.error("LIVE stop move of order %s failed: %s", order_id, self._told(error),
                           extra={"live": True, "order_id": order_id})
            raise
        live_log.warning("LIVE order %s (%s) is %s, stop %s", order.id, order.tag or "-", order.status.value,
                         order.stop_price, extra={"live": True, "order_id": order.id, "tag": order.tag})
        return order

    def _send(self, call: str, requests: list[OrderRequest | SpreadOrderRequest], described: str, send) -> Order:
        head = requests[0]
        if not all(is_live_tag(request.tag) for request in requests):
            raise LiveOrderUntagged(f"refused to send {head.tag} to the live broker: live orders are tagged live-")
        live_log.warning("LIVE %s: %s", call, described, extra={"live": True, "tag": head.tag})
        try:
            order = send()
        except BrokerError as error:
            live_log.error("LIVE %s %s failed: %s", call, head.tag, self._told(error),
                           extra={"live": True, "tag": head.tag})
            raise
        live_log.warning("LIVE order %s (%s) is %s", order.id, head.tag, order.status.value,
                         extra={"live": True, "order_id": order.id, "tag": head.tag})
        return order

    def _told(self, error: BrokerError) -> str:
        """The broker's message without the account number (Tradier's request paths carry it)."""
        text = str(error)
        return text.replace(self._account_id, "<account>") if self._account_id else text


def _described(requests: list[OrderRequest]) -> str:
    return ", ".join(f"{r.side.value} {r.quantity} {r.option_symbol} {r.order_type.value} ({r.tag})" for r in requests)
