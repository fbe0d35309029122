"""Notification choices in /api/settings: browser notifications, the webhook URL (refused with a
field error when it points inside our network) and its signing secret, shown once."""

import pytest

from tradeoptions import tenancy
from trades import services
from trades.models import EventKind, TradeEvent


@pytest.fixture
def production_guard(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False


def _field_error(response) -> tuple[str, str]:
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    return error["attr"], error["detail"]


def test_browser_notifications_are_off_until_the_trader_opts_in(api_as, trader):
    client = api_as(trader)
    assert client.get("/api/settings").json()["browser_notifications"] is False
    response = client.put("/api/settings", {"browser_notifications": True}, format="json")
    assert response.status_code == 200 and response.json()["browser_notifications"] is True
    assert services.account_settings_for(user=trader).browser_notifications is True


def test_a_webhook_url_is_saved_and_audited_without_its_value(api_as, trader, dns, production_guard):
    dns["hooks.example.com"] = "93.184.216.34"
    url = "https://hooks.example.com/tradeoptions?capability=abc123"
    response = api_as(trader).put("/api/settings", {"webhook_url": url}, format="json")
    assert response.status_code == 200 and response.json()["webhook_url"] == url
    assert response.json()["has_webhook_secret"] is False
    with tenancy.acting_as(trader.pk):
        (event,) = TradeEvent.objects.filter(kind=EventKind.SETTINGS_CHANGED)
    assert event.payload["changes"] == {"webhook_url": "changed"} and "abc123" not in str(event.payload)


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "hooks.example.com/x", "javascript:alert(1)",
                                 "http://user:pw@hooks.example.com/", "http://hooks.example.com:99999/",
                                 "https://hooks.example.com:0/",
                                 "http://hooks.example.com/a b", "http://hooks.example.com/\r\nX-Evil: 1",
                                 "http://[::1/hook", "http://[not-an-address]/hook"])
def test_a_webhook_url_must_be_plain_http_or_https(api_as, trader, dns, url):
    dns["hooks.example.com"] = "93.184.216.34"
    attr, _ = _field_error(api_as(trader).put("/api/settings", {"webhook_url": url}, format="json"))
    assert attr == "webhook_url"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://10.1.2.3/hook", "http://172.16.0.9/hook",
    "http://192.168.1.1/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/hook",
    "http://[fe80::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://224.0.0.1/hook", "http://240.0.0.1/hook",
    "http://0.0.0.0/hook", "http://100.64.0.1/hook",
])
def test_in_production_a_webhook_may_not_point_inside_our_network(api_as, trader, production_guard, url):
    attr, detail = _field_error(api_as(trader).put("/api/settings", {"webhook_url": url}, format="json"))
    assert attr == "webhook_url" and "public addresses only" in detail
    assert services.account_settings_for(user=trader).webhook_url == ""


def test_a_name_that_resolves_to_loopback_is_refused_when_saved(api_as, trader, production_guard, dns):
    dns["rebind.example.com"] = "127.0.0.1"
    attr, detail = _field_error(api_as(trader).put("/api/settings", {"webhook_url": "https://rebind.example.com/h"},
                                                   format="json"))
    assert attr == "webhook_url" and "rebind.example.com" in detail


def test_a_name_that_does_not_resolve_is_a_field_error(api_as, trader):
    attr, detail = _field_error(api_as(trader).put("/api/settings", {"webhook_url": "https://no-such-host.invalid/h"},
                                                   format="json"))
    assert attr == "webhook_url" and "cannot be found" in detail


def test_the_signing_secret_is_shown_once_and_never_again(api_as, trader, client):
    api = api_as(trader)
    made = api.post("/api/settings/webhook-secret")
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    secret = made.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    client.force_login(trader)
    later = [api.get("/api/settings"), api.put("/api/settings", {"max_positions": 6}, format="json"),
             api.get("/api/schema/"), client.get("/settings/"), client.get("/")]
    assert later[0].json()["has_webhook_secret"] is True
    for response in later:
        assert response.status_code == 200 and secret not in response.content.decode()
    account = services.account_settings_for(user=trader)
    assert secret not in account.webhook_secret_encrypted and account.webhook_secret() == secret
    with tenancy.acting_as(trader.pk):
        audit = [event.payload for event in TradeEvent.objects.filter(kind=EventKind.SETTINGS_CHANGED)]
    assert {"changes": {}, "webhook_secret": "set"} in audit and secret not in str(audit)


def test_a_new_secret_replaces_the_old_one(api_as, trader):
    api = api_as(trader)
    first = api.post("/api/settings/webhook-secret").json()["webhook_secret"]
    second = api.post("/api/settings/webhook-secret").json()["webhook_secret"]
    assert first != second and services.account_settings_for(user=trader).webhook_secret() == second


def test_each_trader_rotates_only_their_own_secret(api_as, trader, other_trader):
    theirs = api_as(other_trader).post("/api/settings/webhook-secret").json()["webhook_secret"]
    api_as(trader).post("/api/settings/webhook-secret")
    assert services.account_settings_for(user=other_trader).webhook_secret() == theirs


def test_the_secret_needs_a_signed_in_trader(db, client):
    assert client.post("/api/settings/webhook-secret").status_code in (401, 403)


def test_the_webhook_host_is_resolved_before_any_transaction_opens(api_as, trader, transactional_db, redis_client,
                                                                   monkeypatch,
                                                                   production_guard):
    """A slow resolver must not hold a database transaction (and its pooled connection) open: the
    name is resolved first, then the settings are written."""
    import socket

    from django.db import connection

    from trades.services import notifications

    during_lookup = []

    def getaddrinfo(host, port, *args, **kwargs):
        during_lookup.append(connection.in_atomic_block)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(notifications.socket, "getaddrinfo", getaddrinfo)
    url = "https://hooks.example.com/tradeoptions"
    response = api_as(trader).put("/api/settings", {"webhook_url": url, "max_positions": 4}, format="json")

    assert response.status_code == 200, response.content
    assert during_lookup == [False]
    saved = services.account_settings_for(user=trader)
    assert (saved.webhook_url, saved.max_positions) == (url, 4)
