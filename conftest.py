"""Fixtures for the real components: PostgreSQL (as the worker role, under row-level security),
Redis, and the named personas every scenario uses."""

import os
import uuid

import psycopg
import pytest
import redis
from django.db import connection
from hypothesis import settings as hypothesis_settings
from knox.models import AuthToken
from psycopg import sql
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory
from tradeoptions.db import as_schema_owner

# CI explores the same examples on every run, so a red build is reproducible; locally each run
# explores new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb):
    """The test database is created and migrated by the schema owner; tests then run as the worker
    role (tradeoptions/settings/test.py), under row-level security like the application. It may
    also TRUNCATE, in tests only, so that transactional tests can be flushed."""
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock(), as_schema_owner() as owner_connection:
        databases = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, keepdb=django_db_keepdb,
            serialized_aliases=[], aliases=["default"],
        )
        with owner_connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("GRANT TRUNCATE ON ALL TABLES IN SCHEMA public TO {}").format(
                    sql.Identifier(settings.DATABASE_WORKER_ROLE))
            )
            # Tables a migration test drops and creates again (unapplying an app's migrations
            # unapplies every later one that depends on them) get it too.
            cursor.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT TRUNCATE ON TABLES TO {}").format(
                    sql.Identifier(settings.DATABASE_WORKER_ROLE))
            )
    yield
    with django_db_blocker.unblock(), as_schema_owner():
        teardown_databases(databases, verbosity=request.config.option.verbose, keepdb=django_db_keepdb)


@pytest.fixture(autouse=True)
def _login_failures_of_this_test(monkeypatch):
    """Login failures are counted in Redis (tradeoptions/lockout.py), which outlives each test's
    rolled-back database: every test counts under a prefix of its own (the keys expire after the
    cool-off). Set on the settings themselves, not through pytest-django's `settings` fixture:
    that one would wrap every test in an override, whose SETTINGS_MODULE is None, and the tests
    that start a child process pass SETTINGS_MODULE on."""
    from django.conf import settings

    monkeypatch.setattr(settings, "LOGIN_FAILURES_PREFIX", f"{settings.LOGIN_FAILURES_PREFIX}-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def trader(db):
    """Alice trades options; most scenarios are hers."""
    return UserFactory(username="alice")


@pytest.fixture
def other_trader(db):
    """Bob trades too, and must never see Alice's rows (nor she his)."""
    return UserFactory(username="bob")


@pytest.fixture
def ops_user(db):
    """Olivia runs operations: staff in the admin."""
    return UserFactory(username="olivia", is_staff=True, is_superuser=True)


@pytest.fixture
def redis_client():
    """The real Redis of this test run (REDIS_URL)."""
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def namespace(redis_client):
    """A key prefix of its own, so no test spends another's rate-limit budget; cleaned up after."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    for key in redis_client.scan_iter(match=f"{name}:*"):
        redis_client.delete(key)


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def api_as():
    """An API client for `user`, authenticated the way scanners are: with a knox token."""

    def client_for(user):
        client = APIClient()
        _, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    return client_for


@pytest.fixture
def app_cursor(db):
    """A raw cursor on the test process's own connection (the worker role)."""
    with connection.cursor() as cursor:
        yield cursor


def _credentials(role: str) -> dict:
    """The settings' credentials for `role` (web, worker or owner), the host of the test database."""
    from django.conf import settings

    known = [settings.DATABASE_APP, settings.DATABASE_WORKER, settings.DATABASE_OWNER]
    found = next((config for config in known if config.get("USER") == role), {"USER": role})
    return {key: found.get(key) for key in ("USER", "PASSWORD", "HOST", "PORT")}


@pytest.fixture
def connect_as(db):
    """Raw psycopg connections to the test database as another role (with that role's password
    from the settings), closed after the test. Rows must be committed to be seen."""
    opened = []

    def connect(role: str, **options) -> psycopg.Connection:
        given = _credentials(role)
        raw = psycopg.connect(dbname=connection.settings_dict["NAME"], user=role, password=given["PASSWORD"] or None,
                              host=given["HOST"] or None, port=given["PORT"] or None, **options)
        opened.append(raw)
        return raw

    yield connect
    for raw in opened:
        raw.close()


@pytest.fixture
def web_role():
    """The test process's default connection becomes the web role's (DATABASE_URL) for the test,
    as in a gunicorn worker: a copy of the settings, so nothing shared is changed."""
    from django.conf import settings

    connection.close()
    shared = connection.settings_dict
    connection.settings_dict = {**shared, **_credentials(settings.DATABASE_APP_ROLE)}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict = shared


@pytest.fixture(autouse=True)
def _live_server_settles(request):
    """After a test with the live server, wait until none of its requests is still working in the
    database: a page's poll still in flight when the transactional test flushes the database holds
    locks the flush's TRUNCATE needs, and the two deadlock. (Autouse, so it is torn down after the
    test's own fixtures have closed their browsers, and before pytest-django's flush.)"""
    import time

    yield
    if "live_server" not in request.fixturenames:
        return
    deadline = time.monotonic() + 15
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (the one scripts/ensure_browser.sh found), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_PATH")
    assert executable, "No Chromium: run the tests with `make test`, or set CHROMIUM_PATH."
    # Playwright's sync API runs an event loop; Django's ORM in this thread must be allowed beside it,
    # for as long as the browser lives (one test module) and no longer.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=executable, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            yield chromium
            chromium.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


# No broker token, plain or encrypted, in any response or log record of the whole run.
pytest_plugins = ["tests.secrecy_guard", "tests.clock_shift"]


@pytest.fixture
def json_lines():
    """What the production log formatter (settings.LOGGING's "json") writes from the root logger,
    parsed back into one dict per line."""
    import io
    import json
    import logging

    from django.conf import settings
    from pythonjsonlogger.json import JsonFormatter

    from tradeoptions.logs import LogContextFilter

    spec = settings.LOGGING["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(spec["format"], rename_fields=spec["rename_fields"]))
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(min(previous, logging.INFO))
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def market(monkeypatch):
    """A hand-driven market (tests/fakes/market.py) for every layer in this process — validation,
    the local paper broker, a live server's thread — quoting the contract most tests trade
    (SPY 18 Dec 26 570 C at 4.10 / 4.30). Tests that need a clock or other quotes define their own."""
    from brokers import market as market_registry
    from tests.fakes.market import HandDrivenMarket

    hand = HandDrivenMarket()
    hand.set_quote("SPY261218C00570000", "4.10", "4.30")
    monkeypatch.setattr(market_registry, "_market", hand)
    return hand


@pytest.fixture
def fake_tradier(settings):
    """The fake Tradier (tests/fakes/tradier.py) over real HTTP on a free local port, with the
    settings' sandbox and live base URLs pointed at it. Accounts, tokens and quotes are the test's."""
    from tests.fakes.tradier import LIVE, SANDBOX, FakeTradier

    fake = FakeTradier()
    fake.start()
    settings.TRADIER_SANDBOX_URL = fake.url(SANDBOX)
    settings.TRADIER_LIVE_URL = fake.url(LIVE)
    yield fake
    fake.stop()


# Requests a minute per group: no test comes near it (the busiest sends about 30 in all).
BUDGET_NO_TEST_REACHES = 6000


@pytest.fixture
def tradier_budget_of_its_own(monkeypatch, namespace, redis_client):
    """Tradier clients the production factory builds (brokers/factory.py) spend a budget no test
    reaches, in this test's own Redis namespace; everything else is production's client. Without
    it a test waits for the sandbox's 48 requests a minute (about 1.3 s a request after a burst
    of 4) and spends what earlier tests with the same token left: buckets outlive a test. Tests
    about rate limits build their own limiters (brokers/tests/test_ratelimit.py, the fault drills).
    Returns the limiter maker, for a test that builds its own clients."""
    from functools import lru_cache

    from brokers import factory
    from brokers.ratelimit import GROUPS, RateLimiter
    from brokers.tradier import TradierClient

    def limiter_for(token: str) -> RateLimiter:
        return RateLimiter(token, limits=dict.fromkeys(GROUPS, BUDGET_NO_TEST_REACHES), namespace=namespace,
                           redis_client=redis_client)

    @lru_cache(maxsize=256)  # one client per account and token, as in production
    def client(base_url: str, token: str, account_id: str) -> TradierClient:
        return TradierClient(base_url=base_url, token=token, account_id=account_id, limiter=limiter_for(token))

    monkeypatch.setattr(factory, "_tradier_client", client)
    return limiter_for
