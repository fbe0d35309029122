"""The market data API: quotes, expirations and chains from the configured source, cached and
shared, in the API's error shape."""

import threading
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache

from monitoring.marketdata.listing import is_monthly, monthly_expiry
from tests.fakes.tradier import LIVE, SANDBOX

# A Wednesday afternoon, market open.
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


@pytest.fixture
def at_noon():
    with time_machine.travel(NOW, tick=False):
        cache.clear()
        yield


@pytest.fixture
def signed_in(client, trader):
    client.force_login(trader)
    return client


def test_a_ticker_quote_has_its_price_day_change_source_and_age(at_noon, signed_in):
    response = signed_in.get("/api/market/quote?symbols=spy")
    assert response.status_code == 200, response.content
    (quote,) = response.json()["quotes"]
    assert quote["symbol"] == "SPY" and quote["kind"] == "underlying"
    last, prev = Decimal(quote["last"]), Decimal(quote["prev_close"])
    assert Decimal(quote["change"]) == last - prev
    assert Decimal(quote["bid"]) < last < Decimal(quote["ask"])
    assert quote["source"] == "simulated" and quote["delayed"] is False
    assert quote["age_seconds"] == 0 and quote["quote_time"].startswith("2026-03-11T15:00")


def test_an_option_symbol_is_quoted_and_an_unknown_ticker_is_named(at_noon, signed_in):
    body = signed_in.get("/api/market/quote?symbols=SPY260320C00600000,ZZZZ").json()
    assert [quote["symbol"] for quote in body["quotes"]] == ["SPY260320C00600000"]
    assert body["unknown"] == ["ZZZZ"]
    option = body["quotes"][0]
    assert Decimal(option["bid"]) < Decimal(option["mid"]) < Decimal(option["ask"])
    assert Decimal(option["delta"]) > 0 and option["open_interest"] > 0


def test_only_unknown_tickers_are_a_404_in_the_error_shape(at_noon, signed_in):
    response = signed_in.get("/api/market/quote?symbols=ZZZZ")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "unknown_ticker"
    assert "ZZZZ" in response.json()["errors"][0]["detail"]
    response = signed_in.get("/api/market/expirations?ticker=ZZZZ")
    assert response.status_code == 404 and "ZZZZ" in response.json()["errors"][0]["detail"]


def test_a_malformed_symbol_is_a_field_error(at_noon, signed_in):
    response = signed_in.get("/api/market/quote?symbols=SPY;DROP")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "symbols"


def test_expirations_are_listed_with_dte_and_weekly_or_monthly(at_noon, signed_in):
    body = signed_in.get("/api/market/expirations?ticker=SPY").json()
    rows = body["expirations"]
    assert rows[0] == {"date": "2026-03-13", "dte": 2, "kind": "weekly"}
    assert {"date": "2026-03-20", "dte": 9, "kind": "monthly"} in rows
    assert [row["date"] for row in rows] == sorted(row["date"] for row in rows)


def test_a_monthly_on_a_holiday_moves_to_the_session_before():
    # Juneteenth 2026 falls on Friday the 19th, the third Friday of June: the monthly expires Thursday.
    assert monthly_expiry(2026, 6) == date(2026, 6, 18)
    assert is_monthly(date(2026, 6, 18)) and not is_monthly(date(2026, 6, 19))


def test_the_chain_has_both_sides_around_the_money(at_noon, signed_in):
    response = signed_in.get("/api/market/chain?ticker=SPY&expiry=2026-03-20&strikes=5")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["source"] == "simulated" and len(body["strikes"]) == 11
    spot = Decimal(body["underlying_price"])
    middle = body["strikes"][5]
    assert abs(Decimal(middle["strike"]) - spot) <= Decimal("2.5")
    for side in ("call", "put"):
        quote = middle[side]
        for name in ("bid", "ask", "mid", "last", "volume", "open_interest", "iv", "delta", "age_seconds"):
            assert quote[name] is not None, (side, name)
    assert Decimal(middle["put"]["delta"]) < 0 < Decimal(middle["call"]["delta"])


def test_an_expiry_not_listed_is_a_field_error(at_noon, signed_in):
    response = signed_in.get("/api/market/chain?ticker=SPY&expiry=2026-03-18")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "expiry" and "Mar 20, 2026" in error["detail"]


def test_the_market_api_needs_a_login(client):
    assert client.get("/api/market/quote?symbols=SPY").status_code in (401, 403)


def test_a_token_works_too(at_noon, trader):
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=trader)[1]}")
    assert api.get("/api/market/expirations?ticker=QQQ").status_code == 200


@pytest.fixture
def tradier_source(settings, fake_tradier):
    token = f"md-{uuid.uuid4().hex}"  # its own rate buckets in Redis: no other test has spent them
    fake_tradier.add_token(token, SANDBOX)
    settings.MARKET_DATA_SOURCE = "tradier"
    settings.TRADIER_MARKET_DATA_TOKEN = token
    settings.TRADIER_MARKET_DATA_URL = fake_tradier.url(SANDBOX)
    settings.TRADIER_RATE_SAFETY_MARGIN_PCT = 0  # no margin: the seed caps the sandbox at 50, a burst of 5
    fake_tradier.set_quote("SPY", "599.98", "600.02", last="600.00")
    fake_tradier.set_quote_fields("SPY", prevclose=594.0, type="etf")
    for strike in ("595", "600", "605"):
        for kind in ("C", "P"):
            fake_tradier.set_quote(f"SPY260320{kind}00{strike}000", "4.00", "4.20", last="4.10")
    fake_tradier.set_quote("SPY260327C00600000", "5.00", "5.20")
    return fake_tradier


def test_tradier_sandbox_quotes_are_flagged_delayed(at_noon, signed_in, tradier_source):
    quote = signed_in.get("/api/market/quote?symbols=SPY").json()["quotes"][0]
    assert quote["source"] == "tradier" and quote["delayed"] is True
    assert Decimal(quote["change"]) == Decimal("6.00") and Decimal(quote["change_pct"]) == Decimal("1.01")


def test_tradier_expirations_and_chain_come_from_its_endpoints(at_noon, signed_in, tradier_source):
    rows = signed_in.get("/api/market/expirations?ticker=SPY").json()["expirations"]
    assert rows == [{"date": "2026-03-20", "dte": 9, "kind": "monthly"},
                    {"date": "2026-03-27", "dte": 16, "kind": "weekly"}]
    body = signed_in.get("/api/market/chain?ticker=SPY&expiry=2026-03-20").json()
    assert [row["strike"] for row in body["strikes"]] == ["595.0000", "600.0000", "605.0000"]
    assert body["strikes"][1]["put"]["symbol"] == "SPY260320P00600000"
    assert tradier_source.requests_for("GET", "/markets/options/expirations")[0].query["includeAllRoots"] == "true"
    assert tradier_source.requests_for("GET", "/markets/options/chains")[0].query["greeks"] == "true"


def test_live_tradier_quotes_are_not_delayed(at_noon, signed_in, settings, tradier_source):
    tradier_source.add_token(token := f"md-{uuid.uuid4().hex}", LIVE)
    settings.TRADIER_MARKET_DATA_TOKEN = token
    settings.TRADIER_MARKET_DATA_URL = tradier_source.url(LIVE)
    assert signed_in.get("/api/market/quote?symbols=SPY").json()["quotes"][0]["delayed"] is False


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_requests_cost_one_upstream_request_per_interval(at_noon, tradier_source, trader, settings):
    """50 traders' threads ask for SPY's quote and chain at once: Tradier hears one request for each."""
    from django.db import connection
    from django.test import Client

    settings.MARKET_QUOTE_CACHE_SECONDS = 30
    settings.TRADIER_RATE_RESERVED_SHARE = 0  # the sandbox's 50 a minute, all of its burst (5) for us
    barrier, statuses = threading.Barrier(50), []

    def poll():
        try:
            client = Client()
            client.force_login(trader)
            barrier.wait()
            statuses.append(client.get("/api/market/quote?symbols=SPY").status_code)
            statuses.append(client.get("/api/market/chain?ticker=SPY&expiry=2026-03-20").status_code)
        except Exception as error:  # noqa: BLE001 - shown by the assertion below
            statuses.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 100, [(r.method, r.path, r.query) for r in tradier_source.requests]
    assert len(tradier_source.requests_for("GET", "/markets/options/expirations")) == 1
    assert len(tradier_source.requests_for("GET", "/markets/options/chains")) == 1
    # The quote, and the chain's one look at the underlying.
    assert len(tradier_source.requests_for("GET", "/markets/quotes")) == 2
    cache.delete_many([key for key in cache.keys("market:v1:*") if ":lock" not in key])  # the interval is over
    client = Client()
    client.force_login(trader)
    assert client.get("/api/market/quote?symbols=SPY").status_code == 200
    assert len(tradier_source.requests_for("GET", "/markets/quotes")) == 3


def test_a_spent_rate_budget_is_a_503_with_retry_after(at_noon, signed_in, tradier_source):
    tradier_source.inject("429", path="/markets/quotes", times=5, retry_in=20)
    signed_in.raise_request_exception = False  # a 5xx is reported as an error, as it should be
    response = signed_in.get("/api/market/quote?symbols=SPY")
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "market_data_unavailable"
    assert int(response["Retry-After"]) >= 1


@pytest.mark.parametrize("symbol", ["SPY200117C00300000", "SPY260320C00000000", "SPY991231C00300000"])
def test_an_option_that_cannot_trade_is_unknown_not_an_error(at_noon, signed_in, symbol):
    """Expired, a zero strike, or beyond the market calendar: nothing to price, so nothing is asked."""
    response = signed_in.get(f"/api/market/quote?symbols={symbol}")
    assert response.status_code == 404 and symbol in response.json()["errors"][0]["detail"]


@pytest.mark.parametrize("day", ["0001-01-01", "2100-01-01", "2026-02-30"])
def test_an_expiry_outside_the_supported_years_or_no_date_is_a_field_error(at_noon, signed_in, day):
    response = signed_in.get(f"/api/market/chain?ticker=SPY&expiry={day}")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "expiry"


@pytest.fixture
def orats_source(settings, fake_orats):
    from tests.fakes.orats import TOKEN

    settings.MARKET_DATA_SOURCE, settings.ORATS_URL, settings.ORATS_TOKEN = "orats", fake_orats.url, TOKEN
    settings.ORATS_LIVE = False
    fake_orats.add_chain("SPY", date(2026, 3, 11), [date(2026, 3, 13), date(2026, 3, 20)],
                         [590.0, 595.0, 600.0, 605.0, 610.0], 600.0)
    return fake_orats


def test_orats_delayed_lists_its_expiries_and_chains_from_strikes_flagged_delayed(at_noon, signed_in, orats_source):
    rows = signed_in.get("/api/market/expirations?ticker=SPY").json()["expirations"]
    assert rows == [{"date": "2026-03-13", "dte": 2, "kind": "weekly"},
                    {"date": "2026-03-20", "dte": 9, "kind": "monthly"}]
    body = signed_in.get("/api/market/chain?ticker=SPY&expiry=2026-03-20&strikes=1").json()
    assert body["source"] == "orats" and body["delayed"] is True
    assert [row["strike"] for row in body["strikes"]] == ["595.0000", "600.0000", "605.0000"]
    middle = body["strikes"][1]
    assert middle["call"]["open_interest"] == 1500 and middle["put"]["open_interest"] == 900
    assert Decimal(middle["put"]["delta"]) < 0 < Decimal(middle["call"]["delta"])
    assert orats_source.count("strikes") == 2  # one for the expiries, one for the chain
    signed_in.get("/api/market/chain?ticker=SPY&expiry=2026-03-20")
    assert orats_source.count("strikes") == 2  # both shared from the cache


def test_orats_live_is_not_delayed(at_noon, signed_in, orats_source, settings):
    settings.ORATS_LIVE = True
    quote = signed_in.get("/api/market/quote?symbols=SPY").json()["quotes"][0]
    assert quote["source"] == "orats" and quote["delayed"] is False and quote["last"] == "600.0000"


def test_orats_requests_go_through_the_shared_rate_limiter(at_noon, signed_in, orats_source):
    """With ORATS' budget blocked in Redis (as after its 1,000 a minute), the API answers 503 with
    Retry-After and ORATS hears nothing."""
    from brokers.ratelimit import RateLimiter
    from monitoring.marketdata.orats import RATE_GROUP
    from tests.fakes.orats import TOKEN

    limiter = RateLimiter(TOKEN, namespace="orats")
    limiter._block(RATE_GROUP, 20)
    signed_in.raise_request_exception = False
    try:
        response = signed_in.get("/api/market/expirations?ticker=SPY")
    finally:
        limiter._client().delete(*limiter._keys(RATE_GROUP))  # the other tests' ORATS budget is whole again
    assert response.status_code == 503 and int(response["Retry-After"]) >= 10
    assert orats_source.count() == 0


def test_tradier_with_no_options_on_a_ticker_is_a_404(at_noon, signed_in, tradier_source):
    """Tradier answers `{"expirations": null}` for a symbol without options."""
    response = signed_in.get("/api/market/expirations?ticker=QQQ")
    assert response.status_code == 404 and "QQQ" in response.json()["errors"][0]["detail"]


def test_tradier_expirations_read_a_single_date_sent_bare(fake_tradier):
    """One expiry comes back as `{"expirations": {"date": "2026-03-27"}}`, not a list."""
    from brokers.tradier import TradierMarketData

    fake_tradier.add_token("md-single", SANDBOX)
    fake_tradier.set_quote("IWM260327C00220000", "1.00", "1.10")
    client = TradierMarketData(base_url=fake_tradier.url(SANDBOX), token="md-single")
    assert client.expirations("IWM") == [date(2026, 3, 27)]
    (request,) = fake_tradier.requests_for("GET", "/markets/options/expirations")
    assert request.query == {"symbol": "IWM", "includeAllRoots": "true"}


def test_an_expiry_is_listed_until_its_cutoff_and_gone_after(db):
    from monitoring.marketdata.listing import simulated_expirations

    friday_noon, friday_evening = datetime(2026, 3, 13, 16, 0, tzinfo=UTC), datetime(2026, 3, 13, 21, 0, tzinfo=UTC)
    assert simulated_expirations(friday_noon)[0] == date(2026, 3, 13)
    assert simulated_expirations(friday_evening)[0] == date(2026, 3, 20)
