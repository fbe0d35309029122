"""`manage.py simulate` lives through past days with the real engine, deterministically for a seed."""

from datetime import date
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command

from monitoring.models import PriceSnapshot, SnapshotKind
from tests.factories import UserFactory
from tradeoptions import tenancy
from trades.models import EventKind, PaperTrade, TradeEvent

END = date(2026, 11, 27)  # the early close after Thanksgiving ends the run


def _simulate(user, *extra):
    cache.clear()  # bookends are marked done in Redis: each run starts without the other's marks
    out = StringIO()
    call_command("simulate", "--days", "4", "--user", user.username, "--seed", "pinned", "--end", END.isoformat(),
                 "--step-minutes", "10", "--apply", *extra, stdout=out)
    return out.getvalue()


def _history(user):
    with tenancy.acting_as(user.pk):
        trades = list(PaperTrade.objects.filter(owner=user).order_by("id").values_list(
            "option_symbol", "status", "close_reason", "entry_price", "close_price", "entry_date", "close_date",
            "strategy", "ai_verdict"))
        snapshots = list(PriceSnapshot.objects.filter(owner=user).values_list("kind", flat=True))
        events = list(TradeEvent.objects.filter(owner=user).values_list("kind", flat=True))
    return trades, snapshots, events


@pytest.mark.django_db
def test_simulate_leaves_a_plausible_history_the_same_for_a_seed():
    first, second = UserFactory(username="demo"), UserFactory(username="demo2")
    assert "Simulated 2026-11-23 .. 2026-11-27" in _simulate(first)
    trades, snapshots, events = _history(first)
    statuses = {status if status != "CLOSED" else reason for _, status, reason, *_ in trades}
    assert {"TP_HIT", "SL_HIT", "MANUAL_CLOSE", "CANCELED", "REJECTED"} <= statuses
    assert statuses & {"EXPIRED", "EXPIRED_ITM"} and "OPEN" in statuses
    assert {SnapshotKind.INTRADAY, SnapshotKind.PRE_MARKET, SnapshotKind.POST_MARKET} <= set(snapshots)
    assert {EventKind.ORDER_FILLED, EventKind.ORDER_PLACED, EventKind.STATE_CHANGE} <= set(events)
    # Times are the simulated ones, inside the simulated days.
    moments = [moment for trade in trades for moment in trade[5:7] if moment is not None]
    assert moments and all(date(2026, 11, 23) <= moment.date() <= END for moment in moments)
    assert len({trade[7] for trade in trades}) >= 3 and len({trade[8] for trade in trades}) >= 2

    _simulate(second)
    assert _history(second)[0] == trades
    assert "already has trades" in _simulate(first, "--if-empty")
