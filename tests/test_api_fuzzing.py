"""The API against its own OpenAPI schema, fuzzed by schemathesis with every check on.

Each operation is called with generated valid and invalid requests (schemathesis' examples,
coverage and fuzzing phases), then sequences of calls follow the links between operations (the
stateful phase: open a trade, read it, adjust it, close it...). The requests go through the
whole Django stack (middleware, knox token authentication, the tenant transaction) to the real
PostgreSQL as the app role, under row-level security. Any 5xx, any answer the schema does not
describe, any invalid request accepted fails the test.

One check is narrowed, for a reason no schema can fix: `positive_data_acceptance` expects a
schema-valid request to succeed. The operations in RULES_BEYOND_THE_SCHEMA check a request
against rules OpenAPI cannot state: the market and the account (the contract has expired, the
price is beyond the quote, the ticker lists no such expiry, a risk limit is reached, live trading
is switched off, the version is stale) or one parameter against another (`from` after `to` in a
report, the trade list, the history or the export). A schema-valid request may be refused there,
with a documented 400/409/422 in the one error shape, which `response_schema_conformance` still
holds to the schema. Everywhere else the check runs as shipped.
Those operations are also every one with a JSON body, where one more such rule holds: nesting
deeper than MAX_JSON_DEPTH is refused (JSON Schema has no keyword for depth).

The generators reach the inputs that once answered 500 (tests/test_api_input_limits.py has a
targeted test for each): every date and date-time, in a query or a body, is now and then one of
the edges (Python's first and last day, the supported years' ends and the days beyond them, the
market calendar's first and last day and the days beyond, at the widest UTC offsets), and a JSON
body now and then carries a field nested just within or past the limit. Where an edge breaks the
schema (the year pattern) schemathesis itself counts the request as invalid and expects a 4xx.
"""

from datetime import date, timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from knox.models import AuthToken
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitoring.clock import calendar_bounds
from tradeoptions.api import FIRST_DATE, LAST_DATE
from tradeoptions.parsers import MAX_JSON_DEPTH

CONTRACT = "SPY261218C00570000"
RULES_BEYOND_THE_SCHEMA = {
    "POST /api/trades", "POST /api/trades/validate", "POST /api/trades/{id}/close", "POST /api/trades/{id}/adjust",
    "POST /api/trades/{id}/entry/cancel", "POST /api/trades/{id}/entry/reprice", "POST /api/trades/{id}/close/cancel",
    "POST /api/trades/{id}/close/reprice",
    # The schema lists each setting (unknown ones are refused there too); what it cannot say: the version is
    # stale, a decimal text's range (OpenAPI 3.0 bounds numbers only; each range is in its description), one
    # trailing kind at a time and a start of trailing without a trailing stop (rules across fields).
    "POST /api/trades/{id}/exit-policy",
    "PUT /api/settings", "GET /api/analytics/performance", "GET /api/analytics/calibration",
    "GET /api/analytics/exit-replay", "GET /api/analytics/exit-policy-replay", "GET /api/analytics/dataset",
    "GET /api/market/chain",
    # A spread's strikes in order, listed and quoted by the market, its expiries still trading (the template's rules).
    "POST /api/spreads/preview",
    "GET /api/trades", "GET /api/trades/history", "GET /api/trades/export",  # `from` after `to`
    # A channel's URL must be one Apprise knows, at a host we send to; quiet hours need both ends.
    "POST /api/notification-channels", "PUT /api/notification-channels/{id}",
    "PATCH /api/notification-channels/{id}",
    # A push endpoint must be a push service's URL at a host we send to, with a real P-256 key.
    "POST /api/push-subscriptions",
}
# Bounded, so the suite stays fast; the ci profile (conftest.py) makes the examples reproducible.
FUZZ = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
WORKFLOWS = settings(max_examples=8, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck))

APP = get_wsgi_application()
OPENAPI = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.app = APP


# --- Edges the generators reach --------------------------------------------------------------------


def _edge_days() -> list[date]:
    first, last = calendar_bounds()
    day = timedelta(days=1)
    return [date.min, FIRST_DATE - day, FIRST_DATE, first - day, first, last, last + day, LAST_DATE, LAST_DATE + day,
            date.max]


EDGE_DAYS = st.deferred(lambda: st.sampled_from(_edge_days()))  # the calendar is built on first draw
OFFSETS = st.sampled_from(["Z", "+14:00", "-12:00"])


def _written(kind: str, day: date, offset: str) -> str:
    """The day as a date, or as a moment at its widest: its first second east of UTC, its last west."""
    if kind == "date":
        return day.isoformat()
    return f"{day.isoformat()}T{'23:59:59' if offset.startswith('-') else '00:00:00'}{offset}"


def _properties(node: dict) -> dict:
    while "$ref" in node:
        node = OPENAPI["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node.get("properties", {})


def _dates(parameters_or_properties) -> dict[str, str]:
    return {name: spec["format"] for name, spec in parameters_or_properties
            if spec.get("format") in ("date", "date-time") and not spec.get("readOnly")}


DATE_QUERY = {(method.upper(), path): _dates((p["name"], p.get("schema", {})) for p in operation.get("parameters", [])
                                             if p["in"] == "query")
              for path, methods in OPENAPI["paths"].items() for method, operation in methods.items()}
DATE_BODY = {(method.upper(), path): _dates(_properties(media["schema"]).items())
             for path, methods in OPENAPI["paths"].items() for method, operation in methods.items()
             for media in operation.get("requestBody", {}).get("content", {}).values()}


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _edited(case, container: str, name: str, value):
    # Assigned (not edited in place) so that schemathesis judges the request again: an edge
    # outside the schema's year pattern makes it an invalid request, which must get a 4xx.
    setattr(case, container, {**(getattr(case, container) or {}), name: value})
    return case


@schema.hook
def flatmap_case(context, case):
    """Now and then an edge in place of a generated date (query or body), or a nested field."""
    key = (case.operation.method.upper(), case.operation.path)
    variants = [st.just(case)]
    for container, dates in (("query", DATE_QUERY.get(key)), ("body", DATE_BODY.get(key))):
        if dates and isinstance(getattr(case, container) or {}, dict):
            variants.append(st.builds(
                lambda name, day, offset, container=container, dates=dates:
                    _edited(case, container, name, _written(dates[name], day, offset)),
                st.sampled_from(sorted(dates)), EDGE_DAYS, OFFSETS))
    if isinstance(case.body, dict):
        # The body is one level: a field as deep as the limit allows, one level more, or far more.
        variants.append(st.builds(lambda depth: _edited(case, "body", "signals_snapshot", _nested(depth)),
                                  st.sampled_from([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, 4 * MAX_JSON_DEPTH])))
    return st.one_of(variants)


@pytest.fixture
def wsgi_app():
    """The real WSGI application, without the per-request connection recycling that would close
    the test's transaction (Django's test client switches it off the same way, per request, and
    switches it back on after: so this fixture comes after any fixture that uses a test client)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield APP
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def auth(trader, market):
    """Alice's knox token, as a scanner would send it. She has one trade open at the local paper
    broker (opened through the API, so the broker holds its contracts and bracket) to start from."""
    _, token = AuthToken.objects.create(user=trader)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    opened = client.post("/api/trades", {"option_symbol": CONTRACT, "qty": 2, "entry_type": "market",
                                         "sl_price": "3.00", "tp_price": "6.50", "strategy": "fuzz"})
    assert opened.status_code == 201, opened.content
    return {"Authorization": f"Token {token}"}


def _excluded(case) -> list:
    return [positive_data_acceptance] if case.operation.label in RULES_BEYOND_THE_SCHEMA else []


@schema.parametrize()
@FUZZ
def test_every_operation_answers_within_its_schema(case, auth, wsgi_app):
    case.call_and_validate(headers=auth, excluded_checks=_excluded(case))


def test_workflows_across_operations_answer_within_the_schema(auth, wsgi_app):
    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, headers=auth, additional_checks=additional_checks,
                                   excluded_checks=_excluded(case), transport_kwargs=kwargs or None,
                                   recorder=self.recorder)

    Workflow.run(settings=WORKFLOWS)


@pytest.mark.parametrize(("method", "path", "reached"), [
    ("GET", "/api/analytics/performance", lambda case: (case.query or {}).get("to") == "9999-12-31"),
    ("GET", "/api/trades", lambda case: str((case.query or {}).get("closed_from", "")).startswith("0001-01-01")),
    ("POST", "/api/trades", lambda case: isinstance(case.body, dict)
        and case.body.get("expiry") == (calendar_bounds()[1] + timedelta(days=1)).isoformat()),
    ("PUT", "/api/settings", lambda case: isinstance(case.body, dict)
        and _depth(case.body.get("signals_snapshot")) > MAX_JSON_DEPTH),
])
def test_the_generators_reach_the_inputs_that_once_answered_500(method, path, reached):
    """The fuzzer's own strategies (hooks included) can draw each class; tests/test_api_input_limits.py
    holds the answers to them."""
    find(schema[path][method].as_strategy(), reached, settings=settings(
        max_examples=2_000, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))


def _depth(value) -> int:
    return 1 + _depth(value[0]) if isinstance(value, list) and value else int(isinstance(value, list))
