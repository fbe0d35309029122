"""A fake Tradier brokerage over real HTTP, for tests of the Tradier client.

It behaves like the sandbox for everything our client uses, quirks included, because a client
tested against mocked functions only proves it agrees with its author. Both environments are
served by one server under two base paths, `/sandbox/v1` and `/live/v1`, so that a sandbox token
sent to the live URL gets the 401 it would get from Tradier.

Fills are driven by the quotes a test sets (`set_quote`), never by a clock: market orders fill at
the ask (buys) or bid (sells), limits when the book reaches them, stops when the book trades
through them — at the book, so a gap fills worse than the stop. A new order stays `pending` for
`pending_views` looks at it, then opens or is rejected (buying power, position), as the sandbox
does asynchronously. `end_of_day()` expires day orders; GTC ones survive.

Switches (`inject`) make the next matching request misbehave: `hang_after` (the order is recorded,
then the answer comes too late), `hang_before` (the answer comes too late and nothing was done: the
connection closes unanswered), `drop` (the connection closes before anything happens), `500`,
`html_503`, `429`, `quota_400`; narrowed to one order class (`order_class="oco"`), and a `429`
with Tradier's rate-limit headers (`retry_in=` seconds to the window's reset). `maintenance =
True` serves the HTML page to everything. `next_session()` starts a new day: the order list then
shows only that day's orders, and older ones (a GTC exit) are readable by id only.

Modifying an order (`PUT /orders/{id}`: type, duration, price, stop) has two UNCONFIRMED points,
each a switch: whether a leg of a working OCO/OTOCO may be modified (`modify_advanced_leg`:
"in_place", "refused" with a 400, "refused_200" with a 200 carrying `errors`), and whether the
order keeps its id (`modify_gives_new_id`: the old order is cancelled, a copy answers).

`forbid(account_id)` makes the account's requests answer 403 (all of them, or with
`trading_only` just the order writes) until `allow(account_id)`: a token Tradier knows but
will not let act, unlike the 401 of a token it does not.

Two broker behaviours for a sell-to-close of contracts that working exit orders already cover
(whether Tradier refuses it is unconfirmed): by default it is accepted, and if both fill the
account goes short, as the sandbox lets it; with `refuse_overcommitted_sells = True` it is
rejected, as many brokers do. Code that closes positions must be right under both.

Market data: `/markets/quotes` (GET, or POST with a form body for long lists), option
expirations (the dates of the option quotes set, `{"expirations": null}` for none), option chains,
`/markets/timesales` and `/markets/history`, in Tradier's shapes (one row is a bare object, none
is JSON null). `expire_option` plays the broker's expiry processing of a held contract (gone, or
gone leaving shares from an exercise or assignment). `set_quote_fields` overrides any field of
a symbol's quote (nulls, an index's `type`, greeks); `add_bars` stores the bars the two history
endpoints serve. `add_token` registers a token that has no account, as a read-only market-data
token does.

Spread orders: `class=multileg` (2–4 option legs) and `class=combo` (leg 0 stock, then 1–2 option
legs), `type` market/debit/credit/even, validated as Tradier documents them (a 400 otherwise).
One unit of a spread is its legs' quantities over their greatest common divisor (a 10-lot
vertical is 10 units of 1×1, a 1×2×1 butterfly one unit); `price` is the net per share of one
unit. All legs fill together at their natural sides (buys at the ask, sells at the bid, a stock
leg's quote is the ticker's) once that net crosses the limit: a debit when it costs at most
`price`, a credit when it brings at least `price`, even when it costs nothing, market at once.
Three UNCONFIRMED points are switches: `spread_parent_fills` (what the parent says it filled:
"net", or "none" at all), `spread_fills` ("atomic": all or nothing; "partial": whole units as the
books' sizes allow; "legged": each leg as its own book allows, a broken spread), and
`spread_refusal` for a downstream refusal (buying power, closing more than is held): "errors_200"
answers the POST with a 200 carrying `errors`, "rejected" accepts it and shows it `rejected` with
its `reason_description` on a later look. A fourth, `zero_bid_closing_sells`: whether a leg sold
to close into a 0.00 bid fills at 0.00 ("fill") or holds the whole spread back ("wait"). A
spread that would leave a short leg uncovered (no long of its right expiring no earlier, held or
in the order; shares cover calls, 100 a contract) is refused as a single sell to open is: the
account is not approved for uncovered writing (`uncovered_writing = True` is one that is).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from brokers.base import SPREAD_CLASSES, spread_units
from brokers.occ import ROOT_UNDERLYINGS, InvalidOptionSymbol, parse_symbol, underlying_of_root
from brokers.paper_spreads import is_covered

SANDBOX = "sandbox"
LIVE = "live"

OPTION_SIDES = ("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
BRACKET_TYPES = ("limit", "stop", "stop_limit")
SPREAD_TYPES = ("market", "debit", "credit", "even")
EQUITY_SIDES = ("buy", "buy_to_cover", "sell", "sell_short")
SPREAD_LEG_KEY = re.compile(r"^(?:option_symbol|side|quantity)\[(\d+)\]$")
UNLIMITED = 10**9
DURATIONS = ("day", "gtc", "pre", "post")
WORKING = ("pending", "open", "partially_filled")
FINAL = ("filled", "expired", "canceled", "rejected", "error")
TAG = re.compile(r"^[A-Za-z0-9-]{1,255}$")
GROUP_BUDGETS = {"standard": 120, "market_data": 120, "trading": 60}
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Tradier - Scheduled Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1><p>Tradier is undergoing scheduled maintenance.</p></body></html>"
)
NOT_ENOUGH_BUYING_POWER = "You do not have enough buying power for this trade."
NEW_YORK = ZoneInfo("America/New_York")
TIMESALES_INTERVALS = ("tick", "1min", "5min", "15min")
HISTORY_INTERVALS = ("daily", "weekly", "monthly")


class _Raw(str):
    """A number written into the JSON exactly as given (long decimals, `1.00000000`)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _qty(value: int | Decimal) -> _Raw:
    return _Raw(f"{Decimal(value):.8f}")


def _money(value: Decimal) -> _Raw:
    return _Raw(f"{value:.24f}")  # Tradier's balances come with absurd precision


def _price(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class FakeQuote:
    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal | None
    size: int | None  # contracts available at the bid/ask; None means unlimited
    at: datetime


@dataclass
class FakePosition:
    id: int
    symbol: str
    quantity: int
    cost_basis: Decimal
    acquired: datetime


@dataclass
class FakeAccount:
    account_id: str
    token: str
    environment: str
    cash: Decimal
    account_type: str = "margin"
    positions: dict[str, FakePosition] = field(default_factory=dict)
    closed_pl: Decimal = Decimal(0)
    forbidden: str | None = None  # `forbid()`: the account's requests answer 403 with this error
    forbidden_as_fault: bool = False  # ... in an Apigee `fault` body instead of `errors`


@dataclass
class FakeOrder:
    id: int
    account_id: str
    order_class: str  # option | oco | otoco | multileg | combo; a spread's legs: option | equity
    duration: str
    tag: str | None = None
    status: str = "pending"
    symbol: str = ""
    option_symbol: str = ""
    side: str = ""
    quantity: int = 0
    type: str = ""
    price: Decimal | None = None
    stop: Decimal | None = None
    exec_quantity: int = 0
    avg_fill_price: Decimal | None = None
    last_fill_price: Decimal | None = None
    last_fill_quantity: int = 0
    reason_description: str | None = None
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    legs: list[FakeOrder] = field(default_factory=list)
    parent: FakeOrder | None = field(default=None, repr=False)
    pending_views: int = 0
    triggered: bool = False  # a stop_limit whose stop has been reached
    active: bool = True  # OTOCO exits wait for their entry to fill
    session: int = 0  # the market session it was placed in: the order list shows the current one's

    @property
    def is_buy(self) -> bool:
        return self.side.startswith("buy")

    @property
    def remaining(self) -> int:
        return self.quantity - self.exec_quantity

    @property
    def instrument(self) -> str:
        """What the order trades: the contract, or for a combo's stock leg the ticker."""
        return self.option_symbol or self.symbol

    @property
    def is_spread(self) -> bool:
        return self.order_class in SPREAD_CLASSES

    @property
    def ratio(self) -> int:
        """A spread leg's quantity in one unit of its spread."""
        return self.quantity // self.parent.quantity


@dataclass
class Fault:
    kind: str
    method: str | None
    path: str | None
    times: int
    order_class: str | None = None  # only placements of this class (`oco`, `option`, …)
    retry_in: float | None = None  # a 429 that says, in Tradier's headers, when the window resets


@dataclass
class RecordedRequest:
    method: str
    environment: str
    path: str  # after the base path, e.g. "/accounts/VA1/orders"
    query: dict[str, str]
    form: dict[str, str]
    content_type: str
    accept: str
    authorized: bool
    token: str = ""  # the bearer token as sent: tests assert which token reached which environment


class _Rejection(Exception):
    """A request the fake refuses: `status` and the broker's error strings."""

    def __init__(self, errors: list[str], status: int = 400) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status


class FakeTradier:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.accounts: dict[str, FakeAccount] = {}
        self.quotes: dict[str, FakeQuote] = {}
        self.orders: dict[int, FakeOrder] = {}
        self.requests: list[RecordedRequest] = []
        self.budgets = dict(GROUP_BUDGETS)
        self._windows: dict[tuple[str, str], list[float]] = {}
        self.expiry_in_seconds = False  # X-Ratelimit-Expiry in epoch seconds instead of ms
        self.epoch_seconds = False  # quote dates in epoch seconds instead of ms
        self.throttle_as_quota_400 = False  # breach answered with 400 "Quota Violation" instead of 429
        self.pending_views = 1
        self.session = 0  # `next_session()` moves on: earlier orders leave the list, stay readable by id
        self.orders_page_size = 25  # Tradier's default `limit`
        self.hang_seconds = 1.0
        self.maintenance = False
        self.market_tokens: dict[str, str] = {}  # token -> environment, for tokens without an account
        self.quote_fields: dict[str, dict] = {}
        self.bars: dict[tuple[str, str], list[dict]] = {}
        self.market_data_empty = None  # what an empty chain/series/history root is: JSON null, or "null"
        self.latency = 0.0  # seconds added to every answer, as a real network would (benchmarks)
        self.refuse_overcommitted_sells = False  # refuse sells of contracts working exits already cover
        # A cancel of an OTOCO whose entry has filled: Tradier's answer is UNCONFIRMED (the reference
        # has none). "cancels_exits": the whole order goes, its working exits too; "refused": the entry
        # is final, so the cancel is refused as "order already in finalized state" and the exits work on.
        self.otoco_cancel_after_entry_fill = "cancels_exits"
        # Modifying (PUT) a leg of a working OCO/OTOCO: whether Tradier allows it is UNCONFIRMED.
        # "in_place": the leg changes; "refused": 400 with `errors`; "refused_200": the downstream
        # refusal Tradier sends as a 200 carrying `errors`.
        self.modify_advanced_leg = "in_place"
        # Whether a modification keeps the order's id is UNCONFIRMED: with True the order is
        # replaced, the old one `canceled`, and the answer carries the new one's id.
        self.modify_gives_new_id = False
        # Spread orders (module docstring): whether Tradier ever fills one in part is UNCONFIRMED.
        self.spread_fills = "atomic"  # "atomic" | "partial" (whole units) | "legged" (each leg alone)
        # How a downstream refusal of a spread comes back: both are documented at some point.
        self.spread_refusal = "errors_200"  # "errors_200" at the POST | "rejected" on a later look
        # What a spread's parent says of its own fills is undocumented: "net" (whole units, their
        # net per share), or "none" (quantity 1, nothing filled, like the examples' bare parent).
        self.spread_parent_fills = "net"
        # Whether a leg sold to close fills into a 0.00 bid (a worthless wing) is UNCONFIRMED:
        # "fill" sells it at 0.00, "wait" holds the spread back until somebody bids.
        self.zero_bid_closing_sells = "fill"
        # The account's option level: False refuses naked writing (a single sell to open, or a
        # spread leaving a short uncovered), True is an account approved for it.
        self.uncovered_writing = False
        self._faults: list[Fault] = []
        self._ids = iter(range(100_001, 10**9))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- server --------------------------------------------------------------------------------

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, environment: str = SANDBOX) -> str:
        return f"http://127.0.0.1:{self.port}/{environment}/v1"

    # -- test controls -------------------------------------------------------------------------

    def add_account(self, *, token: str, account_id: str, cash: Decimal, environment: str = SANDBOX,
                    account_type: str = "margin") -> FakeAccount:
        with self._lock:
            account = FakeAccount(account_id=account_id, token=token, environment=environment, cash=cash,
                                  account_type=account_type)
            self.accounts[account_id] = account
            return account

    def add_position(self, account_id: str, symbol: str, quantity: int, cost_basis: Decimal) -> None:
        with self._lock:
            self.accounts[account_id].positions[symbol] = FakePosition(
                id=next(self._ids), symbol=symbol, quantity=quantity, cost_basis=cost_basis, acquired=_now()
            )

    def expire_option(self, account_id: str, symbol: str, *, delivers_shares: int = 0, at_price: Decimal | None = None,
                      underlying: str = "") -> None:
        """The broker's expiry processing of one held contract (what Tradier reports around expiry
        and assignment is UNCONFIRMED, so each variant is a call): the option leaves the positions
        (expired worthless, or settled in cash: `delivers_shares=0`), and an exercised or assigned
        equity option leaves `delivers_shares` shares of `underlying` (negative: short, from an
        assigned call) bought or sold at `at_price`, the strike."""
        with self._lock:
            account = self.accounts[account_id]
            account.positions.pop(symbol, None)
            if delivers_shares:
                held = account.positions.get(underlying)
                quantity = delivers_shares + (held.quantity if held else 0)
                if quantity == 0:
                    account.positions.pop(underlying, None)
                    return
                account.positions[underlying] = FakePosition(
                    id=next(self._ids), symbol=underlying, quantity=quantity,
                    cost_basis=(at_price or Decimal(0)) * quantity, acquired=_now())

    def set_quote(self, symbol: str, bid: Decimal | str, ask: Decimal | str, *, last: Decimal | str | None = None,
                  size: int | None = None) -> None:
        """Moves the book; every working order on the symbol is matched against it at once."""
        with self._lock:
            self.quotes[symbol] = FakeQuote(
                symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), last=None if last is None else Decimal(last),
                size=size, at=_now(),
            )
            self._match_symbol(symbol)

    def end_of_day(self) -> None:
        """The closing bell: day orders still working expire, GTC orders carry on."""
        with self._lock:
            for order in list(self.orders.values()):
                if order.parent is None:
                    self._expire_day_orders(order)

    def next_session(self) -> None:
        """The close, then a new day: day orders expire, and the order list (`GET /orders`) shows
        only orders placed from now on, as Tradier's does, while `GET /orders/{id}` still reads
        every order, GTC exits of earlier days included."""
        with self._lock:
            self.end_of_day()
            self.session += 1

    def inject(self, kind: str, *, method: str | None = None, path: str | None = None, times: int = 1,
               order_class: str | None = None, retry_in: float | None = None) -> None:
        """`order_class` narrows the fault to placements of that class (the bracket's `oco`, say,
        and not the entry before it). A `429` with `retry_in` carries Tradier's rate-limit headers,
        nothing left and the window resetting in that many seconds; without it, no headers."""
        assert kind in ("hang_after", "hang_before", "drop", "500", "html_503", "429", "quota_400"), kind
        with self._lock:
            self._faults.append(Fault(kind=kind, method=method, path=path, times=times, order_class=order_class,
                                      retry_in=retry_in))

    def forbid(self, account_id: str, reason: str = "AccountDisabled: this account is not permitted to trade",
               *, trading_only: bool = False, as_fault: bool = False) -> None:
        """The account's requests answer 403 until `allow()` (the body of a Tradier 403 is
        UNCONFIRMED: `errors`, or with `as_fault` an Apigee fault). `trading_only` forbids only
        orders being placed, changed or cancelled: reads still answer."""
        with self._lock:
            account = self.accounts[account_id]
            account.forbidden = f"trade:{reason}" if trading_only else reason
            account.forbidden_as_fault = as_fault

    def allow(self, account_id: str) -> None:
        with self._lock:
            self.accounts[account_id].forbidden = None

    def orders_tagged(self, tag: str) -> list[FakeOrder]:
        with self._lock:
            return [order for order in self.orders.values() if order.tag == tag and order.parent is None]

    def order(self, order_id: int | str) -> FakeOrder:
        return self.orders[int(order_id)]

    def add_token(self, token: str, environment: str = LIVE) -> None:
        """A token with no account behind it (a market-data token): `/markets` only."""
        with self._lock:
            self.market_tokens[token] = environment

    def set_quote_fields(self, symbol: str, **fields) -> None:
        """Overrides fields of the symbol's quote JSON as Tradier would send them (None is null).
        `greeks` as a dict is merged into the greeks object (sent only with greeks=true); as None
        it nulls the object. The symbol must have a quote (`set_quote`)."""
        with self._lock:
            self.quote_fields.setdefault(symbol, {}).update(fields)

    def add_bars(self, symbol: str, interval: str, bars) -> None:
        """Bars for `/markets/timesales` (interval 1min/5min/15min; `at` an aware datetime, the
        bar's start) or `/markets/history` (daily/weekly/monthly; `at` a date): tuples
        `(at, open, high, low, close, volume)`, numbers as Decimal, str or None."""
        with self._lock:
            rows = self.bars.setdefault((symbol, interval), [])
            for at, *values in bars:
                rows.append({"at": at, **dict(zip(("open", "high", "low", "close", "volume"), values, strict=True))})
            rows.sort(key=lambda row: row["at"])

    def tokens_seen(self) -> set[tuple[str, str]]:
        """(environment, token) of every request so far: which token reached which base URL."""
        with self._lock:
            return {(request.environment, request.token) for request in self.requests}

    def requests_for(self, method: str, path_part: str = "") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    # -- HTTP ----------------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw_body = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type", "")
        accept = handler.headers.get("Accept", "")
        environment, _, rest = parts.path.lstrip("/").partition("/")
        path = "/" + rest.removeprefix("v1/").rstrip("/") if rest.startswith("v1/") else "/" + rest
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        form = {}
        if raw_body and content_type.startswith("application/x-www-form-urlencoded"):
            form = {key: values[-1] for key, values in parse_qs(raw_body.decode(), keep_blank_values=True).items()}
        token = (handler.headers.get("Authorization") or "").removeprefix("Bearer ").strip()

        with self._lock:
            account_for_token = next((a for a in self.accounts.values() if a.token == token), None)
            token_environment = account_for_token.environment if account_for_token else self.market_tokens.get(token)
            authorized = token_environment is not None and token_environment == environment
            self.requests.append(RecordedRequest(method, environment, path, query, form, content_type, accept,
                                                 authorized, token))
            fault = self._take_fault(method, path, form)

        responder = _Responder(handler, json_wanted="application/json" in accept)
        if self.latency:
            time.sleep(self.latency)
        fault_kind = fault.kind if fault is not None else None
        if fault_kind == "hang_before":  # too late, and never acted on
            time.sleep(self.hang_seconds)
        if fault_kind in ("drop", "hang_before"):
            handler.close_connection = True
            return
        if self.maintenance or fault_kind == "html_503":
            return responder.html(503, MAINTENANCE_PAGE)
        if fault_kind == "500":
            return responder.send(500, {"errors": {"error": "Internal Server Error"}})
        if environment not in (SANDBOX, LIVE):
            return responder.send(404, {"errors": {"error": "Resource not found"}})
        if token_environment is None:
            return responder.send(401, _fault("Invalid Access Token", "keymanagement.service.invalid_access_token"))
        if not authorized:
            return responder.send(401, _fault("Invalid API call as no apiproduct match found",
                                              "keymanagement.service.InvalidAPICallAsNoApiProductMatchFound"))
        forbidden = account_for_token.forbidden if account_for_token else None
        if forbidden and path.startswith("/accounts") and (method != "GET" or not forbidden.startswith("trade:")):
            text = forbidden.removeprefix("trade:")
            body = (_fault(text, "accesscontrol.Forbidden") if account_for_token.forbidden_as_fault
                    else {"errors": {"error": text}})
            return responder.send(403, body)

        group = _group(method, path)
        with self._lock:
            allowed, headers = self._count(token, group)
        if fault is not None and fault.kind in ("429", "quota_400"):  # a refusal out of the blue
            if fault.kind == "quota_400":
                return responder.send(400, _fault("Quota Violation", "policies.ratelimit.QuotaViolation"))
            spent = self._spent_window(group, fault.retry_in) if fault.retry_in is not None else None
            return responder.send(429, {"errors": {"error": "Rate limit exceeded"}}, spent)
        if not allowed:
            if self.throttle_as_quota_400:
                return responder.send(400, _fault("Quota Violation", "policies.ratelimit.QuotaViolation"), headers)
            return responder.send(429, {"errors": {"error": "Rate limit exceeded"}}, headers)

        try:
            with self._lock:
                status, body = self._route(method, path, query, form, content_type, account_for_token)
        except _Rejection as rejection:
            errors = rejection.errors[0] if len(rejection.errors) == 1 else rejection.errors
            status, body = rejection.status, {"errors": {"error": errors}}
        if fault_kind == "hang_after":
            time.sleep(self.hang_seconds)
        responder.send(status, body, headers)

    def _take_fault(self, method: str, path: str, form: dict[str, str]) -> Fault | None:
        for fault in self._faults:
            if ((fault.method in (None, method)) and (fault.path is None or fault.path in path)
                    and fault.order_class in (None, form.get("class"))):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _spent_window(self, group: str, retry_in: float) -> dict[str, str]:
        """Tradier's headers on a refusal: the group's budget all used, the window resetting soon."""
        expiry = time.time() + retry_in
        allowed = self.budgets[group]
        return {"X-Ratelimit-Allowed": str(allowed), "X-Ratelimit-Used": str(allowed), "X-Ratelimit-Available": "0",
                "X-Ratelimit-Expiry": str(int(expiry) if self.expiry_in_seconds else int(expiry * 1000))}

    def _count(self, token: str, group: str) -> tuple[bool, dict[str, str]]:
        """Tradier's windows: a minute from the first request, then a fresh one."""
        now = time.time()
        window = self._windows.get((token, group))
        if window is None or now >= window[0] + 60:
            window = self._windows[(token, group)] = [now, 0]
        allowed = self.budgets[group]
        within = window[1] < allowed
        if within:
            window[1] += 1
        expiry = window[0] + 60
        headers = {
            "X-Ratelimit-Allowed": str(allowed),
            "X-Ratelimit-Used": str(window[1]),
            "X-Ratelimit-Available": str(max(0, allowed - window[1])),
            "X-Ratelimit-Expiry": str(int(expiry) if self.expiry_in_seconds else int(expiry * 1000)),
        }
        return within, headers

    def _route(self, method, path, query, form, content_type, account):
        segments = path.strip("/").split("/")
        if segments[:1] == ["markets"]:
            if method == "GET" and path == "/markets/quotes":
                return 200, self._quotes_body(query.get("symbols", ""), query.get("greeks") == "true")
            if method == "POST" and path == "/markets/quotes":
                if not content_type.startswith("application/x-www-form-urlencoded"):
                    raise _Rejection(["Invalid request: bodies must be application/x-www-form-urlencoded"])
                return 200, self._quotes_body(form.get("symbols", ""), form.get("greeks") == "true")
            if method == "GET" and path == "/markets/options/expirations":
                return 200, self._expirations_body(query)
            if method == "GET" and path == "/markets/options/chains":
                return 200, self._chain_body(query.get("symbol", ""), query.get("expiration", ""))
            if method == "GET" and path == "/markets/timesales":
                return 200, self._timesales_body(query)
            if method == "GET" and path == "/markets/history":
                return 200, self._history_body(query)
            raise _Rejection(["Resource not found"], 404)
        if account is None:
            raise _Rejection(["This token has no account"], 401)
        if segments[:1] != ["accounts"] or len(segments) < 3:
            raise _Rejection(["Resource not found"], 404)
        if segments[1] != account.account_id:
            raise _Rejection([f"Account {segments[1]} is not permitted for this token"], 401)
        resource = segments[2:]
        include_tags = query.get("includeTags") == "true"
        if resource == ["orders"] and method == "POST":
            if not content_type.startswith("application/x-www-form-urlencoded"):
                raise _Rejection(["Invalid request: bodies must be application/x-www-form-urlencoded"])
            order = self._place(account, {k: v for k, v in form.items() if v != ""})
            return 200, {"order": {"id": order.id, "status": "ok", "partner_id": str(uuid.uuid4())}}
        if resource == ["orders"] and method == "GET":
            return 200, self._orders_body(account, query, include_tags)
        if len(resource) == 2 and resource[0] == "orders":
            order = self._find(account, resource[1])
            if method == "GET":
                self._view(order)
                return 200, {"order": self._order_json(order, include_tags)}
            if method == "DELETE":
                return 200, self._cancel(order)
            if method == "PUT":
                if not content_type.startswith("application/x-www-form-urlencoded"):
                    raise _Rejection(["Invalid request: bodies must be application/x-www-form-urlencoded"])
                return 200, self._modify(order, {k: v for k, v in form.items() if v != ""})
        if resource == ["positions"] and method == "GET":
            return 200, self._positions_body(account)
        if resource == ["balances"] and method == "GET":
            return 200, self._balances_body(account)
        raise _Rejection(["Resource not found"], 404)

    # -- orders --------------------------------------------------------------------------------

    def _place(self, account: FakeAccount, form: dict[str, str]) -> FakeOrder:
        order_class = form.get("class")
        tag = form.get("tag")
        if tag is not None and not TAG.match(tag):
            raise _Rejection(["Invalid parameter, tag: Maximum length of 255 characters, letters, numbers and -"])
        if order_class == "option":
            duration = self._duration(form.get("duration"))
            order = self._leg(account, form, "", duration, ORDER_TYPES)
            order.tag = tag
        elif order_class in ("oco", "otoco"):
            order = self._advanced(account, order_class, form, tag)
        elif order_class in SPREAD_CLASSES:
            order = self._spread(account, order_class, form, tag)
            reason = self._spread_refused(account, order) if self.spread_refusal == "errors_200" else None
            if reason:
                raise _Rejection([reason], 200)  # a downstream refusal: Tradier's 200 carrying `errors`
        else:
            raise _Rejection([f"Invalid parameter, class: {order_class} is not supported here"])
        self._register(order)
        if self.pending_views <= 0:
            self._settle(order)
        return order

    def _duration(self, value: str | None) -> str:
        if value not in DURATIONS:
            raise _Rejection([f"Invalid parameter, duration: {value}"])
        return value

    def _leg(self, account, form, suffix, duration, allowed_types) -> FakeOrder:
        """One option order from the form fields ending in `suffix` ('' or '[i]')."""
        errors = []
        symbol = form.get(f"symbol{suffix}")
        option_symbol = form.get(f"option_symbol{suffix}")
        side = form.get(f"side{suffix}")
        order_type = form.get(f"type{suffix}")
        if not symbol:
            errors.append(f"symbol{suffix} is required")
        try:
            contract = parse_symbol(option_symbol or "")
        except InvalidOptionSymbol:
            errors.append(f"Invalid parameter, option_symbol{suffix}: {option_symbol}")
            contract = None
        if side not in OPTION_SIDES:
            errors.append(f"Invalid parameter, side{suffix}: {side}")
        if order_type not in allowed_types:
            errors.append(f"type{suffix} is invalid for class option")
        quantity = _decimal(form.get(f"quantity{suffix}"))
        if quantity is None or quantity <= 0 or quantity != quantity.to_integral_value():
            errors.append("IncorrectOrderQuantity: Quantity should be between 1 and 10000")
        price = _decimal(form.get(f"price{suffix}"))
        stop = _decimal(form.get(f"stop{suffix}"))
        if order_type in ("limit", "stop_limit") and (price is None or price <= 0):
            errors.append(f"price{suffix} is required for {order_type} orders")
        if order_type in ("stop", "stop_limit") and (stop is None or stop <= 0):
            errors.append(f"stop{suffix} is required for {order_type} orders")
        if errors:
            raise _Rejection(errors)
        return FakeOrder(
            id=next(self._ids), account_id=account.account_id, order_class="option", duration=duration,
            symbol=symbol, option_symbol=contract.symbol, side=side, quantity=int(quantity), type=order_type,
            price=price if order_type in ("limit", "stop_limit") else None,
            stop=stop if order_type in ("stop", "stop_limit") else None,
        )

    def _advanced(self, account, order_class, form, tag) -> FakeOrder:
        count = 2 if order_class == "oco" else 3
        if f"type[{count}]" in form or f"option_symbol[{count}]" in form:
            raise _Rejection([f"{order_class} orders take exactly {count} legs"])
        top_duration = form.get("duration")
        per_leg = [form.get(f"duration[{i}]") for i in range(count)]
        if top_duration and any(per_leg):
            raise _Rejection(["duration[i] may only be sent when duration is omitted"])
        durations = [self._duration(top_duration or value) for value in per_leg]
        legs = [self._leg(account, form, f"[{i}]", durations[i], BRACKET_TYPES) for i in range(count)]
        exits = legs if order_class == "oco" else legs[1:]
        # Tradier reports these downstream checks with a 200 that carries `errors`.
        if exits[0].type == exits[1].type:
            raise _Rejection([f"{order_class} legs must have different types"], 200)
        if exits[0].option_symbol != exits[1].option_symbol:
            raise _Rejection([f"{order_class} legs must share the same option_symbol"], 200)
        if exits[0].duration != exits[1].duration:
            raise _Rejection([f"{order_class} legs must have the same duration"], 200)
        parent = FakeOrder(id=next(self._ids), account_id=account.account_id, order_class=order_class,
                           duration=top_duration or durations[0], tag=tag, legs=legs)
        for leg in legs:
            leg.parent = parent
        if order_class == "otoco":
            for leg in exits:
                leg.active = False
        return parent

    def _register(self, order: FakeOrder) -> None:
        order.pending_views = self.pending_views
        order.session = self.session
        self.orders[order.id] = order
        for leg in order.legs:
            self.orders[leg.id] = leg

    def _find(self, account: FakeAccount, order_id: str) -> FakeOrder:
        order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if order is None or order.account_id != account.account_id:
            raise _Rejection([f"Invalid parameter, order id: {order_id}"])
        return order

    def _view(self, order: FakeOrder) -> None:
        """Someone looked: a pending order gets one step closer to its decision."""
        top = order.parent or order
        if top.status == "pending" and top.active:
            if top.pending_views > 0:
                top.pending_views -= 1  # still undecided for this look
            else:
                self._settle(top)

    def _settle(self, order: FakeOrder) -> None:
        account = self.accounts[order.account_id]
        if order.is_spread:
            reason = self._spread_refused(account, order) if self.spread_refusal == "rejected" else None
        else:
            first = order.legs[0] if order.legs else order
            reason = self._check(account, first, exclude=order)
            if reason is None and order.order_class == "oco":
                reason = self._check(account, order.legs[1], exclude=order)
        now = _now()
        if reason:
            for node in [order, *order.legs]:
                node.status, node.reason_description, node.updated = "rejected", reason, now
            return
        for node in [order, *order.legs]:
            node.status, node.updated = ("open" if node.active else "pending"), now
        if order.is_spread:
            return self._match_spread(order)
        for leg in order.legs or [order]:
            self._match(leg)

    def _check(self, account: FakeAccount, leg: FakeOrder, *, exclude: FakeOrder) -> str | None:
        held_quantity = self._held(account, leg)
        if leg.side == "buy_to_open":
            if self._cost(leg) > self._buying_power(account, exclude=exclude):
                return NOT_ENOUGH_BUYING_POWER
        elif leg.side == "sell_to_close":
            if reason := self._closing_refused(account, leg):
                return reason
            free = held_quantity - self._committed(account, leg.option_symbol, exclude=exclude)
            if self.refuse_overcommitted_sells and free < leg.quantity:
                return (f"Sell to close of {leg.quantity} exceeds the {max(free, 0)} held and not already "
                        "committed to working orders")
        elif leg.side == "buy_to_close":
            return self._closing_refused(account, leg)
        elif leg.side == "sell_to_open" and not self.uncovered_writing:
            return "Account is not approved for uncovered option writing"
        return None

    def _held(self, account: FakeAccount, leg: FakeOrder) -> int:
        held = account.positions.get(leg.instrument)
        return held.quantity if held else 0

    def _closing_refused(self, account: FakeAccount, leg: FakeOrder) -> str | None:
        """A closing order (or a combo's stock sale, or its cover) for more than is held."""
        held_quantity = self._held(account, leg)
        if leg.side in ("sell_to_close", "sell") and held_quantity < leg.quantity:
            return f"Sell to close of {leg.quantity} exceeds the {max(held_quantity, 0)} held"
        if leg.side in ("buy_to_close", "buy_to_cover") and -held_quantity < leg.quantity:
            return f"Buy to close of {leg.quantity} exceeds the {max(-held_quantity, 0)} short"
        return None

    def _committed(self, account: FakeAccount, symbol: str, *, exclude: FakeOrder) -> int:
        """Contracts that working sell-to-close orders already cover; an OCO's legs share theirs."""
        groups: dict[int, int] = {}
        for order in self.orders.values():
            top = order.parent or order
            if (not order.legs and top is not exclude and order.account_id == account.account_id
                    and order.option_symbol == symbol and order.side == "sell_to_close" and order.active
                    and order.status in WORKING):
                groups[top.id] = max(groups.get(top.id, 0), order.remaining)
        return sum(groups.values())

    def _cost(self, leg: FakeOrder) -> Decimal:
        quote = self.quotes.get(leg.option_symbol)
        per_contract = leg.price or leg.stop or (quote.ask if quote else Decimal(0))
        return per_contract * leg.remaining * 100

    def _buying_power(self, account: FakeAccount, *, exclude: FakeOrder | None = None) -> Decimal:
        reserved = Decimal(0)
        for order in self.orders.values():
            top = order.parent or order
            if top.is_spread:
                if (order is top and top is not exclude and order.account_id == account.account_id
                        and order.status in ("open", "partially_filled")):
                    reserved += self._spread_debit(order) * order.remaining * 100
                continue
            if (order.account_id == account.account_id and not order.legs and top is not exclude
                    and top.status != "pending" and order.status in WORKING and order.active
                    and order.side == "buy_to_open"):
                reserved += self._cost(order)
        return account.cash - reserved

    def _match_symbol(self, symbol: str) -> None:
        for order in list(self.orders.values()):
            if order.is_spread:
                if any(leg.instrument == symbol for leg in order.legs):
                    self._match_spread(order)
            elif not order.legs and order.option_symbol == symbol and not (order.parent and order.parent.is_spread):
                self._match(order)

    def _match(self, leg: FakeOrder) -> None:
        top = leg.parent or leg
        if top.is_spread:
            return self._match_spread(top)  # a spread's legs fill together, never alone
        quote = self.quotes.get(leg.option_symbol)
        if quote is None or not leg.active or leg.status not in ("open", "partially_filled") or top.status == "pending":
            return
        book = quote.ask if leg.is_buy else quote.bid
        if book <= 0:
            return
        if leg.type in ("stop", "stop_limit") and not leg.triggered:
            leg.triggered = book >= leg.stop if leg.is_buy else book <= leg.stop
            if not leg.triggered:
                return
        if leg.type in ("limit", "stop_limit"):
            reached = book <= leg.price if leg.is_buy else book >= leg.price
            if not reached:
                return
        self._execute(leg, book, min(leg.remaining, quote.size) if quote.size else leg.remaining)

    def _execute(self, leg: FakeOrder, price: Decimal, quantity: int) -> None:
        now = self._book_fill(leg, price, quantity)
        parent = leg.parent
        if parent is None:
            return
        parent.updated = now
        if leg.status != "filled":
            parent.status = "partially_filled"
            return
        if parent.order_class == "otoco" and leg is parent.legs[0]:
            for exit_leg in parent.legs[1:]:
                exit_leg.active, exit_leg.status, exit_leg.updated = True, "open", now
            for exit_leg in parent.legs[1:]:
                self._match(exit_leg)
            return
        for sibling in parent.legs:
            if sibling is not leg and sibling.status in WORKING:
                sibling.status, sibling.updated = "canceled", now
        parent.status = "filled"

    def _book_fill(self, leg: FakeOrder, price: Decimal, quantity: int) -> datetime:
        """One execution: the order's fill fields, the account's cash and position."""
        account = self.accounts[leg.account_id]
        now = _now()
        previous = (leg.avg_fill_price or Decimal(0)) * leg.exec_quantity
        leg.exec_quantity += quantity
        leg.avg_fill_price = (previous + price * quantity) / leg.exec_quantity
        leg.last_fill_price, leg.last_fill_quantity, leg.updated = price, quantity, now
        leg.status = "filled" if leg.remaining == 0 else "partially_filled"
        symbol = leg.instrument
        notional = price * quantity * _multiplier(symbol)
        held = account.positions.get(symbol)
        signed = quantity if leg.is_buy else -quantity
        account.cash += -notional if leg.is_buy else notional
        if held is None:
            account.positions[symbol] = FakePosition(
                id=next(self._ids), symbol=symbol, quantity=signed,
                cost_basis=notional if leg.is_buy else -notional, acquired=now,
            )
        else:
            closing = (held.quantity > 0) != (signed > 0)
            if closing:
                share = held.cost_basis * abs(signed) / abs(held.quantity)
                account.closed_pl += (notional - share) if not leg.is_buy else (-share - notional)
                held.cost_basis -= share
            else:
                held.cost_basis += notional if leg.is_buy else -notional
            held.quantity += signed
            if held.quantity == 0:
                del account.positions[symbol]
        return now

    # -- spread orders (multileg, combo) --------------------------------------------------------

    def _spread(self, account: FakeAccount, order_class: str, form: dict[str, str], tag: str | None) -> FakeOrder:
        """A multileg or combo order from its form, refused with a 400 as Tradier's validation would."""
        duration = self._duration(form.get("duration"))
        symbol, order_type = form.get("symbol"), form.get("type")
        price = _decimal(form.get("price"))
        errors = []
        if not symbol:
            errors.append("symbol is required")
        if order_type not in SPREAD_TYPES:
            errors.append(f"type is invalid for class {order_class}: {order_type}")
        if order_type in ("debit", "credit") and (price is None or price <= 0):
            errors.append(f"price is required for {order_type} orders")
        indices = sorted({int(match[1]) for key in form if (match := SPREAD_LEG_KEY.match(key))})
        fewest, most = (2, 4) if order_class == "multileg" else (2, 3)
        if indices != list(range(len(indices))):
            errors.append("Invalid parameter, legs must be indexed from 0 without gaps")
        elif not fewest <= len(indices) <= most:
            errors.append(f"Invalid parameter, a {order_class} order takes {fewest} to {most} legs")
        if errors:
            raise _Rejection(errors)
        legs = [self._spread_leg(account, order_class, form, index, symbol, duration) for index in indices]
        if len({leg.instrument for leg in legs}) != len(legs):
            raise _Rejection(["Invalid parameter, each leg must be a different security"])
        for leg in legs:
            leg.type, leg.price = order_type, price if order_type in ("debit", "credit") else None
        parent = FakeOrder(
            id=next(self._ids), account_id=account.account_id, order_class=order_class, duration=duration, tag=tag,
            symbol=symbol, side="buy", quantity=spread_units(leg.quantity for leg in legs), type=order_type,
            price=legs[0].price, legs=legs,
        )
        for leg in legs:
            leg.parent = parent
        return parent

    def _spread_leg(self, account, order_class, form, index, symbol, duration) -> FakeOrder:
        suffix = f"[{index}]"
        option_symbol, side = form.get(f"option_symbol{suffix}"), form.get(f"side{suffix}")
        quantity = _decimal(form.get(f"quantity{suffix}"))
        stock = order_class == "combo" and index == 0  # a combo's leg 0 is its equity leg
        errors, contract = [], None
        if stock:
            if option_symbol:
                errors.append("Invalid parameter, option_symbol[0]: leg 0 of a combo order is the equity leg")
            if side not in EQUITY_SIDES:
                errors.append(f"Invalid parameter, side[0]: {side}")
        else:
            try:
                contract = parse_symbol(option_symbol or "")
            except InvalidOptionSymbol:
                errors.append(f"Invalid parameter, option_symbol{suffix}: {option_symbol}")
            if contract is not None and symbol not in (contract.root, underlying_of_root(contract.root)):
                errors.append(f"Invalid parameter, option_symbol{suffix}: {option_symbol} is not an option on {symbol}")
            if side not in OPTION_SIDES:
                errors.append(f"Invalid parameter, side{suffix}: {side}")
        if quantity is None or quantity <= 0 or quantity != quantity.to_integral_value():
            errors.append("IncorrectOrderQuantity: Quantity should be between 1 and 10000")
        if errors:
            raise _Rejection(errors)
        return FakeOrder(
            id=next(self._ids), account_id=account.account_id, order_class="equity" if stock else "option",
            duration=duration, symbol=symbol, option_symbol="" if stock else contract.symbol, side=side,
            quantity=int(quantity),
        )

    def _spread_refused(self, account: FakeAccount, order: FakeOrder) -> str | None:
        """The back office's word on a spread: closing legs need what they close; a debit needs
        the buying power for it (credit spreads' margin is not modelled)."""
        for leg in order.legs:
            if reason := self._closing_refused(account, leg):
                return reason
        if not self.uncovered_writing and not self._covered(account, order):
            return "Account is not approved for uncovered option writing"
        if self._spread_debit(order) * order.remaining * 100 > self._buying_power(account, exclude=order):
            return NOT_ENOUGH_BUYING_POWER
        return None

    def _covered(self, account: FakeAccount, order: FakeOrder) -> bool:
        """After the order, every short option of its underlying pairs with a long one of its
        right expiring no earlier; shares held or bought cover calls, 100 a contract."""
        signed: dict[str, int] = {symbol: held.quantity for symbol, held in account.positions.items()}
        for leg in order.legs:
            signed[leg.instrument] = signed.get(leg.instrument, 0) + (leg.quantity if leg.is_buy else -leg.quantity)
        legs = []
        for symbol, quantity in signed.items():
            if symbol == order.symbol:
                legs.append(("CALL", date.max, int(quantity) // 100))
                continue
            try:
                contract = parse_symbol(symbol)
            except InvalidOptionSymbol:
                continue
            if underlying_of_root(contract.root) == order.symbol:
                legs.append((contract.option_type, contract.expiry, int(quantity)))
        return is_covered(legs)

    def _spread_debit(self, order: FakeOrder) -> Decimal:
        """What one unit may cost per share: a debit's limit, a market order's natural net."""
        if order.type == "debit":
            return order.price
        net = self._spread_net(order) if order.type == "market" else None
        return max(net, Decimal(0)) if net is not None else Decimal(0)

    def _spread_books(self, order: FakeOrder) -> list[Decimal] | None:
        """Each leg's natural side (the ask to buy, the bid to sell); None while one is missing."""
        books = []
        for leg in order.legs:
            quote = self.quotes.get(leg.instrument)
            book = (quote.ask if leg.is_buy else quote.bid) if quote else None
            worthless_wing = (book == 0 and leg.side == "sell_to_close" and self.zero_bid_closing_sells == "fill")
            if book is None or (book <= 0 and not worthless_wing):
                return None
            books.append(book)
        return books

    def _spread_net(self, order: FakeOrder, books: list[Decimal] | None = None) -> Decimal | None:
        """Net per share of one unit at `books` (the natural sides by default): positive is paid."""
        books = books if books is not None else self._spread_books(order)
        if books is None:
            return None
        cash = sum((book if leg.is_buy else -book) * leg.ratio * _multiplier(leg.instrument)
                   for leg, book in zip(order.legs, books, strict=True))
        return cash / 100

    def _match_spread(self, order: FakeOrder) -> None:
        if order.status not in ("open", "partially_filled"):
            return
        books = self._spread_books(order)
        net = self._spread_net(order, books)
        if net is None or not _crosses(order.type, net, order.price):
            return
        available = [self._available(leg) for leg in order.legs]
        if self.spread_fills == "legged":
            fills = [min(leg.remaining, room) for leg, room in zip(order.legs, available, strict=True)]
        else:
            fit = min(room // leg.ratio for leg, room in zip(order.legs, available, strict=True))
            units = order.remaining if fit >= order.remaining else (fit if self.spread_fills == "partial" else 0)
            fills = [units * leg.ratio for leg in order.legs]
        for leg, book, quantity in zip(order.legs, books, fills, strict=True):
            if quantity > 0:
                self._book_fill(leg, book, quantity)
        self._spread_status(order)

    def _available(self, leg: FakeOrder) -> int:
        """What the leg's book holds: contracts, or for stock shares (sizes are round lots)."""
        size = self.quotes[leg.instrument].size
        return UNLIMITED if size is None else size * (100 if _multiplier(leg.instrument) == 1 else 1)

    def _spread_status(self, order: FakeOrder) -> None:
        """The parent after its legs moved: whole units filled, their net, and its status."""
        units = min(leg.exec_quantity // leg.ratio for leg in order.legs)
        if units > order.exec_quantity:
            prices = [leg.avg_fill_price or Decimal(0) for leg in order.legs]
            order.last_fill_quantity = units - order.exec_quantity
            order.exec_quantity = units
            order.avg_fill_price = order.last_fill_price = abs(self._spread_net(order, prices))
        if all(leg.status == "filled" for leg in order.legs):
            order.status = "filled"
        elif any(leg.exec_quantity for leg in order.legs):
            order.status = "partially_filled"
        order.updated = _now()

    def _cancel(self, order: FakeOrder) -> dict:
        top = order.parent or order
        if top.status in FINAL:
            raise _Rejection([f"order already in finalized state: {top.status}"])
        if (top.order_class == "otoco" and top.legs[0].status in FINAL
                and self.otoco_cancel_after_entry_fill == "refused"):
            raise _Rejection([f"order already in finalized state: {top.legs[0].status}"])
        now = _now()
        for node in [top, *top.legs]:
            if node.status in WORKING:
                node.status, node.updated = "canceled", now
        return {"order": {"id": order.id, "status": "ok"}}

    def _modify(self, order: FakeOrder, form: dict[str, str]) -> dict:
        """`PUT /orders/{id}`: type, duration, price and stop change; quantity never does. A leg of
        an advanced order follows `modify_advanced_leg`, the id `modify_gives_new_id`."""
        top = order.parent or order
        if order.status in FINAL or top.status in FINAL:
            raise _Rejection([f"order already in finalized state: {order.status}"])
        if order.legs:
            raise _Rejection([f"Invalid parameter, order id: {order.id} is an {order.order_class} order; "
                              "modify its legs"])
        if top.is_spread:
            raise _Rejection([f"Order {order.id} is a leg of a {top.order_class} order and cannot be modified"])
        if order.parent is not None and self.modify_advanced_leg != "in_place":
            status = 200 if self.modify_advanced_leg == "refused_200" else 400
            raise _Rejection([f"Order {order.id} is a leg of an {top.order_class} order and cannot be modified"],
                             status)
        if "quantity" in form:
            raise _Rejection(["Invalid parameter, quantity: the quantity of an order cannot be changed"])
        order_type = form.get("type", order.type)
        allowed = BRACKET_TYPES if order.parent is not None else ORDER_TYPES
        if order_type not in allowed:
            raise _Rejection([f"type is invalid for class option: {order_type}"])
        exits = top.legs[-2:]  # an OCO's two legs, an OTOCO's last two
        if order in exits and any(leg is not order and leg.type == order_type for leg in exits):
            raise _Rejection([f"{top.order_class} legs must have different types"], 200)
        price = _decimal(form["price"]) if "price" in form else order.price
        stop = _decimal(form["stop"]) if "stop" in form else order.stop
        if order_type in ("limit", "stop_limit") and (price is None or price <= 0):
            raise _Rejection([f"price is required for {order_type} orders"])
        if order_type in ("stop", "stop_limit") and (stop is None or stop <= 0):
            raise _Rejection([f"stop is required for {order_type} orders"])
        duration = self._duration(form.get("duration", order.duration))
        now = _now()
        target = order
        if self.modify_gives_new_id:
            target = self._replacement(order, now)
        target.type, target.duration, target.updated = order_type, duration, now
        target.price = price if order_type in ("limit", "stop_limit") else None
        target.stop = stop if order_type in ("stop", "stop_limit") else None
        target.triggered = False
        self._match(target)
        return {"order": {"id": target.id, "status": "ok"}}

    def _replacement(self, order: FakeOrder, now: datetime) -> FakeOrder:
        """The order is replaced by a copy under a new id; the old one is cancelled and, for a leg,
        leaves its group (cancelling it later must not cancel the new group)."""
        copy = FakeOrder(
            id=next(self._ids), account_id=order.account_id, order_class=order.order_class, duration=order.duration,
            tag=order.tag, status=order.status, symbol=order.symbol, option_symbol=order.option_symbol,
            side=order.side, quantity=order.quantity, type=order.type, price=order.price, stop=order.stop,
            created=now, updated=now, parent=order.parent, active=order.active, session=self.session,
        )
        parent = order.parent
        if parent is not None:
            parent.legs[parent.legs.index(order)] = copy
            order.parent, order.session = None, self.session
        order.status, order.updated = "canceled", now
        self.orders[copy.id] = copy
        return copy

    def _expire_day_orders(self, order: FakeOrder) -> None:
        now = _now()
        if not order.legs:
            if order.status in WORKING and order.duration == "day":
                order.status, order.updated = "expired", now
            return
        for leg in order.legs:
            if leg.status in WORKING and leg.duration == "day":
                leg.status, leg.updated = "expired", now
        if order.order_class == "otoco" and order.legs[0].status == "expired":
            for leg in order.legs[1:]:
                if leg.status in WORKING:
                    leg.status, leg.updated = "canceled", now
        if all(leg.status in FINAL for leg in order.legs) and order.status in WORKING:
            order.status, order.updated = "expired", now

    # -- bodies --------------------------------------------------------------------------------

    def _order_json(self, order: FakeOrder, include_tags: bool) -> dict:
        if order.legs and not order.is_spread:
            body = {"id": order.id, "class": order.order_class, "status": order.status,
                    "create_date": _stamp(order.created), "transaction_date": _stamp(order.updated),
                    "leg": [self._order_json(leg, False) for leg in order.legs]}
        else:
            body = {
                "id": order.id, "type": order.type, "symbol": order.symbol, "side": order.side,
                "quantity": _qty(order.quantity), "status": order.status, "duration": order.duration,
                "avg_fill_price": _price(order.avg_fill_price) if order.exec_quantity else 0.0,
                "exec_quantity": _qty(order.exec_quantity),
                "last_fill_price": _price(order.last_fill_price) or 0.0,
                "last_fill_quantity": _qty(order.last_fill_quantity),
                "remaining_quantity": _qty(order.remaining if order.status in WORKING else 0),
                "create_date": _stamp(order.created), "transaction_date": _stamp(order.updated),
                "class": order.order_class,
            }
            if order.option_symbol:  # a combo's stock leg has none
                body["option_symbol"] = order.option_symbol
            if order.is_spread:
                body.update(num_legs=len(order.legs), strategy=_strategy(order),
                            leg=[self._order_json(leg, False) for leg in order.legs])
                if self.spread_parent_fills == "none":
                    body.update(quantity=_qty(1), avg_fill_price=0.0, exec_quantity=_qty(0), last_fill_price=0.0,
                                last_fill_quantity=_qty(0), remaining_quantity=_qty(0))
            if order.price is not None:  # a market order has no price key at all
                body["price"] = _price(order.price)
            if order.stop is not None:  # `stop` in requests, `stop_price` in responses
                body["stop_price"] = _price(order.stop)
        if order.reason_description:
            body["reason_description"] = order.reason_description
        if include_tags and order.tag:
            body["tag"] = order.tag
        return body

    def _orders_body(self, account: FakeAccount, query: dict, include_tags: bool) -> dict:
        mine = [o for o in self.orders.values() if o.account_id == account.account_id and o.parent is None
                and o.session == self.session]  # today's session only, as Tradier lists them
        for order in mine:
            self._view(order)
        limit = int(query.get("limit") or self.orders_page_size)
        page = int(query.get("page") or 1)
        chosen = mine[(page - 1) * limit: page * limit]
        return {"orders": _collection("order", [self._order_json(o, include_tags) for o in chosen], empty="null")}

    def _positions_body(self, account: FakeAccount) -> dict:
        rows = [
            {"cost_basis": _price(p.cost_basis), "date_acquired": _stamp(p.acquired), "id": p.id,
             "quantity": _qty(p.quantity), "symbol": p.symbol}
            for p in account.positions.values()
        ]
        return {"positions": _collection("position", rows, empty="null")}

    def _balances_body(self, account: FakeAccount) -> dict:
        option_value = Decimal(0)
        open_pl = Decimal(0)
        for position in account.positions.values():
            quote = self.quotes.get(position.symbol)
            mark = ((quote.bid + quote.ask) / 2) if quote else Decimal(0)
            value = mark * position.quantity * _multiplier(position.symbol)
            option_value += value
            open_pl += value - position.cost_basis
        buying_power = self._buying_power(account)
        pending = sum(1 for o in self.orders.values() if o.account_id == account.account_id and o.parent is None
                      and o.status in WORKING)
        body = {
            "option_short_value": 0, "total_equity": _money(account.cash + option_value),
            "account_number": account.account_id, "account_type": account.account_type,
            "close_pl": _money(account.closed_pl), "current_requirement": 0, "equity": 0,
            "long_market_value": _money(option_value), "market_value": _money(option_value),
            "open_pl": _money(open_pl), "option_long_value": _money(option_value), "option_requirement": 0,
            "pending_orders_count": pending, "short_market_value": 0, "stock_long_value": 0,
            "total_cash": _money(account.cash), "uncleared_funds": 0, "pending_cash": 0,
        }
        if account.account_type == "cash":
            body["cash"] = {"cash_available": _money(buying_power), "sweep": 0, "unsettled_funds": 0}
        else:
            body[account.account_type] = {"fed_call": 0, "maintenance_call": 0,
                                          "option_buying_power": _money(buying_power),
                                          "stock_buying_power": _money(buying_power * 2), "stock_short_value": 0}
        return {"balances": body}

    def _quote_json(self, quote: FakeQuote, greeks: bool) -> dict:
        stamp = quote.at.timestamp()
        epoch = int(stamp) if self.epoch_seconds else int(stamp * 1000)
        body = {
            "symbol": quote.symbol, "description": quote.symbol, "exch": "Z", "type": "stock",
            "last": _price(quote.last), "change": None, "volume": 0, "open": None, "high": None, "low": None,
            "close": None, "bid": _price(quote.bid), "ask": _price(quote.ask), "change_percentage": None,
            "average_volume": 0, "last_volume": 0, "trade_date": epoch if quote.last is not None else 0,
            "prevclose": None, "week_52_high": 0.0, "week_52_low": 0.0,
            "bidsize": quote.size or 10, "bidexch": "Z", "bid_date": epoch,
            "asksize": quote.size or 10, "askexch": "Z", "ask_date": epoch,
        }
        try:
            contract = parse_symbol(quote.symbol)
        except InvalidOptionSymbol:
            body["root_symbols"] = quote.symbol
            return self._overridden(body, greeks)
        body.update({
            "type": "option", "underlying": contract.root, "strike": float(contract.strike), "open_interest": 100,
            "contract_size": 100, "expiration_date": contract.expiry.isoformat(), "expiration_type": "standard",
            "option_type": contract.option_type.lower(), "root_symbol": contract.root,
        })
        if greeks:
            body["greeks"] = {
                "delta": 0.5 if contract.option_type == "CALL" else -0.5, "gamma": 0.01, "theta": -0.05,
                "vega": 0.1, "rho": 0.01, "phi": -0.01, "bid_iv": 0.2, "mid_iv": 0.21, "ask_iv": 0.22,
                "smv_vol": 0.2, "updated_at": quote.at.strftime("%Y-%m-%d %H:%M:%S"),
            }
        return self._overridden(body, greeks)

    def _overridden(self, body: dict, greeks: bool) -> dict:
        for name, value in self.quote_fields.get(body["symbol"], {}).items():
            if name == "greeks":
                if not greeks:
                    continue
                if isinstance(value, dict) and isinstance(body.get("greeks"), dict):
                    value = {**body["greeks"], **value}
            body[name] = value
        return body

    def _quotes_body(self, symbols: str, greeks: bool) -> dict:
        wanted = [symbol for symbol in symbols.split(",") if symbol]
        found = [self._quote_json(self.quotes[s], greeks) for s in wanted if s in self.quotes]
        unmatched = [s for s in wanted if s not in self.quotes]
        body = {}
        if found:
            body["quote"] = found[0] if len(found) == 1 else found
        if unmatched:
            body["unmatched_symbols"] = {"symbol": unmatched[0] if len(unmatched) == 1 else unmatched}
        return {"quotes": body}

    def _expirations_body(self, query: dict) -> dict:
        """The expiries of the option quotes set on the underlying: its own root, and with
        `includeAllRoots=true` its other roots too (SPXW under SPX). With `strikes`,
        `contractSize` or `expirationType` true, one object per date instead of bare dates."""
        underlying = query.get("symbol", "").upper()
        all_roots = query.get("includeAllRoots") == "true"
        strikes: dict[date, set] = {}
        roots: dict[date, set] = {}
        for symbol in self.quotes:
            try:
                contract = parse_symbol(symbol)
            except InvalidOptionSymbol:
                continue
            if contract.root == underlying or (all_roots and ROOT_UNDERLYINGS.get(contract.root) == underlying):
                strikes.setdefault(contract.expiry, set()).add(contract.strike)
                roots.setdefault(contract.expiry, set()).add(contract.root)
        days = sorted(strikes)
        if not any(query.get(flag) == "true" for flag in ("strikes", "contractSize", "expirationType")):
            return {"expirations": _collection("date", [day.isoformat() for day in days], empty=None)}
        rows = []
        for day in days:
            row = {"date": day.isoformat()}
            if query.get("contractSize") == "true":
                row["contract_size"] = 100
            if query.get("expirationType") == "true":
                weekly = roots[day] - {underlying} or day.weekday() == 4 and not 15 <= day.day <= 21
                row["expiration_type"] = "weeklys" if weekly else "standard"
            if query.get("strikes") == "true":
                row["strikes"] = _collection("strike", [float(strike) for strike in sorted(strikes[day])], empty=None)
            rows.append(row)
        return {"expirations": _collection("expiration", rows, empty=None)}

    def _chain_body(self, underlying: str, expiration: str) -> dict:
        rows = []
        for symbol, quote in sorted(self.quotes.items()):
            try:
                contract = parse_symbol(symbol)
            except InvalidOptionSymbol:
                continue
            if contract.root == underlying and contract.expiry.isoformat() == expiration:
                rows.append(self._quote_json(quote, True))
        return {"options": _collection("option", rows, empty=self.market_data_empty)}


    def _timesales_body(self, query: dict) -> dict:
        interval, session_filter = query.get("interval", "tick"), query.get("session_filter", "all")
        if interval not in TIMESALES_INTERVALS:
            raise _Rejection([f"Invalid parameter, interval: {interval}"])
        if session_filter not in ("all", "open"):
            raise _Rejection([f"Invalid parameter, session_filter: {session_filter}"])
        start, end = _eastern_param(query, "start"), _eastern_param(query, "end")
        rows = []
        for row in self.bars.get((query.get("symbol", ""), interval), []):
            local = row["at"].astimezone(NEW_YORK).replace(tzinfo=None)
            if not start <= local <= end:
                continue
            if session_filter == "open" and not (9, 30) <= (local.hour, local.minute) < (16, 0):
                continue
            rows.append({
                "time": local.isoformat(timespec="seconds"), "timestamp": int(row["at"].timestamp()),
                "price": _price(_decimal(row["close"])), **_ohlcv(row), "vwap": _price(_decimal(row["close"])),
            })
        return {"series": _collection("data", rows, empty=self.market_data_empty)}

    def _history_body(self, query: dict) -> dict:
        interval = query.get("interval", "daily")
        if interval not in HISTORY_INTERVALS:
            raise _Rejection([f"Invalid parameter, interval: {interval}"])
        try:
            start = date.fromisoformat(query.get("start") or "2000-01-01")
            end = date.fromisoformat(query.get("end") or "2100-01-01")
        except ValueError:
            raise _Rejection(["Invalid parameter, start/end: expected YYYY-MM-DD"]) from None
        rows = [
            {"date": row["at"].isoformat(), **_ohlcv(row)}
            for row in self.bars.get((query.get("symbol", ""), interval), []) if start <= row["at"] <= end
        ]
        return {"history": _collection("day", rows, empty=self.market_data_empty)}


def _eastern_param(query: dict, name: str) -> datetime:
    """Timesales takes `YYYY-MM-DD HH:MM` in Eastern time; anything else is a 400, as at Tradier."""
    value = query.get(name, "")
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M")  # noqa: DTZ007 - Tradier's own naive Eastern format
    except ValueError:
        raise _Rejection([f"Invalid parameter, {name}: {value}"]) from None


def _ohlcv(row: dict) -> dict:
    volume = row["volume"]
    return {**{name: _price(_decimal(row[name])) for name in ("open", "high", "low", "close")},
            "volume": None if volume is None else int(volume)}


def _multiplier(symbol: str) -> int:
    """Shares per unit: 100 for an option contract, 1 for a share."""
    try:
        parse_symbol(symbol)
    except InvalidOptionSymbol:
        return 1
    return 100


def _crosses(order_type: str, net: Decimal, price: Decimal | None) -> bool:
    """Whether a spread fills at this natural net (positive is paid, negative received)."""
    if order_type == "debit":
        return net <= price
    if order_type == "credit":
        return -net >= price
    if order_type == "even":
        return net <= 0
    return True  # market


def _strategy(order: FakeOrder) -> str:
    """Tradier's `strategy` label, roughly (its spelling varies: `covered call`, `covered_call`)."""
    options = [parse_symbol(leg.option_symbol) for leg in order.legs if leg.option_symbol]
    if len(options) < len(order.legs):
        return "covered_call" if all(not leg.is_buy for leg in order.legs if leg.option_symbol) else "freeform"
    kinds = {contract.option_type for contract in options}
    if len(options) == 4:
        return "condor"
    if len(options) == 3:
        return "butterfly"
    if len(kinds) == 2:
        return "straddle" if len({contract.strike for contract in options}) == 1 else "strangle"
    return "spread"


def _collection(item: str, rows: list, *, empty):
    """Tradier's shapes: nothing is `empty` ("null" or null), one row is a bare object, more a list."""
    if not rows:
        return empty
    return {item: rows[0] if len(rows) == 1 else rows}


def _fault(text: str, code: str) -> dict:
    return {"fault": {"faultstring": text, "detail": {"errorcode": code}}}


def _group(method: str, path: str) -> str:
    if path.startswith("/markets"):
        return "market_data"
    if method != "GET" and "/orders" in path:
        return "trading"
    return "standard"


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value not in (None, "") else None
    except ArithmeticError:
        return None


class _Responder:
    def __init__(self, handler: BaseHTTPRequestHandler, *, json_wanted: bool) -> None:
        self.handler = handler
        self.json_wanted = json_wanted

    def send(self, status: int, body, headers: dict[str, str] | None = None) -> None:
        if self.json_wanted:
            payload, content_type = _to_json(body), "application/json"
        else:
            payload, content_type = _to_xml(body), "application/xml"
        self._write(status, payload, content_type, headers or {})

    def html(self, status: int, page: str) -> None:
        self._write(status, page, "text/html; charset=utf-8", {})

    def _write(self, status, payload: str, content_type: str, headers: dict[str, str]) -> None:
        data = payload.encode()
        try:
            self.handler.send_response(status)
            self.handler.send_header("Content-Type", content_type)
            self.handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.handler.send_header(name, value)
            self.handler.end_headers()
            self.handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.handler.close_connection = True  # the client gave up waiting, as intended


def _to_json(body) -> str:
    raws: list[str] = []

    def default(value):
        raise TypeError(type(value))

    def mark(value):
        if isinstance(value, _Raw):
            raws.append(str(value))
            return f"__raw{len(raws) - 1}__"
        if isinstance(value, dict):
            return {key: mark(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mark(item) for item in value]
        return value

    text = json.dumps(mark(body), default=default)
    return re.sub(r'"__raw(\d+)__"', lambda match: raws[int(match[1])], text)


def _to_xml(body) -> str:
    def render(name: str, value) -> str:
        if isinstance(value, list):
            return "".join(render(name, item) for item in value)
        if isinstance(value, dict):
            return f"<{name}>" + "".join(render(key, item) for key, item in value.items()) + f"</{name}>"
        if value is None:
            return f"<{name}/>"
        text = str(value).replace("&", "&amp;").replace("<", "&lt;")
        return f"<{name}>{text}</{name}>"

    return '<?xml version="1.0" encoding="UTF-8"?>' + "".join(render(key, value) for key, value in body.items())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pooled session is exercised
    disable_nagle_algorithm = True  # headers and body go out separately: don't wait on delayed ACKs

    def do_GET(self):  # noqa: N802
        self.server.fake.handle(self)

    do_POST = do_DELETE = do_PUT = do_GET  # noqa: N815

    def log_message(self, format, *args):  # noqa: A002
        pass
