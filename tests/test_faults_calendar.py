"""The monitor lived through, minute by minute, with an injected clock: the weekend daylight saving
ended (Friday 2026-10-30 to Monday 2026-11-02) and the end of Thanksgiving week (Wednesday
2026-11-25 to the weekend after: a holiday's expiry moved to the day before, the holiday on
Thursday, the 13:00 early close on Friday).

Only days that are a calendar case of their own: the last EDT session and the first EST one (DST),
the session before the holiday, the holiday, the early close, and two weekends. Ordinary sessions
add nothing the Monday after DST does not prove, and each costs some 450 real order cycles (the
Monday and Tuesday of Thanksgiving week and the Monday after it, once lived too, took this test
near pytest's 300 s limit on a loaded machine; docs/reliability.md, section 6).

Every minute runs what beat runs every minute (the bookend check and the order cycle, with expiry
settlement); the 40-second snapshot job runs every tenth minute to keep the test short. Expected
times are written out in UTC by hand, not computed by the code under test.
"""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers import market as market_registry
from monitoring import clock as market_clock
from monitoring import services
from monitoring.market import MarketDataMarket
from monitoring.marketdata import provider_for
from monitoring.models import PriceSnapshot, SnapshotKind
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from trades.models import CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus

PRE, POST = SnapshotKind.PRE_MARKET, SnapshotKind.POST_MARKET


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch, settings):
    """One injected clock for every layer: the simulated quotes, the market and the tasks' `now`."""
    settings.FORCE_MARKET_OPEN = False
    cache.clear()
    ticking = Clock(utc(2026, 10, 30, 4, 0))
    provider = provider_for("simulated", clock=ticking)
    monkeypatch.setattr(market_registry, "_market", MarketDataMarket(provider, clock=ticking))
    monkeypatch.setattr(market_clock, "now", ticking)
    ticking.provider = provider
    return ticking


def live_through(clock, start: datetime, end: datetime) -> dict:
    """Run beat's minute jobs from `start` to `end`; returns what they did, by simulated minute."""
    seen = {"bookends": [], "settled": {}, "cycles": [], "missed": []}
    with tenancy.system_context():
        closed_before = set(PaperTrade.objects.filter(status=TradeStatus.CLOSED).values_list("pk", flat=True))
    clock.at = start
    minute = 0
    while clock.at < end:
        at = clock.at
        for report in services.take_due_bookends(provider=clock.provider, at=at):
            (seen["missed"] if report.missed else seen["bookends"]).append((report.kind, report.due, at))
        cycle = services.orders_cycle(provider=clock.provider, at=at)
        seen["cycles"].append((at, cycle.skipped))
        if cycle.expiry and cycle.expiry.settled:
            with tenancy.system_context():
                closed = PaperTrade.objects.filter(status=TradeStatus.CLOSED, close_date__isnull=False)
                for pk in set(closed.values_list("pk", flat=True)) - closed_before:
                    seen["settled"].setdefault(pk, at)
        if minute % 10 == 0:
            services.snapshot_positions(provider=clock.provider, at=at)
        clock.at += timedelta(minutes=1)
        minute += 1
    return seen


def new_york_day(at: datetime) -> date:
    return market_clock.market_date(at)


@pytest.mark.django_db
def test_a_week_across_the_end_of_daylight_saving_and_thanksgiving(trader, clock):
    held = PaperTradeFactory(owner=trader, expiry=date(2026, 12, 18), qty=1)
    before_dst = PaperTradeFactory(owner=trader, expiry=date(2026, 10, 30), qty=1)
    on_holiday = PaperTradeFactory(owner=trader, expiry=date(2026, 11, 26), qty=1)  # moves to Wednesday's close
    early_close = PaperTradeFactory(owner=trader, expiry=date(2026, 11, 27), qty=1, strike=Decimal("300"))  # deep ITM

    dst = live_through(clock, utc(2026, 10, 30, 4, 0), utc(2026, 11, 3, 5, 0))  # Fri 00:00 EDT .. Tue 00:00 EST
    thanksgiving = live_through(clock, utc(2026, 11, 25, 5, 0), utc(2026, 11, 30, 5, 0))  # Wed .. Mon 00:00 EST

    # Every bookend once, at its own time: 9:25 and 16:05 New York, 13:05 after the early close.
    assert [(kind, due) for kind, due, _ in dst["bookends"]] == [
        (POST, utc(2026, 10, 29, 20, 5)),  # Thursday's, caught up at the first minute: its quotes still hold
        (PRE, utc(2026, 10, 30, 13, 25)), (POST, utc(2026, 10, 30, 20, 5)),  # EDT
        (PRE, utc(2026, 11, 2, 14, 25)), (POST, utc(2026, 11, 2, 21, 5)),  # EST
    ]
    assert [(kind, due) for kind, due, _ in thanksgiving["bookends"]] == [
        (POST, utc(2026, 11, 24, 21, 5)),  # Tuesday's, caught up at the first minute
        (PRE, utc(2026, 11, 25, 14, 25)), (POST, utc(2026, 11, 25, 21, 5)),
        # Thursday 26: Thanksgiving, nothing.
        (PRE, utc(2026, 11, 27, 14, 25)), (POST, utc(2026, 11, 27, 18, 5)),  # the early close
        # Saturday 28 and Sunday 29: nothing.
    ]
    # The monitor "started" after the session before each window had opened: that pre-market
    # bookend is recorded as missed, once, at the first minute.
    assert [(kind, due, at) for kind, due, at in dst["missed"]] == [
        (PRE, utc(2026, 10, 29, 13, 25), utc(2026, 10, 30, 4, 0))]
    assert [(kind, due, at) for kind, due, at in thanksgiving["missed"]] == [
        (PRE, utc(2026, 11, 24, 14, 25), utc(2026, 11, 25, 5, 0))]
    for week in (dst, thanksgiving):
        for _, due, taken_at in week["bookends"][1:]:
            assert taken_at == due  # on time, at the minute it became due

    # Expiries settled at the close that applied, and not a minute earlier.
    assert dst["settled"] == {before_dst.pk: utc(2026, 10, 30, 20, 0)}  # 16:00 EDT
    assert thanksgiving["settled"] == {on_holiday.pk: utc(2026, 11, 25, 21, 0),  # Wednesday 16:00 EST
                                       early_close.pk: utc(2026, 11, 27, 18, 0)}  # Friday 13:00
    with tenancy.system_context():
        for trade, cutoff in ((before_dst, utc(2026, 10, 30, 20, 0)), (on_holiday, utc(2026, 11, 25, 21, 0)),
                              (early_close, utc(2026, 11, 27, 18, 0))):
            trade = PaperTrade.objects.get(pk=trade.pk)
            assert trade.close_date == cutoff
            closes = TradeEvent.objects.filter(trade=trade, kind=EventKind.STATE_CHANGE, new_status=TradeStatus.CLOSED)
            assert closes.count() == 1
        assert PaperTrade.objects.get(pk=before_dst.pk).close_reason == CloseReason.EXPIRED  # 570 call, far OTM
        itm = PaperTrade.objects.get(pk=early_close.pk)
        underlying_close = Decimal(itm.events.get(new_status=TradeStatus.CLOSED).payload["underlying_close"])
        assert (itm.close_reason, itm.close_price) == (CloseReason.EXPIRED_ITM, underlying_close - 300)
        assert PaperTrade.objects.get(pk=held.pk).status == TradeStatus.OPEN

    # Nothing on the holiday or the weekends: the order cycle stood still, no snapshot was taken.
    for week in (dst, thanksgiving):
        for at, skipped in week["cycles"]:
            if new_york_day(at) in (date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 26), date(2026, 11, 28),
                                    date(2026, 11, 29)):
                assert skipped == "market closed", at
    with tenancy.system_context():
        intraday = list(PriceSnapshot.objects.filter(trade=held, kind=SnapshotKind.INTRADAY)
                        .values_list("timestamp", flat=True))
        stamps = Counter(PriceSnapshot.objects.values_list("trade_id", "timestamp", "kind"))
    assert max(stamps.values()) == 1
    sessions = {date(2026, 10, 30): (utc(2026, 10, 30, 13, 30), utc(2026, 10, 30, 20, 0)),
                date(2026, 11, 2): (utc(2026, 11, 2, 14, 30), utc(2026, 11, 2, 21, 0)),
                date(2026, 11, 25): (utc(2026, 11, 25, 14, 30), utc(2026, 11, 25, 21, 0)),
                date(2026, 11, 27): (utc(2026, 11, 27, 14, 30), utc(2026, 11, 27, 18, 0))}
    by_day = Counter(new_york_day(stamp) for stamp in intraday)
    assert set(by_day) == set(sessions)
    for stamp in intraday:
        opens, closes = sessions[new_york_day(stamp)]
        assert opens <= stamp < closes, stamp
    assert by_day[date(2026, 11, 27)] < by_day[date(2026, 11, 25)]  # the short day is short
    assert min(s for s in intraday if new_york_day(s) == date(2026, 11, 2)) == utc(2026, 11, 2, 14, 30)
