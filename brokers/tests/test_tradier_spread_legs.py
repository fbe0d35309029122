"""Spread legs at Tradier that the first cut got wrong: a wing sold to close into a 0.00 bid (both
behaviours, UNCONFIRMED at Tradier, through the fake), a leg filled at 0.00, and naked short legs,
which Tradier refuses in a multileg as it does a single sell to open."""

from decimal import Decimal

import pytest

from brokers.base import (
    OrderDuration,
    OrderRejected,
    OrderSide,
    OrderStatus,
    SpreadLeg,
    SpreadOrderRequest,
    SpreadPriceType,
    StockSide,
)
from brokers.tradier import _order

BTO, STO = OrderSide.BUY_TO_OPEN, OrderSide.SELL_TO_OPEN
BTC, STC = OrderSide.BUY_TO_CLOSE, OrderSide.SELL_TO_CLOSE
C510, C520 = "SPY300118C00510000", "SPY300118C00520000"
P480, P490 = "SPY300118P00480000", "SPY300118P00490000"
C500_FEB = "SPY300215C00500000"
BOOKS = {"SPY": ("499.90", "500.10"), C510: ("1.00", "1.10"), C520: ("0.40", "0.50"), P480: ("0.50", "0.60"),
         P490: ("1.20", "1.30"), C500_FEB: ("3.00", "3.20")}


def spread(legs, price_type, price=None, *, tag="to-9-entry"):
    return SpreadOrderRequest(
        underlying="SPY", legs=tuple(SpreadLeg(symbol, side, quantity) for symbol, side, quantity in legs),
        price_type=price_type, price=None if price is None else Decimal(price), tag=tag, duration=OrderDuration.DAY)


@pytest.fixture
def books(fake_tradier, sandbox_account):
    sandbox_account.cash = Decimal("100000")
    for symbol, (bid, ask) in BOOKS.items():
        fake_tradier.set_quote(symbol, bid, ask)
    return sandbox_account


def held(tradier):
    return {position.symbol: position.quantity for position in tradier.get_positions()}


# --- a wing bid at 0.00 ---------------------------------------------------------------------------


@pytest.mark.parametrize("zero_bid", ["fill", "wait"])
def test_closing_a_spread_whose_wing_bids_zero_is_reported_truthfully_either_way(
        zero_bid, tradier, fake_tradier, books):
    fake_tradier.zero_bid_closing_sells = zero_bid
    tradier.place_spread_order(spread([(P490, STO, 1), (P480, BTO, 1)], SpreadPriceType.CREDIT, "0.55"))
    fake_tradier.set_quote(P490, "0.10", "0.15")
    fake_tradier.set_quote(P480, "0", "0.05")  # nobody bids for the far wing
    order = tradier.place_spread_order(spread([(P490, BTC, 1), (P480, STC, 1)], SpreadPriceType.DEBIT, "0.20",
                                              tag="to-9-close"))
    if zero_bid == "fill":
        assert order.status == OrderStatus.FILLED
        assert [leg.fill.price for leg in order.legs] == [Decimal("0.15"), Decimal("0")]  # 0.00 is a fill
        assert (order.fill.quantity, order.fill.price) == (1, Decimal("0.15"))
        assert held(tradier) == {}
    else:
        assert order.status == OrderStatus.OPEN and order.fill is None
        assert all(leg.fill is None for leg in order.legs)
        assert held(tradier) == {P490: -1, P480: 1}  # nothing closed, nothing claimed closed
        fake_tradier.set_quote(P480, "0.01", "0.05")
        assert tradier.get_order(order.id).fill.price == Decimal("0.14")


def test_a_leg_filled_at_zero_has_its_fill_but_a_zero_price_with_nothing_filled_is_none():
    def raw(exec_quantity, avg_fill_price):
        return {"id": 1, "class": "option", "status": "filled" if exec_quantity else "pending", "side": "sell_to_close",
                "option_symbol": P480, "quantity": 1.0, "exec_quantity": exec_quantity,
                "avg_fill_price": avg_fill_price}

    assert _order(raw(1.0, 0.0)).fill.price == Decimal("0")
    assert _order(raw(0.0, 0.0)).fill is None  # submitting: Tradier's 0.0 means nothing yet
    assert _order(raw(1.0, None)).fill is None


# --- naked short legs --------------------------------------------------------------------------------


@pytest.mark.parametrize("legs", [
    [(C510, STO, 1), (P490, STO, 1)],  # a short strangle
    [(C510, BTO, 1), (C520, STO, 2)],  # a 1×2 ratio: one call naked
    [(C500_FEB, STO, 1), ("SPY300118C00500000", BTO, 1)],  # the long expires first
], ids=["strangle", "ratio", "reverse calendar"])
@pytest.mark.parametrize("refusal", ["errors_200", "rejected"])
def test_a_spread_with_an_uncovered_short_leg_is_rejected(legs, refusal, tradier, fake_tradier, books):
    fake_tradier.spread_refusal = refusal
    fake_tradier.set_quote("SPY300118C00500000", "2.00", "2.20")
    with pytest.raises(OrderRejected, match="uncovered option writing"):
        tradier.place_spread_order(spread(legs, SpreadPriceType.MARKET))
    assert held(tradier) == {}
    fake_tradier.uncovered_writing = True  # an account approved for naked writing
    assert tradier.place_spread_order(spread(legs, SpreadPriceType.MARKET, tag="to-12-entry")).status == \
        OrderStatus.FILLED


def test_shares_and_held_longs_cover_short_calls(tradier, fake_tradier, books):
    covered_call = spread([("SPY", StockSide.BUY, 100), (C510, STO, 1)], SpreadPriceType.MARKET)
    assert tradier.place_spread_order(covered_call).status == OrderStatus.FILLED
    # the 510 bought back and one more sold against the shares: still one call a hundred shares
    roll = spread([(C510, BTC, 1), (C520, STO, 1)], SpreadPriceType.MARKET, tag="to-10-entry")
    assert tradier.place_spread_order(roll).status == OrderStatus.FILLED
    with pytest.raises(OrderRejected, match="uncovered option writing"):
        tradier.place_spread_order(spread([(C510, STO, 1), (P480, BTO, 1)], SpreadPriceType.MARKET,
                                          tag="to-11-entry"))
    assert held(tradier) == {"SPY": 100, C520: -1}


# --- the request's vocabulary -----------------------------------------------------------------------


def test_a_spread_names_its_underlying_exactly_or_by_the_root_alias_and_prices_to_the_cent():
    legs = ((P490, STO, 1), (P480, BTO, 1))
    with pytest.raises(ValueError, match="not an option on SP"):
        SpreadOrderRequest(underlying="SP", legs=tuple(SpreadLeg(*leg) for leg in legs), price_type="market",
                           tag="to-1-entry")
    spx = ("SPXW300118P04900000", STO, 1), ("SPXW300118P04800000", BTO, 1)
    assert SpreadOrderRequest(underlying="SPX", legs=tuple(SpreadLeg(*leg) for leg in spx), price_type="market",
                              tag="to-1-entry").underlying == "SPX"
    with pytest.raises(ValueError, match="whole cents"):
        SpreadOrderRequest(underlying="SPY", legs=tuple(SpreadLeg(*leg) for leg in legs), price_type="credit",
                           price=Decimal("0.555"), tag="to-1-entry")


def test_a_stock_side_says_whether_it_buys():
    assert [side for side in StockSide if side.is_buy] == [StockSide.BUY, StockSide.BUY_TO_COVER]
