"""Positions stay protected: a bracket that could not be attached after a fill is attached by the
order cycle (adopted by its tag if it is there after all, else placed again, with backoff), and
the trade says UNPROTECTED until then. Over real HTTP against the fake Tradier, and with the
local paper broker."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers.base import BrokerUnavailable, OrderStatus
from brokers.paper import LocalPaperBroker
from monitoring import services
from tradeoptions import tenancy
from trades.models import Actor, CloseReason, EventKind, TradeEvent, TradeStatus
from trades.services import UNPROTECTED, close_outcome, trade_transition

from .conftest import SANDBOX_CONTRACT, open_sandbox_call, trade_as_stored


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # the backoff schedule lives there


def _oco_posts(fake) -> int:
    return sum(1 for request in fake.requests_for("POST", "/orders") if request.form.get("class") == "oco")


def _attempts(pk) -> list[int]:
    with tenancy.system_context():
        events = TradeEvent.objects.filter(trade_id=pk, kind=EventKind.ATTENTION_NEEDED)
        return [event.payload["bracket_attempt"] for event in events if "bracket_attempt" in event.payload]


def test_the_monitor_attaches_a_missing_bracket_with_backoff_until_it_succeeds(trader, tradier, market, api_as):
    tradier.inject("html_503", method="POST", path="/orders", order_class="oco", times=2)  # both tries of the open
    trade = open_sandbox_call(trader, market)
    assert trade.status == TradeStatus.OPEN and trade.unprotected and trade.attention_reason.startswith(UNPROTECTED)
    assert api_as(trader).get(f"/api/trades/{trade.pk}").json()["unprotected"] is True
    assert _oco_posts(tradier) == 2
    start = market.moment

    services.sync_orders(market=market, at=start + timedelta(seconds=30))  # the first retry is due after a minute
    assert _oco_posts(tradier) == 2

    tradier.inject("html_503", method="POST", path="/orders", order_class="oco", times=2)
    services.sync_orders(market=market, at=start + timedelta(minutes=1))  # attempt 2 fails too
    assert _oco_posts(tradier) == 4 and _attempts(trade.pk) == [1, 2]
    assert trade_as_stored(trade.pk).version == trade.version  # a retry does not move the trader's version

    services.sync_orders(market=market, at=start + timedelta(minutes=2))  # next one 2 minutes after the last
    assert _oco_posts(tradier) == 4

    services.sync_orders(market=market, at=start + timedelta(minutes=3))
    trade = trade_as_stored(trade.pk)
    assert _oco_posts(tradier) == 5
    assert trade.bracket_order_id and not trade.unprotected and trade.attention_reason == ""
    brackets = tradier.orders_tagged(f"to-{trade.pk}-sl")
    assert [order.status for order in brackets] == ["open"] and str(brackets[0].id) == trade.bracket_order_id
    assert api_as(trader).get(f"/api/trades/{trade.pk}").json()["unprotected"] is False

    services.sync_orders(market=market, at=start + timedelta(minutes=30))  # protected: nothing more is placed
    assert _oco_posts(tradier) == 5


def test_a_bracket_that_reached_the_broker_after_all_is_adopted_by_its_tag_not_doubled(trader, tradier, market):
    from brokers.factory import broker_for
    from trades.services import account_settings_for, exit_requests

    tradier.inject("html_503", method="POST", path="/orders", order_class="oco", times=2)
    trade = open_sandbox_call(trader, market)
    assert trade.unprotected
    # The answer to an attempt was lost, but Tradier has the bracket under the trade's tag.
    broker = broker_for(account_settings_for(user=trader), market=market)
    placed = broker.place_oco_order(*exit_requests(trade, quantity=1, sl=trade.sl_price, tp=trade.tp_price))
    posts = _oco_posts(tradier)

    services.sync_orders(market=market, at=market.moment)  # before any retry is due: adopting costs no order
    trade = trade_as_stored(trade.pk)
    assert trade.bracket_order_id == placed.id and not trade.unprotected and trade.attention_reason == ""
    assert _oco_posts(tradier) == posts and len(tradier.orders_tagged(f"to-{trade.pk}-sl")) == 1
    tradier.set_quote(SANDBOX_CONTRACT, "2.50", "2.70")  # and it protects: the stop fills, the trade closes
    services.sync_orders(market=market, at=market.moment + timedelta(minutes=1))
    assert trade_as_stored(trade.pk).status == TradeStatus.CLOSED


def test_the_local_paper_broker_gets_the_bracket_on_the_next_due_cycle(trader, market, monkeypatch):
    from trades.services import TradeOpenInput, trade_open

    place = LocalPaperBroker.place_oco_order
    failures = iter([BrokerUnavailable("down"), BrokerUnavailable("down")])

    def flaky(self, sl, tp):
        if (failure := next(failures, None)) is not None:
            raise failure
        return place(self, sl, tp)

    monkeypatch.setattr(LocalPaperBroker, "place_oco_order", flaky)
    data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
    trade = trade_open(user=trader, data=data, market=market).trade
    assert trade.unprotected
    services.sync_orders(market=market, at=market.moment + timedelta(minutes=1))
    trade = trade_as_stored(trade.pk)
    assert trade.bracket_order_id and not trade.unprotected
    paper = LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market)
    with tenancy.acting_as(trader.pk):
        order = paper.get_order(trade.bracket_order_id)
    assert order.status == OrderStatus.OPEN and order.tag == f"to-{trade.pk}-sl"


# --- GTC exits left by finished trades -----------------------------------------------------------


def _finish_leaving_its_bracket(trade, market):
    """The trade is closed while its GTC bracket stays working at Tradier (a close whose cancel of
    the bracket never arrived, a crash in between)."""
    with tenancy.acting_as(trade.owner_id):
        trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, actor=Actor.SYSTEM, changes=close_outcome(
            trade, price=Decimal("5.00"), at=market.moment, reason=CloseReason.MANUAL_CLOSE))


def _orphan_cancels(pk) -> int:
    with tenancy.system_context():
        return TradeEvent.objects.filter(trade_id=pk, kind=EventKind.ORDER_CANCELED, payload__orphan=True).count()


def test_a_gtc_exit_left_working_by_a_trade_finished_on_an_earlier_day_is_cancelled(trader, tradier, market):
    trade = open_sandbox_call(trader, market)
    _finish_leaving_its_bracket(trade, market)
    tradier.next_session()  # a new day: Tradier's order list no longer shows the bracket
    assert tradier.order(trade.bracket_order_id).status == "open"

    report = services.sync_orders(market=market, at=market.moment + timedelta(days=1))
    assert tradier.order(trade.bracket_order_id).status == "canceled" and _orphan_cancels(trade.pk) == 1
    assert report.broker_calls == 4  # the list, the positions, and the trade's two orders by id (entry, bracket)

    reads = len(tradier.requests_for("GET", "/orders/"))
    report = services.sync_orders(market=market, at=market.moment + timedelta(days=1, minutes=1))
    assert report.broker_calls == 2 and len(tradier.requests_for("GET", "/orders/")) == reads  # final: not read again
    assert _orphan_cancels(trade.pk) == 1


def test_orders_of_finished_trades_are_read_a_few_a_cycle(trader, tradier, market, monkeypatch):
    # A private knob of trades, reached by its dotted name (monitoring imports no private module).
    monkeypatch.setattr("trades.services.orphans.FINISHED_ORDER_READS", 2)
    trades = []
    for _ in range(3):
        trades.append(open_sandbox_call(trader, market))
        _finish_leaving_its_bracket(trades[-1], market)
    tradier.next_session()
    calls = []
    for minute in range(4):
        calls.append(services.sync_orders(market=market, at=market.moment + timedelta(days=1, minutes=minute))
                     .broker_calls)
    assert calls == [4, 4, 4, 2]  # the list, the positions and at most two orders by id; then the list and positions
    assert [tradier.order(trade.bracket_order_id).status for trade in trades] == ["canceled"] * 3


def test_a_spent_rate_budget_leaves_the_rest_for_the_next_cycle(trader, tradier, market):
    trade = open_sandbox_call(trader, market)
    _finish_leaving_its_bracket(trade, market)
    tradier.next_session()
    tradier.inject("429", method="GET", path=f"/orders/{trade.entry_order_id}", retry_in=30)
    bracket_reads = len(tradier.requests_for("GET", f"/orders/{trade.bracket_order_id}"))
    report = services.sync_orders(market=market, at=market.moment + timedelta(days=1))
    assert report.failed_accounts == []  # the cycle went on; the reads stopped at the refusal
    assert len(tradier.requests_for("GET", f"/orders/{trade.bracket_order_id}")) == bracket_reads
    assert tradier.order(trade.bracket_order_id).status == "open"  # next cycle, once the window has reset


def test_a_bracket_the_broker_keeps_refusing_is_left_to_the_trader_until_the_trade_changes(trader, market,
                                                                                          monkeypatch):
    from brokers.base import OrderRejected
    from trades.services import TradeOpenInput, trade_open

    place = LocalPaperBroker.place_oco_order
    calls = []

    def refusing(self, sl, tp):
        calls.append(sl.tag)
        if len(calls) <= 4:
            raise OrderRejected("no position to sell")
        return place(self, sl, tp)

    monkeypatch.setattr(LocalPaperBroker, "place_oco_order", refusing)
    data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
    trade = trade_open(user=trader, data=data, market=market).trade  # refusal 1 (a refusal is not retried at once)
    start = market.moment
    for minutes in (1, 3):  # refusals 2 and 3: the monitor gives up and says so
        services.sync_orders(market=market, at=start + timedelta(minutes=minutes))
    trade = trade_as_stored(trade.pk)
    assert len(calls) == 3 and trade.unprotected
    assert "refused it 3 times (no position to sell)" in trade.attention_reason
    services.sync_orders(market=market, at=start + timedelta(hours=2))
    assert len(calls) == 3  # not asked again

    _move_stop(trade, "2.90")  # the trade changes: the monitor tries again
    services.sync_orders(market=market, at=start + timedelta(hours=2, minutes=1))  # refusal 4: given up again
    services.sync_orders(market=market, at=start + timedelta(hours=3))
    assert len(calls) == 4
    _move_stop(trade, "2.80")
    services.sync_orders(market=market, at=start + timedelta(hours=3, minutes=1))
    trade = trade_as_stored(trade.pk)
    assert len(calls) == 5 and trade.bracket_order_id and not trade.unprotected and trade.attention_reason == ""


def _move_stop(trade, price):
    with tenancy.acting_as(trade.owner_id):
        trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, actor=Actor.USER, changes={"sl_price": Decimal(price)})
