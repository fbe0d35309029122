"""backfill_targets computes without storing unless --apply; bad input is a message, not a traceback."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analytics.models import TradeForensics
from tradeoptions import tenancy

from .test_services_targets import paths  # noqa: F401 - the three closed trades with recorded paths


def _run(*args):
    out = StringIO()
    call_command("backfill_targets", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_without_apply_the_targets_are_computed_and_not_stored(paths):  # noqa: F811
    out = _run("--from", "2026-11-01", "--to", "2026-12-31")
    assert "Would store the computed targets of 3 trade(s)" in out
    with tenancy.system_context():
        assert not TradeForensics.objects.exists()


def test_one_users_trades_only(paths, other_trader):  # noqa: F811
    assert "targets of 0 trade(s)" in _run("--from", "2026-11-01", "--to", "2026-12-31", "--user", "bob")


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-12-31", "--to", "2026-11-01"], "is after --to"),
    (["--from", "yesterday"], "is not a date"),
    (["--user", "nobody"], "No user 'nobody'"),
])
def test_bad_requests_are_messages(db, args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
