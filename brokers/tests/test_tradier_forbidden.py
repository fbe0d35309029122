"""A Tradier 403 is not a 401: the token is known but may not do this. The client says so with its
own exception, logs it, never retries it, and never mistakes it for a token to replace."""

import logging
from decimal import Decimal

import pytest

from brokers.base import BrokerAuthError, BrokerForbidden, OrderType
from brokers.tests.conftest import ACCOUNT, SANDBOX_TOKEN
from brokers.tests.test_tradier_client import CALL, buy, stop_loss, take_profit


@pytest.mark.parametrize("as_fault", [False, True])
def test_a_403_is_forbidden_not_a_refused_token_and_is_asked_once(tradier, fake_tradier, caplog, as_fault):
    fake_tradier.forbid(ACCOUNT, "AccountDisabled: this account is not permitted to trade", as_fault=as_fault)

    with caplog.at_level(logging.WARNING, logger="brokers.tradier"), pytest.raises(BrokerForbidden) as forbidden:
        tradier.get_positions()

    assert not isinstance(forbidden.value, BrokerAuthError)
    assert "403" in str(forbidden.value) and "not permitted to trade" in str(forbidden.value)
    assert ACCOUNT not in str(forbidden.value) and SANDBOX_TOKEN not in str(forbidden.value)
    assert len(fake_tradier.requests_for("GET", "/positions")) == 1  # never retried
    assert any("403" in record.getMessage() for record in caplog.records)
    assert all(SANDBOX_TOKEN not in record.getMessage() and ACCOUNT not in record.getMessage()
               for record in caplog.records)


def test_a_forbidden_placement_places_nothing_and_is_sent_once(tradier, fake_tradier):
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    fake_tradier.forbid(ACCOUNT, trading_only=True)

    with pytest.raises(BrokerForbidden):
        tradier.place_order(buy())

    assert fake_tradier.orders == {} and len(fake_tradier.requests_for("POST", "/orders")) == 1
    assert tradier.get_positions() == []  # reads still answer: only trading is forbidden


def test_a_forbidden_stop_modification_is_not_a_refusal_to_work_around(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    oco = tradier.place_oco_order(stop_loss("1.50"), take_profit("3.00"))
    fake_tradier.forbid(ACCOUNT, trading_only=True)

    with pytest.raises(BrokerForbidden):
        tradier.modify_stop(oco.leg(OrderType.STOP).id, Decimal("1.80"))


def test_an_expired_token_is_still_a_refused_token(tradier, fake_tradier):
    fake_tradier.accounts[ACCOUNT].token = "someone-else"
    with pytest.raises(BrokerAuthError) as refused:
        tradier.get_positions()
    assert not isinstance(refused.value, BrokerForbidden) and "401" in str(refused.value)
