"""The monitor marks every leg of a held multi-leg trade (issue 19; docs/spreads.md, "Marks"): in the
same one quote request as the single options, each leg's quote on its TradeLeg, the trade's held
mid, held natural sides and P&L on its row, and one snapshot of the held mid per slot. Every
expected figure below is worked out by hand from the quotes the test sets."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import PriceSnapshot
from monitoring.services import cycle_slot, snapshot_positions
from tests.factories import PaperTradeFactory, UserFactory, marks_spread_trade
from tests.fakes.market import HandOptionQuotes as HandQuotes
from tradeoptions import tenancy
from trades.models import PaperTrade, StrategyType, TradeLeg, TradeStatus

MIDDAY = datetime(2026, 12, 1, 17, 0, 5, tzinfo=UTC)  # Tuesday 12:00:05 in New York
FRONT, BACK = "261218", "270115"


def sym(strike: int, right: str, expiry: str = FRONT) -> str:
    return f"SPY{expiry}{right}{strike * 1000:08d}"


# Each template: its legs (symbol, side, ratio, entry), units, this cycle's quotes, and by hand the
# held mid, the held natural sides (current_bid: closing at them; current_ask: the other side) and
# the unrealized P&L = sign × (held mid − entry) × units × 100.
TEMPLATES = {
    "vertical-debit": (StrategyType.VERTICAL, 2,
                       [(sym(570, "C"), "LONG", 1, "4.30"), (sym(575, "C"), "SHORT", 1, "2.10")],
                       {sym(570, "C"): ("4.80", "5.00"), sym(575, "C"): ("2.30", "2.50")},
                       # 4.90 − 2.40; sell 4.80, buy 2.50; buy 5.00, sell 2.30; (2.50 − 2.20) × 2 × 100
                       ("debit", "2.20", "2.50", "2.30", "2.70", "60")),
    "vertical-credit": (StrategyType.VERTICAL, 1,
                        [(sym(500, "P"), "SHORT", 1, "3.00"), (sym(495, "P"), "LONG", 1, "1.50")],
                        {sym(500, "P"): ("2.00", "2.20"), sym(495, "P"): ("1.10", "1.30")},
                        # −(−2.10 + 1.20); buy back 2.20, sell 1.10; sell 2.00, buy 1.30; −(0.90 − 1.50) × 100
                        ("credit", "1.50", "0.90", "1.10", "0.70", "60")),
    "straddle-long": (StrategyType.STRADDLE, 1,
                      [(sym(570, "C"), "LONG", 1, "4.00"), (sym(570, "P"), "LONG", 1, "3.00")],
                      {sym(570, "C"): ("4.40", "4.60"), sym(570, "P"): ("2.90", "3.10")},
                      ("debit", "7.00", "7.50", "7.30", "7.70", "50")),
    "straddle-short": (StrategyType.STRADDLE, 1,
                       [(sym(570, "C"), "SHORT", 1, "4.00"), (sym(570, "P"), "SHORT", 1, "3.00")],
                       {sym(570, "C"): ("4.40", "4.60"), sym(570, "P"): ("2.90", "3.10")},
                       # buying both back costs 7.50 at the mids, 7.70 at the asks: −(7.50 − 7.00) × 100
                       ("credit", "7.00", "7.50", "7.70", "7.30", "-50")),
    "strangle-long": (StrategyType.STRANGLE, 3,
                      [(sym(580, "C"), "LONG", 1, "2.00"), (sym(560, "P"), "LONG", 1, "2.50")],
                      {sym(580, "C"): ("1.50", "1.60"), sym(560, "P"): ("2.00", "2.10")},
                      ("debit", "4.50", "3.60", "3.50", "3.70", "-270")),  # (3.60 − 4.50) × 3 × 100
    "iron-condor-short": (StrategyType.IRON_CONDOR, 2,
                          [(sym(500, "P"), "SHORT", 1, "1.60"), (sym(495, "P"), "LONG", 1, "0.90"),
                           (sym(600, "C"), "SHORT", 1, "1.50"), (sym(605, "C"), "LONG", 1, "0.70")],
                          {sym(500, "P"): ("0.95", "1.05"), sym(495, "P"): ("0.55", "0.65"),
                           sym(600, "C"): ("0.85", "0.95"), sym(605, "C"): ("0.35", "0.45")},
                          # sold for 1.50, marked at 1.00 − 0.60 + 0.90 − 0.40 = 0.90: +60 a unit, 2 units
                          # closing: shorts bought at 1.05 + 0.95, longs sold at 0.55 + 0.35 = 1.10
                          ("credit", "1.50", "0.90", "1.10", "0.70", "120")),
    "butterfly-long": (StrategyType.BUTTERFLY, 1,
                       [(sym(560, "C"), "LONG", 1, "9.00"), (sym(570, "C"), "SHORT", 2, "4.50"),
                        (sym(580, "C"), "LONG", 1, "1.50")],
                       {sym(560, "C"): ("10.90", "11.10"), sym(570, "C"): ("5.40", "5.60"),
                        sym(580, "C"): ("1.90", "2.10")},
                       # 11.00 − 2 × 5.50 + 2.00; 10.90 − 2 × 5.60 + 1.90; 11.10 − 2 × 5.40 + 2.10
                       ("debit", "1.50", "2.00", "1.60", "2.40", "50")),
    "calendar": (StrategyType.CALENDAR, 1,
                 [(sym(570, "C"), "SHORT", 1, "4.00"), (sym(570, "C", BACK), "LONG", 1, "6.00")],
                 {sym(570, "C"): ("3.40", "3.60"), sym(570, "C", BACK): ("5.90", "6.10")},
                 ("debit", "2.00", "2.50", "2.30", "2.70", "50")),  # the back leg quoted like the others
}


def _trade(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _legs(pk) -> list[TradeLeg]:
    with tenancy.system_context():
        return list(TradeLeg.objects.filter(trade_id=pk).order_by("position"))


def _snapshots(pk) -> list[PriceSnapshot]:
    with tenancy.system_context():
        return list(PriceSnapshot.objects.filter(trade_id=pk).order_by("timestamp"))


def _make(owner, name):
    strategy_type, units, legs, book, _ = TEMPLATES[name]
    return marks_spread_trade(owner, legs, strategy_type=strategy_type, qty=units), HandQuotes(book)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_is_marked_at_its_held_mid_natural_sides_and_pnl(db, name):
    trade, provider = _make(UserFactory(), name)
    direction, entry, mid, bid, ask, pnl = TEMPLATES[name][4]
    assert (trade.net_direction, trade.entry_price) == (direction, Decimal(entry))
    report = snapshot_positions(provider=provider, at=MIDDAY)
    assert (report.trades, report.written, report.unquoted) == (1, 1, 0)
    trade = _trade(trade.pk)
    assert (trade.current_price, trade.current_bid, trade.current_ask) == (Decimal(mid), Decimal(bid), Decimal(ask))
    assert trade.unrealized_pnl == trade.max_gain == trade.max_drawdown == Decimal(pnl)
    assert trade.last_updated == MIDDAY and trade.version == 1  # a mark is not a change the trader made
    for leg in _legs(trade.pk):
        quoted_bid, quoted_ask = (Decimal(side) for side in provider.book[leg.option_symbol])
        assert (leg.bid, leg.ask, leg.mark) == (quoted_bid, quoted_ask, (quoted_bid + quoted_ask) / 2)
        assert (leg.iv, leg.marked_at) == (Decimal("0.25"), MIDDAY)
    [snapshot] = _snapshots(trade.pk)
    assert (snapshot.timestamp, snapshot.mark_price, snapshot.bid, snapshot.ask, snapshot.iv) == (
        cycle_slot(MIDDAY), Decimal(mid), Decimal(bid), Decimal(ask), None)


def test_the_net_greeks_of_a_snapshot_are_the_positions(db):
    trade, provider = _make(UserFactory(), "butterfly-long")
    snapshot_positions(provider=provider, at=MIDDAY)
    [snapshot] = _snapshots(trade.pk)
    assert snapshot.delta == Decimal("0.5") * (1 - 2 + 1) and snapshot.theta == Decimal("0")  # 1 − 2 + 1 legs


def test_max_gain_and_drawdown_widen_with_the_held_pnl_of_a_credit_trade(db):
    trade, provider = _make(UserFactory(), "iron-condor-short")
    snapshot_positions(provider=provider, at=MIDDAY)
    provider.set(sym(500, "P"), "1.95", "2.05")  # the short put doubled: buying back costs 1.90 now
    later = MIDDAY + timedelta(minutes=1)
    snapshot_positions(provider=provider, at=later)
    trade = _trade(trade.pk)
    assert trade.current_price == Decimal("1.90")  # 2.00 − 0.60 + 0.90 − 0.40
    assert trade.unrealized_pnl == trade.max_drawdown == Decimal("-80")  # −(1.90 − 1.50) × 2 × 100
    assert trade.max_gain == Decimal("120")
    assert [s.mark_price for s in _snapshots(trade.pk)] == [Decimal("0.90"), Decimal("1.90")]


def test_a_leg_missing_from_the_quotes_keeps_the_last_net_and_the_trade_reads_stale(db, client):
    owner = UserFactory()
    trade, provider = _make(owner, "iron-condor-short")
    snapshot_positions(provider=provider, at=MIDDAY)
    del provider.book[sym(605, "C")]
    provider.set(sym(500, "P"), "1.95", "2.05")
    later = MIDDAY + timedelta(minutes=1)
    report = snapshot_positions(provider=provider, at=later)
    assert (report.trades, report.written, report.unquoted) == (1, 0, 1)
    trade = _trade(trade.pk)
    # the net of the first cycle stands: never 2.00 − 0.60 + 0.90 − (the call wing's old 0.40)
    assert (trade.current_price, trade.unrealized_pnl, trade.last_updated) == (Decimal("0.90"), Decimal("120"), MIDDAY)
    assert trade.max_drawdown == Decimal("120")
    marks = {leg.option_symbol: (leg.mark, leg.marked_at) for leg in _legs(trade.pk)}
    assert marks[sym(500, "P")] == (Decimal("2.00"), later)  # its own quote is fresh
    assert marks[sym(605, "C")] == (Decimal("0.40"), MIDDAY)  # kept, not erased
    assert len(_snapshots(trade.pk)) == 1
    client.force_login(owner)
    body = client.get(f"/api/trades/{trade.pk}").json()
    assert body["mark_stale"] is True and body["net_mark"] is None and body["current_price"] == "0.9000"
    provider.set(sym(605, "C"), "0.35", "0.45")  # every leg quoted again: a fresh net
    snapshot_positions(provider=provider, at=later + timedelta(minutes=1))
    body = client.get(f"/api/trades/{trade.pk}").json()
    assert (body["mark_stale"], body["net_mark"], body["current_price"]) == (False, "-1.9000", "1.9000")


def test_the_api_reads_the_marked_spread_net_liquidation_and_credit_pnl(db, client):
    owner = UserFactory()
    trade, provider = _make(owner, "iron-condor-short")
    client.force_login(owner)
    before = client.get(f"/api/trades/{trade.pk}").json()
    assert before["net_mark"] is None and before["mark_stale"] is False  # never marked: unknown, not stale
    snapshot_positions(provider=provider, at=MIDDAY)
    body = client.get(f"/api/trades/{trade.pk}").json()
    # signed net −0.90 (buying back costs 0.90); closing at the natural sides costs 1.10 × 2 units × 100
    assert (body["net_mark"], body["liquidation_value"], body["liquidation_value_dollars"]) == (
        "-0.9000", "-1.1000", "-220.00")
    assert (body["current_price"], body["current_bid"], body["unrealized_pnl"], body["mark_stale"]) == (
        "0.9000", "1.1000", "120.00", False)
    # a credit trade's stop (3.00) sits above its mark and its target (0.75) below: both still ahead
    assert (body["sl_distance"], body["tp_distance"]) == ("2.1000", "0.1500")
    assert [(leg["symbol"], leg["bid"], leg["ask"], leg["mark"]) for leg in body["legs"]][0] == (
        sym(500, "P"), "0.9500", "1.0500", "1.0000")
    [row] = [row for row in client.get("/api/trades?status=OPEN").json()["results"] if row["id"] == trade.pk]
    assert (row["net_mark"], row["unrealized_pnl"]) == ("-0.9000", "120.00")


def test_spreads_and_singles_share_one_quote_request_each_contract_once(db):
    owner = UserFactory()
    condor, provider = _make(owner, "iron-condor-short")
    vertical = marks_spread_trade(owner, TEMPLATES["vertical-credit"][2], strategy_type=StrategyType.VERTICAL)
    calendar = marks_spread_trade(owner, TEMPLATES["calendar"][2], strategy_type=StrategyType.CALENDAR)
    single = PaperTradeFactory(owner=owner, ticker="SPY", option_type="CALL", strike=Decimal("570"),
                               expiry=date(2026, 12, 18), entry_price=Decimal("3.00"))
    for name in ("vertical-credit", "calendar"):
        provider.book.update(TEMPLATES[name][3])
    report = snapshot_positions(provider=provider, at=MIDDAY)
    [asked] = provider.calls  # one external call, however many legs
    assert sorted(asked) == sorted(set(asked)) and set(asked) == set(provider.book)
    assert (report.trades, report.written, report.unquoted) == (4, 4, 0)
    assert _trade(single.pk).current_price == Decimal("3.50")  # the single path: 570C 3.40 / 3.60
    assert _trade(calendar.pk).current_price == Decimal("2.50")
    # the puts the condor and the vertical share are quoted once (the vertical's book): both read them
    assert _trade(vertical.pk).current_price == Decimal("0.90")  # 2.10 − 1.20
    assert _trade(condor.pk).current_price == Decimal("1.40")  # 2.10 − 1.20 + 0.90 − 0.40


def test_database_work_is_the_same_for_one_spread_or_twenty(db):
    def queries(at, provider):
        with CaptureQueriesContext(connection) as captured:
            snapshot_positions(provider=provider, at=at)
        return len(captured)

    owner = UserFactory()
    _, provider = _make(owner, "iron-condor-short")
    PaperTradeFactory(owner=owner, ticker="SPY", option_type="CALL", strike=Decimal("600"), expiry=date(2026, 12, 18))
    one = queries(MIDDAY, provider)
    for name in TEMPLATES:
        for _ in range(2):
            _make(owner, name)
        provider.book.update(TEMPLATES[name][3])
    twenty = queries(MIDDAY + timedelta(seconds=40), provider)
    with tenancy.system_context():
        assert PaperTrade.objects.exclude(strategy_type=StrategyType.SINGLE).count() == 17
    assert one == twenty


def test_a_spread_adds_two_round_trips_and_a_single_only_cycle_none(db):
    """Singles alone: the cycle's three statements (read, snapshots, marks) and its context set-up,
    as before spreads; a held spread adds its legs' read and their one UPDATE."""
    def queries(at, provider):
        with CaptureQueriesContext(connection) as captured:
            snapshot_positions(provider=provider, at=at)
        return [query["sql"] for query in captured]

    owner = UserFactory()
    PaperTradeFactory(owner=owner, ticker="SPY", option_type="CALL", strike=Decimal("600"), expiry=date(2026, 12, 18))
    provider = HandQuotes({sym(600, "C"): ("1.00", "1.20")})
    singles = queries(MIDDAY, provider)
    _make(owner, "vertical-debit")
    provider.book.update(TEMPLATES["vertical-debit"][3])
    with_spread = queries(MIDDAY + timedelta(seconds=40), provider)
    assert len(with_spread) == len(singles) + 2
    assert sum("trades_tradeleg" in sql for sql in singles) == 0


def test_a_closed_or_pending_spread_is_not_marked(db):
    owner = UserFactory()
    strategy_type, _, legs, book, _ = TEMPLATES["vertical-debit"]
    pending = marks_spread_trade(owner, legs, strategy_type=strategy_type, status=TradeStatus.PENDING,
                                 entry_price=None, entry_date=None)
    report = snapshot_positions(provider=HandQuotes(book), at=MIDDAY)
    assert report.trades == 0 and all(leg.marked_at is None for leg in _legs(pending.pk))


def test_on_the_simulated_market_the_row_is_the_held_net_of_the_legs_it_stored(db):
    """A real source (the simulated market) quotes a condor and a calendar's back month in the one
    request; each row's mark is the held net of the marks its legs stored, and its P&L the sum of
    the legs' own, side × ratio × (mark − entry) × units × 100, to the cent."""
    from monitoring.marketdata.simulated import SimulatedProvider

    owner = UserFactory()
    trades = [marks_spread_trade(owner, TEMPLATES[name][2], strategy_type=TEMPLATES[name][0], qty=TEMPLATES[name][1])
              for name in ("iron-condor-short", "calendar", "butterfly-long")]
    report = snapshot_positions(provider=SimulatedProvider(seed="spread-marks", clock=lambda: MIDDAY), at=MIDDAY)
    assert (report.trades, report.written, report.unquoted) == (3, 3, 0)
    for trade in trades:
        row, legs = _trade(trade.pk), _legs(trade.pk)
        assert all(leg.marked_at == MIDDAY and leg.mark is not None for leg in legs)
        net = sum(leg.sign * leg.ratio * leg.mark for leg in legs)
        assert row.current_price == max(net if row.net_direction == "debit" else -net, Decimal(0))
        by_legs = sum(leg.sign * leg.ratio * (leg.mark - leg.entry_price) * row.qty * 100 for leg in legs)
        assert row.unrealized_pnl == by_legs.quantize(Decimal("0.01"))
        assert [s.mark_price for s in _snapshots(trade.pk)] == [row.current_price]
