"""The API as a contract: a valid OpenAPI schema, one error shape, and no 500 for any bad input."""

from io import StringIO

from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PaperTradeFactory

FIELDS = ["ticker", "option_type", "strike", "expiry", "option_symbol", "qty", "entry_type", "limit_price",
          "sl_price", "tp_price", "strategy", "card_score", "signals_snapshot", "idempotency_key", "version",
          "new_sl", "new_tp", "allow_immediate"]
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["NaN", "Infinity", "1e400", "0.00001", "-0", "2026-02-30", "SPY261218C00570000", "CALL",
                     "limit", "9" * 40]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def test_the_openapi_schema_is_valid_and_warning_free(db):
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = out.getvalue()
    for path in ("/api/trades:", "/api/trades/{id}/close:", "/api/trades/{id}/adjust:", "/api/trades/{id}/snapshots:",
                 "/api/trades/history:", "/api/trades/export:", "/api/trades/validate:", "/api/settings:",
                 "/api/auth/tokens:", "/api/auth/tokens/{token_key}:"):
        assert path in schema


def test_the_docs_page_and_the_browsable_api_are_served(api_as, client, trader):
    client.force_login(trader)
    assert client.get("/api/docs/").status_code == 200
    assert "text/html" in client.get("/api/trades", HTTP_ACCEPT="text/html")["Content-Type"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(FIELDS), JUNK, max_size=8), route=st.sampled_from(
    ["/api/trades", "/api/trades/validate", "/api/trades/{id}/close", "/api/trades/{id}/adjust", "/api/settings"]))
def test_no_input_makes_a_500(api_as, trader, market, body, route):
    trade = PaperTradeFactory(owner=trader)
    client = api_as(trader)
    path = route.format(id=trade.pk)
    response = client.put(path, body, format="json") if path == "/api/settings" else client.post(path, body,
                                                                                                format="json")
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert set(response.json()) <= {"type", "errors", "trade"} and response.json()["errors"]


def test_malformed_json_and_non_finite_numbers_are_400(api_as, trader, market):
    client = api_as(trader)
    trade = PaperTradeFactory(owner=trader)
    for method, path in (("post", "/api/trades"), ("post", "/api/trades/validate"),
                         ("post", f"/api/trades/{trade.pk}/close"), ("post", f"/api/trades/{trade.pk}/adjust"),
                         ("put", "/api/settings")):
        for raw in ('{"qty": 2,', '{"version": NaN, "sl_price": Infinity}', "[1, 2]", '"text"'):
            response = getattr(client, method)(path, raw, content_type="application/json")
            assert response.status_code == 400, (path, raw, response.content)
            assert response.json()["type"] in ("client_error", "validation_error")
