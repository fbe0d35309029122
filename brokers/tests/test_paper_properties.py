"""Properties of the local paper broker under any sequence of orders and quote moves.

Hypothesis drives an account through random entries (market and limit), OCO brackets, OTOCO
orders, closes, cancels, quote moves, the clock and the matching cycle; after every step the
books must still add up:

- no order (nor leg) is ever filled beyond its quantity, and no contract is sold that was not held;
- the fills not yet marked closed net to exactly the contracts held (all the expiry settlement reads);
- of an OCO (or an OTOCO's two exits), never both legs fill;
- cash is the starting cash plus every sale less every purchase less the commission on every
  filled contract, recomputed here from the orders the broker reports (not from its ledger);
- realized P&L less the cost of what is still held equals the change in cash, so P&L and cash
  cannot drift apart;
- the account never spends cash it does not have.
"""

from contextlib import ExitStack
from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from brokers.base import BrokerError, OrderRejected, OrderRequest, OrderSide, OrderStatus, order_tag
from brokers.models import PaperFill
from brokers.paper import SHARES_PER_CONTRACT, FillRules, LocalPaperBroker
from tests.factories import UserFactory
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

CONTRACT = "SPY261218C00570000"  # expires 2026-12-18; the hand-driven market starts 2026-12-01
STARTING_CASH = Decimal("2500")
COMMISSION = Decimal("0.65")
RULES = FillRules(commission_per_contract=COMMISSION, slippage_per_share=Decimal("0.01"))

# A coarse grid, so that quotes often cross the orders' prices and both ways within a few steps.
prices = st.integers(min_value=4, max_value=12).map(lambda quarters: Decimal(quarters) / 4)
quantities = st.integers(min_value=1, max_value=3)


def _request(side, quantity, order_type, purpose, *, limit=None, stop=None, duration="day"):
    return OrderRequest(option_symbol=CONTRACT, side=side, quantity=quantity, order_type=order_type,
                        limit_price=limit, stop_price=stop, duration=duration, tag=order_tag(1, purpose))


def _exits(quantity, stop, take_profit):
    return (_request("sell_to_close", quantity, "stop", "sl", stop=stop, duration="gtc"),
            _request("sell_to_close", quantity, "limit", "tp", limit=take_profit, duration="gtc"))


class PaperAccountLife(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # Each example in a savepoint of its own, rolled back at the end: examples cannot leak into
        # each other, and a failing one leaves a clean transaction for Hypothesis to shrink in.
        self.context = ExitStack()
        self.context.enter_context(transaction.atomic())
        self.owner = UserFactory()
        self.context.enter_context(tenancy.acting_as(self.owner.pk))
        self.market = HandDrivenMarket()
        self.market.set_quote(CONTRACT, "2.00", "2.10")
        self.broker = LocalPaperBroker(self.owner.pk, starting_cash=STARTING_CASH, market=self.market, rules=RULES)
        self.placed: list[str] = []

    def teardown(self):
        transaction.set_rollback(True)
        self.context.close()

    def _place(self, place, *args):
        try:
            self.placed.append(place(*args).id)
        except OrderRejected:
            pass  # refusals are part of the game; the invariants say what they must protect

    # --- what the trader does ----------------------------------------------------------------

    @rule(quantity=quantities, limit=st.none() | prices)
    def buy(self, quantity, limit):
        kind = "market" if limit is None else "limit"
        self._place(self.broker.place_order, _request("buy_to_open", quantity, kind, "entry", limit=limit))

    @rule(quantity=quantities, stop=prices, take_profit=prices)
    def bracket(self, quantity, stop, take_profit):
        self._place(self.broker.place_oco_order, *_exits(quantity, stop, take_profit))

    @rule(quantity=quantities, limit=st.none() | prices, stop=prices, take_profit=prices)
    def buy_with_bracket(self, quantity, limit, stop, take_profit):
        kind = "market" if limit is None else "limit"
        entry = _request("buy_to_open", quantity, kind, "entry", limit=limit, duration="gtc")
        self._place(self.broker.place_otoco_order, entry, *_exits(quantity, stop, take_profit))

    @rule(quantity=quantities)
    def close(self, quantity):
        self._place(self.broker.place_order, _request("sell_to_close", quantity, "market", "close"))

    @precondition(lambda self: self.placed)
    @rule(data=st.data())
    def cancel(self, data):
        order_id = data.draw(st.sampled_from(self.placed))
        try:
            self.broker.cancel_order(order_id)
        except BrokerError:
            raise AssertionError(f"The broker lost order {order_id}") from None

    # --- what the market does ----------------------------------------------------------------

    @rule(bid=prices, spread=st.sampled_from([1, 5, 25]), open_=st.booleans())
    def quote_moves(self, bid, spread, open_):
        self.market.set_quote(CONTRACT, str(bid), str(bid + Decimal(spread) / 100))
        self.market.open = open_
        self.broker.match()

    @rule(hours=st.integers(min_value=1, max_value=20))
    def time_passes(self, hours):
        if self.market.moment.day < 15:  # stay before the contract's expiry
            self.market.advance(hours=hours)
        self.broker.match()

    # --- what must always hold ---------------------------------------------------------------

    def _orders(self):
        heads = self.broker.get_orders()
        return heads, [leg for head in heads for leg in (head.legs or (head,))]

    @invariant()
    def nothing_fills_beyond_its_quantity_or_what_is_held(self):
        _, orders = self._orders()
        for order in orders:
            assert order.filled_quantity <= (order.quantity or 0), order
            fills = PaperFill.objects.filter(order_id=int(order.id))
            assert sum(fill.quantity for fill in fills) == order.filled_quantity, order
        held = 0
        for fill in PaperFill.objects.filter(owner_id=self.owner.pk).order_by("id"):
            held += fill.quantity if OrderSide(fill.side).is_buy else -fill.quantity
            assert held >= 0, "sold contracts that were not held"
        # The expiry settlement reads only fills of open positions: they net to what is held, and
        # once nothing is held (one contract here) none is left open.
        still_open = PaperFill.objects.filter(owner_id=self.owner.pk, position_closed=False)
        assert sum(fill.quantity if OrderSide(fill.side).is_buy else -fill.quantity for fill in still_open) == held
        assert held > 0 or not still_open.exists(), "a closed position's fills are still read"

    @invariant()
    def never_both_exits_of_a_bracket(self):
        heads, _ = self._orders()
        for head in heads:
            exits = [leg for leg in head.legs if leg.side == OrderSide.SELL_TO_CLOSE]
            if head.order_class in ("oco", "otoco"):
                assert sum(leg.status == OrderStatus.FILLED for leg in exits) <= 1, head

    @invariant()
    def cash_and_pnl_are_the_sum_of_the_fills(self):
        _, orders = self._orders()
        cash = STARTING_CASH
        for order in orders:
            if order.fill is None:
                continue
            amount = order.fill.price * order.fill.quantity * SHARES_PER_CONTRACT
            cash += -amount if order.side.is_buy else amount
            cash -= COMMISSION * order.fill.quantity
        balance = self.broker.get_account_balance()
        held_cost = sum((position.cost_basis for position in self.broker.get_positions()), Decimal(0))
        assert balance.total_cash == cash
        # Average cost splits a basis into thirds and the like: equal to far below a cent, not to the last digit.
        assert abs((balance.close_pl - held_cost) - (cash - STARTING_CASH)) < Decimal("0.000001")
        assert balance.total_cash >= 0, "spent cash the account did not have"


def test_the_paper_books_always_add_up(db):
    # No shrinking: every step goes through PostgreSQL, and shrinking a failing sequence would take
    # longer than the suite's timeout. A failure prints the whole sequence as it was found.
    run_state_machine_as_test(PaperAccountLife, settings=settings(
        max_examples=15, stateful_step_count=12, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))


def test_an_exit_filled_cancels_its_sibling_even_when_more_contracts_are_held(trader):
    """The sequence the machine above finds only rarely: enough contracts held that the fill-time
    check alone would let the second exit through; the OCO itself must stop it."""
    market = HandDrivenMarket()
    market.set_quote(CONTRACT, "2.00", "2.10")
    with tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=STARTING_CASH, market=market, rules=RULES)
        broker.place_order(_request("buy_to_open", 3, "market", "entry"))
        bracket = broker.place_oco_order(*_exits(1, Decimal("1.50"), Decimal("3.00")))
        market.set_quote(CONTRACT, "1.40", "1.50")
        broker.match()
        market.set_quote(CONTRACT, "3.10", "3.20")
        broker.match()
        legs = broker.get_order(bracket.id).legs
        held = sum(position.quantity for position in broker.get_positions())
    assert [leg.status for leg in legs] == [OrderStatus.FILLED, OrderStatus.CANCELED]
    assert held == 2
