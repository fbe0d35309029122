"""The Performance tab's periods, as New York dates.

A period is a closed range of New York close dates (`start`..`end`, both included) worked out
from one moment, "now", that the caller passes in: the page's week, month and year turn over at
New York midnight, not at UTC's, and a test pins the moment instead of reading the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = {
    "today": "Today",
    "week": "This week",
    "month": "This month",
    "ytd": "Year to date",
    "all": "All time",
    "custom": "Custom range",
}
DEFAULT_PERIOD = "all"


@dataclass(frozen=True)
class Period:
    """`start`/`end` are None for an open end (all time has neither)."""

    name: str
    start: date | None
    end: date | None

    @property
    def label(self) -> str:
        return PERIODS[self.name]

    def as_json(self) -> dict:
        return {"name": self.name, "label": self.label,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


def period_range(name: str, *, now: datetime, tz: ZoneInfo, start: date | None = None,
                 end: date | None = None) -> Period:
    """The dates of period `name` as seen in `tz` at `now`. Weeks start on Monday (the trading
    week); month and year to date start on the 1st. `custom` takes `start` and `end` as given;
    one of them may be left open ("since 1 March", "up to 31 March")."""
    today = now.astimezone(tz).date()
    if name == "custom":
        if start is None and end is None:
            raise ValueError("a custom period needs a start or an end")
        if start and end and start > end:
            raise ValueError("a custom period's start must be on or before its end")
        return Period(name, start, end)
    firsts = {
        "today": today,
        "week": today - timedelta(days=today.weekday()),
        "month": today.replace(day=1),
        "ytd": today.replace(month=1, day=1),
    }
    if name == "all":
        return Period(name, None, None)
    if name not in firsts:
        raise ValueError(f"unknown period {name!r}")
    return Period(name, firsts[name], today)
