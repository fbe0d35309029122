"""Notification channels (issue 21) against real local receivers: an SMTP server (aiosmtpd) for
mailto:// and an HTTP server standing in for json:// and ntfy://, both reached through Apprise."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import NotificationChannelFactory, PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import ChannelMessage, ChannelMessageStatus, NotificationChannel, NotificationEvent, QuietMode
from trades.services import channel_delivery

NEW_YORK = ZoneInfo("America/New_York")
# A made-up Telegram bot token: what must never be shown back.
TELEGRAM = "tgram://987654321:AAFsecretBotTokenXyZ/123456789"
SECRET = "AAFsecretBotTokenXyZ"


class Mailbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    with socket.socket() as probe:  # aiosmtpd's controller needs a known port to check it is up
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port
    yield mailbox
    controller.stop()


@pytest.fixture
def api(trader):
    client = APIClient()
    client.force_authenticate(trader)
    return client


@pytest.fixture
def eager(monkeypatch):
    from tradeoptions.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def _json_url(receiver) -> str:
    return f"json://127.0.0.1:{receiver.port}/notify"


def _channel(trader, url: str, **fields) -> NotificationChannel:
    data = services.ChannelInput(name=fields.pop("name", "Desk"), url=url,
                                 events=fields.pop("events", [NotificationEvent.TP_HIT]), **fields)
    return services.channel_create(user=trader, data=data)


def _message(trader, channel, kind=NotificationEvent.TP_HIT) -> ChannelMessage:
    with tenancy.acting_as(trader.pk), transaction.atomic():
        return ChannelMessage.objects.create(owner=trader, channel=channel, kind=kind, title="SPY: take-profit hit",
                                             body="Take-profit hit", critical=kind in channel_delivery.CRITICAL_EVENTS)


def _reload(trader, message) -> ChannelMessage:
    with tenancy.acting_as(trader.pk):
        return ChannelMessage.objects.get(pk=message.pk)


# --- Stored encrypted, never shown back ---------------------------------------------------------


def test_the_url_is_encrypted_at_rest_and_shown_only_as_its_hint(api, trader, client, caplog):
    caplog.set_level(logging.DEBUG)
    answer = api.post("/api/notification-channels", {"name": "Phone", "url": TELEGRAM,
                                                     "events": ["trade.tp_hit", "position.unprotected"]}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["url_hint"] == "tgram://…789" and "url" not in answer.json()
    with tenancy.acting_as(trader.pk), connection.cursor() as cursor:
        cursor.execute("SELECT url_encrypted FROM trades_notificationchannel WHERE owner_id = %s", [trader.pk])
        stored = cursor.fetchone()[0]
        assert SECRET not in stored and "tgram" not in stored
        assert NotificationChannel.objects.get(owner=trader).url() == TELEGRAM
    channel_id = answer.json()["id"]
    shown = [api.get("/api/notification-channels"), api.get(f"/api/notification-channels/{channel_id}"),
             api.get(f"/api/notification-channels/{channel_id}/log"),
             api.patch(f"/api/notification-channels/{channel_id}", {"name": "Phone 2"}, format="json")]
    client.force_login(trader)
    shown.append(client.get("/settings/"))
    assert all(response.status_code == 200 for response in shown)
    for response in shown:
        assert SECRET not in response.content.decode() and "987654321" not in response.content.decode()
    assert SECRET not in caplog.text


def test_the_key_rotation_covers_channel_urls(trader, settings):
    from cryptography.fernet import Fernet

    channel = _channel(trader, TELEGRAM)
    with tenancy.acting_as(trader.pk):
        before = NotificationChannel.objects.get(pk=channel.pk).url_encrypted
    new_key = Fernet.generate_key().decode()
    with override_settings(ENCRYPTION_KEYS=[new_key, *settings.ENCRYPTION_KEYS]):
        assert services.encrypted_secrets_rotate() >= 1
    with override_settings(ENCRYPTION_KEYS=[new_key]), tenancy.acting_as(trader.pk):
        rotated = NotificationChannel.objects.get(pk=channel.pk)
        assert rotated.url_encrypted != before and rotated.url() == TELEGRAM


# --- Checked when saved -------------------------------------------------------------------------


def test_a_url_apprise_does_not_know_is_refused_on_its_field_in_trader_words(api):
    answer = api.post("/api/notification-channels", {"name": "Phone", "url": "nosuchservice://abc"}, format="json")
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["attr"] == "url" and "Apprise" in error["detail"] and "nosuchservice" not in error["detail"]


@override_settings(NOTIFY_ALLOW_PRIVATE_TARGETS=False)
@pytest.mark.parametrize("url", [
    "json://127.0.0.1:8080/notify", "jsons://10.0.0.5/x", "form://localhost/x", "xml://[::1]/x",
    "ntfy://127.0.0.1/alerts", "mailto://example.com?smtp=127.0.0.1&from=a@example.com&to=b@example.com",
    "gotify://192.168.1.4/token",
])
def test_by_default_a_channel_may_not_reach_a_private_or_loopback_server(api, url):
    answer = api.post("/api/notification-channels", {"name": "Inside", "url": url}, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["errors"][0]["attr"] == "url"
    assert "private, loopback or reserved" in answer.json()["errors"][0]["detail"]


@override_settings(NOTIFY_ALLOW_PRIVATE_TARGETS=False)
def test_services_at_their_own_public_hosts_need_no_host_check(trader, monkeypatch):
    def no_lookup(*args, **kwargs):
        raise AssertionError("a fixed-host service's URL was resolved")

    monkeypatch.setattr(services.notifications, "target_host_check", no_lookup)
    for url in (TELEGRAM, "discord://1234/abcdef", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
                "ntfy://my-alerts-topic"):
        assert services.channels.channel_url_check(url, owner_id=trader.pk) == url
    assert services.channels.network_target("json://example.com/x") == ("example.com", 80)
    assert services.channels.network_target("mailto://u:p@gmail.com") == ("smtp.gmail.com", 587)


# --- Delivered through Apprise to real local receivers ------------------------------------------


def test_send_test_reaches_the_http_receiver_and_the_log_says_delivered(api, trader, receiver, eager,
                                                                        django_capture_on_commit_callbacks):
    channel = _channel(trader, _json_url(receiver))
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(f"/api/notification-channels/{channel.pk}/test")
    assert answer.status_code == 202
    assert len(receiver.requests) == 1
    assert receiver.requests[0].json()["title"] == "tradeoptions: test message"
    log = api.get(f"/api/notification-channels/{channel.pk}/log").json()
    assert [(line["kind"], line["status"], line["error"]) for line in log] == [("channel.test", "DELIVERED", "")]


def test_an_email_channel_is_delivered_to_the_smtp_server(trader, smtp_server):
    url = (f"mailto://example.com?smtp=127.0.0.1&port={smtp_server.port}&mode=insecure"
           "&from=alerts@example.com&to=trader@example.com")
    channel = _channel(trader, url)
    message = _message(trader, channel)
    outcome = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk))
    assert outcome.status == ChannelMessageStatus.DELIVERED
    assert [envelope.rcpt_tos for envelope in smtp_server.messages] == [["trader@example.com"]]
    assert b"take-profit hit" in smtp_server.messages[0].content


def test_an_ntfy_channel_with_its_own_server_is_delivered_there(trader, receiver):
    channel = _channel(trader, f"ntfy://127.0.0.1:{receiver.port}/alerts")
    message = _message(trader, channel)
    assert services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk)).status == "DELIVERED"
    assert [request.json()["topic"] for request in receiver.requests] == ["alerts"]


def test_a_failed_send_is_retried_with_backoff_then_delivered(trader, receiver):
    receiver.answer(500, then=200)
    channel = _channel(trader, _json_url(receiver))
    message = _message(trader, channel)
    start = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    first = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk), now=start)
    assert first.status == ChannelMessageStatus.PENDING and first.retry and first.retry_in >= 5
    failed = _reload(trader, message)
    assert failed.next_attempt_at == start + timedelta(seconds=first.retry_in)
    assert failed.error.startswith("The service did not take the message") and "127.0.0.1:" not in failed.error
    early = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk), now=start)
    assert not early.claimed and len(receiver.requests) == 1  # not due yet: no second attempt
    later = failed.next_attempt_at + timedelta(seconds=1)
    second = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk), now=later)
    assert second.status == ChannelMessageStatus.DELIVERED and len(receiver.requests) == 2
    done = _reload(trader, message)
    assert (done.status, done.attempts, done.error, done.finished_at) == ("DELIVERED", 2, "", later)


@override_settings(NOTIFY_MAX_ATTEMPTS=2)
def test_a_message_is_given_up_after_the_last_attempt(trader, receiver):
    receiver.answer(500)
    message = _message(trader, _channel(trader, _json_url(receiver)))
    now = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    for _ in range(2):
        outcome = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk), now=now)
        now += timedelta(hours=2)
    assert outcome.status == ChannelMessageStatus.FAILED and not outcome.retry
    assert _reload(trader, message).status == ChannelMessageStatus.FAILED


# --- Quiet hours (New York), with a pinned clock ------------------------------------------------


NIGHT = datetime(2026, 12, 7, 23, 30, tzinfo=NEW_YORK)  # a Monday night


@time_machine.travel(NIGHT, tick=False)
def test_in_quiet_hours_a_message_is_held_until_they_end_and_then_sent(trader, receiver):
    channel = _channel(trader, _json_url(receiver), quiet_start=time(22), quiet_end=time(7),
                       quiet_hours_given=True)
    message = _message(trader, channel)
    held = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk))
    morning = datetime(2026, 12, 8, 7, 0, tzinfo=NEW_YORK)
    assert held.status == ChannelMessageStatus.HELD and held.retry_in == (morning - NIGHT).total_seconds()
    stored = _reload(trader, message)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == ("HELD", 0, morning)
    assert receiver.requests == []
    assert services.channel_messages_resend(now=morning - timedelta(minutes=1)) == 0
    with time_machine.travel(morning + timedelta(minutes=1), tick=False):
        assert services.channel_messages_resend() == 1
        sent = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk))
    assert sent.status == ChannelMessageStatus.DELIVERED and len(receiver.requests) == 1


@time_machine.travel(NIGHT, tick=False)
def test_a_drop_channel_drops_it_and_a_critical_message_goes_through(trader, receiver):
    channel = _channel(trader, _json_url(receiver), quiet_start=time(22), quiet_end=time(7),
                       quiet_hours_given=True, quiet_mode=QuietMode.DROP)
    dropped = _message(trader, channel)
    assert services.channel_message_deliver(owner_id=trader.pk, message_id=str(dropped.pk)).status == "DROPPED"
    critical = _message(trader, channel, kind=NotificationEvent.UNPROTECTED)
    assert services.channel_message_deliver(owner_id=trader.pk, message_id=str(critical.pk)).status == "DELIVERED"
    assert len(receiver.requests) == 1
    assert _reload(trader, dropped).status == ChannelMessageStatus.DROPPED


def test_quiet_hours_within_one_day_and_outside_them():
    channel = NotificationChannel(quiet_start=time(12), quiet_end=time(13, 30))
    lunch = datetime(2026, 12, 7, 12, 15, tzinfo=NEW_YORK)
    assert services.channels.quiet_until(channel, lunch) == datetime(2026, 12, 7, 13, 30, tzinfo=NEW_YORK)
    assert services.channels.quiet_until(channel, lunch + timedelta(hours=2)) is None
    assert services.channels.quiet_until(NotificationChannel(), lunch) is None


# --- Written with the change, sent by the webhooks queue ----------------------------------------


def test_the_message_is_written_in_the_changes_transaction(trader):
    channel = NotificationChannelFactory(owner=trader, events=[NotificationEvent.OVERSOLD])
    trade = PaperTradeFactory(owner=trader)
    with pytest.raises(RuntimeError), tenancy.acting_as(trader.pk), transaction.atomic():
        services.trade_oversold_flag(trade=trade, short_qty=1, actor="SYSTEM")
        raise RuntimeError("the change fails after the flag")
    with tenancy.acting_as(trader.pk):
        assert not ChannelMessage.objects.filter(channel=channel).exists()
        services.trade_oversold_flag(trade=trade, short_qty=1, actor="SYSTEM")
        written = ChannelMessage.objects.get(channel=channel)
    assert (written.kind, written.critical, written.status) == ("trade.oversold", True, "PENDING")
    assert trade.ticker in written.title and SECRET not in written.body


def test_a_channel_hears_only_the_events_it_chose_and_only_while_on(trader):
    chose = NotificationChannelFactory(owner=trader, events=[NotificationEvent.TP_HIT])
    other = NotificationChannelFactory(owner=trader, events=[NotificationEvent.SL_HIT])
    off = NotificationChannelFactory(owner=trader, events=[NotificationEvent.TP_HIT], enabled=False)
    with tenancy.acting_as(trader.pk), transaction.atomic():
        written = services.channel_messages_write(owner_id=trader.pk, kind=NotificationEvent.TP_HIT, data={})
    assert [message.channel_id for message in written] == [chose.pk]
    assert other.pk != off.pk


def test_deliveries_go_to_the_webhooks_queue_never_the_monitors(trader, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    from tradeoptions.celery import app
    from trades.tasks import deliver_channel_message

    assert app.amqp.router.route({}, "trades.deliver_channel_message")["queue"].name == "webhooks"
    queued = []
    monkeypatch.setattr(deliver_channel_message, "apply_async",
                        lambda args, **options: queued.append((args, app.amqp.router.route(
                            options, deliver_channel_message.name)["queue"].name)))
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.TP_HIT])
    with django_capture_on_commit_callbacks(execute=True), tenancy.acting_as(trader.pk), transaction.atomic():
        message = services.channel_messages_write(owner_id=trader.pk, kind=NotificationEvent.TP_HIT, data={})[0]
    assert queued == [([trader.pk, str(message.pk)], "webhooks")]
