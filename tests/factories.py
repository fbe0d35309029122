"""Factories for every model, in one place. Rows are written as their owner, so row-level
security's WITH CHECK applies to test data exactly as it does to the application."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from brokers import crypto
from brokers.models import PaperFill, PaperOrder
from monitoring.models import PriceSnapshot, SnapshotKind
from tradeoptions import tenancy
from trades import services
from trades.models import (
    CONTRACT_MULTIPLIER,
    Actor,
    ChannelKind,
    ChannelMessage,
    CloseReason,
    EventKind,
    ExitPartReason,
    NotificationChannel,
    NotificationEvent,
    OptionType,
    PaperTrade,
    PushSubscription,
    TradeEvent,
    TradeExitPart,
    TradeStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookEventKind,
)

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"trader{n}")

    @classmethod
    def _create(cls, model_class, username, **kwargs):
        user, _ = services.user_create(username=username, password=PASSWORD)
        if kwargs:
            for name, value in kwargs.items():
                setattr(user, name, value)
            user.save()
        return user


class OwnedFactory(factory.django.DjangoModelFactory):
    """Creates the row inside its owner's tenant context."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenancy.acting_as(kwargs["owner"].pk):
            return super()._create(model_class, *args, **kwargs)


def _next_friday(days_ahead: int = 30) -> date:
    day = timezone.now().date() + timedelta(days=days_ahead)
    return day + timedelta(days=(4 - day.weekday()) % 7)


class PaperTradeFactory(OwnedFactory):
    class Meta:
        model = PaperTrade

    owner = factory.SubFactory(UserFactory)
    ticker = "SPY"
    option_type = OptionType.CALL
    strike = Decimal("570")
    expiry = factory.LazyFunction(_next_friday)
    qty = 2
    entry_price = Decimal("4.20")
    entry_date = factory.LazyFunction(timezone.now)
    sl_price = Decimal("3.00")
    tp_price = Decimal("6.50")
    status = TradeStatus.OPEN
    strategy = "momentum"

    @classmethod
    def _create(cls, model_class, *args, legs: bool = True, **kwargs):
        """Every trade has legs: a single option gets its one, written as `trade_open` writes it
        (`legs=False`: none, as a trade stored before legs existed)."""
        trade = super()._create(model_class, *args, **kwargs)
        if legs:
            with tenancy.acting_as(trade.owner_id):
                services.single_leg_write(trade=trade)
        return trade


class TradeEventFactory(OwnedFactory):
    class Meta:
        model = TradeEvent

    trade = factory.SubFactory(PaperTradeFactory)
    owner = factory.SelfAttribute("trade.owner")
    kind = EventKind.STATE_CHANGE
    actor = Actor.SYSTEM
    actor_label = "test"
    old_status = TradeStatus.PENDING
    new_status = TradeStatus.OPEN


class TradeExitPartFactory(OwnedFactory):
    """One part of a trade's position sold (a scale-out of one contract, by default)."""

    class Meta:
        model = TradeExitPart

    trade = factory.SubFactory(PaperTradeFactory)
    owner = factory.SelfAttribute("trade.owner")
    quantity = 1
    price = Decimal("4.500000")
    filled_at = factory.LazyFunction(timezone.now)
    reason = ExitPartReason.SCALE_OUT
    commission = Decimal("0.65")
    pnl_gross = Decimal("20.00")
    pnl_net = factory.LazyAttribute(lambda part: part.pnl_gross - part.commission)


class PriceSnapshotFactory(OwnedFactory):
    class Meta:
        model = PriceSnapshot

    trade = factory.SubFactory(PaperTradeFactory)
    owner = factory.SelfAttribute("trade.owner")
    timestamp = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    kind = SnapshotKind.INTRADAY
    mark_price = Decimal("4.35")
    bid = Decimal("4.30")
    ask = Decimal("4.40")
    source = "simulated"


class ClosedTradeFactory(PaperTradeFactory):
    """A closed trade; P&L follows from the prices unless given (premiums only, no commissions)."""

    status = TradeStatus.CLOSED
    entry_date = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    close_date = factory.LazyAttribute(lambda trade: trade.entry_date + timedelta(hours=1))
    close_price = Decimal("5.00")
    close_reason = CloseReason.MANUAL_CLOSE
    realized_pnl = factory.LazyAttribute(
        lambda trade: (trade.close_price - trade.entry_price) * trade.qty * CONTRACT_MULTIPLIER)


class PaperOrderFactory(OwnedFactory):
    class Meta:
        model = PaperOrder

    owner = factory.SubFactory(UserFactory)
    order_class = "option"
    option_symbol = "SPY261218C00570000"
    underlying = "SPY"
    side = "buy_to_open"
    order_type = "market"
    quantity = 1
    status = "filled"
    created_at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    updated_at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class PaperFillFactory(OwnedFactory):
    """One local-paper execution with the quote it filled against."""

    class Meta:
        model = PaperFill

    order = factory.SubFactory(PaperOrderFactory, owner=factory.SelfAttribute("..owner"),
                               option_symbol=factory.SelfAttribute("..option_symbol"),
                               side=factory.SelfAttribute("..side"), quantity=factory.SelfAttribute("..quantity"))
    owner = factory.SubFactory(UserFactory)
    option_symbol = "SPY261218C00570000"
    side = "buy_to_open"
    quantity = 1
    price = Decimal("4.30")
    commission = Decimal("0.65")
    bid = Decimal("4.10")
    ask = Decimal("4.30")
    mid = Decimal("4.20")
    quote_time = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    filled_at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


class WebhookEventFactory(OwnedFactory):
    """A message for the owner's webhook (normally written by `trades.services.notifications`)."""

    class Meta:
        model = WebhookEvent

    owner = factory.SubFactory(UserFactory)
    kind = WebhookEventKind.TRADE_OPENED
    payload = factory.LazyAttribute(lambda event: {"type": event.kind, "data": {}})


class WebhookDeliveryFactory(OwnedFactory):
    class Meta:
        model = WebhookDelivery

    event = factory.SubFactory(WebhookEventFactory, owner=factory.SelfAttribute("..owner"))
    owner = factory.SubFactory(UserFactory)
    attempt = 1
    target_host = "hooks.example.com"
    status_code = 200
    duration_ms = 12


CHANNEL_URL = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/4242424242"


class NotificationChannelFactory(OwnedFactory):
    """A trader's Telegram channel; its URL (a made-up bot token) stored encrypted, as the service does."""

    class Meta:
        model = NotificationChannel

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Telegram {n}")
    url_encrypted = factory.LazyFunction(lambda: crypto.encrypt(CHANNEL_URL))
    url_hint = "tgram://…242"
    events = factory.LazyFunction(lambda: [NotificationEvent.TP_HIT, NotificationEvent.SL_HIT])


PUSH_ENDPOINT = "https://push.example.net/v1/made-up-capability-token"
PUSH_KEYS = {"p256dh": "BE0cpdXlPp-bJXIDPq3-XZOfgGglf-SBvMihgQpELzDF-rM5y-2x3vukFDctf7pD65W1VBL70HhlZIaBLAjB2vM",
             "auth": "AAECAwQFBgcICQoLDA0ODw"}


class PushSubscriptionFactory(OwnedFactory):
    """A browser's push subscription and its WEB_PUSH channel, stored encrypted as the service does."""

    class Meta:
        model = PushSubscription

    owner = factory.SubFactory(UserFactory)
    channel = factory.SubFactory(NotificationChannelFactory, owner=factory.SelfAttribute("..owner"),
                                 kind=ChannelKind.WEB_PUSH, url_hint="push://push.example.net",
                                 url_encrypted=factory.LazyFunction(lambda: crypto.encrypt("")))
    subscription_encrypted = factory.LazyFunction(lambda: crypto.encrypt(json.dumps(
        {"endpoint": PUSH_ENDPOINT, "keys": PUSH_KEYS})))
    endpoint_sha256 = factory.Sequence(lambda n: f"{n:064x}")
    endpoint_host = "push.example.net"


class ChannelMessageFactory(OwnedFactory):
    class Meta:
        model = ChannelMessage

    owner = factory.SubFactory(UserFactory)
    channel = factory.SubFactory(NotificationChannelFactory, owner=factory.SelfAttribute("..owner"))
    kind = NotificationEvent.TP_HIT
    title = "SPY 570C: Take-profit hit"
    body = "Take-profit hit"


def a_row_in_every_owned_table(owner, *, market, contract: str):
    """One row of `owner` in each owned table: a trade with its (one) leg, an event, a snapshot and an
    idempotency key, a webhook event with one delivery, a device's push subscription with its
    notification channel and one message, and a filled entry order on the local paper broker (which makes
    the paper account). The tenancy tests compare two owners over all of them."""
    from brokers.base import OrderRequest, order_tag
    from brokers.paper import LocalPaperBroker

    trade = PaperTradeFactory(owner=owner)
    TradeEventFactory(trade=trade)
    TradeExitPartFactory(trade=trade)
    PriceSnapshotFactory(trade=trade)
    claim = services.idempotency_claim(user=owner, key="scan-1", fingerprint="f" * 64)
    services.idempotency_store(claim=claim, status=201, body={}, trade=trade)
    WebhookDeliveryFactory(owner=owner)
    # A device's push subscription, its channel, and one message to it.
    ChannelMessageFactory(owner=owner, channel=PushSubscriptionFactory(owner=owner).channel)
    with tenancy.acting_as(owner.pk):
        LocalPaperBroker(owner.pk, starting_cash=Decimal("5000"), market=market).place_order(
            OrderRequest(option_symbol=contract, side="buy_to_open", quantity=1, order_type="market",
                         tag=order_tag(trade.pk, "entry")))
    return trade
