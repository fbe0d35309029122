"""The reports after the close (issue 21) against real local receivers: an SMTP server (aiosmtpd)
receiving the daily report as multipart HTML + text through Apprise's mailto://, and an HTTP
server standing in for ntfy and a JSON hook. The clock is pinned: 2026-11-27, the day after
Thanksgiving, closes at 13:00 New York (18:00 UTC); 2026-12-25 has no session."""

from __future__ import annotations

import email
import socket
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core.cache import cache

from analytics import reports
from monitoring import services as monitoring_services
from tests.factories import ClosedTradeFactory, PaperTradeFactory, TradeExitPartFactory
from tests.fakes.webhook_receiver import WebhookReceiver
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, ChannelMessage, ChannelMessageStatus, NotificationEvent

NEW_YORK = ZoneInfo("America/New_York")
FRIDAY = date(2026, 11, 27)  # early close, 13:00 New York
AFTER_REPORT = datetime(2026, 11, 27, 18, 31, tzinfo=UTC)  # 13:31 New York
EXPIRES_MONDAY = date(2026, 11, 30)  # the next session after the long weekend


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port
    yield mailbox
    controller.stop()


@pytest.fixture
def receiver():
    running = WebhookReceiver().start()
    yield running
    running.stop()


def _ny(hour: int, minute: int = 0, day: date = FRIDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)


@pytest.fixture
def the_day(trader):
    """Friday's trades: a winner and a loser closed, a part sold of a trade still open (which
    expires Monday), one more open, and Wednesday's close (not Friday's money)."""
    ClosedTradeFactory(owner=trader, ticker="SPY", strike=Decimal("570"), qty=2, entry_price=Decimal("4.20"),
                       close_price=Decimal("5.00"), entry_date=_ny(10), close_date=_ny(11),
                       entry_commission=Decimal("1.30"), exit_commission=Decimal("1.30"))  # +160.00 / +157.40
    ClosedTradeFactory(owner=trader, ticker="QQQ", option_type="PUT", strike=Decimal("500"), qty=1,
                       entry_price=Decimal("3.00"), close_price=Decimal("1.7650"), entry_date=_ny(10, 30),
                       close_date=_ny(12, 15), entry_commission=Decimal("0.65"), exit_commission=Decimal("0.65"),
                       fees=Decimal("0.02"))  # -123.50 / -124.82
    held = PaperTradeFactory(owner=trader, ticker="IWM", strike=Decimal("240"), qty=2, entry_price=Decimal("4.20"),
                             sl_price=Decimal("3.00"), expiry=EXPIRES_MONDAY,
                             entry_date=_ny(10, day=date(2026, 11, 25)))
    TradeExitPartFactory(trade=held, pnl_gross=Decimal("20.00"), commission=Decimal("0.65"),
                         filled_at=_ny(11, 30))  # +20.00 / +19.35
    PaperTradeFactory(owner=trader, ticker="AAPL", qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.50"),
                      expiry=date(2026, 12, 18), entry_date=_ny(10, day=date(2026, 11, 24)))
    ClosedTradeFactory(owner=trader, ticker="TSLA", entry_date=_ny(10, day=date(2026, 11, 25)),
                       close_date=_ny(11, day=date(2026, 11, 25)))
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.update_or_create(owner=trader, defaults={"daily_report": True, "weekly_report": True})


def _channel(trader, url: str, events=(NotificationEvent.DAILY_REPORT,)):
    return services.channel_create(user=trader, data=services.ChannelInput(name="Desk", url=url, events=list(events)))


def _deliver_all(trader) -> list[ChannelMessage]:
    with tenancy.acting_as(trader.pk):
        pending = list(ChannelMessage.objects.filter(status=ChannelMessageStatus.PENDING))
    for message in pending:
        services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk))
    with tenancy.acting_as(trader.pk):
        return list(ChannelMessage.objects.order_by("created_at"))


def _parts(envelope) -> dict[str, str]:
    parsed = email.message_from_bytes(envelope.content)
    return {part.get_content_type(): part.get_payload(decode=True).decode()
            for part in parsed.walk() if not part.is_multipart()}, parsed


@time_machine.travel(AFTER_REPORT, tick=False)
def test_the_daily_report_reaches_an_email_channel_as_html_and_text(trader, the_day, smtp_server):
    _channel(trader, f"mailto://example.com?smtp=127.0.0.1&port={smtp_server.port}&mode=insecure"
                     "&from=reports@example.com&to=trader@example.com")
    assert reports.reports_send(day=FRIDAY) == {"daily": 1, "weekly": 0}  # the weekly: no channel chose it
    assert [message.status for message in _deliver_all(trader)] == ["DELIVERED"]
    (envelope,) = smtp_server.messages
    parts, parsed = _parts(envelope)
    assert parsed.get_content_type() == "multipart/alternative"
    assert set(parts) == {"text/plain", "text/html"}
    assert "Daily report Fri 2026-11-27 (early close, 13:00)" in parsed["Subject"]
    html, text = parts["text/html"], parts["text/plain"]
    assert "<strong>P&amp;L net:</strong> +$51.93<br>" in html and "P&L net: +$51.93" in text
    for figures in ("+$51.93", "+$56.50", "$4.57", "+$157.40", "-$124.82", "$290.00"):
        assert figures in html and figures in text, figures
    assert "Best" in text and "SPY 570C" in text.split("Best", 1)[1].split("\n")[0]
    assert "Worst" in text and "QQQ 500P" in text.split("Worst", 1)[1].split("\n")[0]
    assert "Expiring Mon 2026-11-30" in text and "IWM 240C 2026-11-30 ×2" in text
    assert "2 closed, 1 partly sold, 2 opened; 2 won, 1 lost" in text
    assert "TSLA" not in text  # Wednesday's close


@time_machine.travel(AFTER_REPORT, tick=False)
def test_an_email_channel_that_asks_for_text_gets_the_text(trader, the_day, smtp_server):
    _channel(trader, f"mailto://example.com?smtp=127.0.0.1&port={smtp_server.port}&mode=insecure"
                     "&from=reports@example.com&to=trader@example.com&format=text")
    reports.reports_send(day=FRIDAY)
    assert [message.status for message in _deliver_all(trader)] == ["DELIVERED"]
    parts, parsed = _parts(smtp_server.messages[0])
    assert parsed.get_content_type() == "text/plain" and "P&L net: +$51.93" in parts["text/plain"]
    assert "<strong>" not in parts["text/plain"]


@time_machine.travel(AFTER_REPORT, tick=False)
def test_ntfy_and_json_channels_get_the_text_and_a_rerun_sends_nothing_twice(trader, the_day, receiver):
    _channel(trader, f"ntfy://127.0.0.1:{receiver.port}/desk")
    _channel(trader, f"json://127.0.0.1:{receiver.port}/hook",
             events=[NotificationEvent.DAILY_REPORT, NotificationEvent.WEEKLY_REPORT])
    assert reports.reports_send(day=FRIDAY) == {"daily": 2, "weekly": 1}
    assert reports.reports_send(day=FRIDAY) == {"daily": 0, "weekly": 0}  # the beat's job again: told once
    assert all(message.status == "DELIVERED" for message in _deliver_all(trader))
    bodies = {request.path: request.json() for request in receiver.requests if request.path != "/hook"}
    ntfy = next(iter(bodies.values()))
    assert "P&L net: +$51.93" in ntfy["message"] and "<strong>" not in ntfy["message"]
    hooks = [request.json() for request in receiver.requests if request.path == "/hook"]
    assert len(receiver.requests) == 3 and len(hooks) == 2
    weekly = next(hook for hook in hooks if hook["title"].startswith("Weekly report"))
    assert weekly["title"] == "Weekly report 2026-11-23 to 2026-11-27"
    # The week's closes: +157.40, -124.82 and Wednesday's +160.00 (no commissions).
    assert "P&L net: +$192.58" in weekly["message"] and "Trades closed: 3: 2 won, 1 lost, 0 flat" in weekly["message"]


def test_only_a_trader_who_switched_it_on_gets_it_and_only_in_channels_that_chose_it(trader, other_trader, receiver):
    _channel(trader, f"json://127.0.0.1:{receiver.port}/a")  # chose it, but the report is off
    _channel(other_trader, f"json://127.0.0.1:{receiver.port}/b", events=[NotificationEvent.TP_HIT])
    with tenancy.acting_as(other_trader.pk):
        AccountSettings.objects.update_or_create(owner=other_trader, defaults={"daily_report": True})
    with time_machine.travel(AFTER_REPORT, tick=False):
        assert reports.reports_send(day=FRIDAY) == {"daily": 0, "weekly": 0}


def test_no_report_on_a_holiday_and_the_early_close_counts(db):
    cache.delete_many([f"reports-sent:{day}" for day in ("2026-11-25", "2026-11-27", "2026-12-24", "2026-12-25")])
    assert reports.reports_send(day=date(2026, 12, 25)) == {"daily": 0, "weekly": 0}
    assert monitoring_services.report_days_due(at=_ny(12, 59)) == [date(2026, 11, 25)]  # before Friday's close
    assert monitoring_services.report_days_due(at=_ny(13, 29)) == []  # closed, but not yet 30 minutes
    assert monitoring_services.report_days_due(at=_ny(13, 30)) == [FRIDAY]
    assert monitoring_services.report_days_due(at=_ny(16, 30)) == []  # once
    christmas = monitoring_services.report_days_due(at=_ny(20, day=date(2026, 12, 25)))
    assert christmas == [date(2026, 12, 24)]  # Christmas Eve's early close; no session on the 25th
    assert reports.week_ends_on(FRIDAY) and not reports.week_ends_on(date(2026, 11, 25))
    assert reports.week_ends_on(date(2026, 12, 24))  # Thursday: the week's last session


def test_the_request_task_asks_analytics_by_name(db, monkeypatch):
    from monitoring import tasks

    cache.delete_many(["reports-sent:2026-11-25", "reports-sent:2026-11-27"])
    sent = []
    monkeypatch.setattr(tasks.request_reports.app, "send_task", lambda name, args: sent.append((name, args)))
    with time_machine.travel(_ny(14), tick=False):
        assert tasks.request_reports.apply().get().startswith("reports requested")
    assert sent == [("analytics.send_reports", ["2026-11-25"]), ("analytics.send_reports", ["2026-11-27"])]


def test_one_traders_failing_report_spares_the_others_and_is_asked_for_again(trader, other_trader, monkeypatch):
    for owner in (trader, other_trader):
        _channel(owner, "json://127.0.0.1:9/hook")  # nothing is delivered here: the messages are written
        with tenancy.acting_as(owner.pk):
            AccountSettings.objects.update_or_create(owner=owner, defaults={"daily_report": True})
    day_report = reports.trade_selectors.day_report

    def broken_for_trader(*, user, **kwargs):
        if user.pk == trader.pk:
            raise ValueError("a row this report cannot read")
        return day_report(user=user, **kwargs)

    cache.delete("reports-sent:2026-11-27")
    with time_machine.travel(AFTER_REPORT, tick=False):
        assert FRIDAY in monitoring_services.report_days_due(at=_ny(13, 31))
        assert FRIDAY not in monitoring_services.report_days_due(at=_ny(13, 32))  # asked once
        monkeypatch.setattr(reports.trade_selectors, "day_report", broken_for_trader)
        assert reports.reports_send(day=FRIDAY) == {"daily": 1, "weekly": 0}  # the other trader is told
        assert FRIDAY in monitoring_services.report_days_due(at=_ny(13, 45))  # the day is asked for again
        monkeypatch.setattr(reports.trade_selectors, "day_report", day_report)
        assert reports.reports_send(day=FRIDAY) == {"daily": 1, "weekly": 0}  # the failed one only, now
    for owner in (trader, other_trader):
        with tenancy.acting_as(owner.pk):
            assert ChannelMessage.objects.filter(kind=NotificationEvent.DAILY_REPORT).count() == 1
