"""The Tradier market-data provider against the fake Tradier, over real HTTP: the field mapping,
put and call greeks, Tradier's shape quirks, batching, bars, failures, token hygiene, and the
rate-limit buckets it shares with the broker client."""

import logging
import time
import traceback
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured

from brokers.base import BrokerRateLimited
from brokers.occ import build_symbol
from brokers.ratelimit import RateLimiter
from brokers.tradier import RetryPolicy, TradierClient, TradierMarketData
from monitoring.marketdata import provider_for
from monitoring.marketdata.base import Interval, ProviderAuthError, ProviderThrottled, ProviderUnavailable
from monitoring.marketdata.tradier import TradierMarketDataProvider
from monitoring.tests.conftest import MIDDAY
from tests.fakes.tradier import LIVE, SANDBOX, FakeTradier

NY = ZoneInfo("America/New_York")
# Made-up tokens, distinctive enough that finding one in a log line cannot be a coincidence.
TOKEN = "mdTOKEN-7c3e9a1f5b2d8e40"
BROKER_TOKEN = "brokerTOKEN-1b2c3d4e5f6a7b8c"
JULY = date(2026, 7, 17)
CALL = build_symbol("SPY", JULY, "CALL", 570)
PUT = build_symbol("SPY", JULY, "PUT", 570)
BID_AT = datetime(2026, 6, 17, 14, 58, 30, tzinfo=UTC)  # 10:58:30 in New York, before MIDDAY


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def fake():
    fake = FakeTradier()
    fake.add_token(TOKEN, LIVE)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def make_limiter(redis_client, namespace):
    def build(token=TOKEN, *, limits=None, burst=1000, max_wait=0.5):
        return RateLimiter(token, limits=limits or {"market_data": 6000}, burst=burst, max_wait=max_wait,
                           namespace=namespace, redis_client=redis_client)

    return build


@pytest.fixture
def make_provider(fake, make_limiter):
    made = []

    def build(*, token=TOKEN, environment=LIVE, limiter=None, clock=lambda: MIDDAY, symbols_per_request=500):
        client = TradierMarketData(
            base_url=fake.url(environment), token=token, limiter=limiter or make_limiter(token), timeout=0.5,
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02), symbols_per_request=symbols_per_request,
        )
        made.append(client)
        return TradierMarketDataProvider(client, clock=clock)

    yield build
    for client in made:
        client.close()


@pytest.fixture
def provider(make_provider):
    return make_provider()


def quote_option(fake, symbol, bid, ask, *, last=None, **fields):
    fake.set_quote(symbol, bid, ask, last=last)
    fake.set_quote_fields(symbol, **{"bid_date": epoch_ms(BID_AT), "ask_date": epoch_ms(BID_AT), **fields})


def market_requests(fake):
    return [request for request in fake.requests if request.path.startswith("/markets")]


# --- Mapping ------------------------------------------------------------------------------------


def test_an_option_quote_maps_every_field_with_its_underlying_price(fake, provider):
    quote_option(fake, CALL, "16.10", "16.30", last="16.25", volume=1200, open_interest=35000,
                 greeks={"delta": 0.6712, "gamma": 0.0123, "theta": -0.1834, "vega": 0.6621, "mid_iv": 0.162,
                         "smv_vol": 0.17})
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")

    quote = provider.option_quotes([CALL])[CALL]

    assert (quote.bid, quote.ask, quote.last) == (Decimal("16.1"), Decimal("16.3"), Decimal("16.25"))
    assert quote.mark == quote.mid == Decimal("16.2")
    assert (quote.volume, quote.open_interest) == (1200, 35000)
    assert (quote.delta, quote.gamma, quote.theta, quote.vega) == (
        Decimal("0.6712"), Decimal("0.0123"), Decimal("-0.1834"), Decimal("0.6621"))
    assert quote.iv == Decimal("0.162")
    assert quote.underlying_price == Decimal("581.23")
    assert quote.quote_time == BID_AT and quote.quote_time.tzinfo is not None
    assert quote.source == "tradier"
    assert quote.contract.strike == Decimal("570") and quote.contract.option_type == "CALL"
    assert all(isinstance(value, Decimal) for value in (quote.bid, quote.delta, quote.iv, quote.underlying_price))


@pytest.mark.parametrize(("sent", "expected"), [
    (-0.3288, "-0.3288"),  # a put's own delta passes through
    (0.6712, "-0.3288"),  # the strike's call delta, turned into the put's by parity
    (1.0, "0"),  # Tradier's own chain example: VXX190517P00016000 with delta 1.0
])
def test_put_deltas_are_negative_whatever_tradier_sends(fake, provider, sent, expected):
    quote_option(fake, PUT, "4.05", "4.15", greeks={"delta": sent})
    quote_option(fake, CALL, "16.10", "16.30", greeks={"delta": 0.6712})

    quotes = provider.option_quotes([PUT, CALL])

    assert quotes[PUT].delta == Decimal(expected)
    assert quotes[CALL].delta == Decimal("0.6712")


def test_null_fields_are_tolerated(fake, provider):
    fake.set_quote(CALL, "1", "1")
    fake.set_quote_fields(CALL, bid=None, ask=None, last=None, volume=None, open_interest=None, greeks=None,
                          bid_date=0, ask_date=0, trade_date=0)

    quote = provider.option_quotes([CALL])[CALL]

    assert quote.bid is quote.ask is quote.last is quote.mark is None
    assert quote.volume is quote.open_interest is None
    assert quote.delta is quote.gamma is quote.theta is quote.vega is quote.iv is None
    assert quote.underlying_price is None  # SPY has no quote at the fake
    assert quote.quote_time == MIDDAY  # no time from Tradier: when we fetched it


def test_without_a_mid_the_mark_is_the_last_trade_and_iv_falls_back_to_the_smoothed_surface(fake, provider):
    quote_option(fake, CALL, "0.40", "0.00", last="0.35", greeks={"mid_iv": 0.0, "smv_vol": 0.3124})

    quote = provider.option_quotes([CALL])[CALL]

    assert quote.mid is None and quote.mark == Decimal("0.35")
    assert quote.iv == Decimal("0.3124")


# --- Tradier's shapes ---------------------------------------------------------------------------


def test_a_single_quote_arrives_as_a_bare_object_and_is_read(fake, provider):
    quote_option(fake, CALL, "16.10", "16.30")  # SPY unknown: one quote, one unmatched symbol

    raw = requests.get(f"{fake.url(LIVE)}/markets/quotes", params={"symbols": f"{CALL},SPY"}, timeout=2,
                       headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}).json()
    assert isinstance(raw["quotes"]["quote"], dict) and raw["quotes"]["unmatched_symbols"] == {"symbol": "SPY"}

    assert set(provider.option_quotes([CALL])) == {CALL}


def test_unknown_symbols_are_left_out(fake, provider):
    assert provider.option_quotes([CALL, PUT]) == {}
    assert provider.underlying_quotes(["NOPE"]) == {}


@pytest.mark.parametrize("empty", [None, "null"])
def test_empty_chains_series_and_histories_are_empty_whether_null_or_the_string_null(fake, provider, empty):
    fake.market_data_empty = empty

    assert provider.option_chain("SPY", JULY) == []
    assert provider.bars("SPY", Interval.FIVE_MINUTES, MIDDAY - timedelta(hours=1), MIDDAY) == []
    assert provider.bars("SPY", Interval.DAILY, MIDDAY - timedelta(days=5), MIDDAY) == []


def test_an_option_chain_lists_every_contract_with_greeks(fake, provider):
    strikes = (565, 570)
    for strike in strikes:
        quote_option(fake, build_symbol("SPY", JULY, "CALL", strike), "16.10", "16.30", greeks={"delta": 0.6})
        quote_option(fake, build_symbol("SPY", JULY, "PUT", strike), "4.05", "4.15", greeks={"delta": -0.4})
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")

    chain = provider.option_chain("spy", JULY)

    assert [(q.contract.strike, q.contract.option_type) for q in chain] == [
        (Decimal(565), "CALL"), (Decimal(565), "PUT"), (Decimal(570), "CALL"), (Decimal(570), "PUT")]
    assert {q.underlying_price for q in chain} == {Decimal("581.23")}
    assert [q.delta for q in chain if q.contract.option_type == "PUT"] == [Decimal("-0.4")] * 2


def test_underlyings_and_indices(fake, provider):
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")
    traded = datetime(2026, 6, 17, 14, 59, 0, tzinfo=UTC)
    fake.set_quote_fields("SPY", trade_date=epoch_ms(traded))
    fake.set_quote("VIX", "0", "0", last="17.25")  # an index: a last, no book
    fake.set_quote_fields("VIX", type="index", bid=None, ask=None, trade_date=epoch_ms(traded))
    fake.set_quote("XLK", "231.10", "231.20")  # no trade yet: the mid
    fake.set_quote_fields("XLK", bid_date=epoch_ms(BID_AT), ask_date=epoch_ms(BID_AT))

    quotes = provider.underlying_quotes(["spy", "VIX", "XLK", "NOPE"])

    assert set(quotes) == {"SPY", "VIX", "XLK"}
    assert (quotes["SPY"].last, quotes["SPY"].bid, quotes["SPY"].ask) == (
        Decimal("581.23"), Decimal("581.2"), Decimal("581.26"))
    assert quotes["SPY"].quote_time == traded and quotes["SPY"].source == "tradier"
    assert (quotes["VIX"].last, quotes["VIX"].bid, quotes["VIX"].ask) == (Decimal("17.25"), None, None)
    assert quotes["XLK"].last == Decimal("231.15") and quotes["XLK"].quote_time == BID_AT
    (request,) = market_requests(fake)
    assert request.query["greeks"] == "false"


# --- Batching -----------------------------------------------------------------------------------


def test_a_short_list_is_one_get_with_greeks(fake, provider):
    quote_option(fake, CALL, "16.10", "16.30")
    quote_option(fake, PUT, "4.05", "4.15")

    provider.option_quotes([CALL, PUT])

    (request,) = market_requests(fake)
    assert (request.method, request.path) == ("GET", "/markets/quotes")
    assert request.query == {"symbols": f"{CALL},{PUT},SPY", "greeks": "true"}
    assert request.accept == "application/json"


def test_many_contracts_take_few_requests_sent_as_post_forms(fake, make_provider):
    tickers = [f"T{index:02d}" for index in range(30)]
    symbols = [build_symbol(ticker, JULY, kind, strike)
               for ticker in tickers for strike in range(100, 120) for kind in ("CALL", "PUT")]
    for symbol in symbols:
        fake.set_quote(symbol, "1.00", "1.10")
    for ticker in tickers:
        fake.set_quote(ticker, "100.00", "100.02", last="100.01")
    provider = make_provider(symbols_per_request=500)

    quotes = provider.option_quotes(symbols)

    assert len(symbols) == 1200 and set(quotes) == set(symbols)
    assert {quote.underlying_price for quote in quotes.values()} == {Decimal("100.01")}
    requests = market_requests(fake)
    assert len(requests) == 3  # 1,230 symbols (1,200 contracts and 30 underlyings), 500 at a time
    assert {(r.method, r.content_type) for r in requests} == {("POST", "application/x-www-form-urlencoded")}
    assert all(r.form["greeks"] == "true" and not r.query for r in requests)
    assert sum(len(r.form["symbols"].split(",")) for r in requests) == 1230


# --- Bars ---------------------------------------------------------------------------------------


def test_intraday_bars_come_from_timesales_in_the_window_oldest_first(fake, make_provider):
    now = datetime(2026, 6, 17, 11, 2, tzinfo=NY)
    opens = [datetime(2026, 6, 17, 9, 25, tzinfo=NY)] + [
        datetime(2026, 6, 17, 9, 30, tzinfo=NY) + timedelta(minutes=5 * k) for k in range(19)]
    fake.add_bars("SPY", "5min", [(at, "580.10", "580.90", "579.80", "580.50", 120_000) for at in opens])
    provider = make_provider(clock=lambda: now)

    bars = provider.bars("spy", "5min", datetime(2026, 6, 17, 9, 0, tzinfo=NY), datetime(2026, 6, 17, 12, tzinfo=NY))

    assert [bar.start.astimezone(NY).strftime("%H:%M") for bar in bars][:2] == ["09:30", "09:35"]  # 09:25 is pre-market
    assert bars[-1].start == datetime(2026, 6, 17, 15, 0, tzinfo=UTC)  # 11:00 in New York
    assert bars[-1].quote_time == now  # still forming
    assert bars[0].quote_time == datetime(2026, 6, 17, 13, 35, tzinfo=UTC)  # its end
    first = bars[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("580.1"), Decimal("580.9"), Decimal("579.8"), Decimal("580.5"), 120_000)
    assert (first.symbol, first.interval, first.source) == ("SPY", Interval.FIVE_MINUTES, "tradier")
    assert all(bar.start.tzinfo == UTC for bar in bars)
    (request,) = market_requests(fake)
    assert request.path == "/markets/timesales"
    assert request.query == {"symbol": "SPY", "interval": "5min", "session_filter": "open",
                             "start": "2026-06-17 09:00", "end": "2026-06-17 11:02"}


def test_a_single_intraday_bar_is_a_bare_object(fake, provider):
    at = datetime(2026, 6, 17, 10, 0, tzinfo=NY)
    fake.add_bars("QQQ", "1min", [(at, "500", "501", "499", "500.5", None)])

    (bar,) = provider.bars("QQQ", Interval.MINUTE, at, at + timedelta(minutes=1))

    assert bar.start == at and bar.close == Decimal("500.5") and bar.volume is None


def test_daily_bars_come_from_history_at_each_sessions_open(fake, provider):
    days = [date(2026, 6, 15), date(2026, 6, 16), date(2026, 6, 17)]
    fake.add_bars("SPY", "daily", [(day, "578", "582", "577", "581", 34_557_064) for day in days])

    bars = provider.bars("SPY", "daily", datetime(2026, 6, 15, tzinfo=NY), datetime(2026, 6, 18, tzinfo=NY))

    assert [bar.start for bar in bars] == [datetime(2026, 6, day, 13, 30, tzinfo=UTC) for day in (15, 16, 17)]
    assert bars[0].quote_time == datetime(2026, 6, 15, 20, 0, tzinfo=UTC)  # that day's close
    assert bars[-1].quote_time == MIDDAY  # today's bar is still forming
    assert bars[0].close == Decimal("581") and bars[0].volume == 34_557_064
    (request,) = market_requests(fake)
    assert (request.path, request.query["interval"], request.query["start"], request.query["end"]) == (
        "/markets/history", "daily", "2026-06-15", "2026-06-17")


# --- Failures and the token ---------------------------------------------------------------------


@pytest.mark.parametrize(("token", "environment"), [("not-a-token", LIVE), (TOKEN, SANDBOX)])
def test_a_refused_token_is_an_auth_error_without_retry(fake, make_provider, token, environment):
    provider = make_provider(token=token, environment=environment)

    with pytest.raises(ProviderAuthError, match="refused the token"):
        provider.option_quotes([CALL])

    assert len(market_requests(fake)) == 1


def test_a_maintenance_page_is_unavailable_without_retry(fake, provider):
    fake.inject("html_503", path="/markets")

    with pytest.raises(ProviderUnavailable, match="maintenance"):
        provider.underlying_quotes(["SPY"])

    assert len(market_requests(fake)) == 1


def test_a_passing_server_error_is_retried(fake, provider):
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")
    fake.inject("500", path="/markets/quotes")

    assert provider.underlying_quotes(["SPY"])["SPY"].last == Decimal("581.23")
    assert len(market_requests(fake)) == 2


def test_the_token_is_in_no_log_line_no_exception_and_no_redis_key(fake, make_provider, caplog, redis_client,
                                                                     namespace):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # which settings keep at INFO
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")
    provider = make_provider()
    failures = []
    provider.underlying_quotes(["SPY"])
    fake.inject("500", path="/markets", times=3)
    fake.inject("html_503", path="/markets")
    attempts = (
        lambda: provider.option_quotes([CALL]),  # a 500, three times: retried, then given up
        lambda: provider.bars("SPY", "daily", MIDDAY - timedelta(days=5), MIDDAY),  # the maintenance page
        lambda: make_provider(environment=SANDBOX).underlying_quotes(["SPY"]),  # a live token at the sandbox
    )
    for attempt in attempts:
        with pytest.raises((ProviderUnavailable, ProviderAuthError)) as caught:
            attempt()
        failures.append(caught.value)

    assert [type(failure) for failure in failures] == [ProviderUnavailable, ProviderUnavailable, ProviderAuthError]
    assert "GET /markets" in caplog.text and "urllib3" in caplog.text  # the requests were logged...
    assert TOKEN not in caplog.text  # ...without the token
    for failure in failures:
        text = "".join(traceback.format_exception(failure))
        assert TOKEN not in text and failure.__cause__ is None and failure.__suppress_context__
    assert TOKEN not in repr(provider) and TOKEN not in repr(provider.client)
    stored = b"".join(redis_client.dump(key) or b"" for key in redis_client.scan_iter(match=f"{namespace}:*"))
    assert stored and TOKEN.encode() not in stored


# --- Rate limits --------------------------------------------------------------------------------


def test_provider_and_broker_client_draw_on_the_same_buckets_for_one_token(fake, make_limiter, make_provider):
    fake.add_account(token=BROKER_TOKEN, account_id="VA00009999", cash=Decimal(10_000), environment=LIVE)
    fake.set_quote("SPY", "581.20", "581.26", last="581.23")
    # Three requests a burst, then about one a second: the fourth in a row would wait too long.
    budget = {"limits": {"market_data": 61}, "burst": 3, "max_wait": 0.05}
    provider = make_provider(token=BROKER_TOKEN, limiter=make_limiter(BROKER_TOKEN, **budget))
    broker = TradierClient(base_url=fake.url(LIVE), token=BROKER_TOKEN, account_id="VA00009999",
                           limiter=make_limiter(BROKER_TOKEN, **budget), timeout=0.5)
    other = make_provider(limiter=make_limiter(TOKEN, **budget))

    provider.underlying_quotes(["SPY"])
    broker.get_quotes(["SPY"])
    provider.underlying_quotes(["SPY"])
    with pytest.raises(BrokerRateLimited):
        broker.get_quotes(["SPY"])  # the provider spent the broker's budget...
    with pytest.raises(ProviderUnavailable, match="budget is spent"):
        provider.underlying_quotes(["SPY"])  # ...and its own is the same one
    assert other.underlying_quotes(["SPY"])  # another token has its own buckets
    assert len(market_requests(fake)) == 4
    broker.close()


# --- Configuration ------------------------------------------------------------------------------


def test_provider_for_tradier_needs_a_token(settings):
    settings.TRADIER_MARKET_DATA_TOKEN = ""

    with pytest.raises(ImproperlyConfigured, match="TRADIER_MARKET_DATA_TOKEN"):
        provider_for("tradier")


def test_provider_for_tradier_reads_token_and_url_from_settings(settings, fake):
    settings.TRADIER_MARKET_DATA_TOKEN = TOKEN
    settings.TRADIER_MARKET_DATA_URL = fake.url(LIVE)
    fake.set_quote("VIX", "0", "0", last="17.25")

    provider = provider_for("tradier", clock=lambda: MIDDAY)

    assert isinstance(provider, TradierMarketDataProvider)
    assert provider.underlying_quotes(["VIX"])["VIX"].last == Decimal("17.25")
    (request,) = market_requests(fake)
    assert request.authorized and request.environment == LIVE
    provider.client.close()


def test_a_background_provider_is_refused_at_once_and_leaves_the_reserve_to_the_monitor(settings, fake):
    """The entry context's provider (background) never waits for the shared budget: with 30 % of a
    five-request burst reserved it gets three, then is told when to come back, and the monitor's
    provider (critical, same token) still has its two."""
    token = f"mdTOKEN-{uuid.uuid4().hex}"  # buckets of its own, in the real namespace
    fake.add_token(token, LIVE)
    fake.set_quote("VIX", "0", "0", last="17.25")
    settings.TRADIER_MARKET_DATA_TOKEN = token
    settings.TRADIER_MARKET_DATA_URL = fake.url(LIVE)  # not a Tradier host: 50 a minute, a burst of 5
    settings.TRADIER_RATE_RESERVED_SHARE = 0.3
    background = provider_for("tradier", clock=lambda: MIDDAY, background=True)
    monitor = provider_for("tradier", clock=lambda: MIDDAY)

    for _ in range(3):
        background.underlying_quotes(["VIX"])
    started = time.monotonic()
    with pytest.raises(ProviderThrottled) as refused:
        background.underlying_quotes(["VIX"])
    assert time.monotonic() - started < 0.5 and refused.value.retry_after > 0.5
    assert isinstance(refused.value, ProviderUnavailable)  # the monitor's retries still cover it
    assert len(market_requests(fake)) == 3
    for _ in range(2):
        started = time.monotonic()
        assert monitor.underlying_quotes(["VIX"])["VIX"].last == Decimal("17.25")
        assert time.monotonic() - started < 0.5  # the reserve was there: no wait
    background.client.close()
    monitor.client.close()
