"""The held-price convention: a debit trade is long its price, a credit trade short it."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trades import net_price
from trades.net_price import CREDIT, DEBIT

prices = st.decimals(min_value=D("0.01"), max_value=D("50"), places=2)


def test_a_debit_spread_gains_as_its_price_rises():
    assert net_price.pnl(DEBIT, entry=D("1.20"), price=D("1.95"), units=3) == D("225.00")
    assert net_price.target_crossed(DEBIT, price=D("2.00"), target=D("2.00"))
    assert net_price.stop_crossed(DEBIT, price=D("0.60"), stop=D("0.60"))
    assert not net_price.stop_crossed(DEBIT, price=D("0.61"), stop=D("0.60"))


def test_a_credit_spread_gains_as_buying_it_back_gets_cheaper():
    # Sold for 1.50; buying back now costs 0.70: 0.80 kept per share, on 2 spreads.
    assert net_price.pnl(CREDIT, entry=D("1.50"), price=D("0.70"), units=2) == D("160.00")
    assert net_price.target_crossed(CREDIT, price=D("0.75"), target=D("0.75"))
    assert not net_price.target_crossed(CREDIT, price=D("0.76"), target=D("0.75"))
    assert net_price.stop_crossed(CREDIT, price=D("3.00"), stop=D("3.00"))


def test_the_held_price_of_a_credit_is_what_buying_back_costs():
    assert net_price.held_price(CREDIT, D("-1.35")) == D("1.35")
    assert net_price.held_price(DEBIT, D("2.10")) == D("2.10")
    assert net_price.held_price(CREDIT, None) is None
    assert net_price.direction_of(D("-0.05")) == CREDIT
    assert net_price.direction_of(D("0")) == DEBIT


def test_exits_sit_on_the_right_sides_of_the_entry():
    assert net_price.exits_in_order(DEBIT, entry=D("2"), stop=D("1"), target=D("3"))
    assert not net_price.exits_in_order(DEBIT, entry=D("2"), stop=D("3"), target=D("1"))
    assert net_price.exits_in_order(CREDIT, entry=D("2"), stop=D("4"), target=D("1"))
    assert not net_price.exits_in_order(CREDIT, entry=D("2"), stop=D("1"), target=D("3"))


def test_take_half_the_max_profit_and_stop_at_twice_the_credit():
    # A 5-wide put credit spread sold for 1.60: max profit is the credit; half of it is kept when
    # buying back costs 0.80. Stop at twice the credit: buy back at 3.20.
    assert net_price.target_at_share_of_max_profit(CREDIT, entry=D("1.60"), max_profit=D("1.60"),
                                                   percent=D(50)) == D("0.80")
    assert net_price.stop_at_credit_multiple(credit=D("1.60"), multiple=D(2)) == D("3.20")
    # A 5-wide call debit spread bought for 2.00: max profit 3.00 a share; half is at 3.50.
    assert net_price.target_at_share_of_max_profit(DEBIT, entry=D("2.00"), max_profit=D("3.00"),
                                                   percent=D(50)) == D("3.50")


def test_an_unknown_direction_is_refused():
    with pytest.raises(ValueError):
        net_price.direction_sign("short")


@given(entry=prices, price=prices, units=st.integers(min_value=1, max_value=50))
def test_a_debit_and_a_credit_on_one_path_mirror_each_other(entry, price, units):
    assert net_price.pnl(DEBIT, entry=entry, price=price, units=units) == -net_price.pnl(
        CREDIT, entry=entry, price=price, units=units)
