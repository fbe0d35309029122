"""The factory sends each account's orders to the right broker, with the right token only."""

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from brokers.base import BrokerAuthError, BrokerError
from brokers.factory import LiveTradingDisabled, broker_for
from brokers.models import BrokerMode
from brokers.paper import LocalPaperBroker
from brokers.tests.conftest import ACCOUNT, LIVE_TOKEN, SANDBOX_TOKEN
from brokers.tradier import TradierClient
from tests.fakes.market import HandDrivenMarket
from tests.fakes.tradier import LIVE, SANDBOX


@dataclass
class Account:
    broker_mode: str
    tokens: dict = field(default_factory=dict)
    owner_id: int = 1
    tradier_account_id: str = ACCOUNT
    account_balance: Decimal = Decimal("5000")
    commission_rate: Decimal = Decimal("0.65")

    def broker_token(self, mode):
        return self.tokens.get(mode, "")


LIVE_ACCOUNT = "6YA00005"
BOTH_TOKENS = {BrokerMode.TRADIER_SANDBOX: SANDBOX_TOKEN, BrokerMode.TRADIER_LIVE: LIVE_TOKEN}


@pytest.fixture
def environments(settings, fake_tradier):
    fake_tradier.add_account(token=SANDBOX_TOKEN, account_id=ACCOUNT, cash=Decimal("10000"), environment=SANDBOX)
    fake_tradier.add_account(token=LIVE_TOKEN, account_id=LIVE_ACCOUNT, cash=Decimal("10000"), environment=LIVE)
    settings.TRADIER_SANDBOX_URL = fake_tradier.url(SANDBOX)
    settings.TRADIER_LIVE_URL = fake_tradier.url(LIVE)
    return fake_tradier


def test_local_paper_is_the_default_and_needs_no_account():
    broker = broker_for(Account(BrokerMode.LOCAL_PAPER, tradier_account_id=""), market=HandDrivenMarket())
    assert isinstance(broker, LocalPaperBroker) and broker.starting_cash == Decimal("5000")


def test_the_paper_broker_charges_the_accounts_commission_per_contract():
    broker = broker_for(Account(BrokerMode.LOCAL_PAPER, tradier_account_id="", commission_rate=Decimal("0.35")),
                        market=HandDrivenMarket())
    assert broker.rules.commission_per_contract == Decimal("0.35")


def test_sandbox_mode_sends_only_the_sandbox_token_to_the_sandbox(environments):
    broker = broker_for(Account(BrokerMode.TRADIER_SANDBOX, BOTH_TOKENS))
    assert isinstance(broker, TradierClient)
    assert broker.get_account_balance().total_cash == Decimal("10000")
    seen = {(request.environment, request.authorized) for request in environments.requests}
    assert seen == {(SANDBOX, True)}  # the fake authorizes a token only in its own environment


def test_live_mode_is_refused_while_live_trading_is_off(environments, settings):
    settings.ALLOW_LIVE_TRADING = False
    with pytest.raises(LiveTradingDisabled, match="ALLOW_LIVE_TRADING"):
        broker_for(Account(BrokerMode.TRADIER_LIVE, BOTH_TOKENS))
    assert environments.requests == []


def test_live_mode_uses_the_live_token_on_the_live_host(environments, settings):
    settings.ALLOW_LIVE_TRADING = True
    broker_for(Account(BrokerMode.TRADIER_LIVE, BOTH_TOKENS, tradier_account_id=LIVE_ACCOUNT)).get_account_balance()
    assert {(request.environment, request.authorized) for request in environments.requests} == {(LIVE, True)}


def test_a_mode_without_its_own_token_never_borrows_the_other(environments, settings):
    settings.ALLOW_LIVE_TRADING = True
    with pytest.raises(BrokerAuthError, match="token"):
        broker_for(Account(BrokerMode.TRADIER_LIVE, {BrokerMode.TRADIER_SANDBOX: SANDBOX_TOKEN}))
    with pytest.raises(BrokerAuthError, match="token"):
        broker_for(Account(BrokerMode.TRADIER_SANDBOX, {BrokerMode.TRADIER_LIVE: LIVE_TOKEN}))
    assert environments.requests == []


def test_one_url_for_both_environments_is_refused(settings):
    settings.TRADIER_SANDBOX_URL = settings.TRADIER_LIVE_URL = "https://api.tradier.com/v1"
    with pytest.raises(BrokerError, match="refusing to mix"):
        broker_for(Account(BrokerMode.TRADIER_SANDBOX, BOTH_TOKENS))


def test_an_accounts_client_is_reused_so_its_connections_are(environments):
    account = Account(BrokerMode.TRADIER_SANDBOX, BOTH_TOKENS)
    assert broker_for(account) is broker_for(account)
    replaced = Account(BrokerMode.TRADIER_SANDBOX, {BrokerMode.TRADIER_SANDBOX: "another-token"})
    assert broker_for(replaced) is not broker_for(account)


def test_the_tradier_sandbox_can_be_switched_off_on_a_server(settings):
    settings.ALLOW_TRADIER_SANDBOX = False

    class Account:
        owner_id, broker_mode, tradier_account_id, account_balance = 1, BrokerMode.TRADIER_SANDBOX, "VA1", 0

        def broker_token(self, mode):
            return "token"

    with pytest.raises(BrokerError, match="ALLOW_TRADIER_SANDBOX"):
        broker_for(Account())
