"""GET /api/auth/tokens and DELETE /api/auth/tokens/{token_key}: a trader lists and revokes her own
API tokens, with her session (the settings page) or a token; never anyone else's, never a secret."""

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken
from rest_framework.test import APIClient

from tradeoptions.auth import api_token_list


def _issue(user, **kwargs) -> tuple[AuthToken, str]:
    return AuthToken.objects.create(user=user, **kwargs)


def _session(user) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _authenticates(token: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/settings").status_code == 200


def test_the_list_shows_my_live_tokens_only_and_no_secret(trader, other_trader):
    older, older_token = _issue(trader)
    AuthToken.objects.filter(pk=older.pk).update(created=timezone.now() - timedelta(hours=1))
    newer, newer_token = _issue(trader, expiry=None)
    expired, _ = _issue(trader, expiry=timedelta(seconds=-1))
    theirs, their_token = _issue(other_trader)
    response = _session(trader).get("/api/auth/tokens")
    assert response.status_code == 200
    rows = response.json()
    assert [row["token_key"] for row in rows] == [newer.token_key, older.token_key]  # newest first, none expired
    assert all(set(row) == {"token_key", "created", "expiry"} for row in rows)
    assert rows[0]["expiry"] is None
    assert parse_datetime(rows[1]["expiry"]) == older.expiry
    assert parse_datetime(rows[0]["created"]) == newer.created
    text = response.content.decode()
    for secret in (older_token, newer_token, older.digest, newer.digest, expired.token_key, theirs.token_key,
                   their_token):
        assert secret not in text
    assert len(older.token_key) == 15 and older_token.startswith(older.token_key)


def test_a_scanner_lists_with_its_token_too(api_as, trader, other_trader):
    _issue(other_trader)
    body = api_as(trader).get("/api/auth/tokens").json()  # api_as issues the one token it uses
    assert [row["token_key"] for row in body] == [token.token_key for token in api_token_list(user=trader)]
    assert len(body) == 1


def test_revoking_mine_by_key_stops_it_at_once_and_keeps_the_others(trader):
    doomed, doomed_token = _issue(trader)
    kept, kept_token = _issue(trader)
    assert _authenticates(doomed_token)
    client = _session(trader)
    client.get("/settings/")  # the page sets the CSRF cookie its script sends back
    csrf = client.cookies["csrftoken"].value
    response = client.delete(f"/api/auth/tokens/{doomed.token_key}", HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 204
    assert not _authenticates(doomed_token) and _authenticates(kept_token)
    assert [row["token_key"] for row in client.get("/api/auth/tokens").json()] == [kept.token_key]
    again = client.delete(f"/api/auth/tokens/{doomed.token_key}", HTTP_X_CSRFTOKEN=csrf)
    assert again.status_code == 404


def test_someone_elses_key_is_not_found_and_their_token_lives_on(api_as, trader, other_trader):
    theirs, their_token = _issue(other_trader)
    response = api_as(trader).delete(f"/api/auth/tokens/{theirs.token_key}")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"
    assert _authenticates(their_token)
    assert AuthToken.objects.filter(user=other_trader).count() == 1


def test_a_session_must_send_its_csrf_token_to_revoke(trader):
    mine, token = _issue(trader)
    response = _session(trader).delete(f"/api/auth/tokens/{mine.token_key}")
    assert response.status_code == 403
    assert _authenticates(token)


def test_nobody_anonymous_lists_or_revokes(client, trader):
    mine, token = _issue(trader)
    assert client.get("/api/auth/tokens").status_code in (401, 403)
    assert client.delete(f"/api/auth/tokens/{mine.token_key}").status_code in (401, 403)
    assert _authenticates(token)


def test_a_session_signs_out_every_token_of_its_own_with_its_csrf_token(trader, other_trader):
    _, first = _issue(trader)
    _, second = _issue(trader)
    _, theirs = _issue(other_trader)
    client = _session(trader)
    refused = client.delete("/api/auth/tokens")  # no CSRF token: refused, nothing revoked
    assert refused.status_code == 403
    assert _authenticates(first) and _authenticates(second)

    client.get("/settings/")
    response = client.delete("/api/auth/tokens", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 200 and response.json() == {"revoked": 2}
    assert not _authenticates(first) and not _authenticates(second) and _authenticates(theirs)
    assert client.get("/api/auth/tokens").json() == []
    assert client.get("/api/settings").status_code == 200  # the session itself stays signed in


def test_the_token_endpoints_still_answer_api_clients_as_before(trader):
    _, mine = _issue(trader)
    _, other = _issue(trader)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {mine}")
    assert client.post("/api/auth/token/revoke-all").status_code == 204  # knox's logoutall, by a token
    assert not _authenticates(mine) and not _authenticates(other)
    assert APIClient().delete("/api/auth/tokens").status_code in (401, 403)  # nobody anonymous
