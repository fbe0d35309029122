"""Spread orders at Tradier (`class=multileg` and `class=combo`), against the fake over real HTTP.

Every template the strategy builder offers goes through the same placement as a single order:
the body exactly as Tradier documents it (reference §2.1), read back into one `Order` whose legs
carry their own side, quantity, status and fill, filled at the natural sides. Whether Tradier
ever fills a spread in part is unconfirmed (reference §5, Appendix B 3): the fake does it all or
nothing, in whole units, or leg by leg, and the client reports each truthfully.
"""

import logging
from decimal import Decimal

import pytest
import requests

from brokers.base import (
    OrderDuration,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderSide,
    OrderStatus,
    SpreadLeg,
    SpreadOrderRequest,
    SpreadPriceType,
    StockSide,
)
from brokers.factory import LiveBroker, LiveOrderUntagged
from brokers.ratelimit import MARKET_DATA, STANDARD, TRADING
from brokers.tests.conftest import ACCOUNT, SANDBOX_TOKEN
from brokers.tradier import _order
from tests.fakes.tradier import NOT_ENOUGH_BUYING_POWER

BTO, STO = OrderSide.BUY_TO_OPEN, OrderSide.SELL_TO_OPEN
BTC, STC = OrderSide.BUY_TO_CLOSE, OrderSide.SELL_TO_CLOSE
TAG = "to-9-entry"

C490, C500, C510, C520 = (f"SPY300118C00{strike}000" for strike in (490, 500, 510, 520))
P480, P490, P500 = (f"SPY300118P00{strike}000" for strike in (480, 490, 500))
C500_FEB = "SPY300215C00500000"

# The books (bid, ask) every test starts from; SPY itself for the covered call's stock leg.
BOOKS = {
    "SPY": ("499.90", "500.10"),
    C490: ("4.00", "4.20"), C500: ("2.00", "2.20"), C510: ("1.00", "1.10"), C520: ("0.40", "0.50"),
    P480: ("0.50", "0.60"), P490: ("1.20", "1.30"), P500: ("2.10", "2.30"),
    C500_FEB: ("3.00", "3.20"),
}


def spread(legs, price_type, price=None, *, tag=TAG, duration=OrderDuration.DAY):
    return SpreadOrderRequest(
        underlying="SPY", legs=tuple(SpreadLeg(symbol, side, quantity) for symbol, side, quantity in legs),
        price_type=price_type, price=None if price is None else Decimal(price), tag=tag, duration=duration,
    )


def natural(symbol, side):
    bid, ask = BOOKS[symbol]
    return Decimal(ask if side.is_buy else bid)


# Each template: its legs, how it is priced, and the body Tradier must receive, key for key.
TEMPLATES = {
    "vertical debit": (
        [(C500, BTO, 2), (C510, STO, 2)], SpreadPriceType.DEBIT, "1.25",  # natural 2.20 − 1.00 = 1.20
        {"class": "multileg", "symbol": "SPY", "type": "debit", "duration": "day", "price": "1.25", "tag": TAG,
         "option_symbol[0]": C500, "side[0]": "buy_to_open", "quantity[0]": "2",
         "option_symbol[1]": C510, "side[1]": "sell_to_open", "quantity[1]": "2"},
    ),
    "vertical credit": (
        [(P490, STO, 1), (P480, BTO, 1)], SpreadPriceType.CREDIT, "0.55",  # natural 1.20 − 0.60 = 0.60
        {"class": "multileg", "symbol": "SPY", "type": "credit", "duration": "day", "price": "0.55", "tag": TAG,
         "option_symbol[0]": P490, "side[0]": "sell_to_open", "quantity[0]": "1",
         "option_symbol[1]": P480, "side[1]": "buy_to_open", "quantity[1]": "1"},
    ),
    "straddle": (
        [(C500, BTO, 1), (P500, BTO, 1)], SpreadPriceType.MARKET, None,
        {"class": "multileg", "symbol": "SPY", "type": "market", "duration": "day", "tag": TAG,
         "option_symbol[0]": C500, "side[0]": "buy_to_open", "quantity[0]": "1",
         "option_symbol[1]": P500, "side[1]": "buy_to_open", "quantity[1]": "1"},
    ),
    "strangle": (
        [(C510, BTO, 1), (P490, BTO, 1)], SpreadPriceType.DEBIT, "2.50",  # natural 1.10 + 1.30 = 2.40
        {"class": "multileg", "symbol": "SPY", "type": "debit", "duration": "day", "price": "2.50", "tag": TAG,
         "option_symbol[0]": C510, "side[0]": "buy_to_open", "quantity[0]": "1",
         "option_symbol[1]": P490, "side[1]": "buy_to_open", "quantity[1]": "1"},
    ),
    "iron condor": (
        [(P480, BTO, 1), (P490, STO, 1), (C510, STO, 1), (C520, BTO, 1)], SpreadPriceType.CREDIT, "1.00",
        # natural: 1.20 + 1.00 − 0.60 − 0.50 = 1.10 received
        {"class": "multileg", "symbol": "SPY", "type": "credit", "duration": "day", "price": "1.00", "tag": TAG,
         "option_symbol[0]": P480, "side[0]": "buy_to_open", "quantity[0]": "1",
         "option_symbol[1]": P490, "side[1]": "sell_to_open", "quantity[1]": "1",
         "option_symbol[2]": C510, "side[2]": "sell_to_open", "quantity[2]": "1",
         "option_symbol[3]": C520, "side[3]": "buy_to_open", "quantity[3]": "1"},
    ),
    "butterfly 1x2x1": (
        [(C490, BTO, 1), (C500, STO, 2), (C510, BTO, 1)], SpreadPriceType.DEBIT, "1.40",
        # natural: 4.20 − 2 × 2.00 + 1.10 = 1.30
        {"class": "multileg", "symbol": "SPY", "type": "debit", "duration": "day", "price": "1.40", "tag": TAG,
         "option_symbol[0]": C490, "side[0]": "buy_to_open", "quantity[0]": "1",
         "option_symbol[1]": C500, "side[1]": "sell_to_open", "quantity[1]": "2",
         "option_symbol[2]": C510, "side[2]": "buy_to_open", "quantity[2]": "1"},
    ),
    "calendar": (
        [(C500, STO, 1), (C500_FEB, BTO, 1)], SpreadPriceType.DEBIT, "1.20",  # natural 3.20 − 2.00, at the limit
        {"class": "multileg", "symbol": "SPY", "type": "debit", "duration": "day", "price": "1.20", "tag": TAG,
         "option_symbol[0]": C500, "side[0]": "sell_to_open", "quantity[0]": "1",
         "option_symbol[1]": C500_FEB, "side[1]": "buy_to_open", "quantity[1]": "1"},
    ),
    "covered call": (
        # The call is named first; Tradier wants the stock leg at index 0, with no option_symbol[0].
        [(C510, STO, 1), ("SPY", StockSide.BUY, 100)], SpreadPriceType.DEBIT, "499.50",  # 500.10 − 1.00
        {"class": "combo", "symbol": "SPY", "type": "debit", "duration": "day", "price": "499.50", "tag": TAG,
         "side[0]": "buy", "quantity[0]": "100",
         "option_symbol[1]": C510, "side[1]": "sell_to_open", "quantity[1]": "1"},
    ),
}


# Each template's units (the legs' quantities over their greatest common divisor) and its natural
# net per share of one unit, paid (positive) or received (negative), from BOOKS.
FILLED_AT = {
    "vertical debit": (2, "1.20"), "vertical credit": (1, "-0.60"), "straddle": (1, "4.50"),
    "strangle": (1, "2.40"), "iron condor": (1, "-1.10"), "butterfly 1x2x1": (1, "1.30"), "calendar": (1, "1.20"),
    "covered call": (1, "499.10"),
}


def template(name, **kwargs):
    legs, price_type, price, _ = TEMPLATES[name]
    return spread(legs, price_type, price, **kwargs)


@pytest.fixture
def books(fake_tradier, sandbox_account):
    """Alice's sandbox account with $100,000 (a covered call buys the shares), and the books."""
    sandbox_account.cash = Decimal("100000")
    for symbol, (bid, ask) in BOOKS.items():
        fake_tradier.set_quote(symbol, bid, ask)
    return sandbox_account


def post_forms(fake):
    return [request.form for request in fake.requests_for("POST", "/orders")]


# --- Every template: the body, the parse, the fill ----------------------------------------------


@pytest.mark.parametrize("parent_fills", ["net", "none"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_each_template_is_sent_as_documented_and_fills_every_leg_at_its_natural_side(
    name, parent_fills, tradier, fake_tradier, books
):
    fake_tradier.spread_parent_fills = parent_fills  # what the parent says of itself does not matter
    legs, price_type, price, body = TEMPLATES[name]
    request = spread(legs, price_type, price)

    order = tradier.place_spread_order(request)

    (post,) = fake_tradier.requests_for("POST", "/orders")
    assert post.form == body and post.content_type.startswith("application/x-www-form-urlencoded")
    assert order.order_class == request.order_class and order.tag == TAG
    assert order.status == OrderStatus.FILLED and order.price_type == request.price_type
    assert order.limit_price == (None if price is None else Decimal(price))  # the net; a market order has none
    assert order.side is None  # Tradier's parent says "buy" whatever the legs do
    units, net = FILLED_AT[name]
    assert (order.quantity, order.filled_quantity, order.remaining_quantity) == (units, units, 0)
    assert (order.fill.quantity, order.fill.price) == (units, Decimal(net))
    sent = sorted(legs, key=lambda leg: isinstance(leg[1], OrderSide))  # the stock leg first, as sent
    assert len(order.legs) == len(sent)
    for leg, (symbol, side, quantity) in zip(order.legs, sent, strict=True):
        is_stock = isinstance(side, StockSide)
        assert leg.option_symbol == (None if is_stock else symbol) and leg.underlying == "SPY"
        assert (leg.side, leg.quantity, leg.status) == (side, quantity, OrderStatus.FILLED)
        assert (leg.fill.quantity, leg.fill.price) == (quantity, natural(symbol, side))
    held = {position.symbol: position.quantity for position in tradier.get_positions()}
    assert held == {symbol: quantity if side.is_buy else -quantity for symbol, side, quantity in legs}


def test_a_debit_below_the_natural_net_waits_then_fills_when_the_book_comes_to_it(tradier, fake_tradier, books):
    order = tradier.place_spread_order(spread([(C500, BTO, 1), (C510, STO, 1)], SpreadPriceType.DEBIT, "1.00"))
    assert order.status == OrderStatus.OPEN and all(leg.fill is None for leg in order.legs)

    fake_tradier.set_quote(C500, "1.95", "2.05")  # natural 2.05 − 1.00 = 1.05: still dearer than 1.00
    assert tradier.get_order(order.id).status == OrderStatus.OPEN
    fake_tradier.set_quote(C510, "1.05", "1.15")  # 2.05 − 1.05 = 1.00: there

    filled = tradier.get_order(order.id)
    assert filled.status == OrderStatus.FILLED
    assert [leg.fill.price for leg in filled.legs] == [Decimal("2.05"), Decimal("1.05")]
    assert [leg.status for leg in filled.legs] == [OrderStatus.FILLED, OrderStatus.FILLED]


def test_a_credit_fills_only_when_it_brings_at_least_its_price(tradier, fake_tradier, books):
    order = tradier.place_spread_order(spread([(P490, STO, 1), (P480, BTO, 1)], SpreadPriceType.CREDIT, "0.70"))
    assert order.status == OrderStatus.OPEN  # 1.20 − 0.60 = 0.60 received, less than 0.70

    fake_tradier.set_quote(P490, "1.30", "1.40")  # 1.30 − 0.60 = 0.70
    filled = tradier.get_order(order.id)
    assert filled.status == OrderStatus.FILLED
    assert [leg.fill.price for leg in filled.legs] == [Decimal("1.3"), Decimal("0.6")]


def test_an_even_order_fills_when_the_legs_cost_nothing(tradier, fake_tradier, books):
    risk_reversal = [(P490, STO, 1), (C510, BTO, 1)]  # 1.10 paid, 1.20 received
    fake_tradier.uncovered_writing = True  # a risk reversal writes a naked put
    order = tradier.place_spread_order(spread(risk_reversal, SpreadPriceType.EVEN))
    assert fake_tradier.requests_for("POST", "/orders")[0].form["type"] == "even"
    assert "price" not in fake_tradier.requests_for("POST", "/orders")[0].form
    assert order.status == OrderStatus.FILLED and order.limit_price is None

    fake_tradier.set_quote(C510, "1.30", "1.40")  # now it would cost 0.20
    second = tradier.place_spread_order(spread(risk_reversal, SpreadPriceType.EVEN, tag="to-10-entry"))
    assert second.status == OrderStatus.OPEN


def test_spreads_are_read_back_by_list_and_by_tag(tradier, fake_tradier, books):
    placed = tradier.place_spread_order(template("covered call"))
    (listed,) = tradier.get_orders()
    assert listed == tradier.get_order(placed.id) == tradier.find_order_by_tag(TAG)
    stock = listed.legs[0]
    assert (stock.option_symbol, stock.underlying, stock.side, stock.quantity) == (None, "SPY", StockSide.BUY, 100)
    assert stock.order_class == "equity" and listed.legs[1].order_class == "option"


# --- Cancel ---------------------------------------------------------------------------------------


def test_a_working_spread_is_cancelled_whole(tradier, fake_tradier, books):
    order = tradier.place_spread_order(spread([(C500, BTO, 1), (C510, STO, 1)], SpreadPriceType.DEBIT, "0.50"))

    cancelled = tradier.cancel_order(order.id)

    assert cancelled.status == OrderStatus.CANCELED
    assert [leg.status for leg in cancelled.legs] == [OrderStatus.CANCELED, OrderStatus.CANCELED]
    fake_tradier.set_quote(C500, "0.40", "0.45")  # would now cross: nothing fills after a cancel
    assert tradier.get_positions() == []


def test_cancelling_a_filled_spread_says_it_filled(tradier, fake_tradier, books):
    order = tradier.place_spread_order(template("iron condor"))
    assert tradier.cancel_order(order.id).status == OrderStatus.FILLED


def test_a_day_spread_still_working_at_the_close_expires_with_its_legs_and_a_gtc_one_carries_on(
    tradier, fake_tradier, books
):
    day = tradier.place_spread_order(spread([(C500, BTO, 1), (C510, STO, 1)], SpreadPriceType.DEBIT, "0.50"))
    gtc = tradier.place_spread_order(spread([(C500, BTO, 1), (C510, STO, 1)], SpreadPriceType.DEBIT, "0.50",
                                            tag="to-10-entry", duration=OrderDuration.GTC))
    fake_tradier.end_of_day()

    expired = tradier.get_order(day.id)
    assert expired.status == OrderStatus.EXPIRED and {leg.status for leg in expired.legs} == {OrderStatus.EXPIRED}
    assert tradier.get_order(gtc.id).status == OrderStatus.OPEN


# --- Refusals -------------------------------------------------------------------------------------


def test_five_legs_are_refused_before_anything_is_sent(tradier, fake_tradier, books):
    legs = [(C490, BTO, 1), (C500, STO, 1), (C510, STO, 1), (C520, BTO, 1), (P480, BTO, 1)]
    with pytest.raises(ValueError, match="two to four option legs"):
        tradier.place_spread_order(spread(legs, SpreadPriceType.DEBIT, "1.00"))
    assert fake_tradier.requests == []


@pytest.mark.parametrize("form, why", [
    ({"type": "debit"}, "price is required for debit"),
    ({"type": "limit", "price": "1.00"}, "type is invalid for class multileg"),
    ({"type": "market", **{f"{key}[{i}]": value for i in (2, 3, 4) for key, value in
                           (("option_symbol", C520), ("side", "buy_to_open"), ("quantity", "1"))}},
     "takes 2 to 4 legs"),
    ({"type": "market", "side[1]": "sell"}, "side[1]"),
    ({"type": "market", "option_symbol[1]": "QQQ300118C00400000"}, "is not an option on SPY"),
    ({"type": "market", "option_symbol[3]": C520, "side[3]": "buy_to_open", "quantity[3]": "1"}, "indexed from 0"),
    ({"type": "market", "class": "combo", "option_symbol[0]": C490}, "equity leg"),
    ({"type": "market", "class": "combo", "option_symbol[0]": "", "side[0]": "buy_to_open"}, "side[0]"),
])
def test_tradier_refuses_a_malformed_spread_with_a_400_and_places_nothing(form, why, fake_tradier, books):
    base = {"class": "multileg", "symbol": "SPY", "duration": "day",
            "option_symbol[0]": C500, "side[0]": "buy_to_open", "quantity[0]": "1",
            "option_symbol[1]": C510, "side[1]": "sell_to_open", "quantity[1]": "1"}
    response = requests.post(f"{fake_tradier.url()}/accounts/{ACCOUNT}/orders", data={**base, **form}, timeout=2,
                             headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "Accept": "application/json"})
    assert response.status_code == 400 and why in response.text
    assert fake_tradier.orders == {}


def test_a_downstream_refusal_answered_200_with_errors_is_a_rejection_and_no_order(tradier, fake_tradier, books):
    closing = spread([(C500, STC, 1), (C510, BTC, 1)], SpreadPriceType.CREDIT, "1.00")  # nothing is held
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_spread_order(closing)
    assert "exceeds the 0 held" in rejected.value.reason and rejected.value.tag == TAG
    assert fake_tradier.orders_tagged(TAG) == [] and len(fake_tradier.requests_for("POST", "/orders")) == 1

    raw = requests.post(f"{fake_tradier.url()}/accounts/{ACCOUNT}/orders", data=post_forms(fake_tradier)[0],
                        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}", "Accept": "application/json"},
                        timeout=2)
    assert raw.status_code == 200 and "errors" in raw.json()  # the quirk itself


def test_a_downstream_refusal_shown_later_on_the_order_is_a_rejection_too(tradier, fake_tradier, books):
    fake_tradier.spread_refusal = "rejected"
    books.cash = Decimal("100")
    with pytest.raises(OrderRejected) as rejected:
        tradier.place_spread_order(template("vertical debit"))  # 2 × 1.25 × 100 = $250 > $100
    assert rejected.value.reason == NOT_ENOUGH_BUYING_POWER and rejected.value.order_id
    (order,) = fake_tradier.orders_tagged(TAG)
    assert order.status == "rejected" and all(leg.status == "rejected" for leg in order.legs)
    assert tradier.find_order_by_tag(TAG) is None  # a rejected attempt: placing again is right


def test_working_debits_hold_buying_power_against_the_next_one(tradier, fake_tradier, books):
    books.cash = Decimal("300")
    tradier.place_spread_order(spread([(C500, BTO, 2), (C510, STO, 2)], SpreadPriceType.DEBIT, "1.00"))  # $200
    with pytest.raises(OrderRejected, match="buying power"):
        tradier.place_spread_order(spread([(C500, BTO, 2), (C510, STO, 2)], SpreadPriceType.DEBIT, "1.00",
                                          tag="to-10-entry"))


# --- The whole life: open, then one closing multileg order ------------------------------------


def test_an_iron_condor_is_closed_by_one_closing_multileg_order(tradier, fake_tradier, books):
    tradier.place_spread_order(template("iron condor"))
    closing = spread([(P480, STC, 1), (P490, BTC, 1), (C510, BTC, 1), (C520, STC, 1)], SpreadPriceType.DEBIT,
                     "1.20", tag="to-9-close")  # buys back at 1.30 + 1.10 − 0.50 − 0.40 = 1.50
    order = tradier.place_spread_order(closing)
    assert order.status == OrderStatus.OPEN

    for symbol, bid, ask in ((P490, "1.00", "1.05"), (C510, "0.80", "0.85")):  # 1.05 + 0.85 − 0.90 = 1.00
        fake_tradier.set_quote(symbol, bid, ask)

    assert tradier.get_order(order.id).status == OrderStatus.FILLED
    assert tradier.get_positions() == []
    # Opened for 1.10 received, closed for 1.00 paid: $10 made, all four legs counted.
    assert books.closed_pl == Decimal("10")


# --- Lost answers, rate limits ------------------------------------------------------------------


def test_a_spread_whose_answer_is_lost_after_tradier_took_it_is_found_by_its_tag_not_placed_twice(
    tradier, fake_tradier, books
):
    fake_tradier.inject("hang_after", method="POST", path="/orders", order_class="multileg")
    order = tradier.place_spread_order(template("butterfly 1x2x1"))
    assert len(fake_tradier.requests_for("POST", "/orders")) == 1
    assert [str(placed.id) for placed in fake_tradier.orders_tagged(TAG)] == [order.id]
    assert order.status == OrderStatus.FILLED and len(order.legs) == 3


def test_a_combo_lost_before_tradier_saw_it_is_sent_again_once_its_tag_is_known_absent(
    tradier, fake_tradier, books
):
    fake_tradier.inject("drop", method="POST", path="/orders", order_class="combo")
    order = tradier.place_spread_order(template("covered call"))
    assert len(fake_tradier.requests_for("POST", "/orders")) == 2
    assert [str(placed.id) for placed in fake_tradier.orders_tagged(TAG)] == [order.id]


def test_twice_lost_the_outcome_is_unknown_and_nothing_doubled(tradier, fake_tradier, books):
    fake_tradier.inject("drop", method="POST", path="/orders", times=2)
    with pytest.raises(OrderOutcomeUnknown) as unknown:
        tradier.place_spread_order(template("strangle"))
    assert unknown.value.tag == TAG and fake_tradier.orders_tagged(TAG) == []


def test_a_spread_placement_spends_one_trading_request_like_any_placement(tradier, fake_tradier, books,
                                                                           monkeypatch):
    spent = []
    acquire = tradier._limiter.acquire
    monkeypatch.setattr(tradier._limiter, "acquire", lambda group: spent.append(group) or acquire(group))

    tradier.place_spread_order(template("vertical credit"))

    posts, gets = fake_tradier.requests_for("POST", "/orders"), fake_tradier.requests_for("GET", "/orders")
    assert spent.count(TRADING) == len(posts) == 1
    assert spent.count(STANDARD) == len(gets) >= 1 and MARKET_DATA not in spent


# --- Partial fills: unconfirmed, so the fake does them three ways -------------------------------


def test_atomic_fills_wait_for_books_deep_enough_for_every_unit(tradier, fake_tradier, books):
    fake_tradier.set_quote(C510, "1.00", "1.10", size=3)
    order = tradier.place_spread_order(spread([(C500, BTO, 5), (C510, STO, 5)], SpreadPriceType.DEBIT, "1.25"))
    assert order.status == OrderStatus.OPEN and order.filled_quantity == 0 and order.fill is None
    assert order.remaining_quantity == 5 and all(leg.filled_quantity == 0 for leg in order.legs)


def test_a_spread_filled_in_whole_units_reports_them_and_its_remainder_cancels(tradier, fake_tradier, books):
    fake_tradier.spread_fills = "partial"
    fake_tradier.set_quote(C510, "1.00", "1.10", size=3)
    order = tradier.place_spread_order(spread([(C500, BTO, 5), (C510, STO, 5)], SpreadPriceType.DEBIT, "1.25"))

    assert order.status == OrderStatus.PARTIALLY_FILLED
    assert (order.quantity, order.filled_quantity, order.remaining_quantity) == (5, 3, 2)
    assert (order.fill.quantity, order.fill.price) == (3, Decimal("1.20"))
    assert [(leg.status, leg.filled_quantity, leg.fill.price) for leg in order.legs] == [
        (OrderStatus.PARTIALLY_FILLED, 3, Decimal("2.2")), (OrderStatus.PARTIALLY_FILLED, 3, Decimal("1.0"))]

    cancelled = tradier.cancel_order(order.id)
    assert cancelled.status == OrderStatus.CANCELED
    assert [leg.filled_quantity for leg in cancelled.legs] == [3, 3]  # what filled stays filled
    assert {p.symbol: p.quantity for p in tradier.get_positions()} == {C500: 3, C510: -3}


def test_a_spread_filled_leg_by_leg_is_reported_leg_by_leg(tradier, fake_tradier, books):
    fake_tradier.spread_fills = "legged"
    fake_tradier.set_quote(C510, "1.00", "1.10", size=3)
    order = tradier.place_spread_order(spread([(C500, BTO, 5), (C510, STO, 5)], SpreadPriceType.DEBIT, "1.25"))

    assert order.status == OrderStatus.PARTIALLY_FILLED and order.filled_quantity == 3  # whole units only
    assert order.fill.quantity == 3 and order.remaining_quantity == 2
    assert [(leg.status, leg.filled_quantity) for leg in order.legs] == [
        (OrderStatus.FILLED, 5), (OrderStatus.PARTIALLY_FILLED, 3)]
    assert {p.symbol: p.quantity for p in tradier.get_positions()} == {C500: 5, C510: -3}


# --- Live --------------------------------------------------------------------------------------


def test_the_live_broker_guards_spread_orders_like_every_placement(tradier, fake_tradier, books, caplog):
    live = LiveBroker(tradier, account_id=ACCOUNT)
    with pytest.raises(LiveOrderUntagged):
        live.place_spread_order(template("straddle"))
    assert fake_tradier.requests == []

    with caplog.at_level(logging.WARNING, logger="brokers.live"):
        order = live.place_spread_order(template("straddle", tag="live-to-9-entry"))
    assert order.status == OrderStatus.FILLED
    lines = [record.getMessage() for record in caplog.records if record.name == "brokers.live"]
    assert any(line.startswith("LIVE place_spread_order: multileg market SPY") and C500 in line for line in lines)
    assert all(ACCOUNT not in line and SANDBOX_TOKEN not in line for line in lines)


# --- Legs the first cut got wrong: a wing bid 0.00 (UNCONFIRMED at Tradier: both ways), a leg
# filled at 0.00, naked short legs (refused as a single sell to open is) -----------------------


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
    [(C500_FEB, STO, 1), (C500, BTO, 1)],  # the long expires first
], ids=["strangle", "ratio", "reverse calendar"])
@pytest.mark.parametrize("refusal", ["errors_200", "rejected"])
def test_a_spread_with_an_uncovered_short_leg_is_rejected(legs, refusal, tradier, fake_tradier, books):
    fake_tradier.spread_refusal = refusal
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
