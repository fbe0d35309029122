"""Telling a trader's notification channels what happened: an outbox row per channel, sent after
the commit by a task on the webhooks queue (never the monitor's), retried with backoff.

`channel_messages_write` runs in the transaction of the change (called wherever the webhook is
announced, and for moments only channels hear of), so a rolled-back change tells no one. The
message's words are frozen then. `channel_message_deliver` makes one attempt per scheduled slot
(claimed by a conditional UPDATE, as the webhooks'), outside any transaction.

Quiet hours (New York wall clock, per channel): a message due inside them is held until they end
(HOLD, the default) or dropped (DROP). Held is the default because what happens at night still
matters in the morning (a stop-loss filled, a trade expired), and a trader who would rather not
hear it at all chooses DROP. Critical messages (an unprotected position, an over-sold contract,
a broker refusing the token) and test messages go through quiet hours: the trader must act now.

A message met again and again (an outage each cycle, the daily loss limit after each sale, a
report whose job reruns) carries a dedupe key: each channel is told of it once. A report carries
its HTML too, which an email channel gets (with a plain-text part); every other message is sent
as text, which Apprise adapts to the service (escaped for Telegram's HTML, …).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import apprise
from apprise import NotifyFormat
from apprise.plugins.email import NotifyEmail
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from brokers.crypto import VaultError
from tradeoptions import tenancy
from trades.models import (
    CRITICAL_EVENTS,
    ChannelKind,
    ChannelMessage,
    ChannelMessageStatus,
    NotificationChannel,
    NotificationEvent,
    QuietMode,
)

from . import channels, notifications, push

logger = logging.getLogger(__name__)

# As the webhooks' (notifications imports this module, so they are not read from it): a claimed
# attempt holds its slot at least the task's hard time limit; a pending message this far past its
# slot has lost its task.
ATTEMPT_LEASE = timedelta(seconds=90)
STALLED_AFTER = timedelta(minutes=10)
RESEND_BATCH = 500


# --- Writing ------------------------------------------------------------------------------------


def channel_messages_write(*, owner_id: int, kind: str, data: dict, dedupe_key: str = "",
                           words: tuple[str, str] | None = None, body_html: str = "") -> list[ChannelMessage]:
    """One message for each of the owner's enabled channels that chose `kind`, in the caller's
    transaction and tenant context; each is queued for delivery after the commit.

    `dedupe_key`: a channel that was told of it already (this key) is not told again; the row's
    unique index decides, so two writers at once cannot both tell it. `words`: a (title, body)
    already written (a report); else they are made from `data`. `body_html`: the report's HTML,
    for email channels."""
    chosen = NotificationChannel.objects.filter(owner_id=owner_id, enabled=True, events__contains=[kind])
    if dedupe_key:
        told = ChannelMessage.objects.filter(owner_id=owner_id, dedupe_key=dedupe_key).values("channel_id")
        chosen = chosen.exclude(pk__in=told)
    title, body = words or message_words(kind, data)
    now = timezone.now()
    written = []
    for channel in chosen.only("pk"):
        message = ChannelMessage(owner_id=owner_id, channel=channel, kind=kind, title=title[:120], body=body,
                                 body_html=body_html, dedupe_key=dedupe_key, critical=kind in CRITICAL_EVENTS,
                                 next_attempt_at=now)
        if dedupe_key:
            try:  # a writer in another transaction told this channel meanwhile: its row stands
                with transaction.atomic():
                    message.save(force_insert=True)
            except IntegrityError:
                continue
        else:
            message.save(force_insert=True)
        written.append(message)
    for message in written:
        transaction.on_commit(lambda pk=str(message.pk): _enqueue(owner_id, pk), robust=True)
    return written


def channel_test_send(*, user: AbstractBaseUser, channel_id: int) -> ChannelMessage:
    """A test message to the channel, through the same outbox and queue as real ones (so its
    line in the delivery log says whether the channel works); it goes through quiet hours."""
    with tenancy.acting_as(user.pk), transaction.atomic():
        channel = NotificationChannel.objects.filter(owner=user, pk=channel_id).first()
        if channel is None:
            raise NotificationChannel.DoesNotExist("No such notification channel.")
        message = ChannelMessage.objects.create(
            owner_id=user.pk, channel=channel, kind=NotificationEvent.TEST, critical=True,
            title="tradeoptions: test message", next_attempt_at=timezone.now(),
            body=f"This channel ({channel.name}) will tell you about your trades.")
        transaction.on_commit(lambda pk=str(message.pk): _enqueue(user.pk, pk), robust=True)
    return message


def _enqueue(owner_id: int, message_id: str, countdown: float = 0) -> None:
    from trades.tasks import deliver_channel_message  # the task module imports the services

    deliver_channel_message.apply_async(args=[owner_id, message_id], countdown=countdown or None)


def message_words(kind: str, data: dict) -> tuple[str, str]:
    """A title and a body a trader reads on a phone: the contract, what happened, the money."""
    label = NotificationEvent(kind).label if kind in NotificationEvent.values else kind
    trade = data.get("trade") or {}
    if not trade:
        detail = data.get("message") or data.get("detail") or ""
        mode = data.get("broker_mode")
        return f"{label}{f' ({mode})' if mode else ''}", str(detail)[:500] or label
    contract = f"{trade.get('ticker', '')} {trade.get('strike', '')}{str(trade.get('option_type', ''))[:1]} " \
               f"{trade.get('expiry', '')}".strip()
    lines = [f"{label}: {trade.get('qty', '')} × {contract}"]
    for name, words in (("entry_price", "entry"), ("close_price", "exit"), ("sl_price", "stop-loss"),
                        ("tp_price", "take-profit")):
        if trade.get(name) is not None:
            lines.append(f"{words} {_price(trade[name])}")
    if trade.get("realized_pnl_net") is not None:
        lines.append(f"P&L after commissions ${_price(trade['realized_pnl_net'], places='0.01')}")
    if data.get("short_qty"):
        lines.append(f"held short at the broker: {data['short_qty']}; buy it back there")
    if data.get("attention_reason"):
        lines.append(str(data["attention_reason"]))
    return f"{contract}: {label}", "\n".join(lines)


def _price(value, places: str = "0.01") -> str:
    try:
        return str(Decimal(str(value)).quantize(Decimal(places)))
    except ArithmeticError:
        return str(value)


# --- Delivering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelOutcome:
    message_id: str
    status: str
    retry_in: float = 0.0
    claimed: bool = True
    error: str = ""

    @property
    def retry(self) -> bool:
        return self.claimed and self.status in (ChannelMessageStatus.PENDING, ChannelMessageStatus.HELD)

    def __str__(self) -> str:
        return f"channel message {self.message_id}: {self.status}{f' ({self.error})' if self.error else ''}"


def channel_message_deliver(*, owner_id: int, message_id: str, now: datetime | None = None) -> ChannelOutcome:
    """One attempt at a due message: held or dropped in its channel's quiet hours (unless
    critical), else sent through Apprise (or Web Push, for a device's channel); DELIVERED,
    retried with backoff, or FAILED after NOTIFY_MAX_ATTEMPTS. A finished message, or one not yet
    due, is left alone (idempotent)."""
    now = now or timezone.now()
    with tenancy.acting_as(owner_id):
        claimed = _claim(message_id, now)
        message = ChannelMessage.objects.select_related("channel").filter(pk=message_id).first()
    if not claimed or message is None:
        return ChannelOutcome(message_id, message.status if message else "MISSING", claimed=False)
    channel = message.channel
    held_until = None if message.critical else channels.quiet_until(channel, now)
    if held_until is not None:
        return _quiet(message, channel, held_until, now)
    error, permanent = _send(message, channel, owner_id=owner_id)
    final = not error or permanent or message.attempts >= settings.NOTIFY_MAX_ATTEMPTS
    status = (ChannelMessageStatus.FAILED if error else ChannelMessageStatus.DELIVERED) if final \
        else ChannelMessageStatus.PENDING
    retry_in = 0.0 if final else notifications.webhook_retry_delay(message.attempts)
    with tenancy.acting_as(owner_id):
        pending = ChannelMessage.objects.filter(pk=message_id, status__in=[ChannelMessageStatus.PENDING,
                                                                           ChannelMessageStatus.HELD])
        pending.update(status=status, error=error[:255], finished_at=now if final else None,
                       next_attempt_at=None if final else now + timedelta(seconds=retry_in))
    outcome = ChannelOutcome(message_id, status, retry_in, error=error)
    (logger.warning if error else logger.info)("%s (%s to channel %s, %s)", outcome, message.kind, channel.pk,
                                               channel.url_hint)
    return outcome


def _quiet(message: ChannelMessage, channel: NotificationChannel, until: datetime, now: datetime) -> ChannelOutcome:
    """Inside quiet hours: the attempt is given back (it was not made) and the message held for
    their end, or dropped, as the channel says."""
    with tenancy.acting_as(message.owner_id):
        rows = ChannelMessage.objects.filter(pk=message.pk)
        if channel.quiet_mode == QuietMode.DROP:
            rows.update(status=ChannelMessageStatus.DROPPED, attempts=F("attempts") - 1, finished_at=now,
                        next_attempt_at=None, error="Dropped: it came in the channel's quiet hours.")
            return ChannelOutcome(str(message.pk), ChannelMessageStatus.DROPPED, claimed=False)
        rows.update(status=ChannelMessageStatus.HELD, attempts=F("attempts") - 1, next_attempt_at=until)
    return ChannelOutcome(str(message.pk), ChannelMessageStatus.HELD, (until - now).total_seconds())


def _send(message: ChannelMessage, channel: NotificationChannel, *, owner_id: int) -> tuple[str, bool]:
    """('', False) when the service took the message; else the error (without the URL) and
    whether trying again is pointless."""
    if not channel.enabled:
        return "The channel was switched off.", True
    if channel.kind == ChannelKind.WEB_PUSH:
        return push.push_send(message, channel, owner_id=owner_id)
    try:
        url = channel.url()
    except VaultError:
        return "The channel's URL cannot be decrypted with ENCRYPTION_KEYS.", False
    refused = channels.network_target_recheck(url, owner_id=owner_id)
    if refused:
        return refused, True
    sender = apprise.Apprise()
    if not sender.add(url):
        return "Apprise no longer accepts this channel's URL; enter it again.", True
    body, body_format = _body_for(message, sender[0])
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        sent = sender.notify(title=message.title, body=body, body_format=body_format)
    if sent:
        return "", False
    said = [line for line in captured.getvalue().splitlines() if line.strip()]
    detail = channels.scrubbed(said[-1], url) if said else ""
    return f"The service did not take the message{f': {detail}' if detail else '.'}", False


def _body_for(message: ChannelMessage, plugin) -> tuple[str, str]:
    """The HTML of a report for an email channel that sends HTML (Apprise then sends it as
    multipart/alternative: the HTML and a plain-text part made from it); else the text, which
    Apprise adapts to the service (Telegram, ntfy, Discord, …). A mailto URL with ?format=text
    gets the text."""
    if (message.body_html and isinstance(plugin, NotifyEmail)
            and plugin.resolve_format(NotifyFormat.HTML) == NotifyFormat.HTML):  # not a mailto://…?format=text
        return message.body_html, NotifyFormat.HTML
    return message.body, NotifyFormat.TEXT


def _claim(message_id: str, now: datetime) -> bool:
    """Take the message's current slot if it is due (pending, or held and its quiet hours over),
    in one conditional UPDATE: a second task for the same slot finds it taken."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return bool(ChannelMessage.objects.filter(
        due, pk=message_id, status__in=[ChannelMessageStatus.PENDING, ChannelMessageStatus.HELD],
    ).update(status=ChannelMessageStatus.PENDING, attempts=F("attempts") + 1, next_attempt_at=now + ATTEMPT_LEASE))


def channel_messages_resend(*, now: datetime | None = None) -> int:
    """Queue again the messages whose task was lost (pending, long past their slot) and the held
    ones whose quiet hours are over. A periodic ops sweep in the system context; it only queues
    (on the webhooks queue), it never sends."""
    now = now or timezone.now()
    with tenancy.system_context():
        due = list(ChannelMessage.objects.select_for_update(skip_locked=True).filter(
            Q(status=ChannelMessageStatus.PENDING, next_attempt_at__lt=now - STALLED_AFTER)
            | Q(status=ChannelMessageStatus.HELD, next_attempt_at__lte=now),
        ).values_list("pk", "owner_id")[:RESEND_BATCH])
        for pk, owner_id in due:
            transaction.on_commit(lambda pk=str(pk), owner_id=owner_id: _enqueue(owner_id, pk), robust=True)
    return len(due)
