"""Black–Scholes prices and greeks in plain floats (math.erf): one formula for every layer.

It lives here, in the lowest app, because two layers price options with it: monitoring's simulated
market (re-exported as `monitoring.marketdata.pricing`) and trades' strategy builder (payoff today
and net greeks of a spread, `trades.spreads`); imports flow monitoring → trades → brokers.

Floats are right here: these are model values, turned into Decimal prices only once they are
rounded to a quote. Units follow the market-data quotes (monitoring/marketdata/base.py): theta per
calendar day, vega per volatility point.

`black_scholes_many` prices a whole book at once with numpy, for the simulated market's quotes. It
is the same formula, not a second model: every float operation is the scalar one in the same order
(numpy's + - * / and sqrt are IEEE-correctly rounded, as Python's are), and exp, log and erf go
through `math` element by element, because numpy's own exp differs from libm's in the last bit for
a few percent of inputs. So each element is bit-identical to `black_scholes` on the same floats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SQRT2 = math.sqrt(2.0)
SQRT2PI = math.sqrt(2.0 * math.pi)
DAYS_PER_YEAR = 365.0


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / SQRT2))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / SQRT2PI


@dataclass(frozen=True)
class Valuation:
    price: float
    delta: float
    gamma: float
    theta: float
    vega: float


def black_scholes(*, spot: float, strike: float, years: float, vol: float, rate: float, is_call: bool) -> Valuation:
    """European value and greeks; at or after expiry (years <= 0) the intrinsic value."""
    if years <= 0 or vol <= 0:
        intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
        in_the_money = intrinsic > 0
        delta = (1.0 if is_call else -1.0) if in_the_money else 0.0
        return Valuation(price=intrinsic, delta=delta, gamma=0.0, theta=0.0, vega=0.0)
    root = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * years) / (vol * root)
    d2 = d1 - vol * root
    discount = math.exp(-rate * years)
    pdf = norm_pdf(d1)
    gamma = pdf / (spot * vol * root)
    vega = spot * pdf * root / 100.0
    decay = -spot * pdf * vol / (2.0 * root)
    if is_call:
        value = spot * norm_cdf(d1) - strike * discount * norm_cdf(d2)
        delta = norm_cdf(d1)
        theta = decay - rate * strike * discount * norm_cdf(d2)
    else:
        value = strike * discount * norm_cdf(-d2) - spot * norm_cdf(-d1)
        delta = norm_cdf(d1) - 1.0
        theta = decay + rate * strike * discount * norm_cdf(-d2)
    return Valuation(price=max(value, 0.0), delta=delta, gamma=gamma, theta=theta / DAYS_PER_YEAR, vega=vega)


@dataclass(frozen=True)
class Valuations:
    """`Valuation` for a book of contracts: one float64 array per field, in the input's order."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta: np.ndarray
    vega: np.ndarray


def each(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    """`function` (a `math` function) applied element by element: libm's exact result for each, at
    about 0.1 µs an element, where numpy's vectorised exp would differ in the last bit now and then."""
    return np.fromiter(map(function, values.tolist()), dtype=np.float64, count=len(values))


def larger(first, second):
    """Python's `max(first, second)` element-wise, down to which of two equal zeros it returns."""
    return np.where(second > first, second, first)


def smaller(first, second):
    """Python's `min(first, second)` element-wise."""
    return np.where(second < first, second, first)


def _norm_cdf_many(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + each(math.erf, values / SQRT2))


def black_scholes_many(*, spot: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray, rate: float,
                       is_call: np.ndarray) -> Valuations:
    """`black_scholes` for arrays of contracts (is_call a boolean array), element by element identical."""
    spot, strike, years, vol = (np.asarray(array, dtype=np.float64) for array in (spot, strike, years, vol))
    is_call = np.asarray(is_call, dtype=bool)
    expired = (years <= 0) | (vol <= 0)
    intrinsic = larger(np.where(is_call, spot - strike, strike - spot), 0.0)
    price = intrinsic.copy()
    delta = np.where(intrinsic > 0, np.where(is_call, 1.0, -1.0), 0.0)
    gamma, theta, vega = np.zeros(len(spot)), np.zeros(len(spot)), np.zeros(len(spot))
    live = np.flatnonzero(~expired)
    if len(live):
        s, k, t, v, call = spot[live], strike[live], years[live], vol[live], is_call[live]
        root = np.sqrt(t)
        d1 = (each(math.log, s / k) + (rate + 0.5 * v * v) * t) / (v * root)
        d2 = d1 - v * root
        discount = each(math.exp, -rate * t)
        pdf = each(math.exp, -0.5 * d1 * d1) / SQRT2PI
        decay = -s * pdf * v / (2.0 * root)
        cdf_d1, cdf_d2 = _norm_cdf_many(d1), _norm_cdf_many(d2)
        cdf_minus_d1, cdf_minus_d2 = _norm_cdf_many(-d1), _norm_cdf_many(-d2)
        value = np.where(call, s * cdf_d1 - k * discount * cdf_d2, k * discount * cdf_minus_d2 - s * cdf_minus_d1)
        price[live] = larger(value, 0.0)
        delta[live] = np.where(call, cdf_d1, cdf_d1 - 1.0)
        gamma[live] = pdf / (s * v * root)
        vega[live] = s * pdf * root / 100.0
        theta[live] = np.where(call, decay - rate * k * discount * cdf_d2, decay + rate * k * discount * cdf_minus_d2) \
            / DAYS_PER_YEAR
    return Valuations(price=price, delta=delta, gamma=gamma, theta=theta, vega=vega)
