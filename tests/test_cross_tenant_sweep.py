"""Every route of the URL conf, swept for cross-tenant leaks: Bob never reaches Alice's rows.

The routes are read from the URL resolver itself, so a new route cannot be forgotten: each must
be classified below, as a route on one object (Bob gets 404 for Alice's id, whatever the method),
as a collection (a list, an export, a report or a page: Alice's rows are not in Bob's answer), or
as a route that serves no user's rows (with the reason). An unclassified route fails the sweep.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone
from knox.models import AuthToken

from analytics.models import TradeForensics
from tests.factories import (
    ChannelMessageFactory,
    ClosedTradeFactory,
    PaperFillFactory,
    PaperTradeFactory,
    PriceSnapshotFactory,
    PushSubscriptionFactory,
    TradeExitPartFactory,
    UserFactory,
)
from tradeoptions import tenancy
from trades import services
from trades.models import LegSide, OptionType, PaperTrade, StrategyType, TradeLeg

# Routes on one object: the URL keyword names the object; the value says which of Alice's objects.
OBJECT_ROUTES = {
    "trade-detail": "trade", "trade-adjust": "trade", "trade-close": "trade", "trade-snapshots": "trade",
    "trade-exit-policy": "trade",
    "trade-entry-cancel": "trade", "trade-entry-reprice": "trade", "trade-close-cancel": "trade",
    "trade-close-reprice": "trade",
    "analytics-forensics": "closed_trade", "api-token-detail": "token_key",
    "notification-channel-detail": "channel", "notification-channel-send-test": "channel",
    "notification-channel-log": "channel", "push-subscription-detail": "push_subscription",
}
# Routes that answer with many of the caller's rows (or a page about the caller's account).
COLLECTION_ROUTES = {
    "home", "settings", "api-settings", "api-tokens", "trade-list", "trade-history", "trade-export",
    "analytics-performance", "analytics-calibration", "analytics-exit-replay", "analytics-exit-policy-replay",
    "analytics-fill-quality",
    "analytics-dataset", "api-account-summary", "notification-channel-list",
    "push-subscription-list",
}
# Routes that serve no user's rows, and why.
NOT_OBJECT_ROUTES = {
    "market-status": "the market clock, the same for everyone",
    "service-worker": "the service worker script, the same for everyone; no rows",
    "web-app-manifest": "the web app manifest (name, icons), the same for everyone; no rows",
    "login": "signs in; no rows", "logout": "signs out; no rows",
    "password-change": "changes the caller's own password (request.user; tests/test_accounts.py)",
    "password-changed": "says the caller's password changed; no rows",
    "sign-out-everywhere": "ends the caller's own tokens and sessions (tests/test_accounts.py: Bob's live on)",
    "api-token": "issues a token to the caller, for the caller",
    "api-token-revoke": "revokes the token the request is made with",
    "api-token-revoke-all": "revokes the caller's own tokens (filtered on request.user, tests/test_api_tokens.py)",
    "api-schema": "the OpenAPI document", "api-docs": "the Swagger page", "api-root": "DRF's index of routes",
    "trade-validate": "checks a trade the caller would open; writes and returns no rows",
    "settings-paper": "switches the caller's own account back to paper (request.user's settings row only)",
    "api-webhook-secret": "makes a new signing secret for the caller's own webhook; shows no one else's rows",
    "market-quote": "quotes from the market-data source, the same for everyone (cached and shared); no rows",
    "market-expirations": "a ticker's listed expiries from the market-data source, the same for everyone; no rows",
    "market-chain": "an option chain from the market-data source, the same for everyone; no rows",
    "api-spread-preview": "prices legs the caller describes at the market's quotes; reads and writes no rows",
    "api-broker-status": "the caller's own broker trouble, from cache keys built from request.user, no rows "
                         "(monitoring/tests/test_broker_trouble.py: Bob does not see Alice's)",
}
# Whole namespaces, and why.
NOT_OBJECT_NAMESPACES = {
    "admin": "staff only (Django's admin permissions); a trader is sent to the login page, see below",
}
# Collections that show no names, only figures (calibration: counts per score decile; the account
# summary: sums of money): Bob's answer
# must be the answer an account without any rows gets.
SHOWN_AS_FIGURES = {"analytics-calibration", "api-account-summary"}
DETAIL_METHODS = ("get", "post", "put", "patch", "delete")
STRATEGY = "alice-only-strategy-7f3"
UNDERLYING = "ZQAL"
# Contracts only Alice's spread legs name (no trade row carries them): they show up only where legs do.
LEG_CONTRACTS = ("ZQAL261218P00123000", "ZQAL261218P00118000")


def routes():
    """(name, namespace, pattern) of every route in the URL conf."""

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
            else:
                yield entry.name, namespace, prefix + str(entry.pattern)

    return list(walk(get_resolver().url_patterns, "/", None))


def test_every_route_is_classified():
    unclassified = sorted({
        f"{pattern} (name={name!r})" for name, namespace, pattern in routes()
        if namespace not in NOT_OBJECT_NAMESPACES
        and name not in OBJECT_ROUTES and name not in COLLECTION_ROUTES and name not in NOT_OBJECT_ROUTES
    })
    assert not unclassified, (
        "Classify these routes in tests/test_cross_tenant_sweep.py (OBJECT_ROUTES, COLLECTION_ROUTES or "
        f"NOT_OBJECT_ROUTES with a reason), so the cross-tenant sweep covers them: {unclassified}")
    stale = (set(OBJECT_ROUTES) | COLLECTION_ROUTES | set(NOT_OBJECT_ROUTES)) - {name for name, _, _ in routes()}
    assert not stale, f"Classified routes that no longer exist: {sorted(stale)}"


@pytest.fixture
def alices_rows(trader):
    """One of everything Alice can own, marked so that it is recognised wherever it shows up."""
    open_trade = PaperTradeFactory(owner=trader, ticker=UNDERLYING, strategy=STRATEGY)
    closed = ClosedTradeFactory(owner=trader, ticker=UNDERLYING, strategy=STRATEGY, card_score=Decimal("7"))
    PriceSnapshotFactory(trade=open_trade)
    TradeExitPartFactory(trade=closed, pnl_gross=Decimal("4321.98"))
    spread = PaperTradeFactory(owner=trader, ticker=UNDERLYING, strategy=STRATEGY, legs=False,
                               strategy_type=StrategyType.VERTICAL)
    with tenancy.acting_as(trader.pk):
        for position, (symbol, side) in enumerate(zip(LEG_CONTRACTS, (LegSide.LONG, LegSide.SHORT), strict=True)):
            TradeLeg.objects.create(owner=trader, trade=spread, position=position, option_symbol=symbol,
                                    option_type=OptionType.PUT, strike=Decimal(symbol[-8:]) / 1000,
                                    expiry=spread.expiry, side=side, entry_price=Decimal("1"))
    with tenancy.acting_as(trader.pk):
        TradeForensics.objects.create(trade=closed, owner=trader, mfe_pct=Decimal("12"), mae_pct=Decimal("-5"),
                                      first_touch="TP", snapshot_count=3, computed_at=timezone.now())
    PaperFillFactory(owner=trader, option_symbol=f"{UNDERLYING}261218C00570000",
                     order__underlying=UNDERLYING, filled_at=datetime(2026, 12, 1, 15, tzinfo=UTC))
    services.account_settings_update(user=trader, changes={"tradier_account_id": "VA-ALICE-73"},
                                     sandbox_token=None, live_token=None, confirmation="")
    token, _ = AuthToken.objects.create(user=trader)
    channel = ChannelMessageFactory(owner=trader, channel__name="alice-only-channel-5q1",
                                    title="alice-only-message-8w2").channel
    device = PushSubscriptionFactory(owner=trader, channel__name="alice-only-device-4m6")
    ids = {"trade": open_trade.pk, "closed_trade": closed.pk, "token_key": token.token_key, "channel": channel.pk,
           "push_subscription": device.pk}
    markers = [STRATEGY, UNDERLYING, "VA-ALICE-73", token.token_key, trader.username, "4321.98", *LEG_CONTRACTS,
               "alice-only-channel-5q1", "alice-only-message-8w2", "alice-only-device-4m6"]
    return ids, markers


def _url(name: str, ids: dict) -> str:
    if name in OBJECT_ROUTES:
        keyword = {"trade": "pk", "closed_trade": "trade_id", "token_key": "token_key",
                   "channel": "pk", "push_subscription": "pk"}[OBJECT_ROUTES[name]]
        return reverse(name, kwargs={keyword: ids[OBJECT_ROUTES[name]]})
    return reverse(name)


def _body(response) -> str:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return content.decode()


@pytest.mark.parametrize("name", sorted(OBJECT_ROUTES))
def test_bob_gets_404_for_alices_object_whatever_the_method(name, alices_rows, trader, other_trader, client):
    ids, _ = alices_rows
    url = _url(name, ids)
    client.force_login(other_trader)
    as_bob = {method: getattr(client, method)(url, {}, content_type="application/json").status_code
              for method in DETAIL_METHODS}
    client.force_login(trader)
    as_alice = {method: getattr(client, method)(url, {}, content_type="application/json").status_code
                for method in DETAIL_METHODS}
    # 405 only where the route takes no such method at all (Alice gets 405 too): nothing to hide there.
    assert all(as_bob[method] == 404 or as_bob[method] == as_alice[method] == 405 for method in DETAIL_METHODS), (
        url, as_bob, as_alice)
    assert any(status not in (404, 405) for status in as_alice.values()), (url, as_alice)  # the id is hers


@pytest.mark.parametrize("name", sorted(OBJECT_ROUTES))
def test_bob_cannot_tell_alices_object_from_one_that_does_not_exist(name, alices_rows, other_trader, client):
    """The id in the URL is the only user-supplied id that reaches a stored reference (close and
    adjust write the trade's events): status and body are the same for Alice's and for none."""
    ids, _ = alices_rows
    with tenancy.system_context():
        beyond = max(PaperTrade.objects.values_list("id", flat=True)) + 1000
    missing = {"trade": beyond, "closed_trade": beyond, "token_key": "0" * len(ids["token_key"]),
               "channel": ids["channel"] + 1000, "push_subscription": ids["push_subscription"] + 1000}
    client.force_login(other_trader)
    for method in DETAIL_METHODS:
        alices, nobodys = (getattr(client, method)(_url(name, which), {}, content_type="application/json")
                           for which in (ids, missing))
        assert (alices.status_code, _body(alices)) == (nobodys.status_code, _body(nobodys)), (name, method)


@pytest.mark.parametrize("name", sorted(COLLECTION_ROUTES))
def test_alices_rows_are_in_no_list_export_report_or_page_of_bobs(name, alices_rows, trader, other_trader,
                                                                   client):
    _, markers = alices_rows
    urls = [_url(name, {})] + ([_url(name, {}) + "?format=json"] if name == "trade-export" else [])
    for url in urls:
        client.force_login(other_trader)
        bobs = _body(client.get(url))
        client.force_login(trader)
        alices = _body(client.get(url))
        assert [marker for marker in markers if marker in bobs] == [], url
        if name in SHOWN_AS_FIGURES:
            client.force_login(UserFactory(username="nobody"))
            empty = _body(client.get(url))
            assert bobs == empty != alices, url
        else:
            assert any(marker in alices for marker in markers), f"{url} shows Alice none of her rows: a vacuous check"


def test_alices_spread_legs_reach_her_answers_and_never_bobs(alices_rows, trader, other_trader, client):
    """The legs ride on the trade answers (list, detail, history): each is scoped with its trade,
    and the database itself hides the leg rows from Bob."""
    client.force_login(trader)
    alices = _body(client.get(reverse("trade-list")))
    assert all(contract in alices for contract in LEG_CONTRACTS)
    client.force_login(other_trader)
    assert not any(contract in _body(client.get(reverse("trade-list"))) for contract in LEG_CONTRACTS)
    with tenancy.acting_as(other_trader.pk):
        assert not TradeLeg.objects.filter(option_symbol__in=LEG_CONTRACTS).exists()


def test_the_admin_sends_a_trader_to_the_login_page(alices_rows, other_trader, client):
    ids, _ = alices_rows
    client.force_login(other_trader)
    response = client.get(f"/admin/trades/papertrade/{ids['trade']}/change/")
    assert response.status_code == 302 and "/login/" in response["Location"]
