"""The ops admin: staff see across tenants through the system context; tokens stay write-only."""

from decimal import Decimal

import pytest
from django import forms
from django.contrib.admin.models import LogEntry

from brokers.models import BrokerMode
from tests.factories import ClosedTradeFactory, PaperTradeFactory, PriceSnapshotFactory, TradeEventFactory
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, Actor, EventKind, PaperTrade, TradeEvent, TradeStatus

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


def _change_url(trade) -> str:
    return f"/admin/trades/papertrade/{trade.pk}/change/"


def _posted_form(staff_client, trade, **changes) -> dict:
    page = staff_client.get(_change_url(trade))
    data = _as_posted(page.context["adminform"].form)
    data.update({"events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0", **changes})
    return data


def _stored(trade) -> tuple[PaperTrade, list[TradeEvent]]:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=trade.pk), list(TradeEvent.objects.filter(trade=trade))


def test_a_staff_edit_goes_through_the_gate_and_into_the_event_log(staff_client, trader):
    trade = PaperTradeFactory(owner=trader, strategy="momentum")
    response = staff_client.post(_change_url(trade), _posted_form(staff_client, trade, strategy="breakout"))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    saved, events = _stored(trade)
    assert saved.strategy == "breakout" and saved.version == 2 and saved.status == TradeStatus.OPEN
    [event] = events
    assert event.kind == EventKind.STAFF_EDIT and event.actor == Actor.STAFF and event.actor_user_id is not None
    assert event.old_status == event.new_status == TradeStatus.OPEN
    assert event.payload["changes"] == {"strategy": "breakout"}
    assert event.payload["from"] == {"strategy": "momentum"}


def test_staff_cannot_set_a_status_or_move_a_bracket_from_the_admin(staff_client, trader):
    """OPEN -> CANCELED is not in the transition table; OPEN -> CLOSED and a new stop-loss need
    the broker. None of them is a field of the form: posting them changes nothing."""
    trade = PaperTradeFactory(owner=trader)
    form = staff_client.get(_change_url(trade)).context["adminform"].form
    assert not {"status", "sl_price", "tp_price", "qty", "close_price", "close_reason"} & set(form.fields)
    for forged in ({"status": TradeStatus.CANCELED}, {"status": TradeStatus.CLOSED, "close_price": "9",
                                                      "close_reason": "TP_HIT"}, {"sl_price": "2.50"}):
        response = staff_client.post(_change_url(trade), _posted_form(staff_client, trade, **forged))
        assert response.status_code == 302
    saved, events = _stored(trade)
    assert (saved.status, saved.sl_price, saved.close_price, saved.version) == (TradeStatus.OPEN, Decimal("3.0000"),
                                                                               None, 1)
    assert events == []


@pytest.mark.parametrize("changes", [{"status": TradeStatus.CANCELED}, {"status": TradeStatus.CLOSED},
                                     {"sl_price": Decimal("2.50")}, {"qty": 5}, {"entry_order_id": "x"}])
def test_the_staff_edit_service_refuses_what_needs_the_broker_or_the_state_machine(ops_user, trader, changes):
    trade = PaperTradeFactory(owner=trader)
    with tenancy.system_context(), pytest.raises(services.InvalidTradeInput) as refused:
        services.trade_staff_edit(staff_user=ops_user, trade_id=trade.pk, version=1, changes=changes)
    assert set(refused.value.field_errors) == set(changes)
    saved, events = _stored(trade)
    assert saved.status == TradeStatus.OPEN and saved.version == 1 and events == []


def test_a_final_trade_cannot_be_edited_by_staff(staff_client, ops_user, trader):
    trade = ClosedTradeFactory(owner=trader, strategy="momentum")
    page = staff_client.get(_change_url(trade))
    assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content
    assert staff_client.post(_change_url(trade), {"strategy": "breakout", "seen_version": "1"}).status_code == 403
    with tenancy.system_context(), pytest.raises(services.InvalidTransition):
        services.trade_staff_edit(staff_user=ops_user, trade_id=trade.pk, version=1, changes={"strategy": "x"})
    saved, events = _stored(trade)
    assert saved.strategy == "momentum" and saved.version == 1 and events == []


def test_a_staff_edit_on_a_trade_that_moved_meanwhile_is_refused_and_writes_nothing(staff_client, trader):
    trade = PaperTradeFactory(owner=trader, strategy="momentum")
    data = _posted_form(staff_client, trade, strategy="breakout")
    with tenancy.acting_as(trader.pk):  # the monitor records a change after the page was loaded
        services.trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, actor=Actor.SYSTEM,
                                  changes={"attention_reason": "check the bracket"})
    response = staff_client.post(_change_url(trade), data, follow=True)
    assert b"Not saved" in response.content
    saved, events = _stored(trade)
    assert saved.strategy == "momentum" and saved.version == 2 and len(events) == 1
    assert not LogEntry.objects.filter(object_id=str(trade.pk)).exists()


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


LIVE_ACCOUNT = "6YA00005151"


def _settings_url(account) -> str:
    return f"/admin/trades/accountsettings/{account.pk}/change/"


def _settings_form(**changes) -> dict:
    data = {"broker_mode": BrokerMode.LOCAL_PAPER, "tradier_account_id": "", "account_balance": "5000",
            "max_positions": "5", "daily_loss_limit": "150", "heat_limit_pct": "6", "auto_refresh": "on"}
    return {**data, **changes}


GO_LIVE = {"broker_mode": BrokerMode.TRADIER_LIVE, "tradier_account_id": LIVE_ACCOUNT, "new_live_token": TOKEN,
           "confirmation": services.LIVE_CONFIRMATION}


def _settings_events(user) -> list[TradeEvent]:
    with tenancy.acting_as(user.pk):
        return list(TradeEvent.objects.filter(owner=user, kind=EventKind.SETTINGS_CHANGED).order_by("id"))


@pytest.mark.parametrize(("allow", "changes", "refused"), [
    (False, {}, {"broker_mode"}),
    (True, {"new_live_token": ""}, {"new_live_token"}),
    (True, {"confirmation": ""}, {"confirmation"}),
    (True, {"confirmation": "yes"}, {"confirmation"}),
    (True, {"tradier_account_id": ""}, {"tradier_account_id"}),
])
def test_staff_switch_a_trader_to_live_only_with_what_the_api_needs(staff_client, trader, settings, allow, changes,
                                                                   refused):
    settings.ALLOW_LIVE_TRADING = allow
    account = services.account_settings_for(user=trader)
    page = staff_client.post(_settings_url(account), _settings_form(**{**GO_LIVE, **changes}))
    assert page.status_code == 200  # the form again, with the reasons by field
    assert set(page.context["adminform"].form.errors) == refused
    assert TOKEN.encode() not in page.content
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.LOCAL_PAPER and not account.has_broker_token(BrokerMode.TRADIER_LIVE)
    assert _settings_events(trader) == []


def test_a_staff_switch_to_live_is_in_the_traders_audit_log_with_the_staff_member(staff_client, ops_user, trader,
                                                                                  settings):
    settings.ALLOW_LIVE_TRADING = True
    account = services.account_settings_for(user=trader)
    response = staff_client.post(_settings_url(account), _settings_form(**GO_LIVE))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.TRADIER_LIVE and account.broker_token(BrokerMode.TRADIER_LIVE) == TOKEN
    [event] = _settings_events(trader)
    assert (event.actor, event.actor_user_id, event.actor_label) == (Actor.STAFF, ops_user.pk, "admin")
    assert event.payload == {
        "changes": {"broker_mode": {"from": "LOCAL_PAPER", "to": "TRADIER_LIVE"},
                    "tradier_account_id": {"from": "", "to": "…5151"}},
        "tokens": {"TRADIER_LIVE": "set"},
    }
    # Staying live, or going back to paper, needs no typing.
    back = staff_client.post(_settings_url(account), _settings_form(tradier_account_id=LIVE_ACCOUNT))
    assert back.status_code == 302
    assert services.account_settings_for(user=trader).broker_mode == BrokerMode.LOCAL_PAPER
    assert [event.payload["changes"] for event in _settings_events(trader)][-1] == {
        "broker_mode": {"from": "TRADIER_LIVE", "to": "LOCAL_PAPER"}}


def test_a_staff_change_of_limits_goes_through_the_settings_service(staff_client, ops_user, trader):
    account = services.account_settings_for(user=trader)
    response = staff_client.post(_settings_url(account), _settings_form(max_positions="9", new_sandbox_token=TOKEN))
    assert response.status_code == 302
    [event] = _settings_events(trader)
    assert event.actor == Actor.STAFF and event.actor_user_id == ops_user.pk
    assert event.payload == {"changes": {"max_positions": {"from": 5, "to": 9}}, "tokens": {"TRADIER_SANDBOX": "set"}}
    assert staff_client.post(f"/admin/trades/accountsettings/{account.pk}/delete/").status_code == 403


def test_the_settings_service_has_the_last_word_over_the_admin_form(staff_client, trader, settings, monkeypatch):
    """The form shows the rules early; the service applies them under the row lock. Should the
    form let a switch through (the row changed after it looked), the service refuses, nothing is
    written and staff are told."""
    settings.ALLOW_LIVE_TRADING = True
    monkeypatch.setattr(services, "account_settings_check", lambda **arguments: None)
    account = services.account_settings_for(user=trader)
    response = staff_client.post(_settings_url(account), _settings_form(**{**GO_LIVE, "confirmation": ""}),
                                 follow=True)
    assert b"Not saved" in response.content and b"LIVE TRADING" in response.content
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.LOCAL_PAPER and not account.has_broker_token(BrokerMode.TRADIER_LIVE)
    assert _settings_events(trader) == []
    assert not LogEntry.objects.filter(object_id=str(account.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_in_a_web_process_staff_see_every_tenant_through_the_worker_role(client, trader, other_trader, ops_user,
                                                                        web_role):
    """The web role may not enter the system context; a staff admin view runs on a connection of
    its own as the worker role, and the thread's connection is the web role's again afterwards."""
    from django.db import connection

    PaperTradeFactory(owner=trader, ticker="AAPL")
    PaperTradeFactory(owner=other_trader, ticker="NVDA")
    client.force_login(ops_user)
    page = client.get("/admin/trades/papertrade/")
    assert page.status_code == 200
    assert b"AAPL" in page.content and b"NVDA" in page.content
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == "tradeoptions_app"
    with pytest.raises(tenancy.SystemContextRefused):
        with tenancy.system_context():
            pass


def test_staff_set_a_traders_commission_within_0_to_10_dollars(staff_client, trader):
    account = services.account_settings_for(user=trader)
    page = staff_client.post(_settings_url(account), _settings_form(commission_per_contract="12"))
    assert page.status_code == 200
    assert "A commission per contract is between $0 and $10.00" in " ".join(
        page.context["adminform"].form.errors["commission_per_contract"])
    assert services.account_settings_for(user=trader).commission_per_contract is None
    saved = staff_client.post(_settings_url(account), _settings_form(commission_per_contract="0.50"))
    assert saved.status_code == 302
    assert services.account_settings_for(user=trader).commission_rate == Decimal("0.50")


def test_staff_see_channels_and_their_log_by_hint_never_the_url(staff_client, trader):
    from tests.factories import CHANNEL_URL, ChannelMessageFactory

    message = ChannelMessageFactory(owner=trader, status="FAILED", error="The service did not take the message.")
    with tenancy.system_context():
        stored = message.channel.url_encrypted
    pages = [staff_client.get("/admin/trades/notificationchannel/"),
             staff_client.get(f"/admin/trades/notificationchannel/{message.channel_id}/change/"),
             staff_client.get("/admin/trades/channelmessage/"),
             staff_client.get(f"/admin/trades/channelmessage/{message.pk}/change/")]
    assert [page.status_code for page in pages] == [200] * 4
    text = "".join(page.content.decode() for page in pages)
    assert "tgram://…242" in text and "The service did not take the message." in text
    assert CHANNEL_URL not in text and stored not in text and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text
    assert staff_client.post(f"/admin/trades/notificationchannel/{message.channel_id}/delete/").status_code == 403
