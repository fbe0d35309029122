"""What the trader sees of the monitor's protection work, in a real Chromium against a live server:
a position without its bracket says UNPROTECTED until the order cycle attaches one, and broker
trouble the monitor meets reaches the page as a banner without any request of the trader's
failing."""

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from brokers.base import BrokerUnavailable
from brokers.paper import LocalPaperBroker
from monitoring.sync import sync_orders
from tests.test_portfolio_in_a_browser import alice, device, open_trade, position  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


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
