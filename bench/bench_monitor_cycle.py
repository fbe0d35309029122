"""The snapshot cycle at scale, side by side with the naive per-trade approach.

2,000 open trades over 200 users and 150 underlyings on the simulated market (override with
BENCH_TRADES / BENCH_USERS / BENCH_UNDERLYINGS). Prints wall and CPU time, database queries and
market-data calls per cycle for both approaches, and the ratio.
"""

import os
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import books
import pytest
from django.db import connection

from brokers.paper import LocalPaperBroker
from monitoring.market import MarketDataMarket
from monitoring.marketdata.simulated import SimulatedProvider
from monitoring.models import PriceSnapshot
from monitoring.services import cycle_slot, match_paper_orders, snapshot_positions, sync_orders
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


@pytest.fixture
def book(django_db_blocker):
    provider = SimulatedProvider(seed="bench", clock=lambda: AT)
    contracts = books.contracts_list(provider, UNDERLYINGS, [books.Variant(Decimal("1.02"), EXPIRY)])
    books.trades_open(user_ids=books.users_create(USERS), contracts=contracts, start=0, end=TRADES, at=AT)
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
    """Wall and CPU seconds and every query (Django's own log keeps only the last 9,000)."""
    count = [0]

    def counter(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, count[0]


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


# --- The full cycle: snapshots + local-paper matching + order sync -----------------------------


@pytest.fixture
def bracketed_book(book):
    """`book`, each trade protected by a working OCO at the local paper broker (a stop at a cent and
    a far take-profit, so that the steady cycle measures looking, not filling)."""
    books.brackets_attach(at=AT)
    return book


class CountingBroker:
    """Counts what the cycle asks of the local paper broker."""

    calls = 0

    @classmethod
    def install(cls, monkeypatch):
        for name in ("get_orders", "get_order", "cancel_order", "place_oco_order"):
            real = getattr(LocalPaperBroker, name)

            def counted(self, *args, real=real, **kwargs):
                cls.calls += 1
                return real(self, *args, **kwargs)

            monkeypatch.setattr(LocalPaperBroker, name, counted)


def _full_cycle(provider, market, at):
    snapshot_positions(provider=provider, at=at)
    match_paper_orders(market=market)
    sync_orders(market=market, at=at)


def _naive_full_cycle(provider, market, at):
    """The seed plan: per trade, a chain fetch for its quote, a broker call for its orders, a
    snapshot insert and a trade save."""
    with tenancy.system_context():
        trades = list(PaperTrade.objects.filter(status=TradeStatus.OPEN))
    for trade in trades:
        chain = market.option_chain(trade.ticker, trade.expiry)
        quote = next((entry.quote for entry in chain if entry.symbol == trade.option_symbol), None)
        quote = quote or market.quotes([trade.option_symbol])[trade.option_symbol]
        with tenancy.acting_as(trade.owner_id):
            LocalPaperBroker(trade.owner_id, starting_cash=Decimal("5000"), market=market).get_order(
                trade.bracket_order_id)
            mark = quote.mid
            PriceSnapshot.objects.create(trade=trade, owner_id=trade.owner_id, timestamp=cycle_slot(at),
                                         kind="INTRADAY", mark_price=mark, bid=quote.bid, ask=quote.ask,
                                         source="simulated", quote_time=at)
            trade.current_price = mark
            trade.unrealized_pnl = (mark - trade.entry_price) * trade.qty * 100
            trade.save(update_fields=["current_price", "unrealized_pnl"])


class CountingMarket(MarketDataMarket):
    quote_calls = 0

    def quotes(self, symbols):
        CountingMarket.quote_calls += 1
        return super().quotes(symbols)


# Committed as it goes (transaction=True), as the workers' cycles are: the order sync's pre-filter
# tells changed orders by the transactions that made them, and in one test transaction every row
# would be its own, unfinished one. BENCH_NAIVE=0 leaves out the naive loop (minutes at 10,000).
@pytest.mark.django_db(transaction=True)
def bench_full_cycle_against_the_naive_loop(bracketed_book, monkeypatch, settings):
    provider = bracketed_book
    market = CountingMarket(provider, clock=lambda: AT)
    CountingBroker.install(monkeypatch)
    counted = Counting(provider)
    rows = []
    cycles = (("batched, first cycle", AT, True), ("batched, steady cycle", AT + timedelta(seconds=40), True),
              ("steady, sync pre-filter off", AT + timedelta(seconds=80), False),
              ("steady, sync pre-filter on", AT + timedelta(seconds=120), True))
    for label, at, prefilter in cycles:
        settings.ORDER_SYNC_PREFILTER = prefilter
        CountingBroker.calls, CountingMarket.quote_calls, counted.calls = 0, 0, 0
        wall, cpu, queries = _measure(lambda at=at: _full_cycle(counted, market, at))
        rows.append((label, wall, cpu, queries, counted.calls + CountingMarket.quote_calls, CountingBroker.calls))
    if os.environ.get("BENCH_NAIVE", "1") == "0":
        print(f"\nmonitor full cycle: {TRADES} trades with brackets, {USERS} users, {UNDERLYINGS} underlyings")
        print(f"{'approach':<28}{'wall s':>9}{'cpu s':>9}{'queries':>9}{'data calls':>12}{'broker calls':>14}")
        for label, wall, cpu, queries, data, broker in rows:
            print(f"{label:<28}{wall:>9.3f}{cpu:>9.3f}{queries:>9}{data:>12}{broker:>14}")
        return
    CountingBroker.calls, CountingMarket.quote_calls = 0, 0
    wall, cpu, queries = _measure(lambda: _naive_full_cycle(provider, market, AT + timedelta(seconds=160)))
    rows.append(("naive per-trade loop", wall, cpu, queries, CountingMarket.quote_calls + TRADES,
                 CountingBroker.calls))
    print(f"\nmonitor full cycle (snapshots + paper matching + order sync): {TRADES} trades with brackets, "
          f"{USERS} users, {UNDERLYINGS} underlyings (simulated market, local paper broker)")
    print(f"{'approach':<28}{'wall s':>9}{'cpu s':>9}{'queries':>9}{'data calls':>12}{'broker calls':>14}")
    for label, wall, cpu, queries, data, broker in rows:
        print(f"{label:<28}{wall:>9.3f}{cpu:>9.3f}{queries:>9}{data:>12}{broker:>14}")
    steady, naive = rows[1], rows[-1]
    print(f"ratio naive/batched: wall {naive[1] / steady[1]:.1f}x, queries {naive[3] / steady[3]:.0f}x; "
          f"broker calls {naive[5]} -> {steady[5]} (local-paper orders are read in one batch)")
