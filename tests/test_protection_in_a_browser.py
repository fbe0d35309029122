"""What the trader sees of the monitor's protection work, in a real Chromium against a live server:
a position without its bracket says UNPROTECTED until the order cycle attaches one, and broker
trouble the monitor meets reaches the page as a banner without any request of the trader's
failing."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from brokers.base import BrokerUnavailable
from brokers.models import BrokerMode
from brokers.paper import LocalPaperBroker
from monitoring.sync import sync_orders
from tests.test_portfolio_in_a_browser import alice, device, open_trade, position  # noqa: F401 - fixtures
from trades import services

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "sbxTOKEN-browser-banner-5a4b3c"
ACCOUNT = "VA00007070"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def test_a_position_without_its_bracket_says_unprotected_until_the_monitor_attaches_one(
        device, market, alice, monkeypatch):  # noqa: F811
    place = LocalPaperBroker.place_oco_order
    failures = iter([BrokerUnavailable("down"), BrokerUnavailable("still down")])

    def flaky(self, sl, tp):
        if (failure := next(failures, None)) is not None:
            raise failure
        return place(self, sl, tp)

    monkeypatch.setattr(LocalPaperBroker, "place_oco_order", flaky)
    trade = open_trade(alice)
    page = device()
    tag = position(page).locator(".status-unprotected")
    expect(tag).to_have_text("UNPROTECTED")
    expect(tag).to_have_attribute("title", trade.attention_reason)
    expect(position(page).locator(".status-attention")).to_have_count(0)  # one loud word, not two

    market.advance(minutes=1)
    sync_orders(market=market)  # the order cycle: the retry is due, the bracket goes on
    page.click("#refresh-all")
    expect(position(page).locator(".status-unprotected")).to_have_count(0)
    expect(position(page).locator(".status-attention")).to_have_count(0)
    assert page.problems == []


def test_broker_trouble_the_monitor_meets_is_a_banner_without_a_request_of_the_trader_failing(
        device, market, alice, fake_tradier, tradier_budget_of_its_own):  # noqa: F811
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.set_quote("SPY261218C00570000", "4.10", "4.30")
    services.account_settings_update(user=alice, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                          "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    open_trade(alice)
    fake_tradier.maintenance = True
    sync_orders(market=market)  # the order cycle finds Tradier in maintenance
    page = device()
    banner = page.locator(".banner[data-code=broker_unavailable]")
    expect(banner).to_contain_text("The broker is unavailable right now")
    expect(banner).to_contain_text("maintenance")

    fake_tradier.maintenance = False
    fake_tradier.accounts[ACCOUNT].token = "sbxTOKEN-rotated-elsewhere"  # and then refuses the token
    sync_orders(market=market)
    page.reload()
    expect(page.locator(".banner[data-code=broker_reauthenticate]")).to_contain_text("Re-authenticate")
    expect(page.locator(".banner[data-code=broker_unavailable]")).to_have_count(0)  # that one is over
    assert TOKEN not in page.content()

    page.locator(".banner[data-code=broker_reauthenticate] button", has_text="Dismiss").click()
    expect(page.locator(".banner")).to_have_count(0)
    assert page.problems == []


def test_a_forbidden_account_is_a_banner_of_its_own(device, market, alice, fake_tradier,  # noqa: F811
                                                     tradier_budget_of_its_own):
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.set_quote("SPY261218C00570000", "4.10", "4.30")
    services.account_settings_update(user=alice, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                          "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    open_trade(alice)
    fake_tradier.forbid(ACCOUNT)
    sync_orders(market=market)  # the order cycle meets the 403

    page = device()
    banner = page.locator(".banner[data-code=broker_forbidden]")
    expect(banner).to_contain_text("Tradier does not allow this account to trade")
    expect(banner).to_contain_text("Your token is fine")
    expect(page.locator(".banner[data-code=broker_reauthenticate]")).to_have_count(0)
    assert TOKEN not in page.content() and ACCOUNT not in page.content()
    assert page.problems == []
