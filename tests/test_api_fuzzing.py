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
price is beyond the quote, a risk limit is reached, live trading is switched off, the version is
stale) or one parameter against another (a report's `from` after its `to`). A schema-valid request
may be refused there, with a documented 400/409/422 in the one error shape, which
`response_schema_conformance` still holds to the schema. Everywhere else the check runs as shipped.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

CONTRACT = "SPY261218C00570000"
RULES_BEYOND_THE_SCHEMA = {
    "POST /api/trades", "POST /api/trades/validate", "POST /api/trades/{id}/close", "POST /api/trades/{id}/adjust",
    "PUT /api/settings", "GET /api/analytics/performance", "GET /api/analytics/calibration",
    "GET /api/analytics/exit-replay", "GET /api/analytics/dataset",
}
# Bounded, so the suite stays fast; the ci profile (conftest.py) makes the examples reproducible.
FUZZ = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
WORKFLOWS = settings(max_examples=8, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck))

APP = get_wsgi_application()
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = APP


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
