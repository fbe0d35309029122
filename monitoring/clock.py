"""The US options market's clock, from the XNYS exchange calendar.

Holidays and 13:00 early closes come from `exchange_calendars`, not from a hand-kept list, and
every conversion goes through the time-zone database, so DST switches need no special cases.
Datetimes in and out are aware; answers are in UTC (how they are stored), while "which day is
it" is decided in New York time (how the market reasons).

Building the calendar takes most of a second, so it is built once per process, lazily, and
flattened into sorted tuples: a lookup is then a bisect, with no pandas on the hot path.
"""

from __future__ import annotations

import bisect
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from brokers.market import OutsideCalendar as MarketOutsideCalendar

CALENDAR = "XNYS"
FIRST_DAY = date(2020, 1, 1)  # the simulator and replays never go further back
YEARS_AHEAD = 4  # LEAPS are listed up to about three years out, and their expiry cutoff must resolve
BOOKEND = timedelta(minutes=5)
REGULAR_CLOSE = time(16, 0)


class OutsideCalendar(MarketOutsideCalendar):
    """The date lies outside the range the calendar was built for; the message gives the range.
    The layers below catch it as `brokers.market.OutsideCalendar`."""


def market_tz() -> ZoneInfo:
    return ZoneInfo(getattr(settings, "MARKET_TIME_ZONE", "America/New_York"))


def now() -> datetime:
    return datetime.now(UTC)


def force_market_open() -> bool:
    """Whether `FORCE_MARKET_OPEN` is on, so the UI and health page can say so: a development
    switch that is easy to forget in a real deployment."""
    return bool(getattr(settings, "FORCE_MARKET_OPEN", False))


@dataclass(frozen=True)
class Session:
    """One calendar day's regular session; `open`/`close` are None when the market is closed."""

    day: date
    open: datetime | None
    close: datetime | None

    @property
    def is_trading_day(self) -> bool:
        return self.open is not None

    @property
    def early_close(self) -> bool:
        return self.close is not None and self.close.astimezone(market_tz()).time() < REGULAR_CLOSE

    @property
    def pre_market_bookend(self) -> datetime | None:
        return self.open - BOOKEND if self.open else None

    @property
    def post_market_bookend(self) -> datetime | None:
        """Five minutes after the day's real close, so the bookend of an early close is 13:05."""
        return self.close + BOOKEND if self.close else None

    def contains(self, at: datetime) -> bool:
        return self.open is not None and self.open <= at < self.close


@dataclass(frozen=True)
class MarketStatus:
    """What the UI and /healthz show: whether trading is on, and whether that is forced."""

    at: datetime
    is_open: bool
    forced: bool
    session: Session
    next_open: datetime
    next_close: datetime


class _Sessions:
    def __init__(self, first: date, last: date):
        import exchange_calendars

        with warnings.catch_warnings():
            # exchange_calendars 4.13 trips pandas' deprecation warnings; nothing for us to act on.
            warnings.simplefilter("ignore")
            calendar = exchange_calendars.get_calendar(CALENDAR, start=first.isoformat(), end=last.isoformat())
        schedule = calendar.schedule
        self.first, self.last = first, last
        self.days = tuple(stamp.date() for stamp in schedule.index)
        self.opens = tuple(stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["open"])
        self.closes = tuple(stamp.to_pydatetime().astimezone(UTC) for stamp in schedule["close"])
        self.index = {day: position for position, day in enumerate(self.days)}

    def check(self, day: date) -> None:
        if not self.first <= day <= self.last:
            raise OutsideCalendar(f"{day} is outside the market calendar ({self.first} .. {self.last}).")


_loaded: _Sessions | None = None
_lock = threading.Lock()


def _sessions() -> _Sessions:
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                today = now().astimezone(market_tz()).date()
                _loaded = _Sessions(FIRST_DAY, today.replace(year=today.year + YEARS_AHEAD, day=min(today.day, 28)))
    return _loaded


def calendar_bounds() -> tuple[date, date]:
    """The first and last day the calendar covers (a day outside raises OutsideCalendar)."""
    sessions = _sessions()
    return sessions.first, sessions.last


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} is naive; the market clock only takes aware datetimes.")
    return at.astimezone(UTC)


def market_date(at: datetime) -> date:
    """The New York calendar date of an instant (23:30 UTC in winter is still the same NY day)."""
    return _aware(at).astimezone(market_tz()).date()


def session_for(day: date) -> Session:
    sessions = _sessions()
    sessions.check(day)
    position = sessions.index.get(day)
    if position is None:
        return Session(day=day, open=None, close=None)
    return Session(day=day, open=sessions.opens[position], close=sessions.closes[position])


def is_trading_day(day: date) -> bool:
    return session_for(day).is_trading_day


def trading_days(start: date, end: date) -> list[date]:
    """Sessions from start to end, both included."""
    sessions = _sessions()
    sessions.check(start)
    sessions.check(end)
    return list(sessions.days[bisect.bisect_left(sessions.days, start) : bisect.bisect_right(sessions.days, end)])


def sessions_before(day: date) -> int:
    """How many sessions the calendar holds before `day`: a stable index for per-session data."""
    sessions = _sessions()
    sessions.check(day)
    return bisect.bisect_left(sessions.days, day)


def previous_trading_day(day: date) -> date:
    """The last session strictly before `day`."""
    sessions = _sessions()
    sessions.check(day)
    position = bisect.bisect_left(sessions.days, day)
    if position == 0:
        raise OutsideCalendar(f"No session before {day} in the market calendar.")
    return sessions.days[position - 1]


def is_market_open(at: datetime | None = None) -> bool:
    """True during a regular session, or always when FORCE_MARKET_OPEN is on (development)."""
    if force_market_open():
        return True
    at = _aware(at or now())
    return session_for(market_date(at)).contains(at)


def _first_after(stamps: tuple[datetime, ...], at: datetime, what: str) -> datetime:
    position = bisect.bisect_right(stamps, _aware(at))
    if position == len(stamps):
        raise OutsideCalendar(f"No {what} after {at.isoformat()} in the market calendar.")
    return stamps[position]


def next_open(at: datetime | None = None) -> datetime:
    """The first session open strictly after `at` (during a session: tomorrow's open)."""
    return _first_after(_sessions().opens, at or now(), "open")


def next_close(at: datetime | None = None) -> datetime:
    """The first session close strictly after `at` (during a session: today's close)."""
    return _first_after(_sessions().closes, at or now(), "close")


def pre_market_bookend(day: date) -> datetime | None:
    return session_for(day).pre_market_bookend


def post_market_bookend(day: date) -> datetime | None:
    return session_for(day).post_market_bookend


def expiry_cutoff(expiry: date) -> datetime:
    """When a contract expiring on `expiry` stops trading: that day's close (13:00 on an early close).

    When the expiry date is a holiday (Good Friday, Juneteenth on a Friday), options expire on the
    session before it, as the OCC moves them, so the cutoff is that session's close.
    """
    session = session_for(expiry)
    if session.is_trading_day:
        return session.close
    return session_for(previous_trading_day(expiry)).close


def status(at: datetime | None = None) -> MarketStatus:
    at = _aware(at or now())
    return MarketStatus(
        at=at,
        is_open=is_market_open(at),
        forced=force_market_open(),
        session=session_for(market_date(at)),
        next_open=next_open(at),
        next_close=next_close(at),
    )


Clock = Callable[[], datetime]
"""Anything returning the current aware datetime: `clock.now` in production, a fixed or stepping
function in tests and in replays of past days."""
