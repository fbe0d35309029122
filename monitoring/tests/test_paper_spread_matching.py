"""The matching job fills a resting spread at the local paper broker whole, like the broker's own
match: its quick look (`brokers.paper.groups_due`) must price spreads as the broker does, or it would skip them."""

from decimal import Decimal

from brokers.base import OrderStatus
from brokers.paper import LocalPaperBroker
from brokers.tests.test_paper_spreads import C570, C575, CASH, QUOTES, RULES, bull_call
from monitoring.services import match_paper_orders
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy


def test_the_matching_job_fills_a_resting_spread_whole_once_its_net_crosses(trader):
    market = HandDrivenMarket()
    for symbol, (bid, ask) in QUOTES.items():
        market.set_quote(symbol, bid, ask)
    with tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=CASH, market=market, rules=RULES)
        order = broker.place_spread_order(bull_call(price_type="debit", price="1.50"))  # natural: 1.80
    assert match_paper_orders(market=market, rules=RULES) == 0
    market.set_quote(C575, "2.60", "2.70")  # 4.30 − 2.60 = 1.70: still over
    assert match_paper_orders(market=market, rules=RULES) == 0
    market.set_quote(C570, "3.90", "4.00")  # 4.00 − 2.60 = 1.40: under the limit
    assert match_paper_orders(market=market, rules=RULES) == 2
    with tenancy.acting_as(trader.pk):
        state = broker.get_order(order.id)
        positions = {position.symbol: position.quantity for position in broker.get_positions()}
    assert state.status == OrderStatus.FILLED and state.fill.price == Decimal("1.40")
    assert [leg.fill.price for leg in state.legs] == [Decimal("4.00"), Decimal("2.60")]
    assert positions == {C570: 1, C575: -1}
