"""The pages, in a real browser against a live server."""

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, PaperTradeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_trader_logs_in_sees_her_positions_and_logs_out(live_server, page):
    alice = UserFactory(username="alice")
    PaperTradeFactory(owner=alice, ticker="NVDA")
    PaperTradeFactory(owner=UserFactory(username="bob"), ticker="TSLA")
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator(".who").inner_text() == "alice"
    assert page.locator(".badge").inner_text() == "LOCAL PAPER"
    expect(page.locator("#positions")).to_contain_text("NVDA")
    assert "TSLA" not in page.locator("main").inner_text()
    page.click("text=Log out")
    page.wait_for_url("**/login/")


def test_a_wrong_password_is_told_plainly(live_server, page):
    UserFactory(username="alice")
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "not it")
    page.click("button[type=submit]")
    assert "didn't match" in page.locator("[role=alert]").inner_text()
