"""A multi-leg trade's exits: the monitor watches its held mark, and its closing multileg order
(every leg reversed, at market, tagged `to-<id>-close`) closes every leg at once, at the local paper
broker and at the fake Tradier over HTTP. The marks and the opening are other slices': the trade
and its marks are written with factories (`exits_spread_trade`, `exits_mark`)."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.base import OrderPurpose, OrderRejected, SpreadLeg, SpreadOrderRequest, order_tag
from brokers.models import BrokerMode, PaperOrder
from tests.factories import exits_mark, exits_spread_trade
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, LegSide, PaperTrade, TradeEvent, TradeLeg, WebhookEvent
from trades.net_price import direction_sign, held_price
from trades.services.spread_closing import spread_close_outcome

LONG, SHORT = LegSide.LONG, LegSide.SHORT
C565, C570, C575, C580 = (f"SPY261218C00{strike}000" for strike in (565, 570, 575, 580))
P570, P560, P555, P550 = (f"SPY261218P00{strike}000" for strike in (570, 560, 555, 550))
C570_JAN = "SPY270115C00570000"
QUOTES = {
    C565: ("6.00", "6.20"), C570: ("4.10", "4.30"), C575: ("2.50", "2.60"), C580: ("1.40", "1.50"),
    P570: ("4.40", "4.60"), P560: ("3.00", "3.20"), P555: ("2.00", "2.10"), P550: ("1.20", "1.30"),
    C570_JAN: ("7.00", "7.30"),
}
RATE = Decimal("0.65")

# Every template, debit and credit: its strategy type and legs (symbol, side, ratio).
TEMPLATES = {
    "vertical debit": ("vertical", [(C570, LONG, 1), (C575, SHORT, 1)]),
    "vertical credit": ("vertical", [(P560, SHORT, 1), (P555, LONG, 1)]),
    "long straddle": ("straddle", [(C570, LONG, 1), (P570, LONG, 1)]),
    "short straddle": ("straddle", [(C570, SHORT, 1), (P570, SHORT, 1)]),
    "long strangle": ("strangle", [(C580, LONG, 1), (P550, LONG, 1)]),
    "iron condor": ("iron_condor", [(P555, SHORT, 1), (P550, LONG, 1), (C575, SHORT, 1), (C580, LONG, 1)]),
    "butterfly": ("butterfly", [(C565, LONG, 1), (C570, SHORT, 2), (C575, LONG, 1)]),
    "calendar": ("calendar", [(C570, SHORT, 1), (C570_JAN, LONG, 1)]),
}
# A condor's and a butterfly's net moves four times a leg's step: smaller steps keep the wings in order.
STEPS = {("iron condor", True): "0.30", ("iron condor", False): "0.30", ("butterfly", True): "0.30",
         ("butterfly", False): "0.05"}
OPENING = {LONG: "buy_to_open", SHORT: "sell_to_open"}


@pytest.fixture
def paper(settings, market, trader):
    """The local paper broker fills each leg at its natural side, $0.65 a contract, naked shorts allowed
    (the short straddle), with the cash for them."""
    settings.PAPER_COMMISSION_PER_CONTRACT = RATE
    settings.PAPER_SLIPPAGE_PER_SHARE = 0
    settings.PAPER_SPREAD_IMPROVEMENT_PCT = 0
    settings.PAPER_ALLOW_NAKED_SHORTS = True
    for symbol, (bid, ask) in QUOTES.items():
        market.set_quote(symbol, bid, ask)
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"account_balance": Decimal("500000")})
    return market


def natural(side: str, symbol: str, quotes=QUOTES, *, opening: bool) -> Decimal:
    """The price a leg fills at: bought at the ask, sold at the bid."""
    bid, ask = (Decimal(value) for value in quotes[symbol])
    buys = (side == LONG) == opening
    return ask if buys else bid


def broker_of(user, market):
    with tenancy.acting_as(user.pk):
        return services.broker_of(services.account_settings_for(user=user), market=market)


def opened(trader, market, template: str, *, units: int = 2, move: str = "0.20", **fields) -> PaperTrade:
    """The template opened at the local paper broker (its entry order tagged as the trade's), the
    trade row as the opening leaves it, its stop and target `move` either side of the entry."""
    strategy_type, legs = TEMPLATES[template]
    priced = [(symbol, side, ratio, natural(side, symbol, opening=True)) for symbol, side, ratio in legs]
    net = sum((price * ratio * (1 if side == LONG else -1) for _, side, ratio, price in priced), Decimal(0))
    entry, sign = abs(net), (1 if net > 0 else -1)
    trade = exits_spread_trade(trader, legs=priced, strategy_type=strategy_type, units=units,
                               sl_price=entry - sign * Decimal(move), tp_price=entry + sign * Decimal(move), **fields)
    if trade.broker_mode == BrokerMode.LOCAL_PAPER:
        with tenancy.acting_as(trader.pk):
            order = broker_of(trader, market).place_spread_order(SpreadOrderRequest(
                underlying="SPY", price_type="market", tag=order_tag(trade.pk, OrderPurpose.ENTRY),
                legs=tuple(SpreadLeg(symbol, OPENING[side], ratio * units) for symbol, side, ratio in legs)))
        assert [leg.fill.price for leg in order.legs] == [price for *_, price in priced]
    return trade


def moved(template: str, *, winning: bool, by: str = "0.50") -> dict:
    """Quotes after the market moved for (or against) the trade: every long leg's book up `by` and
    every short's down (a win, whatever the direction), or the reverse."""
    _, legs = TEMPLATES[template]
    step = Decimal(by)
    quotes = dict(QUOTES)
    for symbol, side, _ in legs:
        delta = step if (side == LONG) == winning else -step
        bid, ask = (Decimal(value) for value in QUOTES[symbol])
        quotes[symbol] = (str(bid + delta), str(ask + delta))
    return quotes


def quote_all(market, quotes):
    for symbol, (bid, ask) in quotes.items():
        market.set_quote(symbol, bid, ask)


def reload(trade) -> PaperTrade:
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk)


def legs_of(trade) -> list[TradeLeg]:
    with tenancy.acting_as(trade.owner_id):
        return list(TradeLeg.objects.filter(trade=trade).order_by("position"))


def expected_close(trade, quotes) -> tuple[Decimal, Decimal, list[Decimal]]:
    """(held close price, realized P&L, each leg's exit) worked out leg by leg from the books."""
    exits = [natural(leg.side, leg.option_symbol, quotes, opening=False) for leg in legs_of(trade)]
    net = sum((leg.sign * leg.ratio * price for leg, price in zip(legs_of(trade), exits, strict=True)), Decimal(0))
    pnl = sum((leg.sign * leg.ratio * (price - leg.entry_price) * trade.qty * 100
               for leg, price in zip(legs_of(trade), exits, strict=True)), Decimal(0))
    return held_price(trade.net_direction, net), pnl, exits


@pytest.mark.parametrize("winning", [True, False], ids=["take-profit", "stop-loss"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_closes_at_its_target_and_its_stop_at_the_local_paper_broker(paper, trader, template,
                                                                                    winning):
    trade = opened(trader, paper, template)
    quotes = moved(template, winning=winning, by=STEPS.get((template, winning), "0.50"))
    quote_all(paper, quotes)
    exits_mark(trade, quotes)

    report = services.spread_exits_watch(market=paper)

    assert (report.watched, report.closes_asked, report.closed) == (1, 1, 1)
    closed = reload(trade)
    price, pnl, exits = expected_close(trade, quotes)
    assert closed.status == "CLOSED" and closed.close_reason == ("TP_HIT" if winning else "SL_HIT")
    assert [leg.exit_price for leg in legs_of(trade)] == exits
    assert all(leg.exit_reason == "CLOSED" for leg in legs_of(trade))
    assert closed.close_price == price and closed.realized_pnl == pnl
    assert (pnl > 0) == winning
    sign = direction_sign(closed.net_direction)
    assert closed.realized_pnl == sign * (closed.close_price - closed.entry_price) * closed.qty * 100
    contracts = closed.qty * sum(leg.ratio for leg in legs_of(trade))
    assert closed.exit_commission == RATE * contracts  # per contract per leg, as the ledger charged
    with tenancy.acting_as(trader.pk):
        (head,) = PaperOrder.objects.filter(tag=f"to-{trade.pk}-close", parent__isnull=True)
        sides = dict(PaperOrder.objects.filter(parent=head).values_list("option_symbol", "side"))
    assert head.order_class == "multileg" and head.price_type == "market" and str(head.pk) == closed.close_order_id
    assert sides == {leg.option_symbol: "sell_to_close" if leg.side == LONG else "buy_to_close"
                     for leg in legs_of(trade)}
    assert broker_of(trader, paper).get_positions() == []  # every leg closed, none left short or long


def test_a_credit_vertical_closed_at_its_target_books_the_pnl_worked_out_by_hand(paper, trader):
    """Sold P560 at 3.00 and bought P555 at 2.10: 0.90 credit, 2 units. The puts fall: P560 1.50/1.60,
    P555 1.00/1.10, a held mid of 0.50 under the 0.60 target. Buying P560 back at 1.60 and selling
    P555 at 1.00 costs 0.60: (0.90 − 0.60) × 2 × 100 = $60.00; by leg, short P560 gains 1.40 and long
    P555 loses 1.10 per share; commissions 4 contracts × 0.65 = $2.60."""
    trade = opened(trader, paper, "vertical credit", move="0.30")
    assert (trade.net_direction, trade.entry_price, trade.tp_price, trade.sl_price) == (
        "credit", Decimal("0.90"), Decimal("0.60"), Decimal("1.20"))
    quotes = {**QUOTES, P560: ("1.50", "1.60"), P555: ("1.00", "1.10")}
    quote_all(paper, quotes)
    assert exits_mark(trade, quotes).current_price == Decimal("0.50")

    services.spread_exits_watch(market=paper)

    closed = reload(trade)
    assert (closed.status, closed.close_reason, closed.close_price) == ("CLOSED", "TP_HIT", Decimal("0.60"))
    assert closed.realized_pnl == Decimal("60.00") and closed.exit_commission == Decimal("2.60")
    assert closed.realized_pnl_pct == Decimal("33.3333")  # $60 of the $180 credit
    assert [(leg.option_symbol, leg.exit_price) for leg in legs_of(trade)] == [
        (P560, Decimal("1.60")), (P555, Decimal("1.00"))]
    with tenancy.acting_as(trader.pk):
        closing = TradeEvent.objects.filter(trade=trade, new_status="CLOSING").get()
    assert closing.actor == "SYSTEM" and Decimal(closing.payload["net_exit"]["held_mark"]) == Decimal("0.50")


def test_a_mark_inside_the_exits_sends_nothing(paper, trader):
    trade = opened(trader, paper, "iron condor", move="0.60")
    exits_mark(trade, moved("iron condor", winning=True, by="0.05"))
    assert services.spread_exits_watch(market=paper).closes_asked == 0
    assert reload(trade).status == "OPEN"
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.filter(tag=f"to-{trade.pk}-close").exists()


def test_a_trade_whose_legs_are_not_all_marked_is_not_judged(paper, trader):
    trade = opened(trader, paper, "vertical debit")
    exits_mark(trade, moved("vertical debit", winning=False))
    with tenancy.acting_as(trader.pk):
        TradeLeg.objects.filter(trade=trade, position=1).update(marked_at=None)
    assert services.spread_exits_watch(market=paper).watched == 0
    assert reload(trade).status == "OPEN"


def test_the_manual_close_of_a_spread_sends_the_same_order_and_refuses_a_part(paper, trader, api_as):
    trade = opened(trader, paper, "butterfly")
    quotes = moved("butterfly", winning=True, by="0.10")
    quote_all(paper, quotes)
    client = api_as(trader)

    part = client.post(f"/api/trades/{trade.pk}/close", {"version": trade.version, "quantity": 1}, format="json")
    assert part.status_code == 400, part.json()
    assert "closes whole" in str(part.json()) and "quantity" in str(part.json())
    assert reload(trade).status == "OPEN"

    response = client.post(f"/api/trades/{trade.pk}/close", {"version": trade.version}, format="json")
    assert response.status_code == 200, response.json()
    price, pnl, exits = expected_close(trade, quotes)
    body = response.json()
    assert body["status"] == "CLOSED" and body["close_reason"] == "MANUAL_CLOSE"
    assert Decimal(body["realized_pnl"]) == pnl and Decimal(body["close_price"]) == price
    assert [leg.exit_price for leg in legs_of(trade)] == exits


def test_a_close_the_paper_broker_refuses_for_an_unquoted_leg_is_asked_again_once_it_is_quoted(paper, trader):
    trade = opened(trader, paper, "vertical credit")
    quotes = moved("vertical credit", winning=False)
    quote_all(paper, quotes)
    exits_mark(trade, quotes)
    paper.set_quote(P555, None, None)  # the long wing's book is empty: a market spread cannot be priced

    services.spread_exits_watch(market=paper)
    refused = reload(trade)
    assert refused.status == "OPEN" and refused.close_order_id == "" and refused.exit_request_reason == "SL_HIT"
    assert refused.attention_reason.startswith("The spread could not be closed (No quote for every leg")
    assert "still held" in refused.attention_reason

    paper.set_quote(P555, *quotes[P555])
    paper.advance(minutes=1)  # a refused close is asked again after a minute
    services.spread_exits_watch(market=paper)
    closed = reload(trade)
    assert closed.status == "CLOSED" and closed.close_reason == "SL_HIT" and closed.attention_reason == ""
    assert closed.realized_pnl == expected_close(trade, quotes)[1]
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(tag=f"to-{trade.pk}-close", parent__isnull=True, status="filled").count() == 1


def test_a_refused_close_keeps_the_spread_open_with_the_reason_and_the_next_cycle_asks_again(
        paper, trader, scripted_broker):
    trade = opened(trader, paper, "iron condor")
    quotes = moved("iron condor", winning=False)
    quote_all(paper, quotes)
    exits_mark(trade, quotes)
    scripted_broker(trader).fail("place_spread_order", OrderRejected("Buy to close of 2 exceeds the 0 short"))

    services.spread_exits_watch(market=paper)
    refused = reload(trade)
    assert refused.status == "OPEN" and refused.close_order_id == ""
    assert "still held" in refused.attention_reason and "exceeds the 0 short" in refused.attention_reason
    assert [leg.exit_price for leg in legs_of(trade)] == [None] * 4

    services.spread_exits_watch(market=paper)  # the next cycle: put off, nothing sent
    assert scripted_broker(trader).calls.count("place_spread_order") == 2
    paper.advance(minutes=1)
    services.spread_exits_watch(market=paper)  # a minute on: still past the stop, asked again
    closed = reload(trade)
    assert closed.status == "CLOSED" and closed.close_reason == "SL_HIT" and closed.attention_reason == ""
    assert scripted_broker(trader).calls.count("place_spread_order") == 3  # the entry, the refusal, the close


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_realized_pnl_is_the_sum_over_legs_and_the_held_close_is_the_signed_leg_net(data):
    """For any legs, entries, exits and units: P&L = Σ side × ratio × (exit − entry) × units × 100,
    exactly, and the held close price × the direction's sign equals the signed net of the exits."""
    cents = st.integers(min_value=0, max_value=5000).map(lambda c: Decimal(c) / 100)
    count = data.draw(st.integers(min_value=2, max_value=4))
    legs = [TradeLeg(option_symbol=f"L{n}", side=data.draw(st.sampled_from([LONG, SHORT])),
                     ratio=data.draw(st.integers(min_value=1, max_value=3)), entry_price=data.draw(cents))
            for n in range(count)]
    exits = [data.draw(cents) for _ in legs]
    units = data.draw(st.integers(min_value=1, max_value=50))
    entry_net = sum((leg.sign * leg.ratio * leg.entry_price for leg in legs), Decimal(0))
    direction = "credit" if entry_net < 0 else "debit"
    trade = PaperTrade(qty=units, filled_qty=units, status="OPEN", net_direction=direction,
                       entry_price=held_price(direction, entry_net), broker_mode=BrokerMode.TRADIER_SANDBOX,
                       commission_per_contract=RATE, entry_date=None)
    outcome = spread_close_outcome(trade, fills=list(zip(legs, exits, strict=True)), at=None, reason="TP_HIT")
    by_legs = sum((leg.sign * leg.ratio * (price - leg.entry_price) * units * 100
                   for leg, price in zip(legs, exits, strict=True)), Decimal(0))
    assert outcome["realized_pnl"] == by_legs
    exit_net = sum((leg.sign * leg.ratio * price for leg, price in zip(legs, exits, strict=True)), Decimal(0))
    assert outcome["close_price"] * direction_sign(direction) == exit_net
    assert outcome["realized_pnl"] == direction_sign(direction) * (
        outcome["close_price"] - trade.entry_price) * units * 100
    assert outcome["exit_commission"] == RATE * units * sum(leg.ratio for leg in legs)


def test_a_calendars_close_after_its_front_settled_keeps_a_net_below_nothing():
    """A 570 call calendar bought for 2.40 (front sold 3.00, back bought 5.40): the front is assigned
    at 30.00 with the underlying at 600; the back is sold later, the underlying back at 560, for
    5.00. Closing nets 5.00 − 30.00 = −25.00 a share: a real loss beyond the debit, which the close
    price keeps so that P&L = (close − entry) × units × 100 as for any spread."""
    front = TradeLeg(option_symbol="SPY261218C00570000", side=SHORT, ratio=1, entry_price=Decimal("3.00"),
                     exit_price=Decimal("30.00"))
    back = TradeLeg(option_symbol="SPY270115C00570000", side=LONG, ratio=1, entry_price=Decimal("5.40"))
    trade = PaperTrade(qty=1, filled_qty=1, status="OPEN", net_direction="debit", entry_price=Decimal("2.40"),
                       broker_mode=BrokerMode.TRADIER_SANDBOX, commission_per_contract=RATE, entry_date=None)
    outcome = spread_close_outcome(trade, fills=[(back, Decimal("5.00"))], settled=[front], at=None,
                                   reason="MANUAL_CLOSE")
    assert outcome["realized_pnl"] == Decimal("-2740.00")  # (3.00 − 30.00 + 5.00 − 5.40) × 100
    assert outcome["close_price"] == Decimal("-25.00")
    assert outcome["realized_pnl"] == (outcome["close_price"] - trade.entry_price) * 100


def test_a_spreads_stop_is_announced_as_any_stop_with_what_the_legs_make(paper, trader, receiver):
    services.account_settings_update(user=trader, changes={"webhook_url": receiver.url})
    services.webhook_secret_rotate(user=trader)
    trade = opened(trader, paper, "vertical credit")
    quotes = moved("vertical credit", winning=False)
    quote_all(paper, quotes)
    exits_mark(trade, quotes)

    services.spread_exits_watch(market=paper)

    with tenancy.acting_as(trader.pk):
        (announced,) = [event.payload for event in WebhookEvent.objects.filter(owner=trader)]
    price, pnl, _ = expected_close(trade, quotes)
    assert announced["type"] == "trade.sl_hit", announced["type"]
    told = announced["data"]["trade"]
    assert (told["strategy_type"], told["net_direction"], told["close_reason"]) == ("vertical", "credit", "SL_HIT")
    assert Decimal(told["close_price"]) == price and Decimal(told["realized_pnl"]) == pnl


@pytest.mark.parametrize("action, body", [("cancel", {}), ("reprice", {"order_type": "limit", "limit_price": "0.50"})])
def test_a_spreads_working_close_is_neither_withdrawn_nor_repriced_as_a_single_sell(paper, trader, api_as, action,
                                                                                    body):
    trade = opened(trader, paper, "vertical credit", status="CLOSING")
    answer = api_as(trader).post(f"/api/trades/{trade.pk}/close/{action}", {"version": trade.version, **body},
                                 format="json")
    assert answer.status_code == 409, answer.json()
    assert "one market order for every leg" in str(answer.json())
    assert reload(trade).status == "CLOSING"
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.filter(tag__startswith=f"to-{trade.pk}-").exclude(tag__endswith="-entry").exists()


def test_a_calendars_days_to_expiry_count_to_its_front_month_whichever_leg_comes_first(paper, trader):
    """The row's contract is leg 0's (here the January long); the time stop counts to December's short."""
    from trades.services.exit_policy_runs import exit_state_of

    trade = exits_spread_trade(trader, legs=[(C570_JAN, LONG, 1, "7.30"), (C570, SHORT, 1, "4.10")],
                               strategy_type="calendar", units=1, sl_price="1.60", tp_price="4.80",
                               exit_policy={"close_days_to_expiry": "2"})
    with tenancy.acting_as(trader.pk):
        state = exit_state_of(PaperTrade.objects.prefetch_related("legs").get(pk=trade.pk))
    assert (str(state.expiry), state.direction, state.cent_grid, state.entry) == (
        "2026-12-18", "debit", True, Decimal("3.20"))
