"""How the server writes what a trader reads: a date that cannot be misread ("Dec 18, 2026", never
"2026-12-18" nor "18/12/26"). The pages lay dates out the same way (static/js/format.js)."""

from __future__ import annotations

from datetime import date

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not the locale's


def day_text(day: date) -> str:
    """Dec 18, 2026. A datetime gives its own calendar date (convert it to New York first)."""
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"
