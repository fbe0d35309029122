"""While an account trades live, every page says LIVE; one click goes back to paper."""

import pytest
from playwright.sync_api import expect

from brokers.models import BrokerMode
from tests.factories import PASSWORD, UserFactory
from trades import services

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["/", "/settings/"]


def test_every_page_says_live_and_one_click_goes_back_to_paper(live_server, page, settings):
    settings.ALLOW_LIVE_TRADING = True
    alice = UserFactory(username="alice")
    services.account_settings_update(user=alice, changes={"broker_mode": BrokerMode.TRADIER_LIVE,
                                                          "tradier_account_id": "6YA0001"},
                                     live_token="liveTOKEN-browser-0f1e2d3c", confirmation="LIVE TRADING")
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#live-banner")).to_be_visible()
        expect(page.locator("#live-banner")).to_contain_text("LIVE")
        expect(page.locator("#broker-mode")).to_contain_text("LIVE")

    page.click("#back-to-paper")  # no typing: going back to safety is one click
    page.wait_for_url(f"{live_server.url}/settings/")
    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#live-banner")).to_have_count(0)
        expect(page.locator("#broker-mode")).to_have_text("LOCAL PAPER")
    assert services.account_settings_for(user=alice).broker_mode == BrokerMode.LOCAL_PAPER
