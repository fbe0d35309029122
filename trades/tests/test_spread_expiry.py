"""A multi-leg trade at expiry (issue 19): each leg settles at intrinsic against the underlying's
settlement price, as EXERCISED / ASSIGNED / EXPIRED, or CASH_SETTLED for an index option; the
trade closes as EXPIRED once every leg has, its P&L the sum over legs to the cent. Every figure
below is worked by hand from the entry prices in the comments."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.occ import build_symbol, exercise_value
from brokers.settlement import AM, CASH_SETTLED_ROOTS, PM, cash_settled, leg_settlement, settlement_style, settles_at
from tests.factories import UserFactory, expiry_spread_trade
from tradeoptions import tenancy
from trades import selectors
from trades.models import CloseReason, LegExit, PaperTrade, TradeEvent, TradeLeg, TradeStatus
from trades.services import LegSettlementPrice, spread_expiry_settle

EXPIRY = date(2026, 12, 18)
CUTOFF = datetime(2026, 12, 18, 21, 0, tzinfo=UTC)  # 16:00 in New York
BACK = date(2027, 1, 15)
BACK_CUTOFF = datetime(2027, 1, 15, 21, 0, tzinfo=UTC)
WHO = {"actor": "SYSTEM", "actor_label": "expiry_settlement"}


def spy(kind, strike, expiry=EXPIRY):
    return build_symbol("SPY", expiry, kind, Decimal(strike))


def _settle(trade, underlying, *, at=CUTOFF, expiry=None):
    legs = _legs(trade)
    prices = {leg.option_symbol: LegSettlementPrice(Decimal(underlying), at) for leg in legs
              if not leg.exit_reason and (expiry is None or leg.expiry == expiry)}
    with tenancy.acting_as(trade.owner_id):
        return spread_expiry_settle(trade=_stored(trade.pk), broker=None, prices=prices, **WHO)


def _stored(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _legs(trade):
    with tenancy.system_context():
        return list(TradeLeg.objects.filter(trade_id=trade.pk).order_by("position"))


def _exits(trade):
    return [(leg.exit_reason, leg.exit_price) for leg in _legs(trade)]


def _closed(trade):
    trade = _stored(trade.pk)
    assert (trade.status, trade.close_reason) == (TradeStatus.CLOSED, CloseReason.EXPIRED)
    return trade.close_price, trade.realized_pnl


D = Decimal


def test_the_settlement_table_names_every_index_root_am_or_pm_and_equities_settle_in_shares():
    assert {settlement_style(root) for root in ("SPX", "NDX", "RUT", "VIX", "DJX")} == {AM}
    assert settlement_style("SPXW") == settlement_style("NDXP") == settlement_style("RUTW") == PM
    assert settlement_style("XSP") == settlement_style("OEX") == settlement_style("XEO") == PM
    assert all(cash_settled(root) for root in CASH_SETTLED_ROOTS) and not cash_settled("SPY")
    assert settlement_style("AAPL") == PM and not cash_settled("AAPL")
    # The reasons are the model's.
    cases = (("SPY", True, 90), ("SPY", True, 101), ("SPY", False, 101), ("SPX", False, 101))
    assert [leg_settlement(root=root, option_type="CALL", strike=D(100), is_long=is_long, underlying=D(price)).reason
            for root, is_long, price in cases] == [LegExit.EXPIRED, LegExit.EXERCISED, LegExit.ASSIGNED,
                                                  LegExit.CASH_SETTLED]
    # Less than a cent in the money is not exercised.
    assert leg_settlement(root="SPY", option_type="CALL", strike=D(100), is_long=False,
                          underlying=D("100.004")).reason == LegExit.EXPIRED


def test_an_am_root_settles_at_the_open_of_its_expiry_session_and_a_pm_root_at_the_cutoff():
    from monitoring import clock as market_clock

    cutoff = market_clock.expiry_cutoff(EXPIRY)
    assert settles_at("SPXW", cutoff, market_clock.next_open) == cutoff
    assert settles_at("SPX", cutoff, market_clock.next_open) == datetime(2026, 12, 18, 14, 30, tzinfo=UTC)
    early = market_clock.expiry_cutoff(date(2026, 11, 27))  # the day after Thanksgiving: 13:00
    assert settles_at("SPX", early, market_clock.next_open) == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


# --- Verticals: 570/575 calls bought at 4.30 and sold at 2.50, a 1.80 debit, 2 units ------------

@pytest.mark.parametrize(("underlying", "exits", "close", "pnl"), [
    # Above both strikes: the long is exercised at 10.00, the short assigned at 5.00: worth the width.
    ("580", [(LegExit.EXERCISED, D("10.00")), (LegExit.ASSIGNED, D("5.00"))], D("5.00"), D("640.00")),
    # Below both: worthless, the debit lost: −1.80 × 2 × 100.
    ("565", [(LegExit.EXPIRED, D("0.00")), (LegExit.EXPIRED, D("0.00"))], D("0.00"), D("-360.00")),
    # Straddling the short strike from below: (2.50 − 1.80) × 200.
    ("572.50", [(LegExit.EXERCISED, D("2.50")), (LegExit.EXPIRED, D("0.00"))], D("2.50"), D("140.00")),
    # On the short strike: the short expires, the long is worth the width.
    ("575", [(LegExit.EXERCISED, D("5.00")), (LegExit.EXPIRED, D("0.00"))], D("5.00"), D("640.00")),
])
def test_a_debit_call_vertical_settles_leg_by_leg(trader, underlying, exits, close, pnl):
    trade = expiry_spread_trade(trader, [("LONG", spy("CALL", 570), 1, "4.30"), ("SHORT", spy("CALL", 575), 1, "2.50")],
                                qty=2)
    assert trade.entry_price == D("1.80") and trade.net_direction == "debit"
    assert _settle(trade, underlying) == CloseReason.EXPIRED
    assert _exits(trade) == exits
    assert _closed(trade) == (close, pnl)
    stored = _stored(trade.pk)
    assert stored.close_date == CUTOFF and stored.exit_commission == 0  # a settlement is no order
    with tenancy.acting_as(trader.pk):
        event = TradeEvent.objects.get(trade_id=trade.pk, new_status=TradeStatus.CLOSED)
    assert event.payload["source"] == "EXPIRY" and [row["reason"] for row in event.payload["legs"]] == [
        reason for reason, _ in exits]


@pytest.mark.parametrize(("underlying", "exits", "close", "pnl"), [
    ("570", [(LegExit.EXPIRED, D("0.00")), (LegExit.EXPIRED, D("0.00"))], D("0.00"), D("90.00")),  # kept the credit
    # Below both: the short 560 put assigned at 10.00, the long 555 exercised at 5.00: −(5.00 − 0.90) × 100.
    ("550", [(LegExit.ASSIGNED, D("10.00")), (LegExit.EXERCISED, D("5.00"))], D("5.00"), D("-410.00")),
    # Between: the short assigned at 2.00, the long worthless: −(2.00 − 0.90) × 100.
    ("558", [(LegExit.ASSIGNED, D("2.00")), (LegExit.EXPIRED, D("0.00"))], D("2.00"), D("-110.00")),
])
def test_a_credit_put_vertical_keeps_its_credit_out_of_the_money_and_pays_the_width_in_it(
        trader, underlying, exits, close, pnl):
    trade = expiry_spread_trade(trader, [("SHORT", spy("PUT", 560), 1, "3.00"), ("LONG", spy("PUT", 555), 1, "2.10")])
    assert (trade.entry_price, trade.net_direction) == (D("0.90"), "credit")
    _settle(trade, underlying)
    assert _exits(trade) == exits and _closed(trade) == (close, pnl)


def test_a_short_straddle_pays_what_the_assigned_side_is_worth(trader):
    # Sold the 570 call at 4.10 and the put at 4.40: 8.50 credit. At 575 the call is assigned at 5.00.
    trade = expiry_spread_trade(trader, [("SHORT", spy("CALL", 570), 1, "4.10"), ("SHORT", spy("PUT", 570), 1, "4.40")],
                                strategy_type="straddle")
    _settle(trade, "575")
    assert _exits(trade) == [(LegExit.ASSIGNED, D("5.00")), (LegExit.EXPIRED, D("0.00"))]
    assert _closed(trade) == (D("5.00"), D("350.00"))


def test_a_long_strangle_is_worth_its_exercised_side(trader):
    # Bought the 575 call at 2.60 and the 560 put at 3.20: 5.80 debit. At 550 the put is worth 10.00.
    trade = expiry_spread_trade(trader, [("LONG", spy("CALL", 575), 1, "2.60"), ("LONG", spy("PUT", 560), 1, "3.20")],
                                strategy_type="strangle")
    _settle(trade, "550")
    assert _exits(trade) == [(LegExit.EXPIRED, D("0.00")), (LegExit.EXERCISED, D("10.00"))]
    assert _closed(trade) == (D("10.00"), D("420.00"))


@pytest.mark.parametrize(("underlying", "close", "pnl", "reasons"), [
    ("565", D("0.00"), D("170.00"), ["EXPIRED"] * 4),  # between the short strikes: the whole credit kept
    ("577", D("2.00"), D("-30.00"), ["EXPIRED", "EXPIRED", "ASSIGNED", "EXPIRED"]),  # inside the call wing
    ("590", D("5.00"), D("-330.00"), ["EXPIRED", "EXPIRED", "ASSIGNED", "EXERCISED"]),  # beyond it: the width
    ("540", D("5.00"), D("-330.00"), ["EXERCISED", "ASSIGNED", "EXPIRED", "EXPIRED"]),  # beyond the put wing
])
def test_an_iron_condor_between_inside_and_outside_its_wings(trader, underlying, close, pnl, reasons):
    # 550/555 puts, 575/580 calls: 1.30 − 2.00 − 2.50 + 1.50 = −1.70, a 1.70 credit.
    trade = expiry_spread_trade(trader, [
        ("LONG", spy("PUT", 550), 1, "1.30"), ("SHORT", spy("PUT", 555), 1, "2.00"),
        ("SHORT", spy("CALL", 575), 1, "2.50"), ("LONG", spy("CALL", 580), 1, "1.50")], strategy_type="iron_condor")
    assert trade.entry_price == D("1.70")
    _settle(trade, underlying)
    assert [reason for reason, _ in _exits(trade)] == reasons
    assert _closed(trade) == (close, pnl)


def test_a_butterfly_at_its_body_is_worth_its_wing(trader):
    # 565/570×2/575 calls: 6.20 − 2 × 4.10 + 2.60 = 0.60 debit. At 570 only the 565 is worth anything: 5.00.
    trade = expiry_spread_trade(trader, [
        ("LONG", spy("CALL", 565), 1, "6.20"), ("SHORT", spy("CALL", 570), 2, "4.10"),
        ("LONG", spy("CALL", 575), 1, "2.60")], strategy_type="butterfly")
    _settle(trade, "570")
    assert _exits(trade) == [(LegExit.EXERCISED, D("5.00")), (LegExit.EXPIRED, D("0.00")), (LegExit.EXPIRED, D("0.00"))]
    assert _closed(trade) == (D("5.00"), D("440.00"))


def test_a_calendar_keeps_its_back_month_open_after_the_front_settles(trader):
    # Sold the Dec 570 call at 4.10, bought the Jan 570 call at 7.30: 3.20 debit.
    trade = expiry_spread_trade(trader, [("SHORT", spy("CALL", 570), 1, "4.10"),
                                         ("LONG", spy("CALL", 570, BACK), 1, "7.30")], strategy_type="calendar")
    assert _settle(trade, "575", expiry=EXPIRY) == "SETTLED"
    front = _stored(trade.pk)
    assert front.status == TradeStatus.OPEN and not front.close_reason and front.realized_pnl is None
    assert _exits(trade) == [(LegExit.ASSIGNED, D("5.00")), ("", None)]
    assert _settle(trade, "575", expiry=EXPIRY) is None  # nothing more is due: the front is settled once
    # Held, the back month marked at 6.00: the settled front counts at its exit, −5.00 + 6.00.
    with tenancy.system_context():
        TradeLeg.objects.filter(trade_id=trade.pk, expiry=BACK).update(
            bid=D("5.90"), ask=D("6.10"), mark=D("6.00"), marked_at=CUTOFF)
        held = PaperTrade.objects.prefetch_related("legs").get(pk=trade.pk)
        assert selectors.net_mark(selectors.trade_legs(held), selectors.leg_quotes(held)) == D("1.00")
    # The back month expires worthless in January: −(5.00 − 4.10) × 100 + (0 − 7.30) × 100 = −820.
    assert _settle(trade, "560", at=BACK_CUTOFF, expiry=BACK) == CloseReason.EXPIRED
    assert _exits(trade) == [(LegExit.ASSIGNED, D("5.00")), (LegExit.EXPIRED, D("0.00"))]
    # Its held net is −5.00 (ending it cost money), kept: (−5.00 − 3.20) × 100 is the P&L.
    assert _closed(trade) == (D("-5.00"), D("-820.00"))
    assert _stored(trade.pk).close_date == BACK_CUTOFF


def test_spx_am_and_spxw_pm_verticals_settle_in_cash(trader):
    spx = expiry_spread_trade(trader, [("LONG", build_symbol("SPX", EXPIRY, "CALL", D(6000)), 1, "40.00"),
                                       ("SHORT", build_symbol("SPX", EXPIRY, "CALL", D(6050)), 1, "20.00")])
    spxw = expiry_spread_trade(trader, [("SHORT", build_symbol("SPXW", EXPIRY, "PUT", D(6000)), 1, "30.00"),
                                        ("LONG", build_symbol("SPXW", EXPIRY, "PUT", D(5950)), 1, "18.50")])
    assert spx.ticker == spxw.ticker == "SPX"
    opening = datetime(2026, 12, 18, 14, 30, tzinfo=UTC)
    _settle(spx, "6030.25", at=opening)  # the opening price: (30.25 − 20.00) × 100
    _settle(spxw, "5980", at=CUTOFF)  # the close: the short put settles in cash at 20.00: −(20.00 − 11.50) × 100
    assert _exits(spx) == [(LegExit.CASH_SETTLED, D("30.25")), (LegExit.EXPIRED, D("0.00"))]
    assert _closed(spx) == (D("30.25"), D("1025.00")) and _stored(spx.pk).close_date == opening
    assert _exits(spxw) == [(LegExit.CASH_SETTLED, D("20.00")), (LegExit.EXPIRED, D("0.00"))]
    assert _closed(spxw) == (D("20.00"), D("-850.00"))


def test_settling_again_changes_nothing(trader):
    trade = expiry_spread_trade(trader, [("LONG", spy("CALL", 570), 1, "4.30"), ("SHORT", spy("CALL", 575), 1, "2.50")])
    _settle(trade, "580")
    version = _stored(trade.pk).version
    assert _settle(trade, "590") is None
    assert _stored(trade.pk).version == version and _exits(trade)[0] == (LegExit.EXERCISED, D("10.00"))


# --- The property: the P&L at expiry is the sum over legs, whatever the legs and the price ---------

STRIKES = [D(555), D(560), D(565), D(570), D(575), D(580)]
leg_strategy = st.tuples(st.sampled_from(["LONG", "SHORT"]), st.sampled_from(["CALL", "PUT"]),
                         st.sampled_from(STRIKES), st.integers(1, 3),
                         st.decimals(min_value=D("0.05"), max_value=D("15"), places=2))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(legs=st.lists(leg_strategy, min_size=2, max_size=4, unique_by=lambda leg: (leg[1], leg[2])),
       underlying=st.decimals(min_value=D("540"), max_value=D("595"), places=3), units=st.integers(1, 5))
def test_property_realized_pnl_at_expiry_is_the_sum_over_legs(db, legs, underlying, units):
    owner = UserFactory()
    trade = expiry_spread_trade(owner, [(side, spy(kind, strike), ratio, str(price))
                                        for side, kind, strike, ratio, price in legs], qty=units)
    _settle(trade, str(underlying))
    expected = sum(((1 if side == "LONG" else -1) * ratio
                    * (exercise_value(kind, strike, underlying).quantize(D("0.01")) - price) * units * 100
                    for side, kind, strike, ratio, price in legs), D(0))
    assert _closed(trade)[1] == expected


class ClosingOrderBroker:
    """A broker whose answer to cancelling the trade's closing order the test chooses."""

    def __init__(self, status):
        self.status, self.cancelled = status, []

    def cancel_order(self, order_id):
        from brokers.base import Order

        self.cancelled.append(order_id)
        return Order(id=order_id, status=self.status, order_class="multileg")


@pytest.mark.parametrize(("status", "settles"), [("canceled", True), ("filled", False), ("open", False)])
def test_a_closing_order_working_at_the_cutoff_ends_first_and_its_fill_wins(trader, status, settles):
    from brokers.base import OrderStatus

    trade = expiry_spread_trade(trader, [("LONG", spy("CALL", 570), 1, "4.30"), ("SHORT", spy("CALL", 575), 1, "2.50")],
                                status=TradeStatus.CLOSING, close_order_id="55")
    broker = ClosingOrderBroker(OrderStatus(status))
    prices = {leg.option_symbol: LegSettlementPrice(D("580"), CUTOFF) for leg in _legs(trade)}
    with tenancy.acting_as(trader.pk):
        reason = spread_expiry_settle(trade=_stored(trade.pk), broker=broker, prices=prices, **WHO)
    assert broker.cancelled == ["55"]
    if settles:
        assert reason == CloseReason.EXPIRED and _stored(trade.pk).close_order_id == ""
        assert _closed(trade) == (D("5.00"), D("320.00"))
    else:  # a fill is the outcome (the order sync records it), an unfinished cancel is asked again
        assert reason is None and _stored(trade.pk).status == TradeStatus.CLOSING
        assert all(not leg.exit_reason for leg in _legs(trade))
