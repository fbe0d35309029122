"""Web Push to a trader's phone or browser (issue 21): fills and closes reach a device whose tab is
closed, through its browser's push service, signed with our VAPID key pair.

A browser that opts in ("Push to this device" on the settings page) sends its subscription: the
push service's endpoint (a capability URL) and the keys that encrypt what we send to it. It is kept
encrypted (`PushSubscription`, covered by `rotate_encryption_keys`) with a channel of kind WEB_PUSH,
so a push is one more channel: the same outbox row per event, the same events and quiet hours, the
same webhooks queue, retries with backoff and delivery log (`channel_delivery`). This module only
keeps subscriptions and makes one send.

A send is encrypted to the subscription's keys (RFC 8291, aes128gcm, pywebpush's encoder), signed
with VAPID (RFC 8292, py-vapid) and POSTed by the webhooks' pinned sender: the endpoint's host is
checked like a webhook's (public addresses only, unless NOTIFY_ALLOW_PRIVATE_TARGETS; https only
then too), when subscribing and on every send, and the request goes to the address just checked. A
404 or 410 from the push service means the browser dropped the subscription: it is deleted and its
channel switched off (its log says why), so nothing more is sent to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from py_vapid import Vapid, VapidException
from pywebpush import WebPusher, WebPushException

from brokers import crypto
from brokers.crypto import VaultError
from tradeoptions import tenancy
from trades.models import ChannelKind, ChannelMessage, NotificationChannel, NotificationEvent, PushSubscription

from . import notifications  # as a module: notifications imports channel_delivery, which imports this
from .channels import ChannelRefused

logger = logging.getLogger(__name__)

ENDPOINT_MAX_LENGTH = 1000
# What a new device is told about: fills and closes, and what needs the trader now. The trader
# changes it on the device's channel like any channel's.
PUSH_EVENTS = [NotificationEvent.TRADE_OPENED, NotificationEvent.TP_HIT, NotificationEvent.SL_HIT,
               NotificationEvent.MANUAL_CLOSE, NotificationEvent.POLICY_EXIT, NotificationEvent.EXPIRED,
               NotificationEvent.UNPROTECTED, NotificationEvent.OVERSOLD]
SUBSCRIPTION_GONE = (404, 410)
VAPID_LIFETIME = timedelta(hours=12)  # a VAPID token may live at most 24 h


class PushNotSetUp(ChannelRefused):
    """This server has no usable VAPID key pair: push is off."""

    def __init__(self, message: str):
        super().__init__(message, field="non_field_errors")


# --- The server's key pair ----------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=4)
def _vapid(private_key: str, public_key: str) -> tuple[Vapid, str]:
    signer = Vapid.from_string(private_key)
    derived = _b64url(signer.public_key.public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint))
    if public_key and public_key.rstrip("=") != derived:
        raise PushNotSetUp("VAPID_PUBLIC_KEY is not the public half of VAPID_PRIVATE_KEY.")
    return signer, derived


def vapid_signer() -> tuple[Vapid, str]:
    """The VAPID signer and its public key (base64url, the browsers' applicationServerKey);
    PushNotSetUp if the settings have no usable pair. Never says anything of the private key."""
    if not settings.VAPID_PRIVATE_KEY:
        raise PushNotSetUp("Push is not set up on this server (no VAPID key pair).")
    try:
        return _vapid(settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY)
    except PushNotSetUp:
        raise
    except (VapidException, ValueError, TypeError, binascii.Error):
        raise PushNotSetUp("VAPID_PRIVATE_KEY is not a P-256 key (base64url, raw or DER).") from None


def push_public_key() -> str:
    """The key the page subscribes with; '' when push is not set up here (said once per process
    and reason in the log, not on every page)."""
    try:
        return vapid_signer()[1]
    except PushNotSetUp as not_set_up:
        _say_push_is_off(str(not_set_up))
        return ""


@lru_cache(maxsize=4)
def _say_push_is_off(reason: str) -> None:
    logger.warning("Web Push is off: %s", reason)


# --- Subscriptions ------------------------------------------------------------------------------


def endpoint_sha256(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def _endpoint_check(endpoint: str, *, owner_id: int) -> str:
    """The endpoint's host, if it is a push service we would send to. Resolves the host (DNS):
    call it outside a transaction."""
    endpoint = endpoint.strip()
    allow_private = settings.NOTIFY_ALLOW_PRIVATE_TARGETS
    if not endpoint or len(endpoint) > ENDPOINT_MAX_LENGTH or any(
            char.isspace() or not char.isprintable() for char in endpoint):
        raise ChannelRefused("The browser sent no usable push endpoint.", field="endpoint")
    try:
        parts = urlsplit(endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ChannelRefused("The browser's push endpoint is not a valid URL.", field="endpoint") from None
    if parts.scheme not in (("https", "http") if allow_private else ("https",)) or not parts.hostname \
            or parts.username or parts.password:
        raise ChannelRefused("A push endpoint is an https:// URL of the browser's push service.", field="endpoint")
    try:
        notifications.target_host_check(parts.hostname, port, owner_id=owner_id, allow_private=allow_private)
    except notifications.WebhookHostUnknown:
        raise ChannelRefused(f"The push service {parts.hostname!r} cannot be found (or did not answer in time).",
                             field="endpoint") from None
    except notifications.UnsafeWebhookTarget:
        raise ChannelRefused(f"The push service {parts.hostname!r} is inside a private, loopback or reserved "
                             "network; pushes go to public servers only.", field="endpoint") from None
    return parts.hostname


def _keys_check(p256dh: str, auth: str) -> None:
    """The browser's keys: its P-256 public key (uncompressed point) and a 16-byte secret."""
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(p256dh))
    except (ValueError, TypeError, binascii.Error):
        raise ChannelRefused("The browser's push key (p256dh) is not a P-256 public key.", field="keys") from None
    try:
        secret = _b64url_decode(auth)
    except (ValueError, TypeError, binascii.Error):
        secret = b""
    if len(secret) != 16:
        raise ChannelRefused("The browser's push secret (auth) is not 16 bytes.", field="keys")


def push_subscribe(*, user: AbstractBaseUser, endpoint: str, p256dh: str, auth: str,
                   device: str = "") -> tuple[PushSubscription, bool]:
    """Keep the browser's subscription and make its WEB_PUSH channel (events: PUSH_EVENTS); the
    same endpoint again (the page opting in twice) takes its new keys and switches its channel
    back on. Returns the subscription and whether it is new."""
    vapid_signer()  # refused before anything is kept, if push is off here
    host = _endpoint_check(endpoint, owner_id=user.pk)
    endpoint = endpoint.strip()
    _keys_check(p256dh, auth)
    info = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
    try:
        return _subscription_keep(user, info, host=host, device=device)
    except IntegrityError:  # the same endpoint sent twice at once: the other request kept it first
        return _subscription_keep(user, info, host=host, device=device)


def _subscription_keep(user: AbstractBaseUser, info: dict, *, host: str, device: str) -> tuple[PushSubscription, bool]:
    digest = endpoint_sha256(info["endpoint"])
    with tenancy.acting_as(user.pk), transaction.atomic():
        known = (PushSubscription.objects.select_for_update().select_related("channel")
                 .filter(owner=user, endpoint_sha256=digest).first())
        if known is not None:
            known.set_subscription(info)
            known.save(update_fields=["subscription_encrypted"])
            NotificationChannel.objects.filter(pk=known.channel_id).update(enabled=True, updated_at=timezone.now())
            known.channel.refresh_from_db()
            return known, False
        channel = NotificationChannel(owner=user, kind=ChannelKind.WEB_PUSH,
                                      name=(device.strip() or "This device")[:60],
                                      url_encrypted=crypto.encrypt(""), url_hint=f"push://{host}"[:40],
                                      events=sorted(PUSH_EVENTS))
        channel.save()
        subscription = PushSubscription(owner=user, channel=channel, endpoint_sha256=digest,
                                        endpoint_host=host[:255])
        subscription.set_subscription(info)
        subscription.save()
    return subscription, True


def push_unsubscribe(*, user: AbstractBaseUser, subscription_id: int) -> None:
    """Stop pushing to the device: its subscription, channel and delivery log go."""
    with tenancy.acting_as(user.pk), transaction.atomic():
        subscription = PushSubscription.objects.filter(owner=user, pk=subscription_id).first()
        if subscription is None:
            raise PushSubscription.DoesNotExist("No such push subscription.")
        NotificationChannel.objects.filter(owner=user, pk=subscription.channel_id).delete()


# --- One send -----------------------------------------------------------------------------------


def push_payload(message: ChannelMessage) -> bytes:
    """What the service worker shows: the message's frozen words, and where a tap leads."""
    return json.dumps({"title": message.title, "body": message.body, "kind": message.kind,
                       "tag": str(message.pk), "critical": message.critical, "url": reverse("home")},
                      separators=(",", ":")).encode()


def push_send(message: ChannelMessage, channel: NotificationChannel, *, owner_id: int) -> tuple[str, bool]:
    """One push of `message` to the channel's device: ('', False) when the push service took it;
    else the error (never the endpoint) and whether trying again is pointless."""
    with tenancy.acting_as(owner_id):
        subscription = PushSubscription.objects.filter(channel_id=channel.pk).first()
    if subscription is None:
        return "This device's push subscription has ended; switch push on again on the device.", True
    try:
        signer, public_key = vapid_signer()
    except PushNotSetUp as not_set_up:
        return str(not_set_up), False
    try:
        info = subscription.subscription()
    except VaultError:
        return "The push subscription cannot be decrypted with ENCRYPTION_KEYS.", False
    endpoint = info["endpoint"]
    try:
        body = WebPusher(info).encode(push_payload(message), "aes128gcm")["body"]
    except (WebPushException, ValueError) as refused:
        return f"The subscription's keys cannot encrypt a message ({type(refused).__name__}).", True
    parts = urlsplit(endpoint)
    claims = {"sub": settings.VAPID_SUBJECT, "aud": f"{parts.scheme}://{parts.netloc}",
              "exp": int((timezone.now() + VAPID_LIFETIME).timestamp())}
    headers = {**signer.sign(claims), "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
               "TTL": str(settings.PUSH_TTL_SECONDS), "Urgency": "high" if message.critical else "normal",
               "Topic": str(message.pk).replace("-", "")[:32]}
    answer = notifications.checked_post(endpoint, body, headers, owner_id=owner_id,
                          allow_private=settings.NOTIFY_ALLOW_PRIVATE_TARGETS)
    if answer.ok:
        return "", False
    if answer.status_code in SUBSCRIPTION_GONE:
        _subscription_ended(subscription, owner_id=owner_id)
        return (f"The push service says this device's subscription has ended (HTTP {answer.status_code}); "
                "it was removed. Switch push on again on the device."), True
    if answer.status_code is None and answer.permanent:  # the guard refused the host it resolves to now
        return (f"The push service {parts.hostname!r} is inside a private, loopback or reserved network now; "
                "pushes go to public servers only."), True
    if answer.status_code is None:
        return f"The push service could not be reached: {answer.error}"[:255], False
    # 408 and 429 and 5xx pass; any other 4xx (a refused signature, a message too large) will not.
    permanent = 400 <= answer.status_code < 500 and answer.status_code not in (408, 429)
    return f"The push service did not take the message (HTTP {answer.status_code}).", permanent


def _subscription_ended(subscription: PushSubscription, *, owner_id: int) -> None:
    """The browser dropped it: no more sends. The channel stays, switched off, for its log."""
    with tenancy.acting_as(owner_id), transaction.atomic():
        PushSubscription.objects.filter(pk=subscription.pk).delete()
        NotificationChannel.objects.filter(pk=subscription.channel_id).update(enabled=False,
                                                                              updated_at=timezone.now())
    logger.info("push subscription %s ended by its push service (%s); channel %s switched off",
                subscription.pk, subscription.endpoint_host, subscription.channel_id)
