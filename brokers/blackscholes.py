"""Black–Scholes prices and greeks in plain floats (math.erf): one formula for every layer.

It lives here, in the lowest app, because two layers price options with it: monitoring's simulated
market (re-exported as `monitoring.marketdata.pricing`) and trades' strategy builder (payoff today
and net greeks of a spread, `trades.spreads`); imports flow monitoring → trades → brokers.

Floats are right here: these are model values, turned into Decimal prices only once they are
rounded to a quote. Units follow the market-data quotes (monitoring/marketdata/base.py): theta per
calendar day, vega per volatility point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
