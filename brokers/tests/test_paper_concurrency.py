"""Two placements at once cannot both spend the same cash (the account lock holds)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from brokers.base import OrderRejected, OrderRequest, OrderStatus, order_tag
from brokers.paper import FillRules, LocalPaperBroker
from tests.factories import UserFactory
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

CONTRACT = "SPY261218C00570000"


@pytest.mark.django_db(transaction=True)
def test_parallel_buys_cannot_overspend_the_account():
    trader = UserFactory()
    market = HandDrivenMarket()
    market.open = False  # orders rest: only the reservations decide
    market.set_quote(CONTRACT, "29.80", "30.00")
    outcomes, barrier = [], threading.Barrier(4)

    def place(number):
        try:
            with tenancy.acting_as(trader.pk):
                broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market,
                                          rules=FillRules(Decimal("0.65"), Decimal("0")))
                barrier.wait()
                order = broker.place_order(OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1,
                                                        order_type="market", tag=order_tag(number, "entry")))
                outcomes.append(order.status)
        except OrderRejected:
            outcomes.append("rejected")
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([OrderStatus.OPEN] * 1 + ["rejected"] * 3)  # $3,000.65 fits once
