"""Fixtures for market data: a fake ORATS server, a provider pointed at it, and a fixed clock."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitoring.marketdata.orats import OratsClient, OratsProvider
from tests.fakes.orats import FakeOrats

# Wednesday 17 June 2026, 11:00 in New York: an ordinary session in the middle of the day.
MIDDAY = datetime(2026, 6, 17, 11, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.fixture
def fake_orats():
    with FakeOrats() as fake:
        yield fake


@pytest.fixture
def sleeps():
    """The retry pauses the client asked for, recorded instead of slept."""
    return []


@pytest.fixture
def orats_client(fake_orats, sleeps):
    return OratsClient(base_url=fake_orats.url, token=fake_orats.token, sleep=sleeps.append, timeout=(2, 5))


@pytest.fixture
def orats(orats_client):
    return OratsProvider(orats_client, clock=lambda: MIDDAY)


# --- A trader at the Tradier sandbox (the fake Tradier over HTTP), for the order sync and reconcile ---

SANDBOX_CONTRACT = "SPY261218C00570000"
SANDBOX_TOKEN = "sbxTOKEN-monitor-1a2b3c4d5e"
SANDBOX_ACCOUNT = "VA00006161"


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    """The fake Tradier with `trader` trading in its sandbox account (quotes: the module's `market`),
    at a rate budget of the test's own (the root conftest)."""
    from brokers.models import BrokerMode
    from trades import services as trade_services

    fake = fake_tradier
    fake.add_account(token=SANDBOX_TOKEN, account_id=SANDBOX_ACCOUNT, cash=Decimal("10000"))
    fake.set_quote(SANDBOX_CONTRACT, "4.10", "4.30")
    trade_services.account_settings_update(
        user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX, "tradier_account_id": SANDBOX_ACCOUNT},
        sandbox_token=SANDBOX_TOKEN)
    return fake


def open_sandbox_call(user, market):
    """The scanner opens one SPY 570 call (SL 3.00, TP 6.50) for `user`; returns the trade."""
    from trades import services as trade_services
    from trades.models import Actor

    data = trade_services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"),
                                         expiry=date(2026, 12, 18), qty=1, sl_price=Decimal("3.00"),
                                         tp_price=Decimal("6.50"))
    return trade_services.trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM,
                                     actor_label="scanner").trade


def trade_as_stored(pk):
    from tradeoptions import tenancy
    from trades.models import PaperTrade

    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


# --- The exit-policy cycle tests' shared set-up -------------------------------------------------


@pytest.fixture
def fresh_cache():
    """Modify intents, refused-modify markers and leases live in the cache: each test starts clean."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def exit_policy_clock(market, monkeypatch, settings):
    """The monitor's clock is the hand-driven market's, and a policy may act once a minute."""
    from monitoring import clock as market_clock

    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    settings.EXIT_POLICY_MIN_INTERVAL_SECONDS = 60
