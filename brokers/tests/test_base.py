"""The contract's small objects refuse what no broker would accept, before any request is sent."""

from decimal import Decimal

import pytest

from brokers.base import (
    OrderPurpose,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    SpreadLeg,
    SpreadOrderRequest,
    SpreadPriceType,
    StockSide,
    order_tag,
    parse_order_tag,
)

CALL = "SPY260116C00570000"


def request(**overrides):
    values = dict(
        option_symbol=CALL, side=OrderSide.BUY_TO_OPEN, quantity=1, order_type=OrderType.LIMIT,
        limit_price=Decimal("2.50"), tag="to-1-entry",
    )
    return OrderRequest(**{**values, **overrides})


def test_tags_name_the_trade_and_the_purpose_and_read_back():
    assert order_tag(42, OrderPurpose.STOP_LOSS) == "to-42-sl"
    assert order_tag("9f1c-77", "close") == "to-9f1c-77-close"
    assert parse_order_tag("to-42-sl") == ("42", OrderPurpose.STOP_LOSS)
    assert parse_order_tag("to-9f1c-77-close") == ("9f1c-77", OrderPurpose.CLOSE)
    assert parse_order_tag("someone-elses-tag") is None
    assert parse_order_tag(None) is None


@pytest.mark.parametrize("trade_id", ["a b", "7_1", "x/y", "é", "1" * 260])
def test_a_tag_tradier_would_refuse_is_refused_here(trade_id):
    with pytest.raises(ValueError):
        order_tag(trade_id, OrderPurpose.ENTRY)


def test_an_unknown_purpose_is_refused():
    with pytest.raises(ValueError):
        order_tag(1, "hedge")


def test_underlying_defaults_to_the_occ_root_but_can_be_given():
    assert request().underlying == "SPY"
    assert request(option_symbol="SPXW250725C05900000", underlying="SPX").underlying == "SPX"


def test_prices_must_be_decimals_never_floats():
    with pytest.raises(TypeError):
        request(limit_price=2.5)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(order_type=OrderType.LIMIT, limit_price=None),
        dict(order_type=OrderType.STOP, limit_price=None),
        dict(order_type=OrderType.STOP, limit_price=Decimal("1"), stop_price=Decimal("1")),
        dict(order_type=OrderType.MARKET, limit_price=Decimal("1")),
        dict(order_type=OrderType.STOP_LIMIT, stop_price=None),
        dict(quantity=0),
        dict(quantity=1.0),
        dict(quantity=True),
        dict(limit_price=Decimal("-1")),
        dict(tag="has space"),
        dict(option_symbol="SPY"),
    ],
)
def test_an_order_no_broker_would_accept_cannot_be_built(overrides):
    with pytest.raises((ValueError, TypeError)):
        request(**overrides)


def test_plain_strings_become_enums_so_requests_compare_equal():
    assert request(side="buy_to_open", order_type="limit") == request()


def test_final_and_working_statuses_split_the_enum():
    final = {status for status in OrderStatus if status.is_final}
    assert final == {"filled", "expired", "canceled", "rejected", "error"}
    assert {status for status in OrderStatus if status.is_working} == {"pending", "open", "partially_filled"}


def test_each_part_sale_has_its_own_tag_that_reads_back_as_a_part():
    assert parse_order_tag("to-42-part3") == ("42", OrderPurpose.PART)
    assert parse_order_tag("live-to-42-part12") == ("42", OrderPurpose.PART)
    assert parse_order_tag("to-9f1c-77-part1") == ("9f1c-77", OrderPurpose.PART)
    assert parse_order_tag("to-42-part") == ("42", OrderPurpose.PART)  # a sale placed before the numbers
    assert parse_order_tag("to-42-sl3") is None and parse_order_tag("to-42-partx") is None


def test_a_live_trades_tags_say_live_first_and_read_back_the_same():
    from brokers.base import is_live_tag, is_valid_tag

    tag = order_tag(42, OrderPurpose.STOP_LOSS, live=True)
    assert tag == "live-to-42-sl" and is_valid_tag(tag)  # letters, digits and '-': Tradier takes it
    assert parse_order_tag(tag) == ("42", OrderPurpose.STOP_LOSS)
    assert is_live_tag(tag) and not is_live_tag("to-42-sl") and not is_live_tag("live-somebody-else")


# --- Spread orders (issue 19) ---------------------------------------------------------------------

CALL_500, CALL_505 = "SPY261218C00500000", "SPY261218C00505000"


def _vertical(**overrides):
    legs = (SpreadLeg(CALL_500, "buy_to_open", 1), SpreadLeg(CALL_505, "sell_to_open", 1))
    fields = dict(underlying="SPY", legs=legs, price_type="debit", tag="to-7-entry", price=Decimal("2.10"))
    return SpreadOrderRequest(**(fields | overrides))


def test_a_debit_vertical_is_a_multileg_order():
    request = _vertical()
    assert request.order_class == "multileg"
    assert request.price_type is SpreadPriceType.DEBIT
    assert [leg.side for leg in request.legs] == [OrderSide.BUY_TO_OPEN, OrderSide.SELL_TO_OPEN]


def test_a_covered_call_is_a_combo_order_with_a_stock_side():
    request = _vertical(legs=(SpreadLeg("SPY", "buy", 100), SpreadLeg(CALL_505, "sell_to_open", 1)),
                        price_type="credit", price=Decimal("480"))
    assert request.order_class == "combo"
    assert request.legs[0].side is StockSide.BUY and request.legs[0].is_stock


@pytest.mark.parametrize(("overrides", "says"), [
    ({"legs": (SpreadLeg(CALL_500, "buy_to_open", 1),)}, "two to four option legs"),
    ({"legs": (SpreadLeg(CALL_500, "buy_to_open", 1), SpreadLeg(CALL_500, "sell_to_open", 1))}, "different contract"),
    ({"legs": (SpreadLeg(CALL_500, "buy_to_open", 1), SpreadLeg("QQQ261218C00500000", "sell_to_open", 1))},
     "not an option on SPY"),
    ({"price": None}, "needs a positive net price"),
    ({"price_type": "market"}, "takes no price"),
    ({"price": 2.1}, "Decimal"),
])
def test_a_malformed_spread_order_is_refused_before_it_reaches_a_broker(overrides, says):
    with pytest.raises((ValueError, TypeError), match=says):
        _vertical(**overrides)


def test_a_leg_quantity_must_be_a_positive_whole_number():
    with pytest.raises(ValueError, match="positive whole number"):
        SpreadLeg(CALL_500, "buy_to_open", 0)
