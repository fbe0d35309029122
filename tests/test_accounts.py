"""Logging in and out, API tokens for scanners, brute-force protection, a new password and signing out
everywhere."""

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
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


# --- a new password, sign out everywhere, expiry ------------------------------------------------------

NEW_PASSWORD = "quiet-harbour-lantern-42"


def _works(token) -> bool:
    return Client().get("/api/settings", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def _signed_in(client) -> bool:
    return client.get("/settings/").status_code == 200


def test_a_new_password_from_the_settings_page_ends_every_token_and_every_other_session(
        client, trader, other_trader, password):
    _, scanner = AuthToken.objects.create(user=trader)
    _, laptop = AuthToken.objects.create(user=trader, expiry=None)
    _, bobs = AuthToken.objects.create(user=other_trader)
    elsewhere = Client()
    elsewhere.force_login(trader)
    client.force_login(trader)
    assert b'href="/account/password/"' in client.get("/settings/").content
    assert client.get("/account/password/").status_code == 200

    changed = client.post("/account/password/", {"old_password": password, "new_password1": NEW_PASSWORD,
                                                 "new_password2": NEW_PASSWORD})
    assert changed.status_code == 302 and changed.url == "/account/password/changed/"
    assert not _works(scanner) and not _works(laptop) and _works(bobs)
    assert AuthToken.objects.filter(user=trader).count() == 0
    assert _signed_in(client) and not _signed_in(elsewhere)
    assert Client().post("/login/", {"username": "alice", "password": NEW_PASSWORD}).status_code == 302


def test_a_wrong_current_password_changes_nothing(client, trader, password):
    _, scanner = AuthToken.objects.create(user=trader)
    client.force_login(trader)
    refused = client.post("/account/password/", {"old_password": "not-it", "new_password1": NEW_PASSWORD,
                                                 "new_password2": NEW_PASSWORD})
    assert refused.status_code == 200 and b"incorrectly" in refused.content
    assert _works(scanner)
    trader.refresh_from_db()
    assert trader.check_password(password)


def test_a_password_set_by_staff_in_the_admin_ends_the_users_tokens(client, trader, ops_user):
    _, scanner = AuthToken.objects.create(user=trader)
    client.force_login(ops_user)
    response = client.post(f"/admin/auth/user/{trader.pk}/password/",
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    assert response.status_code == 302
    assert not _works(scanner)


def test_sign_out_everywhere_ends_every_token_and_every_other_session_but_this_one(client, trader, other_trader):
    _, scanner = AuthToken.objects.create(user=trader)
    _, laptop = AuthToken.objects.create(user=trader)
    _, bobs = AuthToken.objects.create(user=other_trader)
    phone, bob = Client(), Client()
    phone.force_login(trader)
    bob.force_login(other_trader)
    client.force_login(trader)
    assert b'action="/account/sign-out-everywhere"' in client.get("/settings/").content
    assert client.get("/account/sign-out-everywhere").status_code == 405  # a GET (a link, a prefetch) does nothing

    response = client.post("/account/sign-out-everywhere")
    assert response.status_code == 200
    assert b"2 API tokens and 1 other session signed out" in response.content
    assert not _works(scanner) and not _works(laptop) and _works(bobs)
    assert _signed_in(client) and not _signed_in(phone) and _signed_in(bob)


def test_sign_out_everywhere_needs_the_csrf_token(trader):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(trader)
    _, scanner = AuthToken.objects.create(user=trader)
    assert browser.post("/account/sign-out-everywhere").status_code == 403
    assert _works(scanner)


def test_a_token_issued_without_an_expiry_expires_after_the_configured_lifetime(client, trader, password, settings):
    before = timezone.now()
    issued = client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic("alice", password)).json()
    made, _ = AuthToken.objects.create(user=trader)
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    assert ttl == timedelta(days=30)
    for expiry in (parse_datetime(issued["expiry"]), made.expiry):
        assert before + ttl <= expiry <= timezone.now() + ttl
    AuthToken.objects.filter(user=trader).update(expiry=timezone.now() - timedelta(seconds=1))
    assert not _works(issued["token"])


def test_staff_cannot_mint_a_token_in_the_admin(client, trader, ops_user):
    """knox's own admin made a never-expiring token for any user, shown in clear; it is gone."""
    client.force_login(ops_user)
    assert client.get("/admin/knox/authtoken/add/").status_code == 404
    posted = client.post("/admin/knox/authtoken/add/", {"user": trader.pk, "expiry": ""})
    assert posted.status_code == 404
    assert client.get("/admin/knox/authtoken/").status_code == 404
    assert b"/admin/knox/" not in client.get("/admin/").content
    assert AuthToken.objects.count() == 0


def test_guessing_the_current_password_on_the_change_form_meets_the_login_lock(client, trader, password, settings):
    """A borrowed session is no way round the lockout: a wrong current password counts as a failed sign-in."""
    client.force_login(trader)
    wrong = {"old_password": "guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    answers = [client.post("/account/password/", wrong).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    right = {**wrong, "old_password": password}
    assert client.post("/account/password/", right).status_code == 429
    assert Client().post("/login/", {"username": "alice", "password": password}).status_code == 429
    trader.refresh_from_db()
    assert trader.check_password(password)
