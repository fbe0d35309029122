"""The ops admin: staff see across tenants through the system context; tokens stay write-only."""

import pytest
from django import forms

from brokers.models import BrokerMode
from tests.factories import PaperTradeFactory, PriceSnapshotFactory, TradeEventFactory
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, EventKind, PaperTrade, TradeEvent

TOKEN = "live-token-KNOWN-4711"


def _as_posted(form) -> dict:
    """The admin form's current values, as the browser would post them back."""
    data = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, forms.SplitDateTimeWidget):
            date_part, time_part = field.widget.decompress(value)
            data[f"{name}_0"], data[f"{name}_1"] = date_part or "", time_part or ""
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


@pytest.fixture
def staff_client(client, ops_user):
    client.force_login(ops_user)
    return client


def test_staff_see_every_tenants_trades(staff_client, trader, other_trader):
    PaperTradeFactory(owner=trader, ticker="AAPL")
    PaperTradeFactory(owner=other_trader, ticker="NVDA")
    page = staff_client.get("/admin/trades/papertrade/")
    assert page.status_code == 200
    assert b"AAPL" in page.content and b"NVDA" in page.content


def test_filters_and_search_work(staff_client, trader):
    PaperTradeFactory(owner=trader, ticker="AAPL", strategy="breakout")
    PaperTradeFactory(owner=trader, ticker="NVDA", strategy="momentum")
    page = staff_client.get("/admin/trades/papertrade/?q=NVDA&strategy=momentum&status__exact=OPEN")
    assert page.status_code == 200 and b"NVDA" in page.content and b"AAPL" not in page.content


def test_a_trader_cannot_use_the_admin(client, trader):
    client.force_login(trader)
    response = client.get("/admin/trades/papertrade/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_a_staff_edit_is_written_to_the_trades_event_log(staff_client, trader):
    trade = PaperTradeFactory(owner=trader)
    page = staff_client.get(f"/admin/trades/papertrade/{trade.pk}/change/")
    data = _as_posted(page.context["adminform"].form)
    data.update({"sl_price": "2.50", "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0"})
    response = staff_client.post(f"/admin/trades/papertrade/{trade.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    with tenancy.acting_as(trader.pk):
        saved = PaperTrade.objects.get(pk=trade.pk)
        event = TradeEvent.objects.get(trade=trade)
    assert str(saved.sl_price) == "2.5000" and saved.version == 2
    assert event.kind == EventKind.STAFF_EDIT and event.actor_user_id is not None
    assert event.payload["changes"]["sl_price"] == {"from": "3.0000", "to": "2.5000"}


def test_events_and_snapshots_are_read_only(staff_client, trader):
    event = TradeEventFactory(trade=PaperTradeFactory(owner=trader))
    snapshot = PriceSnapshotFactory(trade=event.trade)
    urls = [f"/admin/trades/tradeevent/{event.pk}/change/", f"/admin/monitoring/pricesnapshot/{snapshot.pk}/change/"]
    for url in urls:
        page = staff_client.get(url)
        assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content
        assert staff_client.post(url, {}).status_code == 403
    assert staff_client.get("/admin/trades/tradeevent/add/").status_code == 403


def test_tokens_are_write_only_in_the_admin(staff_client, trader):
    account = services.account_settings_for(user=trader)
    url = f"/admin/trades/accountsettings/{account.pk}/change/"
    data = {"broker_mode": BrokerMode.TRADIER_SANDBOX, "tradier_account_id": "VA000001", "account_balance": "5000",
            "max_positions": "5", "daily_loss_limit": "150", "heat_limit_pct": "6", "auto_refresh": "on",
            "new_sandbox_token": TOKEN}
    assert staff_client.post(url, data).status_code == 302
    with tenancy.acting_as(trader.pk):
        account = AccountSettings.objects.get(pk=account.pk)
    assert account.broker_token(BrokerMode.TRADIER_SANDBOX) == TOKEN
    page = staff_client.get(url)
    listing = staff_client.get("/admin/trades/accountsettings/")
    for content in (page.content, listing.content):
        assert TOKEN.encode() not in content
        assert account.tradier_sandbox_token_encrypted.encode() not in content


def test_live_mode_is_refused_while_live_trading_is_off(staff_client, trader, settings):
    settings.ALLOW_LIVE_TRADING = False
    account = services.account_settings_for(user=trader)
    data = {"broker_mode": BrokerMode.TRADIER_LIVE, "account_balance": "5000", "max_positions": "5",
            "daily_loss_limit": "150", "heat_limit_pct": "6", "new_live_token": TOKEN}
    page = staff_client.post(f"/admin/trades/accountsettings/{account.pk}/change/", data)
    assert page.status_code == 200 and b"ALLOW_LIVE_TRADING" in page.content
    assert TOKEN.encode() not in page.content
    with tenancy.acting_as(trader.pk):
        assert AccountSettings.objects.get(pk=account.pk).broker_mode == BrokerMode.LOCAL_PAPER


def test_staff_see_each_webhook_event_with_its_delivery_attempts(staff_client, trader):
    from tests.factories import WebhookDeliveryFactory

    failed = WebhookDeliveryFactory(owner=trader, attempt=1, status_code=503, error="HTTP 503", duration_ms=41)
    WebhookDeliveryFactory(owner=trader, event=failed.event, attempt=2, status_code=200, duration_ms=17)
    listing = staff_client.get("/admin/trades/webhookevent/")
    assert listing.status_code == 200 and str(failed.event.pk).encode() in listing.content
    page = staff_client.get(f"/admin/trades/webhookevent/{failed.event.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "HTTP 503" in text and "503" in text and "hooks.example.com" in text and ">41<" in text.replace(" ", "")
    attempts = staff_client.get("/admin/trades/webhookdelivery/")
    assert attempts.status_code == 200 and b"HTTP 503" in attempts.content
    assert staff_client.post(f"/admin/trades/webhookevent/{failed.event.pk}/delete/").status_code == 403


def test_the_webhook_secret_is_not_in_the_settings_admin(staff_client, trader):
    secret = services.webhook_secret_rotate(user=trader)
    with tenancy.system_context():
        account = AccountSettings.objects.get(owner=trader)
    page = staff_client.get(f"/admin/trades/accountsettings/{account.pk}/change/")
    assert page.status_code == 200 and secret not in page.content.decode()
    assert account.webhook_secret_encrypted not in page.content.decode()
