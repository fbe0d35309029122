"""Moving a stop in place at Tradier (`PUT /orders/{id}`), against the fake over real HTTP.

Two facts are unconfirmed (reference §2.2): whether a leg of a working OCO may be modified, and
whether a modification keeps the order's id. The fake does each both ways, and the client must
be safe under all of them: a refusal is a `StopModifyRefused` the caller falls back on (cancel
and replace), a new id is returned, and exactly one exit ever fills.
"""

import logging
from decimal import Decimal

import pytest

from brokers.base import (
    BrokerRateLimited,
    ModifyBudgetSpent,
    OrderStatus,
    OrderType,
    StopModifyOutcomeUnknown,
    StopModifyRefused,
    StopModifyUnsupported,
    modify_stop,
)
from brokers.ratelimit import RateLimiter, connect
from brokers.tests.conftest import ACCOUNT, SANDBOX_TOKEN
from brokers.tests.test_tradier_client import CALL, stop_loss, take_profit
from brokers.tradier import RetryPolicy, TradierClient


@pytest.fixture
def bracket(tradier, fake_tradier):
    """Alice holds one call bought at 2.00, bracketed by an OCO: stop 1.50, target 3.00."""
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    return tradier.place_oco_order(stop_loss("1.50"), take_profit("3.00"))


def stop_leg_id(oco):
    return oco.leg(OrderType.STOP).id


def test_the_stop_leg_of_a_working_oco_moves_in_place_sending_only_the_stop(tradier, fake_tradier, bracket):
    moved = tradier.modify_stop(stop_leg_id(bracket), Decimal("1.80"))

    put = fake_tradier.requests_for("PUT", "/orders/")
    assert len(put) == 1 and put[0].path == f"/accounts/{ACCOUNT}/orders/{stop_leg_id(bracket)}"
    assert put[0].form == {"stop": "1.80"} and put[0].content_type.startswith("application/x-www-form-urlencoded")
    assert moved.id == stop_leg_id(bracket)
    assert (moved.status, moved.order_type, moved.stop_price) == (OrderStatus.OPEN, OrderType.STOP, Decimal("1.80"))
    assert fake_tradier.order(stop_leg_id(bracket)).stop == Decimal("1.80")
    assert tradier.get_order(bracket.id).leg(OrderType.LIMIT).status == OrderStatus.OPEN


def test_the_moved_stop_fills_where_the_old_one_would_not_and_cancels_the_target(tradier, fake_tradier, bracket):
    tradier.modify_stop(stop_leg_id(bracket), Decimal("1.80"))
    fake_tradier.set_quote(CALL, "1.75", "1.85")  # above the old stop (1.50), through the new one

    done = tradier.get_order(bracket.id)
    assert done.status == OrderStatus.FILLED
    assert done.leg(OrderType.STOP).fill.price == Decimal("1.75")
    assert done.leg(OrderType.LIMIT).status == OrderStatus.CANCELED
    assert tradier.get_positions() == []


def test_a_new_id_in_the_answer_is_the_one_returned_and_the_oco_keeps_one_stop(tradier, fake_tradier, bracket):
    fake_tradier.modify_gives_new_id = True
    old_id = stop_leg_id(bracket)

    moved = tradier.modify_stop(old_id, Decimal("1.80"))

    assert moved.id != old_id and moved.stop_price == Decimal("1.80") and moved.status == OrderStatus.OPEN
    assert tradier.get_order(old_id).status == OrderStatus.CANCELED
    group = tradier.get_order(bracket.id)
    assert [leg.id for leg in group.legs if leg.order_type == OrderType.STOP] == [moved.id]

    fake_tradier.set_quote(CALL, "3.05", "3.15")  # the target fills: the new stop goes with it
    done = tradier.get_order(bracket.id)
    assert done.leg(OrderType.LIMIT).status == OrderStatus.FILLED
    assert tradier.get_order(moved.id).status == OrderStatus.CANCELED
    assert tradier.get_positions() == []


@pytest.mark.parametrize("refusal", ["refused", "refused_200"])
def test_a_refused_leg_modification_changes_nothing_and_cancel_replace_still_works(tradier, fake_tradier, bracket,
                                                                                   refusal):
    fake_tradier.modify_advanced_leg = refusal

    with pytest.raises(StopModifyRefused) as refused:
        tradier.modify_stop(stop_leg_id(bracket), Decimal("1.80"))

    assert not refused.value.finalized and refused.value.order_id == stop_leg_id(bracket)
    assert "cannot be modified" in refused.value.reason
    assert fake_tradier.order(stop_leg_id(bracket)).stop == Decimal("1.50")  # the old stop still protects
    # The fallback the caller owns: cancel the OCO and place the new one.
    assert tradier.cancel_order(bracket.id).status == OrderStatus.CANCELED
    replaced = tradier.place_oco_order(stop_loss("1.80", trade=7), take_profit("3.00", trade=7))
    fake_tradier.set_quote(CALL, "1.75", "1.85")
    assert tradier.get_order(replaced.id).leg(OrderType.STOP).status == OrderStatus.FILLED
    assert tradier.get_positions() == []


def test_modifying_a_stop_that_already_filled_is_refused_as_finalized(tradier, fake_tradier, bracket):
    fake_tradier.set_quote(CALL, "1.40", "1.50")  # the stop fills

    with pytest.raises(StopModifyRefused) as refused:
        tradier.modify_stop(stop_leg_id(bracket), Decimal("1.30"))

    assert refused.value.finalized
    assert tradier.get_order(bracket.id).status == OrderStatus.FILLED


def test_the_oco_itself_cannot_be_modified_only_its_leg(tradier, fake_tradier, bracket):
    with pytest.raises(StopModifyRefused) as refused:
        tradier.modify_stop(bracket.id, Decimal("1.80"))
    assert "modify its legs" in refused.value.reason


def test_a_standalone_stop_moved_through_the_bid_fills_at_once(tradier, fake_tradier):
    fake_tradier.add_position(ACCOUNT, CALL, 1, Decimal("200"))
    fake_tradier.set_quote(CALL, "2.00", "2.10")
    stop = tradier.place_order(stop_loss("1.50"))

    moved = tradier.modify_stop(stop.id, Decimal("2.05"))

    assert moved.id == stop.id and moved.status == OrderStatus.FILLED and moved.fill.price == Decimal("2.00")


@pytest.mark.parametrize("fault", ["hang_after", "500"])
def test_a_lost_answer_is_an_unknown_outcome_and_the_put_is_never_sent_twice(tradier, fake_tradier, bracket, fault):
    fake_tradier.inject(fault, method="PUT")

    with pytest.raises(StopModifyOutcomeUnknown) as unknown:
        tradier.modify_stop(stop_leg_id(bracket), Decimal("1.80"))

    assert unknown.value.order_id == stop_leg_id(bracket)
    assert len(fake_tradier.requests_for("PUT", "/orders/")) == 1


def test_a_throttled_modification_is_rate_limited_not_refused(tradier, fake_tradier, bracket):
    fake_tradier.inject("429", method="PUT", retry_in=0.2)
    with pytest.raises(BrokerRateLimited) as limited:
        tradier.modify_stop(stop_leg_id(bracket), Decimal("1.80"))
    assert not isinstance(limited.value, StopModifyRefused)
    assert fake_tradier.order(stop_leg_id(bracket)).stop == Decimal("1.50")


def test_a_float_stop_is_refused_before_anything_is_sent(tradier, fake_tradier, bracket):
    with pytest.raises(ValueError, match="Decimal"):
        tradier.modify_stop(stop_leg_id(bracket), 1.8)
    assert fake_tradier.requests_for("PUT") == []


# --- The per-account modification budget ----------------------------------------------------------


def test_modifications_over_the_accounts_budget_are_refused_without_a_request(make_client, fake_tradier, bracket):
    first, second = make_client(modify_budget=8), make_client(modify_budget=8)  # two processes, one account

    first.modify_stop(stop_leg_id(bracket), Decimal("1.60"))
    second.modify_stop(stop_leg_id(bracket), Decimal("1.70"))  # 8 a minute: a burst of 2, shared through Redis
    with pytest.raises(ModifyBudgetSpent) as spent:
        first.modify_stop(stop_leg_id(bracket), Decimal("1.80"))

    assert 0 < spent.value.retry_after <= 60 / 6 + 1
    assert isinstance(spent.value, BrokerRateLimited) and not isinstance(spent.value, StopModifyRefused)
    assert len(fake_tradier.requests_for("PUT")) == 2
    assert fake_tradier.order(stop_leg_id(bracket)).stop == Decimal("1.70")


def test_the_budget_comes_from_the_setting(make_client, fake_tradier, bracket, settings):
    settings.TRADIER_MODIFY_BUDGET_PER_MINUTE = 2  # a burst of 1
    client = make_client(modify_budget=None)
    client.modify_stop(stop_leg_id(bracket), Decimal("1.60"))
    with pytest.raises(ModifyBudgetSpent):
        client.modify_stop(stop_leg_id(bracket), Decimal("1.70"))
    assert len(fake_tradier.requests_for("PUT")) == 1


def test_without_redis_a_modification_waits_rather_than_spend_blind(fake_tradier, sandbox_account, bracket):
    limiter = RateLimiter(SANDBOX_TOKEN, limits={"standard": 600, "market_data": 600, "trading": 600},
                          redis_client=connect("redis://127.0.0.1:1/0"))
    client = TradierClient(base_url=fake_tradier.url(), token=SANDBOX_TOKEN, account_id=ACCOUNT, limiter=limiter,
                           timeout=0.3, retry=RetryPolicy(attempts=1), modify_budget_per_minute=100)

    with pytest.raises(ModifyBudgetSpent) as spent:
        client.modify_stop(stop_leg_id(bracket), Decimal("1.80"))

    assert spent.value.retry_after == 30.0
    assert fake_tradier.requests_for("PUT") == []


# --- The contract's safe default ------------------------------------------------------------------


def test_a_broker_without_modification_raises_unsupported_which_is_a_refusal():
    class OldBroker:
        pass

    with pytest.raises(StopModifyUnsupported) as unsupported:
        modify_stop(OldBroker(), "42", Decimal("1.80"))
    assert isinstance(unsupported.value, StopModifyRefused) and unsupported.value.order_id == "42"


def test_the_contract_helper_calls_the_brokers_own_method(tradier, fake_tradier, bracket):
    assert modify_stop(tradier, stop_leg_id(bracket), Decimal("1.80")).stop_price == Decimal("1.80")


def test_a_live_stop_move_is_logged_as_live_without_the_account(tradier, fake_tradier, bracket, caplog):
    from brokers.factory import LiveBroker

    live = LiveBroker(tradier, account_id=ACCOUNT)
    with caplog.at_level(logging.WARNING, logger="brokers.live"):
        moved = live.modify_stop(stop_leg_id(bracket), Decimal("1.80"))
    assert moved.stop_price == Decimal("1.80")
    lines = [record.getMessage() for record in caplog.records if record.name == "brokers.live"]
    assert any("LIVE stop of order" in line and "1.80" in line for line in lines)
    assert all(ACCOUNT not in line and SANDBOX_TOKEN not in line for line in lines)
