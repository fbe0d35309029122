"""Browser notifications, in a real Chromium against a live server: the trader opts in on the
settings page (only then is the browser asked for permission), and a trade that closes while the
portfolio is open shows a notification beside its sound and toast. The webhook fields and the
secret shown once live on the same page."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tests.factories import PASSWORD, UserFactory
from trades import services
from trades.models import TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

CONTRACT = "SPY261218C00570000"
# Records what the page asks of the Notifications API, and whether the browser fired `show` for
# each notification; the browser still does the real thing.
WATCH_NOTIFICATIONS = """
window.permissionAsked = 0;
window.shownNotifications = [];
const RealNotification = window.Notification;
const realAsk = RealNotification.requestPermission.bind(RealNotification);
class WatchedNotification extends RealNotification {
  constructor(title, options) {
    super(title, options);
    const record = { title, body: options?.body, tag: options?.tag, shown: false, error: false };
    this.addEventListener("show", () => { record.shown = true; });
    this.addEventListener("error", () => { record.error = true; });
    window.shownNotifications.push(record);
  }
}
WatchedNotification.requestPermission = (...args) => { window.permissionAsked += 1; return realAsk(...args); };
window.Notification = WatchedNotification;
"""


@pytest.fixture
def signed_in(browser, live_server):
    """Alice in a browser that grants notifications to the site when asked."""
    UserFactory(username="alice")
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(WATCH_NOTIFICATIONS)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    yield page
    context.close()


def _open_trade(user):
    data = {"ticker": "SPY", "option_type": "CALL", "strike": Decimal("570"), "expiry": date(2026, 12, 18), "qty": 2,
            "sl_price": Decimal("3.00"), "tp_price": Decimal("6.50")}
    result = services.trade_open(user=user, data=services.TradeOpenInput(**data))
    assert result.trade.status == TradeStatus.OPEN, result.problem
    return result.trade


def _take_profit_fills(market):
    from monitoring.services import match_paper_orders
    from monitoring.sync import sync_orders

    market.set_quote(CONTRACT, "6.60", "6.80")
    assert match_paper_orders(market=market) == 1
    sync_orders(market=market)


def test_a_trader_who_opted_in_is_notified_when_a_trade_closes(signed_in, market, live_server):
    page = signed_in
    alice = get_user_model().objects.get(username="alice")
    _open_trade(alice)

    page.goto(f"{live_server.url}/settings/")
    expect(page.locator("#s-browser-notifications")).not_to_be_checked()
    assert page.evaluate("window.permissionAsked") == 0  # nothing asked before the trader chooses
    page.check("#s-browser-notifications")
    expect(page.locator("#s-browser-notifications")).to_be_checked()
    page.wait_for_function("window.permissionAsked === 1")  # asked once, as the box was ticked
    page.click("#settings-save")
    expect(page.locator(".toast-success")).to_contain_text("Settings saved")
    assert services.account_settings_for(user=alice).browser_notifications is True

    page.click("nav >> text=Portfolio")
    expect(page.locator("#positions tr.position")).to_have_count(1)
    _take_profit_fills(market)
    page.click("#refresh-all")
    expect(page.locator(".toast-success")).to_contain_text("take-profit hit")
    expect(page.locator("body")).to_have_attribute("data-last-sound", "profit")
    page.wait_for_function("window.shownNotifications[0]?.shown")  # the browser fired `show`
    (shown,) = page.evaluate("window.shownNotifications")
    assert shown["title"] == "tradeoptions: SPY 570C"
    assert shown["body"].startswith("SPY 570C: take-profit hit, +$") and shown["tag"].startswith("trade-")
    assert page.problems == []


def test_without_the_opt_in_a_close_only_rings(signed_in, market):
    page = signed_in
    alice = get_user_model().objects.get(username="alice")
    _open_trade(alice)
    page.reload()
    expect(page.locator("#positions tr.position")).to_have_count(1)
    _take_profit_fills(market)
    page.click("#refresh-all")
    expect(page.locator(".toast-success")).to_contain_text("take-profit hit")
    assert page.evaluate("window.shownNotifications") == []  # permission granted, but not chosen
    assert page.evaluate("window.permissionAsked") == 0
    assert page.problems == []


def test_the_webhook_secret_is_shown_once_on_the_settings_page(signed_in, live_server):
    page = signed_in
    page.goto(f"{live_server.url}/settings/")
    expect(page.locator("#webhook-secret-state")).to_contain_text("no signing secret yet")
    page.fill("#s-webhook-url", "ftp://example.com/hook")
    page.click("#settings-save")
    expect(page.locator('[data-error-for="webhook_url"]')).to_contain_text("http:// or https://")
    page.fill("#s-webhook-url", f"{live_server.url}/hooks/mine")
    page.click("#settings-save")
    expect(page.locator(".toast-success")).to_contain_text("Settings saved")
    page.click("#webhook-secret-create")
    expect(page.locator("#webhook-secret-issued")).to_be_visible()
    secret = page.locator("#webhook-secret-value").input_value()
    assert secret.startswith("whsec_")
    expect(page.locator("#webhook-secret-state")).to_have_text("(signing secret set)")
    page.reload()
    expect(page.locator("#webhook-secret-state")).to_have_text("(signing secret set)")
    expect(page.locator("#webhook-secret-issued")).to_be_hidden()
    assert secret not in page.content()
    assert page.locator("#s-webhook-url").input_value() == f"{live_server.url}/hooks/mine"
    assert page.problems == []
