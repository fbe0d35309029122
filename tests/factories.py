"""Factories for every model, in one place. Rows are written as their owner, so row-level
security's WITH CHECK applies to test data exactly as it does to the application."""

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
    ChannelMessage,
    CloseReason,
    EventKind,
    ExitPartReason,
    NotificationChannel,
    NotificationEvent,
    OptionType,
    PaperTrade,
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
    idempotency key, a webhook event with one delivery, a notification channel with one message,
    and a filled entry order on the local paper broker (which makes the paper account). The tenancy
    tests compare two owners over all of them."""
    from brokers.base import OrderRequest, order_tag
    from brokers.paper import LocalPaperBroker

    trade = PaperTradeFactory(owner=owner)
    TradeEventFactory(trade=trade)
    TradeExitPartFactory(trade=trade)
    PriceSnapshotFactory(trade=trade)
    claim = services.idempotency_claim(user=owner, key="scan-1", fingerprint="f" * 64)
    services.idempotency_store(claim=claim, status=201, body={}, trade=trade)
    WebhookDeliveryFactory(owner=owner)
    ChannelMessageFactory(owner=owner)  # and the channel it was for
    with tenancy.acting_as(owner.pk):
        LocalPaperBroker(owner.pk, starting_cash=Decimal("5000"), market=market).place_order(
            OrderRequest(option_symbol=contract, side="buy_to_open", quantity=1, order_type="market",
                         tag=order_tag(trade.pk, "entry")))
    return trade


# --- spread-expiry (issue 19): a multi-leg trade held to expiry -----------------------------------


def expiry_spread_trade(owner, legs, *, qty: int = 1, strategy_type: str = "vertical", broker_mode: str = "",
                        entry_date: datetime | None = None, **fields):
    """An OPEN multi-leg trade of `owner` whose legs are `legs`: (side "LONG"/"SHORT", OCC symbol,
    ratio, entry price per share as text), written as the opening services write one: the row's
    contract is leg 0's, `ticker` the underlying (SPX for SPXW), the entry the held net, and the
    direction from its sign."""
    from brokers.models import BrokerMode
    from brokers.occ import parse_symbol, underlying_of_root
    from trades.models import NetDirection, TradeLeg

    contracts = [parse_symbol(symbol) for _, symbol, _, _ in legs]
    net = sum(((1 if side == "LONG" else -1) * ratio * Decimal(price) for side, _, ratio, price in legs), Decimal(0))
    direction = NetDirection.CREDIT if net < 0 else NetDirection.DEBIT
    first, entry = contracts[0], abs(net)
    half, twice = (entry / 2).quantize(Decimal("0.01")), entry * 2  # exits in the held direction
    stop, target = (half, twice) if direction == NetDirection.DEBIT else (twice, half)
    trade = PaperTradeFactory(
        owner=owner, legs=False, ticker=underlying_of_root(first.root), option_type=first.option_type,
        strike=first.strike, expiry=first.expiry, qty=qty, entry_price=entry,
        entry_date=entry_date or timezone.now(), sl_price=stop, tp_price=target, strategy_type=strategy_type,
        net_direction=direction, broker_mode=broker_mode or BrokerMode.LOCAL_PAPER, **fields)
    with tenancy.acting_as(owner.pk):
        for position, ((side, symbol, ratio, price), contract) in enumerate(zip(legs, contracts, strict=True)):
            TradeLeg.objects.create(owner_id=owner.pk, trade=trade, position=position, option_symbol=symbol,
                                    option_type=contract.option_type, strike=contract.strike, expiry=contract.expiry,
                                    side=side, ratio=ratio, entry_price=Decimal(price))
    return trade
