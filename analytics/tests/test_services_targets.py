"""Forensic targets on hand-computed paths, idempotence, the task and the backfill command."""

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics.models import BarFallback, FirstTouch, TradeForensics
from analytics.services import trade_targets_compute
from analytics.tasks import compute_targets
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.tests.test_worker import worker  # noqa: F401  (a real Celery worker on this database)
from tests.factories import ClosedTradeFactory, PriceSnapshotFactory, UserFactory
from tests.fakes.market import RecordedMinuteBars
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade

ENTRY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def _at(minutes):
    return ENTRY + timedelta(minutes=minutes)


def _trade(owner, *, qty, sl, tp, close, closed_after, marks, reason=CloseReason.MANUAL_CLOSE):
    trade = ClosedTradeFactory(owner=owner, qty=qty, entry_price=Decimal("2.00"), entry_date=ENTRY,
                               sl_price=Decimal(sl), tp_price=Decimal(tp), close_price=Decimal(close),
                               close_date=_at(closed_after), close_reason=reason)
    for minutes, mark in marks:
        PriceSnapshotFactory(trade=trade, timestamp=_at(minutes), mark_price=Decimal(mark))
    return trade


@pytest.fixture
def paths(trader):
    return {
        # entry 2.00 → 2.20 (+5') 1.80 (+10') 2.40 (+20') 2.90 (+50') 2.70 (+70') → closed 2.60 (+90').
        # Snapshots before the entry and after the close are not part of the path.
        "neither": _trade(trader, qty=2, sl="1.50", tp="3.00", close="2.60", closed_after=90,
                          marks=[(-5, "1.00"), (5, "2.20"), (10, "1.80"), (20, "2.40"), (50, "2.90"), (70, "2.70"),
                                 (100, "5.00")]),
        # 1.50 (+5') touches the stop, 2.60 (+10') the target; closed 2.55 at +12' (before 15 minutes).
        "stop_first": _trade(trader, qty=1, sl="1.50", tp="2.50", close="2.55", closed_after=12,
                             marks=[(5, "1.50"), (10, "2.60")]),
        # No snapshot at all: closed on its target at +30'.
        "target_only": _trade(trader, qty=1, sl="1.50", tp="2.50", close="2.50", closed_after=30, marks=[],
                              reason=CloseReason.TP_HIT),
    }


def _stored(trade):
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk), TradeForensics.objects.get(trade=trade)


DAY = {"closed_from": date(2026, 12, 1), "closed_to": date(2026, 12, 1)}


def test_hand_computed_paths(paths):
    without_option_bars = RecordedMinuteBars(unsupported=True)  # like ORATS or a replay
    assert trade_targets_compute(**DAY, provider=without_option_bars) == 3

    trade, forensics = _stored(paths["neither"])
    assert trade.target_pnl_15m == Decimal("-40.00")  # last mark by +15' is 1.80: -0.20 × 2 × 100
    assert trade.target_pnl_1h == Decimal("180.00")  # by +60' it is 2.90
    assert trade.target_mfe_pct == Decimal("45.0000") and forensics.mfe_at == _at(50)
    assert trade.target_mae_pct == Decimal("-10.0000") and forensics.mae_at == _at(10)
    assert forensics.first_touch == FirstTouch.NEITHER and forensics.first_touch_at is None
    assert forensics.snapshot_count == 5
    # Nothing recorded from +20' to +50': thin, and the provider has no option bars. Asked once only.
    assert (forensics.bar_fallback, forensics.bar_count) == (BarFallback.UNSUPPORTED, 0)
    assert len(without_option_bars.asked) == 1

    trade, forensics = _stored(paths["stop_first"])
    assert trade.target_pnl_15m == trade.target_pnl_1h == Decimal("55.00")  # closed before: the realized P&L
    assert (trade.target_mfe_pct, forensics.mfe_at) == (Decimal("30.0000"), _at(10))
    assert (trade.target_mae_pct, forensics.mae_at) == (Decimal("-25.0000"), _at(5))
    assert (forensics.first_touch, forensics.first_touch_at) == (FirstTouch.SL, _at(5))
    assert forensics.bar_fallback == BarFallback.NOT_NEEDED  # no hole over 5' before its close at +12'

    trade, forensics = _stored(paths["target_only"])
    assert trade.target_pnl_15m == Decimal("0.00") and trade.target_pnl_1h == Decimal("50.00")
    assert (trade.target_mae_pct, forensics.mae_at) == (Decimal("0.0000"), ENTRY)
    assert (forensics.first_touch, forensics.first_touch_at) == (FirstTouch.TP, _at(30))
    assert forensics.snapshot_count == 0 and forensics.bar_fallback == BarFallback.UNSUPPORTED


# --- Thin paths and the provider's minute bars ---------------------------------------------------


def _bars_for(trade, bars, **options):
    provider = RecordedMinuteBars(**options)
    for start, ohlc, *minutes in bars:
        provider.add(trade.option_symbol, _at(start), ohlc, *minutes)
    return provider


def test_a_thin_path_is_filled_with_minute_bars(trader):
    # entry 2.00 (SL 1.50, TP 3.00), one snapshot 2.70 at +70', closed 2.60 at +90': the first hour is empty.
    trade = _trade(trader, qty=1, sl="1.50", tp="3.00", close="2.60", closed_after=90, marks=[(70, "2.70")])
    provider = _bars_for(trade, [
        (3, ("2.00", "2.10", "1.95", "2.05")),   # ends +4'
        (14, ("2.10", "2.40", "2.05", "2.30")),  # ends +15': the 15-minute price
        (16, ("2.30", "3.10", "2.20", "2.50")),  # high 3.10 reaches the target by +17'
        (40, ("2.50", "2.60", "1.40", "1.45")),  # low 1.40 reaches the stop by +41', too late
        (59, ("2.20", "2.30", "2.10", "2.25")),  # ends +60': the 1-hour price
        (88, ("2.60", "9.00", "2.60", "2.60"), 3),  # ends +91', after the close: not part of the trade
    ])
    trade_targets_compute(**DAY, provider=provider)
    trade, forensics = _stored(trade)
    assert provider.asked == [(trade.option_symbol, ENTRY, _at(90))]
    assert trade.target_pnl_15m == Decimal("30.00") and trade.target_pnl_1h == Decimal("25.00")
    assert (trade.target_mfe_pct, forensics.mfe_at) == (Decimal("55.0000"), _at(17))
    assert (trade.target_mae_pct, forensics.mae_at) == (Decimal("-30.0000"), _at(41))
    assert (forensics.first_touch, forensics.first_touch_at) == (FirstTouch.TP, _at(17))
    assert (forensics.snapshot_count, forensics.bar_count, forensics.bar_fallback) == (1, 5, BarFallback.USED)


def test_one_bar_through_both_exits_counts_the_stop_first(trader):
    trade = _trade(trader, qty=1, sl="1.50", tp="3.00", close="2.00", closed_after=30, marks=[])
    trade_targets_compute(**DAY, provider=_bars_for(trade, [(10, ("2.00", "3.20", "1.40", "2.00"))]))
    _, forensics = _stored(trade)
    assert (forensics.first_touch, forensics.first_touch_at) == (FirstTouch.SL, _at(11))


def test_what_counts_as_thin(trader):
    every_5 = [(minutes, "2.10") for minutes in range(5, 60, 5)]
    dense = _trade(trader, qty=1, sl="1.50", tp="3.00", close="2.10", closed_after=60, marks=every_5)
    holed = _trade(trader, qty=1, sl="1.50", tp="3.00", close="2.10", closed_after=60,
                   marks=[mark for mark in every_5 if mark[0] != 30])  # 10' without a price
    stops_early = _trade(trader, qty=1, sl="1.50", tp="3.00", close="2.10", closed_after=60, marks=every_5[:6])
    # Entered at 15:50 in New York and held overnight: after 16:00 there is nothing to record.
    late = ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2.00"), entry_date=_at(350),
                              close_date=_at(350 + 20 * 60), close_price=Decimal("2.10"))
    for minutes in range(351, 361):
        PriceSnapshotFactory(trade=late, timestamp=_at(minutes), mark_price=Decimal("2.05"))
    provider = RecordedMinuteBars()
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 2), provider=provider)
    assert sorted(symbol_start[1] for symbol_start in provider.asked) == [ENTRY, ENTRY]  # holed and stops_early
    fallbacks = {trade.pk: _stored(trade)[1].bar_fallback for trade in (dense, holed, stops_early, late)}
    assert fallbacks == {dense.pk: BarFallback.NOT_NEEDED, holed.pk: BarFallback.NO_BARS,
                         stops_early.pk: BarFallback.NO_BARS, late.pk: BarFallback.NOT_NEEDED}


def test_a_failing_provider_leaves_the_recorded_path_and_says_so(paths):
    trade_targets_compute(**DAY, provider=RecordedMinuteBars(failing=True))
    trade, forensics = _stored(paths["neither"])
    assert forensics.bar_fallback == BarFallback.FAILED and trade.target_mfe_pct == Decimal("45.0000")


def test_simulated_option_bars_fill_a_path_the_monitor_missed(trader):
    """The simulated market's own bars, end to end: the targets agree with its quotes."""
    expiry = date(2026, 12, 18)
    trade = ClosedTradeFactory(owner=trader, ticker="SPY", strike=Decimal("590"), expiry=expiry, qty=1,
                               entry_price=Decimal("2.00"), sl_price=Decimal("0.01"), tp_price=Decimal("99"),
                               close_price=Decimal("2.00"), close_date=_at(30))
    after = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
    provider = SimulatedProvider(seed="forensics", clock=lambda: after)
    trade_targets_compute(**DAY, provider=provider)
    trade, forensics = _stored(trade)
    assert (forensics.bar_fallback, forensics.bar_count) == (BarFallback.USED, 30)
    mark_at_15 = SimulatedProvider(seed="forensics", clock=lambda: _at(15)).option_quotes(
        [trade.option_symbol])[trade.option_symbol].mark
    assert trade.target_pnl_15m == (mark_at_15 - Decimal("2.00")) * 100


def test_running_again_changes_nothing_and_picks_up_new_snapshots(paths):
    trade_targets_compute(**DAY, provider=RecordedMinuteBars())
    first = _stored(paths["neither"])
    trade_targets_compute(**DAY, provider=RecordedMinuteBars())
    again = _stored(paths["neither"])
    assert again[0].target_mfe_pct == first[0].target_mfe_pct and again[1].first_touch == first[1].first_touch
    with tenancy.system_context():
        assert TradeForensics.objects.count() == 3
    PriceSnapshotFactory(trade=paths["neither"], timestamp=_at(80), mark_price=Decimal("3.10"))
    trade_targets_compute(**DAY, provider=RecordedMinuteBars())
    trade, forensics = _stored(paths["neither"])
    assert trade.target_mfe_pct == Decimal("55.0000") and forensics.first_touch == FirstTouch.TP


def test_only_trades_closed_in_the_range(paths, other_trader):
    late = ClosedTradeFactory(owner=other_trader, entry_date=ENTRY, close_date=ENTRY + timedelta(days=2))
    assert trade_targets_compute(closed_from=date(2026, 12, 2), closed_to=date(2026, 12, 3),
                                 provider=RecordedMinuteBars()) == 1
    with tenancy.system_context():
        assert list(TradeForensics.objects.values_list("trade_id", "owner_id")) == [(late.pk, other_trader.pk)]


def test_the_task_takes_a_new_york_date(paths):
    # The task runs the service in the worker's process; here eagerly, through Celery's own call path.
    assert compute_targets.name == "analytics.compute_targets"
    assert compute_targets.soft_time_limit < compute_targets.time_limit
    assert compute_targets.apply(args=["2026-12-01"]).get() == "3 trade(s) closed on 2026-12-01"
    assert compute_targets.apply(args=["2026-11-30"]).get() == "0 trade(s) closed on 2026-11-30"


def test_backfill_command(paths, capsys):
    call_command("backfill_targets", "--from", "2026-11-01", "--to", "2026-12-31", "--apply")
    assert "Computed targets of 3 trade(s)" in capsys.readouterr().out
    with tenancy.system_context():
        assert TradeForensics.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_computes_the_targets_of_a_day(worker):  # noqa: F811 (the imported fixture)

    trade = _trade(UserFactory(), qty=1, sl="1.50", tp="2.50", close="2.55", closed_after=12,
                   marks=[(5, "1.50"), (10, "2.60")])
    compute_targets.delay("2026-12-01")
    deadline = time.monotonic() + 60
    stored = None
    while time.monotonic() < deadline and stored is None:
        time.sleep(0.5)
        with tenancy.system_context():
            stored = TradeForensics.objects.filter(trade=trade).first()
        assert worker.poll() is None, worker.stdout.read()
    assert stored is not None and stored.first_touch == FirstTouch.SL
