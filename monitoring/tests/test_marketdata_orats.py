"""The ORATS provider against the fake server: batching by underlying, the row mapping (put delta
by parity, nulls), and every failure turned into a clear exception without leaking the token."""

from datetime import date
from decimal import Decimal

import pytest

from brokers.occ import build_symbol
from monitoring.marketdata.base import (
    Interval,
    ProviderAuthError,
    ProviderResponseError,
    ProviderUnavailable,
    UnsupportedRequest,
)
from monitoring.marketdata.orats import OratsClient, OratsProvider
from monitoring.tests.conftest import MIDDAY
from tests.fakes.orats import EXAMPLE_ROW

TRADE_DATE = date(2026, 6, 17)
JULY, AUGUST = date(2026, 7, 17), date(2026, 8, 21)


def add_row(fake, **fields):
    return fake.add_row({**EXAMPLE_ROW, "tradeDate": TRADE_DATE.isoformat(), **fields})


def test_call_and_put_sides_map_to_quotes(fake_orats, orats):
    add_row(
        fake_orats, ticker="SPY", expirDate="2026-07-17", dte=31, strike=570, stockPrice=581.23,
        callBidPrice=16.1, callAskPrice=16.3, callValue=16.21, callVolume=1200, callOpenInterest=35000,
        callMidIv=0.162, putBidPrice=4.05, putAskPrice=4.15, putValue=4.1, putVolume=900, putOpenInterest=41000,
        putMidIv=0.171, delta=0.6712, gamma=0.0123, theta=-0.1834, vega=0.6621, updatedAt="2026-06-17T14:59:12Z",
    )
    call, put = build_symbol("SPY", JULY, "CALL", 570), build_symbol("SPY", JULY, "PUT", 570)
    quotes = orats.option_quotes([call, put])

    assert quotes[call].bid == Decimal("16.1") and quotes[call].ask == Decimal("16.3")
    assert quotes[call].mark == Decimal("16.2") == quotes[call].mid
    assert quotes[call].delta == Decimal("0.6712")
    assert quotes[call].iv == Decimal("0.162")
    assert quotes[call].volume == 1200 and quotes[call].open_interest == 35000
    assert quotes[put].bid == Decimal("4.05") and quotes[put].ask == Decimal("4.15")
    assert quotes[put].delta == Decimal("-0.3288")  # parity: call delta − 1
    assert quotes[put].gamma == quotes[call].gamma == Decimal("0.0123")
    assert quotes[put].iv == Decimal("0.171")
    assert quotes[put].underlying_price == Decimal("581.23")
    assert quotes[put].source == "orats"
    assert quotes[put].quote_time.isoformat() == "2026-06-17T14:59:12+00:00"
    assert isinstance(quotes[put].bid, Decimal)


def test_null_fields_are_tolerated(fake_orats, orats):
    nulls = {name: None for name in ("callBidPrice", "callAskPrice", "callVolume", "callOpenInterest", "callMidIv",
                                     "delta", "gamma", "theta", "vega", "stockPrice", "updatedAt")}
    add_row(fake_orats, ticker="QQQ", expirDate="2026-07-17", dte=31, strike=500, callValue=12.34, smvVol=0.2,
            spotPrice=None, **nulls)
    symbol = build_symbol("QQQ", JULY, "CALL", 500)
    quote = orats.option_quotes([symbol])[symbol]
    assert quote.bid is None and quote.ask is None and quote.volume is None and quote.delta is None
    assert quote.mark == Decimal("12.34")  # no market: fall back to the theoretical value
    assert quote.iv == Decimal("0.2")  # no side IV: the smoothed surface
    assert quote.underlying_price is None
    assert quote.quote_time == MIDDAY  # no provider time: when we fetched it


def test_zero_ask_and_crossed_markets_do_not_make_a_mid(fake_orats, orats):
    add_row(fake_orats, ticker="IWM", expirDate="2026-07-17", dte=31, strike=150, callBidPrice=0, callAskPrice=0,
            callValue=0.004, putBidPrice=2.5, putAskPrice=2.4, putValue=2.45)
    call, put = build_symbol("IWM", JULY, "CALL", 150), build_symbol("IWM", JULY, "PUT", 150)
    quotes = orats.option_quotes([call, put])
    assert quotes[call].mid is None and quotes[call].mark == Decimal("0.004")
    assert quotes[put].mid is None and quotes[put].mark == Decimal("2.45")


def test_one_request_per_underlying_however_many_contracts(fake_orats, orats):
    strikes = [float(k) for k in range(500, 650, 5)]
    fake_orats.add_chain("SPY", TRADE_DATE, [JULY, AUGUST], strikes, 581.0)
    fake_orats.add_chain("QQQ", TRADE_DATE, [JULY, AUGUST], strikes, 560.0)
    fake_orats.add_chain("SPX", TRADE_DATE, [JULY], [5700.0, 5800.0, 5900.0], 5800.0)
    symbols = [build_symbol(t, e, kind, Decimal(str(k))) for t in ("SPY", "QQQ") for e in (JULY, AUGUST)
               for k in strikes for kind in ("CALL", "PUT")]
    symbols.append(build_symbol("SPXW", JULY, "CALL", 5800))  # weeklies are quoted on SPX's rows

    quotes = orats.option_quotes(symbols)

    assert len(quotes) == len(symbols) == 241
    assert fake_orats.count("strikes") == 3
    assert {params["ticker"] for _, params in fake_orats.requests} == {"SPY", "QQQ", "SPX"}


def test_the_dte_filter_covers_the_requested_expiries(fake_orats, orats):
    fake_orats.add_chain("SPY", TRADE_DATE, [date(2026, 6, 18), JULY, AUGUST, date(2026, 12, 18)], [580.0], 581.0)
    wanted = [build_symbol("SPY", date(2026, 6, 18), "CALL", 580), build_symbol("SPY", AUGUST, "PUT", 580)]
    assert set(orats.option_quotes(wanted)) == set(wanted)
    _, params = fake_orats.requests[-1]
    low, high = map(int, params["dte"].split(","))
    assert low == 0 and 65 <= high < 184  # December is not fetched


def test_contracts_missing_at_the_source_are_left_out(fake_orats, orats):
    fake_orats.add_chain("SPY", TRADE_DATE, [JULY], [580.0], 581.0)
    present, absent = build_symbol("SPY", JULY, "CALL", 580), build_symbol("SPY", JULY, "CALL", 585)
    assert set(orats.option_quotes([present, absent])) == {present}


def test_a_forbidden_token_is_an_auth_error_and_is_not_retried(fake_orats, orats_client, sleeps):
    fake_orats.fail("403")
    with pytest.raises(ProviderAuthError, match="403") as error:
        OratsProvider(orats_client, clock=lambda: MIDDAY).option_quotes(["SPY260717C00580000"])
    assert "User does not have access" in str(error.value)
    assert fake_orats.count() == 1 and sleeps == []


def test_a_wrong_token_is_refused_and_never_echoed(fake_orats, sleeps):
    client = OratsClient(base_url=fake_orats.url, token="wrong-secret", sleep=sleeps.append)
    with pytest.raises(ProviderAuthError) as error:
        OratsProvider(client, clock=lambda: MIDDAY).option_quotes(["SPY260717C00580000"])
    assert "wrong-secret" not in str(error.value)


def test_server_errors_are_retried_with_backoff_then_succeed(fake_orats, orats, sleeps):
    fake_orats.add_chain("SPY", TRADE_DATE, [JULY], [580.0], 581.0)
    fake_orats.fail("500", times=2)
    symbol = build_symbol("SPY", JULY, "CALL", 580)
    assert symbol in orats.option_quotes([symbol])
    assert fake_orats.count() == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 1.5  # exponential, jittered


def test_persistent_server_errors_give_up_after_the_bounded_retries(fake_orats, orats, sleeps):
    fake_orats.fail("500")
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        orats.option_quotes(["SPY260717C00580000"])
    assert fake_orats.count() == 3 and len(sleeps) == 2


def test_an_unreachable_server_is_unavailable_without_the_url(sleeps):
    client = OratsClient(base_url="http://127.0.0.1:9/datav2", token="secret-token", sleep=sleeps.append,
                         timeout=(0.5, 0.5), attempts=2)
    with pytest.raises(ProviderUnavailable, match="did not answer") as error:
        OratsProvider(client, clock=lambda: MIDDAY).option_quotes(["SPY260717C00580000"])
    assert "secret-token" not in str(error.value) and len(sleeps) == 1


@pytest.mark.parametrize(
    ("mode", "message"),
    [("html", "non-JSON"), ("message", "Invalid ticker parameter"), ("error", "Bad request: dte")],
)
def test_error_bodies_become_clear_exceptions(fake_orats, orats, mode, message):
    fake_orats.fail(mode)
    with pytest.raises(ProviderResponseError, match=message):
        orats.option_quotes(["SPY260717C00580000"])


def test_live_mode_uses_the_live_endpoint_and_its_quote_date(fake_orats, orats_client):
    add_row(fake_orats, ticker="SPY", expirDate="2026-07-17", dte=31, strike=580, quoteDate="2026-06-17T14:58:00Z",
            updatedAt="2026-06-17T14:58:09Z")
    symbol = build_symbol("SPY", JULY, "CALL", 580)
    quote = OratsProvider(orats_client, live=True, clock=lambda: MIDDAY).option_quotes([symbol])[symbol]
    assert fake_orats.requests[-1][0] == "live/strikes"
    assert quote.quote_time.isoformat() == "2026-06-17T14:58:00+00:00"


def test_underlying_quotes_batch_tickers(fake_orats, orats):
    for index in range(12):
        fake_orats.summaries[f"T{index:02d}"] = {"ticker": f"T{index:02d}", "stockPrice": 10 + index,
                                                   "updatedAt": "2026-06-17T14:59:00Z"}
    fake_orats.summaries["VIX"] = {"ticker": "VIX", "stockPrice": 17.85, "updatedAt": None}
    quotes = orats.underlying_quotes([f"T{index:02d}" for index in range(12)] + ["vix", "NOPE"])
    assert quotes["VIX"].last == Decimal("17.85") and quotes["VIX"].quote_time == MIDDAY
    assert quotes["T11"].last == Decimal("21") and "NOPE" not in quotes
    assert fake_orats.count("summaries") == 2  # 14 tickers, ten per request


def test_daily_bars_come_from_hist_dailies_filtered_to_the_range(fake_orats, orats):
    fake_orats.dailies["SPY"] = [
        {"ticker": "SPY", "tradeDate": day, "open": 580.1, "hiPx": 584.2, "loPx": 578.0, "clsPx": 583.3,
         "updatedAt": None}
        for day in ("2015-06-15", "2026-06-12", "2026-06-15", "2026-06-16")
    ]
    bars = orats.bars("SPY", "daily", MIDDAY.replace(day=15, hour=0), MIDDAY)
    assert [bar.start.date() for bar in bars] == [date(2026, 6, 15), date(2026, 6, 16)]
    assert bars[0].close == Decimal("583.3") and bars[0].interval is Interval.DAILY
    with pytest.raises(UnsupportedRequest):
        orats.bars("SPY", "5min", MIDDAY.replace(hour=9), MIDDAY)
    with pytest.raises(UnsupportedRequest):  # no bars of option contracts at any interval
        orats.bars("SPY260717C00585000", "daily", MIDDAY.replace(day=15, hour=0), MIDDAY)
