"""Tradier's brokerage REST API, spoken faithfully, quirks and all.

The facts come from Tradier's own reference, https://documentation.tradier.com/brokerage-api.
What this client adds to a plain HTTP wrapper, and why:

* Place-and-confirm. Tradier answers a placement with 200 `{"status": "ok"}` before its back
  office has looked at the order, which may then be rejected. So every placement polls the order
  (bounded, with short growing pauses) until it leaves `pending`; `rejected` raises
  `OrderRejected` with Tradier's `reason_description`.
* Idempotent placement. Every order carries a tag. A POST that times out may or may not have
  created the order, so it is "unknown", not "failed": the account's orders are searched for the
  tag, and the POST is sent again only if the tag is absent. A POST is never retried blindly.
* Reads (and cancels, which are idempotent) are retried on 429, 5xx, timeouts and dropped
  connections, with exponential backoff and jitter. 401 is never retried: the token is wrong,
  expired, or meant for the other environment. A maintenance page (503 or HTML) is not retried
  either: it lasts minutes, not milliseconds.
* One `RateLimiter` per token, shared through Redis by every process.
* Stops move in place (`modify_stop`, Tradier's `PUT /orders/{id}`), each one first spending one
  of the account's modification budget. Whether Tradier lets a leg of a working OCO be modified,
  and whether the order keeps its id, are unconfirmed: a refusal raises `StopModifyRefused` (the
  caller cancels and replaces instead), and the answer's id, read back, is the one returned.
* Spreads (`place_spread_order`: `class=multileg`, or `combo` with a stock leg) go through the
  same placement. The parent's own fill fields are undocumented for spreads, so its units and
  net fill are read from its legs; each leg keeps its own side, fill and status (docs/spreads.md).
* 403 is not 401: a refused token (`BrokerAuthError`) wants a new one; a forbidden request
  (`BrokerForbidden`) wants the account fixed at Tradier, and is never retried either.
* The token lives only in the session's headers; it is never logged, never put in an exception
  and never shown by `repr`. Exceptions are raised without their `requests` cause, whose request
  object would carry the header.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from brokers.base import (
    SPREAD_CLASSES,
    AccountBalance,
    BrokerAuthError,
    BrokerError,
    BrokerForbidden,
    BrokerMaintenance,
    BrokerRateLimited,
    BrokerUnavailable,
    Fill,
    Greeks,
    OptionChainEntry,
    Order,
    OrderDuration,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    SpreadOrderRequest,
    SpreadPriceType,
    StockSide,
    StopModifyOutcomeUnknown,
    StopModifyRefused,
    spread_units,
)
from brokers.ratelimit import MARKET_DATA, STANDARD, TRADING, RateLimiter, limits_for

log = logging.getLogger(__name__)

# Statuses outside the documented eight: the stream's extras and Lean's `submitted`.
_STATUSES = {status.value: status for status in OrderStatus} | {
    "cancelled": OrderStatus.CANCELED,
    "submitted": OrderStatus.PENDING,
    "calculated": OrderStatus.OPEN,
    "accepted_for_bidding": OrderStatus.OPEN,
    "held": OrderStatus.OPEN,
}
_LIVE_OR_FILLED = frozenset({OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED})
_QUOTE_CHUNK = 50  # symbols per quotes request, to keep URLs short
_MAX_ORDER_PAGES = 50



# How many times an uncertain placement's tag is looked up before the order is sent again.
LOOKUPS_BEFORE_RESEND = 3

@dataclass(frozen=True)
class RetryPolicy:
    """Reads only. Delays grow as base·2ⁿ, capped, each drawn from its upper half (jitter)."""

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, retry: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class ConfirmPolicy:
    """How long a placement waits for Tradier to decide: about 3 s in all by default; and how long,
    in all, it may wait for a rate-limit window to reset before it gives up (`throttled_wait`)."""

    attempts: int = 8
    first_delay: float = 0.1
    max_delay: float = 1.0
    throttled_wait: float = 15.0


class TradierRequestError(BrokerError):
    """Tradier refused a request (4xx, or 200 carrying `errors`); `errors` are its own words."""

    def __init__(self, message: str, *, status: int, errors: tuple[str, ...]) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


class _ServerError(BrokerUnavailable):
    """A 5xx that may be gone in a moment (unlike maintenance); a POST that got one is unknown."""


class _Ambiguous(Exception):
    """A placement whose outcome we do not know."""


class TradierClient:
    """One account at one Tradier environment; implements `BrokerProvider`."""

    supports_otoco = True

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        account_id: str,
        limiter: RateLimiter | None = None,
        timeout: float | tuple[float, float] = (3.05, 10.0),
        retry: RetryPolicy | None = None,
        confirm: ConfirmPolicy | None = None,
        orders_page_size: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        modify_budget_per_minute: int | None = None,
    ) -> None:
        if not token:
            raise BrokerAuthError("No Tradier token is configured for this account.")
        self._base_url = base_url.rstrip("/")
        self._account_id = account_id
        self._scrub_text = token
        self._limiter = limiter or RateLimiter(token, limits=limits_for(base_url))
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._confirm = confirm or ConfirmPolicy()
        self._page_size = orders_page_size
        self._sleep = sleep
        self._modify_budget = (settings.TRADIER_MODIFY_BUDGET_PER_MINUTE if modify_budget_per_minute is None
                               else modify_budget_per_minute)
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def __repr__(self) -> str:
        # The account number identifies the trader's brokerage account: scrubbed like paths are.
        return f"<TradierClient {self._base_url} account={'…' if self._account_id else 'none'}>"

    def close(self) -> None:
        self._session.close()

    # -- market data ---------------------------------------------------------------------------

    def get_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """Unknown symbols are simply missing from the result (Tradier lists them as unmatched)."""
        rows = _read_quotes(self, symbols, per_request=_QUOTE_CHUNK, greeks=True)
        return {symbol: row.quote for symbol, row in rows.items()}

    def get_option_chain(self, symbol: str, expiry: date) -> list[OptionChainEntry]:
        params = {"symbol": symbol, "expiration": expiry.isoformat(), "greeks": "true"}
        body = self._read("GET", "/markets/options/chains", params, MARKET_DATA)
        return [_chain_entry(raw) for raw in _items(body.get("options"), "option")]

    # -- account -------------------------------------------------------------------------------

    def get_positions(self) -> list[Position]:
        body = self._read("GET", self._account_path("positions"), None, STANDARD)
        return [_position(raw) for raw in _items(body.get("positions"), "position")]

    def get_account_balance(self) -> AccountBalance:
        body = self._read("GET", self._account_path("balances"), None, STANDARD)
        raw = body.get("balances")
        if not isinstance(raw, dict):
            raise BrokerError("Tradier's balances answer had no balances.")
        account_type = str(raw.get("account_type") or "")
        detail = raw.get(account_type) if isinstance(raw.get(account_type), dict) else {}
        total_cash = _money(raw.get("total_cash"))
        buying_power = _dec(detail.get("option_buying_power"))
        if buying_power is None:
            buying_power = _dec(detail.get("cash_available"))  # cash accounts
        return AccountBalance(
            account_number=str(raw.get("account_number") or self._account_id),
            account_type=account_type,
            total_equity=_money(raw.get("total_equity")),
            total_cash=total_cash,
            option_buying_power=total_cash if buying_power is None else buying_power,
            market_value=_money(raw.get("market_value")),
            open_pl=_money(raw.get("open_pl")),
            close_pl=_money(raw.get("close_pl")),
            pending_orders_count=_int(raw.get("pending_orders_count")) or 0,
        )

    # -- orders: reading -----------------------------------------------------------------------

    def get_order(self, order_id: str) -> Order:
        body = self._read("GET", self._account_path(f"orders/{order_id}"), {"includeTags": "true"}, STANDARD)
        raw = body.get("order")
        if not isinstance(raw, dict):
            raise BrokerError(f"Tradier has no order {order_id}.")
        return _order(raw)

    def get_orders(self) -> list[Order]:
        """Every order of the account's current session.

        Tradier pages this list; pages are followed until a short or repeated one. Older GTC
        orders are not in it (only today's are): watch those with `get_order`.
        """
        orders: dict[str, Order] = {}
        for page in range(1, _MAX_ORDER_PAGES + 1):
            params = {"includeTags": "true", "page": str(page), "limit": str(self._page_size)}
            body = self._read("GET", self._account_path("orders"), params, STANDARD)
            rows = [_order(raw) for raw in _items(body.get("orders"), "order")]
            fresh = [order for order in rows if order.id not in orders]
            orders.update((order.id, order) for order in fresh)
            if len(rows) < self._page_size or not fresh:
                break
        return list(orders.values())

    def find_order_by_tag(self, tag: str) -> Order | None:
        """The newest order with this tag that is live or filled. Rejected, cancelled and
        expired ones are ignored: they are earlier attempts, and placing again is right."""
        matches = [order for order in self.get_orders() if order.tag == tag and order.status in _LIVE_OR_FILLED]
        return max(matches, key=_newest, default=None)

    # -- orders: placing -----------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> Order:
        form = {"class": "option", "duration": request.duration.value, "tag": request.tag, **_leg_fields(request, "")}
        return self._place(form, request.tag)

    def place_oco_order(self, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        """Stop-loss and take-profit as one order: whichever fills cancels the other. The tag is
        the stop-loss leg's (one tag per broker order)."""
        return self._place(_advanced_form("oco", (sl_leg, tp_leg), sl_leg.tag), sl_leg.tag)

    def place_otoco_order(self, entry: OrderRequest, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        """Entry, then both exits as an OCO once it fills, in one request; tagged with the entry's
        tag. Tradier accepts market entries only as separate orders (legs are limit or stop)."""
        return self._place(_advanced_form("otoco", (entry, sl_leg, tp_leg), entry.tag), entry.tag)

    def place_spread_order(self, request: SpreadOrderRequest) -> Order:
        """A multileg order (2–4 option legs) or a combo (one stock leg, one or two option legs),
        all legs at one net price, placed like any other order: tagged, confirmed, found again by
        its tag when the answer is lost, never sent twice blindly. Whether Tradier ever fills such
        an order in part is unconfirmed: each leg is read back with its own fill and status."""
        return self._place(_spread_form(request), request.tag)

    def cancel_order(self, order_id: str) -> Order:
        """Cancelling an order that already filled, expired or was cancelled is not an error:
        the answer is the order as it now stands, and the caller sees what really happened."""
        try:
            self._read("DELETE", self._account_path(f"orders/{order_id}"), None, TRADING)
        except TradierRequestError as error:
            if not any("already in finalized state" in text for text in error.errors):
                raise
            log.info("Order %s was already final when cancelled", order_id)
        return self.get_order(order_id)

    def modify_stop(self, order_id: str, stop_price: Decimal) -> Order:
        """Moves the stop of a working stop order, or of an OCO/OTOCO's stop leg (give the leg's
        id), in place: `PUT /orders/{id}` with only `stop`, since Tradier takes just what changes.

        Spends one of the account's modifications first (`ModifyBudgetSpent`, nothing sent, when
        none is left). Sent once, never retried: a lost answer raises `StopModifyOutcomeUnknown`;
        Tradier's refusal (a 400, or a 200 carrying `errors`) raises `StopModifyRefused`. On
        success the order is read back by the id Tradier answered with, which may be a new one,
        and the stop order is returned as it now stands."""
        if not isinstance(stop_price, Decimal) or not stop_price.is_finite() or stop_price <= 0:
            raise ValueError(f"A stop price must be a positive Decimal, got {stop_price!r}.")
        self._limiter.spend_modification(self._account_id, self._modify_budget)
        path = self._account_path(f"orders/{order_id}")
        self._limiter.acquire(TRADING)
        try:
            response = self._session.put(self._url(path), data={"stop": format(stop_price, "f")},
                                         timeout=self._timeout)
        except requests.RequestException as error:
            if _never_sent(error):
                raise BrokerUnavailable("Could not connect to Tradier; the stop was not modified.") from None
            raise StopModifyOutcomeUnknown(
                f"Tradier did not answer the modification of order {order_id} ({type(error).__name__}): "
                "its stop is the old or the new one.", order_id=order_id) from None
        try:
            body = self._interpret(response, "PUT", path, TRADING)
        except _ServerError as error:
            raise StopModifyOutcomeUnknown(str(error), order_id=order_id) from None
        except TradierRequestError as error:
            reason = "; ".join(error.errors)
            raise StopModifyRefused(reason, order_id=order_id,
                                    finalized="already in finalized state" in reason) from None
        answered = body.get("order") if isinstance(body.get("order"), dict) else {}
        new_id = str(answered["id"]) if answered.get("id") not in (None, "") else order_id
        if new_id != order_id:
            log.info("Tradier replaced order %s with %s to modify its stop", order_id, new_id)
        return self._modified_stop(new_id, stop_price)

    def _modified_stop(self, order_id: str, stop_price: Decimal) -> Order:
        """The stop order after an accepted modification. Should Tradier answer with its parent,
        the stop leg is picked; should the read fail, what we know is returned: it was accepted."""
        try:
            order = self.get_order(order_id)
        except BrokerError as error:
            log.warning("Order %s was modified but cannot be read back yet: %s", order_id, error)
            return Order(id=order_id, status=OrderStatus.OPEN, order_class="option", order_type=OrderType.STOP,
                         stop_price=stop_price)
        if order.legs:
            order = order.leg(OrderType.STOP) or order.leg(OrderType.STOP_LIMIT) or order
        if order.stop_price != stop_price:
            log.warning("Order %s reads back a stop of %s after its move to %s", order.id, order.stop_price,
                        stop_price)
        return order

    def _place(self, form: dict[str, str], tag: str) -> Order:
        """Place, waiting out a rate limit (ours or Tradier's 429) while its window resets within
        `throttled_wait` in all. Safe to send again: a throttled POST created nothing (the limiter
        sent nothing; Tradier refused it whole), and every placement carries its tag. A window
        further off than the time left is not waited for: the caller hears at once that nothing
        was placed."""
        waited = 0.0
        while True:
            try:
                return self._place_once(form, tag)
            except BrokerRateLimited as limited:
                pause = max(limited.retry_after or 0.0, self._confirm.first_delay)
                if waited + pause > self._confirm.throttled_wait:
                    raise BrokerRateLimited(
                        f"Order {tag} was not placed: Tradier's rate limit would hold it {pause:.0f} s more, "
                        f"past the {self._confirm.throttled_wait:.0f} s a placement may wait.", retry_after=pause,
                    ) from None
                log.info("Placement of order %s throttled; sending it again in %.1f s", tag, pause)
                self._sleep(pause)
                waited += pause

    def _place_once(self, form: dict[str, str], tag: str) -> Order:
        order_id = None
        for attempt in (1, 2):
            try:
                order_id = self._submit(form, tag)
                break
            except BrokerRateLimited:
                if attempt == 2:  # the first POST's fate is unknown: never send again blindly
                    raise OrderOutcomeUnknown(
                        f"Order {tag} may or may not have been placed, and Tradier throttled the retry.", tag=tag
                    ) from None
                raise
            except _Ambiguous as unknown:
                log.warning("Placement of order %s: outcome unknown (%s); looking its tag up", tag, unknown)
                try:
                    found = self._look_up_placed(tag)
                except BrokerError as error:
                    raise OrderOutcomeUnknown(
                        f"Order {tag} may or may not have been placed, and the lookup failed: {error}", tag=tag
                    ) from None
                if found is not None:
                    log.info("Order %s was placed after all, as %s", tag, found.id)
                    order_id = found.id
                    break
                if attempt == 2:
                    raise OrderOutcomeUnknown(
                        f"Order {tag} could not be placed: Tradier did not answer, twice.", tag=tag
                    ) from None
                log.info("Order %s is not at the broker; placing it again", tag)
        return self._await_decision(order_id, tag, form["class"])

    def _look_up_placed(self, tag: str) -> Order | None:
        """Look the tag up a few times, backing off, before concluding the order is not there:
        Tradier's order list can lag a POST it accepted, and a wrong "absent" doubles an order."""
        delay = self._confirm.first_delay
        for attempt in range(1, LOOKUPS_BEFORE_RESEND + 1):
            found = self.find_order_by_tag(tag)
            if found is not None or attempt == LOOKUPS_BEFORE_RESEND:
                return found
            self._sleep(delay)
            delay = min(delay * 2, self._confirm.max_delay)
        return None

    def _submit(self, form: dict[str, str], tag: str) -> str:
        path = self._account_path("orders")
        self._limiter.acquire(TRADING)
        try:
            response = self._session.post(self._url(path), data=form, timeout=self._timeout)
        except requests.RequestException as error:
            if _never_sent(error):
                raise BrokerUnavailable("Could not connect to Tradier; the order was not sent.") from None
            raise _Ambiguous(f"{type(error).__name__} on POST {self._shown(path)}") from None
        try:
            body = self._interpret(response, "POST", path, TRADING)
        except _ServerError as error:
            raise _Ambiguous(str(error)) from None
        except TradierRequestError as error:
            raise OrderRejected("; ".join(error.errors), tag=tag) from None
        placed = body.get("order")
        if not isinstance(placed, dict) or placed.get("id") in (None, ""):
            raise _Ambiguous(f"POST {self._shown(path)} answered without an order id")
        return str(placed["id"])

    def _await_decision(self, order_id: str, tag: str, order_class: str) -> Order:
        """Once Tradier has taken the order it exists, whatever happens next: if it cannot be
        read back now, it is reported as what we know it to be, placed and still pending, and
        never as a failure that would tempt the caller to place it again."""
        delay = self._confirm.first_delay
        order = Order(id=order_id, status=OrderStatus.PENDING, order_class=order_class, tag=tag)
        for attempt in range(1, self._confirm.attempts + 1):
            try:
                order = self.get_order(order_id)
            except BrokerError as error:  # unreadable (down, throttled, a 404 or 401 that lags): still placed
                log.warning("Order %s (%s) was placed but cannot be read back yet: %s", order_id, tag, error)
                return order
            refused = next((node for node in (order, *order.legs) if node.status in _REFUSED), None)
            if refused is not None:
                raise OrderRejected(refused.reason or f"status {refused.status}", order_id=order.id, tag=tag)
            if order.status != OrderStatus.PENDING:
                return order
            if attempt < self._confirm.attempts:
                self._sleep(delay)
                delay = min(delay * 2, self._confirm.max_delay)
        log.warning("Order %s (%s) is still pending after %d looks", order_id, tag, self._confirm.attempts)
        return order

    # -- HTTP ----------------------------------------------------------------------------------

    def _account_path(self, rest: str) -> str:
        return f"/accounts/{self._account_id}/{rest}"

    def _url(self, path: str) -> str:
        return f"{self._base_url}{path}"

    def _read(self, method: str, path: str, params: dict | None, group: str, *, data: dict | None = None) -> dict:
        """A request that is safe to repeat; retried on transient failures. `data` is a form body
        (a read sent as POST because its parameters would not fit in a URL)."""
        failure: BrokerError | None = None
        shown = self._shown(path)
        for attempt in range(1, self._retry.attempts + 1):
            if attempt > 1:
                self._sleep(self._retry.delay(attempt - 1))
            self._limiter.acquire(group)  # refusing to wait is final: raise at once
            try:
                response = self._session.request(method, self._url(path), params=params, data=data,
                                                 timeout=self._timeout)
            except requests.Timeout:
                failure = BrokerUnavailable(f"Tradier did not answer {method} {shown} in time.")
            except requests.RequestException as error:
                failure = BrokerUnavailable(f"Could not reach Tradier for {method} {shown} ({type(error).__name__}).")
            else:
                try:
                    return self._interpret(response, method, path, group)
                except (_ServerError, BrokerRateLimited) as error:
                    failure = error
            log.info("Tradier %s %s failed (attempt %d of %d): %s", method, shown, attempt, self._retry.attempts,
                     failure)
        raise _public(failure)

    def _interpret(self, response: requests.Response, method: str, path: str, group: str) -> dict:
        status = response.status_code
        self._limiter.observe(group, response.headers)
        body = _json(response)
        where = f"{method} {self._shown(path)}"
        log.debug("Tradier %s -> %s", where, status)
        fault = _fault_text(body)
        if status == 403 and "access token" not in fault.lower():
            detail = fault or "; ".join(_errors(body or {})) or "no detail"
            log.warning("Tradier forbade %s (403): %s", where, self._scrub(detail))
            raise BrokerForbidden(self._scrub(f"Tradier forbade {where} (403: {detail})."))
        if status in (401, 403) or "access token" in fault.lower():
            detail = fault or "no detail"
            raise BrokerAuthError(self._scrub(f"Tradier refused the token on {where} ({status}: {detail})."))
        if status == 429 or (status == 400 and "quota" in (fault + response.text[:500]).lower()):
            wait = self._limiter.throttled(group, response.headers)
            raise BrokerRateLimited(f"Tradier rate limit reached on {where}.", retry_after=wait)
        if status == 503 or (body is None and _is_html(response)):
            raise BrokerMaintenance(f"Tradier is unavailable (maintenance page) on {where}: HTTP {status}.")
        if status >= 500:
            raise _ServerError(f"Tradier failed on {where}: HTTP {status}.")
        if body is None:
            raise BrokerError(f"Tradier answered {where} with HTTP {status} but no JSON.")
        errors = _errors(body)
        if status >= 400 or errors:
            errors = errors or (fault or f"HTTP {status}",)
            errors = tuple(self._scrub(text) for text in errors)
            raise TradierRequestError(f"Tradier refused {where}: {'; '.join(errors)}", status=status, errors=errors)
        return body

    def _shown(self, path: str) -> str:
        """The path as messages and logs name it: `/accounts/…/orders`. Broker errors travel far
        (sync warnings, a trade's status_reason, the auth-failure webhook); the account number
        identifies the trader's brokerage account and has no business there."""
        return path.replace(f"/accounts/{self._account_id}/", "/accounts/…/") if self._account_id else path

    def _scrub(self, text: str) -> str:
        """Belt and braces: should Tradier ever echo the token (or the account number), it stops here."""
        text = text.replace(self._scrub_text, "[token]") if self._scrub_text else text
        return text.replace(self._account_id, "…") if self._account_id else text


_REFUSED = frozenset({OrderStatus.REJECTED, OrderStatus.ERROR})


def _never_sent(error: requests.RequestException) -> bool:
    """True only when no connection was ever made (refused, or timed out while connecting), so
    not a byte of the order left: anything later may have reached Tradier."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _public(failure: BrokerError | None) -> BrokerError:
    if isinstance(failure, _ServerError):
        return BrokerUnavailable(str(failure))
    return failure or BrokerUnavailable("Tradier could not be reached.")


# --- Request building -------------------------------------------------------------------------


def _advanced_form(order_class: str, legs: tuple[OrderRequest, ...], tag: str) -> dict[str, str]:
    """Indexed legs. Durations go per leg when they differ (a day entry with GTC exits), since
    Tradier takes `duration[i]` only without a top-level `duration`; its own rules then decide."""
    form = {"class": order_class, "tag": tag}
    same_duration = len({leg.duration for leg in legs}) == 1
    if same_duration:
        form["duration"] = legs[0].duration.value
    for index, leg in enumerate(legs):
        form.update(_leg_fields(leg, f"[{index}]"))
        if not same_duration:
            form[f"duration[{index}]"] = leg.duration.value
    return form


def _spread_form(request: SpreadOrderRequest) -> dict[str, str]:
    """Tradier's multileg/combo body: one underlying, type and net price; per leg `side[i]` and
    `quantity[i]`, plus `option_symbol[i]` for an option leg. A combo's stock leg goes first
    (index 0, `quantity[0]` in shares), as Tradier's combo order expects."""
    form = {"class": request.order_class, "symbol": request.underlying, "type": request.price_type.value,
            "duration": request.duration.value, "tag": request.tag}
    if request.price is not None:
        form["price"] = format(request.price, "f")
    legs = sorted(request.legs, key=lambda leg: not leg.is_stock)  # stable: option legs keep their order
    for index, leg in enumerate(legs):
        if not leg.is_stock:
            form[f"option_symbol[{index}]"] = leg.symbol
        form[f"side[{index}]"] = leg.side.value
        form[f"quantity[{index}]"] = str(leg.quantity)
    return form


def _leg_fields(request: OrderRequest, suffix: str) -> dict[str, str]:
    fields = {
        f"symbol{suffix}": request.underlying,
        f"option_symbol{suffix}": request.option_symbol,
        f"side{suffix}": request.side.value,
        f"quantity{suffix}": str(request.quantity),
        f"type{suffix}": request.order_type.value,
    }
    if request.limit_price is not None:
        fields[f"price{suffix}"] = format(request.limit_price, "f")
    if request.stop_price is not None:
        fields[f"stop{suffix}"] = format(request.stop_price, "f")
    return fields


# --- Response parsing -------------------------------------------------------------------------


def _json(response: requests.Response) -> dict | None:
    """The body as JSON with exact decimals, or None for HTML, XML or garbage."""
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _is_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "")
    return "html" in content_type or response.text[:200].lstrip().lower().startswith(("<!doctype html", "<html"))


def _fault_text(body: dict | None) -> str:
    fault = body.get("fault") if body else None
    return str(fault.get("faultstring") or "") if isinstance(fault, dict) else ""


def _errors(body: dict) -> tuple[str, ...]:
    errors = body.get("errors")
    if not errors or errors == "null":
        return ()
    if isinstance(errors, dict):
        return tuple(str(text) for text in _as_list(errors.get("error")))
    return tuple(str(text) for text in _as_list(errors))


def _as_list(value) -> list:
    """Tradier's collections: a list, a bare object when there is one, null or "null" when none."""
    if value is None or value == "null" or value == "" or value == {}:
        return []
    return value if isinstance(value, list) else [value]


def _items(node, key: str) -> list:
    return _as_list(node.get(key)) if isinstance(node, dict) else []


def _dec(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _money(value) -> Decimal:
    number = _dec(value)
    return Decimal(0) if number is None else number


def _int(value) -> int | None:
    """Quantities arrive as floats (`1.00000000`); a count must be whole."""
    number = _dec(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise BrokerError(f"Tradier sent a fractional count {number} where a whole number was expected.")
    return int(number)


def _iso(value) -> datetime | None:
    """ISO times; those without a zone (greeks' `updated_at`) are UTC, as ORATS stamps them."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _epoch(value) -> datetime | None:
    """Quote dates are epoch milliseconds; the clock's are seconds; 0 means never."""
    number = _dec(value)
    if number is None or number <= 0:
        return None
    seconds = number / 1000 if number > Decimal("1e11") else number
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def _enum(kind, value):
    try:
        return kind(value)
    except ValueError:
        return None


def _status(value) -> OrderStatus:
    status = _STATUSES.get(str(value or "").lower())
    if status is None:
        log.warning("Unknown Tradier order status %r; treating it as open", value)
        return OrderStatus.OPEN
    return status


def _order(raw: dict) -> Order:
    legs = tuple(_order(leg) for leg in _as_list(raw.get("leg")) if isinstance(leg, dict))
    filled = _int(raw.get("exec_quantity")) or 0
    average = _dec(raw.get("avg_fill_price"))
    updated = _iso(raw.get("transaction_date"))
    # avg_fill_price is 0.0 while submitting and null while working: a price only once something
    # filled. Once it has, 0.00 is a price (a worthless wing sold to close), not a missing one.
    fill = Fill(quantity=filled, price=average, at=updated) if filled > 0 and average is not None else None
    order = Order(
        id=str(raw.get("id")),
        status=_status(raw.get("status")),
        order_class=str(raw.get("class") or ""),
        tag=raw.get("tag") or None,
        option_symbol=raw.get("option_symbol") or None,
        underlying=raw.get("symbol") or None,
        side=_side(raw),
        order_type=_enum(OrderType, raw.get("type")),
        duration=_enum(OrderDuration, raw.get("duration")),
        quantity=_int(raw.get("quantity")),
        limit_price=_dec(raw.get("price")),
        stop_price=_dec(raw.get("stop_price")),  # `stop` going out, `stop_price` coming back
        filled_quantity=filled,
        remaining_quantity=_int(raw.get("remaining_quantity")),
        fill=fill,
        reason=raw.get("reason_description") or None,
        created_at=_iso(raw.get("create_date")),
        updated_at=updated,
        legs=legs,
    )
    if order.order_class in SPREAD_CLASSES:
        order = replace(order, price_type=_enum(SpreadPriceType, raw.get("type")))
    return _spread_parent(order) if order.order_class in SPREAD_CLASSES and legs else order


def _spread_parent(order: Order) -> Order:
    """A spread's own quantity and fill, read from its legs: Tradier documents none for the parent
    (its examples say quantity 1 and side `buy` whatever the legs), so they come from what each
    leg says it filled. `quantity` is whole units of the spread (the legs' quantities over their
    greatest common divisor), `filled_quantity` the units every leg has filled, and the fill's
    price the net per share of one unit, debit positive and credit negative, as the local paper
    broker reports it. Legs filled unevenly (should Tradier ever leg a spread) count only their
    whole units here; each leg still says what it filled."""
    if not all(leg.quantity for leg in order.legs):
        return order  # a leg without its quantity: nothing sound to work out, Tradier's word stands
    units = spread_units(leg.quantity for leg in order.legs)
    filled = min(leg.filled_quantity // (leg.quantity // units) for leg in order.legs)
    fill = None
    if filled and all(leg.fill is not None for leg in order.legs):
        paid = sum((leg.fill.price if leg.side and leg.side.is_buy else -leg.fill.price)
                   * (leg.quantity // units) * (100 if leg.option_symbol else 1) for leg in order.legs)
        times = [leg.fill.at for leg in order.legs if leg.fill.at is not None]
        fill = Fill(quantity=filled, price=paid / 100, at=max(times, default=order.updated_at))
    remaining = units - filled if order.status.is_working else 0
    return replace(order, quantity=units, filled_quantity=filled, remaining_quantity=remaining, fill=fill)


def _side(raw: dict) -> OrderSide | StockSide | None:
    """An option side, or an equity order's (a combo's stock leg). A multileg or combo parent
    says `buy` whatever its legs do: its sides are its legs'."""
    side = _enum(OrderSide, raw.get("side"))
    if side is None and raw.get("class") == "equity":
        side = _enum(StockSide, raw.get("side"))
    return side


def _newest(order: Order) -> tuple:
    return (order.created_at or datetime.min.replace(tzinfo=UTC), int(order.id) if order.id.isdigit() else 0)


def _greeks(raw) -> Greeks | None:
    if not isinstance(raw, dict):
        return None
    return Greeks(
        delta=_dec(raw.get("delta")), gamma=_dec(raw.get("gamma")), theta=_dec(raw.get("theta")),
        vega=_dec(raw.get("vega")), rho=_dec(raw.get("rho")), mid_iv=_dec(raw.get("mid_iv")),
        smv_vol=_dec(raw.get("smv_vol")), updated_at=_iso(raw.get("updated_at")),
    )


def _chain_entry(raw: dict) -> OptionChainEntry:
    row = parse_quote(raw)
    return OptionChainEntry(
        symbol=row.symbol,
        underlying=row.underlying or "",
        expiry=date.fromisoformat(str(raw.get("expiration_date"))),
        strike=_money(raw.get("strike")),
        option_type=str(raw.get("option_type") or "").upper(),
        quote=row.quote,
        open_interest=row.open_interest,
    )


def _whole_if_possible(number: Decimal) -> Decimal:
    """`1.00000000` contracts are `1`; a fractional equity position keeps its fraction."""
    return Decimal(int(number)) if number == number.to_integral_value() else number


def _position(raw: dict) -> Position:
    return Position(
        symbol=str(raw.get("symbol")),
        quantity=_whole_if_possible(_dec(raw.get("quantity")) or Decimal(0)),
        cost_basis=_money(raw.get("cost_basis")),
        acquired_at=_iso(raw.get("date_acquired")),
    )


# --- Market data without an account -----------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")  # Tradier's timesales times and their `start`/`end` are Eastern
QUOTES_PER_REQUEST = 500  # Tradier publishes no cap on symbols per quotes request; this stays modest
GET_SYMBOLS_LENGTH = 1000  # a longer comma-joined symbol list goes in a POST form body, not the URL
INTRADAY_INTERVALS = ("1min", "5min", "15min")  # `tick` is time & sales, not bars (and not in the sandbox)
HISTORY_INTERVALS = ("daily", "weekly", "monthly")
SESSION_FILTERS = ("open", "all")


@dataclass(frozen=True)
class MarketQuote:
    """One row of `/markets/quotes` or `/markets/options/chains`: the broker `Quote` plus what a
    market-data reader needs besides (the instrument's kind, an option's underlying and open
    interest, the previous close)."""

    quote: Quote
    kind: str  # Tradier's `type`: stock | etf | index | option | mutual_fund
    underlying: str | None = None  # options only
    open_interest: int | None = None  # options only
    prevclose: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.quote.symbol


@dataclass(frozen=True)
class IntradayBar:
    """A `/markets/timesales` bar; `start` is aware UTC (Tradier writes it in Eastern time)."""

    start: datetime
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    volume: int | None
    vwap: Decimal | None


@dataclass(frozen=True)
class DailyBar:
    """A `/markets/history` bar: a trading day (or the first day of a week or month)."""

    day: date
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    volume: int | None


class TradierMarketData:
    """Tradier's `/markets` endpoints for a token that needs no account (a read-only market-data
    token serves the whole monitor cycle).

    It speaks through a `TradierClient` that has no account and makes only `/markets` requests,
    so everything the broker client does holds here too: one pooled session, retries with backoff
    and jitter on reads, quirk-tolerant parsing straight to Decimal, 401 → `BrokerAuthError` with
    no retry, a maintenance page → `BrokerUnavailable`, the token in no message, and the same
    Redis buckets (`market_data` group) as any broker client holding the same token.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        limiter: RateLimiter | None = None,
        timeout: float | tuple[float, float] = (3.05, 10.0),
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        symbols_per_request: int = QUOTES_PER_REQUEST,
    ) -> None:
        self._http = TradierClient(
            base_url=base_url, token=token, account_id="", limiter=limiter, timeout=timeout, retry=retry, sleep=sleep
        )
        self._base_url = base_url.rstrip("/")
        self._per_request = max(1, symbols_per_request)

    def __repr__(self) -> str:
        return f"<TradierMarketData {self._base_url}>"

    def close(self) -> None:
        self._http.close()

    def quotes(self, symbols: Iterable[str], *, greeks: bool = True) -> dict[str, MarketQuote]:
        """Quotes for stocks, indices and OCC option symbols alike, `symbols_per_request` at a time;
        a list too long for a URL is sent as a POST form. Unknown symbols are left out."""
        return _read_quotes(self._http, symbols, per_request=self._per_request, greeks=greeks)

    def option_chain(self, underlying: str, expiry: date, *, greeks: bool = True) -> list[MarketQuote]:
        """Every contract of one expiry; empty (not an error) when Tradier lists none."""
        params = {"symbol": underlying.upper(), "expiration": expiry.isoformat(), "greeks": str(greeks).lower()}
        body = self._http._read("GET", "/markets/options/chains", params, MARKET_DATA)
        return [parse_quote(raw) for raw in _items(body.get("options"), "option") if isinstance(raw, dict)]

    def expirations(self, underlying: str) -> list[date]:
        """The listed expiries of one underlying (every root: SPX and SPXW alike), soonest first;
        empty when Tradier lists none (`{"expirations": null}`). A single date comes back bare."""
        params = {"symbol": underlying.upper(), "includeAllRoots": "true"}
        body = self._http._read("GET", "/markets/options/expirations", params, MARKET_DATA)
        days = set()
        for value in _items(body.get("expirations"), "date"):
            try:
                days.add(date.fromisoformat(str(value)[:10]))
            except ValueError:
                continue
        return sorted(days)

    def timesales(self, symbol: str, interval: str, start: datetime, end: datetime, *,
                  session_filter: str = "open") -> list[IntradayBar]:
        """Intraday bars from `start` to `end` (aware datetimes, sent to the minute in Eastern time,
        `end` rounded up), oldest first. Tradier keeps 1min bars 20 days, 5/15min 40 (open session)."""
        if interval not in INTRADAY_INTERVALS:
            raise ValueError(f"Interval {interval!r} is not one of {', '.join(INTRADAY_INTERVALS)}.")
        if session_filter not in SESSION_FILTERS:
            raise ValueError(f"session_filter {session_filter!r} is not one of {', '.join(SESSION_FILTERS)}.")
        params = {
            "symbol": symbol.upper(), "interval": interval, "session_filter": session_filter,
            "start": _eastern_minute(start), "end": _eastern_minute(end, round_up=True),
        }
        body = self._http._read("GET", "/markets/timesales", params, MARKET_DATA)
        bars = [_intraday_bar(raw) for raw in _items(body.get("series"), "data") if isinstance(raw, dict)]
        return sorted((bar for bar in bars if bar is not None), key=lambda bar: bar.start)

    def history(self, symbol: str, start: date, end: date, *, interval: str = "daily",
                session_filter: str = "open") -> list[DailyBar]:
        """Daily (or weekly, monthly) bars for days `start` to `end` inclusive, oldest first."""
        if interval not in HISTORY_INTERVALS:
            raise ValueError(f"Interval {interval!r} is not one of {', '.join(HISTORY_INTERVALS)}.")
        params = {"symbol": symbol.upper(), "interval": interval, "start": start.isoformat(), "end": end.isoformat(),
                  "session_filter": session_filter}
        body = self._http._read("GET", "/markets/history", params, MARKET_DATA)
        bars = [_daily_bar(raw) for raw in _items(body.get("history"), "day") if isinstance(raw, dict)]
        return sorted((bar for bar in bars if bar is not None), key=lambda bar: bar.day)


def _eastern_minute(moment: datetime, *, round_up: bool = False) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive; Tradier's market data takes aware datetimes.")
    local = moment.astimezone(NEW_YORK)
    floored = local.replace(second=0, microsecond=0)
    if round_up and floored != local:
        floored = (floored.astimezone(UTC) + timedelta(minutes=1)).astimezone(NEW_YORK)
    return floored.strftime("%Y-%m-%d %H:%M")


def _count(value) -> int | None:
    """Market-data counts (volume, open interest): one odd value must not sink a whole batch."""
    number = _dec(value)
    return int(number) if number is not None and number == number.to_integral_value() else None


def _read_quotes(http: TradierClient, symbols: Iterable[str], *, per_request: int,
                 greeks: bool) -> dict[str, MarketQuote]:
    """`/markets/quotes`, `per_request` symbols at a time (a POST form once a list is too long for
    a URL), for the broker client and the market-data reader alike. Unknown symbols are left out."""
    wanted = list(dict.fromkeys(symbol.strip().upper() for symbol in symbols if symbol and symbol.strip()))
    found: dict[str, MarketQuote] = {}
    for start in range(0, len(wanted), per_request):
        fields = {"symbols": ",".join(wanted[start:start + per_request]), "greeks": str(greeks).lower()}
        if len(fields["symbols"]) <= GET_SYMBOLS_LENGTH:
            body = http._read("GET", "/markets/quotes", fields, MARKET_DATA)
        else:
            body = http._read("POST", "/markets/quotes", None, MARKET_DATA, data=fields)
        for raw in _items(body.get("quotes"), "quote"):
            if isinstance(raw, dict) and raw.get("symbol"):
                quote = parse_quote(raw)
                found[quote.symbol] = quote
    return found


def parse_quote(raw: dict) -> MarketQuote:
    """One row of a Tradier quote payload (`/markets/quotes` or `/markets/options/chains`): the one
    place it is read, for the broker's quotes and chains and for the market-data provider alike.
    Numbers go straight to Decimal; an odd count (fractional, missing) is None rather than sinking
    the whole batch; epoch times in milliseconds or seconds; symbols upper case."""
    quote = Quote(
        symbol=str(raw.get("symbol")).upper(),
        bid=_dec(raw.get("bid")),
        ask=_dec(raw.get("ask")),
        last=_dec(raw.get("last")),
        bid_size=_count(raw.get("bidsize")),
        ask_size=_count(raw.get("asksize")),
        volume=_count(raw.get("volume")),
        bid_at=_epoch(raw.get("bid_date")),
        ask_at=_epoch(raw.get("ask_date")),
        traded_at=_epoch(raw.get("trade_date")),
        greeks=_greeks(raw.get("greeks")),
        open_interest=_count(raw.get("open_interest")),
    )
    return MarketQuote(
        quote=quote,
        kind=str(raw.get("type") or "").lower(),
        underlying=str(raw.get("underlying") or raw.get("root_symbol") or "").upper() or None,
        open_interest=_count(raw.get("open_interest")),
        prevclose=_dec(raw.get("prevclose")),
    )


def _eastern(value) -> datetime | None:
    """Timesales `time`: ISO without a zone, meaning New York."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment.replace(tzinfo=NEW_YORK) if moment.tzinfo is None else moment).astimezone(UTC)


def _intraday_bar(raw: dict) -> IntradayBar | None:
    start = _eastern(raw.get("time")) or _epoch(raw.get("timestamp"))
    if start is None:
        return None
    return IntradayBar(
        start=start, open=_dec(raw.get("open")), high=_dec(raw.get("high")), low=_dec(raw.get("low")),
        close=_dec(raw.get("close")), volume=_count(raw.get("volume")), vwap=_dec(raw.get("vwap")),
    )


def _daily_bar(raw: dict) -> DailyBar | None:
    try:
        day = date.fromisoformat(str(raw.get("date"))[:10])
    except ValueError:
        return None
    return DailyBar(
        day=day, open=_dec(raw.get("open")), high=_dec(raw.get("high")), low=_dec(raw.get("low")),
        close=_dec(raw.get("close")), volume=_count(raw.get("volume")),
    )
