"""A spread's closing multileg order at Tradier, over real HTTP to the fake Tradier, under each of
its UNCONFIRMED switches (tests/fakes/tradier.py): fills atomic, in whole units or legged; the
parent reporting its net or nothing; a refusal at the POST (`errors_200`) or on a later look
(`rejected`); a worthless wing sold into a 0.00 bid or held back. Whatever Tradier does, the trade
ends CLOSED at its legs' fills with the P&L summed by leg, or OPEN with the reason told, and one
closing order at most is ever placed."""

from decimal import Decimal

import pytest

from monitoring.sync import sync_orders
from tests.factories import exits_mark, exits_spread_trade
from tradeoptions import tenancy
from trades import services
from trades.models import LegSide, PaperTrade, TradeLeg
from trades.net_price import held_price

from .conftest import trade_at_fake_tradier

TOKEN = "sbxTOKEN-spreadexit-7e6d5c4b3a"
ACCOUNT = "VA00001919"
LONG, SHORT = LegSide.LONG, LegSide.SHORT
C575, C580 = "SPY261218C00575000", "SPY261218C00580000"
P560, P555, P550 = "SPY261218P00560000", "SPY261218P00555000", "SPY261218P00550000"

# (strategy type, legs (symbol, side, entry fill), held stop, held target, quotes past the target)
TEMPLATES = {
    "credit vertical": ("vertical", [(P560, SHORT, "3.00"), (P555, LONG, "2.10")], "1.20", "0.60",
                        {P560: ("1.50", "1.60"), P555: ("1.00", "1.10")}),
    "iron condor": ("iron_condor", [(P555, SHORT, "2.00"), (P550, LONG, "1.30"), (C575, SHORT, "2.50"),
                                    (C580, LONG, "1.50")], "2.50", "0.95",
                    {P555: ("1.00", "1.10"), P550: ("0.60", "0.70"), C575: ("1.20", "1.30"),
                     C580: ("0.70", "0.80")}),
}
UNITS = 2


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    """The trader at the fake Tradier, at a rate budget of the test's own (the root conftest): the
    limiter is not what these tests are about, and the sandbox's 48 a minute made each wait ~5 s."""
    return trade_at_fake_tradier(fake_tradier, trader, token=TOKEN, account=ACCOUNT)


def held_at_tradier(tradier, trader, template: str) -> PaperTrade:
    """The spread held at the fake Tradier (its positions, long and short) and its trade row."""
    strategy_type, legs, sl, tp, _ = TEMPLATES[template]
    trade = exits_spread_trade(trader, legs=[(symbol, side, 1, price) for symbol, side, price in legs],
                               strategy_type=strategy_type, units=UNITS, sl_price=sl, tp_price=tp,
                               broker_mode="TRADIER_SANDBOX", commission_per_contract=Decimal("0.65"))
    for symbol, side, price in legs:
        signed = UNITS if side == LONG else -UNITS
        tradier.add_position(ACCOUNT, symbol, signed, Decimal(price) * 100 * signed)
    return trade


def past_target(tradier, trade, template: str, *, size: int | None = None, sizes: dict | None = None) -> dict:
    quotes = TEMPLATES[template][4]
    for symbol, (bid, ask) in quotes.items():
        tradier.set_quote(symbol, bid, ask, size=(sizes or {}).get(symbol, size))
    exits_mark(trade, quotes)
    return quotes


def reload(trade) -> PaperTrade:
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk)


def legs_of(trade) -> list[TradeLeg]:
    with tenancy.acting_as(trade.owner_id):
        return list(TradeLeg.objects.filter(trade=trade).order_by("position"))


def by_hand(trade, quotes) -> tuple[Decimal, Decimal]:
    """(held close price, P&L) with every long sold at its bid and every short bought at its ask."""
    exits = [Decimal(quotes[leg.option_symbol][0 if leg.side == LONG else 1]) for leg in legs_of(trade)]
    net = sum((leg.sign * leg.ratio * price for leg, price in zip(legs_of(trade), exits, strict=True)), Decimal(0))
    pnl = sum((leg.sign * leg.ratio * (price - leg.entry_price) * UNITS * 100
               for leg, price in zip(legs_of(trade), exits, strict=True)), Decimal(0))
    return held_price(trade.net_direction, net), pnl


def assert_closed_at(trade, quotes, reason="TP_HIT"):
    closed = reload(trade)
    price, pnl = by_hand(trade, quotes)
    assert (closed.status, closed.close_reason) == ("CLOSED", reason), closed.attention_reason
    assert closed.close_price == price and closed.realized_pnl == pnl and pnl > 0
    assert closed.exit_commission == closed.commission_per_contract * UNITS * len(legs_of(trade))
    assert all(leg.exit_reason == "CLOSED" for leg in legs_of(trade))


def test_the_credit_vertical_by_hand_at_tradier(tradier, market, trader):
    """0.90 credit, bought back at 0.60 (P560 at its 1.60 ask, P555 sold at its 1.00 bid): $60 on 2 units."""
    trade = held_at_tradier(tradier, trader, "credit vertical")
    quotes = past_target(tradier, trade, "credit vertical")
    services.spread_exits_watch(market=market)
    closed = reload(trade)
    assert (closed.close_price, closed.realized_pnl) == (Decimal("0.60"), Decimal("60.00"))
    (order,) = tradier.orders_tagged(f"to-{trade.pk}-close")
    assert order.order_class == "multileg" and order.type == "market"
    assert [(leg.option_symbol, leg.side, leg.quantity) for leg in order.legs] == [
        (P560, "buy_to_close", 2), (P555, "sell_to_close", 2)]
    assert_closed_at(trade, quotes)
    assert TOKEN not in str(closed.__dict__)


@pytest.mark.parametrize("parent_fills", ["net", "none"])
@pytest.mark.parametrize("fills", ["atomic", "partial", "legged"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_a_close_the_books_cannot_fill_whole_waits_closing_and_the_sync_books_it_once_they_can(
        tradier, market, trader, template, fills, parent_fills):
    tradier.spread_fills, tradier.spread_parent_fills = fills, parent_fills
    trade = held_at_tradier(tradier, trader, template)
    first_leg = legs_of(trade)[0].option_symbol
    quotes = past_target(tradier, trade, template, sizes={first_leg: 1})  # one contract on the first leg's book

    services.spread_exits_watch(market=market)
    waiting = reload(trade)
    assert waiting.status == "CLOSING" and waiting.close_order_id
    assert all(leg.exit_price is None for leg in legs_of(trade))
    sync_orders(market=market)  # still working, in part or not at all: nothing changes, nothing is sent
    assert reload(trade).status == "CLOSING"
    assert services.spread_exits_watch(market=market).watched == 0

    tradier.set_quote(first_leg, *quotes[first_leg])  # the book refills: the rest fills
    sync_orders(market=market)
    assert_closed_at(trade, quotes)
    assert len(tradier.orders_tagged(f"to-{trade.pk}-close")) == 1


@pytest.mark.parametrize("parent_fills", ["net", "none"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_a_close_that_fills_at_once_closes_the_trade_in_the_same_cycle(tradier, market, trader, template, parent_fills):
    tradier.spread_parent_fills = parent_fills
    trade = held_at_tradier(tradier, trader, template)
    quotes = past_target(tradier, trade, template)
    report = services.spread_exits_watch(market=market)
    assert report.closed == 1
    assert_closed_at(trade, quotes)


@pytest.mark.parametrize("refusal", ["errors_200", "rejected"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_a_close_tradier_refuses_leaves_the_spread_open_told_and_the_next_cycle_closes_it(
        tradier, market, trader, template, refusal):
    """Tradier refuses to buy back a short the account does not show (a close for more than is held),
    at the POST or on a later look: the trade is OPEN with the reason; once held again, the next
    cycle's order closes it."""
    tradier.spread_refusal = refusal
    trade = held_at_tradier(tradier, trader, template)
    short = next(leg.option_symbol for leg in legs_of(trade) if leg.side == SHORT)
    tradier.add_position(ACCOUNT, short, -1, Decimal("-300"))  # one short fewer than the trade holds
    quotes = past_target(tradier, trade, template)

    services.spread_exits_watch(market=market)
    sync_orders(market=market)  # a refusal seen on a later look
    refused = reload(trade)
    assert refused.status == "OPEN" and refused.close_order_id == ""
    assert "still held" in refused.attention_reason and "exceeds the 1 short" in refused.attention_reason
    assert all(leg.exit_price is None for leg in legs_of(trade))

    tradier.add_position(ACCOUNT, short, -UNITS, Decimal("-600"))
    market.advance(minutes=1)  # a refused close is asked again after a minute
    services.spread_exits_watch(market=market)
    sync_orders(market=market)
    assert_closed_at(trade, quotes)
    assert reload(trade).attention_reason == ""


@pytest.mark.parametrize("zero_bid", ["fill", "wait"])
def test_a_worthless_wing_sold_into_a_zero_bid_closes_at_zero_or_waits_for_a_bid(tradier, market, trader, zero_bid):
    tradier.zero_bid_closing_sells = zero_bid
    trade = held_at_tradier(tradier, trader, "iron condor")
    quotes = {P555: ("0.20", "0.25"), P550: ("0.00", "0.05"), C575: ("0.20", "0.25"), C580: ("0.00", "0.05")}
    for symbol, (bid, ask) in quotes.items():
        tradier.set_quote(symbol, bid, ask)
    exits_mark(trade, quotes)

    services.spread_exits_watch(market=market)
    if zero_bid == "wait":
        assert reload(trade).status == "CLOSING"
        quotes = {**quotes, P550: ("0.01", "0.05"), C580: ("0.01", "0.05")}
        for symbol in (P550, C580):
            tradier.set_quote(symbol, *quotes[symbol])
        sync_orders(market=market)
    assert_closed_at(trade, quotes)
    wings = {leg.option_symbol: leg.exit_price for leg in legs_of(trade) if leg.side == LONG}
    assert wings == {P550: Decimal(quotes[P550][0]), C580: Decimal(quotes[C580][0])}


def test_a_close_whose_answer_is_lost_is_found_by_its_tag_and_never_sent_twice(tradier, market, trader):
    trade = held_at_tradier(tradier, trader, "iron condor")
    quotes = past_target(tradier, trade, "iron condor")
    tradier.inject("hang_after", method="POST", order_class="multileg")  # placed, the answer never comes
    services.spread_exits_watch(market=market)
    sync_orders(market=market)
    assert_closed_at(trade, quotes)
    assert len(tradier.orders_tagged(f"to-{trade.pk}-close")) == 1
