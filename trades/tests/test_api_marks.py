"""A position's mark tells the truth on the API: its source, whether it is delayed, the source's own
quote time, and whether it is frozen (the market reads open, really or by FORCE_MARKET_OPEN, but the
source has nothing new); and a pending close says how its sell is priced.

The clock is pinned in every test; the market is the real one (the XNYS calendar), not a hand-driven
one, so FORCE_MARKET_OPEN works as in development."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.services import snapshot_positions
from tests.factories import PaperTradeFactory, PriceSnapshotFactory, TradeEventFactory
from tradeoptions import tenancy
from trades.models import EventKind, TradeStatus
from trades.selectors import marks_freshness, pending_closes

FRIDAY_CLOSE = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)  # Fri 16:00 in New York
SATURDAY = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)  # Sat 12:00 in New York: no session
TUESDAY = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # Tue 12:00 in New York: in the session
CYCLE = timedelta(seconds=40)  # the monitor's snapshot period
CALL = {"ticker": "SPY", "option_type": "CALL", "strike": Decimal("600"), "expiry": date(2026, 12, 18)}


@pytest.fixture
def client(api_as, trader):
    return api_as(trader)


def _position(client, trade):
    (row,) = [row for row in client.get("/api/trades").json()["results"] if row["id"] == trade.pk]
    return row


def _cycles(trade, *, until, count, quote_time, delayed=False):
    """`count` snapshots one cycle apart, the last at `until`; `quote_time(slot)` is the source's time."""
    for step in range(count):
        slot = until - CYCLE * (count - 1 - step)
        PriceSnapshotFactory(trade=trade, timestamp=slot, quote_time=quote_time(slot), delayed=delayed)


def test_after_the_close_the_mark_carries_the_sources_quote_time_and_is_not_frozen(client, trader, settings):
    """Market closed: the page shows "last quote Fri 16:00" from `mark_quote_time`; frozen is
    about an open market only."""
    settings.FORCE_MARKET_OPEN = False
    trade = PaperTradeFactory(owner=trader)
    _cycles(trade, until=FRIDAY_CLOSE + timedelta(minutes=5), count=3, quote_time=lambda slot: FRIDAY_CLOSE)
    with time_machine.travel(SATURDAY, tick=False):
        row = _position(client, trade)
    assert row["next_session_open"] == "2026-12-07T14:30:00Z"  # Monday 09:30 in New York
    assert (row["mark_source"], row["mark_delayed"], row["mark_quote_time"], row["mark_frozen"]) == (
        "simulated", False, "2026-12-04T21:00:00Z", False)


@pytest.mark.parametrize(("day", "quoted", "frozen"), [
    (SATURDAY, "2026-12-04T21:00:00Z", True),  # every cycle quotes Friday's close: nothing new
    (TUESDAY, "2026-12-01T17:00:00Z", False),  # in a real session the quotes move
], ids=["saturday", "tuesday"])
def test_with_force_market_open_a_source_with_nothing_new_is_frozen(client, trader, settings, day, quoted, frozen):
    """The monitor's own cycle with the simulated source and FORCE_MARKET_OPEN: on a Saturday the
    cycles run but every quote is Friday's close, and the API says frozen; on a Tuesday, live."""
    settings.FORCE_MARKET_OPEN = True
    trade = PaperTradeFactory(owner=trader, **CALL, entry_price=Decimal("5.00"))
    for at in (day - CYCLE * 2, day - CYCLE, day):
        snapshot_positions(provider=SimulatedProvider(seed="frozen", clock=lambda at=at: at), at=at)
    with time_machine.travel(day + timedelta(seconds=5), tick=False):
        row = _position(client, trade)
    assert row["next_session_open"] is None  # forced open: nothing says "closed"
    assert (row["mark_source"], row["mark_quote_time"], row["mark_frozen"]) == ("simulated", quoted, frozen)


@pytest.mark.parametrize(("age", "delayed", "frozen"), [
    (timedelta(minutes=4), False, False),
    (timedelta(minutes=6), False, True),  # older than a live quote may be
    (timedelta(minutes=16), True, False),  # a delayed source is 15 minutes late by design
    (timedelta(minutes=21), True, True),
])
def test_a_quote_older_than_a_live_one_may_be_is_frozen_while_the_market_is_open(client, trader, settings,
                                                                                  age, delayed, frozen):
    settings.FORCE_MARKET_OPEN = False
    trade = PaperTradeFactory(owner=trader)
    PriceSnapshotFactory(trade=trade, timestamp=TUESDAY, quote_time=TUESDAY - age, delayed=delayed, source="orats")
    with time_machine.travel(TUESDAY + timedelta(seconds=5), tick=False):
        row = _position(client, trade)
    assert (row["mark_source"], row["mark_delayed"], row["mark_frozen"]) == ("orats", delayed, frozen)


@pytest.mark.parametrize(("moving", "frozen"), [(False, True), (True, False)])
def test_a_quote_that_does_not_move_across_the_cycles_is_frozen_whatever_the_web_servers_clock(
        client, trader, settings, moving, frozen):
    """Counted on the monitor's cycles, not only on the clock: here the web server's clock is ten
    minutes behind the worker's (so every quote looks fresh by the clock), and eleven cycles over
    6:40 minutes carried the same quote time."""
    settings.FORCE_MARKET_OPEN = True
    trade = PaperTradeFactory(owner=trader)
    start = TUESDAY - CYCLE * 10
    _cycles(trade, until=TUESDAY, count=11, quote_time=(lambda slot: slot) if moving else (lambda slot: start))
    with time_machine.travel(TUESDAY - timedelta(minutes=10), tick=False):
        row = _position(client, trade)
    assert row["mark_frozen"] is frozen


def test_a_trade_without_marks_says_so(client, trader, settings):
    settings.FORCE_MARKET_OPEN = True
    trade = PaperTradeFactory(owner=trader)
    with time_machine.travel(TUESDAY, tick=False):
        row = client.get(f"/api/trades/{trade.pk}").json()
    assert (row["mark_source"], row["mark_delayed"], row["mark_quote_time"], row["mark_frozen"],
            row["close_order"]) == (None, False, None, False, None)


def test_the_detail_says_the_same_as_the_list(client, trader, settings):
    settings.FORCE_MARKET_OPEN = True
    trade = PaperTradeFactory(owner=trader)
    PriceSnapshotFactory(trade=trade, timestamp=TUESDAY, quote_time=TUESDAY - timedelta(hours=1), delayed=True)
    with time_machine.travel(TUESDAY, tick=False):
        detail = client.get(f"/api/trades/{trade.pk}").json()
        listed = _position(client, trade)
    names = ("mark_source", "mark_delayed", "mark_quote_time", "mark_frozen")
    assert [detail[name] for name in names] == [listed[name] for name in names] == [
        "simulated", True, "2026-12-01T16:00:00Z", True]


def test_a_list_of_held_trades_costs_the_same_queries_for_2_or_20(client, trader, settings,
                                                                   django_assert_num_queries):
    settings.FORCE_MARKET_OPEN = True

    def held(count):
        for index in range(count):
            trade = PaperTradeFactory(owner=trader, status=TradeStatus.CLOSING if index % 2 else TradeStatus.OPEN)
            PriceSnapshotFactory(trade=trade, timestamp=TUESDAY, quote_time=TUESDAY)
            TradeEventFactory(trade=trade, old_status=TradeStatus.OPEN, new_status=TradeStatus.CLOSING)

    with time_machine.travel(TUESDAY, tick=False):
        held(2)
        with CaptureQueriesContext(connection) as baseline:
            assert client.get("/api/trades").status_code == 200
        held(18)
        with django_assert_num_queries(len(baseline.captured_queries)):
            rows = client.get("/api/trades").json()["results"]
    assert len(rows) == 20 and {row["mark_source"] for row in rows} == {"simulated"}
    assert {str(row["close_order"]) for row in rows} == {"None", str({"order_type": "market", "limit_price": None})}


# --- the pending close's order type --------------------------------------------------------------


def _event(trade, old, new, kind=EventKind.STATE_CHANGE, **payload):
    return TradeEventFactory(trade=trade, old_status=old, new_status=new, kind=kind, payload=payload)


def test_a_pending_close_sells_at_market_until_a_switch_to_limit_is_placed(trader):
    from tradeoptions import tenancy

    trade = PaperTradeFactory(owner=trader, status=TradeStatus.CLOSING)
    closing, open_ = TradeStatus.CLOSING, TradeStatus.OPEN
    _event(trade, open_, closing)
    _event(trade, closing, closing, EventKind.ORDER_PLACED)

    def now():
        with tenancy.acting_as(trader.pk):
            return pending_closes(trade_ids=[trade.pk])[trade.pk]

    assert (now().order_type, now().limit_price) == ("market", None)
    _event(trade, closing, closing, requested="close_reprice", order_type="limit", limit_price="5.10")
    assert now().order_type == "market"  # asked for, but its sell is not placed (the broker may refuse it)
    _event(trade, closing, closing, EventKind.ORDER_PLACED)
    assert (now().order_type, now().limit_price) == ("limit", Decimal("5.10"))
    _event(trade, closing, open_, requested="close_cancel")  # withdrawn, then closed again: at market
    _event(trade, open_, closing)
    assert (now().order_type, now().limit_price) == ("market", None)


def test_the_mark_source_is_each_trades_own_latest_snapshot_over_every_month(trader, other_trader):
    """marks_freshness takes each trade's latest snapshot (one index probe per trade, issue 20):
    the newest timestamp whatever the month, the later kind on a tie, nothing for a trade without
    snapshots, and nothing of another tenant's trade even when asked for it."""
    mine, unmarked = PaperTradeFactory(owner=trader), PaperTradeFactory(owner=trader)
    theirs = PaperTradeFactory(owner=other_trader)
    PriceSnapshotFactory(trade=mine, timestamp=TUESDAY - timedelta(days=40), source="orats")
    PriceSnapshotFactory(trade=mine, timestamp=TUESDAY, kind="FILL", source="tradier")
    PriceSnapshotFactory(trade=mine, timestamp=TUESDAY, kind="INTRADAY", source="simulated")
    PriceSnapshotFactory(trade=mine, timestamp=TUESDAY - CYCLE, source="replay")
    PriceSnapshotFactory(trade=theirs, timestamp=TUESDAY + CYCLE, source="orats")
    with tenancy.acting_as(trader.pk):
        found = marks_freshness(trade_ids=[mine.pk, unmarked.pk, theirs.pk], now=SATURDAY, market_open=False)
    assert {pk: mark.source for pk, mark in found.items()} == {mine.pk: "simulated"}


def test_a_quote_too_old_to_be_live_is_frozen_without_looking_for_its_first_cycle(trader):
    """The first cycle of a quote only matters while the quote is young enough to be live: an old
    one is frozen whatever it was, so the page asks one query, not two."""
    stale, live = PaperTradeFactory(owner=trader), PaperTradeFactory(owner=trader)
    _cycles(stale, until=TUESDAY, count=3, quote_time=lambda slot: TUESDAY - timedelta(hours=2))
    _cycles(live, until=TUESDAY, count=3, quote_time=lambda slot: slot - timedelta(seconds=2))
    with tenancy.acting_as(trader.pk), CaptureQueriesContext(connection) as queries:
        only_stale = marks_freshness(trade_ids=[stale.pk], now=TUESDAY, market_open=True)
    assert only_stale[stale.pk].frozen and len(queries.captured_queries) == 1
    with tenancy.acting_as(trader.pk):
        both = marks_freshness(trade_ids=[stale.pk, live.pk], now=TUESDAY, market_open=True)
    assert (both[stale.pk].frozen, both[live.pk].frozen) == (True, False)
