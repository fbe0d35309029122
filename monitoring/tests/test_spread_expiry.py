"""Spread expiry through the monitor (issue 19). At the local paper broker the ledger and the trade
rows settle together, so cash and positions reconcile: on an early-close day (13:00), and for
index options settled in cash (SPX at its expiry-day opening, SPXW at the close). At Tradier the
legs settle only once the account stops showing them, and shares an assignment left are told to
the trader. Pin risk is told once per short leg in the last hour before its cutoff."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from brokers import market as market_registry
from brokers.base import SpreadLeg, SpreadOrderRequest, order_tag
from brokers.models import BrokerMode, PaperFill
from brokers.occ import build_symbol
from brokers.paper import FillRules, LocalPaperBroker
from monitoring import clock as market_clock
from monitoring import services
from monitoring.expiry import pin_risk_tickers, pin_risk_watch, settle_expiries
from monitoring.market import closing_price, opening_price
from monitoring.marketdata import Interval
from monitoring.sharding import Shard
from tests.factories import NotificationChannelFactory, UserFactory, expiry_spread_trade
from tests.fakes.market import HandDrivenMarket, HandMadeBars
from tradeoptions import tenancy
from trades.models import (
    ChannelMessage,
    CloseReason,
    EventKind,
    LegExit,
    NotificationEvent,
    PaperTrade,
    TradeEvent,
    TradeLeg,
    TradeStatus,
)

from .conftest import SANDBOX_ACCOUNT

D = Decimal
EARLY = date(2026, 11, 27)  # the day after Thanksgiving: the market closes at 13:00 (18:00 UTC)
EARLY_MORNING = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
EARLY_CLOSE = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
MONTHLY = date(2026, 12, 18)  # a third Friday: SPX's AM-settled monthly, SPXW's PM weekly
MONTHLY_OPEN = datetime(2026, 12, 18, 14, 30, tzinfo=UTC)
MONTHLY_CLOSE = datetime(2026, 12, 18, 21, 0, tzinfo=UTC)
CASH = D("100000")
RULES = FillRules(commission_per_contract=D("0.65"), slippage_per_share=D("0"))


class Prices(HandMadeBars):
    """Settlement prices by hand (a day's close, the first minute after its open) and the
    underlying's last price (pin risk reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, Decimal] = {}

    def close(self, symbol, day, price):
        self.add_bars(symbol, Interval.DAILY, [price], starts=[market_clock.session_for(day).open])

    def opening(self, symbol, day, price):
        self.add_bars(symbol, Interval.MINUTE, [price], starts=[market_clock.session_for(day).open])

    def underlying_quotes(self, symbols):
        return {symbol: SimpleNamespace(last=self.last[symbol]) for symbol in symbols if symbol in self.last}


class CalendarMarket(HandDrivenMarket):
    """The hand-driven books on the real XNYS calendar (early closes), settling against `prices`."""

    def __init__(self, prices: Prices, now: datetime) -> None:
        super().__init__(now)
        self.prices = prices

    def expiry_cutoff(self, expiry):
        return market_clock.expiry_cutoff(expiry)

    def next_open(self, at):
        return market_clock.next_open(at)

    def is_open(self, at):
        return market_clock.is_market_open(at)

    def underlying_close(self, underlying, expiry):
        return closing_price(self.prices, underlying, expiry)

    def underlying_opening(self, underlying, at):
        return opening_price(self.prices, underlying, at)


@pytest.fixture
def prices():
    return Prices()


@pytest.fixture
def books(prices, monkeypatch):
    market = CalendarMarket(prices, EARLY_MORNING)
    monkeypatch.setattr(market_registry, "_market", market)
    return market


def _open_at_paper(trader, market, legs, *, underlying="SPY", qty=1, strategy_type="vertical"):
    """The spread placed at the local paper broker (market, natural sides) and its trade written
    from the fills, as the opening services would: `legs` are (side, symbol, ratio, bid, ask)."""
    for _, symbol, _, bid, ask in legs:
        market.set_quote(symbol, bid, ask)
    trade = expiry_spread_trade(trader, [(side, symbol, ratio, ask if side == "LONG" else bid)
                                         for side, symbol, ratio, bid, ask in legs], qty=qty,
                                strategy_type=strategy_type)
    request = SpreadOrderRequest(
        underlying=underlying, price_type="market", tag=order_tag(trade.pk, "entry"),
        legs=tuple(SpreadLeg(symbol, "buy_to_open" if side == "LONG" else "sell_to_open", ratio * qty)
                   for side, symbol, ratio, _, _ in legs))
    with tenancy.acting_as(trader.pk):
        order = _paper(trader, market).place_spread_order(request)
    assert [leg.fill.price for leg in order.legs] == [D(ask if side == "LONG" else bid)
                                                       for side, _, _, bid, ask in legs]
    return trade


def _paper(trader, market):
    return LocalPaperBroker(trader.pk, starting_cash=CASH, market=market, rules=RULES)


def _trade(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _legs(pk):
    with tenancy.system_context():
        return list(TradeLeg.objects.filter(trade_id=pk).order_by("position"))


def _reconciles(trader, market, trades):
    """The ledger's cash is what the legs say: every leg's entry paid or received, every settled
    leg's exit, less the commissions; its positions are the legs still held."""
    legs = [(leg, trade) for trade in trades for leg in _legs(trade.pk)]
    flows = sum((leg.sign * leg.ratio * trade.qty * 100 * ((leg.exit_price if leg.exit_reason else 0) - leg.entry_price)
                 for leg, trade in legs), D(0))
    with tenancy.acting_as(trader.pk):
        broker = _paper(trader, market)
        commissions = sum((fill.commission for fill in PaperFill.objects.all()), D(0))
        cash = broker.get_account_balance().total_cash
        held = {position.symbol: position.quantity for position in broker.get_positions()}
        settled = {fill.option_symbol: fill.price for fill in PaperFill.objects.filter(settlement=True)}
    assert cash == CASH - commissions + flows
    assert held == {leg.option_symbol: leg.sign * leg.ratio * trade.qty for leg, trade in legs if not leg.exit_reason}
    assert settled == {leg.option_symbol: leg.exit_price for leg, _ in legs if leg.exit_reason}


def test_spreads_settle_at_the_early_close_and_the_paper_ledger_agrees_with_the_trades(trader, books, prices):
    spy = lambda kind, strike, expiry=EARLY: build_symbol("SPY", expiry, kind, D(strike))  # noqa: E731
    vertical = _open_at_paper(trader, books, [("LONG", spy("CALL", 570), 1, "4.10", "4.30"),
                                              ("SHORT", spy("CALL", 575), 1, "2.50", "2.60")], qty=2)
    credit = _open_at_paper(trader, books, [("SHORT", spy("PUT", 560), 1, "3.00", "3.20"),
                                            ("LONG", spy("PUT", 555), 1, "2.00", "2.10")])
    calendar = _open_at_paper(trader, books, [("SHORT", spy("CALL", 572), 1, "3.40", "3.60"),
                                              ("LONG", spy("CALL", 572, MONTHLY), 1, "6.90", "7.10")],
                              strategy_type="calendar")
    prices.close("SPY", EARLY, "575.50")

    report = settle_expiries(provider=prices, at=EARLY_CLOSE - timedelta(minutes=1), market=books)
    assert report.settled == {} and _trade(vertical.pk).status == TradeStatus.OPEN  # not before 13:00

    report = settle_expiries(provider=prices, at=EARLY_CLOSE + timedelta(minutes=1), market=books)
    assert report.settled == {"EXPIRED": 2, "SETTLED": 1} and report.deferred == 0
    # Debit 1.80 × 2 units: the 570 exercised at 5.50, the 575 assigned at 0.50: (5.00 − 1.80) × 200.
    assert [(leg.exit_reason, leg.exit_price) for leg in _legs(vertical.pk)] == [
        (LegExit.EXERCISED, D("5.50")), (LegExit.ASSIGNED, D("0.50"))]
    settled = _trade(vertical.pk)
    assert (settled.status, settled.close_reason, settled.close_price, settled.realized_pnl, settled.close_date) == (
        TradeStatus.CLOSED, CloseReason.EXPIRED, D("5.00"), D("640.00"), EARLY_CLOSE)
    assert (_trade(credit.pk).close_price, _trade(credit.pk).realized_pnl) == (D("0.00"), D("90.00"))
    # The calendar's front month (sold at 3.40) is assigned at 3.50; its January call is still held.
    assert _trade(calendar.pk).status == TradeStatus.OPEN
    assert [(leg.exit_reason, leg.exit_price) for leg in _legs(calendar.pk)] == [
        (LegExit.ASSIGNED, D("3.50")), ("", None)]
    _reconciles(trader, books, [vertical, credit, calendar])

    versions = [_trade(trade.pk).version for trade in (vertical, credit, calendar)]
    settle_expiries(provider=prices, at=EARLY_CLOSE + timedelta(minutes=2), market=books)  # idempotent
    assert [_trade(trade.pk).version for trade in (vertical, credit, calendar)] == versions
    _reconciles(trader, books, [vertical, credit, calendar])


def test_spx_settles_in_cash_at_the_opening_and_spxw_at_the_close(trader, books, prices):
    books.moment = datetime(2026, 12, 17, 15, 0, tzinfo=UTC)  # the day before: SPX's last trading day
    spx = lambda root, kind, strike: build_symbol(root, MONTHLY, kind, D(strike))  # noqa: E731
    am = _open_at_paper(trader, books, [("LONG", spx("SPX", "CALL", 6000), 1, "39.00", "40.00"),
                                        ("SHORT", spx("SPX", "CALL", 6050), 1, "20.00", "21.00")], underlying="SPX")
    pm = _open_at_paper(trader, books, [("SHORT", spx("SPXW", "CALL", 6050), 1, "22.00", "23.00"),
                                        ("LONG", spx("SPXW", "CALL", 6100), 1, "9.00", "10.00")], underlying="SPX")
    prices.opening("SPX", MONTHLY, "6030.25")  # the opening print the AM monthly settles on
    prices.close("SPX", MONTHLY, "6080")  # the close the PM weekly settles on

    assert settle_expiries(provider=prices, at=MONTHLY_OPEN - timedelta(minutes=1), market=books).settled == {}
    report = settle_expiries(provider=prices, at=MONTHLY_OPEN + timedelta(minutes=1), market=books)
    assert report.settled == {"EXPIRED": 1}  # SPX at the open; SPXW still trades until the close
    # Debit 20.00: the 6000 call settled in cash at 30.25: (30.25 − 20.00) × 100.
    assert [(leg.exit_reason, leg.exit_price) for leg in _legs(am.pk)] == [
        (LegExit.CASH_SETTLED, D("30.25")), (LegExit.EXPIRED, D("0.00"))]
    assert (_trade(am.pk).realized_pnl, _trade(am.pk).close_date) == (D("1025.00"), MONTHLY_OPEN)
    assert _trade(pm.pk).status == TradeStatus.OPEN
    with tenancy.acting_as(trader.pk):
        reason = PaperFill.objects.get(settlement=True, option_symbol=spx("SPX", "CALL", 6000)).order.reason
    assert "settled in cash at $30.25" in reason and "opened at $6030.25" in reason

    settle_expiries(provider=prices, at=MONTHLY_CLOSE + timedelta(minutes=1), market=books)
    # Credit 22.00 − 10.00 = 12.00: the short 6050 settled in cash at 30.00: −(30.00 − 12.00) × 100.
    assert [(leg.exit_reason, leg.exit_price) for leg in _legs(pm.pk)] == [
        (LegExit.CASH_SETTLED, D("30.00")), (LegExit.EXPIRED, D("0.00"))]
    assert (_trade(pm.pk).close_price, _trade(pm.pk).realized_pnl) == (D("30.00"), D("-1800.00"))
    _reconciles(trader, books, [am, pm])


# --- At Tradier the broker settles; the monitor records what its account shows ------------------


def _tradier_vertical(trader, fake, short_put=False):
    legs = ([("SHORT", build_symbol("SPY", EARLY, "PUT", D(575)), 1, "3.00"),
             ("LONG", build_symbol("SPY", EARLY, "PUT", D(565)), 1, "1.00")] if short_put else
            [("LONG", build_symbol("SPY", EARLY, "CALL", D(570)), 1, "4.30"),
             ("SHORT", build_symbol("SPY", EARLY, "CALL", D(575)), 1, "2.50")])
    trade = expiry_spread_trade(trader, legs, broker_mode=BrokerMode.TRADIER_SANDBOX)
    for side, symbol, _, price in legs:
        fake.add_position(SANDBOX_ACCOUNT, symbol, 1 if side == "LONG" else -1, D(price) * 100)
    return trade, [symbol for _, symbol, _, _ in legs]


AFTER = EARLY_CLOSE + timedelta(minutes=5)


def test_at_tradier_nothing_is_settled_while_the_account_still_shows_the_legs(trader, tradier, books, prices):
    trade, _ = _tradier_vertical(trader, tradier)
    prices.close("SPY", EARLY, "580")
    report = settle_expiries(provider=prices, at=AFTER, market=books)
    assert report.deferred == 1 and _trade(trade.pk).status == TradeStatus.OPEN
    assert all(not leg.exit_reason for leg in _legs(trade.pk))  # no close is guessed
    tradier.inject("500", method="GET", path="/positions", times=10)  # an account that does not answer
    assert settle_expiries(provider=prices, at=AFTER, market=books).deferred == 1


def test_at_tradier_legs_exercised_and_assigned_against_each_other_leave_no_shares(trader, tradier, books, prices):
    trade, (long, short) = _tradier_vertical(trader, tradier)
    prices.close("SPY", EARLY, "580")
    tradier.expire_option(SANDBOX_ACCOUNT, long, delivers_shares=100, at_price=D(570), underlying="SPY")
    tradier.expire_option(SANDBOX_ACCOUNT, short, delivers_shares=-100, at_price=D(575), underlying="SPY")
    assert settle_expiries(provider=prices, at=AFTER, market=books).settled == {"EXPIRED": 1}
    settled = _trade(trade.pk)
    assert (settled.close_price, settled.realized_pnl, settled.attention_reason) == (D("5.00"), D("320.00"), "")


def test_at_tradier_an_assignment_that_leaves_shares_is_told_in_trader_words(trader, tradier, books, prices):
    trade, (short, long) = _tradier_vertical(trader, tradier, short_put=True)
    prices.close("SPY", EARLY, "570")  # the short 575 put is assigned, the 565 expires
    tradier.expire_option(SANDBOX_ACCOUNT, short, delivers_shares=100, at_price=D(575), underlying="SPY")
    tradier.expire_option(SANDBOX_ACCOUNT, long)
    settle_expiries(provider=prices, at=AFTER, market=books)
    settled = _trade(trade.pk)
    # Credit 2.00, assigned at 5.00: −(5.00 − 2.00) × 100.
    assert (settled.status, settled.realized_pnl) == (TradeStatus.CLOSED, D("-300.00"))
    assert settled.attention_reason.startswith("Expiry delivered stock: the account now holds 100 shares of SPY long")
    assert "(short 575 put, Nov 27 assigned)" in settled.attention_reason


# --- Pin risk -----------------------------------------------------------------------------------


@pytest.fixture
def near_the_money(trader, prices, settings):
    settings.PIN_RISK_DISTANCE = "0.5"  # SPY's 575 strike: within 2.875
    prices.last["SPY"] = D("574.00")
    channel = NotificationChannelFactory(owner=trader, events=[NotificationEvent.PIN_RISK])
    short_call = expiry_spread_trade(trader, [("LONG", build_symbol("SPY", EARLY, "CALL", D(570)), 1, "4.30"),
                                              ("SHORT", build_symbol("SPY", EARLY, "CALL", D(575)), 1, "2.50")])
    long_straddle = expiry_spread_trade(trader, [("LONG", build_symbol("SPY", EARLY, "CALL", D(574)), 1, "3.00"),
                                                 ("LONG", build_symbol("SPY", EARLY, "PUT", D(574)), 1, "2.80")],
                                        strategy_type="straddle")
    return SimpleNamespace(short_call=short_call, long_straddle=long_straddle, channel=channel)


def _alerts(trader):
    with tenancy.acting_as(trader.pk):
        return (list(TradeEvent.objects.filter(kind=EventKind.ATTENTION_NEEDED, payload__has_key="pin_risk")
                     .values_list("trade_id", "payload__pin_risk__leg")),
                ChannelMessage.objects.filter(kind=NotificationEvent.PIN_RISK).count())


def test_pin_risk_is_told_once_in_the_last_hour_of_an_early_close_for_the_short_leg_only(trader, prices,
                                                                                          near_the_money):
    short = build_symbol("SPY", EARLY, "CALL", D(575))
    assert pin_risk_watch(provider=prices, at=datetime(2026, 11, 27, 16, 59, tzinfo=UTC)) == 0  # 11:59: too early
    assert pin_risk_watch(provider=prices, at=datetime(2026, 11, 27, 17, 0, tzinfo=UTC)) == 1  # 12:00, an hour left
    assert pin_risk_watch(provider=prices, at=datetime(2026, 11, 27, 17, 30, tzinfo=UTC)) == 0  # told already
    assert _alerts(trader) == ([(near_the_money.short_call.pk, short)], 1)
    flagged = _trade(near_the_money.short_call.pk)
    assert flagged.attention_reason == (
        "Pin risk: SPY at 574.00 is within 1.00 of your short 575 call, Nov 27, which expires at 13:00 ET. "
        "Ending near the strike, it may or may not be assigned: close or roll it before then.")
    assert not _trade(near_the_money.long_straddle.pk).attention_reason  # long legs carry no assignment
    with tenancy.acting_as(trader.pk):
        message = ChannelMessage.objects.get(kind=NotificationEvent.PIN_RISK)
    assert message.critical and "Pin risk" in message.body and message.title.startswith("SPY 575")


def test_pin_risk_is_not_told_far_from_the_strike_after_the_cutoff_or_when_turned_off(trader, prices, near_the_money,
                                                                                       settings):
    assert pin_risk_watch(provider=prices, at=EARLY_CLOSE) == 0  # 13:00: the leg no longer trades
    prices.last["SPY"] = D("571.00")  # 4.00 away, beyond 0.5 % of 575
    assert pin_risk_watch(provider=prices, at=datetime(2026, 11, 27, 17, 30, tzinfo=UTC)) == 0
    prices.last["SPY"] = D("575.10")
    settings.PIN_RISK_DISTANCE = "0"
    assert pin_risk_watch(provider=prices, at=datetime(2026, 11, 27, 17, 30, tzinfo=UTC)) == 0
    assert _alerts(trader) == ([], 0)


def test_the_monitor_cycle_watches_pin_risk(trader, prices, near_the_money, books):
    at = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)
    books.moment = at
    report = services.orders_cycle(provider=prices, market=books, at=at)
    assert report.pin_risk_alerts == 1
    assert services.orders_cycle(provider=prices, market=books, at=at + timedelta(minutes=1)).pin_risk_alerts == 0


def _apart(first, second) -> tuple[Shard, Shard]:
    """Two shards of one count that put the two traders' accounts apart."""
    count = abs(second.pk - first.pk) + 1
    return Shard(first.pk % count, count), Shard(second.pk % count, count)


def test_a_shard_settles_only_its_own_accounts_paper_books_and_trades(trader, books, prices):
    other = UserFactory()
    spy = lambda kind, strike: build_symbol("SPY", EARLY, kind, D(strike))  # noqa: E731
    spread = [("LONG", spy("CALL", 570), 1, "4.10", "4.30"), ("SHORT", spy("CALL", 575), 1, "2.50", "2.60")]
    mine, theirs = _open_at_paper(trader, books, spread), _open_at_paper(other, books, spread)
    prices.close("SPY", EARLY, "575.50")
    trader_shard, other_shard = _apart(trader, other)

    report = settle_expiries(provider=prices, at=EARLY_CLOSE + timedelta(minutes=1), market=books, shard=trader_shard)
    assert report.settled == {"EXPIRED": 1}
    assert (_trade(mine.pk).status, _trade(theirs.pk).status) == (TradeStatus.CLOSED, TradeStatus.OPEN)
    with tenancy.system_context():  # the other account's paper books are not touched either
        assert not PaperFill.objects.filter(owner_id=other.pk, settlement=True).exists()
        assert PaperFill.objects.filter(owner_id=trader.pk, settlement=True).count() == 2

    report = settle_expiries(provider=prices, at=EARLY_CLOSE + timedelta(minutes=1), market=books, shard=other_shard)
    assert report.settled == {"EXPIRED": 1} and _trade(theirs.pk).status == TradeStatus.CLOSED
    _reconciles(trader, books, [mine])
    _reconciles(other, books, [theirs])


def test_a_shard_tells_only_its_own_accounts_of_pin_risk(trader, prices, near_the_money):
    other = UserFactory()
    theirs = expiry_spread_trade(other, [("LONG", build_symbol("SPY", EARLY, "CALL", D(570)), 1, "4.30"),
                                         ("SHORT", build_symbol("SPY", EARLY, "CALL", D(575)), 1, "2.50")])
    at = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 12:30 of the early close: the short leg's last hour
    assert pin_risk_tickers(at=at) == ["SPY"]  # what the coordinator quotes for the shards
    trader_shard, other_shard = _apart(trader, other)
    assert pin_risk_watch(provider=prices, at=at, shard=trader_shard) == 1
    assert [trade_id for trade_id, _ in _alerts(trader)[0]] == [near_the_money.short_call.pk]
    assert _alerts(other) == ([], 0)
    assert pin_risk_watch(provider=prices, at=at, shard=other_shard) == 1
    assert [trade_id for trade_id, _ in _alerts(other)[0]] == [theirs.pk]
