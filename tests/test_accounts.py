"""Logging in and out, API tokens for scanners, and brute-force protection."""

import base64

import pytest
from django.db import connection
from knox.models import AuthToken


def _basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_the_login_page_logs_a_trader_in_and_out(client, trader, password):
    assert client.get("/").status_code == 302  # pages need a login
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post("/login/", {"username": "alice", "password": password})
    assert response.status_code == 302 and response.url == "/"
    home = client.get("/")
    assert home.status_code == 200 and b"alice" in home.content and b"Local paper" in home.content
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_a_wrong_password_shows_an_error_not_a_crash(client, trader):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200 and b"didn't match" in response.content


def test_repeated_failures_lock_the_login(client, trader, password, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    locked = client.post("/login/", {"username": "alice", "password": password})
    assert locked.status_code == 429
    assert client.get("/").status_code == 302  # and not logged in


def test_a_scanner_gets_a_token_uses_it_and_revokes_it(client, trader, password):
    issued = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic("alice", password))
    assert issued.status_code == 200
    token = issued.json()["token"]
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert client.get("/api/trades", **auth).status_code == 200
    assert client.post("/api/auth/token/revoke", **auth).status_code == 204
    assert client.get("/api/trades", **auth).status_code == 401


def test_tokens_are_stored_hashed(client, trader, password):
    token = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic("alice", password)).json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT digest, token_key FROM knox_authtoken")
        digest, key = cursor.fetchone()
    assert token not in digest and token != key and AuthToken.objects.count() == 1


@pytest.mark.parametrize("credentials", [("alice", "wrong"), ("nobody", "x")])
def test_a_bad_password_gets_no_token(client, trader, credentials):
    response = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic(*credentials))
    assert response.status_code in (401, 403)
    assert AuthToken.objects.count() == 0
