"""The snapshot cycle marks every held position once per slot, with constant database work."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.models import PriceSnapshot, SnapshotKind
from monitoring.services import cycle_slot, snapshot_positions
from tests.factories import PaperTradeFactory, UserFactory
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus

MIDDAY = datetime(2026, 12, 1, 17, 0, 5, tzinfo=UTC)  # Tuesday 12:00:05 in New York
SATURDAY = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
HELD_SINCE = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # before every cycle here, whatever today is
CALL = {"ticker": "SPY", "option_type": "CALL", "strike": Decimal("600"), "expiry": date(2026, 12, 18)}
PUT = {"ticker": "QQQ", "option_type": "PUT", "strike": Decimal("500"), "expiry": date(2026, 12, 18)}


class CountingProvider:
    """The simulated market, counting what the cycle asks of it."""

    def __init__(self, at):
        self.inner = SimulatedProvider(seed="snapshot-test", clock=lambda: at)
        self.calls, self.symbols = 0, []

    def option_quotes(self, contracts):
        contracts = list(contracts)
        self.calls += 1
        self.symbols += contracts
        return self.inner.option_quotes(contracts)


def _snapshots():
    with tenancy.system_context():
        return list(PriceSnapshot.objects.order_by("trade_id", "timestamp"))


def _trade(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


@pytest.fixture
def positions(db):
    """Three traders; five held positions on two contracts, plus trades the cycle must ignore."""
    held = []
    for user in UserFactory.create_batch(3):
        held.append(PaperTradeFactory(owner=user, **CALL, entry_price=Decimal("5.00"), entry_date=HELD_SINCE))
    held += [PaperTradeFactory(owner=held[0].owner, **PUT, entry_date=HELD_SINCE),
             PaperTradeFactory(owner=held[1].owner, **PUT, entry_date=HELD_SINCE)]
    PaperTradeFactory(owner=held[0].owner, **CALL, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    PaperTradeFactory(owner=held[0].owner, **CALL, status=TradeStatus.CANCELED, entry_price=None, entry_date=None)
    return held


def test_each_contract_is_quoted_once_and_each_held_trade_gets_one_snapshot(positions):
    provider = CountingProvider(MIDDAY)
    report = snapshot_positions(provider=provider, at=MIDDAY)
    assert provider.calls == 1 and sorted(provider.symbols) == sorted({t.option_symbol for t in positions})
    assert (report.trades, report.contracts, report.written) == (5, 2, 5)
    snapshots = _snapshots()
    assert sorted(s.trade_id for s in snapshots) == sorted(t.pk for t in positions)
    assert {s.timestamp for s in snapshots} == {cycle_slot(MIDDAY)} and {s.source for s in snapshots} == {"simulated"}
    assert all(s.owner_id == _trade(s.trade_id).owner_id for s in snapshots)


def test_a_rerun_of_the_same_slot_writes_nothing_twice(positions):
    snapshot_positions(provider=CountingProvider(MIDDAY), at=MIDDAY)
    again = snapshot_positions(provider=CountingProvider(MIDDAY + timedelta(seconds=20)),
                               at=MIDDAY + timedelta(seconds=20))
    assert again.written == 0 and len(_snapshots()) == 5
    later = MIDDAY + timedelta(seconds=40)
    assert snapshot_positions(provider=CountingProvider(later), at=later).written == 5


def test_marks_and_pnl_follow_the_quote_and_keep_their_extremes(positions):
    call = positions[0]
    snapshot_positions(provider=CountingProvider(MIDDAY), at=MIDDAY)
    [first] = [s for s in _snapshots() if s.trade_id == call.pk]
    trade = _trade(call.pk)
    expected = (first.mark_price - Decimal("5.00")) * call.qty * 100
    assert (trade.current_price, trade.current_bid, trade.current_ask) == (first.mark_price, first.bid, first.ask)
    assert trade.unrealized_pnl == expected.quantize(Decimal("0.01"))
    assert trade.max_gain == trade.max_drawdown == trade.unrealized_pnl
    assert trade.version == 1  # a mark is not a change the trader made
    later = MIDDAY + timedelta(hours=2)
    snapshot_positions(provider=CountingProvider(later), at=later)
    trade = _trade(call.pk)
    assert trade.max_gain >= trade.unrealized_pnl >= trade.max_drawdown
    assert trade.max_gain > trade.max_drawdown or trade.unrealized_pnl == expected.quantize(Decimal("0.01"))


def test_the_unrealized_pnl_counts_only_the_contracts_still_held(positions):
    """An exit leg sold one of the trade's two contracts: the mark values the one left."""
    call = positions[0]
    with tenancy.system_context():
        PaperTrade.objects.filter(pk=call.pk).update(qty=2, exit_filled_qty=1, exit_filled_price=Decimal("6.5"))
    snapshot_positions(provider=CountingProvider(MIDDAY), at=MIDDAY)
    [first] = [s for s in _snapshots() if s.trade_id == call.pk]
    assert _trade(call.pk).unrealized_pnl == ((first.mark_price - Decimal("5.00")) * 1 * 100).quantize(Decimal("0.01"))


def test_nothing_is_polled_while_the_market_is_closed(positions):
    provider = CountingProvider(SATURDAY)
    report = snapshot_positions(provider=provider, at=SATURDAY)
    assert report.skipped == "market closed" and provider.calls == 0 and _snapshots() == []


def test_a_bookend_is_taken_even_outside_the_session(positions):
    close = datetime(2026, 12, 1, 21, 5, tzinfo=UTC)
    report = snapshot_positions(provider=CountingProvider(close), at=close, kind=SnapshotKind.POST_MARKET,
                                slot=close)
    assert report.written == 5 and {s.kind for s in _snapshots()} == {SnapshotKind.POST_MARKET}


def test_database_work_does_not_grow_with_the_number_of_positions(positions):
    def queries(at):
        with CaptureQueriesContext(connection) as captured:
            snapshot_positions(provider=CountingProvider(at), at=at)
        return len(captured)

    few = queries(MIDDAY)
    owner = positions[0].owner
    PaperTradeFactory.create_batch(40, owner=owner, **PUT)
    many = queries(MIDDAY + timedelta(seconds=40))
    assert few == many


def test_each_snapshot_says_its_source_and_whether_it_is_delayed(positions, client):
    """A delayed source (ORATS delayed, Tradier sandbox) marks its snapshots delayed, and the chart
    API says so beside the source; a real-time source does not."""
    delayed = CountingProvider(MIDDAY)
    delayed.delayed = True
    snapshot_positions(provider=delayed, at=MIDDAY)
    later = MIDDAY + timedelta(minutes=1)
    snapshot_positions(provider=CountingProvider(later), at=later)  # no `delayed`: a real-time source
    trade = positions[0]
    client.force_login(trade.owner)
    points = client.get(f"/api/trades/{trade.pk}/snapshots").json()
    points = points["results"] if isinstance(points, dict) and "results" in points else points
    assert [(point["source"], point["delayed"]) for point in points] == [("simulated", True), ("simulated", False)]


def test_a_cycle_s_snapshots_and_marks_commit_without_waiting_for_the_disk(positions):
    """Only the snapshot write's own transaction: the setting is SET LOCAL."""
    seen = []

    def spy(execute, sql, params, many, context):
        if sql.lstrip().startswith(("INSERT INTO monitoring_pricesnapshot", "UPDATE trades_papertrade")):
            context["cursor"].execute("SELECT current_setting('synchronous_commit')")
            seen.append(context["cursor"].fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        report = snapshot_positions(provider=CountingProvider(MIDDAY), at=MIDDAY)
    assert report.written == len(positions) and seen == ["off", "off"]


@pytest.mark.django_db(transaction=True)
def test_a_marked_trade_keeps_its_new_version_on_its_own_page(positions):
    """Marks touch no indexed column, so with room on the page (trades 0033's fillfactor) every
    held trade's mark is a HOT update: no new entry in any of the table's indexes. Sixty trades
    fill several pages, where a table packed full moves every one of them (0 HOT of 65) instead.
    Most rather than all: the factory's own writes, and whatever earlier tests left on the
    table's pages until the next prune, leave some pages shorter of room."""
    PaperTradeFactory.create_batch(60, owner=positions[0].owner, **PUT, entry_date=HELD_SINCE)
    with tenancy.system_context(), connection.cursor() as cursor:
        snapshot_positions(provider=CountingProvider(MIDDAY), at=MIDDAY)
        cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                       "WHERE relname = 'trades_papertrade'")
        updated, hot = cursor.fetchone()
    assert updated == len(positions) + 60 and hot >= updated / 2, (hot, updated)
    with connection.cursor() as cursor:  # and the commit that follows waits for the disk again
        cursor.execute("SELECT current_setting('synchronous_commit')")
        assert cursor.fetchone()[0] == "on"
