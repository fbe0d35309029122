"""Which expiries are listed, and which of them are the monthlies.

The standard (monthly) expiry is the third Friday of the month; when that Friday is not a session
(Good Friday, Juneteenth) the options expire on the session before it, as the OCC moves them.
Weeklies expire on the other Fridays, moved the same way. Dates are New York calendar days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from monitoring import clock as market_clock

WEEKLIES_AHEAD = 8  # Fridays listed beyond today, as the weekly cycle lists them on liquid names
MONTHLIES_AHEAD = 12


def _shifted(friday: date) -> date:
    """The session a Friday's options expire on: the Friday, or the session before a holiday."""
    try:
        if market_clock.is_trading_day(friday):
            return friday
        return market_clock.previous_trading_day(friday)
    except market_clock.OutsideCalendar:
        return friday


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def monthly_expiry(year: int, month: int) -> date:
    return _shifted(third_friday(year, month))


def is_monthly(expiry: date) -> bool:
    """The month's standard expiry (the third Friday, or the session before it on a holiday)."""
    return expiry == monthly_expiry(expiry.year, expiry.month)


def simulated_expirations(at: datetime) -> list[date]:
    """What the simulated market lists at `at`: the next WEEKLIES_AHEAD Fridays and MONTHLIES_AHEAD
    monthlies, each moved off holidays; an expiry whose cutoff has passed is gone."""
    today = market_clock.market_date(at)
    friday = today + timedelta(days=(4 - today.weekday()) % 7)
    found = {_shifted(friday + timedelta(weeks=week)) for week in range(WEEKLIES_AHEAD + 1)}
    year, month = today.year, today.month
    for _ in range(MONTHLIES_AHEAD + 1):
        found.add(monthly_expiry(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    _, last = market_clock.calendar_bounds()
    return sorted(day for day in found if today <= day <= last and market_clock.expiry_cutoff(day) > at)
