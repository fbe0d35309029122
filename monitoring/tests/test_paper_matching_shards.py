"""The matching job split by account (`match_paper_orders(shard=...)`, for the sharded Celery
tasks): each shard fills only the accounts whose id is its index modulo the count, so every group
is matched by exactly one shard, and the shards together do what one unsharded run does."""

from decimal import Decimal

import pytest
from django.db import transaction

from brokers.base import OrderDuration, OrderRequest, OrderSide, OrderStatus, OrderType, order_tag
from brokers.models import PaperFill
from brokers.paper import FillRules, LocalPaperBroker
from monitoring.services import match_paper_orders
from monitoring.sharding import Shard
from tests.factories import UserFactory
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

CONTRACT = "SPY261218C00570000"
pytestmark = pytest.mark.django_db

RULES = FillRules(commission_per_contract=Decimal("0.65"), slippage_per_share=Decimal(0))


def _bracketed(owner, market):
    """One contract bought at the ask and bracketed: stop 3.50, target 6.00."""
    with tenancy.acting_as(owner.pk):
        broker = LocalPaperBroker(owner.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)
        broker.place_order(OrderRequest(option_symbol=CONTRACT, side=OrderSide.BUY_TO_OPEN, quantity=1,
                                        order_type=OrderType.MARKET, tag=order_tag(owner.pk, "entry")))
        exit_leg = {"option_symbol": CONTRACT, "side": OrderSide.SELL_TO_CLOSE, "quantity": 1,
                    "duration": OrderDuration.GTC}
        return broker.place_oco_order(
            OrderRequest(**exit_leg, order_type=OrderType.STOP, stop_price=Decimal("3.50"),
                         tag=order_tag(owner.pk, "sl")),
            OrderRequest(**exit_leg, order_type=OrderType.LIMIT, limit_price=Decimal("6.00"),
                         tag=order_tag(owner.pk, "tp")))


def _exits_sold():
    """Contracts sold to close, by account (the stops' fills)."""
    with tenancy.system_context():
        sold = PaperFill.objects.filter(side=OrderSide.SELL_TO_CLOSE).values_list("owner_id", "price")
        return {owner: price for owner, price in sold}


def test_two_shards_each_fill_their_own_accounts_and_together_what_one_run_fills():
    market = HandDrivenMarket.quoting({CONTRACT: ("4.10", "4.30")})
    owners = [UserFactory(), UserFactory(), UserFactory()]
    assert {owner.pk % 2 for owner in owners} == {0, 1}
    brackets = {owner.pk: _bracketed(owner, market) for owner in owners}
    market.set_quote(CONTRACT, "3.40", "3.60")  # every stop is through: each bracket sells at the bid
    with transaction.atomic():
        assert match_paper_orders(market=market, rules=RULES) == 3
        unsharded = _exits_sold()
        transaction.set_rollback(True)

    filled = []
    for index in (0, 1):
        shard = Shard(index, 2)
        filled.append(match_paper_orders(market=market, rules=RULES, shard=shard))
        assert {owner for owner in _exits_sold()} == {owner.pk for owner in owners if owner.pk % 2 <= index}
        assert match_paper_orders(market=market, rules=RULES, shard=shard) == 0  # its groups are done
    assert filled == [sum(owner.pk % 2 == 0 for owner in owners), sum(owner.pk % 2 == 1 for owner in owners)]
    assert _exits_sold() == unsharded == {owner.pk: Decimal("3.40") for owner in owners}
    for owner in owners:
        with tenancy.acting_as(owner.pk):
            bracket = LocalPaperBroker(owner.pk, starting_cash=Decimal("5000"), market=market,
                                       rules=RULES).get_order(brackets[owner.pk].id)
        assert [leg.status for leg in bracket.legs] == [OrderStatus.FILLED, OrderStatus.CANCELED]


def test_a_shard_with_no_working_order_of_its_own_asks_for_no_quote():
    market = HandDrivenMarket.quoting({CONTRACT: ("4.10", "4.30")})
    owner = UserFactory()
    _bracketed(owner, market)
    market.quote_requests.clear()
    assert match_paper_orders(market=market, rules=RULES, shard=Shard((owner.pk + 1) % 2, 2)) == 0
    assert market.quote_requests == []
    assert match_paper_orders(market=market, rules=RULES, shard=Shard(owner.pk % 2, 2)) == 0
    assert market.quote_requests == [[CONTRACT]]
