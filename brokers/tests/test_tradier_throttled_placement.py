"""A placement Tradier throttles (429, with its rate-limit headers) is sent again once the window
resets, within a bounded wait; past that bound the caller hears at once that nothing was placed.
Over real HTTP against the fake Tradier."""

import time
from decimal import Decimal

import pytest

from brokers.base import BrokerRateLimited, OrderDuration, OrderOutcomeUnknown, OrderRequest, OrderSide, OrderType
from brokers.tradier import ConfirmPolicy

CALL = "SPY300118C00500000"
TAG = "to-7-entry"


def buy() -> OrderRequest:
    return OrderRequest(option_symbol=CALL, side=OrderSide.BUY_TO_OPEN, quantity=1, order_type=OrderType.LIMIT,
                        limit_price=Decimal("1.00"), tag=TAG, duration=OrderDuration.DAY)


@pytest.fixture
def client(make_client, sandbox_account):
    client = make_client(confirm=ConfirmPolicy(attempts=5, first_delay=0.01, max_delay=0.05, throttled_wait=2.0))
    yield client
    client.close()


def test_a_throttled_placement_is_sent_again_once_the_window_resets(client, fake_tradier):
    fake_tradier.inject("429", method="POST", path="/orders", retry_in=0.4)
    started = time.monotonic()
    order = client.place_order(buy())
    assert time.monotonic() - started >= 0.3  # it waited for the reset Tradier announced
    assert len(fake_tradier.requests_for("POST", "/orders")) == 2
    assert [str(placed.id) for placed in fake_tradier.orders_tagged(TAG)] == [order.id]  # one order, not two


def test_a_window_further_off_than_the_bound_is_not_waited_for_and_nothing_is_placed(client, fake_tradier):
    fake_tradier.inject("429", method="POST", path="/orders", retry_in=45)
    started = time.monotonic()
    with pytest.raises(BrokerRateLimited) as limited:
        client.place_order(buy())
    assert time.monotonic() - started < 1.0
    assert "was not placed" in str(limited.value) and limited.value.retry_after > 40
    assert len(fake_tradier.requests_for("POST", "/orders")) == 1 and fake_tradier.orders_tagged(TAG) == []


def test_throttled_again_and_again_it_gives_up_after_the_bound(client, fake_tradier):
    fake_tradier.inject("429", method="POST", path="/orders", retry_in=0.5, times=10)
    started = time.monotonic()
    with pytest.raises(BrokerRateLimited):
        client.place_order(buy())
    assert 1.5 <= time.monotonic() - started < 3.5  # about the bound, not one window more
    assert len(fake_tradier.requests_for("POST", "/orders")) in (4, 5) and fake_tradier.orders_tagged(TAG) == []


def test_a_throttled_resend_after_a_lost_answer_is_not_sent_blindly(client, fake_tradier):
    """The first POST's answer is lost and its tag not found, so it is sent again; Tradier throttles
    that one: whether the first reached Tradier late is unknown, so the caller is told so."""
    fake_tradier.inject("500", method="POST", path="/orders")
    fake_tradier.inject("429", method="POST", path="/orders", retry_in=0.2)
    with pytest.raises(OrderOutcomeUnknown):
        client.place_order(buy())
    assert len(fake_tradier.requests_for("POST", "/orders")) == 2
