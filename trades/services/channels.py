"""A trader's notification channels: Telegram, Discord, Slack, email, ntfy, … through Apprise.

A channel is an Apprise URL (`tgram://bot-token/chat-id`, `mailto://user:pass@example.com`,
`ntfy://topic`): it carries the service's credentials, so it is stored encrypted with the broker
tokens' vault (covered by `rotate_encryption_keys`) and never shown back: answers, pages, the
admin, logs and delivery errors carry only its hint, scheme and last three characters
("tgram://…4f2").

SSRF: a service at a fixed public host (Telegram, Discord, Slack, Pushover, ntfy.sh, …) goes
there whatever the URL says. A service that may be self-hosted names its host in the URL (json,
form, xml, ntfy with a host, gotify, matrix, a mailto with an SMTP host, …): that host goes
through the webhooks' guard (`notifications.target_host_check`), when saved and again before each
send. Apprise's plugins say which kind they are: one with a plain `protocol` can point anywhere.
Loopback and private hosts are allowed only with NOTIFY_ALLOW_PRIVATE_TARGETS (the test settings).
Known gap: Apprise resolves the name again when it sends, so a name that changes its answer
between our check and that send is not pinned as the webhooks' request is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import apprise
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from tradeoptions import tenancy
from trades.models import ChannelKind, NotificationChannel, NotificationEvent, PushSubscription, QuietMode

from . import notifications

URL_MAX_LENGTH = 1000
CHOOSABLE_EVENTS = [event for event in NotificationEvent if event != NotificationEvent.TEST]


class ChannelRefused(ValueError):
    """A channel the trader asked for cannot be kept: `field` says which input, the message why."""

    def __init__(self, message: str, *, field: str = "url"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ChannelInput:
    """What a trader sets on a channel; None: leave as is (on a change)."""

    name: str | None = None
    url: str | None = None
    enabled: bool | None = None
    events: list[str] | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_mode: str | None = None
    quiet_hours_given: bool = False  # quiet_start/quiet_end were sent (both empty: no quiet hours)


def url_hint(url: str) -> str:
    """What may be shown of a channel URL: its scheme and last three characters."""
    url = url.strip().rstrip("/")
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme[:12]}://…{url[-3:]}"


def channel_url_check(url: str, *, owner_id: int) -> str:
    """The URL, stripped, if Apprise knows it and its host (if it names one) is one we send to;
    otherwise ChannelRefused in the trader's words. Resolves the host (DNS): call it outside a
    transaction."""
    url = url.strip()
    if not url:
        raise ChannelRefused("Give the channel's Apprise URL, such as tgram://bot-token/chat-id.")
    if len(url) > URL_MAX_LENGTH or any(char.isspace() or not char.isprintable() for char in url):
        raise ChannelRefused("The channel URL is too long or contains spaces or control characters.")
    if not apprise.Apprise().add(url):
        raise ChannelRefused("This is not a notification URL Apprise knows; check it against the service's "
                             "page in the Apprise documentation.")
    target = network_target(url)
    if target is not None:
        _target_check(*target, owner_id=owner_id)
    return url


def network_target(url: str) -> tuple[str, int] | None:
    """The host and port a self-hostable service's URL sends to; None for a fixed public service."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    smtp_host = getattr(plugin, "smtp_host", None)
    if smtp_host:  # email: the SMTP server, named or found from the address's domain
        return smtp_host, int(getattr(plugin, "port", None) or 25)
    if getattr(plugin, "mode", None) == "cloud" or not getattr(type(plugin), "protocol", None):
        return None  # the service's own public host (ntfy.sh, api.telegram.org, discord.com, …)
    host = (getattr(plugin, "host", None) or urlsplit(url).hostname or "").strip("[]")  # "[::1]" -> "::1"
    port = getattr(plugin, "port", None) or (443 if getattr(plugin, "secure", False) else 80)
    return host, int(port)


def _target_check(host: str, port: int, *, owner_id: int) -> None:
    try:
        notifications.target_host_check(host, port, owner_id=owner_id,
                                        allow_private=settings.NOTIFY_ALLOW_PRIVATE_TARGETS)
    except notifications.WebhookHostUnknown:
        raise ChannelRefused(f"The channel's server {host!r} cannot be found (or did not answer in time).") from None
    except notifications.UnsafeWebhookTarget:
        raise ChannelRefused(f"The channel's server {host!r} is inside a private, loopback or reserved network; "
                             "notifications go to public servers only.") from None


def network_target_recheck(url: str, *, owner_id: int) -> str:
    """Before a send: the refusal, if the URL's host is no longer one we send to; else ''."""
    target = network_target(url)
    if target is None:
        return ""
    try:
        _target_check(*target, owner_id=owner_id)
    except ChannelRefused as refused:
        return str(refused)
    return ""


def _checked_rest(data: ChannelInput, channel: NotificationChannel | None) -> None:
    if data.name is not None and not data.name.strip():
        raise ChannelRefused("Give the channel a name.", field="name")
    if data.events is not None:
        unknown = set(data.events) - set(CHOOSABLE_EVENTS)
        if unknown:
            raise ChannelRefused("Pick events from the list.", field="events")
    if data.quiet_mode is not None and data.quiet_mode not in QuietMode.values:
        raise ChannelRefused("Pick hold or drop for messages in quiet hours.", field="quiet_mode")
    if data.quiet_hours_given:
        if (data.quiet_start is None) != (data.quiet_end is None):
            raise ChannelRefused("Give both the start and the end of quiet hours, or neither.", field="quiet_end")
        if data.quiet_start is not None and data.quiet_start == data.quiet_end:
            raise ChannelRefused("Quiet hours must end at another time than they start.", field="quiet_end")


def channel_create(*, user: AbstractBaseUser, data: ChannelInput) -> NotificationChannel:
    """A new channel. The URL's host is checked before the transaction (DNS may be slow)."""
    _checked_rest(data, None)
    url = channel_url_check(data.url or "", owner_id=user.pk)
    with tenancy.acting_as(user.pk), transaction.atomic():
        channel = NotificationChannel(owner=user, name=(data.name or "").strip()[:60], url_hint=url_hint(url),
                                      enabled=True if data.enabled is None else data.enabled,
                                      events=sorted(set(data.events or [])),
                                      quiet_start=data.quiet_start, quiet_end=data.quiet_end,
                                      quiet_mode=data.quiet_mode or QuietMode.HOLD)
        channel.set_url(url)
        channel.save()
    return channel


def channel_update(*, user: AbstractBaseUser, channel_id: int, data: ChannelInput) -> NotificationChannel:
    """Change what was sent; a new URL replaces the old (checked first), an absent one stays."""
    url = channel_url_check(data.url, owner_id=user.pk) if data.url else None
    with tenancy.acting_as(user.pk), transaction.atomic():
        channel = NotificationChannel.objects.select_for_update().filter(owner=user, pk=channel_id).first()
        if channel is None:
            raise NotificationChannel.DoesNotExist("No such notification channel.")
        _checked_rest(data, channel)
        if channel.kind == ChannelKind.WEB_PUSH:
            _push_channel_check(channel, data, url)
        if url is not None:
            channel.set_url(url)
            channel.url_hint = url_hint(url)
        if data.name is not None:
            channel.name = data.name.strip()[:60]
        if data.enabled is not None:
            channel.enabled = data.enabled
        if data.events is not None:
            channel.events = sorted(set(data.events))
        if data.quiet_hours_given:
            channel.quiet_start, channel.quiet_end = data.quiet_start, data.quiet_end
        if data.quiet_mode is not None:
            channel.quiet_mode = data.quiet_mode
        channel.save()
    return channel


def _push_channel_check(channel: NotificationChannel, data: ChannelInput, url: str | None) -> None:
    """A device's channel takes events, quiet hours and a name; its device is set on the device."""
    if url is not None:
        raise ChannelRefused("A device's push channel has no URL: switch push on or off on the device itself.")
    if data.enabled and not PushSubscription.objects.filter(channel=channel).exists():
        raise ChannelRefused("This device's push subscription has ended; switch push on again on the device.",
                             field="enabled")


def channel_delete(*, user: AbstractBaseUser, channel_id: int) -> None:
    """Remove the channel and its delivery log; messages not yet sent go with it."""
    with tenancy.acting_as(user.pk), transaction.atomic():
        deleted, _ = NotificationChannel.objects.filter(owner=user, pk=channel_id).delete()
    if not deleted:
        raise NotificationChannel.DoesNotExist("No such notification channel.")


_TOKEN = re.compile(r"[A-Za-z0-9_\-]{4,}")


def scrubbed(text: str, url: str) -> str:
    """`text` if it carries no piece of `url` that could be a credential; else ''. Apprise's own
    error lines name hosts and status codes, but a service may echo a token."""
    pieces = {piece for piece in _TOKEN.findall(url.split("://", 1)[-1])}
    return "" if any(piece in text for piece in pieces) else text


def quiet_until(channel: NotificationChannel, now: datetime) -> datetime | None:
    """When the channel's quiet hours (New York wall clock) end, if `now` is inside them."""
    if channel.quiet_start is None or channel.quiet_end is None:
        return None
    zone = ZoneInfo(settings.MARKET_TIME_ZONE)
    local = now.astimezone(zone)
    start, end, clock = channel.quiet_start, channel.quiet_end, local.time()
    if start < end:
        inside, ends_on = start <= clock < end, local.date()
    else:  # across midnight: 22:00-07:00
        inside = clock >= start or clock < end
        ends_on = local.date() if clock < end else (local + timedelta(days=1)).date()
    if not inside:
        return None
    return datetime.combine(ends_on, end, tzinfo=zone)
