"""Spreads at the local paper broker: every leg at its natural side (improved toward the mid as
the rules say), all legs or none, on the same books as single legs (cash, commissions, positions
long and short, expiry)."""

import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from brokers.base import OrderRejected, OrderRequest, OrderStatus, SpreadLeg, SpreadOrderRequest, order_tag
from brokers.models import PaperFill, PaperOrder
from brokers.paper import FillRules, LocalPaperBroker
from tests.factories import UserFactory
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

C565, C570, C575, C580 = (f"SPY261218C00{strike}000" for strike in (565, 570, 575, 580))
P570, P560, P555, P550 = (f"SPY261218P00{strike}000" for strike in (570, 560, 555, 550))
C570_JAN = "SPY270115C00570000"  # the calendar's back month
FRONT = date(2026, 12, 18)
QUOTES = {
    C565: ("6.00", "6.20"), C570: ("4.10", "4.30"), C575: ("2.50", "2.60"), C580: ("1.40", "1.50"),
    P570: ("4.40", "4.60"), P560: ("3.00", "3.20"), P555: ("2.00", "2.10"), P550: ("1.20", "1.30"),
    C570_JAN: ("7.00", "7.30"),
}
COMMISSION = Decimal("0.65")
RULES = FillRules(commission_per_contract=COMMISSION, slippage_per_share=Decimal("0"))
# The short strangle and the risk reversal write a naked option: only with naked shorts allowed.
NAKED_OK = FillRules(commission_per_contract=COMMISSION, slippage_per_share=Decimal("0"), allow_naked_shorts=True)
CASH = Decimal("5000")
NAKED_CASH = Decimal("100000")  # what a naked-shorts broker holds on top of CASH


@pytest.fixture
def market():
    return HandDrivenMarket.quoting(QUOTES)


def _broker(trader, market, rules=RULES):
    return LocalPaperBroker(trader.pk, starting_cash=CASH, market=market, rules=rules)


@pytest.fixture
def broker(trader, market):
    with tenancy.acting_as(trader.pk):
        yield _broker(trader, market)


@pytest.fixture
def naked_broker(trader, market):
    """Naked shorts allowed, with the cash a naked put holds back (its strike, to an underlying of 0)."""
    with tenancy.acting_as(trader.pk):
        yield LocalPaperBroker(trader.pk, starting_cash=CASH + NAKED_CASH, market=market, rules=NAKED_OK)


def spread(*legs, price_type="market", price=None, trade=1, purpose="entry", duration="day"):
    return SpreadOrderRequest(
        underlying="SPY", legs=tuple(SpreadLeg(symbol, side, quantity) for symbol, side, quantity in legs),
        price_type=price_type, price=Decimal(price) if price else None, tag=order_tag(trade, purpose),
        duration=duration)


def bull_call(quantity=1, **kwargs):
    return spread((C570, "buy_to_open", quantity), (C575, "sell_to_open", quantity), **kwargs)


def bull_put(**kwargs):
    return spread((P560, "sell_to_open", 1), (P555, "buy_to_open", 1), **kwargs)


def closing(order_legs, **kwargs):
    """The spread that closes `order_legs` (symbol, side, quantity) leg for leg."""
    reverse = {"buy_to_open": "sell_to_close", "sell_to_open": "buy_to_close"}
    return spread(*((symbol, reverse[side], quantity) for symbol, side, quantity in order_legs), purpose="close",
                  **kwargs)


def held(broker):
    return {position.symbol: position.quantity for position in broker.get_positions()}


# Each shape at market against QUOTES: the legs (symbol, side, quantity), the price each leg fills
# at (its natural side), the net per share (debit +, credit −) and the cash afterwards
# (5,000 − net × 100 − $0.65 a contract), all worked out by hand.
SHAPES = {
    "vertical debit": ([(C570, "buy_to_open", 1), (C575, "sell_to_open", 1)], ["4.30", "2.50"], "1.80", "4818.70"),
    "vertical credit": ([(P560, "sell_to_open", 1), (P555, "buy_to_open", 1)], ["3.00", "2.10"], "-0.90",
                        "5088.70"),
    "straddle": ([(C570, "buy_to_open", 1), (P570, "buy_to_open", 1)], ["4.30", "4.60"], "8.90", "4108.70"),
    "short strangle": ([(C580, "sell_to_open", 1), (P550, "sell_to_open", 1)], ["1.40", "1.20"], "-2.60",
                       "5258.70"),
    "iron condor": ([(P555, "sell_to_open", 1), (P550, "buy_to_open", 1), (C575, "sell_to_open", 1),
                     (C580, "buy_to_open", 1)], ["2.00", "1.30", "2.50", "1.50"], "-1.70", "5167.40"),
    "butterfly 1x2x1": ([(C565, "buy_to_open", 1), (C570, "sell_to_open", 2), (C575, "buy_to_open", 1)],
                        ["6.20", "4.10", "2.60"], "0.60", "4937.40"),
    "calendar": ([(C570, "sell_to_open", 1), (C570_JAN, "buy_to_open", 1)], ["4.10", "7.30"], "3.20", "4678.70"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_fills_each_leg_at_its_natural_side_and_the_parent_at_the_net(broker, naked_broker, shape):
    legs, prices, net, cash = SHAPES[shape]
    broker = naked_broker if shape == "short strangle" else broker
    order = broker.place_spread_order(spread(*legs))
    assert order.status == OrderStatus.FILLED and order.order_class == "multileg"
    assert order.fill.price == Decimal(net) and order.quantity == 1
    assert order.price_type == spread(*legs).price_type
    assert [leg.fill.price for leg in order.legs] == [Decimal(price) for price in prices]
    assert all(leg.status == OrderStatus.FILLED for leg in order.legs)
    fills = list(PaperFill.objects.order_by("id"))
    assert [(f.option_symbol, f.side, f.quantity) for f in fills] == [tuple(leg) for leg in legs]
    assert [(f.bid, f.ask) for f in fills] == [tuple(Decimal(p) for p in QUOTES[s]) for s, _, _ in legs]
    assert sum(f.commission for f in fills) == COMMISSION * sum(quantity for _, _, quantity in legs)
    assert broker.get_account_balance().total_cash == Decimal(cash) + broker.starting_cash - CASH
    signed = {symbol: (quantity if side == "buy_to_open" else -quantity) for symbol, side, quantity in legs}
    assert held(broker) == signed  # short legs are negative positions
    costs = {position.symbol: position.cost_basis for position in broker.get_positions()}
    assert costs == {s: Decimal(p) * 100 * q for (s, _, _), p, q in zip(legs, prices, signed.values(), strict=True)}
    assert broker.find_order_by_tag(order_tag(1, "entry")) == broker.get_order(order.id) == order


def test_a_spread_of_several_units_nets_per_unit_and_charges_every_contract(broker):
    order = broker.place_spread_order(spread((C565, "buy_to_open", 2), (C570, "sell_to_open", 4),
                                             (C575, "buy_to_open", 2)))
    assert (order.quantity, order.fill.price, order.fill.quantity) == (2, Decimal("0.60"), 2)
    assert [leg.quantity for leg in order.legs] == [2, 4, 2]
    assert broker.get_account_balance().total_cash == CASH - Decimal("120") - Decimal("5.20")


@pytest.mark.parametrize(("improvement", "long_leg", "short_leg", "net"), [
    ("0", "4.30", "2.50", "1.80"),  # natural: the ask and the bid
    ("50", "4.25", "2.52", "1.73"),  # half of each half-spread, in whole cents rounded down (2.525 → 2.52)
    ("100", "4.20", "2.55", "1.65"),  # the mids
])
def test_price_improvement_moves_each_leg_toward_the_mid(trader, market, improvement, long_leg, short_leg, net):
    rules = FillRules(COMMISSION, Decimal("0"), spread_improvement_pct=Decimal(improvement))
    with tenancy.acting_as(trader.pk):
        order = _broker(trader, market, rules).place_spread_order(bull_call())
        assert [leg.fill.price for leg in order.legs] == [Decimal(long_leg), Decimal(short_leg)]
        assert order.fill.price == Decimal(net)
        assert _broker(trader, market, rules).get_account_balance().total_cash == \
            CASH - Decimal(net) * 100 - 2 * COMMISSION
        fill = PaperFill.objects.order_by("id").first()
        assert (fill.bid, fill.ask, fill.mid) == (Decimal("4.10"), Decimal("4.30"), Decimal("4.20"))


@override_settings(PAPER_SPREAD_IMPROVEMENT_PCT="25")
def test_the_improvement_comes_from_the_setting_and_stays_within_0_to_100():
    assert FillRules.from_settings().spread_improvement_pct == Decimal("25")
    with pytest.raises(ValueError, match="0 to 100"):
        FillRules(COMMISSION, Decimal("0"), spread_improvement_pct=Decimal("101"))


def test_a_debit_limit_not_reached_rests_with_its_cash_reserved_then_fills_when_the_market_moves(broker, market):
    order = broker.place_spread_order(bull_call(price_type="debit", price="1.50"))  # natural is 1.80
    assert order.status == OrderStatus.OPEN and not PaperFill.objects.exists()
    assert broker.get_account_balance().option_buying_power == CASH - Decimal("150") - 2 * COMMISSION
    market.set_quote(C570, "4.00", "4.10")  # 1.60: still over the limit
    assert broker.match() == 0
    market.set_quote(C575, "2.60", "2.70")  # 1.50: at the limit
    assert broker.match() == 2
    done = broker.get_order(order.id)
    assert done.status == OrderStatus.FILLED and done.fill.price == Decimal("1.50")
    assert [leg.fill.price for leg in done.legs] == [Decimal("4.10"), Decimal("2.60")]
    balance = broker.get_account_balance()
    assert balance.total_cash == balance.option_buying_power == CASH - Decimal("150") - 2 * COMMISSION


def test_a_credit_limit_waits_for_enough_credit_and_reserves_what_it_can_lose(broker, market):
    order = broker.place_spread_order(bull_put(price_type="credit", price="1.00"))  # natural credit is 0.90
    assert order.status == OrderStatus.OPEN
    # 5.00 wide, at least 1.00 received: $400 can be lost, and the commissions
    assert broker.get_account_balance().option_buying_power == CASH - Decimal("400") - 2 * COMMISSION
    market.set_quote(P560, "3.20", "3.40")  # 3.20 − 2.10 = 1.10 of credit
    assert broker.match() == 2
    assert broker.get_order(order.id).fill.price == Decimal("-1.10")
    assert broker.get_account_balance().total_cash == CASH + Decimal("110") - 2 * COMMISSION


def test_an_even_spread_fills_once_it_costs_nothing(naked_broker, market):
    broker = naked_broker  # a risk reversal: its short put is naked
    order = broker.place_spread_order(spread((C575, "buy_to_open", 1), (P555, "sell_to_open", 1),
                                             price_type="even"))  # 2.60 − 2.00: a debit of 0.60
    assert order.status == OrderStatus.OPEN
    market.set_quote(P555, "2.70", "2.80")
    assert broker.match() == 2
    assert broker.get_order(order.id).fill.price == Decimal("-0.10")


def test_a_leg_without_a_quote_holds_every_leg_back(broker, market):
    del market.book[C575]
    order = broker.place_spread_order(bull_call(price_type="debit", price="5.00"))  # any price would do
    assert order.status == OrderStatus.OPEN
    assert broker.match() == 0
    market.set_quote(C575, None, "2.60")  # quoted, but nobody bids for the leg sold
    assert broker.match() == 0
    assert not PaperFill.objects.exists() and held(broker) == {}
    assert {leg.status for leg in broker.get_order(order.id).legs} == {OrderStatus.OPEN}
    market.set_quote(C575, "2.50", "2.60")
    assert broker.match() == 2
    assert held(broker) == {C570: 1, C575: -1}


def test_a_market_spread_with_a_leg_unquoted_is_refused(broker, market):
    del market.book[C575]
    with pytest.raises(OrderRejected, match="No quote for every leg") as refused:
        broker.place_spread_order(bull_call())
    head = PaperOrder.objects.get(pk=refused.value.order_id)
    assert head.status == "rejected" and {leg.status for leg in head.legs.all()} == {"rejected"}


def test_a_spread_beyond_the_buying_power_is_refused_with_the_numbers(broker):
    with pytest.raises(OrderRejected, match=r"needs \$5439\.00, \$5000\.00 is available"):
        broker.place_spread_order(bull_call(quantity=30, price_type="debit", price="1.80"))
    assert not PaperFill.objects.exists()


def test_a_combo_with_a_stock_leg_is_refused_the_paper_broker_holds_no_stock(broker):
    combo = spread(("SPY", "buy", 100), (C575, "sell_to_open", 1))
    with pytest.raises(OrderRejected, match="stock leg"):
        broker.place_spread_order(combo)
    assert not PaperOrder.objects.exists()


def test_cancelling_a_resting_spread_ends_every_leg_and_frees_its_cash(broker):
    order = broker.place_spread_order(bull_call(price_type="debit", price="1.00"))
    leg = order.legs[1]
    cancelled = broker.cancel_order(leg.id)  # a leg's id takes the whole spread
    assert cancelled.status == OrderStatus.CANCELED
    state = broker.get_order(order.id)
    assert state.status == OrderStatus.CANCELED and {leg.status for leg in state.legs} == {OrderStatus.CANCELED}
    assert broker.get_account_balance().option_buying_power == CASH
    assert broker.match() == 0


def test_a_cancel_after_the_fill_reports_the_fill(broker):
    order = broker.place_spread_order(bull_call())
    assert broker.cancel_order(order.id).status == OrderStatus.FILLED


def test_closing_a_spread_flattens_both_legs_and_realizes_the_net(broker, market):
    legs = [(C570, "buy_to_open", 1), (C575, "sell_to_open", 1)]
    broker.place_spread_order(spread(*legs))  # 1.80 debit
    market.set_quote(C570, "6.00", "6.20")
    market.set_quote(C575, "3.30", "3.40")
    closed = broker.place_spread_order(closing(legs, price_type="credit", price="2.50"))  # 6.00 − 3.40 = 2.60
    assert closed.status == OrderStatus.FILLED and closed.fill.price == Decimal("-2.60")
    assert [(leg.side, leg.fill.price) for leg in closed.legs] == [("sell_to_close", Decimal("6.00")),
                                                                   ("buy_to_close", Decimal("3.40"))]
    assert broker.get_positions() == []
    assert not PaperFill.objects.filter(position_closed=False).exists()  # both positions are closed books
    balance = broker.get_account_balance()
    assert balance.close_pl == Decimal("80") - 4 * COMMISSION  # (2.60 − 1.80) × 100
    assert balance.total_cash == CASH + balance.close_pl


def test_closing_more_than_is_held_is_refused_on_either_side(broker):
    broker.place_spread_order(bull_call())
    with pytest.raises(OrderRejected, match=f"Cannot sell 2 {C570} to close: 1 held"):
        broker.place_spread_order(spread((C570, "sell_to_close", 2), (C575, "buy_to_close", 2), purpose="close"))
    with pytest.raises(OrderRejected, match=f"Cannot buy 1 {C580} to close: 0 held short"):
        broker.place_spread_order(spread((C570, "sell_to_close", 1), (C580, "buy_to_close", 1), purpose="close"))
    with pytest.raises(OrderRejected, match="held long; sell them to close"):
        broker.place_spread_order(spread((C570, "sell_to_open", 1), (C565, "buy_to_open", 1), trade=2))
    assert held(broker) == {C570: 1, C575: -1}


def test_a_short_leg_can_be_bought_back_on_its_own_but_not_more_than_is_short(broker):
    broker.place_spread_order(bull_call())

    def buy_back(quantity):
        return OrderRequest(option_symbol=C575, side="buy_to_close", quantity=quantity, order_type="market",
                            tag=order_tag(1, "close"))

    with pytest.raises(OrderRejected, match=f"Cannot buy 2 {C575} to close: 1 held short"):
        broker.place_order(buy_back(2))
    assert broker.place_order(buy_back(1)).fill.price == Decimal("2.60")
    assert held(broker) == {C570: 1}
    with pytest.raises(OrderRejected, match="only as a leg of a spread"):
        broker.place_order(OrderRequest(option_symbol=C580, side="sell_to_open", quantity=1, order_type="market",
                                        tag=order_tag(2, "entry")))


def test_a_close_that_lost_its_contracts_before_the_fill_is_cancelled_whole(broker, market):
    legs = [(C570, "buy_to_open", 1), (C575, "sell_to_open", 1)]
    broker.place_spread_order(spread(*legs))
    resting = broker.place_spread_order(closing(legs, price_type="credit", price="3.00"))
    broker.place_spread_order(closing(legs, trade=2))  # closed at market meanwhile
    market.set_quote(C570, "7.00", "7.20")
    assert broker.match() == 0
    state = broker.get_order(resting.id)
    assert state.status == OrderStatus.CANCELED and "Canceled at the fill" in state.reason
    assert {leg.status for leg in state.legs} == {OrderStatus.CANCELED} and broker.get_positions() == []


def test_a_day_spread_expires_at_the_close_and_a_gtc_calendar_at_its_front_months_expiry(broker, market):
    day = broker.place_spread_order(bull_call(price_type="debit", price="1.00"))
    calendar = broker.place_spread_order(spread((C570, "sell_to_open", 1), (C570_JAN, "buy_to_open", 1),
                                                price_type="debit", price="1.00", duration="gtc", trade=2))
    market.advance(hours=7)  # past the close
    broker.match()
    state = broker.get_order(day.id)
    assert state.status == OrderStatus.EXPIRED and {leg.status for leg in state.legs} == {OrderStatus.EXPIRED}
    assert broker.get_order(calendar.id).status == OrderStatus.OPEN
    market.moment = market.expiry_cutoff(FRONT) + timedelta(minutes=1)
    broker.match()
    assert broker.get_order(calendar.id).status == OrderStatus.EXPIRED
    assert broker.get_account_balance().option_buying_power == CASH


def _past_front_expiry(market, close):
    market.set_close("SPY", FRONT, close)
    market.moment = market.expiry_cutoff(FRONT) + timedelta(minutes=1)
    market.open = False


@pytest.mark.parametrize(("close", "short_pays", "long_gets"), [
    ("572.00", "2.00", "0"),  # the short 570 call in the money, the long 575 worthless
    ("581.00", "11.00", "6.00"),  # both in the money: the spread's maximum loss
    ("568.00", "0", "0"),  # both worthless: the credit is kept
])
def test_a_credit_spread_settles_each_leg_at_intrinsic_and_the_short_pays_it(broker, market, close, short_pays,
                                                                             long_gets):
    broker.place_spread_order(spread((C570, "sell_to_open", 1), (C575, "buy_to_open", 1)))  # 4.10 − 2.60: 1.50
    credit = Decimal("150") - 2 * COMMISSION
    _past_front_expiry(market, close)
    assert broker.match() == 2
    assert broker.get_positions() == []
    balance = broker.get_account_balance()
    assert balance.total_cash == CASH + credit - Decimal(short_pays) * 100 + Decimal(long_gets) * 100
    assert balance.close_pl == balance.total_cash - CASH
    short = PaperFill.objects.get(option_symbol=C570, settlement=True)
    assert (short.side, short.quantity, short.price, short.commission) == ("buy_to_close", 1, Decimal(short_pays), 0)
    reason = broker.get_order(str(short.order_id)).reason
    assert ("assigned" in reason) == (short_pays != "0") and ("worthless" in reason) == (short_pays == "0")
    assert not PaperFill.objects.filter(position_closed=False).exists()
    assert broker.match() == 0  # settled once


def test_a_calendars_front_leg_settles_and_its_back_month_stays_held(broker, market):
    broker.place_spread_order(spread((C570, "sell_to_open", 1), (C570_JAN, "buy_to_open", 1)))  # 3.20 debit
    _past_front_expiry(market, "573.50")
    assert broker.match() == 1
    assert held(broker) == {C570_JAN: 1}
    assert broker.get_account_balance().total_cash == CASH - Decimal("320") - 2 * COMMISSION - Decimal("350")


# --- Races: a cancel and a fill of one spread, forced into both orders ---------------------------


def _someone_waits_for_a_lock(timeout=10.0) -> None:
    """Return once another session waits for a transaction (or savepoint) of this session: it is
    blocked on a row that this one holds locked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks AS waiting JOIN pg_locks AS held "
                           "ON held.locktype = 'transactionid' AND held.transactionid = waiting.transactionid "
                           "AND held.granted AND held.pid = pg_backend_pid() "
                           "WHERE waiting.locktype = 'transactionid' AND NOT waiting.granted")
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the other session never waited for the lock")


class PausingMarket(HandDrivenMarket):
    """Pauses the matcher once, inside its transaction with the group and account locks held
    (`match_group` asks for the session close there), until another session waits on them."""

    def __init__(self):
        super().__init__()
        self.pause_once = False
        self.paused = threading.Event()

    def session_close(self, at):
        if self.pause_once:
            self.pause_once = False
            self.paused.set()
            _someone_waits_for_a_lock()
        return super().session_close(at)


def _in_thread(trader, work, results, name):
    def run():
        try:
            with tenancy.acting_as(trader.pk):
                results[name] = work()
        except Exception as error:  # noqa: BLE001 - handed to the test, which fails on it
            results[name] = error
        finally:
            connection.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _resting_spread(trader):
    market = PausingMarket()
    for symbol, (bid, ask) in QUOTES.items():
        market.set_quote(symbol, bid, ask)
    with tenancy.acting_as(trader.pk):
        order = _broker(trader, market).place_spread_order(bull_call(price_type="debit", price="1.50"))
    assert order.status == OrderStatus.OPEN
    market.set_quote(C570, "3.90", "4.00")  # now it crosses: the next match fills it
    return market, order


@pytest.mark.django_db(transaction=True)
def test_a_cancel_arriving_during_the_fill_waits_and_reports_every_leg_filled():
    trader = UserFactory()
    market, order = _resting_spread(trader)
    market.pause_once = True
    results = {}
    matcher = _in_thread(trader, lambda: _broker(trader, market).match(), results, "match")
    assert market.paused.wait(10)
    canceller = _in_thread(trader, lambda: _broker(trader, market).cancel_order(order.id), results, "cancel")
    matcher.join(20)
    canceller.join(20)
    assert results["match"] == 2
    assert results["cancel"].status == OrderStatus.FILLED
    assert {leg.status for leg in results["cancel"].legs} == {OrderStatus.FILLED}
    with tenancy.acting_as(trader.pk):
        assert PaperFill.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_fill_arriving_during_the_cancel_waits_and_fills_nothing():
    trader = UserFactory()
    market, order = _resting_spread(trader)
    results = {}
    with tenancy.acting_as(trader.pk), transaction.atomic():
        broker = _broker(trader, market)
        PaperOrder.objects.select_for_update().get(pk=order.id)  # the cancel has the spread
        matcher = _in_thread(trader, lambda: _broker(trader, market).match(), results, "match")
        _someone_waits_for_a_lock()
        cancelled = broker.cancel_order(order.id)
    matcher.join(20)
    assert cancelled.status == OrderStatus.CANCELED
    assert results["match"] == 0
    with tenancy.acting_as(trader.pk):
        assert not PaperFill.objects.exists()
        assert {row.status for row in PaperOrder.objects.all()} == {"canceled"}


# --- Properties -------------------------------------------------------------------------------

cents = st.integers(min_value=5, max_value=2000).map(lambda c: Decimal(c) / 100)
widths = st.integers(min_value=0, max_value=60).map(lambda c: Decimal(c) / 100)
quote_sets = st.fixed_dictionaries({symbol: st.tuples(cents, widths) for symbol in QUOTES})


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=st.sampled_from(sorted(SHAPES)), units=st.integers(min_value=1, max_value=3),
       improvement=st.sampled_from(["0", "25", "50", "100"]), opening=quote_sets, closing_quotes=quote_sets)
def test_the_net_is_the_signed_sum_of_the_legs_and_open_then_close_nets_to_nothing(
        trader, shape, units, improvement, opening, closing_quotes):
    rules = FillRules(COMMISSION, Decimal("0"), spread_improvement_pct=Decimal(improvement), allow_naked_shorts=True)
    legs = [(symbol, side, quantity * units) for symbol, side, quantity in SHAPES[shape][0]]
    contracts = sum(quantity for _, _, quantity in legs)
    market = HandDrivenMarket()
    with transaction.atomic(), tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("1000000"), market=market, rules=rules)
        cash = Decimal("1000000")
        for request, book in ((spread(*legs), opening), (closing(legs), closing_quotes)):
            for symbol, (bid, width) in book.items():
                market.set_quote(symbol, str(bid), str(bid + width))
            order = broker.place_spread_order(request)
            assert order.status == OrderStatus.FILLED and order.quantity == units
            signed = sum(((1 if leg.side.is_buy else -1) * leg.fill.price * leg.quantity for leg in order.legs),
                         Decimal(0))
            assert order.fill.price * units == signed
            for leg in order.legs:
                bid, width = book[leg.option_symbol]
                mid = bid + width / 2
                assert (mid <= leg.fill.price <= bid + width) if leg.side.is_buy else (bid <= leg.fill.price <= mid)
            cash -= signed * 100 + COMMISSION * contracts
            assert broker.get_account_balance().total_cash == cash
        assert broker.get_positions() == []
        assert not PaperFill.objects.filter(position_closed=False).exists()
        assert broker.get_account_balance().close_pl == cash - Decimal("1000000")
        transaction.set_rollback(True)
