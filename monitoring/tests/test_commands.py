"""The monitoring app's older ops commands: dry run by default, clear failures."""

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from tradeoptions import tenancy
from trades.models import PaperTrade


def _run(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_install_schedules_without_apply_lists_the_jobs_and_installs_none(db):
    out = _run("install_schedules")
    assert "would have created monitoring." in out and "Dry run: nothing was written" in out
    assert not PeriodicTask.objects.exists()
    _run("install_schedules", "--apply")
    assert PeriodicTask.objects.filter(task__startswith="monitoring.").exists()


def test_simulate_without_apply_names_the_sessions_and_trades_nothing(trader):
    out = _run("simulate", "--days", "3", "--user", "alice", "--end", "2026-11-27")
    assert "Would simulate 2026-11-24 .. 2026-11-27 (3 sessions) for alice" in out
    with tenancy.acting_as(trader.pk):
        assert not PaperTrade.objects.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "nobody"], "No user 'nobody': create it first"),
    (["--user", "alice", "--end", "27/11/2026"], "is not a date: write it as YYYY-MM-DD"),
    (["--user", "alice", "--days", "0"], "must be at least 1"),
    (["--user", "alice", "--end", date(1999, 1, 4).isoformat()], "outside the market calendar"),
])
def test_simulate_fails_with_a_message(trader, args, message):
    with pytest.raises(CommandError, match=message):
        _run("simulate", *args)
