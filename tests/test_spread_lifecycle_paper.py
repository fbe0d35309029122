"""Every template's whole life at the local paper broker, through the real entry points only
(issue 19's last bullet): opened by the trader with POST /api/trades and `legs`; marked by the
monitor's snapshot (`monitoring.services.snapshot_positions`); closed by the monitor's order cycle
(`orders_cycle`: exit policies, the net watch, the paper matching, the sync, expiry) when the held
mark crosses the target or the stop, or held to the expiry and settled on the calendar's close.
The realized P&L is checked against the legs (Σ side × ratio × (exit − entry) × units × 100) and by
hand, and the paper broker's cash and positions reconcile with the trade rows at every step.

The clock is pinned: the market's moment is the monitor's clock and the wall clock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.models import PaperFill, PaperOrder
from monitoring import clock as market_clock
from monitoring.services import match_paper_orders, orders_cycle, snapshot_positions
from tests.factories import UserFactory
from tests.spread_lifecycle import (
    BACK,
    EXPIRY,
    EXPIRY_CLOSE,
    NEXT_MONDAY,
    OPENING,
    LifecycleMarket,
    legs_pnl,
    sym,
)
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, LegExit, PaperTrade, TradeLeg, TradeStatus

D = Decimal
UNITS = 2
C560, C570, C580, C590 = sym("C", 560), sym("C", 570), sym("C", 580), sym("C", 590)
P550, P560, P570 = sym("P", 550), sym("P", 560), sym("P", 570)
C570_JAN = sym("C", 570, BACK)

# The opening books (SPY near 570), and a later hour's, where no template's exit is crossed yet.
OPEN_BOOK = {C560: ("10.00", "10.20"), C570: ("4.10", "4.30"), C580: ("1.50", "1.60"), C590: ("0.40", "0.50"),
             P550: ("1.20", "1.30"), P560: ("3.00", "3.20"), P570: ("3.90", "4.10"), C570_JAN: ("6.00", "6.20")}
MARK_BOOK = {C560: ("11.00", "11.20"), C570: ("4.80", "5.00"), C580: ("1.80", "1.90"), C590: ("0.50", "0.60"),
             P550: ("1.00", "1.10"), P560: ("2.60", "2.80"), P570: ("3.50", "3.70"), C570_JAN: ("6.60", "6.80")}


def long_(symbol, ratio=1):
    return {"option_symbol": symbol, "side": "LONG", "ratio": ratio}


def short(symbol, ratio=1):
    return {"option_symbol": symbol, "side": "SHORT", "ratio": ratio}


# name -> (strategy_type, legs, sl, tp, by hand: (direction, entry at the natural sides, held mid on
# MARK_BOOK, its P&L for 2 units), how it ends, (exit book or SPY's close at expiry), by hand:
# (close reason, held close price, realized P&L for 2 units)).
SCENARIOS = {
    # 4.30 − 1.50 paid; marked 4.90 − 1.85 = 3.05; target 5.00: sold 9.90, bought back 4.90.
    "vertical debit": ("vertical", [long_(C570), short(C580)], "1.40", "5.00",
                       ("debit", "2.80", "3.05", "50"),
                       "target", {C570: ("9.90", "10.10"), C580: ("4.80", "4.90")},
                       (CloseReason.TP_HIT, "5.00", "440.00")),
    # 3.00 − 1.30 received; marked 2.70 − 1.05 = 1.65; stop 3.40: bought 5.20, sold 1.50.
    "vertical credit": ("vertical", [short(P560), long_(P550)], "3.40", "0.85",
                        ("credit", "1.70", "1.65", "10"),
                        "stop", {P560: ("5.00", "5.20"), P550: ("1.50", "1.60")},
                        (CloseReason.SL_HIT, "3.70", "-400.00")),
    # 4.30 + 4.10 paid; marked 4.90 + 3.60; held to expiry: SPY closes at 577, the call exercised at 7.
    "long straddle": ("straddle", [long_(C570), long_(P570)], "5.00", "12.00",
                      ("debit", "8.40", "8.50", "20"),
                      "expiry", "577.00", (CloseReason.EXPIRED, "7.00", "-280.00")),
    # Naked: 3.00 + 1.50 received; marked 2.70 + 1.85; target 2.25: bought back at 1.10 + 1.00.
    "short strangle": ("strangle", [short(P560), short(C580)], "9.00", "2.25",
                       ("credit", "4.50", "4.55", "-10"),
                       "target", {P560: ("1.00", "1.10"), C580: ("0.90", "1.00")},
                       (CloseReason.TP_HIT, "2.10", "480.00")),
    # 3.00 + 1.50 − 1.30 − 0.50 received; marked 2.70 + 1.85 − 1.05 − 0.55; expires worthless at 577.
    "iron condor": ("iron_condor", [long_(P550), short(P560), short(C580), long_(C590)], "5.40", "1.35",
                    ("credit", "2.70", "2.95", "-50"),
                    "expiry", "577.00", (CloseReason.EXPIRED, "0.00", "540.00")),
    # 10.20 − 2 × 4.10 + 1.60 paid; marked 11.10 − 9.80 + 1.85; stop 1.80: sold 5.00 + 0.40, bought 2 × 2.20.
    "butterfly": ("butterfly", [long_(C560), short(C570, 2), long_(C580)], "1.80", "6.00",
                  ("debit", "3.60", "3.15", "-90"),
                  "stop", {C560: ("5.00", "5.20"), C570: ("2.00", "2.20"), C580: ("0.40", "0.50")},
                  (CloseReason.SL_HIT, "1.00", "-520.00")),
    # 6.20 − 4.10 paid; marked 6.70 − 4.90. The front month is assigned at 7.00 at SPY's 577 close; the
    # January call alone is marked next Monday at 10.70 (− 7.00 = 3.70, past the 3.50 target) and sold at
    # 10.60: held close −7.00 + 10.60 = 3.60; legs (−2.90 + 4.40) × 200.
    "calendar": ("calendar", [short(C570), long_(C570_JAN)], "1.00", "3.50",
                 ("debit", "2.10", "1.80", "-60"),
                 "expiry, then target", "577.00", (CloseReason.TP_HIT, "3.60", "300.00")),
}


# What the Portfolio's "Open risk" counts for one unit: the max loss at the entry (a vertical's width
# less its credit; a calendar its debit), a naked strangle's loss at its stop (9.00 − 4.50).
MAX_LOSS = {"vertical debit": "280", "vertical credit": "830", "long straddle": "840", "short strangle": "450",
            "iron condor": "730", "butterfly": "360", "calendar": "210"}


@pytest.fixture
def lifecycle(monkeypatch, settings):
    """One market for the whole life, the monitor's clock and the wall clock pinned to it."""
    from brokers import market as market_registry

    settings.PAPER_COMMISSION_PER_CONTRACT = D("0.65")
    settings.PAPER_SLIPPAGE_PER_SHARE = 0
    settings.PAPER_SPREAD_IMPROVEMENT_PCT = 0
    settings.PAPER_ALLOW_NAKED_SHORTS = True
    market = LifecycleMarket(OPENING)
    market.books(OPEN_BOOK)
    market.set_spot("SPY", "570.00")
    monkeypatch.setattr(market_registry, "_market", market)
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    with time_machine.travel(OPENING, tick=False) as traveller:
        market.traveller = traveller
        yield market


def at(market, moment):
    market.moment = moment
    market.traveller.move_to(moment)


def roomy(user, *, naked=False, client=None):
    account = services.account_settings_for(user=user)
    account.account_balance, account.heat_limit_pct, account.max_positions = D("200000"), D("100"), 100
    account.commission_per_contract = D("0.65")  # the rate the estimate uses, the ledger's
    with tenancy.acting_as(user.pk):
        account.save()
    if naked:
        switched = client.put("/api/settings", {"allow_naked_short_options": True, "confirmation": "NAKED SHORTS"},
                              format="json")
        assert switched.status_code == 200, switched.json()


def trade_of(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def legs_of(pk) -> list[TradeLeg]:
    with tenancy.system_context():
        return list(TradeLeg.objects.filter(trade_id=pk).order_by("position"))


def cycle(market):
    """What beat runs each minute of the session: the snapshot (marks), then the order cycle."""
    snapshot_positions(provider=market.tape, at=market.moment)
    return orders_cycle(provider=market.tape, market=market, at=market.moment)


def ledger(user, market):
    with tenancy.acting_as(user.pk):
        broker = services.broker_of(services.account_settings_for(user=user), market=market)
        cash = broker.get_account_balance().total_cash
        held = {position.symbol: position.quantity for position in broker.get_positions()}
        commissions = sum((fill.commission for fill in PaperFill.objects.all()), D(0))
    return cash, held, commissions


def reconciles(user, market, trade_id, cash_before):
    """The paper ledger is what the trade's rows say: cash moved by every leg's entry and (closed or
    settled) exit, less the commissions the trade records; the positions are the legs still held."""
    trade, legs = trade_of(trade_id), legs_of(trade_id)
    cash, held, commissions = ledger(user, market)
    flows = sum((leg.sign * leg.ratio * trade.qty * 100 * ((leg.exit_price if leg.exit_reason else 0) - leg.entry_price)
                 for leg in legs), D(0))
    assert commissions == trade.entry_commission + trade.exit_commission
    assert cash == cash_before + flows - commissions
    assert held == {leg.option_symbol: leg.sign * leg.ratio * trade.qty for leg in legs if not leg.exit_reason}


def opened(api_as, user, market, strategy_type, legs, sl, tp):
    client = api_as(user)
    response = client.post("/api/trades", {"ticker": "SPY", "qty": UNITS, "entry_type": "market", "legs": legs,
                                           "strategy": "spreads", "strategy_type": strategy_type, "sl_price": sl,
                                           "tp_price": tp}, format="json")
    assert response.status_code == 201, response.json()["errors"][0]["detail"]
    return response.json()


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_template_lives_open_marked_exited_at_the_paper_broker(api_as, trader, lifecycle, name):
    market = lifecycle
    strategy_type, legs, sl, tp, (direction, entry, mid, pnl), ends, exit_at, (reason, close, realized) = (
        SCENARIOS[name])
    roomy(trader, naked=strategy_type == "strangle", client=api_as(trader))
    cash_before, _, _ = ledger(trader, market)

    # Open: one multileg order at the natural sides, every leg's own fill on its row.
    body = opened(api_as, trader, market, strategy_type, legs, sl, tp)
    assert (body["status"], body["net_direction"], D(body["entry_price"])) == ("OPEN", direction, D(entry))
    trade_id = body["id"]
    summary = api_as(trader).get("/api/account/summary").json()
    assert D(summary["open_risk"]) == D(MAX_LOSS[name]) * UNITS
    assert D(summary["premium_committed"]) == (D(entry) * UNITS * 100 if direction == "debit" else 0)
    for leg, asked in zip(legs_of(trade_id), legs, strict=True):
        bid, ask = OPEN_BOOK[asked["option_symbol"]]
        assert leg.entry_price == D(ask if asked["side"] == "LONG" else bid)
    reconciles(trader, market, trade_id, cash_before)

    # Marked: an hour later the held mid, its P&L and the legs' quotes; nothing crossed, nothing sent.
    at(market, OPENING + timedelta(hours=1))
    market.books(MARK_BOOK)
    report = cycle(market)
    trade = trade_of(trade_id)
    assert (trade.status, trade.current_price, trade.unrealized_pnl) == (TradeStatus.OPEN, D(mid), D(pnl))
    assert report.net_exits.watched == 1 and report.net_exits.closes_asked == 0
    assert [leg.mark for leg in legs_of(trade_id)] == [
        (D(MARK_BOOK[leg.option_symbol][0]) + D(MARK_BOOK[leg.option_symbol][1])) / 2 for leg in legs_of(trade_id)]
    # The net P&L counts the exit's commission on every contract of every leg, as the entry's.
    contracts = UNITS * sum(leg["ratio"] for leg in legs)
    with tenancy.acting_as(trader.pk):
        assert trade.exit_commission_estimate == trade.entry_commission == D("0.65") * contracts
        assert trade.unrealized_pnl_net == D(pnl) - 2 * D("0.65") * contracts

    if ends in ("target", "stop"):
        at(market, OPENING + timedelta(hours=2))
        market.books(exit_at)
        report = cycle(market)
        assert report.net_exits.closes_asked == 1
    else:
        at(market, EXPIRY_CLOSE - timedelta(minutes=30))
        assert cycle(market).expiry.settled == {}  # not before the close
        market.tape.close("SPY", EXPIRY, exit_at)
        at(market, EXPIRY_CLOSE + timedelta(minutes=1))
        market.delist(*[symbol for symbol in OPEN_BOOK if symbol != C570_JAN])
        report = cycle(market)
        assert sum(report.expiry.settled.values()) == 1
        if ends == "expiry, then target":
            front, back = legs_of(trade_id)
            assert (front.exit_reason, front.exit_price, back.exit_reason) == (LegExit.ASSIGNED, D("7.00"), "")
            assert trade_of(trade_id).status == TradeStatus.OPEN
            reconciles(trader, market, trade_id, cash_before)
            # Next Monday only the January call is held, quoted and marked; the front counts at its 7.00.
            at(market, NEXT_MONDAY)
            market.books({C570_JAN: ("10.60", "10.80")})
            report = cycle(market)
            assert market.tape.requests[-1] == [C570_JAN]
            assert report.net_exits.closes_asked == 1

    trade = trade_of(trade_id)
    legs_now = legs_of(trade_id)
    assert trade.status == TradeStatus.CLOSED
    assert (trade.close_reason, trade.close_price, trade.realized_pnl) == (reason, D(close), D(realized))
    assert trade.realized_pnl == legs_pnl(legs_now, UNITS)
    assert all(leg.exit_reason for leg in legs_now)
    reconciles(trader, market, trade_id, cash_before)
    assert ledger(trader, market)[1] == {}  # nothing left at the broker


PRICES = st.decimals(min_value=D("0.05"), max_value=D("15"), places=2)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books=st.lists(st.tuples(PRICES, PRICES), min_size=8, max_size=8), units=st.integers(1, 3),
       ratio=st.sampled_from([1, 2]))
def test_realized_pnl_is_the_sum_of_the_legs_for_any_fills(db, api_as, lifecycle, books, units, ratio):
    """Any iron condor or (ratio 2) butterfly's books at the open and at a manual close: the realized
    P&L is Σ legs side × ratio × (exit − entry) × units × 100 at the books' natural sides."""
    market = lifecycle
    at(market, OPENING)
    user = UserFactory()
    roomy(user)
    if ratio == 2:
        legs = [long_(C560), short(C570, 2), long_(C580)]
    else:
        legs = [long_(P550), short(P560), short(C580), long_(C590)]
    symbols = [leg["option_symbol"] for leg in legs]
    opening = {symbol: (bid, bid + spread) for symbol, (bid, spread) in zip(symbols, books[:4], strict=False)}
    closing = {symbol: (bid, bid + spread) for symbol, (bid, spread) in zip(symbols, books[4:], strict=False)}
    market.books({symbol: (str(bid), str(ask)) for symbol, (bid, ask) in opening.items()})
    natural = sum(((ask if leg["side"] == "LONG" else -bid) * leg["ratio"]
                   for leg, (bid, ask) in zip(legs, opening.values(), strict=True)), D(0))
    if abs(natural) <= D("0.01"):
        return
    client = api_as(user)
    far = str(abs(natural) + 100)  # exits the books never reach: the close is the trader's
    exits = {"sl_price": "0.01", "tp_price": far} if natural > 0 else {"sl_price": far, "tp_price": "0.01"}
    response = client.post("/api/trades", {"ticker": "SPY", "qty": units, "entry_type": "market", "legs": legs,
                                           "strategy": "spreads", **exits,
                                           "net_direction": "debit" if natural > 0 else "credit"}, format="json")
    assert response.status_code == 201, response.json()
    trade_id = response.json()["id"]
    assert response.json()["status"] == "OPEN"
    at(market, OPENING + timedelta(minutes=30))
    market.books({symbol: (str(bid), str(ask)) for symbol, (bid, ask) in closing.items()})
    snapshot_positions(provider=market.tape, at=market.moment)
    closed = client.post(f"/api/trades/{trade_id}/close", {"version": trade_of(trade_id).version}, format="json")
    assert closed.status_code in (200, 202), closed.json()
    trade = trade_of(trade_id)
    assert trade.status == TradeStatus.CLOSED, trade.attention_reason
    by_hand = sum((leg["ratio"] * ((bid - opening[leg["option_symbol"]][1]) if leg["side"] == "LONG"
                                   else (opening[leg["option_symbol"]][0] - ask)) * units * 100
                   for leg, (bid, ask) in zip(legs, closing.values(), strict=True)), D(0))
    assert trade.realized_pnl == legs_pnl(legs_of(trade_id), units) == by_hand


def test_a_spread_opened_with_a_scale_out_is_refused_on_its_exit_policy(api_as, trader, lifecycle):
    """A spread closes whole: the opening checks the exit policy with the multi-leg rules (as setting
    it later does), so nothing is stored that the monitor would then refuse to run."""
    roomy(trader)
    response = api_as(trader).post("/api/trades", {
        "ticker": "SPY", "qty": UNITS, "entry_type": "market", "legs": [long_(C570), short(C580)],
        "strategy": "spreads", "sl_price": "1.40", "tp_price": "5.00",
        "exit_policy": {"scale_out_at_pct": "50", "scale_out_pct": "50"}}, format="json")
    assert response.status_code == 400, response.json()
    (error,) = response.json()["errors"]
    assert error["attr"] == "exit_policy" and "A spread closes whole" in error["detail"]
    with tenancy.acting_as(trader.pk):
        assert not PaperTrade.objects.exists()


def test_an_am_settled_index_spread_is_not_quoted_after_its_last_trading_day(trader, lifecycle):
    """A standard monthly SPX stops trading the session before its expiry (it settles at the expiry
    day's opening): on the expiry morning its legs are not asked for, and the net is not written
    from yesterday's quotes; a PM-settled SPXW leg is still quoted."""
    from tests.factories import marks_spread_trade

    spx, spx_short = "SPX261218C06000000", "SPX261218C06050000"
    weekly_long, weekly_short = "SPXW261218C06000000", "SPXW261218C06050000"
    am = marks_spread_trade(trader, [(spx, "LONG", 1, "40.00"), (spx_short, "SHORT", 1, "20.00")],
                            strategy_type="vertical", qty=1)
    pm = marks_spread_trade(trader, [(weekly_long, "LONG", 1, "40.00"), (weekly_short, "SHORT", 1, "20.00")],
                            strategy_type="vertical", qty=1)
    market = lifecycle
    market.books({spx: ("44.00", "46.00"), spx_short: ("21.00", "23.00"), weekly_long: ("44.00", "46.00"),
                  weekly_short: ("21.00", "23.00")})
    at(market, EXPIRY_CLOSE - timedelta(days=1, hours=1))  # Thursday 15:00: both still trade
    snapshot_positions(provider=market.tape, at=market.moment)
    assert set(market.tape.requests[-1]) == {spx, spx_short, weekly_long, weekly_short}
    assert trade_of(am.pk).current_price == trade_of(pm.pk).current_price == D("23.00")
    at(market, EXPIRY_CLOSE - timedelta(hours=5))  # Friday 11:00: the monthly SPX traded its last yesterday
    market.books({spx: ("54.00", "56.00"), weekly_long: ("54.00", "56.00")})
    snapshot_positions(provider=market.tape, at=market.moment)
    assert set(market.tape.requests[-1]) == {weekly_long, weekly_short}
    assert (trade_of(am.pk).current_price, trade_of(pm.pk).current_price) == (D("23.00"), D("33.00"))


def test_a_calendar_closed_by_hand_over_the_weekend_after_its_front_settled_is_booked_by_the_sync(
        api_as, trader, lifecycle):
    """The back month alone is sold by a single-option order (a multileg order has 2–4 legs); sent
    while the market is shut it rests, and Monday's cycle books its fill as the spread's close:
    the settled front month counted at its exit price, the P&L the legs' sum."""
    market = lifecycle
    roomy(trader)
    cash_before, _, _ = ledger(trader, market)
    body = opened(api_as, trader, market, "calendar", [short(C570), long_(C570_JAN)], "1.00", "3.50")
    trade_id = body["id"]
    market.tape.close("SPY", EXPIRY, "577.00")
    at(market, EXPIRY_CLOSE + timedelta(minutes=1))
    market.delist(C570)
    cycle(market)
    assert [leg.exit_reason for leg in legs_of(trade_id)] == [LegExit.ASSIGNED, ""]

    at(market, NEXT_MONDAY - timedelta(days=2))  # Saturday
    market.books({C570_JAN: ("9.00", "9.20")})
    closing = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": trade_of(trade_id).version},
                                  format="json")
    assert closing.status_code == 202, closing.json()
    assert trade_of(trade_id).status == TradeStatus.CLOSING
    at(market, NEXT_MONDAY)
    report = cycle(market)
    trade = trade_of(trade_id)
    assert trade.status == TradeStatus.CLOSED, (trade.status_reason, trade.attention_reason, report)
    # Paid 2.10 (sold the front 4.10, bought January 6.20); the front assigned at 7.00, January sold 9.00:
    # held close −7.00 + 9.00 = 2.00; legs (−2.90 + 2.80) × 200 = −20.
    assert (trade.status, trade.close_reason, trade.close_price, trade.realized_pnl) == (
        TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE, D("2.00"), D("-20.00"))
    assert trade.realized_pnl == legs_pnl(legs_of(trade_id), UNITS)
    assert trade.exit_commission == D("0.65") * UNITS  # one leg sold
    reconciles(trader, market, trade_id, cash_before)
    assert ledger(trader, market)[1] == {}


def test_a_calendars_last_leg_sold_and_filled_is_booked_when_the_trader_closes_again_not_sold_twice(
        api_as, trader, lifecycle):
    """The single-option order closing a calendar's back month filled at the broker before the sync
    booked it, and the trader presses close again: the close finds that order by its tag and books
    it; nothing is sold twice."""
    market = lifecycle
    roomy(trader)
    trade_id = opened(api_as, trader, market, "calendar", [short(C570), long_(C570_JAN)], "1.00", "3.50")["id"]
    market.tape.close("SPY", EXPIRY, "577.00")
    at(market, EXPIRY_CLOSE + timedelta(minutes=1))
    market.delist(C570)
    cycle(market)
    at(market, NEXT_MONDAY - timedelta(days=2))  # Saturday: the close rests until Monday
    market.books({C570_JAN: ("9.00", "9.20")})
    closing = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": trade_of(trade_id).version},
                                  format="json")
    assert closing.status_code == 202, closing.json()
    at(market, NEXT_MONDAY)
    match_paper_orders(market=market)  # the resting sell fills; the sync has not looked yet
    again = api_as(trader).post(f"/api/trades/{trade_id}/close", {"version": trade_of(trade_id).version},
                                format="json")
    assert again.status_code < 500, again.json()
    trade = trade_of(trade_id)
    assert (trade.status, trade.close_price, trade.realized_pnl) == (TradeStatus.CLOSED, D("2.00"), D("-20.00"))
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.filter(tag=f"to-{trade_id}-close").count() == 1
