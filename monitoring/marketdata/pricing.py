"""Black–Scholes for the simulated market: the one formula lives in `brokers.blackscholes`, below
trades, so that trades' strategy builder can price with it too; this module keeps the name the
market-data code and its tests import."""

from brokers.blackscholes import DAYS_PER_YEAR, SQRT2, SQRT2PI, Valuation, black_scholes, norm_cdf, norm_pdf

__all__ = ["DAYS_PER_YEAR", "SQRT2", "SQRT2PI", "Valuation", "black_scholes", "norm_cdf", "norm_pdf"]
