"""Every refusal a trader can read is in trader words: the 400s (and the other refusals with a
message) of the trade, validate, adjust, close, working-order, settings and market APIs name the
thing by the label the trader sees ("the stop-loss", "the heat limit"), never by the API's field
name ("sl_price", "heat_limit_pct"). The field's key stays in `attr`, for the form to put the
message beside the right input.

The walk is wide on purpose: every field of every JSON body in the API schema gets a battery of
wrong values, and the refusals only the services can make (a past expiry, a stop above the bid, a
preset without a percentage, live trading without its confirmation, ...) are sent one by one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache
from drf_spectacular.generators import SchemaGenerator
from rest_framework import fields

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
# A snake_case identifier: lower-case words joined by underscores ("heat_limit_pct", "new_sl").
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
# An ISO date or time, which a trader may misread: "Dec 18, 2026" says the same without doubt.
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# DRF's stock messages, as patterns ("Ensure this value is greater than or equal to {min_value}.").
STOCK = [re.compile(re.sub(r"\\\{\w+\\\}", ".*", re.escape(str(message))))
         for field in vars(fields).values() if isinstance(field, type) and issubclass(field, fields.Field)
         for message in getattr(field, "default_error_messages", {}).values()]
# What a scanner alone sends (no page has these fields): their messages may stay plain.
SCANNER_ONLY = {"signals_snapshot", "market_regime", "order_book_state", "ai_reasoning_log", "idempotency_key"}
WRONG_VALUES = ["", "x", "-1", "0", "1e9", "4.123456", "1999-12-31", -1, 0, 1.5, 10**12, True, None, [], {}, "\x00"]
TRADER_BODIES = [("POST", "/api/trades"), ("POST", "/api/trades/validate"), ("POST", "/api/trades/{id}/adjust"),
                 ("POST", "/api/trades/{id}/close"), ("POST", "/api/trades/{id}/entry/cancel"),
                 ("POST", "/api/trades/{id}/entry/reprice"), ("POST", "/api/trades/{id}/close/cancel"),
                 ("POST", "/api/trades/{id}/close/reprice"), ("PUT", "/api/settings")]


def _properties(method: str, path: str) -> dict:
    operation = SCHEMA["paths"][path][method.lower()]
    node = operation["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return {name: field for name, field in node["properties"].items() if not field.get("readOnly")}


def _words(response) -> list[tuple[str | None, str]]:
    """(attr, detail) of each refusal in the answer."""
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code < 400:
        return []
    return [(error["attr"], error["detail"]) for error in response.json()["errors"]]


def _stock(detail: str) -> bool:
    """DRF's own wording ("This field is required."), which names no field at all."""
    return any(pattern.fullmatch(detail) for pattern in STOCK)


def _in_trader_words(heard: list[tuple[str, str | None, str]]) -> list[tuple[str, str | None, str]]:
    """The messages that still name a field by its code name, give a date as ISO, or are DRF's stock words."""
    return [(where, attr, detail) for where, attr, detail in heard
            if SNAKE.search(detail) or ISO_DATE.search(detail) or (attr not in SCANNER_ONLY and _stock(detail))]


def _listed(wrong) -> str:
    return "\n".join(sorted({f"{attr}: {detail}   <- {where}" for where, attr, detail in wrong}))


@pytest.fixture
def alice(api_as, trader):
    return api_as(trader)


@pytest.fixture
def open_body():
    """A market entry on the contract the hand-driven market quotes (SPY Dec 18, 2026 570 call, 4.10 / 4.30)."""

    def body(**changes):
        payload = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": "2026-12-18", "qty": 2,
                   "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "momentum", **changes}
        return {name: value for name, value in payload.items() if value is not None}

    return body


@pytest.fixture
def held(alice, market, open_body):
    """Alice's open trade at 4.30 (SL 3.00, TP 6.50; the bid is 4.10) and her pending limit entry."""
    opened = alice.post("/api/trades", open_body(), format="json").json()
    market.set_quote("SPY261218C00580000", "2.00", "2.20")
    pending = alice.post("/api/trades", open_body(strike="580", qty=1, entry_type="limit", limit_price="1.50",
                                                  sl_price="1.40", tp_price="3.00"), format="json").json()
    assert (opened["status"], pending["status"]) == ("OPEN", "PENDING"), (opened, pending)
    return {"open": opened, "pending": pending}


def test_the_walk_covers_every_body_a_trader_sends():
    """Guards the guard: a body read wrong from the schema would leave the test below walking nothing."""
    assert {"sl_price", "tp_price", "qty", "expiry"} <= set(_properties("POST", "/api/trades"))
    assert {"new_sl", "new_tp", "version"} <= set(_properties("POST", "/api/trades/{id}/adjust"))
    assert {"heat_limit_pct", "strategy_presets", "broker_mode"} <= set(_properties("PUT", "/api/settings"))


def test_no_field_name_is_heard_from_a_wrong_value_in_any_field(alice, held):
    heard = []
    for method, path in TRADER_BODIES:
        trade = held["pending"] if "entry" in path else held["open"]
        url = path.replace("{id}", str(trade["id"]))
        send = getattr(alice, method.lower())
        heard += [(f"{method} {path} {{}}", *said) for said in _words(send(url, {}, format="json"))]
        for name in _properties(method, path):
            for value in WRONG_VALUES:
                body = {"version": trade["version"], name: value}
                heard += [(f"{method} {path} {name}={value!r}", *said)
                          for said in _words(send(url, body, format="json"))]
    assert len(heard) > 300  # the walk was refused a lot, as it should be
    assert not (wrong := _in_trader_words(heard)), _listed(wrong)


# Refusals only the services make, each with the field it is about.
def _service_refusals(open_body, held):
    opened, pending = held["open"], held["pending"]
    return [
        ("POST", "/api/trades/validate", open_body(expiry="2026-11-20"), "expiry"),
        ("POST", "/api/trades/validate", open_body(expiry="2026-12-19"), "expiry"),
        ("POST", "/api/trades/validate", open_body(strike="575.5"), "option_symbol"),
        ("POST", "/api/trades/validate", open_body(sl_price="3.00", sl_pct="30"), "sl_pct"),
        ("POST", "/api/trades/validate", open_body(sl_price=None, tp_price=None, strategy=""), "sl_price"),
        ("POST", "/api/trades/validate", open_body(sl_price="5.00"), "sl_price"),
        ("POST", "/api/trades/validate", open_body(tp_price="4.00"), "tp_price"),
        ("POST", "/api/trades/validate", open_body(sl_pct="150", sl_price=None), "sl_pct"),
        ("POST", "/api/trades/validate", open_body(entry_type="limit"), "limit_price"),
        ("POST", "/api/trades/validate", open_body(limit_price="4.00"), "limit_price"),
        ("POST", "/api/trades/validate", open_body(option_symbol="SPY261218X00570000"), "option_symbol"),
        ("POST", "/api/trades/validate", open_body(option_symbol="SPY261218C00575000"), "strike"),
        ("POST", "/api/trades/validate", open_body(qty=40), "heat_limit_pct"),
        ("POST", f"/api/trades/{opened['id']}/adjust", {"version": opened["version"]}, "new_sl"),
        ("POST", f"/api/trades/{opened['id']}/adjust", {"version": opened["version"], "new_sl": "4.20"}, "new_sl"),
        ("POST", f"/api/trades/{opened['id']}/adjust", {"version": opened["version"], "new_tp": "4.00"}, "new_tp"),
        ("POST", f"/api/trades/{opened['id']}/adjust", {"version": opened["version"], "new_sl": "7.00"}, "new_sl"),
        ("POST", f"/api/trades/{pending['id']}/entry/reprice", {"version": pending["version"], "limit_price": "0.50"},
         "limit_price"),
        ("POST", f"/api/trades/{opened['id']}/close/reprice", {"version": opened["version"], "order_type": "limit"},
         "limit_price"),
        ("PUT", "/api/settings", {"broker_mode": "TRADIER_SANDBOX"}, "tradier_sandbox_token"),
        ("PUT", "/api/settings", {"broker_mode": "TRADIER_LIVE"}, "confirmation"),
        ("PUT", "/api/settings", {"strategy_presets": {"scalp": {"stop": "30"}}}, "strategy_presets"),
        ("PUT", "/api/settings", {"strategy_presets": {"scalp": {"sl_pct": "x"}}}, "strategy_presets"),
        ("PUT", "/api/settings", {"strategy_presets": {"scalp": {"sl_pct": "130", "tp_pct": "0"}}},
         "strategy_presets"),
        ("PUT", "/api/settings", {"strategy_presets": ["scalp"]}, "strategy_presets"),
        ("PUT", "/api/settings", {"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
    ]


def test_the_services_refusals_are_in_trader_words_too(alice, held, open_body, settings):
    settings.ALLOW_LIVE_TRADING = True
    heard = []
    for method, url, body, attr in _service_refusals(open_body, held):
        said = _words(getattr(alice, method.lower())(url, body, format="json"))
        assert attr in {name for name, _ in said}, (method, url, body, said)
        heard += [(f"{method} {url} {body}", *item) for item in said]
    assert not (wrong := _in_trader_words(heard)), _listed(wrong)


# A Wednesday afternoon, market open (the simulated source lists SPY's expiries).
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize("query", [
    "/api/market/quote", "/api/market/quote?symbols=", "/api/market/quote?symbols=spy_x",
    "/api/market/expirations", "/api/market/expirations?ticker=SPY_X", "/api/market/chain?ticker=SPY",
    "/api/market/chain?ticker=SPY&expiry=2026-03-14", "/api/market/chain?ticker=SPY&expiry=tomorrow",
    "/api/market/chain?ticker=SPY&expiry=1999-12-31", "/api/market/chain?ticker=SPY&expiry=2026-03-13&strikes=0",
    "/api/market/chain?ticker=SPY&expiry=2026-03-13&strikes=x",
])
def test_the_market_apis_refusals_are_in_trader_words(alice, query):
    with time_machine.travel(NOW, tick=False):
        cache.clear()
        heard = [(query, *said) for said in _words(alice.get(query))]
    assert heard
    assert not (wrong := _in_trader_words(heard)), _listed(wrong)
