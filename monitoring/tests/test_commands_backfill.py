"""`manage.py backfill_snapshots`: a trade's missing marks come back from the data source's option
bars, once, and only when the operator says --apply; sources without option bars say so."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from monitoring.management.commands import backfill_snapshots
from monitoring.models import PriceSnapshot
from tests.factories import ClosedTradeFactory, PriceSnapshotFactory
from tests.fakes.market import RecordedMinuteBars
from tests.fakes.tradier import LIVE, FakeTradier
from tradeoptions import tenancy

MARKET_DATA_TOKEN = "mdTOKEN-backfill-5e4d3c2b1a"
ENTRY = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York, a past session
CLOSE = ENTRY + timedelta(hours=1)


@pytest.fixture
def tradier_data(settings):
    """Tradier as the market-data source, with one minute bar per minute of the trade's hour."""
    fake = FakeTradier()
    fake.start()
    fake.add_token(MARKET_DATA_TOKEN, LIVE)
    settings.MARKET_DATA_SOURCE = "tradier"
    settings.TRADIER_MARKET_DATA_TOKEN = MARKET_DATA_TOKEN
    settings.TRADIER_MARKET_DATA_URL = fake.url(LIVE)
    yield fake
    fake.stop()


@pytest.fixture
def trade_with_a_gap(trader, tradier_data):
    """Alice's hour-long trade: marked every 40 s for its first half hour, then nothing (the
    workers were down); the source has a 1-minute bar for every minute of the hour."""
    trade = ClosedTradeFactory(owner=trader, entry_date=ENTRY, close_date=CLOSE)
    moment = ENTRY
    while moment < ENTRY + timedelta(minutes=30):
        PriceSnapshotFactory(trade=trade, timestamp=moment, mark_price=Decimal("4.35"))
        moment += timedelta(seconds=40)
    tradier_data.add_bars(trade.option_symbol, "1min", [
        (ENTRY + timedelta(minutes=m), "4.30", "4.60", "4.20", f"4.{40 + m:02d}", 12) for m in range(60)
    ])
    return trade


def _snapshots(trade):
    with tenancy.acting_as(trade.owner_id):
        return list(PriceSnapshot.objects.filter(trade=trade).order_by("timestamp"))


def _run(*args):
    out = StringIO()
    call_command("backfill_snapshots", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_dry_run_finds_the_half_hour_gap_and_writes_nothing(trade_with_a_gap):
    before = len(_snapshots(trade_with_a_gap))
    out = _run("--trade", str(trade_with_a_gap.pk))
    assert "30 gap(s) found" in out and "Dry run: nothing was written" in out
    assert len(_snapshots(trade_with_a_gap)) == before


def test_apply_fills_each_missing_minute_from_its_bar_once(trade_with_a_gap):
    before = len(_snapshots(trade_with_a_gap))
    out = _run("--trade", str(trade_with_a_gap.pk), "--apply")
    assert "30 snapshot(s) written" in out
    added = [s for s in _snapshots(trade_with_a_gap) if s.source == "tradier:bars"]
    assert len(added) == 30 and len(_snapshots(trade_with_a_gap)) == before + 30
    first = added[0]
    # The 10:30 bar's close, stamped at the last 40-second monitor slot inside that minute.
    assert first.mark_price == Decimal("4.70") and first.owner_id == trade_with_a_gap.owner_id
    assert ENTRY + timedelta(minutes=30) <= first.timestamp < ENTRY + timedelta(minutes=31)
    assert int(first.timestamp.timestamp()) % 40 == 0

    again = _run("--trade", str(trade_with_a_gap.pk), "--apply")
    assert "0 gap(s) found, 0 snapshot(s) written" in again
    assert len(_snapshots(trade_with_a_gap)) == before + 30


def test_a_date_range_for_one_user_finds_her_trades_only(trade_with_a_gap, other_trader):
    ClosedTradeFactory(owner=other_trader, entry_date=ENTRY, close_date=CLOSE)  # Bob's: no bars, no gaps shown
    out = _run("--from", "2026-11-17", "--to", "2026-11-17", "--user", "alice")
    assert "1 trade(s) looked at, 30 gap(s) found" in out


def test_a_source_without_option_bars_says_so(trade_with_a_gap, monkeypatch):
    """ORATS and a CSV replay keep no option tape: the operator is told, nothing is pretended."""
    source = RecordedMinuteBars(unsupported=True)
    monkeypatch.setattr(backfill_snapshots, "provider_for", lambda name=None: source)
    with pytest.raises(CommandError, match="recorded source has no bar history of option contracts"):
        _run("--trade", str(trade_with_a_gap.pk))
    assert [symbol for symbol, _, _ in source.asked] == [trade_with_a_gap.option_symbol]


@pytest.mark.parametrize(("args", "message"), [
    (["--trade", "999999"], "No trade 999999"),
    ([], "Say which trades"),
    (["--from", "2026-13-01"], "is not a date: write it as YYYY-MM-DD"),
    (["--from", "2026-11-20", "--to", "2026-11-17"], "is before --from"),
    (["--from", "2026-11-17", "--user", "nobody"], "No user 'nobody'"),
])
def test_bad_requests_end_with_a_message_not_a_traceback(trade_with_a_gap, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)


def test_another_users_trade_is_unknown_under_user(trade_with_a_gap, other_trader):
    with pytest.raises(CommandError, match=f"No trade {trade_with_a_gap.pk} of user 'bob'"):
        _run("--trade", str(trade_with_a_gap.pk), "--user", "bob")


def test_an_unreachable_source_is_a_clear_failure(trade_with_a_gap, tradier_data):
    tradier_data.maintenance = True
    with pytest.raises(CommandError):
        _run("--trade", str(trade_with_a_gap.pk))
