"""A trader's webhook hears of their trades: signed JSON, sent after the commit by a retried task,
to a real receiver on 127.0.0.1."""

import hashlib
import hmac
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from brokers.models import BrokerMode
from tests.factories import PaperTradeFactory
from tests.fakes.webhook_receiver import WebhookReceiver
from tradeoptions import tenancy
from trades import services
from trades.models import (
    AccountSettings,
    CloseReason,
    EventKind,
    TradeStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventStatus,
)
from trades.services import notifications
from trades.tasks import deliver_webhook

pytestmark = pytest.mark.usefixtures("tasks_run_at_once")

NEW_KEY = "sB-J1wgqRN6xLjMIZ8GOfRZ21rDZi4bomqW2fPIOGZE="  # a Fernet key the settings do not hold
SIGNATURE_TOLERANCE = 300  # seconds a receiver accepts between the signed time and its clock


def webhook_for(user, url: str) -> str:
    """Point the user's webhook at `url`; returns the signing secret, as shown to them once."""
    services.account_settings_update(user=user, changes={"webhook_url": url})
    return services.webhook_secret_rotate(user=user)


def verify(request, secret: str) -> dict:
    """What a receiver does: check the signature over "<t>.<body>" and the timestamp's age."""
    fields = dict(part.split("=", 1) for part in request.headers["X-Tradeoptions-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected), "the signature does not verify"
    assert abs(time.time() - int(fields["t"])) < SIGNATURE_TOLERANCE
    return request.json()


def events_of(user) -> list[WebhookEvent]:
    with tenancy.acting_as(user.pk):
        return list(WebhookEvent.objects.filter(owner=user).prefetch_related("deliveries"))


def deliveries_of(event: WebhookEvent) -> list[WebhookDelivery]:
    with tenancy.acting_as(event.owner_id):
        return list(WebhookDelivery.objects.filter(event=event).order_by("attempt"))


def transition(trade, to, **kwargs):
    """The state machine's gate, called as the monitor cycle and the API call it: as the owner."""
    with tenancy.acting_as(trade.owner_id):
        return services.trade_transition(trade_id=trade.pk, to=to, **{"actor": "SYSTEM", **kwargs})


def pending_trade(user):
    return PaperTradeFactory(owner=user, status=TradeStatus.PENDING, entry_price=None, entry_date=None)


def close(reason: str, price: str = "6.50", pnl: str = "440.00") -> dict:
    return {"close_reason": reason, "close_price": Decimal(price), "close_date": timezone.now(),
            "realized_pnl": Decimal(pnl)}


TRANSITIONS = {
    "trade.opened": (pending_trade, TradeStatus.OPEN,
                     {"entry_price": Decimal("4.30"), "entry_date": timezone.now(), "filled_qty": 2}),
    "trade.rejected": (pending_trade, TradeStatus.REJECTED, {"status_reason": "Not enough buying power."}),
    "trade.tp_hit": (None, TradeStatus.CLOSED, close(CloseReason.TP_HIT)),
    "trade.sl_hit": (None, TradeStatus.CLOSED, close(CloseReason.SL_HIT, "2.95", "-250.00")),
    "trade.manual_close": (None, TradeStatus.CLOSED, close(CloseReason.MANUAL_CLOSE, "5.00", "160.00")),
    "trade.expired": (None, TradeStatus.CLOSED, close(CloseReason.EXPIRED, "0", "-840.00")),
}


@pytest.mark.parametrize("kind", TRANSITIONS)
def test_each_moment_of_a_trade_reaches_the_webhook_signed(trader, receiver, kind,
                                                           django_capture_on_commit_callbacks):
    secret = webhook_for(trader, receiver.url)
    make, to, changes = TRANSITIONS[kind]
    trade = (make or (lambda user: PaperTradeFactory(owner=user)))(trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, to, actor_label="test", changes=changes)

    (request,) = receiver.requests
    body = verify(request, secret)
    assert request.path == "/hooks/tradeoptions" and request.headers["Content-Type"] == "application/json"
    assert body["type"] == kind == request.headers["X-Tradeoptions-Event"]
    assert body["id"] == request.headers["X-Tradeoptions-Event-Id"]
    sent = body["data"]["trade"]
    assert sent["id"] == trade.pk and sent["option_symbol"] == trade.option_symbol and sent["status"] == to
    assert body["data"]["old_status"] == trade.status
    if to == TradeStatus.CLOSED:
        assert sent["close_reason"] == changes["close_reason"]
        assert Decimal(sent["realized_pnl"]) == changes["realized_pnl"]  # exact, as a string
    if kind == "trade.rejected":
        assert sent["status_reason"] == "Not enough buying power."
    (event,) = events_of(trader)
    assert str(event.pk) == body["id"] and event.status == WebhookEventStatus.DELIVERED
    assert [(d.attempt, d.status_code, d.target_host) for d in deliveries_of(event)] == [(1, 200, "127.0.0.1")]
    assert secret not in request.body.decode()


def test_an_expiry_in_the_money_is_an_expiry_too(trader, receiver, django_capture_on_commit_callbacks):
    webhook_for(trader, receiver.url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.EXPIRED_ITM, "1.20", "-600.00"))
    (request,) = receiver.requests
    assert request.json()["type"] == "trade.expired"
    assert request.json()["data"]["trade"]["close_reason"] == "EXPIRED_ITM"


def test_changes_that_are_no_news_send_nothing(trader, receiver, django_capture_on_commit_callbacks):
    webhook_for(trader, receiver.url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.OPEN, kind=EventKind.BRACKET_ADJUSTED, changes={"sl_price": Decimal("3.10")})
        transition(trade, TradeStatus.CLOSING, actor="USER")
    assert receiver.requests == [] and events_of(trader) == []


def test_a_trader_without_a_webhook_gets_no_events(trader, receiver, django_capture_on_commit_callbacks):
    services.account_settings_update(user=trader, changes={"webhook_url": receiver.url})  # no secret yet
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    assert queued == [] and receiver.requests == [] and events_of(trader) == []


def test_a_rolled_back_transition_sends_nothing(trader, receiver, django_capture_on_commit_callbacks):
    webhook_for(trader, receiver.url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        with pytest.raises(RuntimeError), transaction.atomic():
            transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.SL_HIT, "2.95", "-250.00"))
            raise RuntimeError("the cycle failed after the transition")
    assert queued == [] and receiver.requests == [] and events_of(trader) == []
    with tenancy.acting_as(trader.pk):
        trade.refresh_from_db()
    assert trade.status == TradeStatus.OPEN


def test_a_failing_receiver_is_retried_until_it_answers(trader, receiver, django_capture_on_commit_callbacks):
    secret = webhook_for(trader, receiver.url)
    receiver.answer(500, 503, then=200)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))

    assert len(receiver.requests) == 3
    ids = {request.headers["X-Tradeoptions-Event-Id"] for request in receiver.requests}
    assert len(ids) == 1  # one event: the receiver dedupes on its id
    assert [r.headers["X-Tradeoptions-Delivery-Attempt"] for r in receiver.requests] == ["1", "2", "3"]
    for request in receiver.requests:
        verify(request, secret)  # each attempt signed afresh
    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.DELIVERED, 3) and event.finished_at
    assert [(d.attempt, d.status_code, d.error) for d in deliveries_of(event)] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, "")]


def test_a_receiver_that_keeps_failing_is_given_up_on_with_every_attempt_recorded(
        trader, receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    webhook_for(trader, receiver.url)
    receiver.answer(500)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.SL_HIT, "2.95", "-250.00"))

    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.FAILED, 4)
    assert [(d.attempt, d.status_code) for d in deliveries_of(event)] == [(1, 500), (2, 500), (3, 500), (4, 500)]
    assert len(receiver.requests) == 4
    # The same message redelivered to a worker (acks late) does not try a fifth time.
    assert deliver_webhook.apply(args=[trader.pk, str(event.pk)]).get().endswith("FAILED (-)")
    assert len(receiver.requests) == 4


def test_an_unreachable_receiver_is_recorded_and_retried(trader, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    gone = WebhookReceiver().start()
    url = gone.url
    gone.stop()  # nothing listens on that port any more
    webhook_for(trader, url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.MANUAL_CLOSE))
    (event,) = events_of(trader)
    attempts = deliveries_of(event)
    assert event.status == WebhookEventStatus.FAILED and [d.attempt for d in attempts] == [1, 2]
    assert all(d.status_code is None and "could not be reached" in d.error for d in attempts)


def test_tries_whose_host_did_not_resolve_in_time_do_not_use_up_the_attempts(
        trader, receiver, settings, monkeypatch, django_capture_on_commit_callbacks):
    """The receiver's nameserver does not answer in time for the first two tries (a hung lookup
    itself: `test_webhook_targets.py`), then does; the receiver fails. The event still gets its
    WEBHOOK_MAX_ATTEMPTS (2) attempts at the receiver."""
    webhook_for(trader, receiver.url)
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    resolve, silent_tries = notifications._resolve, ["first", "second"]

    def resolve_unless_silent(host, port, **kwargs):
        if silent_tries:
            silent_tries.pop()
            raise notifications.WebhookHostUnknown(f"The webhook's host {notifications.DNS_TIMED_OUT} (2 s): {host!r}.")
        return resolve(host, port, **kwargs)

    monkeypatch.setattr(notifications, "_resolve", resolve_unless_silent)
    receiver.answer(500)
    with django_capture_on_commit_callbacks(execute=True):
        transition(PaperTradeFactory(owner=trader), TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)
    tries = deliveries_of(event)
    assert [(d.attempt, d.status_code) for d in tries] == [(1, None), (2, None), (3, 500), (4, 500)]
    assert all("did not resolve in time" in d.error for d in tries[:2])
    assert len(receiver.requests) == 2 and event.status == WebhookEventStatus.FAILED


def test_a_try_whose_host_did_not_resolve_in_time_is_retried_with_backoff(trader, receiver, settings, monkeypatch):
    """Even with a single attempt allowed: the receiver was never tried."""
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    webhook_for(trader, receiver.url)
    transition(PaperTradeFactory(owner=trader), TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)

    def no_answer(host, port, **kwargs):
        raise notifications.WebhookHostUnknown(f"The webhook's host {notifications.DNS_TIMED_OUT} (2 s): {host!r}.")

    monkeypatch.setattr(notifications, "_resolve", no_answer)
    outcome = services.webhook_deliver(owner_id=trader.pk, event_id=str(event.pk))
    assert outcome.retry and 5 <= outcome.retry_in <= 10  # the first retry's slot, as for a failed attempt
    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.PENDING, 1)


def test_retries_back_off_exponentially_with_jitter_and_a_ceiling():
    for attempt in range(1, 6):
        ceiling = 10 * 2 ** (attempt - 1)
        delays = {notifications.webhook_retry_delay(attempt) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays) and len(delays) > 1
    assert notifications.webhook_retry_delay(30) <= 3600


def test_redirects_are_not_followed(trader, receiver, django_capture_on_commit_callbacks):
    elsewhere = WebhookReceiver().start()
    try:
        webhook_for(trader, receiver.url)
        receiver.redirect_to(elsewhere.url)
        trade = PaperTradeFactory(owner=trader)
        with django_capture_on_commit_callbacks(execute=True):
            transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
        assert elsewhere.requests == []
        (event,) = events_of(trader)
        assert {d.status_code for d in deliveries_of(event)} == {302}
    finally:
        elsewhere.stop()


def test_a_name_that_resolves_inside_our_network_at_send_time_is_refused(
        trader, receiver, settings, dns, django_capture_on_commit_callbacks):
    """DNS rebinding: public when the URL was saved, 127.0.0.1 when the event is sent."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    dns["hooks.example.com"] = "93.184.216.34"
    webhook_for(trader, f"http://hooks.example.com:{receiver.port}/hooks/tradeoptions")
    dns["hooks.example.com"] = "127.0.0.1"
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    assert receiver.requests == []
    (event,) = events_of(trader)
    (attempt,) = deliveries_of(event)  # refused for good: not retried
    assert event.status == WebhookEventStatus.FAILED
    assert attempt.status_code is None and "private, loopback" in attempt.error
    assert attempt.target_host == "hooks.example.com"


def test_the_send_goes_to_the_address_that_was_checked(trader, receiver, dns, django_capture_on_commit_callbacks):
    """The request is made to the resolved address, with the URL's host in the Host header."""
    dns["hooks.example.com"] = "127.0.0.1"
    webhook_for(trader, f"http://hooks.example.com:{receiver.port}/hooks/tradeoptions?account=7")
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert request.path == "/hooks/tradeoptions?account=7"


def test_trades_opened_and_closed_through_the_api_are_announced(api_as, trader, market, open_body, receiver,
                                                                django_capture_on_commit_callbacks):
    from .conftest import CONTRACT

    secret = webhook_for(trader, receiver.url)
    client = api_as(trader)
    with django_capture_on_commit_callbacks(execute=True):
        opened = client.post("/api/trades", open_body(), format="json").json()
    market.set_quote(CONTRACT, "5.00", "5.20")
    with django_capture_on_commit_callbacks(execute=True):
        closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert closed.status_code == 200
    bodies = [verify(request, secret) for request in receiver.requests]
    assert [body["type"] for body in bodies] == ["trade.opened", "trade.manual_close"]
    assert bodies[0]["data"]["trade"]["entry_price"] == "4.3000"
    closed_trade = bodies[1]["data"]["trade"]
    assert (closed_trade["realized_pnl"], closed_trade["realized_pnl_gross"], closed_trade["commission_total"],
            closed_trade["realized_pnl_net"]) == ("140.00", "140.00", "2.60", "137.40")  # $0.65 a contract


def test_a_broker_that_refuses_the_account_is_reported_once_an_hour(trader, receiver,
                                                                    django_capture_on_commit_callbacks):
    from monitoring.sync import sync_orders

    secret = webhook_for(trader, receiver.url)
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.filter(owner=trader).update(broker_mode=BrokerMode.TRADIER_SANDBOX,
                                                            tradier_account_id="VA1")
    PaperTradeFactory(owner=trader, broker_mode=BrokerMode.TRADIER_SANDBOX)  # no sandbox token stored
    cache.delete(f"webhook:broker-auth:{trader.pk}:{BrokerMode.TRADIER_SANDBOX}")
    with django_capture_on_commit_callbacks(execute=True):  # each cycle commits before the next
        first = sync_orders()
    # Polled again all the same (the pause that now follows a refusal forgotten), to hear the hour's silence.
    services.broker_trouble_clear(owner_id=trader.pk, mode=BrokerMode.TRADIER_SANDBOX)
    with django_capture_on_commit_callbacks(execute=True):
        second = sync_orders()  # the next cycle meets the same refusal: no second message
    assert first.failed_accounts == second.failed_accounts == [trader.pk]
    (request,) = receiver.requests
    body = verify(request, secret)
    assert body["type"] == "broker.auth_failed"
    assert body["data"]["broker_mode"] == "TRADIER_SANDBOX" and "token" in body["data"]["message"]


def test_an_auth_failure_that_was_never_written_does_not_silence_the_next_hour(
        trader, receiver, monkeypatch, django_capture_on_commit_callbacks):
    """The quiet hour starts when the event has committed: a failed write, or a rolled-back one,
    leaves the next cycle free to tell the trader."""
    from django.db import DatabaseError

    webhook_for(trader, receiver.url)
    cache.delete(f"webhook:broker-auth:{trader.pk}:{BrokerMode.TRADIER_SANDBOX}")
    announce = notifications.webhook_announce

    def database_gone(**kwargs):
        raise DatabaseError("the database went away")

    monkeypatch.setattr(notifications, "webhook_announce", database_gone)
    refused = {"owner_id": trader.pk, "broker_mode": BrokerMode.TRADIER_SANDBOX, "message": "token refused"}
    with pytest.raises(DatabaseError):
        services.broker_auth_failure_announce(**refused)
    monkeypatch.setattr(notifications, "webhook_announce", announce)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        assert services.broker_auth_failure_announce(**refused) is not None
        raise RuntimeError("the cycle's transaction rolls back")
    assert receiver.requests == [] and events_of(trader) == []

    with django_capture_on_commit_callbacks(execute=True):
        assert services.broker_auth_failure_announce(**refused) is not None
    assert services.broker_auth_failure_announce(**refused) is None  # now the hour is quiet
    (request,) = receiver.requests
    assert request.json()["type"] == "broker.auth_failed"


def test_the_secret_and_the_url_appear_in_no_log(trader, receiver, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    secret = webhook_for(trader, receiver.url + "?capability=KEEP-ME-QUIET")
    receiver.answer(500, then=200)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    assert len(receiver.requests) == 2 and caplog.records
    assert secret not in caplog.text and "KEEP-ME-QUIET" not in caplog.text


def test_an_event_of_another_trader_is_not_delivered_as_this_one(trader, other_trader, receiver,
                                                                   django_capture_on_commit_callbacks):
    """The task runs as the owner it was given: another trader's id finds no event (row-level security)."""
    webhook_for(trader, receiver.url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=False):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)
    outcome = services.webhook_deliver(owner_id=other_trader.pk, event_id=str(event.pk))
    assert outcome.status == "MISSING" and not outcome.retry and receiver.requests == []
    assert events_of(trader)[0].attempts == 0


def test_an_event_whose_task_was_lost_is_queued_again_by_the_sweep(trader, receiver,
                                                                   django_capture_on_commit_callbacks):
    from monitoring import tasks as monitor_tasks

    secret = webhook_for(trader, receiver.url)
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=False):  # the queue was down at the commit
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    fresh = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=False):  # queued a moment ago: not overdue yet
        transition(fresh, TradeStatus.CLOSED, changes=close(CloseReason.SL_HIT, "2.95", "-250.00"))
    lost, recent = sorted(events_of(trader), key=lambda event: event.trade_id != trade.pk)
    with tenancy.acting_as(trader.pk):
        WebhookEvent.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=11))
    cache.delete("lock:monitoring.resend_webhooks")

    with django_capture_on_commit_callbacks(execute=True):
        assert monitor_tasks.resend_webhooks.apply().get() == "1 webhook event(s) and 0 channel message(s) queued again"
    (request,) = receiver.requests
    assert verify(request, secret)["id"] == str(lost.pk)
    statuses = {event.pk: event.status for event in events_of(trader)}
    assert statuses == {lost.pk: WebhookEventStatus.DELIVERED, recent.pk: WebhookEventStatus.PENDING}


def test_a_retry_is_scheduled_for_when_it_is_due(trader, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    webhook_for(trader, receiver.url)
    receiver.answer(500)
    trade = PaperTradeFactory(owner=trader)
    transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))  # no commit: nothing queued
    (event,) = events_of(trader)
    before = timezone.now()
    outcome = services.webhook_deliver(owner_id=trader.pk, event_id=str(event.pk))
    assert outcome.retry and 5 <= outcome.retry_in <= 10
    (event,) = events_of(trader)
    assert before + timedelta(seconds=5) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=10)


def test_the_signing_secret_survives_a_key_rotation(trader, receiver, settings, django_capture_on_commit_callbacks):
    """The operator puts a new key first, rotates, removes the old keys: webhooks still sign."""
    secret = webhook_for(trader, receiver.url)
    settings.ENCRYPTION_KEYS = [NEW_KEY, *settings.ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys", "--apply", stdout=StringIO())
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (request,) = receiver.requests
    verify(request, secret)


def test_a_secret_no_key_can_read_is_a_failed_attempt_not_a_crashed_task(
        trader, receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    webhook_for(trader, receiver.url)
    settings.ENCRYPTION_KEYS = [NEW_KEY]  # the old key removed without a rotation
    trade = PaperTradeFactory(owner=trader)
    with django_capture_on_commit_callbacks(execute=True):
        transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.FAILED, 2) and receiver.requests == []
    assert all("ENCRYPTION_KEYS" in delivery.error for delivery in deliveries_of(event))


def test_a_failed_attempt_does_not_undo_a_delivery_made_meanwhile(trader, receiver, settings, monkeypatch):
    """The sweep queued a lost event again; the original task, late, delivered it while this
    attempt was at a failing receiver: the event stays DELIVERED."""
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    webhook_for(trader, receiver.url)
    receiver.answer(500)
    trade = PaperTradeFactory(owner=trader)
    transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))  # no commit: nothing queued
    (event,) = events_of(trader)
    post = notifications._post

    def post_while_the_other_task_delivers(url, body, headers, **kwargs):
        with tenancy.acting_as(trader.pk):
            WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEventStatus.DELIVERED,
                                                            finished_at=timezone.now())
        return post(url, body, headers, **kwargs)

    monkeypatch.setattr(notifications, "_post", post_while_the_other_task_delivers)
    services.webhook_deliver(owner_id=trader.pk, event_id=str(event.pk))
    (event,) = events_of(trader)
    assert event.status == WebhookEventStatus.DELIVERED
    assert [(d.attempt, d.status_code) for d in deliveries_of(event)] == [(1, 500)]


def test_the_delivery_task_keeps_the_house_hygiene():
    """A message still queued when the sweep would queue its event again has been superseded, so
    it expires then; the event stays PENDING and `webhook_events_resend` sends it again."""
    stalled = notifications.STALLED_AFTER.total_seconds()
    assert deliver_webhook.name == "trades.deliver_webhook"
    assert deliver_webhook.expires == stalled
    assert deliver_webhook.soft_time_limit < deliver_webhook.time_limit < 3600
    assert deliver_webhook.acks_late and deliver_webhook.reject_on_worker_lost
    # A claimed slot is held at least as long as an attempt can run: no second attempt overlaps it.
    assert notifications.ATTEMPT_LEASE.total_seconds() >= deliver_webhook.time_limit


def test_a_retry_expires_a_window_after_its_own_slot_not_the_first_message(trader, monkeypatch):
    """Celery copies the first message's absolute `expires` to its retries: a retry due in half an
    hour would be dropped unsent. Each retry gets its own window after its countdown."""
    event_id = str(uuid.uuid4())
    outcomes = iter([notifications.DeliveryOutcome(event_id, 1, WebhookEventStatus.PENDING, 500, "HTTP 500", 1800.0),
                     notifications.DeliveryOutcome(event_id, 2, WebhookEventStatus.DELIVERED, 200)])
    monkeypatch.setattr(services, "webhook_deliver", lambda **kwargs: next(outcomes))
    retried = []
    build = deliver_webhook.signature_from_request

    def remember(*args, **kwargs):
        signature = build(*args, **kwargs)
        retried.append(signature.options)
        return signature

    monkeypatch.setattr(deliver_webhook, "signature_from_request", remember)
    assert "DELIVERED" in deliver_webhook.apply(args=[trader.pk, event_id]).get()
    (options,) = retried
    assert options["countdown"] == 1800.0
    assert options["expires"] == 1800.0 + notifications.STALLED_AFTER.total_seconds()


def test_an_event_not_yet_due_is_left_for_its_own_slot(trader, receiver, settings):
    """A duplicate task (the sweep's, or a redelivered message) arriving before the event's next
    attempt is due makes no attempt and does not retry: the slot belongs to the scheduled one."""
    webhook_for(trader, receiver.url)
    transition(PaperTradeFactory(owner=trader), TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)
    with tenancy.acting_as(trader.pk):
        WebhookEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=30))

    outcome = services.webhook_deliver(owner_id=trader.pk, event_id=str(event.pk))

    assert not outcome.retry and receiver.requests == []
    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.PENDING, 0) and deliveries_of(event) == []


@pytest.mark.django_db(transaction=True)
def test_two_tasks_claiming_one_slot_at_once_make_one_attempt(trader, receiver, monkeypatch):
    """The original task, late, and the sweep's copy run together: one claims the slot and posts;
    the other, while that POST is still under way, finds the slot taken and sends nothing."""
    import threading

    from django.db import connection

    webhook_for(trader, receiver.url)
    monkeypatch.setattr(notifications, "_enqueue", lambda owner_id, event_id: None)  # both tasks are run by hand
    with transaction.atomic():
        transition(PaperTradeFactory(owner=trader), TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
    (event,) = events_of(trader)
    posting, release = threading.Event(), threading.Event()
    post = notifications._post

    def slow_post(url, body, headers, **kwargs):
        if not posting.is_set():  # the first to claim stays at the receiver until the other has run
            posting.set()
            release.wait(10)
        return post(url, body, headers, **kwargs)

    monkeypatch.setattr(notifications, "_post", slow_post)
    outcomes = []

    def deliver():
        try:
            outcomes.append(services.webhook_deliver(owner_id=trader.pk, event_id=str(event.pk)))
        finally:
            connection.close()

    first = threading.Thread(target=deliver)
    first.start()
    assert posting.wait(10)
    second = threading.Thread(target=deliver)
    second.start()
    second.join(10)
    release.set()
    first.join(10)

    assert len(outcomes) == 2 and len(receiver.requests) == 1
    (event,) = events_of(trader)
    assert (event.status, event.attempts) == (WebhookEventStatus.DELIVERED, 1)
    assert [d.attempt for d in deliveries_of(event)] == [1]


def test_deliveries_have_their_own_queue_and_worker():
    """A slow receiver occupies a webhook worker, never one the monitor's jobs need."""
    from pathlib import Path

    import yaml

    from tradeoptions.celery import app

    assert app.amqp.router.route({}, "trades.deliver_webhook")["queue"].name == "webhooks"
    assert app.amqp.router.route({}, "monitoring.sync_orders")["queue"].name != "webhooks"
    root = Path(__file__).resolve().parents[2]
    assert "worker -Q webhooks" in (root / "Procfile").read_text()
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    assert compose["services"]["webhooks"]["command"][4:6] == ["-Q", "webhooks"]


@pytest.fixture
def certificates(tmp_path):
    """A test certificate authority and a server certificate it signed for hooks.example.com."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def pem(path, data):
        path.write_bytes(data)
        return str(path)

    # Valid whatever the date: the TLS library checks it against the real clock, the test may run
    # on a moved one (make test-clock).
    now = datetime(2060, 1, 1, tzinfo=UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - timedelta(days=365 * 40))
          .not_valid_after(now + timedelta(days=365 * 30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("hooks.example.com")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - timedelta(days=365 * 40))
            .not_valid_after(now + timedelta(days=365 * 30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.com")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return {"ca": pem(tmp_path / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
            "cert": pem(tmp_path / "cert.pem", leaf.public_bytes(serialization.Encoding.PEM)),
            "key": pem(tmp_path / "key.pem", key_pem)}


@pytest.mark.parametrize(("name", "delivered"), [("hooks.example.com", True), ("other.example.com", False)])
def test_https_goes_to_the_checked_address_and_still_verifies_the_certificate_for_the_name(
        trader, dns, certificates, monkeypatch, name, delivered, django_capture_on_commit_callbacks):
    """The connection is pinned to the resolved IP, yet TLS checks the certificate against the URL's
    host name: a certificate for another name is refused."""
    monkeypatch.setattr(notifications.certifi, "where", lambda: certificates["ca"])
    secure = WebhookReceiver(tls=(certificates["cert"], certificates["key"])).start()
    try:
        dns[name] = "127.0.0.1"
        secret = webhook_for(trader, f"https://{name}:{secure.port}/hooks/tradeoptions")
        trade = PaperTradeFactory(owner=trader)
        with django_capture_on_commit_callbacks(execute=True):
            transition(trade, TradeStatus.CLOSED, changes=close(CloseReason.TP_HIT))
        (event,) = events_of(trader)
        if delivered:
            (request,) = secure.requests
            assert verify(request, secret)["id"] == str(event.pk) and event.status == WebhookEventStatus.DELIVERED
        else:
            assert secure.requests == [] and event.status == WebhookEventStatus.FAILED
            assert all(d.status_code is None and d.error for d in deliveries_of(event))
    finally:
        secure.stop()
