"""Context at entry through POST /api/trades: the scanner's parts are checked and kept, the order
book is taken from the entry's own quote, and the rest is asked for once the open has committed."""

from datetime import timedelta

import pytest

from brokers.models import PaperOrder
from tradeoptions import tenancy
from trades.models import PaperTrade
from trades.services import context as entry_context

from .conftest import CONTRACT


@pytest.fixture
def requests_for_context(monkeypatch):
    """The collector the monitoring app registers, replaced by a list of what was asked."""
    asked = []
    monkeypatch.setattr(entry_context, "_collector", lambda **request: asked.append(request))
    return asked


def _stored(user):
    with tenancy.acting_as(user.pk):
        return list(PaperTrade.objects.filter(owner=user))


def _errors(response):
    return {error["attr"]: error["detail"] for error in response.json()["errors"]}


def test_the_order_book_comes_from_the_quote_the_entry_was_priced_at(api_as, trader, market, open_body):
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201, response.json()
    book = response.json()["order_book_state"]
    assert (book["bid"], book["ask"], book["spread_pct"]) == (4.1, 4.3, 4.7619)  # 0.20 over the 4.20 mid
    assert book["as_of"] == market.now().isoformat()
    # The hand-driven market quotes no greeks and no open interest: said so, not invented.
    assert book["delta"] is None and book["open_interest"] is None
    assert set(book["missing"]) == {"greeks", "open_interest"}
    assert response.json()["signals_snapshot"] == {"rsi": 61}  # the scanner's part, as sent


def test_the_scanners_order_book_wins(api_as, trader, market, open_body):
    sent = {"bid": 4.0, "ask": 4.4, "as_of": (market.now() - timedelta(seconds=5)).isoformat()}
    response = api_as(trader).post("/api/trades", open_body(order_book_state=sent), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["order_book_state"] == sent


def test_an_oversized_ai_log_is_refused_on_its_field_and_nothing_is_written(api_as, trader, market, open_body,
                                                                            settings):
    settings.ENTRY_AI_LOG_MAX_BYTES = 1024
    log = {"prompt": "p" * 1000, "output": "BUY", "confidence": 0.8}
    response = api_as(trader).post("/api/trades", open_body(ai_reasoning_log=log), format="json")
    assert response.status_code == 400
    assert "limit is 1024 (ENTRY_AI_LOG_MAX_BYTES)" in _errors(response)["ai_reasoning_log"]
    assert _stored(trader) == []
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.exists()
    # The live check of the form refuses it the same way.
    checked = api_as(trader).post("/api/trades/validate", open_body(ai_reasoning_log=log), format="json")
    assert checked.status_code == 400 and "ai_reasoning_log" in _errors(checked)


def test_an_ai_log_within_the_limit_is_stored_as_sent(api_as, trader, market, open_body, settings):
    settings.ENTRY_AI_LOG_MAX_BYTES = 1024
    log = {"prompt": "Is NVDA breaking out? ünïcode counts in bytes", "output": "BUY", "confidence": 0.8}
    response = api_as(trader).post("/api/trades", open_body(ai_reasoning_log=log), format="json")
    assert response.status_code == 201
    assert response.json()["ai_reasoning_log"] == log


@pytest.mark.parametrize(("part", "context"), [
    ("signals_snapshot", {"as_of": "2026-12-01T15:00:05.001+00:00", "1m": {"rsi14": 55}}),  # past the skew
    ("signals_snapshot", {"1m": {"rsi14": 55, "as_of": "2026-12-01T10:01:00-05:00"}}),  # 15:01 UTC
    ("market_regime", {"vix": 18, "as_of": "2026-12-02T00:00:00Z"}),
    ("ai_reasoning_log", [{"step": "scan", "as_of": "2026-12-01T15:00:00Z"},
                          {"step": "news", "as_of": "2026-12-01T15:30:00Z"}]),  # a list of steps
])
def test_context_as_of_after_the_entry_is_refused(api_as, trader, market, open_body, part, context):
    response = api_as(trader).post("/api/trades", open_body(**{part: context}), format="json")
    assert response.status_code == 400
    assert "after the entry" in _errors(response)[part]
    assert _stored(trader) == []


def test_context_as_of_must_be_a_readable_instant(api_as, trader, market, open_body):
    response = api_as(trader).post("/api/trades", open_body(market_regime={"as_of": "yesterday"}), format="json")
    assert response.status_code == 400 and "ISO 8601" in _errors(response)["market_regime"]


def test_context_as_of_the_entry_itself_is_accepted(api_as, trader, market, open_body):
    sent = {"as_of": market.now().isoformat(), "1m": {"rsi14": 55, "as_of": market.now().isoformat()}}
    response = api_as(trader).post("/api/trades", open_body(signals_snapshot=sent), format="json")
    assert response.status_code == 201 and response.json()["signals_snapshot"] == sent


def test_a_scanner_clock_a_few_seconds_ahead_is_clock_skew_not_the_future(api_as, trader, market, open_body):
    """ENTRY_CONTEXT_CLOCK_SKEW_SECONDS (5 by default): the scanner stamped its data by its own
    clock, slightly ahead of ours; that is not data from after the entry."""
    sent = {"as_of": (market.now() + timedelta(seconds=5)).isoformat(), "1m": {"rsi14": 55}}
    response = api_as(trader).post("/api/trades", open_body(signals_snapshot=sent), format="json")
    assert response.status_code == 201 and response.json()["signals_snapshot"] == sent


def test_with_no_skew_allowed_one_second_ahead_is_refused(api_as, trader, market, open_body, settings):
    settings.ENTRY_CONTEXT_CLOCK_SKEW_SECONDS = 0
    sent = {"as_of": (market.now() + timedelta(seconds=1)).isoformat()}
    response = api_as(trader).post("/api/trades", open_body(market_regime=sent), format="json")
    assert response.status_code == 400 and "after the entry" in _errors(response)["market_regime"]


def test_the_rest_is_asked_for_once_the_open_has_committed(api_as, trader, market, open_body, requests_for_context,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_as(trader).post("/api/trades", open_body(), format="json")
        assert requests_for_context == []  # nothing asked before the commit
    assert response.status_code == 201
    for callback in callbacks:
        callback()
    assert requests_for_context == [{"trade_id": response.json()["id"], "owner_id": trader.pk,
                                     "entry_at": market.now()}]


def test_nothing_is_asked_when_the_scanner_sent_every_part(api_as, trader, market, open_body, requests_for_context,
                                                          django_capture_on_commit_callbacks):
    body = open_body(market_regime={"vix": 18})  # signals come with open_body, the book from the quote
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as(trader).post("/api/trades", body, format="json").status_code == 201
    assert requests_for_context == []


def test_a_failing_collector_never_reaches_the_trader(api_as, trader, market, open_body, monkeypatch,
                                                     django_capture_on_commit_callbacks):
    def queue_down(**request):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(entry_context, "_collector", queue_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201 and response.json()["status"] == "OPEN"
    assert response.json()["option_symbol"] == CONTRACT
