"""A forbidden Tradier account (its 403), as the trader sees it in a real Chromium: the monitor's
banner says trading is not allowed (not that the token is wrong), in the trader's words."""

from decimal import Decimal

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from brokers.models import BrokerMode
from monitoring.sync import sync_orders
from tests.test_portfolio_in_a_browser import alice, device, open_trade  # noqa: F401 - fixtures
from trades import services

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "sbxTOKEN-browser-forbidden-7c6b5a"
ACCOUNT = "VA00007171"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def test_a_forbidden_account_is_a_banner_of_its_own(device, market, alice, fake_tradier):  # noqa: F811
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
