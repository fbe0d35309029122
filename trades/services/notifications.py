"""Telling a trader what happened to their trades: an outgoing webhook, signed, sent after commit.

The moments that matter (a trade opened, hit its take-profit or stop-loss, was closed by hand,
expired, was rejected; the broker refused the account's credentials) become a `WebhookEvent` row
in the same transaction as the change, so a rolled-back change announces nothing. After the commit
a Celery task delivers it (`trades.tasks.deliver_webhook`): the monitor cycle only enqueues, it
never waits on a receiver. Each attempt is a `WebhookDelivery` row, visible in the ops admin. An
event whose task was lost is queued again by a periodic sweep (`webhook_events_resend`).

Receivers verify `X-Tradeoptions-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
with their signing secret, reject old timestamps, and dedupe on `X-Tradeoptions-Event-Id` (the
payload's `id`, the same on every attempt).

SSRF: a webhook URL is http(s) only. Unless WEBHOOK_ALLOW_PRIVATE_TARGETS (local and tests), it
may not point at loopback, private, link-local, multicast or reserved addresses, nor at an IPv6
address that carries an IPv4 one (mapped, compatible, SIIT, NAT64, 6to4, Teredo): those reach an
IPv4 host through a translator or relay, and which one is not ours to check, so they are refused
whatever they carry. The check runs when the URL is saved and again on every send, against the
addresses the name resolves to then; the request goes to the address just checked (so DNS cannot
change it in between), and redirects are not followed. The host name is the resolver's to parse
(`2130706433`, `0x7f.1` and `0177.0.0.1` all come back as 127.0.0.1, and are checked as that).
The lookup has WEBHOOK_DNS_TIMEOUT_SECONDS: a resolver that hangs makes a refusal ("did not
resolve in time": a field error when saving, a retried try when sending), not a hung request
or worker. Each lookup has a thread of its own, and an owner whose lookups hang has their next
ones refused at once, so one tenant's silent nameserver does not hold up anyone else's lookups.
A try whose host did not resolve in time is not an attempt at the receiver: it does not use up
one of WEBHOOK_MAX_ATTEMPTS, and DNS_TIMEOUTS_MAX such tries end the event FAILED.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from brokers.crypto import VaultError
from tradeoptions import tenancy
from trades.models import (
    AccountSettings,
    Actor,
    CloseReason,
    EventKind,
    NotificationEvent,
    PaperTrade,
    TradeStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventKind,
    WebhookEventStatus,
)

from . import (
    channel_delivery,  # as a module: it uses this one's host guard and backoff
    lifecycle,  # as a module: lifecycle calls back into this one
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tradeoptions-Signature"
EVENT_ID_HEADER = "X-Tradeoptions-Event-Id"
SECRET_PREFIX = "whsec_"
RETRY_BASE_SECONDS = 10  # first retry after ~10 s, then 20, 40, … (with jitter)
RETRY_MAX_SECONDS = 3600
# A pending event this far past its next attempt has lost its task; at most this many are queued
# again per sweep.
STALLED_AFTER = timedelta(minutes=10)
RESEND_BATCH = 500
# A broker that refuses an account's token is reported at most this often (the monitor cycle
# meets the refusal on every run until the trader fixes the token).
AUTH_FAILURE_QUIET_SECONDS = 3600
# A claimed attempt holds its slot this long: at least the delivery task's hard time limit
# (trades.tasks), so no second attempt starts while the first may still be under way.
ATTEMPT_LEASE = timedelta(seconds=90)

# How the gate's attention reasons for a bare position begin (trades.services.protection, closing).
# As protection._UNPROTECTED_REASONS (which imports the gate, so it is not imported here).
UNPROTECTED_PREFIXES = ("Position unprotected", "The position has no SL/TP bracket")
_CLOSE_KINDS = {
    CloseReason.TP_HIT: WebhookEventKind.TP_HIT,
    CloseReason.SL_HIT: WebhookEventKind.SL_HIT,
    CloseReason.MANUAL_CLOSE: WebhookEventKind.MANUAL_CLOSE,
    CloseReason.EXPIRED: WebhookEventKind.EXPIRED,
    CloseReason.EXPIRED_ITM: WebhookEventKind.EXPIRED,
    CloseReason.TIME_STOP: WebhookEventKind.POLICY_EXIT,
    CloseReason.STOCK_STOP: WebhookEventKind.POLICY_EXIT,
}
_TRADE_FIELDS = ("id", "option_symbol", "ticker", "option_type", "strike", "expiry", "qty", "status",
                 "status_reason", "entry_price", "entry_date", "sl_price", "tp_price", "close_price", "close_date",
                 "close_reason", "realized_pnl", "realized_pnl_pct", "realized_pnl_gross", "realized_pnl_net",
                 "commission_total", "fees", "strategy", "broker_mode", "version",
                 # What the legs make: a spread's prices are held prices (docs/spreads.md), a credit's
                 # close_price what buying it back cost.
                 "strategy_type", "net_direction")


class UnsafeWebhookTarget(ValueError):
    """The URL is not one we send to (scheme, credentials, or an address inside our network)."""


class WebhookHostUnknown(UnsafeWebhookTarget):
    """The host name does not resolve (now): refused when saved, tried again when sending."""


# --- The URL ------------------------------------------------------------------------------------


def webhook_url_check(url: str, *, owner_id: int) -> None:
    """Refuse a URL we would not send to; checks what the name resolves to now, too (the owner's
    lookups in flight are capped: see `_resolve`)."""
    parts = _parts(url)
    _check_addresses(parts.hostname, _resolve(parts.hostname, _port(parts), owner_id=owner_id))


def _parts(url: str):
    url = url.strip()
    if any(char.isspace() or not char.isprintable() for char in url):
        raise UnsafeWebhookTarget("A webhook URL cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed or invalid [IPv6] host
        raise UnsafeWebhookTarget("The webhook URL's host is not a valid name or address.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeWebhookTarget("A webhook URL starts with http:// or https://.")
    if not parts.hostname:
        raise UnsafeWebhookTarget("A webhook URL needs a host name.")
    if parts.username or parts.password:
        raise UnsafeWebhookTarget("A webhook URL cannot carry a user name or password.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # out of range, or an explicit 0 that `_port` would silently turn into 80/443
        raise UnsafeWebhookTarget("The webhook URL's port is not a number from 1 to 65535.")
    return parts


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


# getaddrinfo has no timeout of its own (glibc gives up on a silent nameserver only after 10-30 s),
# so each lookup runs on a daemon thread of its own and the caller waits at most
# WEBHOOK_DNS_TIMEOUT_SECONDS. A lookup that outlives that wait ("hung") keeps its thread until the
# resolver gives up; what it cannot do is hold up anyone else's lookups: there is no shared pool to
# fill. An owner with DNS_LOOKUPS_HUNG_PER_OWNER hung lookups has their next ones refused at once
# (their resolver is not answering), and a process runs at most DNS_LOOKUPS_MAX lookups at a time
# (a bound on threads, far above what one owner can hold).
DNS_LOOKUPS_HUNG_PER_OWNER = 2
DNS_LOOKUPS_MAX = 64
# The phrase every "the resolver did not answer" refusal carries, before the host name (so a
# recorded error, cut at 255 characters, keeps it): such a send is tried again without using up
# one of WEBHOOK_MAX_ATTEMPTS (see `_used_up`).
DNS_TIMED_OUT = "did not resolve in time"
# A pending event ends FAILED at its this-many-th try whose host did not resolve in time. Each is
# retried with the same backoff as a failed attempt (capped at an hour, jittered), so a resolver
# that never answers ends the event after roughly half a day to a day of tries.
DNS_TIMEOUTS_MAX = 30


class _Lookups:
    """The process's lookups in flight, and which of them their caller gave up waiting for."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = 0
        self.hung: Counter = Counter()  # owner id -> lookups outliving their caller's wait


_lookups = _Lookups()


def _forget_dns_lookups() -> None:
    """A forked child (a Celery or gunicorn worker) has none of its parent's threads, and must not
    inherit a lock one of them may have held at the fork."""
    global _lookups
    _lookups = _Lookups()


os.register_at_fork(after_in_child=_forget_dns_lookups)


def dns_lookups_in_flight() -> int:
    """Lookups whose thread is still running, hung or not: for tests and diagnostics."""
    with _lookups.lock:
        return _lookups.running


def dns_lookups_hung(owner_id: int) -> int:
    """The owner's lookups still running after their caller stopped waiting."""
    with _lookups.lock:
        return _lookups.hung[owner_id]


def _resolve(host: str, port: int, *, owner_id: int) -> list[str]:
    timeout = settings.WEBHOOK_DNS_TIMEOUT_SECONDS
    lookups = _lookups  # the books this lookup's thread settles with, even across a fork
    with lookups.lock:
        if lookups.hung[owner_id] >= DNS_LOOKUPS_HUNG_PER_OWNER:
            raise WebhookHostUnknown(
                f"The webhook's host {DNS_TIMED_OUT}: {lookups.hung[owner_id]} earlier lookups for this account "
                f"are still waiting on the resolver ({host!r}).")
        if lookups.running >= DNS_LOOKUPS_MAX:
            raise WebhookHostUnknown(
                f"The webhook's host {DNS_TIMED_OUT}: the resolver has too many lookups pending ({host!r}).")
        lookups.running += 1
    answer: dict = {}
    state = {"finished": False, "abandoned": False}
    done = threading.Event()

    def lookup() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as error:  # noqa: BLE001 - handed to the caller (if still waiting)
            answer["error"] = error
        finally:
            _settle()
            done.set()

    def _settle() -> None:
        with lookups.lock:
            state["finished"] = True
            lookups.running -= 1
            if state["abandoned"]:
                lookups.hung[owner_id] -= 1
                if lookups.hung[owner_id] <= 0:
                    del lookups.hung[owner_id]

    try:
        threading.Thread(target=lookup, name=f"webhook-dns-{owner_id}", daemon=True).start()
    except RuntimeError:  # no thread to be had: the lookup never started
        _settle()
        raise WebhookHostUnknown(f"The webhook's host {DNS_TIMED_OUT}: no thread for the lookup ({host!r}).") from None
    if not done.wait(timeout):
        with lookups.lock:
            if not state["finished"]:  # (it may have finished just now: then its answer is used)
                state["abandoned"] = True
                lookups.hung[owner_id] += 1
        if state["abandoned"]:
            raise WebhookHostUnknown(f"The webhook's host {DNS_TIMED_OUT} ({timeout:g} s): {host!r}.")
        done.wait()  # set right after `finished`: no more than a moment
    error = answer.get("error")
    if isinstance(error, (socket.gaierror, UnicodeError)):
        raise WebhookHostUnknown(f"The webhook's host {host!r} cannot be found.") from None
    if error is not None:
        raise error
    return list(dict.fromkeys(info[4][0] for info in answer["infos"]))


def target_host_check(host: str, port: int, *, owner_id: int, allow_private: bool) -> None:
    """The guard on its own, for other senders that reach a host a trader names (notification
    channels): resolve with the owner's capped lookups, refuse what is not public."""
    _check_addresses(host, _resolve(host, port, owner_id=owner_id), allow_private=allow_private)


def _check_addresses(host: str, addresses: list[str], *, allow_private: bool | None = None) -> None:
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS if allow_private is None else allow_private:
        return
    for address in addresses:
        if not _public(address):
            raise UnsafeWebhookTarget(
                f"The webhook's host {host!r} is inside a private, loopback, link-local, multicast or reserved "
                "network, or is an IPv6 address that carries an IPv4 one; webhooks go to public addresses only."
            )


# IPv6 ranges whose addresses carry an IPv4 address, or are translated or relayed to one: refused
# whatever they carry (the IPv4 host behind them is reached through a path we do not check).
CARRIES_IPV4 = tuple(ipaddress.IPv6Network(network) for network in (
    "::/96",  # IPv4-compatible (deprecated)
    "::ffff:0:0/96",  # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",  # NAT64, well-known prefix
    "64:ff9b:1::/48",  # NAT64, local use
    "2001::/32",  # Teredo
    "2002::/16",  # 6to4
))


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in network for network in CARRIES_IPV4):
        return False
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


# --- The secret ---------------------------------------------------------------------------------


def webhook_secret_rotate(*, user: AbstractBaseUser) -> str:
    """A new signing secret for the user's webhook, replacing any old one at once. The plaintext is
    returned this once, to be shown to the trader; it is stored encrypted and never shown again."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with tenancy.acting_as(user.pk):
        account, _ = AccountSettings.objects.select_for_update().get_or_create(owner=user)
        had_one = account.has_webhook_secret
        account.set_webhook_secret(secret)
        account.save(update_fields=["webhook_secret_encrypted", "updated_at"])
        lifecycle.event_record(trade=None, owner_id=user.pk, kind=EventKind.SETTINGS_CHANGED, actor=Actor.USER,
                     actor_user=user, actor_label="settings",
                     payload={"changes": {}, "webhook_secret": "rotated" if had_one else "set"})
    return secret


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The v1 signature: hex HMAC-SHA256, keyed by the secret, of "<timestamp>.<body>"."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- Announcing ---------------------------------------------------------------------------------


def webhook_kind_of_transition(*, old_status: str, trade: PaperTrade) -> str | None:
    """Which webhook event (if any) a trade's move from `old_status` to its status is."""
    if trade.status == old_status:
        return None
    if trade.status == TradeStatus.OPEN and old_status == TradeStatus.PENDING:
        return WebhookEventKind.TRADE_OPENED
    if trade.status == TradeStatus.REJECTED:
        return WebhookEventKind.REJECTED
    if trade.status == TradeStatus.CLOSED:
        return _CLOSE_KINDS.get(trade.close_reason)
    return None


def trade_transition_announce(*, trade: PaperTrade, old_status: str, attention: str | None = None
                              ) -> WebhookEvent | None:
    """Called by the state machine's gate, in its transaction, after each transition (with the
    attention reason it set, if any: a position left without its bracket is told to the
    channels, which alone have an event for it)."""
    if attention and attention.startswith(UNPROTECTED_PREFIXES):
        channel_delivery.channel_messages_write(
            owner_id=trade.owner_id, kind=NotificationEvent.UNPROTECTED,
            data={"trade": {name: getattr(trade, name) for name in _TRADE_FIELDS}, "attention_reason": attention})
    kind = webhook_kind_of_transition(old_status=old_status, trade=trade)
    if kind is None:
        return None
    data = {"trade": {name: getattr(trade, name) for name in _TRADE_FIELDS}, "old_status": old_status}
    return webhook_announce(owner_id=trade.owner_id, kind=kind, data=data, trade=trade)


def trade_oversold_announce(*, trade: PaperTrade, short_qty: int) -> WebhookEvent | None:
    """The trade's contract is held short at the broker: the trader must buy it back (there, by hand)."""
    data = {"trade": {name: getattr(trade, name) for name in _TRADE_FIELDS}, "short_qty": short_qty,
            "attention_reason": trade.attention_reason}
    return webhook_announce(owner_id=trade.owner_id, kind=WebhookEventKind.OVERSOLD, data=data, trade=trade)


def broker_auth_failure_announce(*, owner_id: int, broker_mode: str, message: str) -> WebhookEvent | None:
    """The broker refused (or the account lacks) the token the monitor needs. Reported at most
    once an hour per account and mode: the cycle meets it every run until the trader acts. The
    quiet hour starts only once the event has committed, so a write that failed or rolled back
    leaves the next cycle free to tell the trader (the monitor's job lock keeps cycles apart).
    Broker errors never carry tokens or account numbers (brokers scrub them), so the message may
    be passed on."""
    quiet = f"webhook:broker-auth:{owner_id}:{broker_mode}"
    if cache.get(quiet):
        return None
    with tenancy.acting_as(owner_id):
        event = webhook_announce(owner_id=owner_id, kind=WebhookEventKind.BROKER_AUTH_FAILED,
                                 data={"broker_mode": broker_mode, "message": message[:500]})
        # (Whether or not there is a webhook: the notification channels were told, too.)
        transaction.on_commit(lambda: cache.set(quiet, 1, AUTH_FAILURE_QUIET_SECONDS), robust=True)
    return event


def webhook_announce(*, owner_id: int, kind: str, data: dict, trade: PaperTrade | None = None) -> WebhookEvent | None:
    """Write the event for the owner's webhook (if they have one), and a message for each of their
    notification channels that chose it, in the caller's transaction and tenant context, and queue
    their delivery for after the commit."""
    channel_delivery.channel_messages_write(owner_id=owner_id, kind=kind, data=data)
    account = AccountSettings.objects.filter(owner_id=owner_id).only("webhook_url", "webhook_secret_encrypted").first()
    if account is None or not account.sends_webhooks:
        return None
    event = WebhookEvent(owner_id=owner_id, trade=trade, kind=kind, next_attempt_at=timezone.now())
    event.payload = lifecycle.jsonable({"id": str(event.id), "type": kind, "created_at": timezone.now(), "data": data})
    event.save()
    # Robust: a queue that is down must not undo or fail the change that has just committed.
    event_id = str(event.id)
    transaction.on_commit(lambda: _enqueue(owner_id, event_id), robust=True)
    return event


def _enqueue(owner_id: int, event_id: str) -> None:
    from trades.tasks import deliver_webhook  # the task module imports the services

    deliver_webhook.delay(owner_id, event_id)


# --- Delivering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    event_id: str
    attempt: int
    status: str  # the event's status after this attempt
    status_code: int | None = None
    error: str = ""
    retry_in: float = 0.0  # seconds until the next attempt, while PENDING
    claimed: bool = True  # False: no attempt made (finished already, or not yet due: another task's slot)

    @property
    def retry(self) -> bool:
        return self.claimed and self.status == WebhookEventStatus.PENDING

    def __str__(self) -> str:
        if not self.claimed and self.status == WebhookEventStatus.PENDING:
            return f"webhook {self.event_id} attempt {self.attempt}: PENDING, next attempt not yet due"
        answer = self.status_code if self.status_code is not None else self.error or "-"
        return f"webhook {self.event_id} attempt {self.attempt}: {self.status} ({answer})"


@dataclass(frozen=True)
class _Answer:
    status_code: int | None = None
    error: str = ""
    permanent: bool = False  # no point trying again (the URL is refused)
    dns_timed_out: bool = False  # the host did not resolve in time: not an attempt at the receiver
    host: str = ""
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_deliver(*, owner_id: int, event_id: str) -> DeliveryOutcome:
    """One attempt at delivering a pending event, recorded; the event is DELIVERED on a 2xx and
    FAILED when the URL is refused or WEBHOOK_MAX_ATTEMPTS attempts have failed (tries whose host
    did not resolve in time count apart, up to DNS_TIMEOUTS_MAX: see `_used_up`). The request is
    made outside any transaction. A delivered or failed event is left alone (idempotent), and so
    is one whose next attempt is not yet due: exactly one attempt runs per scheduled slot, however
    many tasks (a late retry, the sweep's copy, a redelivered message) come for it."""
    with tenancy.acting_as(owner_id):
        claimed = _claim(event_id, timezone.now())
        event = WebhookEvent.objects.filter(pk=event_id).first()
        if not claimed or event is None:
            return DeliveryOutcome(event_id, event.attempts if event else 0, event.status if event else "MISSING",
                                   claimed=False)
        account = AccountSettings.objects.filter(owner_id=owner_id).first()
    body = json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()
    try:
        url, secret = (account.webhook_url, account.webhook_secret()) if account else ("", "")
    except VaultError:  # a key removed before rotation: an attempt that counts, never a crashed task
        url, secret = account.webhook_url, None
    if secret is None:
        answer = _Answer(error="The signing secret cannot be decrypted with ENCRYPTION_KEYS.")
    elif url and secret:
        answer = _post(url, body, _headers(event, secret, body), owner_id=owner_id)
    else:
        answer = _Answer(error="The webhook was removed from the settings.", permanent=True)
    with tenancy.acting_as(owner_id):
        final = answer.ok or answer.permanent or _used_up(event, dns_timed_out=answer.dns_timed_out)
    status = (WebhookEventStatus.DELIVERED if answer.ok else WebhookEventStatus.FAILED) if final \
        else WebhookEventStatus.PENDING
    retry_in = 0.0 if final else webhook_retry_delay(event.attempts)
    with tenancy.acting_as(owner_id):
        WebhookDelivery.objects.create(owner_id=owner_id, event=event, attempt=event.attempts,
                                       target_host=answer.host, status_code=answer.status_code,
                                       error=answer.error[:255], duration_ms=answer.duration_ms)
        now = timezone.now()
        # Only while still pending: a duplicate task (the sweep's) may have delivered it meanwhile,
        # and a failed attempt must not turn that DELIVERED into FAILED.
        still_pending = WebhookEvent.objects.filter(pk=event_id, status=WebhookEventStatus.PENDING)
        if final:
            still_pending.update(status=status, finished_at=now, next_attempt_at=None)
        else:
            still_pending.update(next_attempt_at=now + timedelta(seconds=retry_in))
    outcome = DeliveryOutcome(event_id, event.attempts, status, answer.status_code, answer.error, retry_in)
    (logger.info if answer.ok else logger.warning)("%s (%s to %s)", outcome, event.kind, answer.host or "-")
    return outcome


def _used_up(event: WebhookEvent, *, dns_timed_out: bool) -> bool:
    """Whether this failed try (the `event.attempts`-th, not yet recorded) is the last. Tries whose
    host did not resolve in time are not attempts at the receiver: they count against
    DNS_TIMEOUTS_MAX instead of WEBHOOK_MAX_ATTEMPTS, so a resolver that hangs for a while does not
    use up a trader's deliveries, and one that never answers still ends the event."""
    earlier_timeouts = WebhookDelivery.objects.filter(event=event, error__contains=DNS_TIMED_OUT).count()
    if dns_timed_out:
        return earlier_timeouts + 1 >= DNS_TIMEOUTS_MAX
    return event.attempts - earlier_timeouts >= settings.WEBHOOK_MAX_ATTEMPTS


def _claim(event_id: str, now: datetime) -> bool:
    """Take the event's current slot, if it is pending and due, in one conditional UPDATE: of two
    tasks claiming at once, PostgreSQL makes the second wait for the first's row lock and then
    re-checks the condition, which the first has made false by moving the slot a lease ahead."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return bool(WebhookEvent.objects.filter(due, pk=event_id, status=WebhookEventStatus.PENDING).update(
        attempts=F("attempts") + 1, next_attempt_at=now + ATTEMPT_LEASE))


def webhook_events_resend(*, now: datetime | None = None) -> int:
    """Queue again the pending events whose next attempt is long overdue: their task was lost (the
    queue was down when the change committed, or a worker died mid-attempt). Runs in the system
    context: a periodic ops job over every trader's outbox, never reachable from a request. A
    receiver may so get an event twice; it dedupes on the event id."""
    now = now or timezone.now()
    with tenancy.system_context():
        stalled = list(WebhookEvent.objects.select_for_update(skip_locked=True)
                       .filter(status=WebhookEventStatus.PENDING, next_attempt_at__lt=now - STALLED_AFTER)
                       .values_list("pk", "owner_id")[:RESEND_BATCH])
        WebhookEvent.objects.filter(pk__in=[pk for pk, _ in stalled]).update(next_attempt_at=now)
        for pk, owner_id in stalled:
            transaction.on_commit(lambda pk=str(pk), owner_id=owner_id: _enqueue(owner_id, pk), robust=True)
    return len(stalled)


def webhook_retry_delay(attempt: int) -> float:
    """Seconds before the attempt after `attempt`: exponential, capped, with full jitter so that
    many receivers failing together do not come back in step."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


def _headers(event: WebhookEvent, secret: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": "tradeoptions-webhooks/1",
        "X-Tradeoptions-Event": event.kind,
        EVENT_ID_HEADER: str(event.pk),
        "X-Tradeoptions-Delivery-Attempt": str(event.attempts),
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(secret, timestamp, body)}",
    }


def checked_post(url: str, body: bytes, headers: dict[str, str], *, owner_id: int, allow_private: bool) -> _Answer:
    """The webhooks' guarded POST for other senders to a host a trader's browser or settings name
    (Web Push endpoints): checked and pinned to the address checked, no redirects, bounded."""
    return _post(url, body, headers, owner_id=owner_id, allow_private=allow_private)


def _post(url: str, body: bytes, headers: dict[str, str], *, owner_id: int,
          allow_private: bool | None = None) -> _Answer:
    """POST to the address the URL's host resolves to now, once checked; no redirects, no retries
    here (the task retries), a bounded read of the answer."""
    started = time.monotonic()
    try:
        parts = _parts(url)
        host, port = parts.hostname, _port(parts)
        addresses = _resolve(host, port, owner_id=owner_id)
        _check_addresses(host, addresses, allow_private=allow_private)
    except UnsafeWebhookTarget as refused:
        permanent = not isinstance(refused, WebhookHostUnknown)
        return _Answer(error=str(refused), permanent=permanent, dns_timed_out=DNS_TIMED_OUT in str(refused),
                       host=urlsplit(url).hostname or "", duration_ms=_since(started))
    timeout = urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS)
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(addresses[0], port, timeout=timeout, retries=False, maxsize=1,
                                           server_hostname=host, assert_hostname=host, cert_reqs="CERT_REQUIRED",
                                           ca_certs=certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False, maxsize=1)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with pool:
            response = pool.urlopen("POST", path, body=body, headers={**headers, "Host": parts.netloc},
                                    redirect=False, retries=False, preload_content=False)
            response.read(64 * 1024)  # drain a little, never an unbounded answer
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:  # refused, reset, timed out, bad TLS
        return _Answer(error=f"{type(error).__name__}: the receiver could not be reached or did not answer",
                       host=host, duration_ms=_since(started))
    return _Answer(status_code=response.status, host=host, duration_ms=_since(started),
                   error="" if 200 <= response.status < 300 else f"HTTP {response.status}")


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
