"""The simulated market's invariants: arbitrage-free within the spread, sane greeks, spreads that
never invert and sit on the tick grid, determinism across processes, and a clock that drives it."""

import json
import math
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.occ import build_symbol
from monitoring import clock
from monitoring.marketdata.simulated import (
    RATE,
    REFERENCE_DAY,
    SECTOR_ETFS,
    YEAR_SECONDS,
    Market,
    SimulatedProvider,
    option_tick,
    spread,
)

NY = ZoneInfo("America/New_York")
MIDDAY = datetime(2026, 6, 17, 11, 0, tzinfo=NY)
ROOT = Path(__file__).resolve().parents[2]


def provider(at, seed="tradeoptions"):
    return SimulatedProvider(seed=seed, clock=lambda: at)


def chain(simulated, ticker, expiry, count=9, step=0.04):
    spot = float(simulated.underlying_quotes([ticker])[ticker].last)
    strikes = sorted({Decimal(round(spot * (1 + step * k))) for k in range(-count // 2, count // 2 + 1)})
    symbols = {k: (build_symbol(ticker, expiry, "CALL", k), build_symbol(ticker, expiry, "PUT", k)) for k in strikes}
    quotes = simulated.option_quotes([s for pair in symbols.values() for s in pair])
    return [(k, quotes[c], quotes[p]) for k, (c, p) in symbols.items()]


# Hypothesis takes naive bounds and attaches the zone itself.
moments = st.datetimes(
    min_value=datetime(2026, 3, 2), max_value=datetime(2026, 12, 30), timezones=st.just(NY)  # noqa: DTZ001
)


@settings(max_examples=60, deadline=None)
@given(at=moments, ticker=st.sampled_from(["SPY", "AAPL", "TSLA", "XLF", "F", "ZQXR"]),
       days=st.integers(min_value=0, max_value=400))
def test_put_call_parity_holds_within_the_spread(at, ticker, days):
    expiry = clock.market_date(at) + timedelta(days=days)
    for strike, call, put in chain(provider(at), ticker, expiry):
        years = max((clock.expiry_cutoff(expiry) - call.quote_time).total_seconds() / YEAR_SECONDS, 0)
        forward_gap = float(call.underlying_price) - float(strike) * math.exp(-RATE * years)
        tolerance = 0.006  # the underlying is shown rounded to the cent
        assert float(call.bid - put.ask) <= forward_gap + tolerance, (strike, call, put)
        assert float(call.ask - put.bid) >= forward_gap - tolerance, (strike, call, put)


@settings(max_examples=60, deadline=None)
@given(at=moments, ticker=st.sampled_from(["SPY", "QQQ", "NVDA", "XLE", "VIX", "WXYZ"]),
       days=st.integers(min_value=0, max_value=300))
def test_greeks_are_in_range_and_spreads_never_invert(at, ticker, days):
    expiry = clock.market_date(at) + timedelta(days=days)
    for _, call, put in chain(provider(at), ticker, expiry, count=13, step=0.05):
        assert Decimal(0) <= call.delta <= Decimal(1) and Decimal(-1) <= put.delta <= Decimal(0)
        assert abs(call.delta - put.delta - 1) <= Decimal("0.000002") or call.iv is None
        for quote in (call, put):
            assert Decimal(0) <= quote.bid < quote.ask, quote
            assert quote.bid <= quote.mark <= quote.ask
            assert quote.gamma >= 0 and quote.vega >= 0
            for side in (quote.bid, quote.ask):
                assert side % option_tick(ticker, float(side)) == 0, (ticker, side)


def test_tick_sizes_follow_the_penny_program():
    assert option_tick("AAPL", 2.99) == Decimal("0.01") and option_tick("AAPL", 3.0) == Decimal("0.05")
    assert option_tick("SPY", 12.0) == Decimal("0.01")
    bid, ask = spread("AAPL", 7.43, 0.5)
    assert bid % Decimal("0.05") == 0 and ask % Decimal("0.05") == 0 and bid < 7.43 < ask
    assert spread("AAPL", 0.0, 0.0) == (Decimal("0.00"), Decimal("0.02"))  # worthless: still a one-sided market


def test_spreads_widen_for_cheap_and_far_out_of_the_money_contracts():
    quotes = {round(abs(float(c.delta)), 2): c for _, c, _ in chain(provider(MIDDAY), "AAPL", date(2026, 8, 21),
                                                                    count=15, step=0.05)}
    near = min(quotes.items(), key=lambda item: abs(item[0] - 0.5))[1]
    far = min(quotes.items(), key=lambda item: item[0])[1]
    assert far.mark < Decimal("1") < near.mark
    assert (far.ask - far.bid) / far.mark > 3 * (near.ask - near.bid) / near.mark


def test_the_iv_surface_has_put_skew_and_a_term_structure():
    market = Market("tradeoptions")
    low, atm, high = (market.implied_vol("SPY", k, 0.1, 600.0, 18.0) for k in (540.0, 600.0, 660.0))
    assert low > atm > high
    assert market.implied_vol("VIX", 25.0, 0.1, 18.0, 18.0) > market.implied_vol("VIX", 14.0, 0.1, 18.0, 18.0)
    stressed_short, stressed_long = (market.implied_vol("SPY", 600.0, t, 600.0, 35.0) for t in (0.05, 1.5))
    calm_short, calm_long = (market.implied_vol("SPY", 600.0, t, 600.0, 12.0) for t in (0.05, 1.5))
    assert stressed_short > stressed_long and calm_short < calm_long


def test_same_seed_and_time_give_the_same_quote_in_another_process():
    symbols = ["SPY260918C00600000", "ZQXR260717P00050000", "XLK260821C00240000"]
    script = (
        "import django, json; django.setup();"
        "from datetime import datetime; from monitoring.marketdata.simulated import SimulatedProvider;"
        f"at = datetime.fromisoformat({MIDDAY.isoformat()!r});"
        "p = SimulatedProvider(seed='parity-seed', clock=lambda: at);"
        f"q = p.option_quotes({symbols!r}); u = p.underlying_quotes(['VIX', 'ZQXR']);"
        "print(json.dumps({s: [str(v.bid), str(v.ask), str(v.delta), str(v.iv)] for s, v in q.items()}"
        " | {s: str(v.last) for s, v in u.items()}))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.test",
                   "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment,
                            cwd=ROOT, timeout=60, check=True)
    other = json.loads(result.stdout.strip().splitlines()[-1])

    here = provider(MIDDAY, seed="parity-seed")
    quotes, underlyings = here.option_quotes(symbols), here.underlying_quotes(["VIX", "ZQXR"])
    mine = {s: [str(v.bid), str(v.ask), str(v.delta), str(v.iv)] for s, v in quotes.items()}
    mine |= {s: str(v.last) for s, v in underlyings.items()}
    assert other == mine
    assert provider(MIDDAY, seed="another-seed").option_quotes(symbols) != quotes


def test_table_prices_hold_on_the_reference_day_and_unknown_tickers_get_a_stable_start():
    close = clock.session_for(REFERENCE_DAY).close
    quotes = provider(close + timedelta(hours=3)).underlying_quotes(["SPY", "AAPL", "QWERT"])
    assert quotes["SPY"].last == Decimal("590.00") and quotes["AAPL"].last == Decimal("245.00")
    assert quotes["SPY"].quote_time == close
    assert Decimal("10") <= quotes["QWERT"].last <= Decimal("500")


def test_vix_and_sector_etfs_are_quoted_and_vix_moves_against_the_market():
    quotes = provider(MIDDAY).underlying_quotes(["VIX", *SECTOR_ETFS])
    assert set(quotes) == {"VIX", *SECTOR_ETFS}
    assert quotes["VIX"].bid is None and Decimal("8") < quotes["VIX"].last < Decimal("80")
    days = clock.trading_days(date(2025, 1, 2), date(2025, 12, 31))
    spy, vix = ([provider(clock.session_for(d).close).underlying_quotes([s])[s].last for d in days]
                for s in ("SPY", "VIX"))
    spy_moves = [math.log(b / a) for a, b in zip(spy, spy[1:], strict=False)]
    vix_moves = [math.log(b / a) for a, b in zip(vix, vix[1:], strict=False)]
    mean_s, mean_v = sum(spy_moves) / len(spy_moves), sum(vix_moves) / len(vix_moves)
    covariance = sum((s - mean_s) * (v - mean_v) for s, v in zip(spy_moves, vix_moves, strict=True))
    assert covariance < 0


def test_intraday_volatility_is_realistic():
    market = Market("tradeoptions")
    moves = []
    for day in clock.trading_days(date(2026, 2, 2), date(2026, 4, 30)):
        grid = market.minutes("SPY", day)
        moves += [b - a for a, b in zip(grid, grid[1:], strict=False)]
    annualised = math.sqrt(sum(m * m for m in moves) / len(moves) * 390 * 252)
    assert 0.11 < annualised < 0.17  # 16 % a year, four fifths of it inside the session


def test_prices_move_during_the_session_and_stand_still_when_closed():
    spy = build_symbol("SPY", date(2026, 12, 18), "CALL", 600)
    morning, later = (provider(MIDDAY + timedelta(minutes=m)).option_quotes([spy])[spy] for m in (0, 47))
    assert morning.underlying_price != later.underlying_price
    friday_close = datetime(2026, 6, 19, 16, tzinfo=NY)  # Juneteenth: closed; Thursday's close stands
    weekend = [provider(datetime(2026, 6, d, 12, tzinfo=NY)).option_quotes([spy])[spy] for d in (19, 20, 21)]
    assert all(q == weekend[0] for q in weekend)
    assert weekend[0].quote_time == datetime(2026, 6, 18, 16, tzinfo=NY) != friday_close
    assert weekend[0].quote_time.tzinfo == UTC


def test_early_close_sessions_are_shorter():
    assert len(Market("tradeoptions").minutes("SPY", date(2026, 11, 27))) == 3 * 60 + 30 + 1
    after = provider(datetime(2026, 11, 27, 15, tzinfo=NY)).underlying_quotes(["SPY"])["SPY"]
    assert after.quote_time == datetime(2026, 11, 27, 13, tzinfo=NY)


def test_an_expired_contract_is_worth_its_intrinsic_value_at_the_cutoff():
    expiry = date(2026, 6, 12)
    cutoff = clock.expiry_cutoff(expiry)
    spot = provider(cutoff).underlying_quotes(["SPY"])["SPY"].last
    strike = (spot - 10).to_integral_value()
    symbol = build_symbol("SPY", expiry, "CALL", strike)
    quote = provider(MIDDAY).option_quotes([symbol])[symbol]
    assert quote.quote_time == cutoff and quote.delta == 1 and quote.iv is None
    assert quote.bid <= spot - strike <= quote.ask and abs(quote.mark - (spot - strike)) <= Decimal("0.05")


def test_bars_never_show_the_future_and_are_consistent():
    bars = provider(MIDDAY).bars("SPY", "15min", datetime(2026, 6, 16, tzinfo=NY), datetime(2026, 6, 18, tzinfo=NY))
    assert len(bars) == 26 + 6  # a whole Tuesday, then Wednesday up to 11:00
    assert bars[-1].start == MIDDAY - timedelta(minutes=15) and bars[-1].quote_time == MIDDAY
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    daily = provider(MIDDAY).bars("SPY", "daily", datetime(2026, 6, 1, tzinfo=NY), datetime(2026, 6, 30, tzinfo=NY))
    assert [b.start.date() for b in daily][-2:] == [date(2026, 6, 16), date(2026, 6, 17)]
    tuesday_close = provider(datetime(2026, 6, 16, 16, tzinfo=NY)).underlying_quotes(["SPY"])["SPY"].last
    assert daily[-2].close == tuesday_close
    assert daily[-1].close == provider(MIDDAY).underlying_quotes(["SPY"])["SPY"].last


def test_minute_bars_of_an_option_follow_its_quoted_mark_and_stop_at_expiry():
    symbol = build_symbol("AAPL", date(2026, 6, 17), "CALL", Decimal("250"))  # expires at MIDDAY's close
    bars = provider(MIDDAY).bars(symbol, "1min", MIDDAY - timedelta(minutes=30), MIDDAY + timedelta(hours=1))
    assert len(bars) == 30 and bars[-1].quote_time == MIDDAY  # nothing from the future
    assert all(bar.volume is None and bar.symbol == symbol for bar in bars)
    for bar in bars:  # each bar opens and closes at the mark quoted at its start and its end
        assert bar.close == provider(bar.quote_time).option_quotes([symbol])[symbol].mark
        assert bar.open == provider(bar.start).option_quotes([symbol])[symbol].mark
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    after = datetime(2026, 6, 18, 12, 0, tzinfo=NY)
    late = provider(after).bars(symbol, "1min", datetime(2026, 6, 17, 15, 55, tzinfo=NY), after)
    assert [bar.start.astimezone(NY).strftime("%H:%M") for bar in late] == [f"15:{m}" for m in range(55, 60)]


@pytest.mark.parametrize("symbol", ["SPXW260717C05900000", "SPX260717C05900000"])
def test_weekly_index_roots_price_off_the_index(symbol):
    quote = provider(MIDDAY).option_quotes([symbol])[symbol]
    assert quote.underlying_price == provider(MIDDAY).underlying_quotes(["SPX"])["SPX"].last
