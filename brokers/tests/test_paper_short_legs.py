"""What the local paper broker holds against short legs: a short must pair with a long of its
right expiring no earlier (no naked writing unless the rules allow it), the buying power keeps
back the held legs' worst payout at expiry, a leg bid 0.00 never blocks a spread's exit, and a
single buy to open never nets against a spread's short (docs/paper-spreads.md)."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from brokers.base import OrderRejected, OrderRequest, OrderSide, OrderStatus, SpreadLeg, SpreadOrderRequest, order_tag
from brokers.models import PaperFill
from brokers.paper import FillRules, LocalPaperBroker
from brokers.paper_spreads import is_covered, worst_case_at_expiry
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

C565, C570, C575, C580 = (f"SPY261218C00{strike}000" for strike in (565, 570, 575, 580))
P560, P555, P550 = (f"SPY261218P00{strike}000" for strike in (560, 555, 550))
C570_JAN = "SPY270115C00570000"
EXPIRY = date(2026, 12, 18)
QUOTES = {
    C565: ("6.00", "6.20"), C570: ("4.10", "4.30"), C575: ("2.50", "2.60"), C580: ("1.40", "1.50"),
    P560: ("3.00", "3.20"), P555: ("2.00", "2.10"), P550: ("1.20", "1.30"), C570_JAN: ("7.00", "7.30"),
}
COMMISSION = Decimal("0.65")
RULES = FillRules(commission_per_contract=COMMISSION, slippage_per_share=Decimal("0"))
NAKED_OK = FillRules(commission_per_contract=COMMISSION, slippage_per_share=Decimal("0"), allow_naked_shorts=True)
# The 570/575 call credit spread at market: sell 570 at 4.10, buy 575 at 2.60, 1.50 received; it
# can lose the 5.00 width less the credit: $350, plus $1.30 of commissions.
CREDIT_CALL = [(C570, "sell_to_open", 1), (C575, "buy_to_open", 1)]
JUST_ENOUGH = Decimal("351.30")


@pytest.fixture
def market():
    return HandDrivenMarket.quoting(QUOTES)


def broker_with(trader, market, cash, rules=RULES):
    return LocalPaperBroker(trader.pk, starting_cash=Decimal(cash), market=market, rules=rules)


def spread(*legs, price_type="market", price=None, trade=1, purpose="entry"):
    return SpreadOrderRequest(
        underlying="SPY", legs=tuple(SpreadLeg(symbol, side, quantity) for symbol, side, quantity in legs),
        price_type=price_type, price=Decimal(price) if price else None, tag=order_tag(trade, purpose))


def single(symbol, side, *, order_type="market", limit=None, trade=2, purpose="entry"):
    return OrderRequest(option_symbol=symbol, side=side, quantity=1, order_type=order_type,
                        limit_price=Decimal(limit) if limit else None, tag=order_tag(trade, purpose))


def held(broker):
    return {position.symbol: position.quantity for position in broker.get_positions()}


# --- 1. the buying power holds the short legs' worst case -----------------------------------------


def test_a_credit_spreads_premium_is_not_spendable_while_the_short_is_held(trader, market):
    with tenancy.acting_as(trader.pk):
        with pytest.raises(OrderRejected, match=r"needs \$351\.30, \$351\.29 is available"):
            broker_with(trader, market, JUST_ENOUGH - Decimal("0.01")).place_spread_order(spread(*CREDIT_CALL))
        broker = broker_with(trader, market, JUST_ENOUGH)
        assert broker.place_spread_order(spread(*CREDIT_CALL, trade=3)).status == OrderStatus.FILLED
        balance = broker.get_account_balance()
        assert balance.total_cash == Decimal("500")  # the 150 credit arrived ...
        assert balance.option_buying_power == Decimal("0")  # ... and it is held with the rest of the width
        with pytest.raises(OrderRejected, match="Insufficient buying power"):
            broker.place_order(single(C580, "buy_to_open"))
        assert held(broker) == {C570: -1, C575: 1}


def test_a_resting_credit_spread_reserves_what_it_can_lose(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "1000")
        order = broker.place_spread_order(spread(*CREDIT_CALL, price_type="credit", price="1.60"))
        assert order.status == OrderStatus.OPEN
        # 5.00 wide less at least 1.60 received: $340, and $1.30 of commissions
        assert broker.get_account_balance().option_buying_power == Decimal("1000") - Decimal("341.30")
        market.set_quote(C570, "4.20", "4.40")  # 4.20 − 2.60 = 1.60
        assert broker.match() == 2
        balance = broker.get_account_balance()
        assert balance.total_cash == Decimal("1000") + Decimal("160") - Decimal("1.30")
        assert balance.option_buying_power == balance.total_cash - Decimal("500")


def test_closing_the_credit_spread_frees_what_it_held(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, JUST_ENOUGH)
        broker.place_spread_order(spread(*CREDIT_CALL))
        closed = broker.place_spread_order(spread((C570, "buy_to_close", 1), (C575, "sell_to_close", 1),
                                                  purpose="close"))  # 4.30 − 2.50 = 1.80 paid back
        assert closed.status == OrderStatus.FILLED and broker.get_positions() == []
        balance = broker.get_account_balance()
        assert balance.option_buying_power == balance.total_cash == Decimal("500") - Decimal("180") - Decimal("1.30")


@pytest.mark.parametrize("legs", [
    [(C580, "sell_to_open", 1), (P550, "sell_to_open", 1)],  # a short strangle
    [(C570, "buy_to_open", 1), (C575, "sell_to_open", 2)],  # a 1×2 call ratio: one call naked
    [(P560, "sell_to_open", 1), (C580, "buy_to_open", 1)],  # a call does not cover a put
    [(C570_JAN, "sell_to_open", 1), (C570, "buy_to_open", 1)],  # a long expiring first covers nothing
], ids=["strangle", "ratio", "other right", "earlier long"])
def test_a_spread_leaving_a_naked_short_is_refused_unless_the_rules_allow_it(trader, market, legs):
    with tenancy.acting_as(trader.pk):
        with pytest.raises(OrderRejected, match="uncovered"):
            broker_with(trader, market, "100000").place_spread_order(spread(*legs))
        assert not PaperFill.objects.exists()
        assert broker_with(trader, market, "100000", NAKED_OK).place_spread_order(
            spread(*legs, trade=3)).status == OrderStatus.FILLED


def test_a_held_long_covers_a_later_spreads_short_and_the_spread_is_cancelled_at_the_fill_once_it_is_sold(
        trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "100000")
        broker.place_order(single(C565, "buy_to_open", trade=1))
        # two 575s sold, one covered by the 580 bought, the other by the 565 already held
        resting = broker.place_spread_order(spread((C575, "sell_to_open", 2), (C580, "buy_to_open", 1),
                                                   price_type="credit", price="5.00"))
        assert resting.status == OrderStatus.OPEN
        assert broker.place_order(single(C565, "sell_to_close", trade=1, purpose="close")).status == \
            OrderStatus.FILLED  # nothing short yet: selling it leaves nothing naked
        market.set_quote(C575, "4.00", "4.10")  # 8.00 − 1.50: the credit is there
        assert broker.match() == 0
        state = broker.get_order(resting.id)
        assert state.status == OrderStatus.CANCELED and "uncovered" in state.reason
        assert held(broker) == {}


def test_selling_the_long_leg_alone_would_leave_the_short_naked_and_is_refused(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "100000")
        broker.place_spread_order(spread(*CREDIT_CALL))
        with pytest.raises(OrderRejected, match="uncovered"):
            broker.place_order(single(C575, "sell_to_close", trade=1, purpose="close"))
        assert held(broker) == {C570: -1, C575: 1}


def _expire(market, close):
    market.set_close("SPY", EXPIRY, close)
    market.moment = market.expiry_cutoff(EXPIRY) + timedelta(minutes=1)
    market.open = False


def _cash_after_each_order(starting: Decimal) -> list[Decimal]:
    """The cash once each order's fills are booked (a spread's legs fill in one transaction, so
    only the cash between orders, each settlement included, is ever seen)."""
    cash, path, last = starting, [], None
    for fill in PaperFill.objects.select_related("order").order_by("id"):
        group = fill.order.parent_id or fill.order_id
        if last is not None and group != last:
            path.append(cash)
        sign = -1 if OrderSide(fill.side).is_buy else 1
        cash += sign * fill.price * fill.quantity * 100 - fill.commission
        last = group
    return [*path, cash]


SHAPES = {
    "call credit": CREDIT_CALL,
    "put credit": [(P560, "sell_to_open", 1), (P550, "buy_to_open", 1)],
    "iron condor": [(P555, "sell_to_open", 1), (P550, "buy_to_open", 1), (C575, "sell_to_open", 1),
                    (C580, "buy_to_open", 1)],
    "butterfly": [(C565, "buy_to_open", 1), (C570, "sell_to_open", 2), (C575, "buy_to_open", 1)],
}


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shape=st.sampled_from(sorted(SHAPES)),
       close=st.integers(min_value=1, max_value=120000).map(lambda cents: Decimal(cents) / 100))
def test_with_just_enough_cash_no_settlement_takes_cash_below_zero(trader, shape, close):
    """Open each defined-risk shape with the least cash the broker accepts, then expire it anywhere:
    the cash after every fill, settlements included, stays at or above 0."""
    with transaction.atomic(), tenancy.acting_as(trader.pk):
        market = HandDrivenMarket.quoting(QUOTES)
        probe = broker_with(trader, market, "0")
        with pytest.raises(OrderRejected, match=r"needs \$(?P<n>[\d.]+),") as refused:
            probe.place_spread_order(spread(*SHAPES[shape]))
        needed = Decimal(refused.value.reason.split("$")[1].split(",")[0])
        broker = broker_with(trader, market, needed)
        assert broker.place_spread_order(spread(*SHAPES[shape], trade=5)).status == OrderStatus.FILLED
        assert broker.get_account_balance().option_buying_power >= 0
        _expire(market, str(close))
        broker.match()
        assert broker.get_positions() == []
        assert min(_cash_after_each_order(needed)) >= 0
        transaction.set_rollback(True)


def test_the_worst_case_is_the_widest_payout_and_covering_needs_a_long_that_lives_as_long():
    assert worst_case_at_expiry({C570: -1, C575: 1}) == Decimal("500")
    assert worst_case_at_expiry({C570: 1, C575: -1}) == Decimal("0")  # a debit spread owes nothing
    assert worst_case_at_expiry({P560: -2, P550: 2}) == Decimal("2000")
    assert worst_case_at_expiry({P560: -1}) == Decimal("56000")  # a naked put: to an underlying of 0
    assert worst_case_at_expiry({C565: 1, C570: -2, C575: 1}) == Decimal("0")
    assert worst_case_at_expiry({P555: -1, P550: 1, C575: -1, C580: 1}) == Decimal("500")  # one side at a time
    assert worst_case_at_expiry({P560: -1, "SPXW261218P05600000": 1}) == Decimal("56000")  # SPX covers no SPY
    jan, dec = date(2027, 1, 15), EXPIRY
    assert is_covered([("CALL", dec, -1), ("CALL", jan, 1)])
    assert not is_covered([("CALL", jan, -1), ("CALL", dec, 1)])
    assert not is_covered([("PUT", dec, -1), ("CALL", dec, 1)])


def test_naked_shorts_are_off_unless_the_setting_turns_them_on():
    assert FillRules.from_settings().allow_naked_shorts is False
    with override_settings(PAPER_ALLOW_NAKED_SHORTS=True):
        assert FillRules.from_settings().allow_naked_shorts is True


# --- 2. a leg bid 0.00 does not block a spread's exit --------------------------------------------


@pytest.mark.parametrize(("improvement", "wing"), [("0", "0"), ("100", "0.02")])  # the mid of 0.00/0.05
def test_a_wing_bid_at_zero_is_sold_at_zero_to_close_the_spread(trader, market, improvement, wing):
    rules = FillRules(COMMISSION, Decimal("0"), spread_improvement_pct=Decimal(improvement))
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "10000", rules)
        broker.place_spread_order(spread((P560, "sell_to_open", 1), (P550, "buy_to_open", 1)))
        market.set_quote(P560, "0.10", "0.15")
        market.set_quote(P550, "0", "0.05")  # nobody bids for the far wing
        closing = spread((P560, "buy_to_close", 1), (P550, "sell_to_close", 1), purpose="close")
        order = broker.place_spread_order(closing)
        assert order.status == OrderStatus.FILLED
        assert order.legs[1].fill.price == Decimal(wing)
        assert broker.get_positions() == []


def test_a_resting_close_fills_once_the_wing_bid_falls_to_zero(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "10000")
        broker.place_spread_order(spread((P560, "sell_to_open", 1), (P550, "buy_to_open", 1)))
        market.set_quote(P560, "0.10", "0.15")
        market.set_quote(P550, None, "0.05")  # no bid at all: not a quote to sell into
        order = broker.place_spread_order(spread((P560, "buy_to_close", 1), (P550, "sell_to_close", 1),
                                                 price_type="debit", price="0.20", purpose="close"))
        assert order.status == OrderStatus.OPEN
        market.set_quote(P550, "0", "0.05")
        assert broker.match() == 2
        assert broker.get_order(order.id).fill.price == Decimal("0.15")


def test_an_opening_sale_at_a_zero_bid_is_still_refused(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "10000")
        market.set_quote(C580, "0", "0.05")
        with pytest.raises(OrderRejected, match="No quote for every leg"):
            broker.place_spread_order(spread((C575, "buy_to_open", 1), (C580, "sell_to_open", 1)))
        resting = broker.place_spread_order(spread((C575, "buy_to_open", 1), (C580, "sell_to_open", 1),
                                                   price_type="debit", price="5.00", trade=3))
        assert resting.status == OrderStatus.OPEN and broker.match() == 0


# --- 3. a single buy to open never nets against a spread's short ---------------------------------


def test_a_single_buy_to_open_against_a_held_short_is_refused(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "10000")
        broker.place_spread_order(spread(*CREDIT_CALL))
        with pytest.raises(OrderRejected, match="held short; buy them to close instead"):
            broker.place_order(single(C570, "buy_to_open"))
        assert held(broker) == {C570: -1, C575: 1}


def test_a_resting_buy_to_open_is_cancelled_at_the_fill_once_a_spread_sold_its_contract(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = broker_with(trader, market, "10000")
        resting = broker.place_order(single(C570, "buy_to_open", order_type="limit", limit="4.00"))
        assert resting.status == OrderStatus.OPEN
        broker.place_spread_order(spread(*CREDIT_CALL, trade=3))
        market.set_quote(C570, "3.90", "3.95")
        assert broker.match() == 0
        state = broker.get_order(resting.id)
        assert state.status == OrderStatus.CANCELED and "held short" in state.reason
        assert held(broker) == {C570: -1, C575: 1}
