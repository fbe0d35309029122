"""The reports after the close, to the trader's notification channels (issue 21).

Daily, after each session (`monitoring.request_reports` asks once the exchange calendar's close,
an early one included, is REPORT_AFTER_CLOSE past; no session, no report): the P&L realized that
day gross and net (the parts sold that day, as the daily loss limit counts them), the trades
closed and opened, the best and the worst, the open risk (the heat limit's figure) and what
expires at the next session. Weekly, after the week's last session: the Performance summary of
the trades closed that week (`selectors.performance`, on the net basis).

Each goes to the channels of a trader who switched it on (`AccountSettings.daily_report`,
`weekly_report`) that chose its event; an email channel gets it as HTML with a plain-text part
(Apprise's multipart/alternative), the others as text. Idempotent: the messages carry the
day's dedupe key, so a rerun (a second beat, a retried task) tells no channel twice. One
trader's report failing is logged and the others still go; the day is then asked for again on the
monitor's next request (`monitoring.services.report_day_again`), the failed trader retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils.html import escape

from monitoring import clock as market_clock
from monitoring import services as monitoring_services
from tradeoptions import tenancy
from trades import selectors as trade_selectors
from trades.models import AccountSettings, NotificationChannel, NotificationEvent, PaperTrade
from trades.services import channel_messages_write

from . import selectors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    title: str
    lines: list[tuple[str, str]]  # (label, text): "label: text", one a line
    notes: list[str]  # a list under them (each trade's money)

    @property
    def text(self) -> str:
        return "\n".join([*(f"{label}: {value}" for label, value in self.lines), *(f"- {note}" for note in self.notes)])

    @property
    def html(self) -> str:
        """Lines, not a table: Apprise makes the email's plain-text part from this HTML, and a
        table's cells would come out one per line."""
        lines = "<br>".join(f"<strong>{escape(label)}:</strong> {escape(value)}" for label, value in self.lines)
        notes = "".join(f"<li>{escape(note)}</li>" for note in self.notes)
        return f"<h2>{escape(self.title)}</h2><p>{lines}</p>" + (f"<ul>{notes}</ul>" if notes else "")


# --- Which days ---------------------------------------------------------------------------------


def next_session(day: date) -> date:
    return market_clock.market_date(market_clock.next_open(market_clock.session_for(day).close))


def week_ends_on(day: date) -> bool:
    """`day` is its week's last session (the next one falls in another ISO week)."""
    return next_session(day).isocalendar()[:2] != day.isocalendar()[:2]


# --- Sending ------------------------------------------------------------------------------------


def reports_send(*, day: date) -> dict[str, int]:
    """The daily report of session `day` to every trader who wants it, and the weekly one when
    `day` ends its week. Returns how many messages of each were written. Runs in the system
    context only to find who opted in; each report is read and written as its trader."""
    if not market_clock.is_trading_day(day):
        return {"daily": 0, "weekly": 0}
    weekly = week_ends_on(day)
    with tenancy.system_context():
        wanted = list(AccountSettings.objects.filter(daily_report=True).values_list("owner_id", flat=True))
        wanted_weekly = list(AccountSettings.objects.filter(weekly_report=True).values_list("owner_id", flat=True)) \
            if weekly else []
    sent = {"daily": 0, "weekly": 0}
    failed = [owner_id for owner_id in wanted if not _one_owner(daily_report_send, sent, "daily", owner_id, day)]
    failed += [owner_id for owner_id in wanted_weekly
               if not _one_owner(weekly_report_send, sent, "weekly", owner_id, day)]
    if failed:  # the others are told; the next request sends again, and the dedupe keys spare them
        monitoring_services.report_day_again(day)
    return sent


def _one_owner(send, sent: dict, kind: str, owner_id: int, day: date) -> bool:
    """One trader's report: a failure (their data, a bug) is logged and does not stop the others'."""
    try:
        sent[kind] += len(send(owner_id=owner_id, day=day))
    except Exception:
        logger.exception("the %s report of %s for owner %s failed; it is asked again on the next run",
                         kind, day, owner_id)
        return False
    return True


def _listening(owner_id: int, kind: str) -> bool:
    return NotificationChannel.objects.filter(owner_id=owner_id, enabled=True, events__contains=[kind]).exists()


def daily_report_send(*, owner_id: int, day: date) -> list:
    """The day's report to the trader's channels that chose it, once per channel and day."""
    with tenancy.acting_as(owner_id):
        if not _listening(owner_id, NotificationEvent.DAILY_REPORT):
            return []
        user = get_user_model().objects.get(pk=owner_id)
        report = daily_report(trade_selectors.day_report(user=user, day=day, next_session=next_session(day)))
        return channel_messages_write(owner_id=owner_id, kind=NotificationEvent.DAILY_REPORT, data={},
                                      words=(report.title, report.text), body_html=report.html,
                                      dedupe_key=f"report-daily:{day.isoformat()}")


def weekly_report_send(*, owner_id: int, day: date) -> list:
    """The week's Performance summary (the week ending with session `day`), once per channel."""
    monday = day - timedelta(days=day.weekday())
    with tenancy.acting_as(owner_id):
        if not _listening(owner_id, NotificationEvent.WEEKLY_REPORT):
            return []
        user = get_user_model().objects.get(pk=owner_id)
        summary = selectors.performance(user=user, filters=selectors.AnalyticsFilters(closed_from=monday,
                                                                                      closed_to=day))
        report = weekly_report(summary, monday=monday, day=day)
        return channel_messages_write(owner_id=owner_id, kind=NotificationEvent.WEEKLY_REPORT, data={},
                                      words=(report.title, report.text), body_html=report.html,
                                      dedupe_key=f"report-weekly:{day.isoformat()}")


# --- Words --------------------------------------------------------------------------------------


def money(value: Decimal | str | None) -> str:
    """-$1,234.50 / +$80.00 / $0.00: exact to the cent (rounded here, for display only)."""
    if value is None:
        return "–"
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    sign = "-" if amount < 0 else "+" if amount > 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def contract(trade: PaperTrade) -> str:
    strike = trade.strike.normalize() if trade.strike is not None else ""
    return f"{trade.ticker} {strike:f}{str(trade.option_type)[:1]} {trade.expiry:%Y-%m-%d}"


def daily_report(day: trade_selectors.DayReport) -> Report:
    session = market_clock.session_for(day.day)
    close = session.close.astimezone(market_clock.market_tz())
    early = f" (early close, {close:%H:%M})" if session.early_close else ""
    title = f"Daily report {day.day:%a %Y-%m-%d}{early}"
    realized = day.realized
    wins = sum(1 for row in realized if row.pnl_net > 0)
    losses = sum(1 for row in realized if row.pnl_net < 0)
    partly = len(realized) - day.closed
    lines = [
        ("P&L net", money(day.pnl_net)),
        ("P&L gross", money(day.pnl_gross)),
        ("Commissions and fees", money(day.pnl_gross - day.pnl_net).lstrip("+")),
        ("Trades", f"{day.closed} closed" + (f", {partly} partly sold" if partly else "")
         + f", {day.opened} opened; {wins} won, {losses} lost"),
    ]
    if day.best is not None:
        lines.append(("Best", f"{contract(day.best.trade)} {money(day.best.pnl_net)}"))
    if day.worst is not None:
        lines.append(("Worst", f"{contract(day.worst.trade)} {money(day.worst.pnl_net)}"))
    lines.append(("Open", f"{day.open_positions} position{'s' if day.open_positions != 1 else ''}, "
                          f"{money(day.open_risk).lstrip('+')} at risk to the stop-losses"))
    expiring = ", ".join(f"{contract(trade)} ×{trade.held_qty or trade.qty}" for trade in day.expiring)
    lines.append((f"Expiring {day.next_session:%a %Y-%m-%d}", expiring or "nothing"))
    notes = [f"{contract(row.trade)}: {money(row.pnl_net)} net, {money(row.pnl_gross)} gross"
             + ("" if row.closed else " (part sold; still open)") for row in realized]
    return Report(title=title, lines=lines, notes=notes)


def weekly_report(performance: dict, *, monday: date, day: date) -> Report:
    summary, costs = performance["summary"], performance["costs"]
    rate = summary.get("win_rate")
    factor = summary.get("profit_factor")
    lines = [
        ("P&L net", money(costs["net_pnl"])),
        ("P&L gross", money(costs["gross_pnl"])),
        ("Commissions and fees", money(Decimal(costs["commission_total"]) + Decimal(costs["fees_total"])).lstrip("+")),
        ("Trades closed", f"{summary['trades']}: {summary['wins']} won, {summary['losses']} lost, "
                          f"{summary['breakeven']} flat"),
        ("Win rate", f"{Decimal(str(rate)) * 100:.1f} %" if rate is not None else "–"),
        ("Profit factor", f"{factor:.2f}" if factor is not None else "–"),
        ("Expectancy", f"{money(summary.get('expectancy'))} a trade"),
        ("Largest win", money(summary.get("largest_win"))),
        ("Largest loss", money(summary.get("largest_loss"))),
    ]
    if performance.get("best_strategy"):
        lines.append(("Best strategy", str(performance["best_strategy"])))
    title = f"Weekly report {monday:%Y-%m-%d} to {day:%Y-%m-%d}"
    return Report(title=title, lines=lines, notes=["The Performance tab has the whole picture."])
