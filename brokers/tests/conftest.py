"""Fixtures for broker tests: the fake Tradier over real HTTP, and the real Redis."""

from decimal import Decimal

import pytest

from brokers.ratelimit import RateLimiter
from brokers.tradier import ConfirmPolicy, RetryPolicy, TradierClient
from tests.fakes.tradier import SANDBOX

# Made-up tokens, distinctive enough that finding one in a log line cannot be a coincidence.
SANDBOX_TOKEN = "sbxTOKEN-4f1d2c9a8b7e6d5c"
LIVE_TOKEN = "liveTOKEN-0a9b8c7d6e5f4a3b"
ACCOUNT = "VA00001234"

# Short enough to keep the suite fast, long enough for a loopback round trip under load.
CLIENT_TIMEOUT = 0.3


@pytest.fixture
def sandbox_account(fake_tradier):
    """Alice's sandbox account: $10,000 of paper cash, nothing held."""
    return fake_tradier.add_account(token=SANDBOX_TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))


@pytest.fixture
def make_client(fake_tradier, redis_client, namespace):
    """Builds clients against the fake with fast retries and short timeouts; budgets generous
    unless a test asks otherwise, so only rate-limit tests ever wait."""

    def build(*, token=SANDBOX_TOKEN, environment=SANDBOX, account_id=ACCOUNT, limits=None, max_wait=0.5,
              retry=None, confirm=None, timeout=CLIENT_TIMEOUT, throttle_penalty=0.05, burst=None, base_url=None,
              modify_budget=600):
        limiter = RateLimiter(
            token, limits=limits or {"standard": 6000, "market_data": 6000, "trading": 6000},
            max_wait=max_wait, burst=burst if burst is not None else (None if limits else 1000),
            throttle_penalty=throttle_penalty, namespace=namespace, redis_client=redis_client,
        )
        return TradierClient(
            base_url=base_url or fake_tradier.url(environment), token=token, account_id=account_id, limiter=limiter,
            timeout=timeout,
            retry=retry or RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
            confirm=confirm or ConfirmPolicy(attempts=5, first_delay=0.01, max_delay=0.05),
            modify_budget_per_minute=modify_budget,
        )

    return build


@pytest.fixture
def tradier(make_client, sandbox_account):
    """Alice's Tradier sandbox client. (Not named `client`: that is Django's test client.)"""
    tradier = make_client()
    yield tradier
    tradier.close()
