"""The market clock against real 2026 dates: sessions, holidays, early closes and DST switches."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitoring import clock

NY = ZoneInfo("America/New_York")


def ny(year, month, day, hour=0, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def utc(year, month, day, hour=0, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_normal_day_runs_930_to_1600_new_york():
    session = clock.session_for(date(2026, 6, 17))
    assert session.is_trading_day and not session.early_close
    assert session.open == utc(2026, 6, 17, 13, 30)  # EDT: UTC-4
    assert session.close == utc(2026, 6, 17, 20, 0)
    assert session.pre_market_bookend == ny(2026, 6, 17, 9, 25)
    assert session.post_market_bookend == ny(2026, 6, 17, 16, 5)
    assert session.open.tzinfo == UTC


def test_open_is_inclusive_and_close_exclusive():
    assert not clock.is_market_open(ny(2026, 6, 17, 9, 29))
    assert clock.is_market_open(ny(2026, 6, 17, 9, 30))
    assert clock.is_market_open(ny(2026, 6, 17, 15, 59))
    assert not clock.is_market_open(ny(2026, 6, 17, 16, 0))


def test_a_weekend_is_closed():
    for day in (date(2026, 6, 20), date(2026, 6, 21)):
        session = clock.session_for(day)
        assert not session.is_trading_day
        assert session.open is None and session.pre_market_bookend is None and session.post_market_bookend is None
        assert not clock.is_trading_day(day)
    assert not clock.is_market_open(ny(2026, 6, 20, 12))
    assert clock.next_open(ny(2026, 6, 20, 12)) == ny(2026, 6, 22, 9, 30)


def test_thanksgiving_is_a_holiday_and_the_day_after_closes_at_13():
    assert not clock.is_trading_day(date(2026, 11, 26))
    assert not clock.is_market_open(ny(2026, 11, 26, 11))
    friday = clock.session_for(date(2026, 11, 27))
    assert friday.early_close
    assert friday.close == ny(2026, 11, 27, 13, 0)
    assert friday.post_market_bookend == ny(2026, 11, 27, 13, 5)
    assert clock.is_market_open(ny(2026, 11, 27, 12, 59))
    assert not clock.is_market_open(ny(2026, 11, 27, 13, 0))
    assert clock.next_open(ny(2026, 11, 25, 17)) == ny(2026, 11, 27, 9, 30)


def test_christmas_eve_closes_early_and_christmas_is_closed():
    eve = clock.session_for(date(2026, 12, 24))
    assert eve.early_close and eve.close == ny(2026, 12, 24, 13, 0)
    assert clock.next_close(ny(2026, 12, 24, 10)) == ny(2026, 12, 24, 13, 0)
    assert not clock.is_trading_day(date(2026, 12, 25))
    assert clock.next_open(ny(2026, 12, 24, 14)) == ny(2026, 12, 28, 9, 30)


@pytest.mark.parametrize(
    ("switch", "after", "open_utc_hour"),
    [
        (date(2026, 3, 8), date(2026, 3, 9), 13),  # spring forward: EDT, open is 13:30 UTC
        (date(2026, 11, 1), date(2026, 11, 2), 14),  # fall back: EST, open is 14:30 UTC
    ],
)
def test_dst_switch_days_keep_930_new_york(switch, after, open_utc_hour):
    assert not clock.is_trading_day(switch)  # both switches fall on a Sunday
    session = clock.session_for(after)
    assert session.open == utc(after.year, after.month, after.day, open_utc_hour, 30)
    assert session.open.astimezone(NY).hour == 9 and session.open.astimezone(NY).minute == 30
    assert session.close.astimezone(NY).hour == 16
    assert clock.next_open(ny(switch.year, switch.month, switch.day, 12)) == session.open
    assert session.pre_market_bookend == ny(after.year, after.month, after.day, 9, 25)


def test_the_friday_before_a_dst_switch_uses_the_old_offset():
    assert clock.session_for(date(2026, 3, 6)).open == utc(2026, 3, 6, 14, 30)
    assert clock.session_for(date(2026, 10, 30)).open == utc(2026, 10, 30, 13, 30)


def test_market_date_is_decided_in_new_york():
    # 01:30 UTC on the 18th is still the evening of the 17th in New York.
    assert clock.market_date(utc(2026, 6, 18, 1, 30)) == date(2026, 6, 17)


def test_next_open_and_close_during_a_session():
    at = ny(2026, 6, 17, 11)
    assert clock.next_close(at) == ny(2026, 6, 17, 16)
    assert clock.next_open(at) == ny(2026, 6, 18, 9, 30)
    assert clock.next_open(ny(2026, 6, 17, 9, 30)) == ny(2026, 6, 18, 9, 30)  # strictly after


def test_expiry_cutoff_is_the_expiry_days_close():
    assert clock.expiry_cutoff(date(2026, 6, 19)) == ny(2026, 6, 18, 16)  # Juneteenth: Thursday's close
    assert clock.expiry_cutoff(date(2026, 6, 26)) == ny(2026, 6, 26, 16)
    assert clock.expiry_cutoff(date(2026, 11, 27)) == ny(2026, 11, 27, 13)  # early close
    assert clock.expiry_cutoff(date(2026, 4, 3)) == ny(2026, 4, 2, 16)  # Good Friday


def test_leaps_three_years_out_have_a_cutoff():
    expiry = clock.now().date() + timedelta(days=365 * 3)
    assert clock.expiry_cutoff(expiry) > clock.now()


def test_trading_days_lists_sessions_only():
    days = clock.trading_days(date(2026, 11, 23), date(2026, 11, 30))
    assert days == [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 30)]
    assert clock.previous_trading_day(date(2026, 11, 27)) == date(2026, 11, 25)


def test_force_market_open_opens_a_closed_market_and_says_so(settings):
    sunday = ny(2026, 6, 21, 3)
    settings.FORCE_MARKET_OPEN = False
    assert not clock.is_market_open(sunday) and not clock.status(sunday).forced
    settings.FORCE_MARKET_OPEN = True
    status = clock.status(sunday)
    assert clock.is_market_open(sunday) and status.is_open and status.forced
    assert not status.session.is_trading_day  # the calendar itself is not bent


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        clock.is_market_open(datetime(2026, 6, 17, 12))  # noqa: DTZ001 - the point of the test


def test_dates_outside_the_calendar_fail_clearly():
    with pytest.raises(clock.OutsideCalendar, match="outside the market calendar"):
        clock.session_for(date(2019, 6, 3))
    far = clock.now() + timedelta(days=365 * 5)
    with pytest.raises(clock.OutsideCalendar):
        clock.session_for(far.date())
