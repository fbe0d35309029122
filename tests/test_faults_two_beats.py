"""Two `celery beat` processes started by mistake, both firing every monitor job every second into
one worker with two pool processes: no job does its work twice for the same slot.

Real processes throughout: two beats on django-celery-beat's database scheduler (the schedule
shortened to one second so the test sees many double dispatches in a few seconds) and a worker
whose market clock is frozen at 9:25:20 New York time on Tuesday 2026-12-01, the moment the
pre-market bookend is due, with the take-profit of every position reached.
"""

import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.cache import cache
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from brokers import market as market_registry
from brokers.models import PaperOrder
from monitoring import clock as market_clock
from monitoring.models import PriceSnapshot, SnapshotKind
from tests.fakes.fault_worker import ROOT, WAIT, FaultWorker, database_url, queue_keys
from tests.fakes.market import HandDrivenMarket
from tradeoptions import tenancy
from trades.models import AccountSettings, Actor, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_open

CONTRACT = "SPY261218C00570000"
OPENED_AT = datetime(2026, 12, 1, 14, 20, tzinfo=UTC)
FROZEN_AT = datetime(2026, 12, 1, 14, 25, 20, tzinfo=UTC)  # 9:25:20: the pre-market bookend is due
JOBS = ("monitoring.take_bookends", "monitoring.snapshot_prices", "monitoring.sync_orders")
BEATING = 8  # seconds both beats fire together


@pytest.fixture
def worker(redis_client, settings):
    worker = FaultWorker(redis_client, settings.REDIS_URL, quotes={CONTRACT: ["6.60", "6.80"]}, now=FROZEN_AT)
    yield worker
    worker.close()


@pytest.fixture
def beats(settings):
    started = []

    def start(count: int, scheduler: str | None = None) -> list:
        environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.test",
                       "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL}
        for number in range(count):
            log = ROOT / ".data" / f"fault-beat-{os.getpid()}-{number}.log"
            log.unlink(missing_ok=True)
            with log.open("w") as out:
                process = subprocess.Popen(
                    # On the test's clock, moved or not (tests/clock_shift.py).
                    [sys.executable, "-m", "tests.clock_shift", "celery", "-A", "tradeoptions", "beat",
                     "--loglevel", "INFO",
                     "--max-interval", "1", "--pidfile", "", "-s", str(log.with_suffix(".schedule")),
                     *(["--scheduler", scheduler] if scheduler else [])],
                    cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
            started.append((process, log))
        return started

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)


def stop(process) -> None:
    """SIGTERM, as a service manager would; a beat slow to shut down on a loaded machine is killed
    (its log already says what it sent)."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def every_second(names) -> None:
    second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    for name in names:
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": name, "interval": second,
                                                                   "enabled": True, "expire_seconds": 30})


def drained(worker) -> None:
    """Wait until nothing the beats queued is left in Redis and every task the worker received has
    ended (its log says how: succeeded, raised, retry...), instead of guessing how long that takes.
    At the deadline the assertions that follow judge what the worker did by then."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        log = worker.log.read_text()
        received = len(re.findall(r"Task monitoring\.\w+\[\S+\] received", log))
        ended = len(re.findall(r"Task monitoring\.\w+\[\S+\] (?!received)", log))
        if not sum(worker.redis.llen(key) for key in queue_keys()) and received == ended:
            return
        time.sleep(0.2)


def sent(log) -> Counter:
    return Counter(re.findall(r"Sending due task \S+ \((\S+)\)", log.read_text()))


@pytest.mark.django_db(transaction=True)
def test_two_beats_firing_every_job_together_do_each_slots_work_once(trader, other_trader, monkeypatch, worker,
                                                                     beats):
    cache.clear()
    hand = HandDrivenMarket(OPENED_AT)
    hand.set_quote(CONTRACT, "4.10", "4.30")
    monkeypatch.setattr(market_registry, "_market", hand)
    monkeypatch.setattr(market_clock, "now", lambda: hand.moment)
    trades = []
    for user in (trader, other_trader):
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(owner=user, defaults={"account_balance": Decimal("100000")})
        data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18),
                              qty=1, sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
        trades.append(trade_open(user=user, data=data, market=hand, actor=Actor.SYSTEM, actor_label="scanner").trade)
    with tenancy.system_context():
        orders_before = PaperOrder.objects.count()
    every_second(JOBS)

    worker.start(pool=("--pool", "prefork", "--concurrency", "2"))
    # The worst case: two beats that both send. The deployed scheduler (tradeoptions/beat.py) keeps
    # a second beat standing by (next test); this one is django-celery-beat's own, as if the
    # leader lease had been lost (a Redis failover), so the jobs themselves must hold the line.
    started = beats(2, scheduler="django_celery_beat.schedulers:DatabaseScheduler")
    deadline = time.monotonic() + WAIT
    while not all(sum(sent(log).values()) for _, log in started):  # both beats are up and firing
        assert time.monotonic() < deadline, "\n".join(log.read_text()[-2000:] for _, log in started)
        time.sleep(0.2)
    time.sleep(BEATING)
    for process, _ in started:
        stop(process)
    for _, log in started:  # each beat sent each job several times: many double dispatches
        assert all(sent(log)[job] >= 2 for job in JOBS), sent(log)
    drained(worker)  # the worker has run all that the beats queued

    work = worker.log.read_text()
    done = re.findall(r"Task (monitoring\.\w+)\[\S+\] succeeded in \S+ (.*)", work)
    ran = Counter(name for name, _ in done)
    assert all(ran[job] >= 4 for job in JOBS), ran
    bookends_taken = [result for name, result in done if name == "monitoring.take_bookends" and "taken=Snap" in result]
    assert len(bookends_taken) == 1, bookends_taken  # quoted once, however often it was asked
    with tenancy.system_context():
        snapshots = Counter(PriceSnapshot.objects.values_list("trade_id", "timestamp", "kind"))
        assert max(snapshots.values()) == 1
        assert Counter(kind for _, _, kind in snapshots) == {SnapshotKind.PRE_MARKET: 2, SnapshotKind.INTRADAY: 2}
        closed = TradeEvent.objects.filter(trade__in=[t.pk for t in trades], new_status=TradeStatus.CLOSED)
        assert sorted(closed.values_list("trade_id", flat=True)) == sorted(t.pk for t in trades)
        assert set(PaperTrade.objects.filter(pk__in=[t.pk for t in trades]).values_list("status", flat=True)) == {
            TradeStatus.CLOSED}
        assert PaperOrder.objects.count() == orders_before
        assert PaperOrder.objects.filter(status="filled", side="sell_to_close").count() == 2
    skipped = sum("skipped" in result for _, result in done)
    print(f"\njobs run by the worker from two beats in {BEATING} s: {dict(ran)}; {skipped} skipped on a held lock")


@pytest.mark.django_db(transaction=True)
def test_with_the_deployed_scheduler_a_second_beat_only_stands_by(beats):
    every_second(JOBS)
    started = beats(2)
    deadline = time.monotonic() + WAIT

    def settled() -> bool:  # one beat sends, the other has said it stands by (slow starts allowed)
        logs = [log.read_text() for _, log in started]
        return any(sum(sent(log).values()) for _, log in started) and any(
            "stands by: another beat sends the schedule" in text for text in logs)

    while not settled():
        assert time.monotonic() < deadline, "\n".join(log.read_text()[-2000:] for _, log in started)
        time.sleep(0.2)
    time.sleep(4)  # several more ticks: the one standing by still sends nothing
    for process, _ in started:
        stop(process)
    sending = [log for _, log in started if sum(sent(log).values())]
    assert len(sending) == 1, [sent(log) for _, log in started]
    standing_by = next(log for _, log in started if log not in sending)
    assert "stands by: another beat sends the schedule" in standing_by.read_text()
