"""The order sync against Tradier over real HTTP (the fake Tradier server): one order list and one
positions read (the over-sell check) per account a cycle, and `get_order(id)` only for what the
list does not show."""

from decimal import Decimal

from brokers.models import BrokerMode
from brokers.tradier import TradierClient
from monitoring import services
from trades.models import CloseReason, TradeStatus

from .conftest import open_sandbox_call, trade_as_stored

CONTRACT = "SPY261218C00570000"


def test_a_take_profit_filled_at_tradier_closes_the_trade_with_one_list_call(trader, tradier, market):
    trade = open_sandbox_call(trader, market)
    assert trade.status == TradeStatus.OPEN and trade.broker_mode == BrokerMode.TRADIER_SANDBOX
    tradier.set_quote(CONTRACT, "6.60", "6.80")  # the fake fills the resting TP
    before = len(tradier.requests_for("GET", "/orders"))
    report = services.sync_orders(market=market, at=market.moment)
    assert report.broker_calls == 2 and len(tradier.requests_for("GET", "/orders")) - before == 1  # + positions
    trade = trade_as_stored(trade.pk)
    # Tradier filled the resting limit at the better bid: its price, and the improvement over the limit.
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.TP_HIT,
                                                                     Decimal("6.60"))
    assert trade.trigger_precision == Decimal("0.10") and trade.broker_fill_time is not None


def test_an_order_older_than_the_list_is_read_on_its_own(trader, tradier, market, monkeypatch):
    trade = open_sandbox_call(trader, market)
    real = TradierClient.get_orders
    # Tradier lists today's orders only: yesterday's bracket is missing from the list.
    monkeypatch.setattr(TradierClient, "get_orders",
                        lambda self: [order for order in real(self) if order.id != trade.bracket_order_id])
    tradier.set_quote(CONTRACT, "2.50", "2.70")  # the stop fills at the bid
    report = services.sync_orders(market=market, at=market.moment)
    assert report.broker_calls == 3  # the list, the one order it lacked, and the positions
    trade = trade_as_stored(trade.pk)
    assert (trade.status, trade.close_reason) == (TradeStatus.CLOSED, CloseReason.SL_HIT)
    assert trade.broker_fill_price == trade.close_price and trade.trigger_precision == trade.close_price - 3
