"""The local paper broker fills like a real market would, never kinder."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from brokers.base import (
    BrokerError,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    SpreadLeg,
    SpreadOrderRequest,
    order_tag,
)
from brokers.models import PaperFill, PaperOrder
from brokers.paper import (
    FillRules,
    LocalPaperBroker,
    expired_positions,
    orders_of,
    owners_with_working_orders,
    settle_expired_positions,
)
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy

CONTRACT = "SPY261218C00570000"  # expires 2026-12-18
EXPIRED = "SPY261127C00570000"  # expires 2026-11-27, before the market's 2026-12-01
RULES = FillRules(commission_per_contract=Decimal("0.65"), slippage_per_share=Decimal("0"))


@pytest.fixture
def market():
    market = HandDrivenMarket()
    market.set_quote(CONTRACT, "4.10", "4.30")
    return market


@pytest.fixture
def broker(trader, market):
    with tenancy.acting_as(trader.pk):
        yield LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)


def buy(quantity=2, order_type="market", trade=1, **prices):
    return OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=quantity, order_type=order_type,
                        tag=order_tag(trade, "entry"), **prices)


def exits(sl="3.00", tp="6.50", quantity=2, trade=1):
    return (
        OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=quantity, order_type="stop",
                     stop_price=Decimal(sl), tag=order_tag(trade, "sl"), duration="gtc"),
        OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=quantity, order_type="limit",
                     limit_price=Decimal(tp), tag=order_tag(trade, "tp"), duration="gtc"),
    )


def test_a_market_buy_fills_at_the_ask_never_the_mid(broker):
    order = broker.place_order(buy())
    assert order.status == OrderStatus.FILLED
    assert order.fill.price == Decimal("4.30") and order.fill.quantity == 2
    fill = PaperFill.objects.get()
    assert (fill.bid, fill.ask, fill.mid, fill.commission) == (Decimal("4.1"), Decimal("4.3"), Decimal("4.2"),
                                                               Decimal("1.30"))


def test_a_market_sell_fills_at_the_bid(broker, market):
    broker.place_order(buy())
    market.set_quote(CONTRACT, "5.00", "5.20")
    sell = OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=2, order_type="market",
                        tag=order_tag(1, "close"))
    assert broker.place_order(sell).fill.price == Decimal("5.00")


def test_slippage_moves_the_fill_against_the_trader(trader, market):
    with tenancy.acting_as(trader.pk):
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market,
                                  rules=FillRules(Decimal("0.65"), Decimal("0.02")))
        assert broker.place_order(buy()).fill.price == Decimal("4.32")


def test_a_take_profit_rests_until_the_bid_reaches_it_then_fills_at_its_limit(broker, market):
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits())
    assert bracket.status == OrderStatus.OPEN
    market.set_quote(CONTRACT, "6.45", "6.60")  # the ask is above the limit, the bid is not
    assert broker.match() == 0
    market.set_quote(CONTRACT, "6.70", "6.90")
    assert broker.match() == 1
    done = broker.get_order(bracket.id)
    tp = next(leg for leg in done.legs if leg.order_type == "limit")
    sl = next(leg for leg in done.legs if leg.order_type == "stop")
    assert tp.status == OrderStatus.FILLED and tp.fill.price == Decimal("6.50")
    assert sl.status == OrderStatus.CANCELED  # one cancels the other, in the same transaction
    assert done.status == OrderStatus.FILLED


def test_a_stop_loss_gapped_through_fills_at_the_bid_worse_than_the_stop(broker, market):
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits(sl="3.00"))
    market.set_quote(CONTRACT, "3.05", "3.20")
    assert broker.match() == 0
    market.set_quote(CONTRACT, "2.40", "2.60")  # overnight gap through the stop
    assert broker.match() == 1
    sl = broker.get_order(bracket.id).leg("stop")
    assert sl.status == OrderStatus.FILLED and sl.fill.price == Decimal("2.40")
    assert broker.get_order(bracket.id).leg("limit").status == OrderStatus.CANCELED


def test_a_stop_limit_triggers_then_waits_for_its_limit(broker, market):
    broker.place_order(buy())
    stop_limit = OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=2, order_type="stop_limit",
                              stop_price=Decimal("3.00"), limit_price=Decimal("2.90"), tag=order_tag(1, "sl"))
    order = broker.place_order(stop_limit)
    market.set_quote(CONTRACT, "2.80", "2.95")  # stop touched, but the bid is under the limit
    assert broker.match() == 0
    assert PaperOrder.objects.get(pk=order.id).triggered is True
    market.set_quote(CONTRACT, "2.92", "3.05")
    assert broker.match() == 1
    assert broker.get_order(order.id).fill.price == Decimal("2.92")


def test_an_otoco_arms_its_exits_only_once_the_entry_fills(broker, market):
    market.open = False
    entry = buy(order_type="limit", limit_price=Decimal("4.20"))
    order = broker.place_otoco_order(entry, *exits())
    market.set_quote(CONTRACT, "2.00", "2.10")  # would trigger the stop, but the exits are not armed
    assert broker.match() == 0
    market.open = True
    assert broker.match() == 1  # the entry fills, at the opening ask (a gap below its limit)
    state = broker.get_order(order.id)
    assert [leg.status for leg in state.legs] == [OrderStatus.FILLED, OrderStatus.OPEN, OrderStatus.OPEN]
    assert state.legs[0].fill.price == Decimal("2.10")
    assert broker.match() == 1  # now the armed stop fires at the bid
    state = broker.get_order(order.id)
    assert [leg.status for leg in state.legs] == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELED]


def test_nothing_fills_while_the_market_is_closed(broker, market):
    market.open = False
    order = broker.place_order(buy())
    assert order.status == OrderStatus.OPEN and order.fill is None
    market.open = True
    assert broker.match() == 1


def test_an_expired_contract_cannot_be_traded(broker, market):
    market.set_quote(EXPIRED, "0.05", "0.10")
    request = OrderRequest(option_symbol=EXPIRED, side="buy_to_open", quantity=1, order_type="market",
                           tag=order_tag(7, "entry"))
    with pytest.raises(OrderRejected, match="expired") as rejected:
        broker.place_order(request)
    assert PaperOrder.objects.get(pk=rejected.value.order_id).status == "rejected"


def test_a_day_order_expires_at_the_close_and_a_gtc_one_at_the_contracts_expiry(broker, market):
    market.open = False
    day = broker.place_order(buy(order_type="limit", limit_price=Decimal("1.00"), trade=1))
    gtc = broker.place_order(OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1,
                                          order_type="limit", limit_price=Decimal("1.00"), duration="gtc",
                                          tag=order_tag(2, "entry")))
    market.advance(hours=7)  # past 21:00 UTC, the close
    broker.match()
    assert broker.get_order(day.id).status == OrderStatus.EXPIRED
    assert broker.get_order(gtc.id).status == OrderStatus.OPEN
    market.advance(days=17)  # past 2026-12-18's close
    broker.match()
    assert broker.get_order(gtc.id).status == OrderStatus.EXPIRED


def test_an_order_beyond_the_buying_power_is_rejected_with_the_numbers(broker):
    with pytest.raises(OrderRejected, match=r"Insufficient buying power: the order needs \$5167\.80"):
        broker.place_order(buy(quantity=12))


def test_selling_more_than_is_held_is_rejected(broker):
    broker.place_order(buy(quantity=1))
    with pytest.raises(OrderRejected, match="1 held"):
        broker.place_oco_order(*exits(quantity=2))


def test_a_cancel_after_the_fill_reports_the_fill_and_a_leg_cancel_takes_the_group(broker, market):
    filled = broker.place_order(buy())
    assert broker.cancel_order(filled.id).status == OrderStatus.FILLED
    bracket = broker.place_oco_order(*exits())
    leg = broker.get_order(bracket.id).legs[0]
    broker.cancel_order(leg.id)
    assert [leg.status for leg in broker.get_order(bracket.id).legs] == [OrderStatus.CANCELED] * 2


def test_orders_survive_a_restart_and_are_found_by_tag(broker, trader, market):
    broker.place_order(buy())
    bracket = broker.place_oco_order(*exits())
    again = LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)
    assert again.find_order_by_tag(order_tag(1, "sl")).id == bracket.id
    assert again.find_order_by_tag(order_tag(99, "sl")) is None
    assert {order.id for order in again.get_orders()} == {bracket.id, broker.find_order_by_tag("to-1-entry").id}


def test_another_account_cannot_see_or_cancel_these_orders(broker, other_trader, market):
    order = broker.place_order(buy())
    with tenancy.acting_as(other_trader.pk):
        stranger = LocalPaperBroker(other_trader.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)
        assert stranger.get_orders() == [] and stranger.find_order_by_tag("to-1-entry") is None
        with pytest.raises(BrokerError, match="not found"):
            stranger.cancel_order(order.id)


def test_positions_and_balance_follow_the_fills(broker, market):
    broker.place_order(buy(quantity=2))  # 2 × 4.30 × 100 = 860 + 1.30 commission
    [position] = broker.get_positions()
    assert (position.symbol, position.quantity, position.cost_basis) == (CONTRACT, 2, Decimal("860.00"))
    market.set_quote(CONTRACT, "5.00", "5.20")
    balance = broker.get_account_balance()
    assert balance.total_cash == Decimal("4138.70")
    assert balance.market_value == Decimal("1020.00")  # marked at the mid, 5.10
    assert balance.open_pl == Decimal("160.00")
    sell = OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=2, order_type="market",
                        tag=order_tag(1, "close"))
    broker.place_order(sell)  # 2 × 5.00 × 100 = 1000 − 1.30
    assert broker.get_positions() == []
    balance = broker.get_account_balance()
    assert balance.total_cash == Decimal("5137.40") and balance.close_pl == Decimal("137.40")


def test_a_limit_buy_reserves_its_cash_once(broker):
    order = broker.place_order(buy(quantity=10, order_type="limit", limit_price=Decimal("4.00")))
    assert order.status == OrderStatus.OPEN  # rests under the ask; $4,006.50 of $5,000 fits, counted once
    with pytest.raises(OrderRejected, match=r"needs \$1201\.95, \$993\.50 is available"):
        broker.place_order(buy(quantity=3, order_type="limit", limit_price=Decimal("4.00"), trade=2))


def test_market_buys_placed_while_closed_reserve_cash_at_the_ask(broker, market):
    market.open = False
    market.set_quote(CONTRACT, "19.80", "20.00")
    placed = [broker.place_order(buy(quantity=1, trade=n)) for n in (1, 2)]
    with pytest.raises(OrderRejected, match="Insufficient buying power"):
        broker.place_order(buy(quantity=1, trade=3))
    assert [order.status for order in placed] == [OrderStatus.OPEN, OrderStatus.OPEN]
    market.open = True
    market.set_quote(CONTRACT, "29.80", "30.00")  # gapped up: the second no longer fits the cash
    broker.match()
    statuses = sorted(broker.get_order(order.id).status for order in placed)
    assert statuses == [OrderStatus.CANCELED, OrderStatus.FILLED]
    assert broker.get_account_balance().total_cash >= 0


def test_contracts_are_sold_once_however_many_exits_cover_them(broker, market):
    broker.place_order(buy(quantity=1))
    bracket = broker.place_oco_order(*exits(quantity=1, tp="5.00"))
    manual = OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=1, order_type="limit",
                          limit_price=Decimal("5.00"), tag=order_tag(1, "close"))
    close = broker.place_order(manual)  # the seed's manual close: sell first, then cancel the bracket
    market.set_quote(CONTRACT, "5.10", "5.30")  # both the TP and the manual sale could fill now
    broker.match()
    filled = [order for order in (broker.get_order(bracket.id).leg("limit"), broker.get_order(close.id))
              if order.status == OrderStatus.FILLED]
    assert len(filled) == 1
    assert broker.get_positions() == []
    assert broker.get_account_balance().total_cash == Decimal("5000") - Decimal("430") - Decimal("0.65") + \
        Decimal("500") - Decimal("0.65")


def test_a_resting_limit_fills_at_its_limit_once_it_has_rested(broker, market):
    order = broker.place_order(buy(quantity=1, order_type="limit", limit_price=Decimal("4.00")))
    market.set_quote(CONTRACT, "3.70", "3.90")  # later in the same session: through the limit
    broker.match()
    assert broker.get_order(order.id).fill.price == Decimal("4.00")


def test_an_otoco_whose_entry_expires_unfilled_takes_its_exits_with_it(broker, market):
    entry = buy(order_type="limit", limit_price=Decimal("1.00"))  # a day entry far under the market
    order = broker.place_otoco_order(entry, *exits())
    market.advance(hours=7)  # past the close: the entry expires
    broker.match()
    state = broker.get_order(order.id)
    assert state.status == OrderStatus.EXPIRED
    assert [leg.status for leg in state.legs] == [OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.CANCELED]
    assert "entry expired" in state.legs[1].reason
    assert not PaperOrder.objects.filter(status__in=["open", "pending", "partially_filled"]).exists()
    assert broker.get_account_balance().option_buying_power == Decimal("5000")


def test_cancelling_an_otocos_entry_cancels_its_waiting_exits_too(broker, market):
    entry = buy(order_type="limit", limit_price=Decimal("1.00"))
    order = broker.place_otoco_order(entry, *exits())
    broker.cancel_order(broker.get_order(order.id).legs[0].id)
    state = broker.get_order(order.id)
    assert state.status == OrderStatus.CANCELED
    assert [leg.status for leg in state.legs] == [OrderStatus.CANCELED] * 3


def test_the_monitor_reads_many_accounts_orders_at_once_as_each_account_lists_them(broker, trader, other_trader,
                                                                                    market):
    filled = broker.place_order(buy(trade=1))
    bracket = broker.place_oco_order(*exits(trade=1))
    done = broker.place_order(buy(quantity=1, trade=2))  # filled, named by neither id nor tag below
    with tenancy.acting_as(other_trader.pk):
        theirs = LocalPaperBroker(other_trader.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)
        market.open = False
        waiting = theirs.place_order(buy(quantity=1, trade=3))
    with tenancy.system_context():
        assert sorted(owners_with_working_orders()) == sorted([trader.pk, other_trader.pk])
        orders = orders_of([trader.pk, other_trader.pk], ids=[int(filled.id)], tags=["to-9-entry"])
    assert orders[trader.pk] == [broker.get_order(filled.id), broker.get_order(bracket.id)]
    assert done.id not in {order.id for order in orders[trader.pk]}
    assert [order.id for order in orders[other_trader.pk]] == [waiting.id]


def test_the_monitors_read_of_a_varied_book_is_exactly_what_get_orders_shows(broker, trader, other_trader, market):
    """`orders_of` builds its `Order`s from one JSON read, not from model instances: every kind of
    order the broker keeps (a fill, a bracket working and one cancelled, an OTOCO waiting, a rejected
    and a cancelled buy, spreads filled and resting, another account's) must come out equal to
    `get_orders`, down to the types of its Decimals and the time zone of its times (their repr)."""
    long_call = "SPY261218C00575000"
    market.set_quote(long_call, "2.50", "2.60")
    broker.place_order(buy(quantity=3))
    broker.place_oco_order(*exits(quantity=1))
    cancelled = broker.place_oco_order(*exits(sl="2.50", tp="7.00", quantity=1, trade=2))
    broker.cancel_order(broker.get_order(cancelled.id).legs[1].id)
    broker.place_otoco_order(buy(quantity=1, order_type="limit", limit_price=Decimal("1.05"), trade=3),
                             *exits(quantity=1, trade=3))
    resting = broker.place_order(buy(quantity=1, order_type="limit", limit_price=Decimal("1.10"), trade=4))
    broker.cancel_order(resting.id)
    with pytest.raises(OrderRejected):
        broker.place_order(buy(quantity=40, trade=5))
    spread = [SpreadLeg(CONTRACT, "buy_to_open", 1), SpreadLeg(long_call, "sell_to_open", 1)]
    broker.place_spread_order(SpreadOrderRequest(underlying="SPY", legs=tuple(spread), price_type="market",
                                                 tag=order_tag(6, "entry")))
    broker.place_spread_order(SpreadOrderRequest(underlying="SPY", legs=tuple(spread), price_type="debit",
                                                 price=Decimal("0.05"), tag=order_tag(7, "entry")))
    market.advance(minutes=5)
    broker.place_order(OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=1,
                                    order_type="limit", limit_price=Decimal("4.05"), tag=order_tag(8, "close")))
    with tenancy.acting_as(other_trader.pk):
        theirs = LocalPaperBroker(other_trader.pk, starting_cash=Decimal("5000"), market=market, rules=RULES)
        theirs.place_order(buy(quantity=1, trade=9))
        their_book = theirs.get_orders()
    book = broker.get_orders()
    assert len(book) >= 9 and {order.status for order in book} >= {
        OrderStatus.FILLED, OrderStatus.OPEN, OrderStatus.CANCELED, OrderStatus.REJECTED}
    with tenancy.system_context():
        everything = orders_of([trader.pk, other_trader.pk],
                               ids=[int(order.id) for order in book + their_book], tags=[])
        by_tag = orders_of([trader.pk], tags=[order_tag(2, "sl"), order_tag(6, "entry")])
    assert everything[trader.pk] == book and repr(everything[trader.pk]) == repr(book)
    assert everything[other_trader.pk] == their_book and repr(everything[other_trader.pk]) == repr(their_book)
    shown = {order.id: order for order in book}
    working = [order for order in book if order.status.is_working]
    assert by_tag[trader.pk] == sorted(working + [shown[cancelled.id], *(
        order for order in book if order.tag == order_tag(6, "entry"))], key=lambda order: int(order.id))
    assert by_tag[trader.pk] and all(repr(order) == repr(shown[order.id]) for order in by_tag[trader.pk])
    with tenancy.system_context(), pytest.raises(ValueError):  # never a tag of ours: refused, not split
        orders_of([trader.pk], tags=["to-1-sl,to-2-sl"])


def _past_expiry(market, close=None):
    """To 2026-12-18's close and a minute past it, with SPY's close there if given."""
    if close is not None:
        market.set_close("SPY", date(2026, 12, 18), close)
    market.moment = market.expiry_cutoff(date(2026, 12, 18)) + timedelta(minutes=1)
    market.open = False


def test_a_contract_held_into_expiry_in_the_money_is_settled_at_intrinsic_value(broker, market):
    broker.place_order(buy(quantity=2))  # 2 × 4.30 × 100 = 860 + 1.30 commission
    broker.place_oco_order(*exits())
    _past_expiry(market, close="575.20")  # the 570 call is worth 5.20 a share
    assert broker.match() == 1
    assert broker.get_positions() == []
    balance = broker.get_account_balance()
    assert balance.total_cash == Decimal("5000") - Decimal("861.30") + Decimal("1040.00")
    assert balance.close_pl == Decimal("1040.00") - Decimal("861.30")
    assert balance.pending_orders_count == 0  # the bracket expired before the settlement
    fill = PaperFill.objects.order_by("id").last()
    assert (fill.side, fill.quantity, fill.price, fill.commission) == ("sell_to_close", 2, Decimal("5.20"), 0)
    assert fill.filled_at == market.expiry_cutoff(date(2026, 12, 18)) and fill.mid is None
    assert fill.settlement and not PaperFill.objects.order_by("id").first().settlement  # apart from real fills
    settlement = broker.get_order(str(fill.order_id))
    assert settlement.status == OrderStatus.FILLED and settlement.fill.price == Decimal("5.20")
    assert "in the money" in settlement.reason and "575.20" in settlement.reason
    assert broker.match() == 0  # settled once
    with pytest.raises(OrderRejected, match="expired"):
        broker.place_order(OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=2,
                                        order_type="market", tag=order_tag(1, "close")))


def test_a_contract_expiring_out_of_the_money_goes_without_cash(broker, market):
    broker.place_order(buy(quantity=2))
    _past_expiry(market, close="561.00")
    assert broker.match() == 1
    assert broker.get_positions() == []
    balance = broker.get_account_balance()
    assert balance.total_cash == Decimal("5000") - Decimal("861.30")
    assert balance.close_pl == Decimal("-861.30")
    assert "worthless" in broker.get_order(str(PaperFill.objects.order_by("id").last().order_id)).reason


def test_a_position_waits_for_the_underlyings_close_and_nothing_settles_before_the_cutoff(broker, market):
    broker.place_order(buy(quantity=1))
    market.moment = market.expiry_cutoff(date(2026, 12, 18)) - timedelta(minutes=1)
    market.set_close("SPY", date(2026, 12, 18), "575.20")
    assert broker.match() == 0 and len(broker.get_positions()) == 1  # not before the cutoff
    market.closes.clear()
    _past_expiry(market)
    assert broker.match() == 0 and len(broker.get_positions()) == 1  # no close yet: it waits
    market.set_close("SPY", date(2026, 12, 18), "575.20")
    assert broker.match() == 1 and broker.get_positions() == []


def test_the_monitor_settles_every_account_at_once(broker, trader, other_trader, market):
    broker.place_order(buy(quantity=1))
    with tenancy.acting_as(other_trader.pk):
        LocalPaperBroker(other_trader.pk, starting_cash=Decimal("5000"), market=market,
                         rules=RULES).place_order(buy(quantity=1))
    _past_expiry(market, close="575.20")
    with tenancy.system_context():
        assert settle_expired_positions(market=market, rules=RULES) == 2
        assert settle_expired_positions(market=market, rules=RULES) == 0
        assert PaperFill.objects.filter(price=Decimal("5.20")).count() == 2


def _paperfill_rows_read(plan: dict) -> int:
    """Rows the plan read from brokers_paperfill: kept plus removed by a filter, every loop."""
    read = 0
    if plan.get("Relation Name") == "brokers_paperfill":
        removed = plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Index Recheck", 0)
        read += (plan["Actual Rows"] + removed) * plan["Actual Loops"]
    return read + sum(_paperfill_rows_read(child) for child in plan.get("Plans", []))


def test_the_expiry_settlement_reads_only_fills_of_positions_still_open(broker, market):
    """It runs every order cycle over every account: closed positions, however many, are not read."""
    for trade in range(1, 6):  # five round trips, long closed by the expiry
        broker.place_order(buy(quantity=1, trade=trade))
        broker.place_order(OrderRequest(option_symbol=CONTRACT, side="sell_to_close", quantity=1,
                                        order_type="market", tag=order_tag(trade, "close")))
    broker.place_order(buy(quantity=2, trade=6))  # reopened: still held into the expiry
    assert PaperFill.objects.filter(position_closed=False).count() == 1
    _past_expiry(market, close="575.20")
    now = market.now()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a table this small would be scanned whole anyway
    try:
        plan = json.loads(expired_positions(now=now).explain(analyze=True, format="json"))[0]["Plan"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
    assert PaperFill.objects.count() == 11 and _paperfill_rows_read(plan) == 1
    assert list(expired_positions(now=now)) == [{"owner_id": broker.owner_id, "option_symbol": CONTRACT, "net": 2}]
    assert list(expired_positions(now=market.expiry_cutoff(date(2026, 12, 17)))) == []  # not yet expiring
    assert broker.match() == 1
    assert PaperFill.objects.order_by("id").last().quantity == 2
    assert not PaperFill.objects.filter(position_closed=False).exists()
    assert list(expired_positions(now=now)) == []


def test_an_index_weekly_settles_against_the_index_its_orders_named(broker, market):
    weekly = "SPXW261218P05900000"
    market.set_quote(weekly, "12.00", "12.40")
    broker.place_order(OrderRequest(option_symbol=weekly, side="buy_to_open", quantity=1, order_type="market",
                                    tag=order_tag(5, "entry"), underlying="SPX"))
    market.set_close("SPX", date(2026, 12, 18), "5875.50")
    _past_expiry(market)
    assert broker.match() == 1
    assert PaperFill.objects.order_by("id").last().price == Decimal("24.50")


def test_a_close_the_market_cannot_give_leaves_that_position_for_later_and_settles_the_rest(broker, market):
    other = "QQQ261218C00500000"
    market.set_quote(other, "1.00", "1.10")
    broker.place_order(buy(quantity=1))
    broker.place_order(OrderRequest(option_symbol=other, side="buy_to_open", quantity=1, order_type="market",
                                    tag=order_tag(2, "entry")))
    _past_expiry(market, close="575.20")
    known = market.underlying_close

    def flaky(underlying, expiry):
        if underlying == "QQQ":
            raise ConnectionError("market data is down")
        return known(underlying, expiry)

    market.underlying_close = flaky
    assert broker.match() == 1
    assert [position.symbol for position in broker.get_positions()] == [other]
