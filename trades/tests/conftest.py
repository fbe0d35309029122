"""Fixtures for the trade lifecycle: a hand-driven market, API clients per persona, a broker
whose failures a test can script, and a request body for opening a trade."""

import socket
import threading
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import pytest

from brokers.paper import FillRules, LocalPaperBroker

# The hand-driven market starts on Tuesday 2026-12-01 at 15:00 UTC (10:00 in New York), open.
CONTRACT = "SPY261218C00570000"
EXPIRY = date(2026, 12, 18)
RULES = FillRules(commission_per_contract=Decimal("0.65"), slippage_per_share=Decimal("0"))


def trade_at_fake_tradier(fake, trader, *, token: str, account: str):
    """`trader` trades in a sandbox account of the fake Tradier ($10,000; CONTRACT quoted 4.10/4.30)."""
    from brokers.models import BrokerMode
    from trades import services

    fake.add_account(token=token, account_id=account, cash=Decimal("10000"))
    fake.set_quote(CONTRACT, "4.10", "4.30")
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": account}, sandbox_token=token)
    return fake


@pytest.fixture
def open_body():
    """A valid market entry on CONTRACT: 2 contracts, SL 3.00, TP 6.50 (risk ≈ $260 at the 4.30 ask)."""

    def body(**changes):
        payload = {
            "ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": EXPIRY.isoformat(), "qty": 2,
            "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "momentum",
            "card_score": "7.5", "signals_snapshot": {"rsi": 61},
        }
        payload.update(changes)
        return {name: value for name, value in payload.items() if value is not None}

    return body


class ScriptedBroker:
    """The local paper broker, with failures a test scripts per method: `fail("place_oco_order",
    BrokerUnavailable("down"), None, ...)` makes successive calls raise or (None) go through."""

    def __init__(self, inner: LocalPaperBroker) -> None:
        self.inner = inner
        self.script: dict[str, list] = {}
        self.calls: list[str] = []
        self.supports_otoco = inner.supports_otoco

    def fail(self, method: str, *outcomes) -> None:
        self.script.setdefault(method, []).extend(outcomes)

    def __getattr__(self, name):
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            self.calls.append(name)
            queue = self.script.get(name)
            if queue:
                outcome = queue.pop(0)
                if outcome is not None:
                    raise outcome
            return target(*args, **kwargs)

        return call


@pytest.fixture
def scripted_broker(monkeypatch, market):
    """Routes every trade service's broker to one ScriptedBroker per account owner."""
    from trades.services import orders

    brokers: dict[int, ScriptedBroker] = {}

    def broker_for(account, *, market=None):
        if account.owner_id not in brokers:
            brokers[account.owner_id] = ScriptedBroker(LocalPaperBroker(
                account.owner_id, starting_cash=account.account_balance, market=market, rules=RULES))
        return brokers[account.owner_id]

    monkeypatch.setattr(orders, "broker_for", broker_for)

    def for_user(user) -> ScriptedBroker:
        from trades.services import account_settings_for

        return broker_for(account_settings_for(user=user), market=market)

    return for_user


@pytest.fixture
def broker_held(monkeypatch):
    """Once `armed`, the local paper broker's `place_order` waits until the test releases it: a
    request can be held "at the broker" (its transaction and locks open) while a second arrives."""
    armed, entered, release = threading.Event(), threading.Event(), threading.Event()
    place = LocalPaperBroker.place_order

    def held_place(self, request):
        if armed.is_set():
            entered.set()
            assert release.wait(10)
        return place(self, request)

    monkeypatch.setattr(LocalPaperBroker, "place_order", held_place)
    return SimpleNamespace(arm=armed.set, entered=entered, release=release)


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 (answers 200 unless told otherwise)."""
    from tests.fakes.webhook_receiver import WebhookReceiver

    running = WebhookReceiver().start()
    yield running
    running.stop()


@pytest.fixture
def tasks_run_at_once(monkeypatch):
    """Queued Celery tasks run in the test's thread, retries included (without their countdown:
    a webhook retry's slot is made due at once, as if the countdown had passed)."""
    from django.utils import timezone

    from tradeoptions import tenancy
    from tradeoptions.celery import app
    from trades.models import WebhookEvent
    from trades.tasks import deliver_webhook

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    retry = deliver_webhook.retry

    def retry_now(*args, **kwargs):
        owner_id, event_id = deliver_webhook.request.args
        with tenancy.acting_as(owner_id):
            WebhookEvent.objects.filter(pk=event_id).update(next_attempt_at=timezone.now())
        return retry(*args, **kwargs)

    monkeypatch.setattr(deliver_webhook, "retry", retry_now)


@pytest.fixture
def dns(monkeypatch):
    """A resolver the test controls for names under example.com; every other name resolves as usual."""
    from trades.services import notifications

    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(notifications.socket, "getaddrinfo", getaddrinfo)
    return answers
