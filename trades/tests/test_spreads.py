"""The numbers of a multi-leg position (trades.spreads): pure, so driven here without a database.

Properties over any legs and prices (Hypothesis), then each template worked by hand.
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.blackscholes import black_scholes
from trades.services import InvalidTradeInput
from trades.spreads import (
    CALL,
    DEFINED_RISK,
    LONG,
    LONG_ONLY,
    NOT_DEFINED_RISK,
    PUT,
    SHORT,
    OptionModel,
    SpreadLeg,
    SpreadPosition,
    butterfly,
    calendar,
    close_in_new_york,
    expiry_breakevens,
    expiry_payoff,
    iron_condor,
    is_defined_risk,
    model_pnl,
    net_greeks,
    payoff_curve,
    pnl_at_expiry,
    position_priced,
    price_grid,
    spread_risk,
    straddle,
    strangle,
    vertical,
)

D = Decimal
EXPIRY = date(2026, 12, 18)
BACK = date(2027, 1, 15)
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)  # Tuesday 10:00 in New York, 17 days before EXPIRY
MODEL = OptionModel(as_of=NOW, rate=0.04)
STEP = D("0.0001")  # a breakeven that is not a finite decimal is given to this step

STRIKES = st.integers(180, 220).map(lambda n: D(n) / 2)  # 90 to 110 in halves
PREMIUMS = st.integers(0, 1500).map(lambda n: D(n) / 100)
PRICES = st.one_of(st.integers(0, 30000).map(lambda n: D(n) / 100), STRIKES)


@st.composite
def positions(draw):
    """Any 1 to 4 legs of one expiry: calls and puts, bought or sold, 1 to 3 per spread, 1 to 5 spreads."""
    contracts = draw(st.lists(st.tuples(st.sampled_from([CALL, PUT]), STRIKES), min_size=1, max_size=4,
                              unique=True))
    legs = tuple(SpreadLeg.of("SPY", kind, strike, EXPIRY, draw(st.sampled_from([LONG, SHORT])),
                              ratio=draw(st.integers(1, 3)), premium=draw(PREMIUMS)) for kind, strike in contracts)
    return SpreadPosition(legs, draw(st.integers(1, 5)))


def legs_pnl(position, price):
    """The P&L at expiry summed leg by leg, as each leg's own statement would show it."""
    return sum(leg.pnl_at_expiry(price, position.quantity) for leg in position.legs)


def kinks(position):
    return [D(0), *sorted({leg.strike for leg in position.legs})]


def priced(position, premiums, iv=0.2):
    """The position with each leg's premium by strike (and right, for a straddle's two legs)."""
    return position_priced(position, lambda leg: (premiums.get((leg.option_type, leg.strike))
                                                  or premiums[leg.strike], iv))


# --- properties -------------------------------------------------------------------------------------

@given(positions(), PRICES)
def test_net_pnl_at_expiry_is_the_sum_of_the_legs_pnl(position, price):
    assert pnl_at_expiry(expiry_payoff(position), price) == legs_pnl(position, price)


@given(positions(), st.lists(PRICES, max_size=20))
def test_max_loss_is_below_every_payoff_point_and_is_reached(position, prices):
    risk = spread_risk(position)
    if risk.max_loss is None:  # unlimited: the loss keeps growing as the underlying rises
        assert legs_pnl(position, D(10**7)) < legs_pnl(position, D(10**6)) < legs_pnl(position, kinks(position)[-1])
    else:
        assert all(legs_pnl(position, price) >= -risk.max_loss for price in [*prices, *kinks(position)])
        assert -risk.max_loss in [legs_pnl(position, price) for price in kinks(position)]
    if risk.max_profit is None:
        assert legs_pnl(position, D(10**7)) > legs_pnl(position, D(10**6)) > legs_pnl(position, kinks(position)[-1])
    else:
        assert all(legs_pnl(position, price) <= risk.max_profit for price in [*prices, *kinks(position)])
        assert risk.max_profit in [legs_pnl(position, price) for price in kinks(position)]


@given(positions())
def test_breakevens_are_zeros_of_the_payoff(position):
    for breakeven in spread_risk(position).breakevens:
        at = legs_pnl(position, breakeven)
        if at != 0:  # a breakeven that is not a finite decimal, to the step: the payoff crosses 0 there
            assert breakeven.as_tuple().exponent == -4
            below, above = legs_pnl(position, breakeven - STEP), legs_pnl(position, breakeven + STEP)
            assert min(below, above) <= 0 <= max(below, above)


@given(positions(), PRICES, PRICES)
def test_every_crossing_of_zero_has_a_breakeven(position, one, other):
    low, high = sorted([one, other])
    if legs_pnl(position, low) * legs_pnl(position, high) < 0:
        assert any(low < breakeven < high for breakeven in spread_risk(position).breakevens)


@given(positions())
def test_buying_power_is_refused_for_naked_shorts_and_covers_the_worst_case_otherwise(position):
    risk = spread_risk(position)
    if not risk.defined_risk:
        assert (risk.buying_power, risk.buying_power_rule) == (None, NOT_DEFINED_RISK)
        assert any(leg.side == SHORT for leg in position.legs)
    else:
        assert risk.max_loss is not None
        # Worked out independently: the worst P&L at expiry over a dense grid of prices (0, every
        # strike, and every quarter up to three times the highest strike), and the premium paid.
        grid = {*kinks(position), *(D(n) / 4 for n in range(0, 4 * 3 * int(kinks(position)[-1]) + 1))}
        worst = -min(legs_pnl(position, price) for price in grid)
        paid = sum(leg.sign * leg.ratio * leg.premium for leg in position.legs) * position.quantity * 100
        assert risk.buying_power == max(worst, paid, 0)


@st.composite
def verticals(draw, credit=None):
    """Any vertical whose debit (or credit) is between 0 and its width: the strike nearer the money
    is dearer by at most the width."""
    lower = draw(STRIKES)
    upper = draw(STRIKES.filter(lambda strike: strike > lower))
    kind = draw(st.sampled_from([CALL, PUT]))
    credit = draw(st.booleans()) if credit is None else credit
    far = draw(PREMIUMS)
    near = far + draw(st.integers(0, int((upper - lower) * 100)).map(lambda n: D(n) / 100))
    near_strike = lower if kind == CALL else upper
    position = vertical(root="SPY", expiry=EXPIRY, option_type=kind, lower=lower, upper=upper, credit=credit,
                        quantity=draw(st.integers(1, 5)))
    return position_priced(position, lambda leg: (near if leg.strike == near_strike else far, None))


@given(verticals())
def test_a_verticals_max_profit_and_max_loss_add_up_to_its_width(position):
    risk = spread_risk(position)
    assert risk.max_profit >= 0 and risk.max_loss >= 0
    assert risk.max_profit + risk.max_loss == risk.width * 100 * position.quantity


@given(verticals(credit=True))
def test_a_credit_spread_reserves_its_max_loss_width_times_100_less_the_credit(position):
    risk = spread_risk(position)
    assert risk.buying_power == risk.max_loss == risk.width * 100 * position.quantity - risk.credit


@given(st.lists(STRIKES, min_size=4, max_size=4, unique=True), st.lists(PREMIUMS, min_size=4, max_size=4),
       st.integers(1, 5))
def test_an_iron_condor_reserves_its_wider_wing_times_100_less_the_credit(strikes, premiums, quantity):
    long_put, short_put, short_call, long_call = sorted(strikes)
    position = iron_condor(root="SPY", expiry=EXPIRY, long_put=long_put, short_put=short_put, short_call=short_call,
                           long_call=long_call, quantity=quantity)
    position = position_priced(position, lambda leg: (premiums[sorted(strikes).index(leg.strike)], None))
    risk = spread_risk(position)
    wider = max(short_put - long_put, long_call - short_call)
    assert risk.width == wider
    assert risk.max_loss == wider * 100 * quantity + risk.cost
    assert risk.buying_power == max(risk.max_loss, risk.debit, 0)


@given(positions(), PRICES)
def test_the_model_at_the_expiry_cutoff_is_the_payoff_at_expiry(position, price):
    position = position_priced(position, lambda leg: (leg.premium, 0.3))
    at_expiry = pnl_at_expiry(expiry_payoff(position), price)
    assert model_pnl(position, price, MODEL, close_in_new_york(EXPIRY)) == at_expiry.quantize(D("0.01"))


@given(verticals(), st.integers(1, 300).map(lambda n: D(n)))
def test_a_verticals_value_today_stays_between_its_max_loss_and_max_profit(position, spot):
    position = position_priced(position, lambda leg: (leg.premium, 0.25))
    risk = spread_risk(position)
    assert -risk.max_loss - D("0.01") <= model_pnl(position, spot, MODEL) <= risk.max_profit + D("0.01")


# --- each template by hand ------------------------------------------------------------------------

def test_a_call_debit_spread_spy_500_505_for_2_10():
    position = priced(vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=500, upper=505),
                      {D(500): D("4.00"), D(505): D("1.90")})
    assert [(leg.side, leg.strike) for leg in position.legs] == [(LONG, 500), (SHORT, 505)]
    risk = spread_risk(position)
    assert (risk.net_premium, risk.cost, risk.width) == (D("2.10"), D("210"), D(5))
    assert (risk.max_profit, risk.max_loss, risk.breakevens) == (D("290"), D("210"), (D("502.10"),))
    assert (risk.defined_risk, risk.buying_power, risk.buying_power_rule) == (True, D("210"), DEFINED_RISK)
    assert spread_risk(SpreadPosition(position.legs, 3)).max_profit == D("870")


def test_a_call_credit_spread_is_the_same_strikes_sold():
    position = priced(vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=500, upper=505, credit=True),
                      {D(500): D("4.00"), D(505): D("1.90")})
    assert [(leg.side, leg.strike) for leg in position.legs] == [(LONG, 505), (SHORT, 500)]
    risk = spread_risk(position)
    assert (risk.cost, risk.credit, risk.max_profit, risk.max_loss) == (D("-210"), D("210"), D("210"), D("290"))
    assert (risk.breakevens, risk.buying_power) == ((D("502.10"),), D("290"))  # 5 × 100 − 210


def test_a_put_credit_spread_sells_the_upper_put():
    position = priced(vertical(root="SPY", expiry=EXPIRY, option_type=PUT, lower=495, upper=500, credit=True),
                      {D(500): D("3.00"), D(495): D("1.20")})
    assert [(leg.side, leg.strike) for leg in position.legs] == [(LONG, 495), (SHORT, 500)]
    risk = spread_risk(position)
    assert (risk.max_profit, risk.max_loss, risk.breakevens, risk.buying_power) == (
        D("180"), D("320"), (D("498.20"),), D("320"))


def test_a_put_debit_spread_buys_the_upper_put():
    position = priced(vertical(root="SPY", expiry=EXPIRY, option_type=PUT, lower=500, upper=505),
                      {D(505): D("4.50"), D(500): D("2.30")})
    risk = spread_risk(position)
    assert (risk.max_profit, risk.max_loss, risk.breakevens, risk.buying_power) == (
        D("280"), D("220"), (D("502.80"),), D("220"))


def test_a_long_straddle_loses_at_most_its_debit_and_profits_without_limit():
    position = priced(straddle(root="SPY", expiry=EXPIRY, strike=500, quantity=2),
                      {(CALL, D(500)): D("6.00"), (PUT, D(500)): D("5.00")})
    risk = spread_risk(position)
    assert (risk.max_profit, risk.max_loss, risk.breakevens) == (None, D("2200"), (D(489), D(511)))
    assert (risk.buying_power, risk.buying_power_rule, risk.width) == (D("2200"), LONG_ONLY, D(0))


def test_a_short_straddle_is_short_premium_without_defined_risk():
    position = priced(straddle(root="SPY", expiry=EXPIRY, strike=500, short=True),
                      {(CALL, D(500)): D("6.00"), (PUT, D(500)): D("5.00")})
    risk = spread_risk(position)
    assert (risk.max_profit, risk.max_loss, risk.breakevens) == (D("1100"), None, (D(489), D(511)))
    assert (risk.defined_risk, risk.buying_power, risk.buying_power_rule) == (False, None, NOT_DEFINED_RISK)


def test_a_strangle_long_and_short():
    premiums = {D(495): D("3.00"), D(505): D("3.50")}
    long = spread_risk(priced(strangle(root="SPY", expiry=EXPIRY, put_strike=495, call_strike=505), premiums))
    assert (long.max_profit, long.max_loss, long.breakevens) == (None, D("650"), (D("488.50"), D("511.50")))
    short = spread_risk(priced(strangle(root="SPY", expiry=EXPIRY, put_strike=495, call_strike=505, short=True),
                               premiums))
    assert (short.max_profit, short.max_loss, short.defined_risk) == (D("650"), None, False)


def test_an_iron_condor_490_495_505_510_for_a_2_20_credit():
    position = priced(iron_condor(root="SPY", expiry=EXPIRY, long_put=490, short_put=495, short_call=505,
                                  long_call=510, quantity=3),
                      {D(490): D("1.00"), D(495): D("2.00"), D(505): D("2.10"), D(510): D("0.90")})
    risk = spread_risk(position)
    assert (risk.credit, risk.max_profit, risk.max_loss) == (D("660"), D("660"), D("840"))
    assert (risk.breakevens, risk.width, risk.buying_power) == ((D("492.80"), D("507.20")), D(5), D("840"))


def test_an_iron_condor_with_a_wider_put_wing_reserves_that_wing():
    position = priced(iron_condor(root="SPY", expiry=EXPIRY, long_put=485, short_put=495, short_call=505,
                                  long_call=510),
                      {D(485): D("0.50"), D(495): D("2.00"), D(505): D("2.10"), D(510): D("0.90")})
    risk = spread_risk(position)
    assert (risk.width, risk.credit, risk.max_profit) == (D(10), D("270"), D("270"))
    assert (risk.max_loss, risk.buying_power, risk.breakevens) == (D("730"), D("730"), (D("492.30"), D("507.70")))


def test_a_call_butterfly_495_500_505_for_a_dollar():
    position = priced(butterfly(root="SPY", expiry=EXPIRY, option_type=CALL, lower=495, middle=500, upper=505),
                      {D(495): D("7.00"), D(500): D("4.00"), D(505): D("2.00")})
    assert [(leg.side, leg.ratio) for leg in position.legs] == [(LONG, 1), (SHORT, 2), (LONG, 1)]
    risk = spread_risk(position)
    assert (risk.cost, risk.max_profit, risk.max_loss) == (D("100"), D("400"), D("100"))
    assert (risk.breakevens, risk.width, risk.defined_risk, risk.buying_power) == (
        (D(496), D(504)), D(5), True, D("100"))


def test_a_breakeven_that_is_not_a_finite_decimal_is_given_to_a_hundredth_of_a_cent():
    legs = (SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG, ratio=3, premium="1.00"),)  # 3.00 debit, slope 300
    position = SpreadPosition((*legs, SpreadLeg.of("SPY", PUT, 490, EXPIRY, LONG, premium="0.01")), 1)
    assert expiry_breakevens(expiry_payoff(position)) == (D("486.99"), D("501.0033"))


def test_a_calendar_loses_its_debit_at_most_and_its_max_profit_comes_from_the_model():
    position = calendar(root="SPY", option_type=CALL, strike=500, front_expiry=EXPIRY, back_expiry=BACK)
    assert [(leg.side, leg.expiry) for leg in position.legs] == [(SHORT, EXPIRY), (LONG, BACK)]
    position = position_priced(position, lambda leg: (D("4.00") if leg.expiry == EXPIRY else D("6.50"), 0.16))
    risk = spread_risk(position, MODEL)
    front = close_in_new_york(EXPIRY)
    years = (close_in_new_york(BACK) - front).total_seconds() / (365 * 86400)
    back_at_the_strike = black_scholes(spot=500, strike=500, years=years, vol=0.16, rate=0.04, is_call=True).price
    assert (risk.modelled, risk.cost, risk.max_loss, risk.buying_power, risk.width) == (
        True, D("250"), D("250"), D("250"), D(0))
    at_the_strike = (D(repr(back_at_the_strike)) - D("2.50")) * 100
    assert at_the_strike - D("0.01") <= risk.max_profit <= at_the_strike + D("5")  # the peak is near the strike
    low, high = risk.breakevens
    assert low < 500 < high
    for breakeven in risk.breakevens:  # each to the cent: the model changes sign within a cent of it
        below, above = (model_pnl(position, breakeven + shift, MODEL, front) for shift in (D("-0.01"), D(0)))
        assert below * above <= 0
    with pytest.raises(ValueError):
        spread_risk(position)  # two expiries need the model


def test_a_calendar_sold_the_other_way_round_is_not_defined_risk():
    legs = (SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG), SpreadLeg.of("SPY", CALL, 500, BACK, SHORT))
    assert not is_defined_risk(SpreadPosition(legs))


def test_single_options_are_the_one_leg_case():
    long_call = spread_risk(SpreadPosition((SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG, premium="4.30"),)))
    assert (long_call.max_profit, long_call.max_loss, long_call.breakevens) == (None, D("430"), (D("504.30"),))
    short_put = spread_risk(SpreadPosition((SpreadLeg.of("SPY", PUT, 500, EXPIRY, SHORT, premium="3.00"),)))
    # Its loss is bounded (the stock stops at 0) but it is naked all the same.
    assert (short_put.max_profit, short_put.max_loss, short_put.defined_risk, short_put.buying_power) == (
        D("300"), D("49700"), False, None)


def test_a_leg_from_its_occ_symbol():
    leg = SpreadLeg.from_symbol("SPY261218C00505000", SHORT, ratio=2, premium="1.90")
    assert (leg.option_type, leg.strike, leg.expiry, leg.sign, leg.symbol) == (
        CALL, D(505), EXPIRY, -1, "SPY261218C00505000")
    assert leg.text() == "short 2 SPY Dec 18, 2026 505 calls"


# --- today: Black–Scholes and net greeks -----------------------------------------------------------

def test_net_greeks_are_the_legs_greeks_signed_and_times_100_per_spread():
    position = priced(vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=500, upper=505, quantity=2),
                      {D(500): D("4.00"), D(505): D("1.90")}, iv=0.18)
    years = (close_in_new_york(EXPIRY) - NOW).total_seconds() / (365 * 86400)
    bought, sold = (black_scholes(spot=502, strike=strike, years=years, vol=0.18, rate=0.04, is_call=True)
                    for strike in (500, 505))
    greeks = net_greeks(position, D(502), MODEL)
    assert greeks.delta == pytest.approx(200 * (bought.delta - sold.delta))
    assert greeks.theta == pytest.approx(200 * (bought.theta - sold.theta))
    assert 0 < greeks.delta < 200


def test_a_long_straddle_is_long_gamma_and_pays_theta_and_the_short_one_the_reverse():
    premiums = {(CALL, D(500)): D("6.00"), (PUT, D(500)): D("5.00")}
    bought = net_greeks(priced(straddle(root="SPY", expiry=EXPIRY, strike=500), premiums), D(500), MODEL)
    sold = net_greeks(priced(straddle(root="SPY", expiry=EXPIRY, strike=500, short=True), premiums), D(500), MODEL)
    assert bought.gamma > 0 and bought.theta < 0 and bought.vega > 0 and abs(bought.delta) < 15
    assert (sold.gamma, sold.theta, sold.vega) == pytest.approx((-bought.gamma, -bought.theta, -bought.vega))


def test_the_chart_has_both_lines_over_a_grid_that_holds_every_strike():
    position = priced(iron_condor(root="SPY", expiry=EXPIRY, long_put=490, short_put=495, short_call=505,
                                  long_call=510),
                      {D(490): D("1.00"), D(495): D("2.00"), D(505): D("2.10"), D(510): D("0.90")})
    grid = price_grid(position, D("501.37"))
    assert {D(490), D(495), D(505), D(510), D("501.37")} <= set(grid) and grid == tuple(sorted(grid))
    points = payoff_curve(position, grid, MODEL)
    assert [point.at_expiry for point in points] == [legs_pnl(position, price) for price in grid]
    assert all(D(-280) <= point.today <= D(220) for point in points)
    assert all(point.today is None for point in payoff_curve(position, grid))


def test_the_model_needs_each_live_legs_implied_volatility():
    position = vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=500, upper=505)
    with pytest.raises(InvalidTradeInput) as refused:
        model_pnl(position, D(500), MODEL)
    assert "SPY Dec 18, 2026 500 call has no implied volatility" in str(refused.value)


# --- refusals in trader words ----------------------------------------------------------------------

SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
REFUSALS = [
    (lambda: iron_condor(root="SPY", expiry=EXPIRY, long_put=500, short_put=495, short_call=505, long_call=510),
     "long_put", "The put wing is out of order: the bought put (500) must be below the sold put (495)."),
    (lambda: iron_condor(root="SPY", expiry=EXPIRY, long_put=490, short_put=495, short_call=505, long_call=500),
     "long_call", "The call wing is out of order: the bought call (500) must be above the sold call (505)."),
    (lambda: iron_condor(root="SPY", expiry=EXPIRY, long_put=490, short_put=505, short_call=500, long_call=510),
     "short_call", "The sold call (500) must be above the sold put (505); at one strike it is an iron butterfly."),
    (lambda: vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=505, upper=500),
     "upper", "The upper strike (500) must be above the lower strike (505)."),
    (lambda: strangle(root="SPY", expiry=EXPIRY, put_strike=505, call_strike=500),
     "call_strike", "A strangle's call strike (500) must be above its put strike (505); at one strike it is a "
                    "straddle."),
    (lambda: butterfly(root="SPY", expiry=EXPIRY, option_type=PUT, lower=495, middle=505, upper=500),
     "middle", "A butterfly's strikes must rise from the lower wing (495) through the body (505) to the upper "
               "wing (500)."),
    (lambda: calendar(root="SPY", option_type=CALL, strike=500, front_expiry=BACK, back_expiry=EXPIRY),
     "back_expiry", "The month bought (Dec 18, 2026) must expire after the month sold (Jan 15, 2027)."),
    (lambda: vertical(root="SPY", expiry=EXPIRY, option_type=CALL, lower=500, upper=507.5,
                      chain_strikes=[D(500), D(505), D(510)]),
     "upper", "There is no 507.5 strike on the SPY chain for Dec 18, 2026."),
    (lambda: SpreadPosition((SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG), SpreadLeg.of("SPY", CALL, 500, EXPIRY,
                                                                                         SHORT))),
     "legs", "The SPY Dec 18, 2026 500 call is in the position twice; give one leg its number of contracts "
             "instead."),
    (lambda: SpreadPosition((SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG), SpreadLeg.of("QQQ", CALL, 500, EXPIRY,
                                                                                         SHORT))),
     "legs", "All legs must be on one underlying."),
    (lambda: SpreadPosition((SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG),), quantity=0),
     "quantity", "The quantity must be a whole number of spreads, at least 1."),
    (lambda: SpreadPosition((SpreadLeg.of("SPY", CALL, 500, EXPIRY, LONG, ratio=0),)),
     "legs", "The SPY Dec 18, 2026 500 call needs a whole number of contracts per spread, at least 1."),
    (lambda: SpreadPosition(()), "legs", "A position needs at least one leg."),
    (lambda: SpreadPosition((SpreadLeg.of("SPY", "STOCK", 500, EXPIRY, LONG),)),
     "legs", "Option type 'STOCK' must be CALL or PUT."),
    (lambda: SpreadLeg.from_symbol("SPY261218X00505000", LONG),
     "legs", "'SPY261218X00505000' is not an OCC option symbol like SPY260116C00570000."),
]


@pytest.mark.parametrize(("build", "field", "message"), REFUSALS)
def test_a_wrong_position_is_refused_in_trader_words(build, field, message):
    with pytest.raises(InvalidTradeInput) as refused:
        build()
    assert refused.value.field_errors[field] == [message]
    assert not SNAKE.search(message) and not ISO_DATE.search(message)


def test_strikes_the_chain_lists_pass():
    position = vertical(root="SPY", expiry=EXPIRY, option_type=PUT, lower="507.5", upper=510,
                        chain_strikes=[D("507.5"), D(510)])
    assert {leg.strike for leg in position.legs} == {D("507.5"), D(510)}
