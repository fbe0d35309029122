"""Review fixes to multi-leg trades: a market fill keeps the direction the trade was opened with
(docs/spreads.md, "Placing and the fill"); a spread a risk limit refuses is told on the channels
like a single option's; at expiry a broken close is a person's and delivered shares are counted."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from brokers.base import Fill, Order, OrderStatus, Position
from brokers.models import BrokerMode
from brokers.occ import build_symbol
from tests.factories import (
    NotificationChannelFactory,
    PaperTradeFactory,
    account_with,
    exits_mark,
    expiry_spread_trade,
    spread_open_trade,
)
from tradeoptions import tenancy
from trades import net_price, selectors, services
from trades.models import (
    AccountSettings,
    ChannelMessage,
    EventKind,
    NotificationEvent,
    PaperTrade,
    TradeEvent,
    TradeLeg,
    TradeStatus,
)
from trades.services import LegSettlementPrice, RiskLimitExceeded, expiry, spread_expiry_settle, spread_opening
from trades.tests import test_spread_exits as exits_tests

P550, P560 = "SPY261218P00550000", "SPY261218P00560000"


@pytest.fixture
def quoted(market):
    market.set_quote(P560, "3.00", "3.20")
    market.set_quote(P550, "1.20", "1.30")
    return market



def _credit_put_spread(user, market):
    """A 1.70 credit on the 560/550 put spread at market, its exits a credit's: buy back at 0.85 or 3.40."""
    return services.spread_open(user=user, market=market, data=services.SpreadOpenInput(
        ticker="SPY", qty=1, net_direction="credit", sl_price=Decimal("3.40"), tp_price=Decimal("0.85"),
        legs=(services.SpreadLegInput(side="SHORT", option_symbol=P560),
              services.SpreadLegInput(side="LONG", option_symbol=P550))))


def _moved_before_the_fill(monkeypatch, market, *, short_bid):
    """The market moves between the open's checks and its market order's fill."""
    place = spread_opening._place

    def moved(trade, broker, **who):
        market.set_quote(P560, short_bid, "3.20")
        return place(trade, broker, **who)

    monkeypatch.setattr(spread_opening, "_place", moved)


# --- 1. the fill keeps the planned direction ---------------------------------------------------


def test_a_credit_filled_on_the_debit_side_stays_a_credit_at_zero_and_is_flagged(trader, quoted, monkeypatch):
    account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    _moved_before_the_fill(monkeypatch, quoted, short_bid="1.29")  # sold at 1.29, bought at 1.30: a 0.01 debit
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.status == TradeStatus.OPEN
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("0")
    assert (trade.sl_price, trade.tp_price) == (Decimal("3.40"), Decimal("0.85"))
    assert trade.attention_reason == ("Planned as a credit, the spread filled at a 0.01 debit: it is recorded at "
                                      "0.00, so its P&L reads 1.00 dollars a unit better than its fills. Check it "
                                      "and its exits.")
    with tenancy.acting_as(trader.pk):  # the legs keep their exact fills
        legs = list(TradeLeg.objects.filter(trade=trade).order_by("position"))
    assert [leg.entry_price for leg in legs] == [Decimal("1.29"), Decimal("1.30")]
    # The stop is not crossed at the mark: buying back at about 0.05 is far from the 3.40 stop.
    assert not net_price.stop_crossed(trade.net_direction, price=Decimal("0.05"), stop=trade.sl_price)


def test_a_credit_filled_at_exactly_zero_is_a_credit_of_nothing_not_a_debit(trader, quoted, monkeypatch):
    account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    _moved_before_the_fill(monkeypatch, quoted, short_bid="1.30")
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.status == TradeStatus.OPEN
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("0") and trade.attention_reason == ""


def test_a_credit_filled_as_planned_is_not_flagged(trader, quoted):
    account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=20)
    trade = _credit_put_spread(trader, quoted).trade
    assert trade.net_direction == "credit" and trade.entry_price == Decimal("1.70") and trade.attention_reason == ""


# --- 6. a risk limit's refusal is told ---------------------------------------------------------


def test_a_spread_refused_by_a_risk_limit_is_told_on_the_channel(trader, quoted):
    account_with(trader, account_balance=Decimal("20000"), heat_limit_pct=Decimal("100"), max_positions=1)
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.RISK_LIMIT])
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)
    with pytest.raises(RiskLimitExceeded):
        _credit_put_spread(trader, quoted)
    with tenancy.acting_as(trader.pk):
        (told,) = ChannelMessage.objects.filter(kind=NotificationEvent.RISK_LIMIT)
        assert PaperTrade.objects.filter(strategy_type="vertical").count() == 0
    assert told.title == "Risk limit reached: Max open positions" and "A new trade was refused." in told.body


# --- 2 and 9. expiry: a broken close is not settled; delivered shares are this trade's ----------

EXPIRY = date(2026, 12, 18)
CUTOFF = datetime(2026, 12, 18, 21, 0, tzinfo=UTC)  # 16:00 in New York
WHO = {"actor": "SYSTEM", "actor_label": "expiry_settlement"}


def _spy(kind, strike):
    return build_symbol("SPY", EXPIRY, kind, Decimal(strike))


class ExpiryBroker:
    """A broker that answers the closing order's cancel with `close` and shows `holdings`."""

    def __init__(self, *, close=None, holdings=None):
        self.close, self.holdings = close, holdings or {}

    def cancel_order(self, order_id):
        return self.close

    def get_positions(self):
        return [Position(symbol, Decimal(quantity), Decimal(0), None) for symbol, quantity in self.holdings.items()]


def _stored(pk):
    with tenancy.system_context():
        trade = PaperTrade.objects.get(pk=pk)
        return trade, list(TradeLeg.objects.filter(trade_id=pk).order_by("position"))


def _settle_at(trade, broker, underlying):
    stored, legs = _stored(trade.pk)
    prices = {leg.option_symbol: LegSettlementPrice(Decimal(underlying), CUTOFF) for leg in legs}
    with tenancy.acting_as(trade.owner_id):
        return spread_expiry_settle(trade=stored, broker=broker, prices=prices, **WHO)


def test_a_close_that_filled_some_legs_is_not_settled_at_expiry_and_is_told_once(trader):
    long_call, short_call = _spy("CALL", 570), _spy("CALL", 575)
    trade = expiry_spread_trade(trader, [("LONG", long_call, 1, "4.30"), ("SHORT", short_call, 1, "2.50")],
                                status=TradeStatus.CLOSING, close_order_id="55")
    broken = Order(id="55", status=OrderStatus.CANCELED, order_class="multileg", legs=(
        Order(id="55-1", status=OrderStatus.FILLED, order_class="option", option_symbol=long_call, quantity=1,
              filled_quantity=1, fill=Fill(1, Decimal("9.80"), CUTOFF)),
        Order(id="55-2", status=OrderStatus.CANCELED, order_class="option", option_symbol=short_call, quantity=1)))
    for _ in range(2):  # the next cycle asks again: told once
        assert _settle_at(trade, ExpiryBroker(close=broken), "580") is None
    stored, legs = _stored(trade.pk)
    assert stored.status == TradeStatus.CLOSING and all(not leg.exit_reason for leg in legs)
    assert stored.attention_reason == expiry.BROKEN_CLOSE_AT_EXPIRY
    with tenancy.system_context():
        assert TradeEvent.objects.filter(trade_id=trade.pk, kind=EventKind.ATTENTION_NEEDED).count() == 1


def _assigned_put_spread(trader):
    """A 575/565 put credit spread at Tradier, its short 575 put assigned at 570 (100 shares bought)."""
    return expiry_spread_trade(trader, [("SHORT", _spy("PUT", 575), 1, "4.00"), ("LONG", _spy("PUT", 565), 1, "2.00")],
                               broker_mode=BrokerMode.TRADIER_SANDBOX)


def test_shares_held_before_are_not_blamed_on_the_assignment(trader):
    trade = _assigned_put_spread(trader)
    assert _settle_at(trade, ExpiryBroker(holdings={"SPY": 300}), "570") == "EXPIRED"
    assert _stored(trade.pk)[0].attention_reason == (
        "Expiry delivered stock: the account now holds 300 shares of SPY long; this trade's legs (short 575 put, "
        "Dec 18 assigned) deliver 100 long, the rest is not this trade's. Nothing here manages them: sell or cover "
        "them at the broker.")


def test_shares_the_assignment_alone_leaves_are_told_without_a_rest(trader):
    trade = _assigned_put_spread(trader)
    _settle_at(trade, ExpiryBroker(holdings={"SPY": 100}), "570")
    assert _stored(trade.pk)[0].attention_reason == (
        "Expiry delivered stock: the account now holds 100 shares of SPY long; this trade's legs (short 575 put, "
        "Dec 18 assigned) deliver 100 long. Nothing here manages them: sell or cover them at the broker.")


def test_legs_that_deliver_against_each_other_do_not_blame_shares_held_before(trader):
    long_call, short_call = _spy("CALL", 570), _spy("CALL", 575)
    trade = expiry_spread_trade(trader, [("LONG", long_call, 1, "4.30"), ("SHORT", short_call, 1, "2.50")],
                                broker_mode=BrokerMode.TRADIER_SANDBOX)
    assert _settle_at(trade, ExpiryBroker(holdings={"SPY": 300}), "580") == "EXPIRED"
    assert _stored(trade.pk)[0].attention_reason == ""


# --- 3. a refused close is asked again with backoff, not every cycle ----------------------------


@pytest.fixture
def paper_books(settings, market, trader):
    """The local paper broker of trades/tests/test_spread_exits.py: natural fills, the exits' books."""
    settings.PAPER_SLIPPAGE_PER_SHARE = 0
    settings.PAPER_SPREAD_IMPROVEMENT_PCT = 0
    for symbol, (bid, ask) in exits_tests.QUOTES.items():
        market.set_quote(symbol, bid, ask)
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"account_balance": Decimal("500000")})
    return market


def _log_length(trade) -> int:
    with tenancy.acting_as(trade.owner_id):
        return TradeEvent.objects.filter(trade_id=trade.pk).count()


def test_a_refused_close_is_asked_again_after_one_then_two_minutes_not_every_cycle(paper_books, trader):
    trade = exits_tests.opened(trader, paper_books, "vertical credit")
    quotes = exits_tests.moved("vertical credit", winning=False)
    exits_tests.quote_all(paper_books, quotes)
    exits_mark(trade, quotes)
    paper_books.set_quote(exits_tests.P555, None, None)  # an unquoted leg: the paper broker refuses every time

    started, asks = paper_books.now(), []
    for second in (0, 30, 59, 60, 90, 179, 180):  # refused at 0: again at 1 minute, then 2 minutes after that
        paper_books.moment = started + timedelta(seconds=second)
        before = _log_length(trade)
        asks.append(services.spread_exits_watch(market=paper_books).closes_asked)
        assert _log_length(trade) == before + (2 if asks[-1] else 0)  # CLOSING and back to OPEN, or nothing
    assert asks == [1, 0, 0, 1, 0, 0, 1]
    assert exits_tests.reload(trade).status == TradeStatus.OPEN


def test_a_mark_back_inside_its_exits_starts_the_backoff_afresh(paper_books, trader):
    """Refused twice (the next ask put off two minutes), the mark comes back inside the exits: a
    crossing after that is asked at once, not at the old schedule's turn."""
    trade = exits_tests.opened(trader, paper_books, "vertical credit")
    crossed = exits_tests.moved("vertical credit", winning=False)
    exits_tests.quote_all(paper_books, crossed)
    exits_mark(trade, crossed)
    paper_books.set_quote(exits_tests.P555, None, None)  # an unquoted leg: the paper broker refuses
    started = paper_books.now()
    for second, asked in ((0, 1), (60, 1), (61, 0)):
        paper_books.moment = started + timedelta(seconds=second)
        assert services.spread_exits_watch(market=paper_books).closes_asked == asked
    exits_mark(trade, exits_tests.QUOTES)  # back at the entry's books: inside both exits
    paper_books.moment = started + timedelta(seconds=70)
    assert services.spread_exits_watch(market=paper_books).closes_asked == 0
    exits_mark(trade, crossed)  # crossed again, well before the old schedule's 3-minute turn
    paper_books.moment = started + timedelta(seconds=80)
    assert services.spread_exits_watch(market=paper_books).closes_asked == 1


# --- 8. "expiring tomorrow" reads the legs' expiries -------------------------------------------


def test_the_day_reports_expiring_list_finds_a_calendar_whose_nearer_leg_is_not_leg_0(
        trader, django_assert_num_queries):
    friday, monday = date(2026, 11, 27), date(2026, 11, 30)
    front, back = build_symbol("SPY", monday, "CALL", Decimal("570")), _spy("CALL", 570)  # Nov 30, Dec 18
    back_first = spread_open_trade(owner=trader, strategy_type="calendar",
                                   legs=[(back, "LONG", 1, "7.30"), (front, "SHORT", 1, "2.10")])
    later = spread_open_trade(owner=trader, strategy_type="vertical",
                              legs=[(_spy("CALL", 570), "LONG", 1, "4.30"), (_spy("CALL", 575), "SHORT", 1, "2.50")])
    single = PaperTradeFactory(owner=trader, ticker="QQQ", expiry=monday)
    with tenancy.acting_as(trader.pk):
        assert back_first.expiry == date(2026, 12, 18)  # the row is leg 0's
        assert [trade.pk for trade in selectors.day_report(user=trader, day=friday, next_session=monday).expiring] \
            == [single.pk, back_first.pk]
        with django_assert_num_queries(1):
            expiring = list(selectors._expiring(trader, after=friday, by=monday))
        assert [trade.pk for trade in expiring] == [single.pk, back_first.pk] and later.pk not in expiring
        TradeLeg.objects.filter(trade=back_first, option_symbol=front).update(exit_reason="EXPIRED",
                                                                                exit_price=Decimal(0))
        assert [trade.pk for trade in selectors._expiring(trader, after=friday, by=monday)] == [single.pk]
        assert [trade.pk for trade in selectors.day_report(user=trader, day=friday, next_session=monday).expiring] \
            == [single.pk]


def test_a_spread_over_the_buying_power_is_told_as_a_buying_power_limit(trader, quoted):
    account_with(trader, account_balance=Decimal("700"), heat_limit_pct=Decimal("100"), max_positions=20)
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.RISK_LIMIT])
    with pytest.raises(RiskLimitExceeded):  # the 10-wide put spread holds 830 of buying power
        _credit_put_spread(trader, quoted)
    with tenancy.acting_as(trader.pk):
        (told,) = ChannelMessage.objects.filter(kind=NotificationEvent.RISK_LIMIT)
    assert told.title == "Risk limit reached: Buying power" and "holds $830.00 of buying power" in told.body
