"""Periods of the Performance tab as New York dates, from a pinned moment (never the wall clock)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from analytics.periods import Period, period_range

NY = ZoneInfo("America/New_York")
# Wednesday 2 Dec 2026, 02:30 UTC: still Tuesday 1 Dec, 21:30, in New York.
LATE_TUESDAY_IN_NY = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize(("name", "start", "end"), [
    ("today", date(2026, 12, 1), date(2026, 12, 1)),
    ("week", date(2026, 11, 30), date(2026, 12, 1)),  # Monday to today
    ("month", date(2026, 12, 1), date(2026, 12, 1)),
    ("ytd", date(2026, 1, 1), date(2026, 12, 1)),
    ("all", None, None),
])
def test_periods_turn_over_at_new_york_midnight(name, start, end):
    assert period_range(name, now=LATE_TUESDAY_IN_NY, tz=NY) == Period(name, start, end)


def test_a_sunday_week_starts_on_the_monday_before_and_new_year_is_its_own_ytd():
    sunday = datetime(2027, 1, 3, 17, tzinfo=UTC)
    assert period_range("week", now=sunday, tz=NY) == Period("week", date(2026, 12, 28), date(2027, 1, 3))
    assert period_range("ytd", now=sunday, tz=NY) == Period("ytd", date(2027, 1, 1), date(2027, 1, 3))
    assert period_range("month", now=sunday, tz=NY).start == date(2027, 1, 1)


def test_a_custom_range_is_taken_as_given_and_checked():
    custom = period_range("custom", now=LATE_TUESDAY_IN_NY, tz=NY, start=date(2026, 3, 1), end=date(2026, 3, 31))
    assert custom.as_json() == {"name": "custom", "label": "Custom range", "start": "2026-03-01", "end": "2026-03-31"}
    with pytest.raises(ValueError):
        period_range("custom", now=LATE_TUESDAY_IN_NY, tz=NY, start=date(2026, 4, 1), end=date(2026, 3, 1))
    since = period_range("custom", now=LATE_TUESDAY_IN_NY, tz=NY, start=date(2026, 4, 1))
    assert (since.start, since.end) == (date(2026, 4, 1), None)
    with pytest.raises(ValueError):
        period_range("custom", now=LATE_TUESDAY_IN_NY, tz=NY)
    with pytest.raises(ValueError):
        period_range("fortnight", now=LATE_TUESDAY_IN_NY, tz=NY)
