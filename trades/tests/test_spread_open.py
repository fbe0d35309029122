"""POST /api/trades with `legs`: every template opened at the local paper broker, debit and credit,
market and limit (resting, then filled by the order cycle's matching and sync), the exits as held
prices, field-level refusals, risk on the max loss, idempotency and tenancy (docs/spreads.md)."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.models import PaperOrder
from monitoring.services import match_paper_orders
from monitoring.sync import sync_orders
from tests.factories import account_with
from tradeoptions import tenancy
from trades import net_price, services
from trades.models import CloseReason, EventKind, PaperTrade, TradeEvent, TradeLeg, TradeStatus

EXPIRY = date(2026, 12, 18)
BACK = date(2027, 1, 15)
C560, C570, C580, C590 = "SPY261218C00560000", "SPY261218C00570000", "SPY261218C00580000", "SPY261218C00590000"
P550, P560, P570 = "SPY261218P00550000", "SPY261218P00560000", "SPY261218P00570000"
C570_JAN = "SPY270115C00570000"
QUOTES = {
    C560: ("10.00", "10.20"), C570: ("4.10", "4.30"), C580: ("1.50", "1.60"), C590: ("0.40", "0.50"),
    P550: ("1.20", "1.30"), P560: ("3.00", "3.20"), P570: ("3.90", "4.10"), C570_JAN: ("6.00", "6.20"),
}


def long_(symbol, ratio=1):
    return {"option_symbol": symbol, "side": "LONG", "ratio": ratio}


def short(symbol, ratio=1):
    return {"option_symbol": symbol, "side": "SHORT", "ratio": ratio}


# name -> (legs, natural held entry, direction, max loss of one unit at that entry, sl, tp)
TEMPLATES = {
    "vertical": ([long_(C570), short(C580)], "2.80", "debit", "280.00", "1.40", "5.00"),
    "vertical_credit": ([short(P560), long_(P550)], "1.70", "credit", "830.00", "3.40", "0.85"),
    "straddle": ([long_(C570), long_(P570)], "8.40", "debit", "840.00", "5.00", "12.00"),
    "strangle": ([long_(P560), long_(C580)], "4.80", "debit", "480.00", "2.40", "8.00"),
    "iron_condor": ([long_(P550), short(P560), short(C580), long_(C590)], "2.70", "credit", "730.00", "5.40",
                    "1.35"),
    "butterfly": ([long_(C560), short(C570, 2), long_(C580)], "3.60", "debit", "360.00", "1.80", "6.00"),
    "calendar": ([short(C570), long_(C570_JAN)], "2.10", "debit", "210.00", "1.00", "3.50"),
}


@pytest.fixture
def quoted(market):
    for symbol, (bid, ask) in QUOTES.items():
        market.set_quote(symbol, bid, ask)
    return market


@pytest.fixture
def roomy(trader):
    """Limits that let a spread through: the tests about limits set their own."""
    return account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)



def spread_body(legs, **changes):
    body = {"ticker": "SPY", "qty": 1, "entry_type": "market", "legs": legs, "strategy": "spreads"}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def _trades(user):
    with tenancy.acting_as(user.pk):
        return list(PaperTrade.objects.filter(owner=user).order_by("id"))


def _legs(user, trade_id):
    with tenancy.acting_as(user.pk):
        return list(TradeLeg.objects.filter(trade_id=trade_id).order_by("position"))


def _cycle(market):
    """The order cycle's two steps that bring a resting order's fill to its trade."""
    match_paper_orders(market=market)
    sync_orders(market=market)


def _signed_leg_sum(legs):
    return sum((leg.sign * leg.ratio * leg.entry_price for leg in legs), Decimal(0))


# --- every template, at market and at a limit -------------------------------------------------


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_opens_at_market_at_the_legs_natural_fills(api_as, trader, quoted, roomy, name):
    legs, entry, direction, max_loss, sl, tp = TEMPLATES[name]
    strategy = name.removesuffix("_credit")
    response = api_as(trader).post("/api/trades", spread_body(legs, sl_price=sl, tp_price=tp, qty=2,
                                                              strategy_type=strategy), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and body["strategy_type"] == strategy and body["net_direction"] == direction
    assert Decimal(body["entry_price"]) == Decimal(entry) and body["filled_qty"] == 2 and body["qty"] == 2
    assert [leg["symbol"] for leg in body["legs"]] == [leg["option_symbol"] for leg in legs]
    assert [leg["side"] for leg in body["legs"]] == [leg["side"] for leg in legs]
    # The row's contract is leg 0's; no bracket at the broker: the monitor watches the held net.
    assert body["option_symbol"] == legs[0]["option_symbol"] and not body["bracket_order_id"]
    assert body["unprotected"] is False
    if strategy != "calendar":  # a calendar's figures need a model of the back month (not here)
        assert Decimal(body["max_loss"]) == Decimal(max_loss) * 2
    stored = _legs(trader, body["id"])
    assert [leg.position for leg in stored] == list(range(len(legs)))
    held = net_price.held_price(direction, _signed_leg_sum(stored))
    assert held == Decimal(entry)
    for leg, asked in zip(stored, legs, strict=True):
        bid, ask = QUOTES[asked["option_symbol"]]
        assert leg.entry_price == Decimal(ask if asked["side"] == "LONG" else bid)
    contracts = 2 * sum(leg["ratio"] for leg in legs)
    (trade,) = _trades(trader)
    assert trade.entry_commission == (trade.commission_per_contract * contracts).quantize(Decimal("0.01"))
    with tenancy.acting_as(trader.pk):
        (parent,) = PaperOrder.objects.filter(parent__isnull=True)
    assert parent.order_class == "multileg" and parent.tag == f"to-{body['id']}-entry"
    assert parent.price_type == "market"


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_rests_at_a_limit_and_the_cycle_fills_it(api_as, trader, quoted, roomy, name):
    legs, entry, direction, _, sl, tp = TEMPLATES[name]
    # A limit the natural net does not reach: 0.20 worse for the trader than the market gives.
    better = Decimal(entry) - Decimal("0.20") if direction == "debit" else Decimal(entry) + Decimal("0.20")
    response = api_as(trader).post("/api/trades", spread_body(
        legs, entry_type="limit", limit_price=str(better), sl_price=sl,
        tp_price=tp if direction == "debit" else str(Decimal(tp)), net_direction=direction), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "PENDING" and body["entry_price"] is None
    assert Decimal(body["planned_entry_price"]) == better and body["net_direction"] == direction
    with tenancy.acting_as(trader.pk):
        (parent,) = PaperOrder.objects.filter(parent__isnull=True)
    assert parent.price_type == direction and parent.limit_price == better

    _cycle(quoted)
    assert _trades(trader)[0].status == TradeStatus.PENDING  # not reached: still resting

    first = legs[0]  # move leg 0's book 0.20 in the trader's favour: the natural net now crosses
    bid, ask = (Decimal(price) for price in QUOTES[first["option_symbol"]])
    shift = Decimal("-0.20") if first["side"] == "LONG" else Decimal("0.20")
    quoted.set_quote(first["option_symbol"], str(bid + shift), str(ask + shift))
    _cycle(quoted)
    (trade,) = _trades(trader)
    assert trade.status == TradeStatus.OPEN and trade.entry_price == better and trade.filled_qty == 1
    stored = _legs(trader, trade.pk)
    assert net_price.direction_sign(trade.net_direction) * trade.entry_price == _signed_leg_sum(stored)
    with tenancy.acting_as(trader.pk):
        kinds = list(TradeEvent.objects.filter(trade=trade).values_list("kind", flat=True).order_by("id"))
    assert kinds[-1] == EventKind.ORDER_FILLED


def test_the_answer_carries_the_positions_figures(api_as, trader, quoted, roomy):
    body = api_as(trader).post("/api/trades", spread_body(TEMPLATES["vertical"][0], qty=2, sl_price="1.40",
                                                          tp_price="5.00"), format="json").json()
    # 10 wide, 2.80 debit, 2 units: at most 1,440 made and 560 lost, breakeven at 572.80.
    assert body["max_profit"] == "1440.00" and body["max_loss"] == "560.00"
    assert body["breakevens"] == ["572.8000"] and body["width"] == "10.000"
    assert body["sl_price"] == "1.4000" and body["tp_price"] == "5.0000" and body["planned_entry_price"] == "2.8000"


def test_the_legs_can_be_given_by_parts_and_buy_sell_and_the_template_is_recognised(api_as, trader, quoted, roomy):
    legs = [{"option_type": "CALL", "strike": "570", "expiry": "2026-12-18", "side": "buy"},
            {"option_type": "CALL", "strike": "580", "expiry": "2026-12-18", "side": "sell"}]
    response = api_as(trader).post("/api/trades", spread_body(legs, sl_price="1.40", tp_price="5.00"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["strategy_type"] == "vertical" and response.json()["legs"][1]["side"] == "SHORT"


def test_a_share_of_max_profit_and_a_credit_multiple_become_the_exits_and_are_logged(api_as, trader, quoted, roomy):
    legs = TEMPLATES["iron_condor"][0]
    response = api_as(trader).post("/api/trades", spread_body(
        legs, take_profit_pct_of_max="50", stop_loss_credit_multiple="2"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    # Credit 2.70 (natural): half the max profit kept is a buy-back at 1.35; twice the credit 5.40.
    assert body["tp_price"] == "1.3500" and body["sl_price"] == "5.4000"
    with tenancy.acting_as(trader.pk):
        first = TradeEvent.objects.filter(trade_id=body["id"]).order_by("id").first()
    assert first.payload["take_profit"] == {"pct_of_max": "50", "max_profit_per_share": "2.70", "tp_price": "1.35"}
    assert first.payload["stop_loss"] == {"credit_multiple": "2", "sl_price": "5.40"}
    assert first.payload["max_loss"] == "730.00"


def test_a_debit_spreads_share_of_max_profit_is_above_its_debit(api_as, trader, quoted, roomy):
    legs = TEMPLATES["vertical"][0]  # 10 wide, 2.80 debit: max profit 7.20 a share
    response = api_as(trader).post("/api/trades", spread_body(legs, take_profit_pct_of_max="50", sl_price="1.40"),
                                   format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["tp_price"] == "6.4000"


# --- refusals, field by field -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"sl_price": "3.00"}, "sl_price", "below the 2.80 debit"),  # stop above a debit's entry
        ({"tp_price": "2.00"}, "tp_price", "above the 2.80 debit"),
        ({"strategy_type": "butterfly"}, "strategy_type", "not a butterfly"),
        ({"legs": [long_(C570), short(C580), long_(C590), short(C560), long_(P550)]}, "legs", "2 to 4 legs"),
        ({"legs": [long_(C570), {**short(C580), "ratio": 0}]}, "legs", "ratio must be at least 1"),
        ({"legs": [long_(C570), short("QQQ261218C00500000")]}, "legs", "not SPY"),
        ({"legs": [long_(C570), short("SPY261127C00580000")]}, "legs", "expired"),
        ({"legs": [long_(C570, 2), short(C580, 2)]}, "legs", "lowest terms"),
        ({"legs": [long_(C570), short(C570)]}, "legs", "twice"),
        ({"stop_loss_credit_multiple": "2", "sl_price": None}, "stop_loss_credit_multiple", "for a credit trade"),
        ({"sl_pct": "30"}, "sl_pct", "multi-leg"),
        ({"strike": "570"}, "strike", "in its legs"),
        ({"entry_type": "limit", "limit_price": "2.505"}, "limit_price", "whole cents"),
        ({"legs": [long_(C570), short("SPY261218C00585000")]}, "legs", "lists no"),
        ({"legs": [long_(C570), short(P560)]}, "strategy_type", "none of the strategies"),  # a risk reversal
        ({"legs": [long_(C570), short(C580, 2)]}, "strategy_type", "none of the strategies"),  # a ratio spread
    ],
    ids=lambda value: str(value)[:40],
)
def test_bad_spreads_are_refused_field_by_field_and_write_nothing(api_as, trader, quoted, roomy, changes, field,
                                                                  words):
    body = spread_body(TEMPLATES["vertical"][0], sl_price="1.40", tp_price="5.00")
    body.update(changes)
    body = {name: value for name, value in body.items() if value is not None}
    response = api_as(trader).post("/api/trades", body, format="json")
    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert any(error["attr"].startswith(field) for error in errors), errors
    if words:
        assert any(words in error["detail"] for error in errors), errors
    assert _trades(trader) == []
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.exists()


@pytest.mark.parametrize(("changes", "field"), [({"tp_price": "2.00"}, "tp_price"), ({"sl_price": "1.00"}, "sl_price")])
def test_a_credit_trades_exits_on_the_wrong_side_are_refused(api_as, trader, quoted, roomy, changes, field):
    body = {**spread_body(TEMPLATES["vertical_credit"][0], sl_price="3.40", tp_price="0.85"), **changes}
    response = api_as(trader).post("/api/trades", body, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == field and "1.70 credit" in error["detail"]


def test_spread_fields_on_a_single_option_are_refused(api_as, trader, quoted, open_body):
    response = api_as(trader).post("/api/trades", open_body(strategy_type="vertical"), format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "strategy_type"


# --- naked shorts -------------------------------------------------------------------------------


def test_a_naked_short_is_refused_unless_the_account_allows_it(api_as, trader, quoted, roomy, settings):
    body = spread_body([short(C570), short(P570)], sl_price="12.00", tp_price="4.00")
    refused = api_as(trader).post("/api/trades", body, format="json")
    assert refused.status_code == 400
    (error,) = refused.json()["errors"]
    assert error["attr"] == "legs" and "naked short" in error["detail"] and "option level" in error["detail"]
    assert _trades(trader) == []

    # Switching it on needs the words, as the live switch does.
    client = api_as(trader)
    unconfirmed = client.put("/api/settings", {"allow_naked_short_options": True}, format="json")
    assert unconfirmed.status_code == 400 and unconfirmed.json()["errors"][0]["attr"] == "confirmation"
    switched = client.put("/api/settings", {"allow_naked_short_options": True, "confirmation": "NAKED SHORTS"},
                          format="json")
    assert switched.status_code == 200 and switched.json()["allow_naked_short_options"] is True

    # Now the trades layer lets it through; the local paper broker still writes no naked options.
    settings.PAPER_ALLOW_NAKED_SHORTS = False
    rejected = client.post("/api/trades", body, format="json")
    assert rejected.status_code == 422, rejected.json()
    assert rejected.json()["trade"]["status"] == "REJECTED"
    assert "does not write naked options" in rejected.json()["trade"]["status_reason"]

    settings.PAPER_ALLOW_NAKED_SHORTS = True
    account_with(trader, account_balance=Decimal("200000"))  # the broker holds the put's payout at 0: $57,000
    opened = client.post("/api/trades", body, format="json")
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    assert body["status"] == "OPEN" and body["strategy_type"] == "straddle" and body["net_direction"] == "credit"
    assert body["entry_price"] == "8.0000" and body["max_loss"] is None


# --- risk on the max loss -----------------------------------------------------------------------


def test_the_heat_limit_counts_a_spreads_max_loss_not_its_premium(api_as, trader, quoted):
    # A credit condor takes in 2.70 of premium but can lose 730.00 a unit: the heat limit counts 730.
    account_with(trader, account_balance=Decimal("10000"), heat_limit_pct=Decimal("7.29"), max_positions=20)
    legs = TEMPLATES["iron_condor"][0]
    body = spread_body(legs, sl_price="5.40", tp_price="1.35")
    refused = api_as(trader).post("/api/trades", body, format="json")
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["attr"] == "heat_limit_pct" and "$730.00, 7.30%" in error["detail"]
    account_with(trader, heat_limit_pct=Decimal("7.30"))
    assert api_as(trader).post("/api/trades", body, format="json").status_code == 201
    # Stored, it counts its max loss exactly: 730 for the condor.
    with tenancy.acting_as(trader.pk):
        assert services.active_exposure(trader)["heat"] == Decimal("730.00")


def test_a_pending_credit_spread_counts_its_max_loss_at_its_limit(trader, quoted):
    # Stored trades: a resting 1.90 credit on the 10-wide put spread can lose 810 a unit, 3 units.
    account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    result = services.spread_open(user=trader, data=services.SpreadOpenInput(
        ticker="SPY", qty=3, limit_price=Decimal("1.90"), net_direction="credit", sl_price=Decimal("3.80"),
        tp_price=Decimal("0.95"),
        legs=(services.SpreadLegInput(side="SHORT", option_symbol=P560),
              services.SpreadLegInput(side="LONG", option_symbol=P550))), market=quoted)
    assert result.problem is None and result.trade.status == TradeStatus.PENDING
    with tenancy.acting_as(trader.pk):
        assert services.active_exposure(trader)["heat"] == Decimal("2430.00")
        assert services.active_exposure(trader)["premium"] == Decimal(0)


def test_a_spread_over_the_buying_power_is_refused_in_trader_words(api_as, trader, quoted):
    account_with(trader, account_balance=Decimal("700"), heat_limit_pct=Decimal("100"), max_positions=20)
    response = api_as(trader).post("/api/trades", spread_body(TEMPLATES["iron_condor"][0], sl_price="5.40",
                                                              tp_price="1.35"), format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["code"] == "risk_limit_exceeded" and error["attr"] == "qty"
    assert "holds $730.00 of buying power" in error["detail"] and "$700.00" in error["detail"]
    assert _trades(trader) == []


def test_the_daily_loss_limit_applies_to_a_spread_unchanged(api_as, trader, quoted, roomy):
    from tests.factories import PaperTradeFactory

    PaperTradeFactory(owner=trader, status=TradeStatus.CLOSED, close_price=Decimal("1"),
                      close_reason=CloseReason.SL_HIT, realized_pnl=Decimal("-500"), close_date=quoted.now())
    response = api_as(trader).post("/api/trades", spread_body(TEMPLATES["vertical"][0], sl_price="1.40",
                                                              tp_price="5.00"), format="json")
    assert response.status_code == 422, response.json()
    assert response.json()["errors"][0]["attr"] == "daily_loss_limit"


# --- idempotency, tenancy, cancel ---------------------------------------------------------------


def test_a_replayed_spread_open_is_answered_once_and_placed_once(api_as, trader, quoted, roomy):
    client = api_as(trader)
    body = spread_body(TEMPLATES["butterfly"][0], sl_price="1.80", tp_price="6.00")
    first = client.post("/api/trades", body, format="json", headers={"Idempotency-Key": "fly-1"})
    again = client.post("/api/trades", body, format="json", headers={"Idempotency-Key": "fly-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]
    assert len(_trades(trader)) == 1
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(parent__isnull=True).count() == 1
    other = client.post("/api/trades", {**body, "qty": 2}, format="json", headers={"Idempotency-Key": "fly-1"})
    assert other.status_code == 422


def test_another_traders_spread_is_not_found(api_as, trader, other_trader, quoted, roomy):
    opened = api_as(trader).post("/api/trades", spread_body(TEMPLATES["vertical"][0], entry_type="limit",
                                                            limit_price="2.00", sl_price="1.00", tp_price="5.00"),
                                 format="json").json()
    stranger = api_as(other_trader)
    assert stranger.get(f"/api/trades/{opened['id']}").status_code == 404
    cancel = stranger.post(f"/api/trades/{opened['id']}/entry/cancel", {"version": opened["version"]}, format="json")
    assert cancel.status_code == 404
    assert _trades(trader)[0].status == TradeStatus.PENDING


def test_a_resting_spread_entry_is_cancelled_like_a_single_one(api_as, trader, quoted, roomy):
    client = api_as(trader)
    opened = client.post("/api/trades", spread_body(TEMPLATES["vertical_credit"][0], entry_type="limit",
                                                    limit_price="2.00", sl_price="4.00", tp_price="1.00"),
                         format="json").json()
    assert opened["status"] == "PENDING" and opened["net_direction"] == "credit"
    cancelled = client.post(f"/api/trades/{opened['id']}/entry/cancel", {"version": opened["version"]},
                            format="json")
    assert cancelled.status_code == 200, cancelled.json()
    assert cancelled.json()["status"] == "CANCELED"
    with tenancy.acting_as(trader.pk):
        (parent,) = PaperOrder.objects.filter(parent__isnull=True)
    assert parent.status == "canceled"


def test_an_entry_whose_outcome_is_unknown_is_found_by_its_tag_and_never_sent_twice(api_as, trader, quoted, roomy,
                                                                                   monkeypatch):
    from brokers.base import OrderOutcomeUnknown
    from brokers.paper import LocalPaperBroker

    place = LocalPaperBroker.place_spread_order

    def placed_then_lost(self, request):
        place(self, request)  # the broker took it; the answer never came back
        raise OrderOutcomeUnknown("The connection dropped after the order was sent.", tag=request.tag)

    monkeypatch.setattr(LocalPaperBroker, "place_spread_order", placed_then_lost)
    response = api_as(trader).post("/api/trades", spread_body(TEMPLATES["vertical"][0], sl_price="1.40",
                                                              tp_price="5.00"), format="json")
    assert response.status_code == 502, response.json()
    (trade,) = _trades(trader)
    assert trade.status == TradeStatus.PENDING and not trade.entry_order_id and "by its tag" in trade.attention_reason
    _cycle(quoted)
    (trade,) = _trades(trader)
    assert trade.status == TradeStatus.OPEN and trade.entry_order_id and trade.entry_price == Decimal("2.80")
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(parent__isnull=True, tag=f"to-{trade.pk}-entry").count() == 1


def test_a_single_option_opens_exactly_as_before(api_as, trader, quoted, open_body):
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["strategy_type"] == "single" and body["bracket_order_id"] and len(body["legs"]) == 1


# --- the held entry is the signed sum of the legs' fills ------------------------------------------


PRICES = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("20"), places=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(long_ask=PRICES, short_bid=PRICES, wing_ask=PRICES, qty=st.integers(min_value=1, max_value=3))
def test_the_entry_times_its_sign_is_the_signed_sum_of_the_leg_fills(trader, market, long_ask, short_bid, wing_ask,
                                                                     qty):
    """Any butterfly's books: whatever the direction the fills make, entry × sign = Σ side × ratio × fill."""
    account_with(trader, account_balance=Decimal("1000000"), heat_limit_pct=Decimal("100"), max_positions=10_000)
    market.set_quote(C560, str(long_ask - Decimal("0.05")), str(long_ask))
    market.set_quote(C570, str(short_bid), str(short_bid + Decimal("0.05")))
    market.set_quote(C580, str(wing_ask - Decimal("0.05")), str(wing_ask))
    natural = long_ask - 2 * short_bid + wing_ask
    if natural == 0:
        return
    direction = net_price.direction_of(natural)
    held = abs(natural)
    far = held * 3 if direction == "credit" else held / 3
    near = held / 3 if direction == "credit" else held * 3
    result = services.spread_open(user=trader, market=market, data=services.SpreadOpenInput(
        ticker="SPY", qty=qty, net_direction=direction, sl_price=far.quantize(Decimal("0.0001")),
        tp_price=near.quantize(Decimal("0.0001")), strategy_type="butterfly",
        legs=(services.SpreadLegInput(side="LONG", option_symbol=C560),
              services.SpreadLegInput(side="SHORT", ratio=2, option_symbol=C570),
              services.SpreadLegInput(side="LONG", option_symbol=C580))))
    trade = result.trade
    assert trade.status == TradeStatus.OPEN, trade.status_reason
    legs = _legs(trader, trade.pk)
    assert net_price.direction_sign(trade.net_direction) * trade.entry_price == _signed_leg_sum(legs) == natural
    assert trade.entry_price > 0


def test_the_schema_documents_the_spread_fields_with_their_types(api_as, trader):
    schema = api_as(trader).get("/api/schema/?format=json").json()
    request = schema["components"]["schemas"]["TradeOpen"]["properties"]
    assert request["legs"]["type"] == "array" and request["legs"]["maxItems"] == 8
    leg = schema["components"]["schemas"][request["legs"]["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert set(leg) == {"option_symbol", "option_type", "strike", "expiry", "side", "ratio"}
    assert leg["ratio"]["type"] == "integer" and leg["ratio"]["minimum"] == 1 and leg["expiry"]["format"] == "date"
    enums = schema["components"]["schemas"]
    assert enums["SpreadStrategyTypeEnum"]["enum"] == ["vertical", "straddle", "strangle", "iron_condor",
                                                          "butterfly", "calendar"]
    assert "SpreadStrategyTypeEnum" in str(request["strategy_type"]) and "Enum" in str(request["net_direction"])
    assert request["take_profit_pct_of_max"]["type"] == "string" and "max profit" in request[
        "take_profit_pct_of_max"]["description"]
    assert "credit" in request["stop_loss_credit_multiple"]["description"]
    settings_schema = schema["components"]["schemas"]["AccountSettings"]["properties"]
    assert settings_schema["allow_naked_short_options"]["type"] == "boolean"


def test_the_factory_for_other_slices_matches_what_the_open_writes(trader):
    from tests.factories import spread_open_trade

    trade = spread_open_trade(owner=trader, qty=2, legs=[(P550, "LONG", 1, "1.30"), (P560, "SHORT", 1, "3.00"),
                                                          (C580, "SHORT", 1, "1.50"), (C590, "LONG", 1, "0.50")])
    assert trade.strategy_type == "iron_condor" and trade.net_direction == "credit"
    assert trade.entry_price == Decimal("2.70") and trade.option_symbol == P550
    assert trade.sl_price == Decimal("5.40") and trade.tp_price == Decimal("1.35")
    legs = _legs(trader, trade.pk)
    assert net_price.direction_sign(trade.net_direction) * trade.entry_price == _signed_leg_sum(legs)
    with tenancy.acting_as(trader.pk):
        assert services.active_exposure(trader)["heat"] == Decimal("1460.00")  # (10 − 2.70) × 100 × 2
