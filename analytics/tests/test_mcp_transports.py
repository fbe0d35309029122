"""The knowledge server over its real transports: streamable HTTP on a local port behind the API
token check, and `manage.py mcp_server` over stdio as a subprocess, each driven by the SDK's own
client. The rows are committed (transaction=True): the server reads them on its own connections."""

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest
import uvicorn
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from knox.models import AuthToken
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from analytics.knowledge.http import PATH, http_app
from tests.factories import PaperTradeFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def positions(trader, other_trader):
    """Alice holds AAPL; Bob holds NVDA. Alice's API token."""
    PaperTradeFactory(owner=trader, ticker="AAPL")
    PaperTradeFactory(owner=other_trader, ticker="NVDA")
    _, token = AuthToken.objects.create(user=trader)
    return token


@pytest.fixture
def bobs_token(other_trader):
    return AuthToken.objects.create(user=other_trader)[1]


async def _open_positions(client: Client) -> list[str]:
    result = await client.call_tool("open_positions", {})
    assert not result.is_error, result.content[0].text
    return [row["ticker"] for row in result.structured_content["positions"]]


# --- streamable HTTP ------------------------------------------------------------------------------


@pytest.fixture
def mcp_url():
    """The HTTP app served by uvicorn on a free local port, in a thread, for the test's duration."""
    server = uvicorn.Server(uvicorn.Config(http_app(host="127.0.0.1"), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}{PATH}"
    server.should_exit = True
    thread.join(timeout=10)


async def _over_http(url: str, authorization: str, mode: str = "auto") -> list[str]:
    async with httpx2.AsyncClient(headers={"Authorization": authorization}, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            return await _open_positions(client)


@pytest.mark.django_db(transaction=True)
def test_over_http_a_valid_api_token_gets_its_own_rows(mcp_url, positions, bobs_token):
    for _ in range(3):  # one server, one database thread, callers taking turns
        assert asyncio.run(_over_http(mcp_url, f"Token {positions}")) == ["AAPL"]
        assert asyncio.run(_over_http(mcp_url, f"Token {bobs_token}")) == ["NVDA"]
    # `Bearer` is the form most MCP clients send; "legacy" is the initialize-handshake era of the protocol.
    assert asyncio.run(_over_http(mcp_url, f"Bearer {positions}", mode="legacy")) == ["AAPL"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "not_authenticated"), ("Token not-a-real-token", "authentication_failed"),
     ("Basic YWxpY2U6c2VjcmV0", "not_authenticated")],
)
def test_over_http_no_or_a_bad_token_is_401(mcp_url, positions, authorization, code):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "open_positions", "arguments": {}}}
    response = httpx2.post(mcp_url, json=body, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert response.json() == {"type": "client_error", "errors": [
        {"code": code, "detail": response.json()["errors"][0]["detail"], "attr": None}]}
    assert "AAPL" not in response.text


@pytest.mark.django_db(transaction=True)
def test_over_http_a_revoked_token_is_401(mcp_url, positions):
    AuthToken.objects.all().delete()
    headers = {"Authorization": f"Token {positions}", "Content-Type": "application/json"}
    assert httpx2.post(mcp_url, json={}, headers=headers, timeout=30).status_code == 401


# --- stdio: manage.py mcp_server as a subprocess ---------------------------------------------------


def _database_url() -> str:
    """The test database, for a child process (the test settings alone would name another one)."""
    db = connection.settings_dict
    credentials = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):  # a Unix socket directory, as django-environ reads it
        return f"postgres://{credentials}@/{quote(db['HOST'], safe='')}/{db['NAME']}"
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


async def _over_stdio(token: str) -> list[str]:
    server = StdioServerParameters(
        command=sys.executable, args=["manage.py", "mcp_server", "--transport", "stdio"], cwd=str(ROOT),
        env={**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE, "DATABASE_URL": _database_url(),
             "MCP_API_TOKEN": token},
    )
    async with Client(server, read_timeout_seconds=60) as client:
        return await _open_positions(client)


@pytest.mark.django_db(transaction=True)
def test_manage_py_mcp_server_over_stdio_answers_as_its_tokens_user(positions):
    assert asyncio.run(asyncio.wait_for(_over_stdio(positions), timeout=120)) == ["AAPL"]


def test_stdio_refuses_to_start_without_a_valid_token(db, settings):
    settings.MCP_API_TOKEN = ""
    with pytest.raises(CommandError, match="No API token given"):
        call_command("mcp_server")
    with pytest.raises(CommandError, match="Invalid token"):
        call_command("mcp_server", "--token", "not-a-real-token")
    with pytest.raises(CommandError, match="--token is for stdio"):
        call_command("mcp_server", "--transport", "http", "--token", "anything")
