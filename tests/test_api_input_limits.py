"""Inputs at the edges of what Python, the calendar and the renderers can hold are refused with a
400 in the API's one error shape, never a 500, on every operation that takes them (and the one
page that takes a date, the ops admin's date hierarchy, treats them as a bad filter).

The operations are found in the API's own OpenAPI schema, so a new endpoint with a JSON body or
a date parameter is covered the day it is added: every JSON body against nesting (a RecursionError
in the decoder without a limit), every date and date-time parameter or body field against dates
Python cannot step past (9999-12-31 plus a day is an OverflowError), every expiry against the
market calendar's range, every GET against a `?format=` it does not offer.
"""

from datetime import date, timedelta

import pytest
from django.contrib import admin
from drf_spectacular.generators import SchemaGenerator
from knox.models import AuthToken
from rest_framework.test import APIClient

from monitoring.clock import calendar_bounds
from tests.factories import PaperTradeFactory
from tradeoptions.admin import BoundedDates
from tradeoptions.parsers import MAX_JSON_DEPTH
from tradeoptions.words import day_text

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _operations():
    for path, methods in SCHEMA["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def _url(path: str, trade_id: int = 0) -> str:
    """The path with Alice's trade in it: a body is read only once the trade is found."""
    return path.replace("{id}", str(trade_id)).replace("{trade_id}", str(trade_id))


JSON_BODIES = sorted((method.upper(), path) for path, method, operation in _operations()
                     if "application/json" in operation.get("requestBody", {}).get("content", {}))
# Dates that pick one thing rather than filter (the chain's expiry must be one the ticker lists, and
# the ticker is required beside it): tested with their route (monitoring/tests/test_api_market.py).
NOT_FILTERS = {("/api/market/chain", "expiry")}
DATE_PARAMETERS = sorted(
    (path, parameter["name"], parameter["schema"]["format"])
    for path, method, operation in _operations() if method == "get"
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query" and parameter.get("schema", {}).get("format") in ("date", "date-time")
    and (path, parameter["name"]) not in NOT_FILTERS
)
DATE_BODY_FIELDS = sorted(
    (method.upper(), path, name, field["format"])
    for path, method, operation in _operations()
    for media in operation.get("requestBody", {}).get("content", {}).values()
    for name, field in _resolve(media["schema"]).get("properties", {}).items()
    if field.get("format") in ("date", "date-time") and not field.get("readOnly")
)
GETS = sorted(path for path, method, _ in _operations() if method == "get")


@pytest.fixture
def alices_trade(trader):
    return PaperTradeFactory(owner=trader)


@pytest.fixture
def alice(trader):
    client = APIClient()
    _, token = AuthToken.objects.create(user=trader)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def open_body():
    """A valid market entry on the contract the hand-driven market quotes (SPY 18 Dec 26 570 C)."""

    def body(**changes):
        payload = {"option_symbol": None, "ticker": "SPY", "option_type": "CALL", "strike": "570",
                   "expiry": "2026-12-18", "qty": 1, "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50",
                   "strategy": "edges", **changes}
        return {name: value for name, value in payload.items() if value is not None}

    return body


def _send(client, method: str, path: str, body: str, trade):
    return getattr(client, method.lower())(_url(path, trade.pk), data=body, content_type="application/json")


def _refused(response, attr, *, code=None, kind="validation_error") -> dict:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["type"] == kind and body["errors"][0]["attr"] == attr, body
    if code:
        assert body["errors"][0]["code"] == code, body
    return body["errors"][0]


def test_the_schema_walk_finds_the_operations_it_must_cover():
    """Guards the guard: were the schema read wrong, every test below would pass on nothing."""
    assert ("POST", "/api/trades") in JSON_BODIES and ("PUT", "/api/settings") in JSON_BODIES
    assert ("/api/analytics/performance", "to", "date") in DATE_PARAMETERS
    assert ("/api/trades", "closed_to", "date-time") in DATE_PARAMETERS
    assert ("POST", "/api/trades", "expiry", "date") in DATE_BODY_FIELDS
    assert "/api/trades/export" in GETS and "/api/analytics/dataset" in GETS


# --- Nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
def test_a_body_nested_past_the_interpreters_limit_is_a_parse_error(alice, alices_trade, method, path):
    """A few hundred kilobytes of `[` made the decoder raise RecursionError: a 500."""
    response = _send(alice, method, path, "[" * 100_000 + "]" * 100_000, alices_trade)
    error = _refused(response, None, code="parse_error", kind="client_error")
    assert f"nested more than {MAX_JSON_DEPTH} levels" in error["detail"]


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
def test_a_field_nested_past_the_limit_is_refused_before_any_view_sees_it(alice, alices_trade, method, path):
    """Deep enough to pass the decoder, too deep for the limit: refused whole, as a parse error."""
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = _send(alice, method, path, f'{{"signals_snapshot": {nested}}}', alices_trade)
    _refused(response, None, code="parse_error", kind="client_error")


@pytest.mark.parametrize(("method", "path"), JSON_BODIES)
def test_a_body_larger_than_djangos_upload_limit_is_a_parse_error(alice, alices_trade, settings, method, path):
    """Django refuses to read it (RequestDataTooBig), which DRF's handler knew nothing of: a 500."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = _send(alice, method, path, '{"strategy": "' + "x" * 10_000 + '"}', alices_trade)
    error = _refused(response, None, code="parse_error", kind="client_error")
    assert error["detail"] == "The body is larger than 10000 bytes."


def test_a_context_nested_as_deep_as_the_limit_still_reaches_the_trade(alice, market, open_body):
    nested: dict = {"rsi": 61}
    for _ in range(MAX_JSON_DEPTH - 2):  # the body is one level, signals_snapshot another
        nested = {"inner": nested}
    response = alice.post("/api/trades/validate", open_body(signals_snapshot=nested), format="json")
    assert response.status_code == 200, response.content


# --- Dates --------------------------------------------------------------------------------------

OUTSIDE = ["0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31"]


def _written(day: str, kind: str, *, end_of_day=False) -> str:
    if kind == "date":
        return day
    return f"{day}T23:59:59-12:00" if end_of_day else f"{day}T00:00:00+14:00"


@pytest.mark.parametrize("day", OUTSIDE)
@pytest.mark.parametrize(("path", "name", "kind"), DATE_PARAMETERS)
def test_a_date_filter_outside_the_supported_years_is_a_field_error(alice, path, name, kind, day):
    response = alice.get(_url(path), {name: _written(day, kind)})
    error = _refused(response, name, code="out_of_range")
    assert error["detail"] == "Must be a date from Jan 1, 2000 to Dec 31, 2099."


@pytest.mark.parametrize(("path", "name", "kind"), DATE_PARAMETERS)
def test_a_date_filter_at_the_ends_of_the_supported_years_is_answered(alice, path, name, kind):
    """The last day plus one (the reports' "up to and including") and the widest offsets stay in range."""
    for value in (_written("2099-12-31", kind, end_of_day=True), _written("2000-01-01", kind)):
        response = alice.get(_url(path), {name: value})
        assert response.status_code == 200, (value, response.content[:300])


@pytest.mark.parametrize("day", OUTSIDE)
@pytest.mark.parametrize(("method", "path", "name", "kind"), DATE_BODY_FIELDS)
def test_a_date_in_a_body_outside_the_supported_years_is_a_field_error(alice, market, open_body, method, path,
                                                                       name, kind, day):
    response = getattr(alice, method.lower())(_url(path), open_body(**{name: _written(day, kind)}), format="json")
    _refused(response, name, code="out_of_range")


def test_the_reported_to_9999_12_31_is_a_400_on_every_report(alice):
    for report in ("performance", "calibration", "exit-replay", "exit-policy-replay", "dataset"):
        response = alice.get(f"/api/analytics/{report}", {"to": "9999-12-31", "format": "csv"} if report == "dataset"
                             else {"to": "9999-12-31"})
        _refused(response, "to")


# --- Expiry against the market calendar (the real XNYS calendar: no hand-driven market here) -----


def _beyond_the_calendar() -> date:
    """A Friday after the calendar's last day: a plausible expiry the calendar cannot answer for."""
    day = calendar_bounds()[1] + timedelta(days=1)
    return day + timedelta(days=(4 - day.weekday()) % 7)


@pytest.mark.parametrize("path", ["/api/trades", "/api/trades/validate"])
def test_an_expiry_beyond_the_market_calendar_is_a_field_error(alice, open_body, path):
    expiry = _beyond_the_calendar()
    response = alice.post(path, open_body(expiry=expiry.isoformat()), format="json")
    error = _refused(response, "expiry")
    assert error["detail"] == (f"{day_text(expiry)} is beyond the market calendar: no contract expiring then can be "
                               "traded yet.")


@pytest.mark.parametrize("path", ["/api/trades", "/api/trades/validate"])
def test_an_option_symbol_expiring_beyond_the_market_calendar_is_a_field_error(alice, open_body, path):
    symbol = f"SPY{_beyond_the_calendar():%y%m%d}C00570000"
    body = open_body(option_symbol=symbol, ticker=None, option_type=None, strike=None, expiry=None)
    _refused(alice.post(path, body, format="json"), "expiry")


def test_nothing_is_written_for_an_expiry_beyond_the_calendar(alice, trader, open_body):
    from trades.models import PaperTrade

    alice.post("/api/trades", open_body(expiry=_beyond_the_calendar().isoformat()), format="json")
    assert not PaperTrade.objects.filter(owner=trader).exists()


# --- ?format= ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", GETS)
def test_a_format_no_renderer_offers_is_a_field_error_in_json(alice, alices_trade, path):
    """DRF answered 404; on the export, whose first renderer is CSV, with the body "typeerrors"."""
    response = alice.get(_url(path, alices_trade.pk), {"format": "xml"})
    error = _refused(response, "format")
    assert error["detail"].startswith("Must be one of: ")


def test_the_reported_export_format_xml_names_the_formats_on_offer(alice):
    error = _refused(alice.get("/api/trades/export?format=xml"), "format")
    assert error["detail"] == "Must be one of: csv, json."


def test_an_error_on_a_csv_export_is_json_not_the_errors_keys(db, client):
    """Refused before the view runs (no credentials), with CSV already negotiated."""
    response = client.get("/api/trades/export?format=csv")
    assert response.status_code in (401, 403) and response["Content-Type"] == "application/json"
    assert response.json()["type"] == "client_error"


# --- Pages: the ops admin's date hierarchy (no other page takes a date) ---------------------------

HIERARCHIES = sorted((model._meta.label, model_admin.date_hierarchy)
                     for model, model_admin in admin.site._registry.items() if model_admin.date_hierarchy)
END_OF_CALENDAR = ["{0}__year=9999", "{0}__year=9999&{0}__month=12", "{0}__year=9999&{0}__month=12&{0}__day=31"]


@pytest.mark.parametrize("query", END_OF_CALENDAR)
@pytest.mark.parametrize(("label", "field"), HIERARCHIES)
def test_a_date_hierarchy_at_the_end_of_the_calendar_is_a_bad_filter_not_a_500(client, ops_user, label, field, query):
    client.force_login(ops_user)
    app, model = label.lower().split(".")
    response = client.get(f"/admin/{app}/{model}/?{query.format(field)}")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_every_admin_with_a_date_hierarchy_is_checked():
    assert ("monitoring.PriceSnapshot", "timestamp") in HIERARCHIES
    for model, model_admin in admin.site._registry.items():
        if model_admin.date_hierarchy:
            assert issubclass(model_admin.get_changelist(None), BoundedDates), model
