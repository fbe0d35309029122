"""A burst of 50 opens while the monitor keeps its schedule (the incident of issue 1/8, section 3:
eight opens queued eight entry contexts that waited ~24 s each on the rate limiter in both worker
slots; the order sync ran 55 s late and six monitor cycles expired).

Real Celery workers as `make run` starts them, with the Procfile's queues and concurrency
(tests/fakes/timed_worker.py, which says when each task starts and ends): the monitor's worker
on its own queue, the other worker on the enrichment queue. Market data comes from the fake
Tradier over HTTP, through the same shared Redis rate budget for the monitor and the entry
context, whose background share is spent when the burst begins. The test plays beat: every job
sent each PERIOD and expiring after it (as the schedule's jobs expire after their period), the
periods compressed so the test takes a minute.
"""

import statistics
import threading
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
import redis

from brokers import market as market_registry
from brokers.base import BrokerRateLimited
from brokers.occ import build_symbol
from brokers.ratelimit import BACKGROUND, MARKET_DATA, RateLimiter, limits_for
from monitoring import clock as market_clock
from monitoring.models import PriceSnapshot
from tests.fakes.market import HandDrivenMarket
from tests.fakes.timed_worker import TimedWorkers, redis_time
from tests.fakes.tradier import SANDBOX
from tradeoptions import tenancy
from tradeoptions.celery import app
from trades.models import AccountSettings, Actor, PaperTrade
from trades.services import TradeOpenInput, trade_open

OPENS = 50
PERIOD = 6.0  # seconds between two sends of each job, and each message's expiry
WINDOW = 36.0  # seconds of schedule played while the burst lands
JOBS = ("monitoring.sync_orders", "monitoring.match_paper_orders", "monitoring.snapshot_prices")
ON_TIME = 2.0  # the latest a monitor job may start after beat sent it (the incident: 55 s)
# How long an entry-context run holds a worker slot (the incident: ~24 s, asleep on the limiter).
# A refused run takes milliseconds; one that got slots fetches and computes, and a pool process's
# first run is slow on a loaded machine: the typical run and the longest are bounded apart.
TYPICAL_SLOT_HELD = 0.5
LONGEST_SLOT_HELD = 10.0


def _friday_weeks_ahead(today: date, weeks: int) -> date:
    """A Friday expiry about `weeks` out that is a trading day (Good Friday, Juneteenth and
    Christmas fall on Fridays in some years: the open would refuse them)."""
    day = today + timedelta(weeks=weeks)
    day += timedelta(days=(4 - day.weekday()) % 7)
    while not market_clock.is_trading_day(day):
        day += timedelta(weeks=1)
    return day


@pytest.fixture
def workers(redis_client, fake_tradier):
    token = f"mdTOKEN-burst-{uuid.uuid4().hex[:12]}"
    fake_tradier.add_token(token, SANDBOX)
    fake_tradier.budgets["market_data"] = 100_000  # the fake's own count never blocks: ours is under test
    url = fake_tradier.url(SANDBOX)  # a sandbox URL: 60 market-data requests a minute, less the safety margin
    timed = TimedWorkers(redis_client, f"timings:{uuid.uuid4().hex}", {
        "MARKET_DATA_SOURCE": "tradier", "TRADIER_MARKET_DATA_TOKEN": token, "TRADIER_MARKET_DATA_URL": url,
        "TRADIER_RATE_RESERVED_SHARE": "0.3", "FORCE_MARKET_OPEN": "true",
    })
    timed.token, timed.url = token, url
    yield timed
    timed.close()


def _spend_the_background_share(token: str, url: str) -> int:
    background = RateLimiter(token, limits=limits_for(url), priority=BACKGROUND)
    spent = 0
    while True:
        try:
            background.acquire(MARKET_DATA)
        except BrokerRateLimited:
            return spent
        spent += 1


def _open_burst(users, contract_expiry: date, hand) -> list[PaperTrade]:
    trades = []
    for user in users:
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(
                owner=user, defaults={"account_balance": Decimal("100000"), "max_positions": OPENS})
    for n in range(OPENS):
        data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=contract_expiry, qty=1,
                              sl_price=Decimal("3.00"), tp_price=Decimal("6.50"))
        trades.append(trade_open(user=users[n % len(users)], data=data, market=hand, actor=Actor.SYSTEM,
                                 actor_label="scanner").trade)
    return trades


def _runs(lines: list[dict], task: str) -> list[tuple[dict, dict]]:
    """(started, ended) of every run of `task`; a deferred task runs again under the same id."""
    runs, open_runs = [], {}
    for line in lines:
        if line.get("task") != task:
            continue
        if line["event"] == "started":
            open_runs[line["id"]] = line
        elif line["event"] == "ended" and line["id"] in open_runs:
            runs.append((open_runs.pop(line["id"]), line))
    return runs


def _once_every_run_has_ended(workers, *, within: float = 30.0) -> list[dict]:
    """The workers' lines once each run that started has ended (a deferred task starts again under
    its id, so the starts and ends of an id are counted): waited for, not guessed with a sleep."""
    deadline = time.monotonic() + within
    while True:
        lines = workers.lines()
        started = Counter(line["id"] for line in lines if line["event"] == "started")
        ended = Counter(line["id"] for line in lines if line["event"] == "ended")
        if started == ended or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_50_opens_never_delays_or_drops_a_monitor_job(trader, other_trader, fake_tradier, workers,
                                                                 monkeypatch, settings):
    expiry = _friday_weeks_ahead(market_clock.now().date(), 6)
    contract = build_symbol("SPY", expiry, "CALL", Decimal("570"))
    fake_tradier.set_quote(contract, "4.10", "4.30")
    fake_tradier.set_quote("SPY", "581.20", "581.26", last="581.23")
    hand = HandDrivenMarket(market_clock.now())
    hand.set_quote(contract, "4.10", "4.30")
    monkeypatch.setattr(market_registry, "_market", hand)  # the opens' fills, in this process

    workers.start_as_in_the_procfile("monitor")
    workers.start_as_in_the_procfile("worker")
    workers.wait_until_ready()
    assert _spend_the_background_share(workers.token, workers.url) > 0

    sent: dict[str, tuple[str, float]] = {}  # task id -> (job, when beat sent it, Redis clock)
    stop = threading.Event()

    def beat():
        client = redis.Redis.from_url(settings.REDIS_URL)
        due = time.monotonic()
        while not stop.is_set():
            for job in JOBS:
                at = redis_time(client)
                sent[app.send_task(job, expires=PERIOD).id] = (job, at)
            due += PERIOD
            stop.wait(max(0.0, due - time.monotonic()))
        client.close()

    ticking = threading.Thread(target=beat, name="beat")
    ticking.start()
    started = time.monotonic()
    try:
        trades = _open_burst([trader, other_trader], expiry, hand)  # each queues its entry context on commit
        opened_in = time.monotonic() - started
        while time.monotonic() - started < WINDOW:
            workers.check_alive()
            time.sleep(0.5)
    finally:
        stop.set()
        ticking.join()

    # Every job beat sent has started or expired.
    deadline = time.monotonic() + PERIOD + 30
    while True:
        lines = workers.lines()
        settled = {line["id"] for line in lines if line["event"] in ("started", "expired", "revoked")}
        if set(sent) <= settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    lines = _once_every_run_has_ended(workers)

    dropped = [sent[line["id"]][0] for line in lines if line["event"] in ("expired", "revoked") and line["id"] in sent]
    assert dropped == [], f"monitor jobs dropped as expired: {dropped}"
    first_start = {}
    for line in lines:
        if line["event"] == "started" and line["id"] in sent:
            first_start.setdefault(line["id"], line["at"])
    assert set(first_start) == set(sent), workers.logs()
    lateness = {task_id: first_start[task_id] - at for task_id, (_, at) in sent.items()}
    by_job = {job: [lateness[task_id] for task_id, (name, _) in sent.items() if name == job] for job in JOBS}
    monitor_runs = [run for job in JOBS for run in _runs(lines, job)]
    assert monitor_runs and all(ended["state"] == "SUCCESS" for _, ended in monitor_runs), monitor_runs

    entry_runs = _runs(lines, "monitoring.collect_entry_context")
    held = [ended["at"] - began["at"] for began, ended in entry_runs]
    deferred = [began for began, _ in entry_runs if began["retries"] > 0]

    per_job = ", ".join(f"{job.split('.')[1]} {max(late):.3f}" for job, late in by_job.items())
    summary = (f"{len(sent)} monitor jobs sent over {WINDOW:.0f} s while {OPENS} opens ({opened_in:.1f} s) queued "
               f"their entry contexts: start lateness median {statistics.median(lateness.values()):.3f} s, "
               f"max {max(lateness.values()):.3f} s ({per_job}); "
               f"{len(entry_runs)} entry-context runs ({len(deferred)} after a deferral), "
               f"slot held median {statistics.median(held):.3f} s, longest {max(held):.3f} s")
    print("\n" + summary)
    assert max(lateness.values()) < ON_TIME, summary
    # Every open's entry context ran, found the budget spent and deferred instead of waiting in a slot.
    assert len({began["id"] for began, _ in entry_runs}) == OPENS, summary
    assert deferred and statistics.median(held) < TYPICAL_SLOT_HELD and max(held) < LONGEST_SLOT_HELD, summary
    # The monitor priced the positions all along, on the same token's budget: its reserved share.
    with tenancy.system_context():
        assert PriceSnapshot.objects.filter(trade__in=[trade.pk for trade in trades]).exists()
