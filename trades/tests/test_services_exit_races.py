"""A bracket leg that fills between any two steps of a close, an adjust or an expiry settlement.

Each path runs against the production Tradier client over real HTTP to the fake Tradier (which
either accepts a sell of contracts its working exits already cover, and then lets the account go
short, or refuses it: `refuse_overcommitted_sells`), and against the local paper broker. The
broker the services use is wrapped so that, right before its n-th call (or after the last), the
market moves through the take-profit or the stop-loss and the broker fills whatever exit is
working. Every step index × broker behaviour × leg is run; after each, and after the monitor has
caught up, these must hold:

- the account never holds a negative quantity of the contract;
- at most one exit (a bracket leg or the close's sell) filled;
- the trade's final status, reason and price are those of what filled;
- the position is never without a working exit for more than one broker call in a row.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from brokers import factory
from brokers.base import OrderOutcomeUnknown
from brokers.models import BrokerMode, PaperOrder
from brokers.paper import LocalPaperBroker
from brokers.ratelimit import GROUPS, RateLimiter
from brokers.tradier import TradierClient
from monitoring import services as monitoring_services
from monitoring import sync
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.services import snapshot_positions
from tradeoptions import tenancy
from trades import services
from trades.models import Actor, CloseReason, PaperTrade, TradeStatus
from trades.services import orders

from .conftest import CONTRACT, EXPIRY

TOKEN = "sbxTOKEN-races-5e6f7a8b9c"
ACCOUNT = "VA00007373"
QTY = 2
# Through the take-profit (6.50, or 7.00 once adjusted) or the stop (3.00, or 3.50 once adjusted).
THROUGH = {"tp": ("7.50", "7.70"), "sl": ("2.50", "2.70")}
BROKERS = ("tradier-accepts", "tradier-refuses", "paper")
# The broker calls of each path when nothing fills: the bracket is always cancelled (and its
# legs' final state read from that answer) before anything else is sent.
SEQUENCES = {
    "close": ["cancel_order", "place_order"],
    "adjust": ["cancel_order", "place_oco_order"],
    "expiry": ["cancel_order"],
}
CASES = [(path, broker, leg, at) for path, calls in SEQUENCES.items() for broker in BROKERS
         for leg in THROUGH for at in range(len(calls) + 1)]


class RacingBroker:
    """The real broker, with one market move (`fill`) right before call number `at` (or, when
    `at` is past the last call, at `after_last()`), and the account looked at after every call."""

    CALLS = frozenset({"cancel_order", "get_order", "get_orders", "place_order", "place_oco_order",
                       "place_otoco_order", "find_order_by_tag"})

    def __init__(self, inner, *, at: int | None, fill, look) -> None:
        self.inner, self.at, self.fill, self.look = inner, at, fill, look
        self.supports_otoco = inner.supports_otoco
        self.calls: list[str] = []
        self.fired = False
        self.seen: list[tuple[int, bool]] = []  # (net position, held without a working exit) after each call

    def _maybe_fill(self) -> None:
        if self.at is not None and not self.fired and len(self.calls) == self.at:
            self.fired = True
            self.fill()

    def after_last(self) -> None:
        self._maybe_fill()
        self.seen.append(self.look())

    def __getattr__(self, name):
        target = getattr(self.inner, name)
        if name not in self.CALLS:
            return target

        def call(*args, **kwargs):
            self._maybe_fill()
            self.calls.append(name)
            try:
                return target(*args, **kwargs)
            finally:
                self.seen.append(self.look())

        return call


@dataclass
class Venue:
    """One broker behaviour: how to move its market, and what it holds and filled."""

    name: str
    user: object
    market: object
    fake: object = None

    def move(self, leg: str) -> None:
        bid, ask = THROUGH[leg]
        self.market.set_quote(CONTRACT, bid, ask)
        if self.fake is not None:
            self.fake.set_quote(CONTRACT, bid, ask)  # the fake fills working orders at once
        else:
            with tenancy.acting_as(self.user.pk):
                LocalPaperBroker(self.user.pk, starting_cash=Decimal("10000"), market=self.market).match()

    def look(self) -> tuple[int, bool]:
        """(net position, held without any working sell-to-close at the broker)."""
        if self.fake is not None:
            with self.fake._lock:
                position = self.fake.accounts[ACCOUNT].positions.get(CONTRACT)
                held = position.quantity if position else 0
                working = any(o.side == "sell_to_close" and o.option_symbol == CONTRACT and o.active
                              and o.status in ("pending", "open", "partially_filled") and not o.legs
                              for o in self.fake.orders.values())
            return held, held > 0 and not working
        with tenancy.acting_as(self.user.pk):
            held = LocalPaperBroker(self.user.pk, starting_cash=Decimal("10000"), market=self.market).ledger.held(
                CONTRACT)
            working = PaperOrder.objects.filter(option_symbol=CONTRACT, side="sell_to_close", active=True,
                                                status__in=["pending", "open", "partially_filled"]).exists()
        return held, held > 0 and not working

    def filled_exits(self, trade_id: int) -> list[tuple[str, Decimal, int]]:
        """(order type, average fill price, contracts) of every sell of the trade that executed."""
        if self.fake is not None:
            tags = {f"to-{trade_id}-sl", f"to-{trade_id}-close"}
            return [(o.type, o.avg_fill_price, o.exec_quantity) for o in self.fake.orders.values()
                    if not o.legs and o.side == "sell_to_close" and o.exec_quantity
                    and (o.parent or o).tag in tags]
        with tenancy.acting_as(self.user.pk):
            rows = PaperOrder.objects.filter(tag__startswith=f"to-{trade_id}-", side="sell_to_close",
                                             filled_quantity__gt=0)
            return [(row.order_type, row.avg_fill_price, row.filled_quantity) for row in rows]

    def catch_up(self) -> None:
        """One monitor cycle: the paper broker matches, the sync turns fills into trade states."""
        if self.fake is None:
            monitoring_services.match_paper_orders(market=self.market)
        sync.sync_orders(market=self.market, at=self.market.now())


@pytest.fixture
def venue(request, trader, market, monkeypatch):
    name = request.param
    if name == "paper":
        return Venue(name, trader, market)
    namespace, redis_client = request.getfixturevalue("namespace"), request.getfixturevalue("redis_client")

    def client(base_url, token, account_id):  # production's client, with a budget no test reaches
        limiter = RateLimiter(token, limits=dict.fromkeys(GROUPS, 6000), namespace=namespace,
                              redis_client=redis_client)
        return TradierClient(base_url=base_url, token=token, account_id=account_id, limiter=limiter)

    monkeypatch.setattr(factory, "_tradier_client", client)
    fake = request.getfixturevalue("fake_tradier")
    fake.pending_views = 0
    fake.refuse_overcommitted_sells = name == "tradier-refuses"
    fake.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake.set_quote(CONTRACT, "4.10", "4.30")
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    return Venue(name, trader, market, fake)


@pytest.fixture
def racing(monkeypatch):
    """Once `arm`ed, the trade services' broker is a RacingBroker around the real one."""

    class Arm:
        broker: RacingBroker | None = None

        def __call__(self, *, at, fill, look):
            self.settings = (at, fill, look)
            return self

    arm = Arm()
    real = orders.broker_for

    def broker_for(account, *, market=None):
        inner = real(account, market=market)
        if getattr(arm, "settings", None) is None:
            return inner
        at, fill, look = arm.settings
        arm.settings = None  # one racing broker per armed call
        arm.broker = RacingBroker(inner, at=at, fill=fill, look=look)
        return arm.broker

    monkeypatch.setattr(orders, "broker_for", broker_for)
    return arm


def _open(user, market) -> PaperTrade:
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY,
                                   qty=QTY, sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
    trade = services.trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM,
                                actor_label="scanner").trade
    assert trade.status == TradeStatus.OPEN and trade.bracket_order_id
    return trade


def _trade(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _run(path: str, venue: Venue, trade: PaperTrade, racing, *, at, fill) -> RacingBroker:
    """Run one path with the racing broker; returns it with what it saw."""
    armed = racing(at=at, fill=fill, look=venue.look)
    if path == "close":
        services.trade_close(user=venue.user, trade_id=trade.pk, version=trade.version, market=venue.market)
    elif path == "adjust":
        services.brackets_adjust(user=venue.user, trade_id=trade.pk, version=trade.version, new_sl=Decimal("3.50"),
                                 new_tp=Decimal("7.00"), market=venue.market)
    else:  # the settlement's own decision, past the cutoff, with an in-the-money value of 1.00
        from trades.services.orders import broker_of

        with tenancy.acting_as(venue.user.pk):
            account = services.account_settings_for(user=venue.user)
            broker = broker_of(account, mode=trade.broker_mode, market=venue.market)
            services.trade_expiry_settle(trade=trade, broker=broker, value=Decimal("1.00"),
                                         cutoff=venue.market.now(), payload={}, actor=Actor.SYSTEM,
                                         actor_label="expiry_settlement")
    armed.broker.after_last()
    return armed.broker


EXPECTED_REASON = {"stop": CloseReason.SL_HIT, "limit": CloseReason.TP_HIT, "market": CloseReason.MANUAL_CLOSE}


@pytest.mark.parametrize(("path", "venue", "leg", "at"), CASES, indirect=["venue"],
                         ids=[f"{p}-{b}-{leg}-before-call-{at}" for p, b, leg, at in CASES])
def test_a_leg_filling_between_any_two_steps_never_shorts_doubles_or_strands(path, venue, leg, at, racing):
    trade = _open(venue.user, venue.market)
    broker = _run(path, venue, trade, racing, at=at, fill=lambda: venue.move(leg))
    assert broker.fired, "the market move never happened"
    venue.catch_up()
    final = _trade(trade.pk)
    seen = [*broker.seen, venue.look()]

    assert min(position for position, _ in seen) >= 0, f"the account went short: {seen}"
    naked = [stranded for _, stranded in seen]
    if path != "expiry":  # past the cutoff the contract no longer trades: no exit is needed
        assert not any(a and b for a, b in zip(naked, naked[1:], strict=False)), (
            f"held without an exit for more than one broker call: {list(zip(broker.calls, naked, strict=False))}")
    exits = venue.filled_exits(trade.pk)
    assert len(exits) <= 1, f"two exits filled: {exits}"
    if exits:
        ((kind, price, quantity),) = exits
        assert quantity == QTY and seen[-1][0] == 0
        assert (final.status, final.close_reason, final.close_price) == (
            TradeStatus.CLOSED, EXPECTED_REASON[kind], price)
    elif path == "expiry":
        assert (final.status, final.close_reason, final.close_price) == (
            TradeStatus.CLOSED, CloseReason.EXPIRED_ITM, Decimal("1.00"))
    else:  # an adjust that moved the market after its new bracket: nothing sold, still protected
        assert path == "adjust" and final.status == TradeStatus.OPEN and not seen[-1][1]


@pytest.mark.parametrize("venue", BROKERS, indirect=True)
@pytest.mark.parametrize("path", list(SEQUENCES))
def test_with_nothing_filling_each_path_cancels_the_bracket_before_it_sends_anything(path, venue, racing):
    trade = _open(venue.user, venue.market)
    broker = _run(path, venue, trade, racing, at=None, fill=None)
    assert broker.calls == SEQUENCES[path]
    if venue.fake is not None:  # on the wire too: the DELETE is answered before the next POST
        wire = [(r.method, r.form.get("class", "")) for r in venue.fake.requests
                if r.method in ("DELETE", "POST") and "/orders" in r.path][2:]  # after the entry and bracket
        assert wire == {"close": [("DELETE", ""), ("POST", "option")], "adjust": [("DELETE", ""), ("POST", "oco")],
                        "expiry": [("DELETE", "")]}[path]
    final = _trade(trade.pk)
    expected = {"close": (TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE), "adjust": (TradeStatus.OPEN, None),
                "expiry": (TradeStatus.CLOSED, CloseReason.EXPIRED_ITM)}[path]
    assert (final.status, final.close_reason) == expected


def test_the_fake_refuses_a_sell_its_working_exits_already_cover_only_when_told(fake_tradier):
    from brokers.base import OrderRejected, OrderRequest, OrderSide, OrderType
    from brokers.tradier import TradierClient

    fake_tradier.pending_views = 0
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.add_position(ACCOUNT, CONTRACT, QTY, Decimal("860"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    client = TradierClient(base_url=fake_tradier.url(), token=TOKEN, account_id=ACCOUNT)
    common = {"option_symbol": CONTRACT, "side": OrderSide.SELL_TO_CLOSE, "quantity": QTY, "duration": "gtc"}
    client.place_oco_order(OrderRequest(**common, order_type=OrderType.STOP, stop_price=Decimal("3"), tag="t-sl"),
                           OrderRequest(**common, order_type=OrderType.LIMIT, limit_price=Decimal("6.5"), tag="t-tp"))
    sell = OrderRequest(**{**common, "duration": "day"}, order_type=OrderType.MARKET, tag="t-close")

    fake_tradier.refuse_overcommitted_sells = True
    with pytest.raises(OrderRejected, match="committed to working orders"):
        client.place_order(sell)
    fake_tradier.refuse_overcommitted_sells = False  # the sandbox's way: both may fill, the account goes short
    assert client.place_order(sell).status.value == "filled"
    fake_tradier.set_quote(CONTRACT, "7.00", "7.20")
    assert fake_tradier.accounts[ACCOUNT].positions[CONTRACT].quantity == -QTY


class ProcessDied(BaseException):
    """Nothing after this point of the close runs (and its open transaction rolls back)."""


def _killed():
    raise ProcessDied


def test_a_close_the_process_left_after_the_cancel_is_finished_by_the_monitor(trader, market, racing):
    """Killed between the cancel and the sell: the trade is CLOSING with no sell and no bracket.
    The monitor leaves it alone while a close may still be in flight, then finishes it, though
    every snapshot cycle meanwhile marks the trade (the wall clock walks with the market's)."""
    venue = Venue("paper", trader, market)
    provider = SimulatedProvider(seed="close-resume", clock=market.now)
    with time_machine.travel(market.now(), tick=False) as clock:
        trade = _open(trader, market)
        with pytest.raises(ProcessDied):
            _run("close", venue, trade, racing, at=1, fill=_killed)
        stuck = _trade(trade.pk)
        assert stuck.status == TradeStatus.CLOSING and not stuck.close_order_id

        def cycle():  # 40 s later: a snapshot (the trade's mark), then the order cycle
            clock.shift(timedelta(seconds=40))
            market.advance(seconds=40)
            assert snapshot_positions(provider=provider, at=market.now()).written == 1
            venue.catch_up()
            return _trade(trade.pk)

        assert cycle().status == TradeStatus.CLOSING  # 40 s: it may be a close in flight
        marked = cycle()  # 80 s
        assert marked.status == TradeStatus.CLOSING and marked.current_price is not None
        closed = cycle()  # 120 s: no close request takes that long
    ((kind, price, quantity),) = venue.filled_exits(trade.pk)
    assert (kind, quantity, venue.look()) == ("market", QTY, (0, False))
    assert (closed.status, closed.close_reason, closed.close_price) == (
        TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE, price)


@pytest.mark.parametrize("venue", ["tradier-accepts", "tradier-refuses"], indirect=True)
def test_a_close_after_a_partial_take_profit_sells_only_what_is_left(venue, racing):
    """One of two contracts sold at the take-profit (the book had one), then the close: it sells
    the one still held, never two."""
    trade = _open(venue.user, venue.market)
    venue.fake.set_quote(CONTRACT, "6.60", "6.80", size=1)
    assert venue.look() == (1, False)  # the TP leg works on, for the other contract
    venue.fake.set_quote(CONTRACT, "6.00", "6.20")
    result = services.trade_close(user=venue.user, trade_id=trade.pk, version=trade.version, market=venue.market)
    (sell,) = venue.fake.orders_tagged(f"to-{trade.pk}-close")
    assert (sell.quantity, sell.exec_quantity, sell.avg_fill_price) == (1, 1, Decimal("6.00"))
    assert venue.look() == (0, False) and result.trade.status == TradeStatus.CLOSED


def test_a_cancel_the_broker_has_not_finished_sells_nothing_until_the_monitor_sees_it_final(
        trader, market, monkeypatch):
    """The cancel's answer (and the second look) still show a leg working: a sell now could be a
    second exit. The close waits, CLOSING and marked; the monitor sells once the legs are final."""
    trade = _open(trader, market)
    real_cancel = LocalPaperBroker.cancel_order
    monkeypatch.setattr(LocalPaperBroker, "cancel_order", lambda self, order_id: self.get_order(order_id))
    result = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market)
    assert result.trade.status == TradeStatus.CLOSING
    assert "confirm the bracket's cancel" in result.trade.attention_reason
    venue = Venue("paper", trader, market)
    assert venue.filled_exits(trade.pk) == [] and venue.look() == (QTY, False)  # the bracket still protects it

    monkeypatch.setattr(LocalPaperBroker, "cancel_order", real_cancel)  # the broker catches up
    venue.catch_up()  # at once: the close request has ended, nothing else is at work on the trade
    closed = _trade(trade.pk)
    ((kind, price, _),) = venue.filled_exits(trade.pk)
    assert (closed.status, closed.close_reason, closed.close_price, kind) == (
        TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE, price, "market")


def test_an_expiry_whose_bracket_cannot_be_cancelled_waits_instead_of_guessing(trader, market, scripted_broker):
    from brokers.base import BrokerUnavailable
    from trades.services.orders import broker_of

    trade = _open(trader, market)
    broker = scripted_broker(trader)
    broker.fail("cancel_order", BrokerUnavailable("down"))
    with tenancy.acting_as(trader.pk):
        scripted = broker_of(services.account_settings_for(user=trader), mode=trade.broker_mode, market=market)
        assert scripted is broker
        reason = services.trade_expiry_settle(trade=trade, broker=broker, value=Decimal("1.00"), cutoff=market.now(),
                                              payload={}, actor=Actor.SYSTEM)
    assert reason is None and _trade(trade.pk).status == TradeStatus.OPEN


def test_a_second_close_whose_sell_answer_was_lost_is_not_undone_by_the_first_close_s_ended_sell(
        trader, market, monkeypatch):
    """Close #1's sell ends unfilled (the trade is OPEN again); close #2's sell fills but its
    answer is lost. The monitor must judge close #2 by its own sell, not reopen the trade because
    close #1's sell, long over, is still remembered."""
    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    market.open = False  # close #1's market sell waits for the open
    first = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market).trade
    assert first.status == TradeStatus.CLOSING and first.close_order_id
    with tenancy.acting_as(trader.pk):
        LocalPaperBroker(trader.pk, starting_cash=Decimal("10000"), market=market).cancel_order(first.close_order_id)
    market.open = True
    venue.catch_up()
    reopened = _trade(trade.pk)
    assert reopened.status == TradeStatus.OPEN

    place = LocalPaperBroker.place_order

    def answer_lost(self, request):
        place(self, request)
        raise OrderOutcomeUnknown("the answer never came", tag=request.tag)

    monkeypatch.setattr(LocalPaperBroker, "place_order", answer_lost)
    second = services.trade_close(user=trader, trade_id=trade.pk, version=reopened.version, market=market).trade
    monkeypatch.setattr(LocalPaperBroker, "place_order", place)
    assert second.status == TradeStatus.CLOSING
    venue.catch_up()
    closed = _trade(trade.pk)
    ((kind, price, quantity),) = venue.filled_exits(trade.pk)
    assert (kind, quantity, venue.look()) == ("market", QTY, (0, False))
    assert (closed.status, closed.close_reason, closed.close_price) == (
        TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE, price)


@pytest.mark.parametrize("venue", ["tradier-accepts", "tradier-refuses"], indirect=True)
def test_a_partial_take_profit_is_remembered_through_an_adjust_and_blended_into_the_close(venue):
    """The take-profit sells one of two contracts; the trader then moves the bracket (a new OCO
    for the one left), then closes: one contract is sold, and the P&L counts each contract at
    the price it actually went for."""
    trade = _open(venue.user, venue.market)
    venue.fake.set_quote(CONTRACT, "6.60", "6.80", size=1)
    venue.fake.set_quote(CONTRACT, "6.00", "6.20")
    ((tp_leg,),) = [[leg for leg in head.legs if leg.type == "limit"]
                    for head in venue.fake.orders_tagged(f"to-{trade.pk}-sl")]
    assert (tp_leg.exec_quantity, venue.look()) == (1, (1, False))

    adjusted = services.brackets_adjust(user=venue.user, trade_id=trade.pk, version=trade.version,
                                        new_sl=Decimal("3.50"), new_tp=Decimal("7.00"), market=venue.market)
    assert adjusted.problem is None and adjusted.trade.held_qty == 1
    assert {leg.quantity for leg in venue.fake.order(adjusted.trade.bracket_order_id).legs} == {1}

    result = services.trade_close(user=venue.user, trade_id=trade.pk, version=adjusted.trade.version,
                                  market=venue.market)
    (sell,) = venue.fake.orders_tagged(f"to-{trade.pk}-close")
    assert (sell.quantity, sell.exec_quantity, venue.look()) == (1, 1, (0, False))
    closed = result.trade
    entry = closed.entry_price
    expected = (tp_leg.avg_fill_price - entry) * 100 + (sell.avg_fill_price - entry) * 100
    assert (closed.status, closed.realized_pnl) == (TradeStatus.CLOSED, expected.quantize(Decimal("0.01")))
    assert closed.close_price == ((tp_leg.avg_fill_price + sell.avg_fill_price) / 2).quantize(Decimal("0.0001"))


def _settle_expiry(user, market, trade, value: str) -> str | None:
    """The expiry settlement's own decision, past the cutoff, at intrinsic `value`."""
    from trades.services.orders import broker_of

    with tenancy.acting_as(user.pk):
        broker = broker_of(services.account_settings_for(user=user), mode=trade.broker_mode, market=market)
        return services.trade_expiry_settle(trade=_trade(trade.pk), broker=broker, value=Decimal(value),
                                            cutoff=market.now(), payload={}, actor=Actor.SYSTEM,
                                            actor_label="expiry_settlement")


def test_an_expiry_waits_while_the_broker_still_shows_an_exit_leg_working(trader, market, monkeypatch):
    """The cancel's answer, and a second look, still show the bracket working: a leg may yet sell,
    so no expiry is booked over it; the next cycle asks again."""
    trade = _open(trader, market)
    real_cancel = LocalPaperBroker.cancel_order
    monkeypatch.setattr(LocalPaperBroker, "cancel_order", lambda self, order_id: self.get_order(order_id))
    assert _settle_expiry(trader, market, trade, "1.00") is None
    assert _trade(trade.pk).status == TradeStatus.OPEN

    monkeypatch.setattr(LocalPaperBroker, "cancel_order", real_cancel)  # the broker catches up
    assert _settle_expiry(trader, market, trade, "1.00") == CloseReason.EXPIRED_ITM


@pytest.mark.parametrize("venue", ["tradier-accepts", "tradier-refuses"], indirect=True)
def test_an_expiry_after_a_partial_take_profit_settles_only_what_is_left(venue):
    """One of two contracts went at the take-profit: only the other expires (at intrinsic 1.00),
    and the P&L counts the sold one at its fill, not at the expiry value."""
    trade = _open(venue.user, venue.market)
    venue.fake.set_quote(CONTRACT, "6.60", "6.80", size=1)
    venue.fake.set_quote(CONTRACT, "6.00", "6.20")
    ((tp_leg,),) = [[leg for leg in head.legs if leg.type == "limit"]
                    for head in venue.fake.orders_tagged(f"to-{trade.pk}-sl")]
    assert tp_leg.exec_quantity == 1

    assert _settle_expiry(venue.user, venue.market, trade, "1.00") == CloseReason.EXPIRED_ITM
    settled = _trade(trade.pk)
    entry = settled.entry_price
    expected = (tp_leg.avg_fill_price - entry) * 100 + (Decimal("1.00") - entry) * 100
    assert (settled.status, settled.exit_filled_qty, settled.realized_pnl) == (
        TradeStatus.CLOSED, 1, expected.quantize(Decimal("0.01")))


def test_legs_that_sold_the_whole_position_in_parts_close_the_trade_at_their_blended_fills(
        trader, market, monkeypatch):
    """The cancel answers that each leg had sold one of the two contracts (the stop at 2.90, the
    take-profit at 6.60): nothing is left to sell, and the close is booked from those fills, not
    left CLOSING for a person to work out."""
    import dataclasses

    from brokers.base import Fill, OrderType

    trade = _open(trader, market)
    real_cancel = LocalPaperBroker.cancel_order
    prices = {OrderType.STOP: Decimal("2.90"), OrderType.LIMIT: Decimal("6.60")}

    def cancelled_after_partial_fills(self, order_id):  # what a broker answers after both partial fills
        order = real_cancel(self, order_id)
        return dataclasses.replace(order, legs=tuple(
            dataclasses.replace(leg, filled_quantity=1, fill=Fill(1, prices[leg.order_type], market.now()))
            for leg in order.legs))

    monkeypatch.setattr(LocalPaperBroker, "cancel_order", cancelled_after_partial_fills)
    closed = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market).trade
    assert Venue("paper", trader, market).filled_exits(trade.pk) == []  # no sell went
    entry = closed.entry_price
    assert entry < Decimal("4.75")  # the blend is above the entry: it reads as a take-profit
    assert (closed.status, closed.close_reason, closed.close_price, closed.realized_pnl) == (
        TradeStatus.CLOSED, CloseReason.TP_HIT, Decimal("4.75"),
        ((Decimal("2.90") - entry) * 100 + (Decimal("6.60") - entry) * 100).quantize(Decimal("0.01")))


def test_the_monitor_sends_nothing_for_a_close_whose_broker_phase_holds_the_lease(trader, market, racing,
                                                                                  monkeypatch):
    """A close slower than the in-flight window is still at the broker (it holds the trade's close
    lease): the monitor's resume must not sell beside it. Once the lease is free, it finishes."""
    from trades.services import closing

    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    with pytest.raises(ProcessDied):
        _run("close", venue, trade, racing, at=1, fill=_killed)
    monkeypatch.setattr(sync, "CLOSE_IN_FLIGHT", timedelta(0))  # the close has outlived the window
    with closing._close_lease(trade.pk) as ours:  # ... and is still at the broker
        assert ours
        venue.catch_up()
        assert venue.filled_exits(trade.pk) == [] and _trade(trade.pk).status == TradeStatus.CLOSING
        with tenancy.acting_as(trader.pk):
            assert PaperOrder.objects.filter(tag=f"to-{trade.pk}-close").count() == 0
    venue.catch_up()
    ((kind, _, quantity),) = venue.filled_exits(trade.pk)
    assert (kind, quantity, _trade(trade.pk).status) == ("market", QTY, TradeStatus.CLOSED)


class _CancelAnswerLost:
    """The local paper broker, whose next cancel goes through but answers an outage, and whose
    read right after fails too: the service cannot tell how the bracket stands."""

    def __init__(self, monkeypatch):
        from brokers.base import BrokerUnavailable

        cancel, read = LocalPaperBroker.cancel_order, LocalPaperBroker.get_order
        state = {"armed": True, "cancelling": False}

        def lost_cancel(broker, order_id):
            state["cancelling"] = True  # the broker's own read, inside its cancel, works
            try:
                answer = cancel(broker, order_id)
            finally:
                state["cancelling"] = False
            if state["armed"]:
                raise BrokerUnavailable("the connection dropped before the answer")
            return answer

        def lost_read(broker, order_id):
            if state["armed"] and not state["cancelling"]:
                state["armed"] = False
                raise BrokerUnavailable("still down")
            return read(broker, order_id)

        monkeypatch.setattr(LocalPaperBroker, "cancel_order", lost_cancel)
        monkeypatch.setattr(LocalPaperBroker, "get_order", lost_read)


def test_a_close_whose_cancel_the_broker_never_answered_stays_closing_and_the_monitor_finishes_it(
        trader, market, monkeypatch):
    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    _CancelAnswerLost(monkeypatch)
    result = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market)
    assert result.problem is not None and result.problem.code == "broker_unavailable"
    assert result.trade.status == TradeStatus.CLOSING and venue.filled_exits(trade.pk) == []

    venue.catch_up()  # the request has ended: the monitor retries the (idempotent) cancel, then sells
    closed = _trade(trade.pk)
    ((kind, price, quantity),) = venue.filled_exits(trade.pk)
    assert (kind, quantity, venue.look()) == ("market", QTY, (0, False))
    assert (closed.status, closed.close_reason, closed.close_price) == (
        TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE, price)


def test_an_adjust_whose_cancel_went_through_unanswered_leaves_the_bare_position_to_the_monitor(
        trader, market, monkeypatch):
    """The old bracket is gone, the adjust could not know it and placed nothing: the monitor sees
    the recorded bracket ended unfilled and protects the position again, not only flags it."""
    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    _CancelAnswerLost(monkeypatch)
    result = services.brackets_adjust(user=trader, trade_id=trade.pk, version=trade.version,
                                      new_sl=Decimal("3.50"), market=market)
    assert result.problem is not None and result.trade.status == TradeStatus.OPEN
    assert venue.look() == (QTY, True)  # held, and nothing at the broker would sell it

    venue.catch_up()
    protected = _trade(trade.pk)
    assert protected.status == TradeStatus.OPEN and protected.bracket_order_id not in ("", trade.bracket_order_id)
    assert not protected.unprotected and protected.attention_reason == ""
    assert venue.look() == (QTY, False)
    with tenancy.acting_as(trader.pk):
        legs = PaperOrder.objects.filter(parent_id=protected.bracket_order_id)
        assert {(leg.status, leg.quantity) for leg in legs} == {("open", QTY)}


@pytest.mark.django_db(transaction=True)
def test_a_close_slower_than_the_in_flight_window_is_not_doubled_by_the_monitor(trader, market, broker_held,
                                                                                monkeypatch):
    """The close's sell is held at the broker past CLOSE_IN_FLIGHT; a monitor cycle then runs. It
    must leave the trade to the close still at work (its lease), not send a second sell."""
    import threading

    from django.db import connection

    venue = Venue("paper", trader, market)
    trade = _open(trader, market)
    monkeypatch.setattr(sync, "CLOSE_IN_FLIGHT", timedelta(0))  # the close has outlived the window
    broker_held.arm()
    answers = {}

    def close():
        try:
            answers["close"] = services.trade_close(user=trader, trade_id=trade.pk, version=trade.version,
                                                    market=market)
        finally:
            connection.close()

    slow = threading.Thread(target=close)
    slow.start()
    assert broker_held.entered.wait(10)  # CLOSING committed, bracket cancelled, the sell at the broker
    sync.sync_orders(market=market, at=market.now())  # the order cycle (the paper matcher would wait on its locks)
    assert slow.is_alive() and _trade(trade.pk).status == TradeStatus.CLOSING
    broker_held.release.set()
    slow.join(10)
    assert answers["close"].trade.status == TradeStatus.CLOSED
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(tag=f"to-{trade.pk}-close").count() == 1
    venue.catch_up()
    assert venue.look() == (0, False) and len(venue.filled_exits(trade.pk)) == 1


def test_the_order_leases_of_many_trades_are_read_in_one_go_with_the_meaning_of_one():
    from trades.services import close_in_progress, closes_in_progress
    from trades.services.closing import trade_order_lease

    trades = [910001, 910002, 910003]
    assert closes_in_progress(trades) == set() and closes_in_progress([]) == set()
    with trade_order_lease(910002) as ours, trade_order_lease(910003) as theirs:
        assert ours and theirs
        assert closes_in_progress(trades) == {910002, 910003} == {t for t in trades if close_in_progress(trade_id=t)}
    assert closes_in_progress(iter(trades)) == set()


def test_a_lease_taken_after_the_cycles_one_read_of_the_leases_keeps_the_sync_off_that_trade(trader, market,
                                                                                             monkeypatch):
    """The cycle reads every trade's order lease once, before the first account; a request can take
    one after that read and before the sync reaches its trade. The sync must still leave the trade
    to the request (the write asks the lease again), and record the fill once the lease is free."""
    from trades.services.closing import trade_order_lease

    trade = _open(trader, market)
    market.set_quote(CONTRACT, "6.60", "6.80")
    market.advance(seconds=20)
    assert monitoring_services.match_paper_orders(market=market) == 1  # the take-profit filled at the broker
    read, taken = sync.closes_in_progress, []

    def read_then_a_request_takes_the_lease(trade_ids):  # in the first cycle only
        answer = read(trade_ids)
        lease = None if taken else trade_order_lease(trade.pk)
        assert lease is None or lease.__enter__()  # the request now works the trade's orders
        taken.append((answer, lease))
        return answer

    monkeypatch.setattr(sync, "closes_in_progress", read_then_a_request_takes_the_lease)
    report = sync.sync_orders(market=market, at=market.now())
    [(answer, lease)] = taken
    assert lease is not None
    assert answer == set() and report.changed == 0
    assert (_trade(trade.pk).status, _trade(trade.pk).version) == (TradeStatus.OPEN, trade.version)
    lease.__exit__(None, None, None)  # the request is done
    assert sync.sync_orders(market=market, at=market.now()).changed == 1
    assert (_trade(trade.pk).status, _trade(trade.pk).close_reason) == (TradeStatus.CLOSED, CloseReason.TP_HIT)
    assert len(taken) == 2 and taken[1][0] == set()


def test_a_lease_held_at_the_cycles_read_skips_the_trade_and_only_that_one(trader, market, monkeypatch):
    from trades.models import AccountSettings
    from trades.services.closing import trade_order_lease

    with tenancy.acting_as(trader.pk):  # room for two positions
        AccountSettings.objects.update_or_create(owner=trader, defaults={"account_balance": Decimal("100000")})
    leased, free = _open(trader, market), _open(trader, market)
    market.set_quote(CONTRACT, "6.60", "6.80")
    market.advance(seconds=20)
    assert monitoring_services.match_paper_orders(market=market) == 2
    asked = []
    monkeypatch.setattr(sync, "close_in_progress", lambda trade_id: asked.append(trade_id) or False)
    with trade_order_lease(leased.pk) as ours:
        assert ours
        assert sync.sync_orders(market=market, at=market.now()).changed == 1
    assert _trade(leased.pk).status == TradeStatus.OPEN and _trade(free.pk).status == TradeStatus.CLOSED
    assert asked == [free.pk]  # one GET, right before the one write; none for the skipped trade

