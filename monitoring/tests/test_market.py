"""The paper broker, wired to the simulated market and the real exchange calendar."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from brokers import market as broker_market
from brokers.base import OrderRequest, OrderStatus, order_tag
from brokers.paper import FillRules, LocalPaperBroker
from monitoring.market import MarketDataMarket
from monitoring.marketdata.simulated import SimulatedProvider
from tradeoptions import tenancy

TUESDAY_MIDDAY = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 12:00 in New York
THANKSGIVING = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)


def market_at(moment):
    return MarketDataMarket(SimulatedProvider(seed="paper-test", clock=lambda: moment), clock=lambda: moment)


def test_the_app_registers_the_market_for_the_paper_broker():
    assert isinstance(broker_market.default_market(), MarketDataMarket)


def test_a_chain_lists_calls_and_puts_around_the_money():
    chain = market_at(TUESDAY_MIDDAY).option_chain("SPY", date(2026, 12, 18))
    assert len(chain) == 62 and {entry.option_type for entry in chain} == {"CALL", "PUT"}
    assert all(entry.quote.bid is not None and entry.quote.bid <= entry.quote.ask for entry in chain)
    assert all(entry.quote.greeks.delta is not None for entry in chain)


def test_the_underlying_price_is_the_sources_last_and_none_where_it_has_none():
    from brokers.base import BrokerUnavailable
    from monitoring.marketdata import ProviderUnavailable
    from tests.fakes.market import HandMadeBars

    market = market_at(TUESDAY_MIDDAY)
    spot = market.underlying_price("SPY")
    assert spot > 0 and spot == market.provider.underlying_quotes(["SPY"])["SPY"].last
    assert MarketDataMarket(HandMadeBars()).underlying_price("SPY") is None
    down = HandMadeBars()
    down.underlying_quotes = lambda symbols: (_ for _ in ()).throw(ProviderUnavailable("no answer"))
    with pytest.raises(BrokerUnavailable):
        MarketDataMarket(down).underlying_price("SPY")


def test_trading_days_come_from_the_exchange_calendar():
    market = market_at(TUESDAY_MIDDAY)
    assert market.is_trading_day(date(2026, 12, 1)) and not market.is_trading_day(date(2026, 11, 26))


def test_day_orders_live_until_the_real_close_and_holidays_are_closed():
    market = market_at(TUESDAY_MIDDAY)
    assert market.is_open(TUESDAY_MIDDAY) and not market.is_open(THANKSGIVING)
    assert market.session_close(TUESDAY_MIDDAY) == datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    assert market.session_close(datetime(2026, 11, 27, 15, 0, tzinfo=UTC)) == datetime(2026, 11, 27, 18, 0,
                                                                                        tzinfo=UTC)  # early close


def test_a_market_buy_fills_at_the_simulated_ask(trader):
    market = market_at(TUESDAY_MIDDAY)
    contract = next(entry for entry in market.option_chain("SPY", date(2026, 12, 18)) if entry.option_type == "CALL")
    with tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("100000"), market=market,
                                  rules=FillRules(Decimal("0.65"), Decimal("0")))
        order = broker.place_order(OrderRequest(option_symbol=contract.symbol, side="buy_to_open", quantity=1,
                                                order_type="market", tag=order_tag(1, "entry")))
    assert order.status == OrderStatus.FILLED
    assert order.fill.price == contract.quote.ask


def test_nothing_fills_on_a_holiday(trader):
    market = market_at(THANKSGIVING)
    with tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("100000"), market=market)
        order = broker.place_order(OrderRequest(option_symbol="SPY261218C00600000", side="buy_to_open",
                                                quantity=1, order_type="limit", limit_price=Decimal("50"),
                                                tag=order_tag(2, "entry")))
    assert order.status == OrderStatus.OPEN


def test_a_source_with_listed_chains_gives_its_own_strikes():
    class Listing:
        def option_chain(self, underlying, expiry):
            provider = SimulatedProvider(seed="paper-test", clock=lambda: TUESDAY_MIDDAY)
            return list(provider.option_quotes(["SPY261218C00612500", "SPY261218P00612500"]).values())

    market = MarketDataMarket(Listing(), clock=lambda: TUESDAY_MIDDAY)
    chain = market.option_chain("SPY", date(2026, 12, 18))
    assert [(entry.strike, entry.option_type) for entry in chain] == [(Decimal("612.5"), "CALL"),
                                                                     (Decimal("612.5"), "PUT")]


def test_an_order_sent_after_the_bell_meets_the_next_real_session(settings):
    """The session a queued order meets comes from the exchange calendar: Thanksgiving is skipped,
    the Friday after it opens at 09:30, and during a session nothing is queued."""
    from trades.services import market_session

    settings.FORCE_MARKET_OPEN = False
    during = market_session(market=market_at(TUESDAY_MIDDAY))
    assert (during.open, during.queued_for_open, during.next_open) == (True, False, None)
    before_the_holiday = market_session(market=market_at(datetime(2026, 11, 25, 22, 0, tzinfo=UTC)))
    assert before_the_holiday.queued_for_open
    assert before_the_holiday.next_open == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    on_the_holiday = market_session(market=market_at(THANKSGIVING))
    assert on_the_holiday.next_open == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    beyond = market_session(market=market_at(datetime(2099, 1, 3, 12, 0, tzinfo=UTC)))
    assert (beyond.queued_for_open, beyond.next_open) == (True, None)  # outside the calendar: no promise
