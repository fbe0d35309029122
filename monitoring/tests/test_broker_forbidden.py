"""A forbidden account (Tradier's 403) met by the order cycle: recorded as `broker_forbidden`,
polled on (unlike a refused token), and lifted by the first clean read. Over real HTTP."""

from datetime import timedelta

import pytest
from django.core.cache import cache

from monitoring import services
from trades import services as trade_services

from .conftest import SANDBOX_ACCOUNT, open_sandbox_call


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def test_a_403_blocks_new_trades_until_the_cycle_reads_the_account_cleanly(trader, tradier, market, api_as):
    open_sandbox_call(trader, market)
    tradier.forbid(SANDBOX_ACCOUNT)

    report = services.sync_orders(market=market, at=market.moment)
    assert report.failed_accounts == [trader.pk]
    (trouble,) = api_as(trader).get("/api/broker-status").json()
    assert trouble["code"] == "broker_forbidden" and "does not allow this account to trade" in trouble["detail"]
    with pytest.raises(trade_services.BrokerAccountForbidden):
        open_sandbox_call(trader, market)

    asked = len(tradier.requests)
    report = services.sync_orders(market=market, at=market.moment + timedelta(minutes=1))
    assert report.paused_accounts == [] and len(tradier.requests) > asked  # polled on: a 403 is not a bad token

    tradier.allow(SANDBOX_ACCOUNT)
    report = services.sync_orders(market=market, at=market.moment + timedelta(minutes=2))
    assert report.failed_accounts == [] and api_as(trader).get("/api/broker-status").json() == []
    assert open_sandbox_call(trader, market).status == "OPEN"
