"""The performance endpoint for one user with 10,000 closed trades (override with BENCH_CLOSED).

Trades close over about two years of sessions, across 8 strategies, 52 tickers, 4 verdicts and
spread-out scores; another user's 1,000 trades sit in the same table. Each trade has
BENCH_SNAPSHOTS (10) snapshots. Prints the endpoint's wall time (median and worst of several warm
requests after one cold one) and query count; the same for the calibration, exit-replay and
exit-policy-replay
reports and the CSV data set; and the time of the forensic-targets service over all 11,000 trades.
"""

import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from analytics.services import trade_targets_compute
from brokers.occ import build_symbol
from monitoring.models import PriceSnapshot
from tests.factories import UserFactory
from tests.fakes.market import RecordedMinuteBars
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus

CLOSED = int(os.environ.get("BENCH_CLOSED", 10_000))
SNAPSHOTS = int(os.environ.get("BENCH_SNAPSHOTS", 10))  # per trade, between entry and close
REPEAT = int(os.environ.get("BENCH_REPEAT", 7))
FIRST = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)
EXPIRY = date(2027, 1, 15)


def _trades(owner, count, seed):
    rng = np.random.default_rng(seed)
    reasons = [CloseReason.TP_HIT, CloseReason.SL_HIT, CloseReason.MANUAL_CLOSE, CloseReason.EXPIRED]
    closes = rng.integers(150, 650, count)  # cents
    rows = []
    for n in range(count):
        ticker = "X" + chr(65 + n % 26) + chr(65 + n // 26 % 2)  # 52 tickers
        entry_at = FIRST + timedelta(hours=2 * n % 17_000)
        close_price = Decimal(int(closes[n])) / 100
        qty = 1 + n % 3
        rows.append(PaperTrade(
            owner=owner, ticker=ticker, option_type="CALL", strike=Decimal("100"), expiry=EXPIRY,
            option_symbol=build_symbol(ticker, EXPIRY, "CALL", Decimal("100")), qty=qty, filled_qty=qty,
            entry_price=Decimal("4.00"), entry_date=entry_at, sl_price=Decimal("2.50"), tp_price=Decimal("6.50"),
            status=TradeStatus.CLOSED, close_price=close_price, close_date=entry_at + timedelta(hours=1 + n % 30),
            close_reason=reasons[n % 4], realized_pnl=(close_price - Decimal("4.00")) * qty * 100,
            hold_duration_h=Decimal(1 + n % 30), strategy=f"strategy{n % 8}",
            card_score=Decimal(int(rng.integers(0, 1000))) / 100, ai_score=Decimal(int(rng.integers(0, 100))) / 100,
            ai_verdict=["BUY", "HOLD", "SKIP", ""][n % 4], gate_verdict=["PASS", "WARN", "BLOCK", ""][n % 4],
        ))
    return rows


@pytest.fixture
def trader_with_history(db):
    trader, other = UserFactory(username="bench-trader"), UserFactory(username="bench-other")
    with tenancy.acting_as(trader.pk):
        trades = PaperTrade.objects.bulk_create(_trades(trader, CLOSED, 1), batch_size=2000)
        rng = np.random.default_rng(3)
        marks = rng.integers(100, 800, (len(trades), SNAPSHOTS))
        slots = SNAPSHOTS + 1
        PriceSnapshot.objects.bulk_create([
            PriceSnapshot(trade=trade, owner=trader, mark_price=Decimal(int(marks[i, k])) / 100, source="bench",
                          timestamp=trade.entry_date + (trade.close_date - trade.entry_date) * (k + 1) / slots)
            for i, trade in enumerate(trades) for k in range(SNAPSHOTS)
        ], batch_size=5000)
    with tenancy.acting_as(other.pk):
        PaperTrade.objects.bulk_create(_trades(other, 1000, 2), batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trades_papertrade")
        cursor.execute("ANALYZE monitoring_pricesnapshot")
    client = APIClient()
    _, token = AuthToken.objects.create(user=trader)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def _time(client, url, read=lambda response: response.content):
    cold = time.perf_counter()
    response = client.get(url)
    read(response)
    cold = time.perf_counter() - cold
    assert response.status_code == 200, response.content[:300]
    warm = []
    for _ in range(REPEAT):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            read(response)
            warm.append(time.perf_counter() - start)
    return response, cold, warm, len(queries)


def _row(name, cold, warm, queries):
    print(f"{name:<24}{cold * 1000:>10.0f}{statistics.median(warm) * 1000:>12.0f}{max(warm) * 1000:>10.0f}"
          f"{queries:>9}")


def bench_performance_endpoint(trader_with_history):
    client = trader_with_history
    print(f"\nanalytics endpoints, one user with {CLOSED:,} closed trades (another user holds 1,000), "
          f"{REPEAT} warm requests each")
    print(f"{'endpoint':<24}{'cold ms':>10}{'median ms':>12}{'max ms':>10}{'queries':>9}")
    response, cold, warm, queries = _time(client, "/api/analytics/performance")
    assert response.json()["summary"]["trades"] == CLOSED
    _row("performance", cold, warm, queries)
    _row("performance ?strategy", *_time(client, "/api/analytics/performance?strategy=strategy3")[1:])
    _row("calibration", *_time(client, "/api/analytics/calibration")[1:])
    _row(f"exit-replay ({SNAPSHOTS}/trade)", *_time(client, "/api/analytics/exit-replay")[1:])
    response, *timing = _time(client, "/api/analytics/exit-policy-replay")
    _row("exit-policy-replay", *timing)
    answer = response.json()
    print(f"  exit-policy-replay: {answer['trades_replayed']:,} trades replayed within {answer['max_looks']:,} looks "
          f"({answer['trades_left_out']:,} left out), {len(answer['strategies'][0]['candidates'])} policies each")
    _row("dataset csv", *_time(client, "/api/analytics/dataset?format=csv",
                               read=lambda response: b"".join(response.streaming_content))[1:])
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        # A source without bars: this times our own work (thin-path detection included), not a provider's.
        no_bars = RecordedMinuteBars()
        done = trade_targets_compute(closed_from=date(2025, 1, 1), closed_to=date(2027, 1, 1), provider=no_bars)
        elapsed = time.perf_counter() - start
    print(f"forensic targets: {done:,} trades ({SNAPSHOTS:,} snapshots each, {len(no_bars.asked):,} thin) in "
          f"{elapsed * 1000:.0f} ms, {len(queries)} queries")
    assert done == CLOSED + 1000
