"""Password guessing meets the same lock at every door that takes a password — the login page, the
admin's login and HTTP Basic on POST /api/auth/token — counted where no rollback can erase it, per
username and address and per username from anywhere, with the client address read only as far as
the configured proxies can be trusted. (tradeoptions/lockout.py)"""

import base64
import io
import time

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client, RequestFactory
from django_redis import get_redis_connection
from knox.models import AuthToken
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import AnonRateThrottle

from tests.factories import PASSWORD
from tradeoptions.lockout import client_address

PROXY = "10.0.0.1"


def _basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _token_door(client, username, password, **extra):
    return client.post("/api/auth/token", HTTP_AUTHORIZATION=_basic(username, password), **extra)


def _login_door(client, username, password, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def _admin_door(client, username, password, **extra):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"}, **extra)


# door, who may pass it, the answer to a wrong password, the answer to the right one
DOORS = [
    pytest.param(_token_door, "alice", 401, 200, id="token-endpoint"),
    pytest.param(_login_door, "alice", 200, 302, id="login-page"),
    pytest.param(_admin_door, "olivia", 200, 302, id="admin-login"),
]


@pytest.mark.parametrize(("door", "username", "wrong_answer", "right_answer"), DOORS)
def test_a_hundred_wrong_guesses_meet_429_and_then_so_does_the_right_password(
        door, username, wrong_answer, right_answer, trader, ops_user, settings):
    client = Client()
    answers = [door(client, username, f"guess-{n}").status_code for n in range(100)]
    limit = settings.AXES_FAILURE_LIMIT
    # The guess that reaches the limit is already refused; every one after it too.
    assert answers == [wrong_answer] * (limit - 1) + [429] * (100 - limit + 1)
    assert door(client, username, PASSWORD).status_code == 429
    assert AuthToken.objects.count() == 0
    assert door(Client(), username, PASSWORD).status_code == 429  # no fresh cookie jar gets round it


def test_the_token_endpoint_says_locked_in_the_api_error_shape(trader, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked = _token_door(client, "alice", "wrong")
    assert locked.status_code == 429
    assert locked.json() == {"type": "client_error", "errors": [
        {"code": "throttled", "detail": "Too many failed sign-ins. Try again later.", "attr": None}]}
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME * 3600)


def test_failures_are_counted_even_when_the_request_transaction_rolls_back(client, trader, settings):
    """django-axes' database handler wrote its count inside the request's transaction; a rollback
    (DRF marks one for every 401) took the count with it."""
    with transaction.atomic():
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _login_door(client, "alice", "wrong").status_code == 200
        transaction.set_rollback(True)
    assert _login_door(client, "alice", "wrong").status_code == 429
    assert _login_door(client, "alice", PASSWORD).status_code == 429


def test_a_locked_answer_does_not_tell_whether_the_user_exists(trader, settings):
    answers = {}
    for username in ("alice", "nobody"):
        for door in (_token_door, _login_door):
            client = Client()
            for _ in range(settings.AXES_FAILURE_LIMIT):
                response = door(client, username, "wrong")
            answers[username, door] = (response.status_code, response.content, response["Retry-After"],
                                       response["Content-Type"])
    assert answers["alice", _token_door] == answers["nobody", _token_door]
    assert answers["alice", _login_door] == answers["nobody", _login_door]
    assert answers["alice", _login_door][0] == 429


def test_guesses_spread_over_many_addresses_meet_the_per_username_limit(trader, other_trader, settings):
    limit = settings.LOGIN_FAILURE_LIMIT_PER_USERNAME
    assert limit > settings.AXES_FAILURE_LIMIT
    answers = [_token_door(Client(), "alice", f"guess-{n}", REMOTE_ADDR=f"203.0.113.{n}").status_code
               for n in range(limit)]
    assert answers == [401] * (limit - 1) + [429]  # no address failed more than once
    # Alice herself, from an address that never failed, is refused too; Bob is not.
    assert _token_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 429
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 429
    assert _token_door(Client(), "bob", PASSWORD, REMOTE_ADDR="203.0.113.1").status_code == 200


HOME = "198.51.100.20"


def _spray(username, settings):
    """LOGIN_FAILURE_LIMIT_PER_USERNAME wrong guesses, each from an address of its own: the name is
    locked from anywhere new."""
    limit = settings.LOGIN_FAILURE_LIMIT_PER_USERNAME
    answers = [_token_door(Client(), username, f"guess-{n}", REMOTE_ADDR=f"203.0.113.{n}").status_code
               for n in range(limit)]
    assert answers[-1] == 429


def test_a_sprayed_user_still_signs_in_where_she_signed_in_before(trader, settings):
    """Anyone who knows her username can fail LOGIN_FAILURE_LIMIT_PER_USERNAME times an hour; that
    no longer keeps her out at an address where she signed in with her password lately."""
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    _spray("alice", settings)
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    assert _token_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 200
    # From an address she never signed in from, the name's lock stands, for her password too.
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 429
    assert _token_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 429


def test_a_known_address_still_meets_the_per_address_limit(trader, settings):
    assert _token_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 200
    _spray("alice", settings)
    answers = [_login_door(Client(), "alice", f"guess-{n}", REMOTE_ADDR=HOME).status_code
               for n in range(settings.AXES_FAILURE_LIMIT)]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 429


def test_an_address_is_remembered_for_login_known_address_days_and_then_forgotten(trader, settings):
    redis = get_redis_connection(settings.AXES_CACHE)
    remembered = f"{settings.LOGIN_FAILURES_PREFIX}:known:*"
    assert settings.LOGIN_KNOWN_ADDRESS_DAYS == 30
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    (key,) = redis.scan_iter(match=remembered)
    assert 30 * 86400 - 60 < redis.ttl(key) <= 30 * 86400
    assert HOME.encode() not in key  # a digest of the address, not the address
    redis.delete(key)

    settings.LOGIN_KNOWN_ADDRESS_DAYS = 1 / 86400  # one second
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    assert list(redis.scan_iter(match=remembered))
    for _ in range(50):  # Redis expires it, nothing else does
        if not list(redis.scan_iter(match=remembered)):
            break
        time.sleep(0.1)
    assert not list(redis.scan_iter(match=remembered))
    _spray("alice", settings)
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 429


def test_axes_reset_lifts_the_locks_and_keeps_the_known_addresses(trader, settings):
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    _spray("alice", settings)
    call_command("axes_reset", stdout=io.StringIO())
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.9").status_code == 302
    redis = get_redis_connection(settings.AXES_CACHE)
    assert len(list(redis.scan_iter(match=f"{settings.LOGIN_FAILURES_PREFIX}:known:*"))) == 2


def test_a_session_asking_for_a_token_does_not_make_its_address_known(client, trader, settings):
    """No password was checked: a borrowed session cannot buy its address the exemption."""
    client.force_login(trader)
    assert client.post("/api/auth/token", REMOTE_ADDR=HOME).status_code == 200
    _spray("alice", settings)
    assert _token_door(Client(), "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 429


def test_behind_one_trusted_proxy_each_client_is_locked_by_its_own_address(trader, settings):
    """Every request reaches the app from the proxy's address: read alone, one guesser would lock
    the username for everyone behind the proxy with AXES_FAILURE_LIMIT requests."""
    settings.TRUSTED_PROXY_COUNT = 1
    guesser = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login_door(Client(), "alice", f"guess-{n}", **guesser)
    assert _login_door(Client(), "alice", PASSWORD, **guesser).status_code == 429
    # Forging an entry on the left of what the proxy appended changes nothing.
    forged = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "192.0.2.55, 198.51.100.7"}
    assert _login_door(Client(), "alice", PASSWORD, **forged).status_code == 429
    alice = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.8"}
    assert _login_door(Client(), "alice", PASSWORD, **alice).status_code == 302


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(trader, settings):
    assert settings.TRUSTED_PROXY_COUNT == 0
    answers = [_login_door(Client(), "alice", "wrong", REMOTE_ADDR="198.51.100.7",
                           HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code
               for n in range(settings.AXES_FAILURE_LIMIT)]
    assert answers[-1] == 429
    assert _login_door(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.7",
                       HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


@pytest.mark.parametrize(("proxies", "forwarded_for", "expected"), [
    (0, "192.0.2.1", "203.0.113.5"),  # no proxy: the header is the client's own say
    (1, "192.0.2.1", "192.0.2.1"),
    (1, "6.6.6.6, 192.0.2.1", "192.0.2.1"),  # right-most: what our proxy appended
    (2, "6.6.6.6, 192.0.2.1, 10.0.0.9", "192.0.2.1"),  # the outer proxy's view
    (2, "192.0.2.1", "203.0.113.5"),  # fewer hops than proxies: not the configured way in
    (1, "not-an-address", "203.0.113.5"),
    (1, "", "203.0.113.5"),
])
def test_the_client_address_is_read_only_as_far_as_proxies_are_trusted(settings, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_address(request) == expected


def test_the_api_throttle_does_not_believe_a_forged_forwarded_for(settings):
    """DRF's anonymous throttle keys on the client address; by default it took X-Forwarded-For as
    given, so every forged value was a fresh budget."""
    request = APIRequestFactory().post("/api/auth/token", REMOTE_ADDR="203.0.113.5",
                                       HTTP_X_FORWARDED_FOR="192.0.2.77")
    assert AnonRateThrottle().get_ident(request) == "203.0.113.5"


def test_with_redis_down_no_password_is_checked(trader, settings):
    """The count cannot be kept: the sign-in is refused (503, what is down), never allowed unlimited."""
    settings.CACHES = {**settings.CACHES, "unreachable": {
        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}}
    settings.AXES_CACHE = "unreachable"
    token = _token_door(Client(raise_request_exception=False), "alice", PASSWORD)
    assert token.status_code == 503 and token.json()["errors"][0]["code"] == "cache_unavailable"
    page = Client(raise_request_exception=False).post("/login/", {"username": "alice", "password": PASSWORD})
    assert page.status_code == 503
    assert AuthToken.objects.count() == 0


def test_an_admin_lifts_a_lock_with_axes_reset_username(trader, other_trader, settings):
    for name in ("alice", "bob"):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _login_door(Client(), name, "wrong")
    call_command("axes_reset_username", "alice", stdout=io.StringIO())
    assert _login_door(Client(), "alice", PASSWORD).status_code == 302
    assert _login_door(Client(), "bob", PASSWORD).status_code == 429  # only the one named
