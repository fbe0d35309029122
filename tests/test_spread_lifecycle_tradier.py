"""Spreads' whole life at Tradier, over real HTTP to the fake Tradier (tests/fakes/tradier.py),
through the real entry points only: POST /api/trades with `legs`, the monitor's snapshot and order
cycle (the net watch sends the closing multileg order, the sync books it), expiry settlement once
the account stops showing the contracts. A credit vertical is stopped out under each of the fake's
UNCONFIRMED parent-fill switches; an iron condor is held to expiry and settles worthless. The
realized P&L is exact and equals Σ legs side × ratio × (exit − entry) × units × 100."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from brokers.models import BrokerMode
from monitoring import clock as market_clock
from monitoring.services import orders_cycle, snapshot_positions
from tests.spread_lifecycle import EXPIRY, EXPIRY_CLOSE, OPENING, LifecycleMarket, legs_pnl, sym
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, LegExit, PaperTrade, TradeLeg, TradeStatus

D = Decimal
TOKEN = "sbxTOKEN-lifecycle-9a8b7c6d5e"
ACCOUNT = "VA00001919"
UNITS = 2
P550, P560, C580, C590 = sym("P", 550), sym("P", 560), sym("C", 580), sym("C", 590)
OPEN_BOOK = {P550: ("1.20", "1.30"), P560: ("3.00", "3.20"), C580: ("1.50", "1.60"), C590: ("0.40", "0.50")}
MARK_BOOK = {P550: ("1.00", "1.10"), P560: ("2.60", "2.80"), C580: ("1.80", "1.90"), C590: ("0.50", "0.60")}


@pytest.fixture
def lifecycle(fake_tradier, trader, monkeypatch, tradier_budget_of_its_own):
    """The trader's sandbox account at the fake Tradier; the fake and the market quote the same books;
    the monitor's clock and the wall clock are the market's. At a rate budget of the test's own (the
    root conftest): these lifecycles are not about the limiter."""
    from brokers import market as market_registry

    market = LifecycleMarket(OPENING)
    monkeypatch.setattr(market_registry, "_market", market)
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=D("50000"))
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    account = services.account_settings_for(user=trader)
    account.account_balance, account.heat_limit_pct, account.max_positions = D("50000"), D("100"), 20
    account.commission_per_contract = D("0.35")
    with tenancy.acting_as(trader.pk):
        account.save()
    with time_machine.travel(OPENING, tick=False) as traveller:
        market.traveller = traveller
        market.fake = fake_tradier
        books(market, OPEN_BOOK)
        yield market


def books(market, quotes):
    market.books(quotes)
    for symbol, (bid, ask) in quotes.items():
        market.fake.set_quote(symbol, bid, ask)


def at(market, moment):
    market.moment = moment
    market.traveller.move_to(moment)


def cycle(market):
    snapshot_positions(provider=market.tape, at=market.moment)
    return orders_cycle(provider=market.tape, market=market, at=market.moment)


def trade_of(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def legs_of(pk) -> list[TradeLeg]:
    with tenancy.system_context():
        return list(TradeLeg.objects.filter(trade_id=pk).order_by("position"))


def opened(api_as, trader, market, legs, **body):
    response = api_as(trader).post("/api/trades", {"ticker": "SPY", "qty": UNITS, "entry_type": "market",
                                                   "legs": legs, "strategy": "spreads", **body}, format="json")
    assert response.status_code == 201, response.json()
    trade_id = response.json()["id"]
    if response.json()["status"] == "PENDING":  # the sandbox may decide a new order on a later look
        cycle(market)
    assert trade_of(trade_id).status == TradeStatus.OPEN
    return trade_id


@pytest.mark.parametrize("parent_fills", ["net", "none"])
def test_a_credit_vertical_is_opened_marked_and_stopped_out_at_tradier(api_as, trader, lifecycle, parent_fills):
    market = lifecycle
    market.fake.spread_parent_fills = parent_fills
    trade_id = opened(api_as, trader, market, [{"option_symbol": P560, "side": "SHORT"},
                                               {"option_symbol": P550, "side": "LONG"}],
                      strategy_type="vertical", sl_price="3.40", tp_price="0.85")
    trade = trade_of(trade_id)
    # Sold 3.00, bought 1.30 (the fills each leg reported): 1.70 received a unit.
    assert (trade.net_direction, trade.entry_price, trade.entry_commission) == ("credit", D("1.70"), D("1.40"))
    assert [leg.entry_price for leg in legs_of(trade_id)] == [D("3.00"), D("1.30")]

    at(market, OPENING + timedelta(hours=1))
    books(market, MARK_BOOK)
    assert cycle(market).net_exits.closes_asked == 0
    trade = trade_of(trade_id)
    # −(−2.70 + 1.05) = 1.65 held: 0.05 a share better for 2 units.
    assert (trade.status, trade.current_price, trade.unrealized_pnl) == (TradeStatus.OPEN, D("1.65"), D("10"))

    at(market, OPENING + timedelta(hours=2))
    books(market, {P560: ("5.00", "5.20"), P550: ("1.50", "1.60")})  # 5.10 − 1.55 = 3.55: past the 3.40 stop
    report = cycle(market)
    assert report.net_exits.closes_asked == 1
    trade = trade_of(trade_id)
    if trade.status == TradeStatus.CLOSING:  # the fill is read on the next look
        at(market, market.moment + timedelta(minutes=1))
        cycle(market)
        trade = trade_of(trade_id)
    (close,) = market.fake.orders_tagged(f"to-{trade_id}-close")
    assert close.order_class == "multileg" and close.type == "market"
    # Bought back at 5.20, sold 1.50: 3.70 for 1.70 received, × 2 units × 100.
    assert (trade.status, trade.close_reason, trade.close_price, trade.realized_pnl) == (
        TradeStatus.CLOSED, CloseReason.SL_HIT, D("3.70"), D("-400.00"))
    assert trade.realized_pnl == legs_pnl(legs_of(trade_id), UNITS)
    assert trade.exit_commission == D("1.40")  # 0.35 × 2 units × 2 legs


def test_an_iron_condor_held_to_expiry_at_tradier_settles_once_the_broker_lets_it_go(api_as, trader, lifecycle):
    market = lifecycle
    legs = [{"option_symbol": P550, "side": "LONG"}, {"option_symbol": P560, "side": "SHORT"},
            {"option_symbol": C580, "side": "SHORT"}, {"option_symbol": C590, "side": "LONG"}]
    trade_id = opened(api_as, trader, market, legs, strategy_type="iron_condor", sl_price="5.40", tp_price="1.35")
    assert (trade_of(trade_id).net_direction, trade_of(trade_id).entry_price) == ("credit", D("2.70"))

    at(market, OPENING + timedelta(hours=1))
    books(market, MARK_BOOK)
    cycle(market)
    trade = trade_of(trade_id)
    # −(1.05 − 2.70 − 1.85 + 0.55) = 2.95: 0.25 a share worse, 2 units.
    assert (trade.current_price, trade.unrealized_pnl) == (D("2.95"), D("-50"))

    market.tape.close("SPY", EXPIRY, "577.00")  # every leg out of the money
    at(market, EXPIRY_CLOSE + timedelta(minutes=1))
    cycle(market)
    assert trade_of(trade_id).status == TradeStatus.OPEN  # the account still shows the contracts: wait
    for symbol in (P550, P560, C580, C590):
        market.fake.expire_option(ACCOUNT, symbol)
    at(market, EXPIRY_CLOSE + timedelta(minutes=2))
    cycle(market)
    trade = trade_of(trade_id)
    assert [(leg.exit_reason, leg.exit_price) for leg in legs_of(trade_id)] == [(LegExit.EXPIRED, D("0"))] * 4
    assert (trade.status, trade.close_reason, trade.close_price, trade.realized_pnl, trade.exit_commission) == (
        TradeStatus.CLOSED, CloseReason.EXPIRED, D("0"), D("540.00"), D("0"))
    assert trade.realized_pnl == legs_pnl(legs_of(trade_id), UNITS)
