"""The channels' events that are not a trade's transition (issue 21): the daily loss limit hit,
a risk limit stopping a trade, the broker down and back. Each is met again and again; each is
told once per occurrence (the messages' dedupe key), and none goes through quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.db import transaction

from brokers.base import BrokerUnavailable
from tests.factories import NotificationChannelFactory, PaperTradeFactory, account_with
from tradeoptions import tenancy
from trades import services
from trades.models import (
    AccountSettings,
    ChannelMessage,
    ChannelMessageStatus,
    CloseReason,
    ExitPartReason,
    NotificationEvent,
    TradeStatus,
)
from trades.services import broker_health, channel_delivery
from trades.services.parts import part_record

TUESDAY = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 11:00 New York



def _told(user, kind) -> list[ChannelMessage]:
    with tenancy.acting_as(user.pk):
        return list(ChannelMessage.objects.filter(kind=kind).order_by("created_at"))


def _close_at_a_loss(user, *, at: datetime, loss: Decimal):
    trade = PaperTradeFactory(owner=user, qty=1, entry_price=Decimal("4.20"), entry_date=at - timedelta(hours=1))
    with tenancy.acting_as(user.pk):
        return services.trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, actor="SYSTEM", changes={
            "close_reason": CloseReason.SL_HIT, "close_date": at, "realized_pnl": -loss,
            "close_price": Decimal("4.20") - loss / 100})


# --- The daily loss limit -------------------------------------------------------------------------


def test_the_daily_loss_limit_hit_is_told_once_a_day_in_the_closes_transaction(trader):
    account_with(trader, daily_loss_limit=Decimal("100"))
    channel = NotificationChannelFactory(owner=trader, events=[NotificationEvent.DAILY_LOSS])
    _close_at_a_loss(trader, at=TUESDAY, loss=Decimal("60"))
    assert _told(trader, NotificationEvent.DAILY_LOSS) == []  # $60 of $100
    with pytest.raises(RuntimeError), tenancy.acting_as(trader.pk), transaction.atomic():
        _close_at_a_loss(trader, at=TUESDAY + timedelta(minutes=5), loss=Decimal("45"))
        raise RuntimeError("the close fails after its transition")
    assert _told(trader, NotificationEvent.DAILY_LOSS) == []  # rolled back with the close
    _close_at_a_loss(trader, at=TUESDAY + timedelta(minutes=10), loss=Decimal("40.55"))
    _close_at_a_loss(trader, at=TUESDAY + timedelta(minutes=20), loss=Decimal("10"))  # still hit: not again
    (told,) = _told(trader, NotificationEvent.DAILY_LOSS)
    assert (told.channel_id, told.critical, told.dedupe_key) == (channel.pk, False, "daily-loss:2026-12-01")
    assert told.title == "Daily loss limit hit"
    assert "Realized loss on 2026-12-01: $100.55" in told.body and "daily loss limit is $100.00" in told.body
    _close_at_a_loss(trader, at=TUESDAY + timedelta(days=1), loss=Decimal("120"))  # Wednesday: a new day
    assert [message.dedupe_key for message in _told(trader, NotificationEvent.DAILY_LOSS)] == [
        "daily-loss:2026-12-01", "daily-loss:2026-12-02"]


def test_a_part_sold_at_a_loss_can_hit_the_limit_too(trader):
    account_with(trader, daily_loss_limit=Decimal("200"))
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.DAILY_LOSS])
    trade = PaperTradeFactory(owner=trader, qty=3, filled_qty=3, entry_price=Decimal("4.20"))
    with tenancy.acting_as(trader.pk):
        part_record(trade=trade, quantity=1, proceeds=Decimal("2.00"), at=TUESDAY,
                    reason=ExitPartReason.PARTIAL_CLOSE, actor="SYSTEM")  # -220.00 gross
    (told,) = _told(trader, NotificationEvent.DAILY_LOSS)
    assert "$220." in told.body


def test_no_channel_chose_it_no_message(trader):
    account_with(trader, daily_loss_limit=Decimal("10"))
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.SL_HIT])
    _close_at_a_loss(trader, at=TUESDAY, loss=Decimal("50"))
    assert _told(trader, NotificationEvent.DAILY_LOSS) == []


# --- A risk limit stopping a trade ----------------------------------------------------------------


@time_machine.travel(TUESDAY, tick=False)
def test_a_refused_open_is_told_once_per_limit_and_day(api_as, trader, market, open_body):
    account_with(trader, max_positions=1, heat_limit_pct=Decimal("100"))
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.RISK_LIMIT])
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)
    for _ in range(2):
        answer = api_as(trader).post("/api/trades", open_body(), format="json")
        assert answer.status_code == 422 and answer.json()["errors"][0]["attr"] == "max_positions"
    (told,) = _told(trader, NotificationEvent.RISK_LIMIT)
    assert told.title == "Risk limit reached: Max open positions"
    assert "1 trade is open or pending and your limit is 1 position" in told.body
    assert told.dedupe_key == "risk-limit:max_positions:2026-12-01" and not told.critical


# --- The broker down and back ---------------------------------------------------------------------


def test_an_outage_is_told_when_it_starts_and_when_it_ends_not_every_cycle(trader):
    NotificationChannelFactory(owner=trader, events=[NotificationEvent.BROKER_OUTAGE])
    account = AccountSettings(owner=trader)
    cache.delete(broker_health.broker_trouble_key(trader.pk, "TRADIER_SANDBOX"))
    for minute in range(3):  # three failing cycles, a minute apart
        broker_health.broker_trouble_record(account=account, mode="TRADIER_SANDBOX",
                                            error=BrokerUnavailable("503 from the broker"),
                                            at=TUESDAY + timedelta(minutes=minute))
    key = (trader.pk, "TRADIER_SANDBOX")
    trouble = broker_health.broker_troubles_of(accounts=[key])[key]
    broker_health.broker_trouble_clear(owner_id=trader.pk, mode="TRADIER_SANDBOX", trouble=trouble)
    broker_health.broker_trouble_clear(owner_id=trader.pk, mode="TRADIER_SANDBOX", trouble=trouble)  # a rerun
    down, back = _told(trader, NotificationEvent.BROKER_OUTAGE)
    assert down.title == "Broker down (Tradier sandbox)" and "since 2026-12-01 11:00 New York" in down.body
    assert "503 from the broker" in down.body
    assert back.title == "Broker back up (Tradier sandbox)" and "from 2026-12-01 11:00 New York" in back.body
    assert not down.critical and not back.critical


@time_machine.travel(TUESDAY, tick=False)
def test_the_new_events_keep_quiet_hours(trader):
    channel = NotificationChannelFactory(owner=trader, events=[NotificationEvent.DAILY_LOSS],
                                         quiet_start=time(0, 0), quiet_end=time(23, 59))
    with tenancy.acting_as(trader.pk), transaction.atomic():
        (message,) = channel_delivery.channel_messages_write(
            owner_id=trader.pk, kind=NotificationEvent.DAILY_LOSS, data={}, words=("Daily loss limit hit", "…"),
            dedupe_key="daily-loss:2026-12-01")
    outcome = services.channel_message_deliver(owner_id=trader.pk, message_id=str(message.pk))
    assert outcome.status == ChannelMessageStatus.HELD and channel.pk == message.channel_id


def test_the_new_events_are_choosable_in_trader_words():
    chosen = dict((value, label) for value, label in NotificationEvent.choices if value in services.CHOOSABLE_EVENTS)
    assert chosen["risk.daily_loss_hit"] == "Daily loss limit hit"
    assert {"broker.outage", "risk.limit_reached", "report.daily", "report.weekly"} <= set(chosen)


# --- The reports' opt-in on the settings ----------------------------------------------------------


def test_the_reports_are_switched_on_in_the_settings_and_bad_input_is_a_field_error(api_as, trader):
    assert api_as(trader).get("/api/settings").json()["daily_report"] is False  # opt-in
    answer = api_as(trader).put("/api/settings", {"daily_report": True, "weekly_report": True}, format="json")
    assert answer.status_code == 200 and (answer.json()["daily_report"], answer.json()["weekly_report"]) == (True, True)
    with tenancy.acting_as(trader.pk):
        assert AccountSettings.objects.filter(owner=trader, daily_report=True, weekly_report=True).exists()
    answer = api_as(trader).put("/api/settings", {"weekly_report": "every other week"}, format="json")
    assert answer.status_code == 400 and answer.json()["errors"][0]["attr"] == "weekly_report"
