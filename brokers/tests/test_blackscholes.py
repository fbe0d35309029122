"""`black_scholes_many` is `black_scholes` over arrays, bit for bit: the simulated market's quotes
round its floats onto ticks and greeks, so an ulp of difference could move a price by a cent."""

import math
import random

import numpy as np

from brokers.blackscholes import black_scholes, black_scholes_many, each, larger, smaller

FIELDS = ("price", "delta", "gamma", "theta", "vega")


def _book(count: int, seed: int):
    draw = random.Random(seed)
    rows = []
    for _ in range(count):
        spot = math.exp(draw.uniform(math.log(0.5), math.log(25000)))
        strike = round(spot * math.exp(draw.uniform(-2.5, 2.5)) / 0.5) * 0.5 or 0.5
        years = draw.choice((0.0, -0.01, 1e-9, 1 / 365 / 390, 1 / 365, 7 / 365, 0.25, 1.0, 2.7, draw.random() * 3))
        vol = draw.choice((0.0, 0.01, 0.16, 0.5, 1.8, 0.3 * draw.random() + 0.05))
        rows.append((spot, strike, years, vol, draw.random() < 0.5))
    return rows


def test_every_field_is_bit_identical_to_the_scalar_formula_for_each_contract():
    rows = _book(20000, seed=11)
    spot, strike, years, vol = (np.array([row[index] for row in rows]) for index in range(4))
    is_call = np.array([row[4] for row in rows])
    many = black_scholes_many(spot=spot, strike=strike, years=years, vol=vol, rate=0.04, is_call=is_call)
    differing = []
    for index, (s, k, t, v, call) in enumerate(rows):
        one = black_scholes(spot=s, strike=k, years=t, vol=v, rate=0.04, is_call=call)
        for field in FIELDS:
            expected, got = getattr(one, field), float(getattr(many, field)[index])
            if expected.hex() != got.hex():  # .hex(): -0.0 and 0.0 differ too
                differing.append((index, field, expected, got))
    assert differing == []
    assert (many.price == 0).any() and (many.gamma == 0).any() and (many.gamma > 0).any()  # both branches ran


def test_an_empty_book_prices_to_empty_arrays():
    many = black_scholes_many(spot=np.array([]), strike=np.array([]), years=np.array([]), vol=np.array([]),
                              rate=0.04, is_call=np.array([], dtype=bool))
    assert all(len(getattr(many, field)) == 0 for field in FIELDS)


def test_the_helpers_follow_python_max_min_and_math():
    first, second = np.array([-0.0, 1.0, 2.0, 0.0]), np.array([0.0, 1.0, 1.0, -0.0])
    assert [value.hex() for value in larger(first, second).tolist()] == [
        max(a, b).hex() for a, b in zip(first.tolist(), second.tolist(), strict=True)]
    assert [value.hex() for value in smaller(first, second).tolist()] == [
        min(a, b).hex() for a, b in zip(first.tolist(), second.tolist(), strict=True)]
    values = np.linspace(-30, 30, 1001)
    assert each(math.exp, values).tolist() == [math.exp(value) for value in values.tolist()]
