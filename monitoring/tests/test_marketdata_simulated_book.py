"""The simulated market quotes a book as arrays (`SimulatedProvider.option_quotes`, `_quote_book`)
and one contract at a time (`_option_quote`, which option bars use). Many tests pin simulated
prices, so the two must agree exactly: every Decimal with its exponent and sign, every int, the
quote time. These tests compare them over wide books, and the float-to-Decimal shortcuts of
`exact_decimals` against the scalar conversions at and around tick and rounding boundaries."""

import random
from dataclasses import fields
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.occ import ROOT_UNDERLYINGS, build_symbol
from monitoring.marketdata.base import as_contracts, greek
from monitoring.marketdata.exact_decimals import quantized
from monitoring.marketdata.simulated import (
    CENT,
    NICKEL,
    PROFILES,
    VIX,
    Market,
    SimulatedProvider,
    _cents_many,
    _spreads_many,
    _to_tick,
    profile,
    spread,
)

NY = ZoneInfo("America/New_York")
MOMENTS = {
    "mid-session": datetime(2026, 6, 17, 11, 0, 30, tzinfo=NY),
    "at the open": datetime(2026, 6, 17, 9, 30, tzinfo=NY),
    "before the open": datetime(2026, 6, 17, 8, 0, tzinfo=NY),
    "a second before the close": datetime(2026, 6, 17, 15, 59, 59, tzinfo=NY),
    "after the close": datetime(2026, 6, 17, 18, 30, tzinfo=NY),
    "on a Saturday": datetime(2026, 6, 20, 12, 0, tzinfo=NY),
    "on a holiday (Juneteenth)": datetime(2026, 6, 19, 12, 0, tzinfo=NY),
    "early close, after it": datetime(2026, 11, 27, 14, 0, tzinfo=NY),
    "early close, before it": datetime(2026, 11, 27, 12, 59, tzinfo=NY),
    "expiry Friday, midday": datetime(2026, 7, 17, 12, 0, tzinfo=NY),
    "expiry Friday, after the close": datetime(2026, 7, 17, 17, 0, tzinfo=NY),
}
# Roots that quote another ticker (SPXW on SPX, VIXW on VIX) and tickers outside the table.
TICKERS = [*sorted(PROFILES), VIX, *ROOT_UNDERLYINGS, "ZQXR", "QQQQ", "AB1"]
MONEYNESS = (0.02, 0.3, 0.6, 0.85, 0.95, 0.99, 1.0, 1.01, 1.05, 1.15, 1.4, 2.0, 4.0, 12.0)


def _identical(first, second) -> list[str]:
    """The fields whose repr differs: Decimal('1.20') against Decimal('1.2'), or -0E-6 against 0E-6, count."""
    return [field.name for field in fields(first)
            if repr(getattr(first, field.name)) != repr(getattr(second, field.name))]


def _per_contract(provider: SimulatedProvider, symbols) -> dict:
    at = provider.clock()
    spots: dict = {}
    vix = provider.market.spot(VIX, at)
    return {symbol: provider._option_quote(contract, at, spots, vix)
            for symbol, contract in as_contracts(symbols).items()}


def _differences(provider: SimulatedProvider, symbols) -> list:
    book, reference = provider.option_quotes(symbols), _per_contract(provider, symbols)
    assert list(book) == list(reference)
    return [(symbol, _identical(book[symbol], reference[symbol])) for symbol in reference
            if _identical(book[symbol], reference[symbol])]


def _strikes(spot: float) -> list[Decimal]:
    strikes = set()
    for factor in MONEYNESS:
        raw = spot * factor
        for step in (Decimal("0.5"), Decimal("1"), Decimal("0.001")):
            strike = (Decimal(repr(raw)) / step).quantize(Decimal(1)) * step
            if Decimal("0.001") <= strike <= Decimal("99999"):
                strikes.add(strike)
    return sorted(strikes)


def _book(at: datetime) -> list[str]:
    quotes = SimulatedProvider(clock=lambda: at).underlying_quotes(ROOT_UNDERLYINGS[root] if root in ROOT_UNDERLYINGS
                                                                   else root for root in TICKERS)
    day = at.date()
    expiries = sorted({day - timedelta(days=3), day, day + timedelta(days=1), day + timedelta(days=2),
                       date(2026, 6, 19), date(2026, 7, 17), day + timedelta(days=45), day + timedelta(days=400),
                       day + timedelta(days=900)})
    symbols = []
    for root in TICKERS:
        spot = float(quotes[ROOT_UNDERLYINGS.get(root, root)].last)
        for strike in _strikes(spot):
            for expiry in expiries:
                symbols += [build_symbol(root, expiry, "CALL", strike), build_symbol(root, expiry, "PUT", strike)]
    return symbols


def test_a_wide_book_quotes_identically_to_the_per_contract_path():
    """Every listed ticker and some that are not, index roots, strikes from 2 % to 12 times the
    spot on three grids, expiries from three days gone to two and a half years out."""
    at = MOMENTS["mid-session"]
    symbols = _book(at)
    assert len(symbols) > 20000
    provider = SimulatedProvider(seed="book", clock=lambda: at)
    assert _differences(provider, symbols) == []
    quotes = provider.option_quotes(symbols).values()
    # The book reaches the corners it is meant to: worthless and deep in-the-money, expired (no IV).
    assert any(quote.bid == 0 for quote in quotes) and any(quote.last > 1000 for quote in quotes)
    assert any(quote.iv is None for quote in quotes) and any(quote.iv is not None for quote in quotes)


@pytest.mark.parametrize("moment", [moment for moment in MOMENTS if moment != "mid-session"])
def test_a_sample_of_the_book_quotes_identically_at_every_kind_of_moment(moment):
    at = MOMENTS[moment]
    symbols = random.Random(moment).sample(_book(at), 3000)
    provider = SimulatedProvider(seed="book", clock=lambda: at)
    assert _differences(provider, symbols) == []
    assert any(quote.iv is None for quote in provider.option_quotes(symbols).values())  # expired ones too


def test_contracts_given_as_objects_and_duplicates_key_as_before():
    at = MOMENTS["mid-session"]
    provider = SimulatedProvider(clock=lambda: at)
    symbols = _book(at)[:400]
    contracts = list(as_contracts(symbols).values())
    mixed = [*contracts[:200], *symbols[100:], *symbols[:50]]
    assert _differences(provider, mixed) == []
    assert list(provider.option_quotes(mixed)) == list(as_contracts(mixed))
    assert provider.option_quotes([]) == {}


@settings(max_examples=40, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2026, 1, 5), max_value=datetime(2026, 12, 28),  # noqa: DTZ001
                    timezones=st.just(NY)),
    root=st.sampled_from(TICKERS),
    days=st.integers(min_value=-5, max_value=800),
    moneyness=st.floats(min_value=0.01, max_value=20.0),
    seed=st.sampled_from(["tradeoptions", "other"]),
)
def test_any_moment_ticker_and_strike_quote_identically(at, root, days, moneyness, seed):
    provider = SimulatedProvider(seed=seed, clock=lambda: at)
    ticker = ROOT_UNDERLYINGS.get(root, root)
    spot = float(provider.underlying_quotes([ticker])[ticker].last)
    expiry = at.date() + timedelta(days=days)
    strikes = {(Decimal(repr(spot * moneyness)) / step).quantize(Decimal(1)) * step
               for step in (Decimal("0.5"), Decimal("0.01"))}
    symbols = [build_symbol(root, expiry, kind, strike) for strike in strikes if 0 < strike < 99999
               for kind in ("CALL", "PUT")]
    assert _differences(provider, symbols) == []


def _near_boundaries(draw: random.Random) -> list[float]:
    """Values on, a few ulps off, and well between the tick grid and the half-ticks."""
    values = [0.0, 3.0, 2.995, 0.285, 0.29, 0.07, 1e-9, 5000.005]
    for _ in range(4000):
        cents = draw.randrange(0, 2_000_000) / 2
        value = cents / 100
        values += [value, np.nextafter(value, 0), np.nextafter(value, 1e9), draw.uniform(0, 20000),
                   draw.uniform(0, 3.5)]
    return [float(value) for value in values]


@pytest.mark.parametrize("rounding", [ROUND_FLOOR, ROUND_CEILING, ROUND_HALF_EVEN])
@pytest.mark.parametrize("penny", [False, True])
def test_values_round_to_ticks_exactly_as_to_tick_does(rounding, penny):
    values = _near_boundaries(random.Random(3))
    cents = _cents_many(np.array(values), np.full(len(values), penny), rounding)
    expected = [_to_tick(value, CENT if penny or value < 3 else NICKEL, rounding) for value in values]
    assert [Decimal(amount).scaleb(-2) for amount in cents.tolist()] == expected


def test_greeks_quantize_exactly_as_greek_does():
    draw = random.Random(5)
    values = [0.0, -0.0, 5e-7, -5e-7, 2.5e-6, 1e-300, -1e-9, 0.1234565, float("nan"), float("inf")]
    for _ in range(20000):
        magnitude = 10 ** draw.uniform(-9, 4)
        micro = draw.randrange(-10**9, 10**9)
        values += [draw.choice((-1, 1)) * magnitude, (micro + 0.5) / 1e6, micro / 1e6,
                   float(np.nextafter((micro + 0.5) / 1e6, 0))]
    got = quantized(np.array(values), 6, greek)
    assert [repr(value) for value in got] == [repr(greek(value)) for value in values]


def test_a_symbol_keys_itself_and_one_with_non_ascii_digits_its_ascii_spelling():
    """`as_contracts` no longer rebuilds an ASCII symbol; it must still key every contract by its
    canonical symbol, so a symbol written with Arabic-Indic digits (`\\d` matches them) is rebuilt."""
    ascii_symbol = "SPY260116C00570000"
    arabic = ascii_symbol[:3] + "".join(chr(0x0660 + int(digit)) if digit.isdigit() else digit
                                        for digit in ascii_symbol[3:])
    book = as_contracts([ascii_symbol, arabic, "SPXW261218P05900500"])
    assert list(book) == [ascii_symbol, "SPXW261218P05900500"]
    assert all(contract.symbol == symbol for symbol, contract in book.items())


def _surface_points(count: int):
    draw = random.Random(9)
    for _ in range(count):
        symbol = draw.choice([*sorted(PROFILES), VIX, "ZQXR"])
        spot = draw.uniform(5, 6000)
        yield (symbol, spot * draw.uniform(0.05, 8), draw.choice((0.0, 1e-7, 1 / 365, draw.uniform(0, 3))), spot,
               draw.uniform(9, 80))


def test_the_iv_surface_as_arrays_is_bit_identical_to_implied_vol():
    """Bit for bit, not just to the six places a quote shows: an ulp off would only show in a
    quote now and then (numpy's exp here changes no quote of a 20,000-contract book)."""
    market = Market("book")
    for vix in (9.0, 18.0, 75.0):
        points = [point[:4] for point in _surface_points(5000)]
        symbols, strikes, years, spots = zip(*points, strict=True)
        got = market.implied_vols(np.array([symbol == VIX for symbol in symbols]),
                                  np.array([profile(symbol)[1] for symbol in symbols]),
                                  np.array(strikes), np.array(years), np.array(spots), vix)
        expected = [market.implied_vol(*point, vix) for point in points]
        assert [value.hex() for value in got.tolist()] == [value.hex() for value in expected]


@pytest.mark.parametrize("penny", [False, True])
def test_spreads_as_arrays_are_the_spread_of_each_contract(penny):
    draw = random.Random(13)
    theoretical = [0.0, 0.005, 0.01, 0.29, 0.5, 2.99, 3.0, 3.02, *(draw.uniform(0, 50) for _ in range(20000)),
                   *(draw.randrange(0, 5000) / 100 for _ in range(5000))]
    delta = [draw.uniform(-1, 1) for _ in theoretical]
    symbol = "SPY" if penny else "AAPL"
    bid, ask = _spreads_many(np.full(len(theoretical), penny), np.array(theoretical), np.array(delta))
    got = [(Decimal(b).scaleb(-2), Decimal(a).scaleb(-2)) for b, a in zip(bid.tolist(), ask.tolist(), strict=True)]
    assert got == [spread(symbol, value, d) for value, d in zip(theoretical, delta, strict=True)]
