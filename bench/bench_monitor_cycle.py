"""The snapshot cycle at scale, side by side with the naive per-trade approach.

2,000 open trades over 200 users and 150 underlyings on the simulated market (override with
BENCH_TRADES / BENCH_USERS / BENCH_UNDERLYINGS). Prints wall and CPU time, database queries and
market-data calls per cycle for both approaches, and the ratio.
"""

import os
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from brokers.occ import build_symbol
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.models import PriceSnapshot
from monitoring.services import cycle_slot, snapshot_positions
from tradeoptions import tenancy
from trades.models import PaperTrade, TradeStatus

TRADES = int(os.environ.get("BENCH_TRADES", 2000))
USERS = int(os.environ.get("BENCH_USERS", 200))
UNDERLYINGS = int(os.environ.get("BENCH_UNDERLYINGS", 150))
AT = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # a Tuesday, midday in New York
EXPIRY = date(2026, 12, 18)


class Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def option_quotes(self, contracts):
        self.calls += 1
        return self.inner.option_quotes(contracts)


def _tickers():
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i // 26 % 26] + letters[i % 26] + "X" for i in range(UNDERLYINGS)]


@pytest.fixture
def book(django_db_blocker):
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench{i}") for i in range(USERS)]
    )
    tickers = _tickers()
    provider = SimulatedProvider(seed="bench", clock=lambda: AT)
    spots = {t: q.last for t, q in provider.underlying_quotes(tickers).items()}
    trades = []
    for n in range(TRADES):
        ticker = tickers[n % len(tickers)]
        strike = (spots[ticker] * Decimal("1.02")).quantize(Decimal("1"))
        trades.append(PaperTrade(
            owner=users[n % len(users)], ticker=ticker, option_type="CALL", strike=strike, expiry=EXPIRY,
            option_symbol=build_symbol(ticker, EXPIRY, "CALL", strike), qty=1 + n % 3,
            entry_price=Decimal("2.00"), entry_date=AT, sl_price=Decimal("1"), tp_price=Decimal("4"),
            status=TradeStatus.OPEN,
        ))
    with tenancy.system_context():
        PaperTrade.objects.bulk_create(trades, batch_size=1000)
    return provider


def _naive_cycle(provider, at):
    """The seed plan's loop: per trade, one quote request, one snapshot insert, one trade save."""
    with tenancy.system_context():
        for trade in PaperTrade.objects.filter(status=TradeStatus.OPEN):
            quote = provider.option_quotes([trade.option_symbol])[trade.option_symbol]
            PriceSnapshot.objects.create(trade=trade, owner_id=trade.owner_id, timestamp=cycle_slot(at),
                                         kind="INTRADAY", mark_price=quote.mark, bid=quote.bid, ask=quote.ask,
                                         source=quote.source, quote_time=quote.quote_time)
            trade.current_price = quote.mark
            trade.unrealized_pnl = (quote.mark - trade.entry_price) * trade.qty * 100
            trade.save(update_fields=["current_price", "unrealized_pnl"])


def _measure(run):
    with CaptureQueriesContext(connection) as queries:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, len(queries)


@pytest.mark.django_db
def bench_snapshot_cycle_against_the_naive_loop(book):
    provider = book
    batched = Counting(provider)
    warm = _measure(lambda: snapshot_positions(provider=batched, at=AT))
    cycle = _measure(lambda: snapshot_positions(provider=batched, at=AT + timedelta(seconds=40)))
    naive_provider = Counting(provider)
    naive = _measure(lambda: _naive_cycle(naive_provider, AT + timedelta(seconds=80)))
    print(f"\nmonitor snapshot cycle: {TRADES} open trades, {USERS} users, {UNDERLYINGS} underlyings (simulated)")
    print(f"{'approach':<28}{'wall s':>9}{'cpu s':>9}{'queries':>9}{'data calls':>12}")
    print(f"{'batched, first cycle':<28}{warm[0]:>9.3f}{warm[1]:>9.3f}{warm[2]:>9}{1:>12}")
    print(f"{'batched, steady cycle':<28}{cycle[0]:>9.3f}{cycle[1]:>9.3f}{cycle[2]:>9}{1:>12}")
    print(f"{'naive per-trade loop':<28}{naive[0]:>9.3f}{naive[1]:>9.3f}{naive[2]:>9}{naive_provider.calls:>12}")
    print(f"ratio naive/batched: wall {naive[0] / cycle[0]:.1f}x, queries {naive[2] / cycle[2]:.0f}x")
    with tenancy.system_context():
        assert PriceSnapshot.objects.count() == 3 * TRADES
