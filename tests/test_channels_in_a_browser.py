"""Notification channels on the settings page, in a real Chromium against a live server: a wrong
URL is refused beside its field, a channel is added and shown only by its hint, a test message
reaches a local receiver through Apprise, and the delivery log says so."""

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, UserFactory
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    running = WebhookReceiver().start()
    yield running
    running.stop()


@pytest.fixture
def signed_in(browser, live_server, monkeypatch):
    """Alice on the settings page; queued deliveries run at once, in the server's thread."""
    from tradeoptions.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    UserFactory(username="alice")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/settings/")
    yield page
    context.close()


def test_a_trader_adds_a_channel_sends_a_test_and_reads_the_log(signed_in, receiver):
    page = signed_in
    expect(page.locator("#channel-list-empty")).to_be_visible()
    page.fill("#c-name", "Desk")
    page.fill("#c-url", "nosuchservice://abc")
    page.click("#channel-save")
    expect(page.locator('#channel-form [data-error-for="url"]')).to_contain_text("Apprise")
    url = f"json://127.0.0.1:{receiver.port}/notify/s3cretPath42"
    page.fill("#c-url", url)
    page.check('#channel-form input[name="events"][value="trade.tp_hit"]')
    page.fill("#c-quiet-start", "22:00")
    page.fill("#c-quiet-end", "07:00")
    page.click("#channel-save")
    row = page.locator("#channel-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("json://…h42")
    expect(row).to_contain_text("Take-profit hit")
    expect(row).to_contain_text("22:00–07:00, held")
    assert "s3cretPath42" not in page.content()
    row.get_by_role("button", name="Send test").click()
    expect(page.locator("#channel-log tbody")).to_contain_text("Delivered", timeout=15_000)
    assert [request.json()["title"] for request in receiver.requests] == ["tradeoptions: test message"]
    assert page.problems == []
