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


def spread_open_trade(*, owner, legs, qty: int = 1, status: str = TradeStatus.OPEN, strategy_type: str | None = None,
                      sl_price: Decimal | None = None, tp_price: Decimal | None = None, **fields):
    """A multi-leg trade as `spread_open` leaves it once its entry filled (spread-open slice): `legs`
    are (OCC symbol, "LONG"/"SHORT", ratio, entry fill per share) in order; the row's contract is
    leg 0's, `entry_price` the held net of the fills (|Σ side × ratio × fill|), `net_direction` its
    sign, `strategy_type` the template the legs make (trades.services.strategy_of) unless given.
    Exits default to half / one and a half times the entry for a debit, twice / half for a credit.
    Rows only: no broker holds the legs (open through `services.spread_open` with a hand-driven
    market when a test needs the paper broker's positions)."""
    from brokers.occ import parse_symbol
    from trades import net_price
    from trades.models import TradeLeg
    from trades.spreads import SpreadLeg, SpreadPosition

    fills = [(symbol, side, ratio, Decimal(str(fill))) for symbol, side, ratio, fill in legs]
    net = sum(((1 if side == "LONG" else -1) * ratio * fill for _, side, ratio, fill in fills), Decimal(0))
    direction = net_price.direction_of(net)
    held = net_price.held_price(direction, net)
    position = SpreadPosition(tuple(SpreadLeg.from_symbol(symbol, side, ratio=ratio)
                                    for symbol, side, ratio, _ in fills), qty)
    first = parse_symbol(fills[0][0])
    debit = direction == net_price.DEBIT
    trade = PaperTradeFactory(
        owner=owner, legs=False, ticker=fields.pop("ticker", first.root), option_type=first.option_type,
        strike=first.strike, expiry=first.expiry, qty=qty, filled_qty=qty, status=status,
        strategy_type=strategy_type or services.strategy_of(position) or "vertical", net_direction=direction,
        entry_price=fields.pop("entry_price", held), planned_entry_price=fields.pop("planned_entry_price", held),
        sl_price=sl_price if sl_price is not None else (held / 2 if debit else held * 2),
        tp_price=tp_price if tp_price is not None else (held * Decimal("1.5") if debit else held / 2), **fields)
    with tenancy.acting_as(owner.pk):
        for position_number, (symbol, side, ratio, fill) in enumerate(fills):
            contract = parse_symbol(symbol)
            TradeLeg.objects.create(owner=owner, trade=trade, position=position_number, option_symbol=symbol,
                                    option_type=contract.option_type, strike=contract.strike, expiry=contract.expiry,
                                    side=side, ratio=ratio, entry_price=fill)
    return trade


def marks_spread_trade(owner, legs, *, strategy_type, qty=1, **fields) -> PaperTrade:
    """A filled multi-leg trade for the marks tests: `spread_open_trade` with exits at half and
    twice the entry, on the right sides for its direction."""
    net = sum((Decimal(entry) * ratio * (1 if side == "LONG" else -1) for _, side, ratio, entry in legs), Decimal(0))
    entry = abs(net)
    stop, target = (entry * 2, entry / 2) if net < 0 else (entry / 2, entry * 2)
    return spread_open_trade(owner=owner, legs=legs, qty=qty, strategy_type=strategy_type,
                             sl_price=fields.pop("sl_price", stop), tp_price=fields.pop("tp_price", target), **fields)


def exits_spread_trade(owner, *, legs, strategy_type: str, units: int = 1, sl_price, tp_price,
                       broker_mode: str = "LOCAL_PAPER", status: str = TradeStatus.OPEN, **fields):
    """An OPEN multi-leg trade for the exits tests: `spread_open_trade` with its held exits given
    (strings or Decimals) and its broker."""
    return spread_open_trade(owner=owner, legs=legs, qty=units, status=status, strategy_type=strategy_type,
                             sl_price=Decimal(sl_price), tp_price=Decimal(tp_price), broker_mode=broker_mode,
                             **fields)


def exits_mark(trade, quotes: dict, *, at=None):
    """Write what the marks slice writes each cycle (spread-marks owns the real writer): each leg's
    bid, ask, mid mark and when, and the trade's held mid (`current_price`) from them. `quotes`:
    symbol → (bid, ask) as strings."""
    from trades.models import TradeLeg
    from trades.net_price import held_price

    at = at or timezone.now()
    net = Decimal(0)
    with tenancy.acting_as(trade.owner_id):
        for leg in TradeLeg.objects.filter(trade=trade).order_by("position"):
            bid, ask = (Decimal(value) for value in quotes[leg.option_symbol])
            mark = (bid + ask) / 2
            TradeLeg.objects.filter(pk=leg.pk).update(bid=bid, ask=ask, mark=mark, marked_at=at)
            net += leg.sign * leg.ratio * mark
        PaperTrade.objects.filter(pk=trade.pk).update(current_price=held_price(trade.net_direction, net),
                                                      last_updated=at)
        return PaperTrade.objects.get(pk=trade.pk)


def expiry_spread_trade(owner, legs, *, qty: int = 1, strategy_type: str = "vertical", broker_mode: str = "",
                        entry_date: datetime | None = None, **fields):
    """An OPEN multi-leg trade held to expiry: `legs` are (side "LONG"/"SHORT", OCC symbol, ratio,
    entry price per share as text); `ticker` is the underlying (SPX for SPXW); exits at half and
    twice the entry on the sides of its direction (`spread_open_trade` writes it)."""
    from brokers.models import BrokerMode
    from brokers.occ import parse_symbol, underlying_of_root

    net = sum(((1 if side == "LONG" else -1) * ratio * Decimal(price) for side, _, ratio, price in legs), Decimal(0))
    entry = abs(net)
    half, twice = (entry / 2).quantize(Decimal("0.01")), entry * 2
    stop, target = (twice, half) if net < 0 else (half, twice)
    return spread_open_trade(
        owner=owner, legs=[(symbol, side, ratio, price) for side, symbol, ratio, price in legs], qty=qty,
        strategy_type=strategy_type, ticker=underlying_of_root(parse_symbol(legs[0][1]).root), sl_price=stop,
        tp_price=target, broker_mode=broker_mode or BrokerMode.LOCAL_PAPER, entry_date=entry_date or timezone.now(),
        **fields)


def closed_spread_trade(*, owner, position, entries, exits, close_reason=CloseReason.TP_HIT,
                        exit_reason="CLOSED", close_date=None, sl_price=None, tp_price=None,
                        entry_commission=Decimal(0), exit_commission=Decimal(0), **fields):
    """A CLOSED multi-leg trade of `position` (a trades.spreads template) with its legs, as the
    lifecycle contract of docs/spreads.md leaves one: `entries` / `exits` are each leg's fills per
    share, in leg order; the row holds held prices (a credit trade is short its price, every price
    positive) and realized P&L = Σ side × ratio × (exit − entry) × units × 100, which equals
    net_price.pnl on the held prices. Exits default to a target and stop on the right sides."""
    from trades import net_price
    from trades.models import TradeLeg

    legs = position.legs
    entries, exits = [Decimal(str(p)) for p in entries], [Decimal(str(p)) for p in exits]
    net_entry = sum(leg.sign * leg.ratio * price for leg, price in zip(legs, entries, strict=True))
    net_exit = sum(leg.sign * leg.ratio * price for leg, price in zip(legs, exits, strict=True))
    direction = net_price.direction_of(net_entry)
    entry, close = net_price.held_price(direction, net_entry), net_price.held_price(direction, net_exit)
    realized = sum(leg.sign * leg.ratio * (out - into) * position.quantity * CONTRACT_MULTIPLIER
                   for leg, into, out in zip(legs, entries, exits, strict=True))
    assert realized == net_price.pnl(direction, entry=entry, price=close, units=position.quantity)
    low, high = entry / 2, entry * 2
    first = legs[0]
    entry_date = fields.pop("entry_date", datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    trade = ClosedTradeFactory(
        owner=owner, legs=False, ticker=first.contract.root, option_type=first.option_type, strike=first.strike,
        expiry=first.expiry, qty=position.quantity, filled_qty=position.quantity, strategy_type=position.strategy,
        net_direction=direction, entry_price=entry, close_price=close, realized_pnl=realized,
        sl_price=sl_price if sl_price is not None else (low if direction == net_price.DEBIT else high),
        tp_price=tp_price if tp_price is not None else (high if direction == net_price.DEBIT else low),
        close_reason=close_reason, entry_date=entry_date, close_date=close_date or entry_date + timedelta(hours=1),
        entry_commission=entry_commission, exit_commission=exit_commission, **fields)
    with tenancy.acting_as(owner.pk):
        TradeLeg.objects.bulk_create([
            TradeLeg(owner=owner, trade=trade, position=index, option_symbol=leg.symbol, option_type=leg.option_type,
                     strike=leg.strike, expiry=leg.expiry, side=leg.side, ratio=leg.ratio, entry_price=into,
                     exit_price=out, exit_reason=exit_reason)
            for index, (leg, into, out) in enumerate(zip(legs, entries, exits, strict=True))])
    return trade


def analytics_four_trades(owner, *, expiry=date(2026, 12, 18), start=datetime(2026, 12, 1, 15, 0, tzinfo=UTC)):
    """Four CLOSED trades side by side, each an hour apart from `start`, premiums only (no
    commissions): a credit iron condor (+$160 on a $680 max loss), a debit call vertical (−$60 on
    $180), a long straddle (+$70 on $750) and a single call (+$160 on $840)."""
    from trades import spreads

    hour = timedelta(hours=1)
    condor = closed_spread_trade(
        owner=owner, position=spreads.iron_condor(root="SPY", expiry=expiry, long_put=490, short_put=495,
                                                  short_call=515, long_call=520, quantity=2),
        entries=["0.80", "1.60", "1.50", "0.70"], exits=["0.30", "0.70", "0.60", "0.20"], entry_date=start,
        strategy="income")
    vertical = closed_spread_trade(
        owner=owner, position=spreads.vertical(root="SPY", expiry=expiry, option_type="CALL", lower=500, upper=505),
        entries=["3.00", "1.20"], exits=["2.10", "0.90"], close_reason=CloseReason.SL_HIT,
        entry_date=start + hour, strategy="momentum")
    straddle = closed_spread_trade(
        owner=owner, position=spreads.straddle(root="SPY", expiry=expiry, strike=500),
        entries=["4.00", "3.50"], exits=["6.20", "2.00"], entry_date=start + 2 * hour, strategy="momentum")
    single = ClosedTradeFactory(owner=owner, expiry=expiry, entry_date=start + 3 * hour, filled_qty=2)
    return {"condor": condor, "vertical": vertical, "straddle": straddle, "single": single}


def account_with(user, **changes):
    """The user's account settings with `changes` saved (limits, balance, switches) for a scenario."""
    account = services.account_settings_for(user=user)
    for name, value in changes.items():
        setattr(account, name, value)
    with tenancy.acting_as(user.pk):
        account.save()
    return account
