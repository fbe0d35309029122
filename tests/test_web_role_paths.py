"""Every user-facing route, driven as a gunicorn worker drives it: on the web role (tradeoptions_app),
which may not enter the system context and sees a tenant's rows only inside a signed tenant context.

The rest of the suite runs as the worker role (so that monitor scenarios can enter the system
context), where a web path that enters `tenancy.system_context()` or reads rows outside a signed
context would still pass. Here every request runs on the web role with committed data, and every
query it sends is watched: each one on a row-level-security table must run as tradeoptions_app, in
a transaction signed for the signed-in trader, never in the system context. The routes are read from
the URL resolver (tests/test_cross_tenant_sweep.py's walk), so a new route is called here too: by
GET, unless it is listed with the calls it takes.
"""

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.urls import resolve, reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from analytics.models import TradeForensics
from tests.factories import (
    PASSWORD,
    PUSH_KEYS,
    ChannelMessageFactory,
    ClosedTradeFactory,
    PaperFillFactory,
    PaperTradeFactory,
    PriceSnapshotFactory,
    PushSubscriptionFactory,
    TradeEventFactory,
    UserFactory,
)
from tests.test_cross_tenant_sweep import (
    COLLECTION_ROUTES,
    NOT_OBJECT_NAMESPACES,
    OBJECT_ROUTES,
    SHOWN_AS_FIGURES,
    routes,
)
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, ChannelMessage, PaperTrade, TradeStatus, WebhookEvent

# A browser's PushSubscription.toJSON(), at a push service on 127.0.0.1 (the test settings allow it).
PUSH_SUBSCRIPTION = {"endpoint": "http://127.0.0.1:9/push/v1/alice-device",
                     "keys": {"p256dh": PUSH_KEYS["p256dh"], "auth": PUSH_KEYS["auth"]}}
CONTRACT = "SPY261218C00570000"  # quoted by the `market` fixture (4.10 / 4.30)
OPEN_BODY = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": "2026-12-18", "qty": 2,
             "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "web-role-open"}
# Routes that take no GET (or whose GET alone does not reach their rows): the calls made instead,
# in the order of the write scenario below. Every other route is called by GET.
WRITTEN = {
    "trade-validate", "trade-list", "trade-adjust", "trade-exit-policy", "trade-close", "trade-entry-reprice",
    "trade-entry-cancel", "api-spread-preview",
    "trade-close-reprice", "trade-close-cancel", "api-settings", "api-webhook-secret",
    "settings-paper", "api-token", "api-tokens", "api-token-detail", "api-token-revoke", "api-token-revoke-all",
    "sign-out-everywhere", "password-change", "login", "logout", "notification-channel-send-test",
    "push-subscription-list", "push-subscription-detail",
}
# Routes a GET cannot be made to meaningfully here, and why.
NOT_READ = {
    "logout": "signs out: called once, last, in the write scenario",
}


@dataclass
class Query:
    role: str  # current_user when it ran
    user_id: int | None  # app_user_id(): the signed tenant, None without a valid signature
    system: bool
    sql: str


@dataclass
class QueryWatch:
    """Django's execute wrapper: before each query on a row-level-security table, asks the same
    connection (and transaction) who it is, whose signed context it is in and whether the system
    context is on. Outside a transaction the answer is "nobody", as it is for the query itself:
    set_config(..., is_local) settings end with the statement's own transaction."""

    tables: re.Pattern
    queries: list[Query] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)

    def __call__(self, execute, sql, params, many, context):
        self.roles.add(context["connection"].settings_dict["USER"])
        if self.tables.search(sql):
            try:
                with context["connection"].connection.cursor() as cursor:
                    cursor.execute("SELECT current_user, app_user_id(), "
                                   "COALESCE(current_setting('app.system', true), '') = 'on'")
                    self.queries.append(Query(*cursor.fetchone(), sql=sql))
            except psycopg.Error:  # an aborted transaction: the query itself fails as well
                pass
        return execute(sql, params, many, context)

    def problems(self, *, user_id: int | None) -> list[str]:
        """Every way the watched queries strayed from the web role and `user_id`'s signed context."""
        found = [f"ran with the settings of {role}" for role in self.roles - {settings.DATABASE_APP_ROLE}]
        for query in self.queries:
            if query.role != settings.DATABASE_APP_ROLE:
                found.append(f"ran as {query.role}: {query.sql[:120]}")
            if query.system:
                found.append(f"in the system context: {query.sql[:120]}")
            if query.user_id != user_id:
                found.append(f"signed for {query.user_id}, not {user_id}: {query.sql[:120]}")
        return found


def _tenant_tables() -> re.Pattern:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relrowsecurity AND relkind IN ('r', 'p')")
        names = sorted(name for (name,) in cursor.fetchall())
    assert {"trades_papertrade", "trades_accountsettings", "monitoring_pricesnapshot"} <= set(names)
    # As the ORM writes them ("trades_papertrade") or as raw SQL might (trades_papertrade).
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(name) for name in names) + r")(?!\w)")


@pytest.fixture
def watch():
    """Watches every query of the requests made inside `with watch() as seen:`."""
    tables = _tenant_tables()

    @contextmanager
    def watching():
        seen = QueryWatch(tables)
        with connection.execute_wrapper(seen):
            yield seen

    return watching


@dataclass
class Rows:
    """One trader's rows, each marked so that it is recognised wherever it shows up."""

    user: object
    open_trade: int
    closed_trade: int
    token_key: str
    markers: list[str]
    channel: int
    push_subscription: int


def _rows_of(username: str, tag: str) -> Rows:
    user = UserFactory(username=username)
    strategy, ticker, account_id = f"{tag}-strategy-7f3", f"ZQ{tag[:2].upper()}", f"VA-{tag.upper()}-73"
    open_trade = PaperTradeFactory(owner=user, ticker=ticker, strategy=strategy)
    TradeEventFactory(trade=open_trade)
    PriceSnapshotFactory(trade=open_trade)
    closed = ClosedTradeFactory(owner=user, ticker=ticker, strategy=strategy, card_score=Decimal("7"))
    with tenancy.acting_as(user.pk):
        TradeForensics.objects.create(trade=closed, owner=user, mfe_pct=Decimal("12"), mae_pct=Decimal("-5"),
                                      first_touch="TP", snapshot_count=3, computed_at=timezone.now())
    PaperFillFactory(owner=user, option_symbol=f"{ticker}261218C00570000", order__underlying=ticker,
                     filled_at=datetime(2026, 12, 1, 15, tzinfo=UTC))
    services.account_settings_update(user=user, changes={"tradier_account_id": account_id,
                                                         "account_balance": Decimal("50000")})
    token, _ = AuthToken.objects.create(user=user)
    channel = ChannelMessageFactory(owner=user, channel__name=f"{tag}-channel-2v8").channel
    device = PushSubscriptionFactory(owner=user, channel__name=f"{tag}-device-6p1")
    return Rows(user, open_trade.pk, closed.pk, token.token_key,
                [strategy, ticker, account_id, token.token_key, username, f"{tag}-channel-2v8", f"{tag}-device-6p1"],
                channel.pk, device.pk)


@pytest.fixture
def alice_and_bob():
    """Committed by the worker role, before the test switches the connection to the web role."""
    return _rows_of("alice_w9", "alice"), _rows_of("bob_k4", "bob")


@pytest.fixture
def on_the_web(alice_and_bob, web_role):
    """The data first (as the worker), then the connection as the web role."""
    return alice_and_bob


def _current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _url(name: str, rows: Rows) -> str:
    if name in OBJECT_ROUTES:
        keyword, value = {"trade": ("pk", rows.open_trade), "closed_trade": ("trade_id", rows.closed_trade),
                          "token_key": ("token_key", rows.token_key),
                          "channel": ("pk", rows.channel),
                          "push_subscription": ("pk", rows.push_subscription)}[OBJECT_ROUTES[name]]
        return reverse(name, kwargs={keyword: value})
    return reverse(name)


def _listed_chain_url(ticker: str) -> str:
    """The chain of the ticker's first listed expiry, as the simulated market lists it now."""
    from monitoring import clock as market_clock
    from monitoring.marketdata.listing import simulated_expirations

    return f"/api/market/chain?ticker={ticker}&expiry={simulated_expirations(market_clock.now())[0].isoformat()}"


def _body(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode(errors="replace")


def _user_routes() -> set[str]:
    return {name for name, namespace, _ in routes() if namespace not in NOT_OBJECT_NAMESPACES}


def test_every_route_is_called_here():
    """A new route is read by GET below; one that takes no GET must be listed with its calls."""
    assert _user_routes() >= WRITTEN | set(NOT_READ), "Listed routes that no longer exist"


@pytest.mark.django_db(transaction=True)
def test_every_read_runs_on_the_web_role_in_the_traders_signed_context(on_the_web, watch, client):
    alice, bob = on_the_web
    client.force_login(alice.user)
    token_client = APIClient()
    # A 500 is one problem among the others (its traceback is logged), not the end of the sweep.
    client.raise_request_exception = token_client.raise_request_exception = False
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=alice.user)[1]}")
    problems = []
    for name in sorted(_user_routes() - set(NOT_READ)):
        urls = [_url(name, alice)]
        urls += {"trade-list": ["/api/trades?status=OPEN&strategy=alice-strategy-7f3", "/api/trades?ticker=ZQAL"],
                 "trade-history": ["/api/trades/history?strategy=alice-strategy-7f3&ordering=-realized_pnl"
                                   "&page_size=10",
                                   "/api/trades/history?ticker=ZQAL&close_reason=MANUAL_CLOSE&from=2026-12-01"],
                 "trade-export": ["/api/trades/export?format=json",
                                  "/api/trades/export?format=json&status=CLOSED&strategy=alice-strategy-7f3"],
                 "analytics-dataset": ["/api/analytics/dataset?format=parquet",
                                       "/api/analytics/dataset?strategy=alice-strategy-7f3"],
                 "analytics-performance": ["/api/analytics/performance?from=2026-01-01&to=2026-12-31"],
                 "analytics-exit-policy-replay": ["/api/analytics/exit-policy-replay?strategy=alice-strategy-7f3"],
                 "market-quote": ["/api/market/quote?symbols=SPY,SPY261218C00570000,ZZZZ"],
                 "market-expirations": ["/api/market/expirations?ticker=SPY"],
                 "market-chain": [_listed_chain_url("SPY")],
                 }.get(name, [])
        for url in urls:
            for how, asking in (("session", client), ("token", token_client)):
                if how == "token" and not url.startswith("/api/"):
                    continue
                with watch() as seen:
                    response = asking.get(url)
                    body = _body(response)
                where = f"{how} GET {url} ({name})"
                if response.status_code >= 500 or (response.status_code == 405 and name not in WRITTEN):
                    problems.append(f"{where}: {response.status_code}")
                if name.startswith("market-") and len(urls) > 1 and url != urls[0] and response.status_code != 200:
                    problems.append(f"{where}: {response.status_code}, not the market's answer")
                problems += [f"{where}: {problem}" for problem in seen.problems(user_id=alice.user.pk)]
                if name in COLLECTION_ROUTES or (name in OBJECT_ROUTES and response.status_code == 200):
                    problems += [f"{where}: shows Bob's {marker}" for marker in bob.markers if marker in body]
                if name in COLLECTION_ROUTES - SHOWN_AS_FIGURES and "format=parquet" not in url:
                    if not any(marker in body for marker in alice.markers):
                        problems.append(f"{where}: shows none of Alice's rows ({response.status_code})")
        if urls[0].startswith("/api/"):  # DRF's metadata: OPTIONS builds the serializers, may read the object
            with watch() as seen:
                response = client.options(urls[0])
            if response.status_code >= 500:
                problems.append(f"OPTIONS {urls[0]}: {response.status_code}")
            problems += [f"OPTIONS {urls[0]}: {problem}" for problem in seen.problems(user_id=alice.user.pk)]
        if name in OBJECT_ROUTES:  # Bob's object, whatever the method: not found, on the web role too
            for method in ("get", "post", "put", "delete"):
                response = getattr(client, method)(_url(name, bob), {}, content_type="application/json")
                if response.status_code not in (404, 405):
                    problems.append(f"{method.upper()} {_url(name, bob)}: {response.status_code} for Bob's")
    assert problems == [], "\n".join(problems)
    assert _current_user() == settings.DATABASE_APP_ROLE


@pytest.mark.django_db(transaction=True)
def test_every_write_runs_on_the_web_role_and_lands_in_the_traders_rows(on_the_web, watch, client, market):
    alice, bob = on_the_web
    client.force_login(alice.user)
    problems, called = [], set()

    def call(method: str, url: str, body=None, *, expect: int, asking=None, form=False, **extra):
        """JSON bodies for the API, form bodies (`form`) for pages and knox's views."""
        called.add(resolve(url).url_name)
        asking, body = asking or client, body or {}
        encoding = {} if form or method == "get" else {"content_type": "application/json"}
        with watch() as seen:
            response = getattr(asking, method)(url, body, **encoding, **extra)
            _body(response)
        where = f"{method.upper()} {url}"
        if response.status_code != expect:
            problems.append(f"{where}: {response.status_code}, not {expect}: {_body(response)[:300]}")
        problems.extend(f"{where}: {problem}" for problem in seen.problems(user_id=alice.user.pk))
        return response

    # A webhook and a channel first, so that the trade's changes below are written to Alice's outboxes as well.
    call("put", "/api/settings", {"webhook_url": "http://127.0.0.1:9/hook"}, expect=200)
    call("post", "/api/settings/webhook-secret", expect=201)
    channel = call("post", "/api/notification-channels", {"name": "Desk", "url": "json://127.0.0.1:9/notify",
                                                          "events": ["trade.opened"]}, expect=201).json()
    call("put", f"/api/notification-channels/{channel['id']}", {"events": ["trade.opened", "trade.manual_close"]},
         expect=200)
    call("post", f"/api/notification-channels/{channel['id']}/test", expect=202)
    device = call("post", "/api/push-subscriptions", {**PUSH_SUBSCRIPTION, "device": "Phone"}, expect=201).json()
    call("delete", f"/api/push-subscriptions/{device['id']}", expect=204)
    device = call("post", "/api/push-subscriptions", PUSH_SUBSCRIPTION, expect=201).json()
    checked = call("post", "/api/trades/validate", OPEN_BODY, expect=200).json()
    assert checked["valid"] is True and checked["preview"]["total_cost"] == "861.30"  # 2 × 4.30 × 100 + 1.30
    market.set_spot("SPY", "570")
    market.set_quote("SPY261218C00575000", "2.10", "2.30")
    spread = call("post", "/api/spreads/preview", {"ticker": "SPY", "strategy_type": "vertical", "option_type": "CALL",
                                                   "lower": "570", "upper": "575", "expiry": "2026-12-18"},
                  expect=200).json()
    assert (spread["cost"], spread["max_profit"]) == ("220.00", "280.00")  # buy 570 at 4.30, sell 575 at 2.10
    call("post", "/api/trades", {**OPEN_BODY, "qty": 500}, expect=422)  # refused by her risk limits
    opened = call("post", "/api/trades", OPEN_BODY, expect=201, HTTP_IDEMPOTENCY_KEY="web-role-1").json()
    replayed = call("post", "/api/trades", OPEN_BODY, expect=201, HTTP_IDEMPOTENCY_KEY="web-role-1")
    assert replayed.json()["id"] == opened["id"] and replayed["Idempotent-Replayed"] == "true"
    resting = call("post", "/api/trades", {**OPEN_BODY, "entry_type": "limit", "limit_price": "4.00"}, expect=201)
    assert resting.json()["status"] == TradeStatus.PENDING
    waiting = f"/api/trades/{resting.json()['id']}"
    repriced = call("post", f"{waiting}/entry/reprice", {"version": resting.json()["version"], "limit_price": "4.10"},
                    expect=202).json()
    assert call("post", f"{waiting}/entry/cancel", {"version": repriced["version"]}, expect=200).json()["status"] == (
        TradeStatus.CANCELED)
    trade = f"/api/trades/{opened['id']}"
    adjusted = call("post", f"{trade}/adjust", {"version": opened["version"], "new_sl": "3.50"}, expect=200).json()
    adjusted = call("post", f"{trade}/exit-policy", {"version": adjusted["version"],
                                                     "exit_policy": {"trail_pct": "20"}}, expect=200).json()
    call("get", f"{trade}/snapshots", expect=200)
    market.open = False  # after the bell: the close waits for the open, and is changed, then withdrawn
    queued = call("post", f"{trade}/close", {"version": adjusted["version"]}, expect=202).json()
    assert queued["queued_for_open"] is True
    as_limit = call("post", f"{trade}/close/reprice", {"version": queued["version"], "order_type": "limit",
                                                        "limit_price": "5.50"}, expect=202).json()
    withdrawn = call("post", f"{trade}/close/cancel", {"version": as_limit["version"]}, expect=200).json()
    assert withdrawn["status"] == TradeStatus.OPEN
    market.open = True
    market.set_quote(CONTRACT, "5.00", "5.20")
    closed = call("post", f"{trade}/close", {"version": withdrawn["version"]}, expect=200).json()
    assert closed["status"] == TradeStatus.CLOSED and closed["realized_pnl"] == "140.00"
    call("put", "/api/settings", {"max_positions": 9, "auto_refresh": False}, expect=200)
    call("post", "/settings/paper", expect=302, form=True)
    # API tokens: issued with the session, listed, revoked one by one, by themselves and all at once.
    issued = [call("post", "/api/auth/token", expect=200, form=True).json()["token"] for _ in range(3)]
    listed = call("get", "/api/auth/tokens", expect=200).json()
    call("delete", f"/api/auth/tokens/{listed[0]['token_key']}", expect=204)
    with_token = APIClient()
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {issued[0]}")
    call("post", "/api/auth/token/revoke", expect=204, asking=with_token, form=True)
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {issued[1]}")
    call("post", "/api/auth/token/revoke-all", expect=204, asking=with_token, form=True)
    call("delete", "/api/auth/tokens", expect=200)
    call("post", "/account/sign-out-everywhere", expect=200, form=True)
    new_password = "a different horse, battery staple"
    call("post", "/account/password/", {"old_password": PASSWORD, "new_password1": new_password,
                                        "new_password2": new_password}, expect=302, form=True)
    call("post", "/logout/", expect=302, form=True)
    call("post", "/login/", {"username": alice.user.username, "password": "not it"}, expect=200, form=True)
    call("post", "/login/", {"username": alice.user.username, "password": new_password}, expect=302, form=True)
    assert problems == [], "\n".join(problems)
    assert WRITTEN - called == set(), "Routes listed as written but not called here"

    assert _current_user() == settings.DATABASE_APP_ROLE
    with tenancy.acting_as(alice.user.pk):
        mine = PaperTrade.objects.get(pk=opened["id"])
        account = AccountSettings.objects.get(owner=alice.user)
        assert (mine.status, mine.sl_price, mine.strategy) == (TradeStatus.CLOSED, Decimal("3.50"), "web-role-open")
        assert (account.max_positions, account.auto_refresh, account.has_webhook_secret) == (9, False, True)
        assert mine.events.count() >= 6
        assert WebhookEvent.objects.filter(owner=alice.user).count() >= 2  # opened, closed
        assert set(ChannelMessage.objects.filter(channel_id=channel["id"]).values_list("kind", flat=True)) == {
            "channel.test", "trade.opened", "trade.manual_close"}
        pushed = set(ChannelMessage.objects.filter(channel_id=device["channel"]).values_list("kind", flat=True))
        assert {"trade.opened", "trade.manual_close"} <= pushed  # the device's channel hears the same events
    assert not AuthToken.objects.filter(user=alice.user).exists()
    with tenancy.acting_as(bob.user.pk):  # Bob's rows are as they were
        assert sorted(PaperTrade.objects.values_list("pk", "status")) == [
            (bob.open_trade, TradeStatus.OPEN), (bob.closed_trade, TradeStatus.CLOSED)]
        assert AccountSettings.objects.get(owner=bob.user).max_positions != 9
    assert AuthToken.objects.filter(user=bob.user, token_key=bob.token_key).exists()


@pytest.mark.django_db(transaction=True)
def test_the_staff_admin_runs_on_the_worker_role_and_leaves_the_thread_on_the_web_role(on_the_web, watch, client):
    """tradeoptions/admin.py reopens the thread's connection as the worker role for a staff view
    (the web role may not enter the system context) and puts the web role back afterwards."""
    alice, bob = on_the_web
    with tenancy.acting_as(alice.user.pk):
        account = AccountSettings.objects.get(owner=alice.user).pk
    client.force_login(UserFactory(username="olivia_s2", is_staff=True, is_superuser=True))
    for url, shown in (
        ("/admin/trades/papertrade/", ["alice-strategy-7f3", "bob-strategy-7f3"]),
        (f"/admin/trades/papertrade/{alice.open_trade}/change/", ["alice-strategy-7f3"]),
        (f"/admin/trades/papertrade/{bob.closed_trade}/change/", ["bob-strategy-7f3"]),
        ("/admin/trades/accountsettings/", ["alice_w9", "bob_k4"]),
        (f"/admin/trades/accountsettings/{account}/change/", ["VA-ALICE-73"]),
    ):
        with watch() as seen:
            response = client.get(url)
        assert response.status_code == 200, url
        assert all(marker in _body(response) for marker in shown), url
        assert seen.queries and {(query.role, query.system) for query in seen.queries} == {
            (settings.DATABASE_WORKER_ROLE, True)}, url
        assert connection.settings_dict["USER"] == settings.DATABASE_APP_ROLE
        assert _current_user() == settings.DATABASE_APP_ROLE
        with pytest.raises(tenancy.SystemContextRefused):
            with tenancy.system_context():
                pass
    form = {"broker_mode": "LOCAL_PAPER", "tradier_account_id": "VA-ALICE-73", "account_balance": "50000",
            "max_positions": "7", "daily_loss_limit": "150", "heat_limit_pct": "6", "auto_refresh": "on"}
    with watch() as seen:  # a change by staff goes through the settings service, on the worker's connection
        response = client.post(f"/admin/trades/accountsettings/{account}/change/", form)
    assert response.status_code == 302, _body(response)[:2000]
    assert {(query.role, query.system) for query in seen.queries} >= {(settings.DATABASE_WORKER_ROLE, True)}
    assert {query.role for query in seen.queries} == {settings.DATABASE_WORKER_ROLE}
    assert _current_user() == settings.DATABASE_APP_ROLE
    with tenancy.acting_as(alice.user.pk):
        assert AccountSettings.objects.get(owner=alice.user).max_positions == 7
    client.force_login(alice.user)  # the thread's next request is a trader's, on the web role
    with watch() as seen:
        assert client.get("/api/trades").status_code == 200
    assert seen.problems(user_id=alice.user.pk) == [] and seen.queries


@pytest.mark.django_db
def test_the_watch_sees_a_read_outside_the_signed_context_and_one_in_the_system_context(trader, watch):
    """The checks above can fail: on the worker role (the suite's), an unsigned read and a system
    read are both reported, and so is a read signed for someone else."""
    with watch() as seen:
        list(PaperTrade.objects.all())
        with tenancy.system_context():
            list(PaperTrade.objects.all())
        with tenancy.acting_as(trader.pk + 1):
            list(PaperTrade.objects.all())
    problems = seen.problems(user_id=trader.pk)
    assert f"ran with the settings of {settings.DATABASE_WORKER_ROLE}" in problems
    assert sum("signed for None" in problem for problem in problems) == 2
    assert sum("in the system context" in problem for problem in problems) == 1
    assert sum(f"signed for {trader.pk + 1}" in problem for problem in problems) == 1
    with watch() as seen, tenancy.acting_as(trader.pk):
        list(PaperTrade.objects.all())
    assert [problem.split(":")[0] for problem in seen.problems(user_id=trader.pk)] == [
        f"ran with the settings of {settings.DATABASE_WORKER_ROLE}", f"ran as {settings.DATABASE_WORKER_ROLE}"]


@pytest.mark.django_db(transaction=True)
def test_a_trade_at_tradier_runs_on_the_web_role_too(on_the_web, watch, client, market, fake_tradier,
                                                     tradier_budget_of_its_own):
    """The sandbox's paths (token decrypted from Alice's row, orders over HTTP, a refused token's
    rejected trade) on the web role, in Alice's signed context."""
    alice, _ = on_the_web
    fake_tradier.add_account(token="sbxTOKEN-webrole-1a2b", account_id="VA00007373", cash=Decimal("10000"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    client.force_login(alice.user)
    problems = []

    def call(method, url, body, expect):
        with watch() as seen:
            response = getattr(client, method)(url, body, content_type="application/json")
        if response.status_code != expect:
            problems.append(f"{method.upper()} {url}: {response.status_code}, not {expect}: {response.content[:300]}")
        problems.extend(f"{method.upper()} {url}: {problem}" for problem in seen.problems(user_id=alice.user.pk))
        return response.json()

    call("put", "/api/settings", {"broker_mode": "TRADIER_SANDBOX", "tradier_account_id": "VA00007373",
                                  "tradier_sandbox_token": "sbxTOKEN-webrole-1a2b"}, 200)
    opened = call("post", "/api/trades", OPEN_BODY, 201)
    resting = call("post", "/api/trades", {**OPEN_BODY, "entry_type": "limit", "limit_price": "4.00"}, 201)
    withdrawn = call("post", f"/api/trades/{resting['id']}/entry/cancel", {"version": resting["version"]}, 200)
    fake_tradier.set_quote(CONTRACT, "5.00", "5.20")
    closed = call("post", f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, 200)
    summary = call("get", "/api/account/summary", None, 200)  # Tradier's balances, read with Alice's token
    call("put", "/api/settings", {"tradier_sandbox_token": "sbx-expired-0000"}, 200)
    refused = call("post", "/api/trades", OPEN_BODY, 502)
    assert problems == [], "\n".join(problems)
    assert summary["broker_mode"] == "TRADIER_SANDBOX" and summary["realized_pnl"] != "0.00"
    assert (opened["broker_mode"], closed["status"], refused["trade"]["status"]) == (
        "TRADIER_SANDBOX", TradeStatus.CLOSED, TradeStatus.REJECTED)
    assert withdrawn["status"] == TradeStatus.CANCELED
