"""The API's schema and Swagger page: behind a login unless API_DOCS_PUBLIC, served from our own
static files (no CDN), under the page policy like every other page."""

import re

import pytest

from tradeoptions.csp import POLICY


@pytest.fixture
def signed_in(client, trader):
    client.force_login(trader)
    return client


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', html)


def test_a_visitor_without_a_login_gets_neither_the_docs_nor_the_schema(client, db):
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"] == "/login/?next=/api/docs/"
    schema = client.get("/api/schema/")
    assert schema.status_code == 401 and b"/api/trades" not in schema.content
    assert client.get("/api/schema/?format=json", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401


def test_the_docs_page_is_served_from_this_site_under_the_page_policy(signed_in):
    page = signed_in.get("/api/docs/")
    assert page.status_code == 200
    assert page["Content-Security-Policy"] == POLICY and "unsafe-inline" not in POLICY
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"
    html = page.content.decode()
    for outside in ("cdn.jsdelivr", "unpkg", "http:", "https:", "//"):
        assert not any(outside in url for url in _references(html)), (outside, _references(html))
    # Scripts come from files; the settings are a JSON block, which a browser never runs.
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ['<script id="api-docs-config" type="application/json">',
                       '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js">',
                       '<script src="/static/js/api_docs.js">']
    assert "<style" not in html and " style=" not in html


def test_every_file_the_docs_page_references_is_served(signed_in):
    html = signed_in.get("/api/docs/").content.decode()
    references = _references(html)
    assert len(references) == 5  # favicon, Swagger's and our stylesheet, Swagger's bundle and our script
    for url in references:
        response = signed_in.get(url)
        assert response.status_code == 200, url
        assert len(b"".join(response.streaming_content)) > 100, url


def test_the_schema_answers_a_session_and_a_token(signed_in, api_as, trader):
    assert b"/api/trades" in signed_in.get("/api/schema/").content
    assert b"/api/trades" in api_as(trader).get("/api/schema/").content


def test_api_docs_public_opens_both_to_visitors(client, db, settings):
    settings.API_DOCS_PUBLIC = True
    assert client.get("/api/docs/").status_code == 200
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/trades" in schema.content


def test_a_trades_close_order_is_described_as_the_pending_close(signed_in):
    """Each `@extend_schema_field` sits on the method whose field it describes: a helper slipped in
    between once made `close_order` a bare object."""
    components = signed_in.get("/api/schema/?format=json").json()["components"]["schemas"]
    close_order = components["Trade"]["properties"]["close_order"]
    assert close_order.get("nullable") is True
    (reference,) = [part["$ref"] for part in close_order.get("allOf", [close_order]) if "$ref" in part]
    assert reference == "#/components/schemas/PendingClose"
    assert set(components["PendingClose"]["properties"]) == {"order_type", "limit_price"}
