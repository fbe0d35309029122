"""The trade history for one user with 5,000 finished trades (BENCH_HISTORY_TRADES; 1 in 10 never
filled) while another user's 5,000 sit in the same table: for each of a few filters and sorts, the
endpoint's wall time (median of BENCH_REPEAT warm requests), its query count, and PostgreSQL's plan
of the page query and of the totals (indexes used, whether it sorts, rows read), the planner left
free after ANALYZE. Run: `make bench ARGS="bench/bench_history.py"`.
"""

import json
import os
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from knox.models import AuthToken
from rest_framework.test import APIClient

from brokers.occ import build_symbol
from tests.factories import UserFactory
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus
from trades.selectors import TradeFilters, trade_history

TRADES = int(os.environ.get("BENCH_HISTORY_TRADES", 5000))
REPEAT = int(os.environ.get("BENCH_REPEAT", 7))
FIRST = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)
EXPIRY = date(2027, 1, 15)
REASONS = [CloseReason.TP_HIT, CloseReason.SL_HIT, CloseReason.MANUAL_CLOSE, CloseReason.EXPIRED]
CASES = [  # (label, query string, the same as selector arguments)
    ("default (-close_date)", "", TradeFilters(), None),
    ("ticker", "?ticker=XB", TradeFilters(ticker="XB"), None),
    ("month", "?from=2025-06-01&to=2025-06-30", TradeFilters(day_from=date(2025, 6, 1), day_to=date(2025, 6, 30)),
     None),
    ("strategy + loss", "?strategy=strategy2&outcome=loss", TradeFilters(strategy="strategy2", outcome="loss"),
     None),
    ("close reason", "?close_reason=SL_HIT", TradeFilters(close_reason="SL_HIT"), None),
    ("sort -realized_pnl", "?ordering=-realized_pnl", TradeFilters(), "-realized_pnl"),
    ("unfilled", "?outcome=unfilled", TradeFilters(outcome="unfilled"), None),
    ("page 40 of 50 a page", "?page=40", TradeFilters(), None),
]


def _trades(owner, count):
    rows = []
    for n in range(count):
        ticker = "X" + chr(65 + n % 26)
        entry_at = FIRST + timedelta(hours=3 * n % 14_000)
        unfilled = n % 10 == 9
        close_price = Decimal(150 + n * 37 % 500) / 100
        rows.append(PaperTrade(
            owner=owner, ticker=ticker, option_type="CALL", strike=Decimal("100"), expiry=EXPIRY,
            option_symbol=build_symbol(ticker, EXPIRY, "CALL", Decimal("100")), qty=1,
            sl_price=Decimal("2.50"), tp_price=Decimal("6.50"), strategy=f"strategy{n % 8}",
            **({"status": TradeStatus.REJECTED if n % 20 == 9 else TradeStatus.CANCELED,
                "status_reason": "Not filled."} if unfilled else {
                "status": TradeStatus.CLOSED, "filled_qty": 1, "entry_price": Decimal("4.00"), "entry_date": entry_at,
                "close_price": close_price, "close_date": entry_at + timedelta(hours=1 + n % 30),
                "close_reason": REASONS[n % 4], "realized_pnl": (close_price - Decimal("4.00")) * 100,
                "hold_duration_h": Decimal(1 + n % 30)}),
        ))
    return rows


@pytest.fixture
def history_client(db):
    trader, other = UserFactory(username="bench-history"), UserFactory(username="bench-history-other")
    for owner in (trader, other):
        with tenancy.acting_as(owner.pk):
            PaperTrade.objects.bulk_create(_trades(owner, TRADES), batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trades_papertrade")
    client = APIClient()
    _, token = AuthToken.objects.create(user=trader)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return trader, client


def _walk(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _walk(child)


def _plan(queryset) -> str:
    plan = json.loads(queryset.explain(format="json", analyze=True))[0]["Plan"]
    nodes = list(_walk(plan))
    indexes = sorted({node["Index Name"] for node in nodes if "Index Name" in node}) or ["none"]
    seq = any(node["Node Type"] == "Seq Scan" for node in nodes)
    sort = any(node["Node Type"] in ("Sort", "Incremental Sort") for node in nodes)
    read = sum(int(node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0))
               for node in nodes if "Relation Name" in node)  # table reads (a bitmap's index part is not one)
    return f"{','.join(indexes)}{' +seq' if seq else ''}{' +sort' if sort else ''} ({read} rows read)"


def bench_history(history_client):
    trader, client = history_client
    print(f"\ntrade history, one user with {TRADES:,} finished trades (another user holds {TRADES:,}), "
          f"{REPEAT} warm requests each")
    print(f"{'case':<24}{'median ms':>10}{'queries':>8}{'count':>7}  page plan | totals plan")
    for label, query, filters, ordering in CASES:
        url = f"/api/trades/history{query}"
        assert client.get(url).status_code == 200
        warm = []
        for _ in range(REPEAT):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url)
                warm.append(time.perf_counter() - start)
        body = response.json()
        with tenancy.acting_as(trader.pk):
            trades = trade_history(user=trader, filters=filters, ordering=ordering)
            offset = (body["page"] - 1) * 50
            plans = f"{_plan(trades[offset:offset + 50])} | {_plan(trades.order_by())}"
        print(f"{label:<24}{statistics.median(warm) * 1000:>10.0f}{len(queries):>8}{body['count']:>7}  {plans}")
