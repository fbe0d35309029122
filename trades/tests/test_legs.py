"""A trade has legs (issue 19): a single option is the one-leg case, written at open with the trade
and kept in step with its fills; the net mark and liquidation value come from the legs' quotes,
and the position's max profit, max loss, breakevens and width from trades/spreads.py."""

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
import time_machine

from brokers.market import OutsideCalendar
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades import selectors, services
from trades.models import LegSide, NetDirection, OptionType, PaperTrade, StrategyType, TradeLeg, TradeStatus
from trades.selectors import LegQuote
from trades.services import TradeMark, marks_record
from trades.spreads import MODEL_RATE, NEW_YORK, OptionModel, close_in_new_york, spread_risk

from .conftest import CONTRACT, EXPIRY

AT = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
SHORT_CONTRACT = "SPY261218C00575000"


def _legs(trade) -> list[tuple]:
    with tenancy.acting_as(trade.owner_id):
        return list(TradeLeg.objects.filter(trade_id=trade.pk).order_by("position").values_list(
            "owner_id", "position", "option_symbol", "option_type", "strike", "expiry", "side", "ratio",
            "entry_price", "exit_price"))


def _trade(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def test_an_opened_trade_has_its_one_leg_and_the_leg_follows_its_entry_and_exit_fills(
        api_as, trader, market, open_body):
    client = api_as(trader)
    opened = client.post("/api/trades", open_body(), format="json").json()
    assert (opened["status"], opened["entry_price"]) == ("OPEN", "4.3000")
    assert (opened["strategy_type"], opened["net_direction"]) == ("single", "debit")
    assert opened["legs"] == [{"symbol": CONTRACT, "side": "LONG", "ratio": 1, "strike": "570.000",
                               "expiry": EXPIRY.isoformat(), "right": "CALL", "entry_price": "4.3000",
                               "exit_price": None,  # a single's quote is its row's (current_bid, ...)
                               "bid": None, "ask": None, "mark": None, "iv": None, "marked_at": None,
                               "exit_reason": ""}]
    assert _legs(_trade(opened["id"])) == [(trader.pk, 0, CONTRACT, "CALL", Decimal("570.000"), EXPIRY, "LONG", 1,
                                            Decimal("4.3000"), None)]
    market.set_quote(CONTRACT, "5.00", "5.20")
    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json").json()
    assert closed["status"] == "CLOSED" and closed["legs"][0]["exit_price"] == closed["close_price"] == "5.0000"


def test_a_pending_entry_has_its_leg_before_the_fill_and_the_fill_reaches_it(api_as, trader, market, open_body):
    body = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.00"), format="json").json()
    assert body["status"] == "PENDING" and body["legs"][0]["entry_price"] is None
    trade = _trade(body["id"])
    from brokers.base import Fill, Order, OrderStatus
    fill = Order(id="77", status=OrderStatus.FILLED, order_class="option", filled_quantity=2,
                 fill=Fill(quantity=2, price=Decimal("3.95"), at=AT))
    with tenancy.acting_as(trader.pk):
        services.trade_entry_update(trade_id=trade.pk, entry=fill, actor_label="sync")
    assert [leg[8] for leg in _legs(trade)] == [Decimal("3.95")]


def test_the_leg_is_written_in_the_opening_transaction_or_not_at_all(api_as, trader, market, open_body,
                                                                      monkeypatch):
    """A failure writing the leg leaves no trade behind either: never a trade without legs."""
    from trades.services import opening

    def broken(*, trade):
        raise RuntimeError("the leg could not be written")

    monkeypatch.setattr(opening, "single_leg_write", broken)
    with pytest.raises(RuntimeError):
        api_as(trader).post("/api/trades", open_body(), format="json")
    with tenancy.acting_as(trader.pk):
        assert not PaperTrade.objects.exists() and not TradeLeg.objects.exists()


def test_a_single_options_net_mark_and_liquidation_value_are_its_mark_and_bid_on_the_monitors_path(trader):
    trade = PaperTradeFactory(owner=trader, qty=3, entry_price=Decimal("4.20"))
    with tenancy.system_context():
        marks_record(marks=[TradeMark(trade_id=trade.pk, mark=Decimal("4.65"), bid=Decimal("4.55"),
                                      ask=Decimal("4.75"), unrealized_pnl=Decimal("135"))], at=AT)
    with tenancy.acting_as(trader.pk):
        trade = selectors.trades_with_legs(PaperTrade.objects.filter(pk=trade.pk)).get()
    legs, quotes = selectors.trade_legs(trade), selectors.leg_quotes(trade)
    assert selectors.net_mark(legs, quotes) == trade.current_price == Decimal("4.65")
    assert selectors.liquidation_value(legs, quotes) == trade.current_bid == Decimal("4.55")
    assert selectors.position_dollars(trade, Decimal("4.55")) == Decimal("1365.00")  # 3 contracts × 100
    assert (trade.current_price - trade.entry_price) * 3 * 100 == trade.unrealized_pnl  # the same mark


@pytest.mark.parametrize("fields", [{"current_price": None, "current_bid": None},  # no mark yet
                                    {"status": TradeStatus.CLOSED, "close_price": Decimal("5"), "close_date": AT,
                                     "close_reason": "MANUAL_CLOSE", "current_price": Decimal("5"),
                                     "current_bid": Decimal("4.9")}])  # nothing held any more
def test_no_mark_yet_or_no_position_reads_unknown(trader, fields):
    trade = PaperTradeFactory(owner=trader, **fields)
    with tenancy.acting_as(trader.pk):
        legs, quotes = selectors.trade_legs(trade), selectors.leg_quotes(trade)
    assert selectors.net_mark(legs, quotes) is None and selectors.liquidation_value(legs, quotes) is None


def _vertical(owner, **fields) -> PaperTrade:
    """A 570/575 call debit spread, 2 units: bought at 4.30, sold at 2.10 (net debit 2.20)."""
    fields = {"entry_price": Decimal("2.20"), **fields}
    trade = PaperTradeFactory(owner=owner, legs=False, strategy_type=StrategyType.VERTICAL, expiry=EXPIRY,
                              net_direction=NetDirection.DEBIT, qty=2, **fields)
    with tenancy.acting_as(owner.pk):
        for position, (symbol, strike, side, price) in enumerate(
                [(CONTRACT, "570", LegSide.LONG, "4.30"), (SHORT_CONTRACT, "575", LegSide.SHORT, "2.10")]):
            TradeLeg.objects.create(owner=owner, trade=trade, position=position, option_symbol=symbol,
                                    option_type=OptionType.CALL, strike=Decimal(strike), expiry=EXPIRY, side=side,
                                    entry_price=Decimal(price))
    return trade


def test_a_spreads_net_mark_nets_its_legs_and_liquidation_takes_each_at_its_natural_side(trader):
    trade = _vertical(trader)
    with tenancy.acting_as(trader.pk):
        legs = selectors.trade_legs(trade)
    quotes = {CONTRACT: LegQuote(bid=Decimal("4.80"), ask=Decimal("5.00"), mark=Decimal("4.90")),
              SHORT_CONTRACT: LegQuote(bid=Decimal("2.30"), ask=Decimal("2.50"), mark=Decimal("2.40"))}
    assert selectors.net_mark(legs, quotes) == Decimal("2.50")  # 4.90 − 2.40
    assert selectors.liquidation_value(legs, quotes) == Decimal("2.30")  # sell at 4.80, buy back at 2.50
    del quotes[SHORT_CONTRACT]
    assert selectors.net_mark(legs, quotes) is None  # a leg without a quote: no net


def test_a_ratio_counts_each_contract_of_the_leg(trader):
    leg = TradeLeg(option_symbol=SHORT_CONTRACT, side=LegSide.SHORT, ratio=2)
    quotes = {SHORT_CONTRACT: LegQuote(bid=Decimal("1.00"), ask=Decimal("1.10"), mark=Decimal("1.05"))}
    assert selectors.net_mark([leg], quotes) == Decimal("-2.10")
    assert selectors.liquidation_value([leg], quotes) == Decimal("-2.20")


def test_the_api_shows_a_spreads_legs_and_its_risk(api_as, trader, market):
    trade = _vertical(trader)
    body = api_as(trader).get(f"/api/trades/{trade.pk}").json()
    assert body["strategy_type"] == "vertical" and [leg["side"] for leg in body["legs"]] == ["LONG", "SHORT"]
    assert [leg["symbol"] for leg in body["legs"]] == [CONTRACT, SHORT_CONTRACT]
    # (5 − 2.20) × 2 × 100 and 2.20 × 2 × 100; breakeven at 570 + 2.20
    assert (body["max_profit"], body["max_loss"], body["breakevens"], body["width"]) == (
        "560.00", "440.00", ["572.2000"], "5.000")
    assert body["net_mark"] is None and body["liquidation_value"] is None  # spread legs are not marked yet


def test_a_single_options_risk_in_the_positions_list(api_as, trader, market):
    PaperTradeFactory(owner=trader, qty=2, entry_price=Decimal("4.30"), current_price=Decimal("4.50"),
                      current_bid=Decimal("4.40"), current_ask=Decimal("4.60"))
    (row,) = api_as(trader).get("/api/trades?status=OPEN").json()["results"]
    assert (row["net_mark"], row["liquidation_value"], row["liquidation_value_dollars"]) == (
        "4.5000", "4.4000", "880.00")
    assert (row["max_profit"], row["max_loss"], row["breakevens"], row["width"]) == (
        None, "860.00", ["574.3000"], "0.000")  # unlimited upside, the premium at risk


def test_a_calendars_risk_is_modelled_once_its_legs_have_ivs(trader):
    """A calendar's figures are a model of the back month at the front expiry: none before the
    monitor wrote the legs' IVs, then max loss = the debit and a max profit above 0."""
    trade = PaperTradeFactory(owner=trader, legs=False, strategy_type=StrategyType.CALENDAR, expiry=EXPIRY, qty=2)
    with tenancy.acting_as(trader.pk):
        for position, (expiry, side, entry) in enumerate([(EXPIRY, LegSide.SHORT, "3.00"),
                                                           (date(2027, 1, 15), LegSide.LONG, "5.40")]):
            TradeLeg.objects.create(owner=trader, trade=trade, position=position, option_type=OptionType.CALL,
                                    option_symbol=f"SPY{expiry:%y%m%d}C00570000", strike=Decimal("570"),
                                    expiry=expiry, side=side, entry_price=Decimal(entry))
        assert selectors.position_risk(trade) is None  # never marked: no IVs to model the back month with
        assert selectors.position_width(selectors.trade_legs(trade)) == Decimal(0)
        TradeLeg.objects.filter(trade=trade).update(iv=Decimal("0.20"), marked_at=datetime(2026, 12, 1, 15, tzinfo=UTC))
        risk = selectors.position_risk(PaperTrade.objects.get(pk=trade.pk))
    assert risk.modelled and risk.max_loss == Decimal("480.00")  # the debit, 2.40 × 2 units × 100
    assert risk.max_profit > 0 and len(risk.breakevens) == 2


def _calendar(trader, front: date, back: date, marked_at: datetime) -> PaperTrade:
    """A 570 call calendar, 2 units, short `front` at 3.00 and long `back` at 5.40, marked at 20% IV."""
    trade = PaperTradeFactory(owner=trader, legs=False, strategy_type=StrategyType.CALENDAR, expiry=front, qty=2)
    with tenancy.acting_as(trader.pk):
        for position, (expiry, side, entry) in enumerate([(front, LegSide.SHORT, "3.00"),
                                                           (back, LegSide.LONG, "5.40")]):
            TradeLeg.objects.create(owner=trader, trade=trade, position=position, option_type=OptionType.CALL,
                                    option_symbol=f"SPY{expiry:%y%m%d}C00570000", strike=Decimal("570"),
                                    expiry=expiry, side=side, entry_price=Decimal(entry), iv=Decimal("0.20"),
                                    marked_at=marked_at)
        return PaperTrade.objects.get(pk=trade.pk)


def test_a_calendars_risk_values_the_back_month_at_the_exchange_cutoff_of_an_early_close(trader):
    """The front month expires the day after Thanksgiving, when the exchange closes at 13:00: the
    model values the back month then, three hours earlier than a 16:00 close would."""
    front, back = date(2026, 11, 27), date(2026, 12, 18)
    marked_at = datetime(2026, 11, 24, 15, tzinfo=UTC)
    with time_machine.travel(marked_at, tick=False):
        trade = _calendar(trader, front, back, marked_at)
        with tenancy.acting_as(trader.pk):
            risk = selectors.position_risk(trade)
            position = selectors.position_of(trade)

    def at(hour):
        return OptionModel(as_of=marked_at, rate=MODEL_RATE, cutoff=lambda expiry: datetime.combine(
            front, time(hour), tzinfo=NEW_YORK) if expiry == front else close_in_new_york(expiry))

    assert risk == spread_risk(position, at(13)) != spread_risk(position, at(16))


def test_a_calendar_with_an_expiry_outside_the_market_calendar_has_no_modelled_risk(trader, market, monkeypatch):
    def outside(expiry):
        raise OutsideCalendar(f"{expiry} is outside the market calendar.")

    monkeypatch.setattr(market, "expiry_cutoff", outside)
    trade = _calendar(trader, EXPIRY, date(2027, 1, 15), datetime(2026, 12, 1, 15, tzinfo=UTC))
    with tenancy.acting_as(trader.pk):
        assert selectors.position_of(trade) is not None and selectors.position_risk(trade) is None


def test_a_trade_stored_without_legs_reads_as_its_single_option(trader):
    trade = PaperTradeFactory(owner=trader, legs=False)
    with tenancy.acting_as(trader.pk):
        (leg,) = selectors.trade_legs(trade)
    assert (leg.option_symbol, leg.side, leg.ratio, leg.entry_price, leg.pk) == (
        trade.option_symbol, LegSide.LONG, 1, trade.entry_price, None)


def test_a_spread_not_filled_has_no_risk_figures_yet(trader):
    trade = _vertical(trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    with tenancy.acting_as(trader.pk):
        TradeLeg.objects.filter(trade=trade).update(entry_price=None)
        assert selectors.position_of(trade) is None and selectors.position_risk(trade) is None
