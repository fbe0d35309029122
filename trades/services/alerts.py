"""Moments a trader's channels hear of that are not a trade's transition: the day's realized loss
reaching the daily loss limit, a risk limit stopping a trade, the broker going down and coming back.

Each is met again and again (every sale after the limit, every refused open, every 60-second
cycle of an outage), so each message carries a dedupe key and a channel is told once per
occurrence (`channel_messages_write`; the message row's unique index decides): the loss limit
once per New York trading day, each risk limit once per day, an outage once when it starts and
once when it ends (keyed by when it started). None is critical: the limits already refuse new
trades, and nothing the trader does at night brings the broker back, so quiet hours apply.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades.models import AccountSettings, ChannelMessage, NotificationChannel, NotificationEvent

from . import channel_delivery
from .errors import RiskLimitExceeded
from .risk import new_york_day_start, realized_today

LIMIT_WORDS = {"max_positions": "Max open positions", "daily_loss_limit": "Daily loss limit",
               "heat_limit_pct": "Heat limit", "buying_power": "Buying power"}


def _listening(owner_id: int, kind: str) -> bool:
    """Whether any of the owner's channels would be told: the figures are read only if so."""
    return NotificationChannel.objects.filter(owner_id=owner_id, enabled=True, events__contains=[kind]).exists()


def _day(at: datetime) -> str:
    return new_york_day_start(at).date().isoformat()


def daily_loss_limit_check(*, owner_id: int, at: datetime) -> list[ChannelMessage]:
    """Called in the transaction that records a sale (a part, or a trade's close) filled `at`:
    when that New York day's realized loss (net, as the limit counts it: `realized_today`) has
    reached the daily loss limit, the channels that chose it are told, once that day."""
    if not _listening(owner_id, NotificationEvent.DAILY_LOSS):
        return []
    account = AccountSettings.objects.filter(owner_id=owner_id).only("daily_loss_limit").first() \
        or AccountSettings(owner_id=owner_id)
    loss = max(-realized_today(owner_id, now=at), Decimal(0))
    if not (loss > 0 and loss >= account.daily_loss_limit):  # as RiskRoom.breach counts it
        return []
    day = _day(at)
    words = ("Daily loss limit hit",
             f"Realized loss on {day}: ${loss:,.2f}, net of commissions; your daily loss limit is "
             f"${account.daily_loss_limit:,.2f}. No new trades until the next trading day; open positions "
             "keep their stop-loss and take-profit.")
    return channel_delivery.channel_messages_write(owner_id=owner_id, kind=NotificationEvent.DAILY_LOSS, data={},
                                                   words=words, dedupe_key=f"daily-loss:{day}")


def risk_limit_refusal_tell(*, owner_id: int, refused: RiskLimitExceeded, at: datetime) -> list[ChannelMessage]:
    """A risk limit stopped a trade (nothing was written): told in a transaction of its own, once
    per limit and New York day, whoever asked (the page, the API, an automation)."""
    with tenancy.acting_as(owner_id):
        if not _listening(owner_id, NotificationEvent.RISK_LIMIT):
            return []
        words = (f"Risk limit reached: {LIMIT_WORDS.get(refused.limit, refused.limit)}",
                 f"A new trade was refused. {refused}")
        return channel_delivery.channel_messages_write(
            owner_id=owner_id, kind=NotificationEvent.RISK_LIMIT, data={}, words=words,
            dedupe_key=f"risk-limit:{refused.limit}:{_day(at)}")


def broker_outage_tell(*, owner_id: int, mode: str, since: str, detail: str = "", ended: bool = False
                       ) -> list[ChannelMessage]:
    """The broker could not be reached for the owner's `mode` account (from `since`, an ISO time),
    or (`ended`) it answers again. Told once each, in a transaction of its own (nothing else is
    written: the trouble lives in the cache)."""
    with tenancy.acting_as(owner_id):
        if not _listening(owner_id, NotificationEvent.BROKER_OUTAGE):
            return []
        began, broker = _wall_clock(since), _broker_words(mode)
        if ended:
            words = (f"Broker back up ({broker})", f"The broker answers again (it could not be reached from {began}). "
                     "Your trades are being brought up to date with its orders and fills.")
        else:
            words = (f"Broker down ({broker})", f"The broker cannot be reached since {began}: {detail[:300]}\n"
                     "Orders already at the broker stay there; opening, closing and changing trades may fail "
                     "until it is back. You will be told when it is.")
        return channel_delivery.channel_messages_write(
            owner_id=owner_id, kind=NotificationEvent.BROKER_OUTAGE, data={}, words=words,
            dedupe_key=f"broker-{'back' if ended else 'down'}:{mode}:{since}"[:100])


def _wall_clock(iso: str) -> str:
    """"2026-11-27 10:02 New York" from a stored ISO instant (as it is, if it is not one)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{moment.astimezone(ZoneInfo(settings.MARKET_TIME_ZONE)):%Y-%m-%d %H:%M} New York"


def _broker_words(mode: str) -> str:
    return BrokerMode(mode).label if mode in BrokerMode.values else mode
