"""Web Push (issue 21) against a push service stand-in on 127.0.0.1: a device subscribes, a fill
reaches it encrypted to its keys and signed with our VAPID key (the stand-in checks both, as a real
push service and browser do), a 410 removes the subscription, quiet hours and retries are the
channels' own, and the endpoint and keys are kept encrypted and never shown back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from tests.fakes.push_service import Browser, PushService, vapid_claims
from tradeoptions import tenancy
from trades import services
from trades.models import (
    ChannelKind,
    ChannelMessage,
    ChannelMessageStatus,
    NotificationChannel,
    NotificationEvent,
    PushSubscription,
)

NEW_YORK = ZoneInfo("America/New_York")
TOKEN = "dev1ce-T0ken-s3cret"  # the endpoint's path: a capability, never shown back
TRADE = {"ticker": "SPY", "strike": "570", "option_type": "CALL", "quantity": 2, "entry_price": "4.30",
         "close_price": "6.45", "tp_price": "6.45", "realized_pnl_net": "428.70"}


@pytest.fixture
def push_service():
    running = PushService().start()
    yield running
    running.stop()


@pytest.fixture
def browser(push_service):
    return Browser(endpoint=push_service.endpoint(TOKEN))


@pytest.fixture
def api(trader):
    client = APIClient()
    client.force_authenticate(trader)
    return client


def _subscribe(api, browser, **extra):
    answer = api.post("/api/push-subscriptions", {**browser.subscription_json(), "device": "Phone", **extra},
                      format="json")
    assert answer.status_code in (200, 201), answer.content
    return answer


def _tell(trader, kind=NotificationEvent.TP_HIT, data=None) -> list[ChannelMessage]:
    with tenancy.acting_as(trader.pk), transaction.atomic():
        return services.channel_messages_write(owner_id=trader.pk, kind=kind, data=data or {"trade": TRADE})


def _deliver(trader, message, **kwargs):
    return services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk), **kwargs)


def _reload(trader, message) -> ChannelMessage:
    with tenancy.acting_as(trader.pk):
        return ChannelMessage.objects.get(pk=message.pk)


# --- Subscribing --------------------------------------------------------------------------------


def test_a_subscription_becomes_a_push_channel_for_fills_and_closes(api, trader, browser):
    answer = _subscribe(api, browser)
    assert answer.status_code == 201
    shown = answer.json()
    assert shown["name"] == "Phone" and shown["enabled"] is True and shown["endpoint_host"] == "127.0.0.1"
    with tenancy.acting_as(trader.pk):
        channel = NotificationChannel.objects.get(pk=shown["channel"])
    assert channel.kind == ChannelKind.WEB_PUSH and channel.url_hint == "push://127.0.0.1"
    assert set(channel.events) == {"trade.opened", "trade.tp_hit", "trade.sl_hit", "trade.manual_close",
                                   "trade.policy_exit", "trade.expired", "position.unprotected", "trade.oversold"}
    again = _subscribe(api, browser)  # the page opting in twice: the same device, not a second one
    assert again.status_code == 200 and again.json()["id"] == shown["id"]
    with tenancy.acting_as(trader.pk):
        assert PushSubscription.objects.count() == 1 and NotificationChannel.objects.count() == 1


def test_the_endpoint_and_keys_are_encrypted_at_rest_and_never_shown_back(api, trader, browser, client, caplog):
    caplog.set_level(logging.DEBUG)
    shown = _subscribe(api, browser).json()
    keys = browser.subscription_json()["keys"]
    with tenancy.acting_as(trader.pk), connection.cursor() as cursor:
        cursor.execute("SELECT subscription_encrypted FROM trades_pushsubscription WHERE owner_id = %s", [trader.pk])
        stored = cursor.fetchone()[0]
        assert TOKEN not in stored and keys["auth"] not in stored and keys["p256dh"] not in stored
        assert PushSubscription.objects.get(pk=shown["id"]).subscription()["keys"] == keys
    client.force_login(trader)
    answers = [api.get("/api/push-subscriptions"), api.get(f"/api/push-subscriptions/{shown['id']}"),
               api.get("/api/notification-channels"), client.get("/settings/")]
    for answer in answers:
        assert answer.status_code == 200
        text = answer.content.decode()
        assert TOKEN not in text and keys["auth"] not in text and keys["p256dh"] not in text
    assert TOKEN not in caplog.text


def test_the_key_rotation_covers_push_subscriptions(api, trader, browser, settings):
    from cryptography.fernet import Fernet

    shown = _subscribe(api, browser).json()
    with tenancy.acting_as(trader.pk):
        before = PushSubscription.objects.get(pk=shown["id"]).subscription_encrypted
    new_key = Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[new_key, *settings.ENCRYPTION_KEYS]):
        assert services.encrypted_secrets_rotate() == 2  # the device's channel (no URL) and its subscription
    with override_settings(ENCRYPTION_KEYS=[new_key]), tenancy.acting_as(trader.pk):
        rotated = PushSubscription.objects.get(pk=shown["id"])
        assert rotated.subscription_encrypted != before
        assert rotated.subscription()["endpoint"] == browser.endpoint


@pytest.mark.parametrize("change, field", [
    ({"endpoint": "ftp://127.0.0.1/push"}, "endpoint"),
    ({"endpoint": ""}, "endpoint"),
    ({"keys": {"p256dh": "not-a-key", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, "keys"),
    ({"keys": {"p256dh": "BE0cpdXlPp-bJXIDPq3-XZOfgGglf-SBvMihgQpELzDF-rM5y-2x3vukFDctf7pD65W1VBL70HhlZIaBLAjB2vM",
               "auth": "c2hvcnQ"}}, "keys"),
    ({"keys": None}, "keys"),
])
def test_a_subscription_the_server_cannot_use_is_refused_on_its_field(api, browser, change, field):
    answer = api.post("/api/push-subscriptions", {**browser.subscription_json(), **change}, format="json")
    assert answer.status_code == 400, answer.content
    assert [error["attr"].split(".")[0] for error in answer.json()["errors"]] == [field]


@override_settings(NOTIFY_ALLOW_PRIVATE_TARGETS=False)
@pytest.mark.parametrize("endpoint", ["https://127.0.0.1/push/v1/x", "https://10.1.2.3/push", "https://[::1]/p",
                                      "http://fcm.googleapis.com/fcm/send/x"])
def test_by_default_an_endpoint_must_be_a_public_https_push_service(api, browser, endpoint):
    answer = api.post("/api/push-subscriptions", {**browser.subscription_json(), "endpoint": endpoint}, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["attr"] == "endpoint"


@override_settings(VAPID_PRIVATE_KEY="", VAPID_PUBLIC_KEY="")
def test_without_a_vapid_key_pair_push_is_off_and_says_so(api, trader, browser, client):
    answer = api.post("/api/push-subscriptions", browser.subscription_json(), format="json")
    assert answer.status_code == 400 and "not set up" in answer.json()["errors"][0]["detail"]
    client.force_login(trader)
    assert '"push_public_key": ""' in client.get("/settings/").content.decode()


@override_settings(VAPID_PUBLIC_KEY="BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
def test_a_public_key_that_is_not_the_private_keys_pair_is_refused(api, browser):
    answer = api.post("/api/push-subscriptions", browser.subscription_json(), format="json")
    assert answer.status_code == 400 and "public half" in answer.json()["errors"][0]["detail"]


def test_unsubscribing_removes_the_device_and_its_channel(api, trader, other_trader, browser):
    shown = _subscribe(api, browser).json()
    bob = APIClient()
    bob.force_authenticate(other_trader)
    assert bob.delete(f"/api/push-subscriptions/{shown['id']}").status_code == 404
    assert api.delete(f"/api/push-subscriptions/{shown['id']}").status_code == 204
    assert api.delete(f"/api/push-subscriptions/{shown['id']}").status_code == 404
    with tenancy.acting_as(trader.pk):
        assert not PushSubscription.objects.exists() and not NotificationChannel.objects.exists()


def test_a_push_channel_takes_events_and_quiet_hours_but_no_url(api, browser):
    channel = _subscribe(api, browser).json()["channel"]
    changed = api.patch(f"/api/notification-channels/{channel}", {"events": ["trade.sl_hit"], "name": "Pixel"},
                        format="json")
    assert changed.status_code == 200 and changed.json()["events"] == ["trade.sl_hit"]
    assert changed.json()["kind"] == "WEB_PUSH"
    refused = api.patch(f"/api/notification-channels/{channel}", {"url": "json://example.com/x"}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "url"


# --- Delivered to the push service stand-in -----------------------------------------------------


def test_a_fill_reaches_the_device_encrypted_to_its_keys_and_signed_with_vapid(api, trader, browser, push_service,
                                                                                settings):
    _subscribe(api, browser)
    message = _tell(trader)[0]
    outcome = _deliver(trader, message)
    assert outcome.status == ChannelMessageStatus.DELIVERED, outcome
    [request] = push_service.requests
    assert request.path == f"/push/v1/{TOKEN}"
    assert request.headers["TTL"] == str(settings.PUSH_TTL_SECONDS) and request.headers["Urgency"] == "normal"
    claims = vapid_claims(request, public_key=settings.VAPID_PUBLIC_KEY)
    assert claims["aud"] == f"http://127.0.0.1:{push_service.port}" and claims["sub"] == settings.VAPID_SUBJECT
    shown = browser.read(request)
    assert shown["title"] == "SPY 570C: Take-profit hit" and "P&L after commissions $428.70" in shown["body"]
    assert shown["url"] == "/" and shown["tag"] == str(message.pk)
    assert TOKEN not in request.body.decode("latin-1") and b"Take-profit" not in request.body
    log = api.get(f"/api/notification-channels/{message.channel_id}/log").json()
    assert [(line["kind"], line["status"], line["error"]) for line in log] == [("trade.tp_hit", "DELIVERED", "")]


def test_another_browser_cannot_read_what_was_sent(api, trader, browser, push_service):
    _subscribe(api, browser)
    _deliver(trader, _tell(trader)[0])
    stranger = Browser(endpoint=browser.endpoint)
    with pytest.raises(Exception):  # noqa: B017 - http_ece raises a bare error on a wrong key
        stranger.read(push_service.requests[0])


def test_a_410_from_the_push_service_removes_the_subscription(api, trader, browser, push_service):
    channel = _subscribe(api, browser).json()["channel"]
    push_service.answer(410)
    message = _tell(trader)[0]
    outcome = _deliver(trader, message)
    assert outcome.status == ChannelMessageStatus.FAILED and not outcome.retry
    assert "ended (HTTP 410)" in _reload(trader, message).error
    with tenancy.acting_as(trader.pk):
        assert not PushSubscription.objects.exists()
        assert NotificationChannel.objects.get(pk=channel).enabled is False  # kept, with its log saying why
    assert _tell(trader) == []  # nothing more is written for it
    assert len(push_service.requests) == 1
    refused = api.patch(f"/api/notification-channels/{channel}", {"enabled": True}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "enabled"


def test_a_404_removes_it_too(api, trader, browser, push_service):
    _subscribe(api, browser)
    push_service.answer(404)
    assert _deliver(trader, _tell(trader)[0]).status == ChannelMessageStatus.FAILED
    with tenancy.acting_as(trader.pk):
        assert not PushSubscription.objects.exists()


def test_a_busy_push_service_is_retried_with_backoff_then_delivered(api, trader, browser, push_service):
    _subscribe(api, browser)
    push_service.answer(503, then=201)
    message = _tell(trader)[0]
    start = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    first = _deliver(trader, message, now=start)
    assert first.status == ChannelMessageStatus.PENDING and first.retry and first.retry_in >= 5
    assert _reload(trader, message).error == "The push service did not take the message (HTTP 503)."
    second = _deliver(trader, message, now=start + timedelta(seconds=first.retry_in + 1))
    assert second.status == ChannelMessageStatus.DELIVERED and len(push_service.requests) == 2
    with tenancy.acting_as(trader.pk):
        assert PushSubscription.objects.exists()


def test_a_refused_signature_is_not_retried(api, trader, browser, push_service):
    _subscribe(api, browser)
    push_service.answer(403)
    outcome = _deliver(trader, _tell(trader)[0])
    assert outcome.status == ChannelMessageStatus.FAILED and len(push_service.requests) == 1


@override_settings(NOTIFY_ALLOW_PRIVATE_TARGETS=False)
def test_the_endpoint_is_checked_again_before_each_send(api, trader, browser, push_service):
    with override_settings(NOTIFY_ALLOW_PRIVATE_TARGETS=True):
        _subscribe(api, browser)
        message = _tell(trader)[0]
    outcome = _deliver(trader, message)
    assert outcome.status == ChannelMessageStatus.FAILED and push_service.requests == []
    assert _reload(trader, message).error == ("The push service '127.0.0.1' is inside a private, loopback or "
                                              "reserved network now; pushes go to public servers only.")


NIGHT = datetime(2026, 12, 7, 23, 30, tzinfo=NEW_YORK)  # a Monday night


@time_machine.travel(NIGHT, tick=False)
def test_quiet_hours_hold_a_fill_until_morning_and_let_an_unprotected_position_through(api, trader, browser,
                                                                                       push_service, settings):
    channel = _subscribe(api, browser).json()["channel"]
    api.patch(f"/api/notification-channels/{channel}", {"quiet_start": "22:00", "quiet_end": "07:00"}, format="json")
    fill = _tell(trader)[0]
    held = _deliver(trader, fill)
    assert held.status == ChannelMessageStatus.HELD and push_service.requests == []
    critical = _tell(trader, NotificationEvent.UNPROTECTED, {"trade": TRADE, "attention_reason": "No stop-loss"})[0]
    assert _deliver(trader, critical).status == ChannelMessageStatus.DELIVERED
    [request] = push_service.requests
    assert request.headers["Urgency"] == "high" and browser.read(request)["critical"] is True
    morning = datetime(2026, 12, 8, 7, 1, tzinfo=NEW_YORK)
    with time_machine.travel(morning, tick=False):
        assert _deliver(trader, fill).status == ChannelMessageStatus.DELIVERED
    assert vapid_claims(push_service.requests[1], public_key=settings.VAPID_PUBLIC_KEY)["exp"] > morning.timestamp()


def test_a_test_message_from_the_channel_list_reaches_the_device(api, trader, browser, push_service, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    from tradeoptions.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    channel = _subscribe(api, browser).json()["channel"]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/notification-channels/{channel}/test").status_code == 202
    assert browser.read(push_service.requests[0])["title"] == "tradeoptions: test message"


# --- The installable app ------------------------------------------------------------------------


def test_the_service_worker_is_served_at_the_root_to_anyone(client, db):
    answer = client.get("/sw.js")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/javascript")
    assert answer["Service-Worker-Allowed"] == "/" and answer["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in answer["Content-Security-Policy"]
    body = answer.content.decode()
    assert 'addEventListener("push"' in body and 'addEventListener("notificationclick"' in body
    assert "{{" not in body and '"ICON": "/static/icons/icon-192.png"' in body


def test_the_manifest_makes_the_site_installable_with_icons_that_exist(client, trader):
    from django.contrib.staticfiles import finders

    manifest = client.get("/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest["Content-Type"] == "application/manifest+json"
    data = manifest.json()
    assert (data["start_url"], data["scope"], data["display"]) == ("/", "/", "standalone")
    sizes = {icon["sizes"] for icon in data["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in data["icons"]:
        assert finders.find(icon["src"].removeprefix("/static/")), icon["src"]
    client.force_login(trader)
    assert '<link rel="manifest" href="/manifest.webmanifest">' in client.get("/").content.decode()


def test_quiet_hours_are_the_channels_own_rule(api, trader, browser):
    """The device's channel is a channel: its quiet hours are read by the same function."""
    channel_id = _subscribe(api, browser).json()["channel"]
    api.patch(f"/api/notification-channels/{channel_id}", {"quiet_start": "12:00", "quiet_end": "13:00"},
              format="json")
    with tenancy.acting_as(trader.pk):
        channel = NotificationChannel.objects.get(pk=channel_id)
    lunch = datetime(2026, 12, 7, 12, 15, tzinfo=NEW_YORK)
    assert services.channels.quiet_until(channel, lunch) == datetime(2026, 12, 7, 13, tzinfo=NEW_YORK)
    assert channel.quiet_start == time(12)
