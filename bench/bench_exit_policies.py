"""Exit policies at Tradier over a volatile day: broker calls per trade per hour, side by side with
a naive "replace the stop on every tick where the trailing level changed" (freqtrade #11788).

200 open trades (BENCH_TRADES) over 50 sandbox accounts (BENCH_ACCOUNTS), each with a trailing or
breakeven policy and its OCO bracket at the fake Tradier over real HTTP. The day is a seeded
random walk of each contract's bid (BENCH_SEED), one step per monitor cycle (60 s) from 09:31 to
16:00 New York, log-normal with a 2 % standard deviation a minute (BENCH_SIGMA_PCT: about 40 % over
the day, a volatile day for an option). The simulated market of monitoring/marketdata/simulated.py
is not used: its intraday path is smooth by design, and the point here is a stop that wants to
move often.

* The runner: the monitor's real order cycle (`monitoring.services.orders_cycle`: exit policies,
  then the order sync that closes trades whose stop filled) against the fake, through the real
  Tradier client and the real rate limiter (budgets less the safety margin, the per-account
  modification budget). `BENCH_MODIFY=refused` makes the fake refuse leg modifications, so every
  move is a cancel-and-replace.
* The naive loop: the same engine's trailing level with no minimum step and no interval, and every
  change sent as cancel + place of the OCO through the same client (no modify, no budget).

Both see the same quotes at the same moments, on separate accounts. The fake counts every request
it receives by kind. Wall time is compressed (a day in a few minutes), so between cycles the rate
limiter's buckets are emptied of their spend, as a minute of waiting would (the modification bucket
refills in 15 s, the trading one in 6 s), and the fake's own per-minute windows are switched off;
limiter waits inside a cycle are recorded, not slept. Run: `make bench ARGS="bench/bench_exit_policies.py"`.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from brokers import factory as broker_factory
from brokers.base import ModifyBudgetSpent, OrderDuration, OrderRequest, OrderSide, OrderStatus, OrderType
from brokers.models import BrokerMode
from brokers.occ import build_symbol
from brokers.ratelimit import GROUPS, RateLimiter, _redis_for
from brokers.tradier import TradierClient
from monitoring.services import orders_cycle
from tests.fakes.market import HandDrivenMarket, HandMadeBars
from tests.fakes.tradier import FINAL
from tradeoptions import tenancy
from trades import services as trade_services
from trades.models import PaperTrade, TradeStatus
from trades.services.exit_policies import ExitPolicy, ExitState, Observation, exit_policy_evaluate, on_tick, price_tick

TRADES = int(os.environ.get("BENCH_TRADES", 200))
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", 50))
SEED = os.environ.get("BENCH_SEED", "exit-policies")
SIGMA = float(os.environ.get("BENCH_SIGMA_PCT", 2.0)) / 100
# Quotes the naive loop acts on per monitor cycle: 1, the monitor's own cadence (the fair match);
# 12, a quote every 5 s, as freqtrade's default loop would see them.
NAIVE_TICKS = int(os.environ.get("BENCH_NAIVE_TICKS", 1))
MODIFY = os.environ.get("BENCH_MODIFY", "in_place")  # or "refused": the fake refuses leg modifications
OPEN = datetime(2026, 12, 1, 14, 31, tzinfo=UTC)  # Tuesday 1 December 2026, 09:31 in New York
CLOSE = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)  # 16:00
CYCLE = timedelta(seconds=60)
EXPIRY = date(2026, 12, 18)
SPREAD = Decimal("0.10")
POLICIES = (  # what traders ask for: trailing by % or $, with activation, step and breakeven
    {"trail_pct": "10"},
    {"trail_amount": "0.25", "breakeven_after_pct": "10"},
    {"trail_pct": "15", "trail_after_pct": "10", "min_step": "0.05"},
    {"trail_pct": "20", "trail_after_pct": "30", "breakeven_after_pct": "20"},
)


@dataclass
class Book:
    """One trade's contract and its walk: `level` is the walk's unrounded value, `bid` it on the
    contract's tick grid (rounded to the nearest tick: always down would drift the walk down)."""

    symbol: str
    level: float
    policy: dict

    @property
    def bid(self) -> Decimal:
        price = Decimal(str(max(self.level, 0.05)))
        tick = price_tick(price)
        return ((price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick).quantize(Decimal("0.01"))

    @property
    def ask(self) -> Decimal:
        return self.bid + SPREAD


@dataclass
class NaiveTrade:
    book: Book
    client: TradierClient
    state: ExitState
    qty: int
    tp: Decimal
    tag: str
    oco_id: str
    open_minutes: int = 0
    done: bool = False


@dataclass
class Tally:
    limiter_waits: list[float] = field(default_factory=list)
    budget_refusals: int = 0
    stops_moved: int = 0
    closes: int = 0


def _walk(rng: random.Random, level: float) -> float:
    """One minute of a driftless log-normal walk (the median stays where it started)."""
    return level * math.exp(rng.gauss(0.0, SIGMA / math.sqrt(NAIVE_TICKS)))


def _exit_requests(symbol: str, qty: int, sl: Decimal, tp: Decimal, tag: str):
    common = {"option_symbol": symbol, "side": OrderSide.SELL_TO_CLOSE, "quantity": qty, "duration": OrderDuration.GTC}
    return (OrderRequest(**common, order_type=OrderType.STOP, stop_price=sl, tag=f"{tag}-sl"),
            OrderRequest(**common, order_type=OrderType.LIMIT, limit_price=tp, tag=f"{tag}-tp"))


def _account(fake, n: int, prefix: str) -> tuple[str, str]:
    token, account = f"sbxTOKEN-{prefix}-{n:04d}", f"VA{prefix.upper()}{n:05d}"
    fake.add_account(token=token, account_id=account, cash=Decimal("1000000"))
    return token, account


def _client(fake, token: str, account: str) -> TradierClient:
    """A client outside the monitor (the set-up's placements, the naive loop): counted by the fake,
    never held back by our limiter (the naive loop has none; the set-up is not measured)."""
    unlimited = RateLimiter(token, limits={group: 10**6 for group in GROUPS}, namespace="bench-unlimited")
    return TradierClient(base_url=fake.url(), token=token, account_id=account, limiter=unlimited,
                         sleep=lambda seconds: None)


@pytest.fixture
def day(fake_tradier, monkeypatch, settings):
    """The books, the runner's trades (in the database, OCOs at the fake) and the naive ones."""
    fake = fake_tradier
    fake.budgets = {group: 10**9 for group in fake.budgets}  # wall time is compressed: our limiter is the judge
    fake.modify_advanced_leg = MODIFY
    settings.EXIT_POLICY_MIN_INTERVAL_SECONDS = 60
    tally = Tally()
    original_init = RateLimiter.__init__

    def recorded_waits(self, *args, **kwargs):
        kwargs.setdefault("sleep", tally.limiter_waits.append)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(RateLimiter, "__init__", recorded_waits)
    spend = RateLimiter.spend_modification

    def counted_spend(self, account_id, per_minute):
        try:
            spend(self, account_id, per_minute)
        except ModifyBudgetSpent:
            tally.budget_refusals += 1
            raise

    monkeypatch.setattr(RateLimiter, "spend_modification", counted_spend)
    original_client_init = TradierClient.__init__

    def no_sleeping_client(self, *args, **kwargs):
        kwargs.setdefault("sleep", lambda seconds: None)  # placement confirmation pauses: counted, not slept
        original_client_init(self, *args, **kwargs)

    monkeypatch.setattr(TradierClient, "__init__", no_sleeping_client)
    broker_factory._tradier_client.cache_clear()

    rng = random.Random(SEED)
    books = []
    for n in range(TRADES):
        strike = Decimal(500 + 5 * n)
        books.append(Book(symbol=build_symbol("SPY", EXPIRY, "CALL", strike),
                          level=rng.uniform(1.5, 6.0), policy=POLICIES[n % len(POLICIES)]))
    for book in books:
        fake.set_quote(book.symbol, book.bid, book.ask)

    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-exit-{i}") for i in range(ACCOUNTS)])
    runner_accounts = []
    for n, user in enumerate(users):
        token, account = _account(fake, n, "run")
        trade_services.account_settings_update(
            user=user, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX, "tradier_account_id": account},
            sandbox_token=token)
        runner_accounts.append((user, token, account))
    naive_accounts = [_account(fake, n, "naive") for n in range(ACCOUNTS)]
    naive_clients = [_client(fake, token, account) for token, account in naive_accounts]

    trades, naive = [], []
    for n, book in enumerate(books):
        user, token, account = runner_accounts[n % ACCOUNTS]
        qty, entry = 1 + n % 3, book.ask
        sl, tp = on_tick(entry * Decimal("0.7")), on_tick(entry * Decimal("2.5"))
        fake.add_position(account, book.symbol, qty, entry * qty * 100)
        placer = _client(fake, token, account)
        oco = placer.place_oco_order(*_exit_requests(book.symbol, qty, sl, tp, f"to-{n}"))
        stop = oco.leg(OrderType.STOP)
        take = oco.leg(OrderType.LIMIT)
        trades.append(PaperTrade(
            owner=user, ticker="SPY", option_type="CALL", strike=Decimal(500 + 5 * n), expiry=EXPIRY,
            option_symbol=book.symbol, qty=qty, entry_price=entry, entry_date=OPEN - timedelta(minutes=1),
            sl_price=sl, tp_price=tp, status=TradeStatus.OPEN, broker_mode=BrokerMode.TRADIER_SANDBOX,
            bracket_order_id=oco.id, sl_order_id=stop.id, tp_order_id=take.id, exit_policy=book.policy,
            strategy="bench"))
        client = naive_clients[n % ACCOUNTS]
        naive_token, naive_account = naive_accounts[n % ACCOUNTS]
        fake.add_position(naive_account, book.symbol, qty, entry * qty * 100)
        naive_oco = client.place_oco_order(*_exit_requests(book.symbol, qty, sl, tp, f"naive-{n}"))
        policy = {key: value for key, value in book.policy.items() if key != "min_step"}
        naive.append(NaiveTrade(book=Book(book.symbol, book.level, policy), client=client, qty=qty, tp=tp,
                                tag=f"naive-{n}", oco_id=naive_oco.id,
                                state=ExitState(entry=entry, stop=sl, option_type="CALL",
                                                opened_at=OPEN - timedelta(minutes=1), expiry=EXPIRY)))
    with tenancy.system_context():
        PaperTrade.objects.bulk_create(trades)
    fake.requests.clear()
    return fake, books, naive, tally, {token for _, token, _ in runner_accounts}, {t for t, _ in naive_accounts}


def _naive_look(trade: NaiveTrade, at: datetime) -> None:
    """Freqtrade's way: when the trailing level changed, cancel the OCO and place it again."""
    client = trade.client  # every call below goes over HTTP to the fake and is counted there
    seen = Observation(bid=trade.book.bid, underlying=None, now=at, today=at.date(), session_close=CLOSE)
    decision = exit_policy_evaluate(ExitPolicy.from_stored(trade.book.policy), trade.state, seen)
    trade.state = replace(trade.state, high_water=decision.high_water)
    if decision.stop is None or decision.stop >= trade.tp:
        return
    cancelled = client.cancel_order(trade.oco_id)
    if cancelled.status == OrderStatus.FILLED or any(leg.status == OrderStatus.FILLED for leg in cancelled.legs):
        trade.done = True
        return
    placed = client.place_oco_order(*_exit_requests(trade.book.symbol, trade.qty, decision.stop, trade.tp, trade.tag))
    trade.oco_id = placed.id
    trade.state = replace(trade.state, stop=decision.stop)


def _naive_tick(fake, naive: list[NaiveTrade], at: datetime) -> float:
    started = time.perf_counter()
    for trade in naive:
        if trade.done:
            continue
        if fake.order(trade.oco_id).status in FINAL:  # the fake filled it: no request needed to know
            trade.done = True
            continue
        trade.open_minutes += 1 / NAIVE_TICKS
        _naive_look(trade, at)
    return time.perf_counter() - started


def _kind(request) -> str:
    if request.path.startswith("/markets"):
        return "market data"
    if request.method == "PUT":
        return "modify"
    if request.method == "DELETE":
        return "cancel"
    if request.method == "POST":
        return "place"
    if "/orders/" in request.path:
        return "order read"
    return "account poll"  # the order list, positions, balances: per account, whatever the policy


def _reset_rate_buckets() -> None:
    """A minute passes between cycles: every bucket is full again (what deleting the spend means)."""
    from django.conf import settings

    client = _redis_for(settings.REDIS_URL)
    keys = list(client.scan_iter(match="brokers:ratelimit:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.mark.django_db
def bench_exit_policies_against_replace_on_every_tick(day):
    fake, books, naive, tally, runner_tokens, naive_tokens = day
    cache.clear()
    rng = random.Random(f"{SEED}-walk")
    market = HandDrivenMarket(OPEN)
    provider = HandMadeBars()
    at, cycles, runner_seconds, naive_seconds = OPEN, 0, 0.0, 0.0
    runner_open_minutes = 0
    while at <= CLOSE - CYCLE:
        market.moment = at
        for tick in range(NAIVE_TICKS):  # quotes between two monitor cycles: the naive loop sees each
            for book, twin in zip(books, naive, strict=True):
                book.level = twin.book.level = _walk(rng, book.level)
                fake.set_quote(book.symbol, book.bid, book.ask)
            if tick < NAIVE_TICKS - 1:
                naive_seconds += _naive_tick(fake, naive, at - CYCLE + CYCLE * (tick + 1) / NAIVE_TICKS)
        for book in books:
            market.set_quote(book.symbol, str(book.bid), str(book.ask))
        _reset_rate_buckets()
        started = time.perf_counter()
        with tenancy.system_context():
            runner_open_minutes += PaperTrade.objects.filter(status=TradeStatus.OPEN).count()
        report = orders_cycle(provider=provider, market=market, at=at)
        runner_seconds += time.perf_counter() - started
        if report.policies is not None:
            tally.stops_moved += report.policies.stops_moved
            tally.closes += report.policies.closes_asked
        naive_seconds += _naive_tick(fake, naive, at)
        at += CYCLE
        cycles += 1

    counts = {"runner": Counter(), "naive": Counter()}
    for request in fake.requests:
        side = "runner" if request.token in runner_tokens else "naive" if request.token in naive_tokens else None
        if side:
            counts[side][_kind(request)] += 1
    with tenancy.system_context():
        still_open = PaperTrade.objects.filter(status=TradeStatus.OPEN).count()
        closed = PaperTrade.objects.filter(status=TradeStatus.CLOSED).count()
    hours = {"runner": runner_open_minutes / 60, "naive": sum(trade.open_minutes for trade in naive) / 60}
    kinds = ("modify", "cancel", "place", "order read", "account poll")
    print(f"\nexit policies over a volatile day: {TRADES} trades, {ACCOUNTS} accounts, {cycles} cycles of 60 s, "
          f"bid walk sigma {SIGMA:.1%}/min (seed {SEED!r}), fake Tradier leg modify: {MODIFY}, "
          f"naive loop acts on {NAIVE_TICKS} quote(s) a cycle")
    print(f"open trade-hours: runner {hours['runner']:.1f}, naive {hours['naive']:.1f}; runner trades closed "
          f"{closed}, still open {still_open}; naive closed {sum(t.done for t in naive)}")
    print(f"{'approach':<28}" + "".join(f"{kind:>14}" for kind in kinds) + f"{'stop calls':>12}{'/trade/h':>10}")
    per_hour = {}
    for side, label in (("runner", "runner (modify in place)" if MODIFY == "in_place" else "runner (cancel+replace)"),
                        ("naive", "naive replace every tick")):
        stop_calls = sum(counts[side][kind] for kind in ("modify", "cancel", "place", "order read"))
        per_hour[side] = stop_calls / hours[side]
        print(f"{label:<28}" + "".join(f"{counts[side][kind]:>14}" for kind in kinds)
              + f"{stop_calls:>12}{per_hour[side]:>10.2f}")
    writes = {side: sum(counts[side][kind] for kind in ("modify", "cancel", "place")) for side in counts}
    rates = {side: writes[side] / hours[side] for side in writes}
    print(f"order writes per trade-hour: runner {rates['runner']:.2f}, naive {rates['naive']:.2f}, "
          f"ratio {rates['naive'] / max(rates['runner'], 1e-9):.1f}x")
    print(f"stop calls (writes + their read-backs) per trade-hour: ratio naive/runner "
          f"{per_hour['naive'] / max(per_hour['runner'], 1e-9):.1f}x")
    polls = counts["runner"]["account poll"]
    print(f"runner: {tally.stops_moved} stop moves, {tally.closes} policy closes, modifications refused by the "
          f"budget {tally.budget_refusals}, limiter waits {len([w for w in tally.limiter_waits if w > 0])} "
          f"({sum(tally.limiter_waits):.1f} s in all); account polls {polls} "
          f"({polls / cycles / ACCOUNTS:.1f} per account per cycle, the order sync's, per account not per trade)")
    print(f"wall: runner cycles {runner_seconds:.1f} s ({runner_seconds / cycles * 1000:.0f} ms a cycle), "
          f"naive {naive_seconds:.1f} s")
    assert tally.stops_moved > 0 and counts["naive"]["place"] > 0
