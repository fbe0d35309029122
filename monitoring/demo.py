"""The demo generator: N past trading days of a scanner's trading, lived through the real engine.

Nothing is written here directly: trades are opened with `trades.services.trade_open` at the
local paper broker, closed by hand with `trade_close`, and everything else happens the way it
happens live — the snapshot cycle, paper matching, the order sync, expiry settlement and the
bookends — over the simulated market, with one injected clock reaching every layer: the
provider (`clock=`), the market (`MarketDataMarket(provider, clock=…)`), the services (`at=`,
`market=`), and Django's own clock (`auto_now` fields, the audit log's times), which is pointed
at the simulated one for the run so that the history reads as if it had been lived.

To stay fast the cycle runs every `step` of simulated time (5 minutes by default) rather than
every 40 seconds: a 5-day run is about 400 cycles.

The market is the simulated one with MARKET_DATA_SEED, the same one the running system quotes
afterwards, so the demo's positions continue where the history leaves them. `seed` drives only
the scanner's choices: the same seed, days and end give the same history.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from brokers.occ import build_symbol
from tradeoptions import tenancy
from trades.models import Actor, PaperTrade, TradeStatus
from trades.services import (
    InvalidTradeInput,
    RiskLimitExceeded,
    TradeError,
    TradeOpenInput,
    account_settings_update,
    trade_close,
    trade_open,
)

from . import clock as market_clock
from .market import MarketDataMarket, strike_step
from .marketdata.simulated import SimulatedProvider
from .services import orders_cycle, snapshot_positions, take_due_bookends

logger = logging.getLogger(__name__)

UNIVERSE = ("SPY", "QQQ", "IWM", "AAPL", "MSFT", "NVDA", "AMD", "TSLA", "F", "BAC", "XLF", "XLE")
STRATEGIES = {
    # name: (days to expiry, moneyness steps, SL fraction of entry, TP multiple of entry)
    "momentum": (14, 1, Decimal("0.70"), Decimal("1.40")),
    "breakout": (7, 2, Decimal("0.65"), Decimal("1.60")),
    "mean_reversion": (21, 0, Decimal("0.75"), Decimal("1.30")),
    "earnings_drift": (10, 1, Decimal("0.60"), Decimal("1.80")),
    "zero_dte": (0, 0, Decimal("0"), Decimal("5.00")),  # a stop at a cent: held to the close, often expires
}
VERDICTS = ("strong_buy", "buy", "buy", "hold")
GATES = ("pass", "pass", "pass", "warn")
CENT = Decimal("0.01")
# A scanner's account: room for a dozen positions (set through the settings service, audited).
DEMO_LIMITS = {"account_balance": Decimal("25000"), "max_positions": 12, "heat_limit_pct": Decimal("25"),
               "daily_loss_limit": Decimal("2000")}


@dataclass
class DemoReport:
    days: list[date] = field(default_factory=list)
    cycles: int = 0
    opened: int = 0
    refused: Counter = field(default_factory=Counter)
    manual_closes: int = 0
    outcomes: Counter = field(default_factory=Counter)


class SimulatedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def django_clock(clock: SimulatedClock):
    """Point Django's `timezone.now` (auto_now fields, the services' own timestamps) at `clock`."""
    with mock.patch("django.utils.timezone.now", clock):
        yield


def demo_sessions(*, days: int, end: date | None = None) -> list[date]:
    """The `days` trading sessions ending with `end` (default: the last one before today)."""
    end = end or market_clock.previous_trading_day(market_clock.market_date(market_clock.now()))
    return market_clock.trading_days(end - timedelta(days=days * 2 + 10), end)[-days:]


def demo_simulate(*, user: AbstractBaseUser, days: int, seed: str, end: date | None = None,
                  step: timedelta = timedelta(minutes=5), progress=None) -> DemoReport:
    """Live through the `days` trading sessions ending with `end` (default: the last one before today).
    `progress` (optional) wraps the sessions, as an ops command's progress bar does."""
    sessions = demo_sessions(days=days, end=end)
    clock = SimulatedClock(market_clock.session_for(sessions[0]).pre_market_bookend)
    provider = SimulatedProvider(seed=getattr(settings, "MARKET_DATA_SEED", "tradeoptions"), clock=clock)
    market = MarketDataMarket(provider, clock=clock)
    with tenancy.acting_as(user.pk):
        account_settings_update(user=user, changes=DEMO_LIMITS)
    scanner = _Scanner(user, market, random.Random(f"demo|{seed}"))
    report = DemoReport(days=sessions)
    with django_clock(clock):
        for day in (progress or (lambda items, **_: items))(sessions, total=len(sessions), desc="sessions"):
            _live_through(day, clock, provider, market, scanner, step, report)
    report.opened, report.refused, report.manual_closes = scanner.opened, scanner.refused, scanner.manual_closes
    with tenancy.acting_as(user.pk):
        report.outcomes = Counter(
            str(reason or status) for status, reason in
            PaperTrade.objects.filter(owner=user).values_list("status", "close_reason"))
    return report


def _live_through(day, clock, provider, market, scanner, step, report) -> None:
    session = market_clock.session_for(day)
    moments = [session.pre_market_bookend]
    moment = session.open
    while moment < session.close:
        moments.append(moment)
        moment += step
    # After the close: expiries and day orders (a minute after), the post-market bookend.
    moments += [session.close + timedelta(minutes=1), session.post_market_bookend]
    for at in moments:
        clock.at = at
        if session.open <= at < session.close:
            scanner.act(at, session)
            snapshot_positions(provider=provider, at=at)
        orders_cycle(provider=provider, market=market, at=at)
        take_due_bookends(provider=provider, at=at)
        report.cycles += 1


class _Scanner:
    """Opens trades the way a scanner would: a few a day, on liquid names, with scores and verdicts."""

    def __init__(self, user, market: MarketDataMarket, rng: random.Random) -> None:
        self.user, self.market, self.rng = user, market, rng
        self.opened, self.manual_closes, self.refused = 0, 0, Counter()

    def act(self, at: datetime, session) -> None:
        minutes = (at - session.open).total_seconds() / 60
        if minutes in (0, 30):  # the morning's same-day lottos: held to the close, they expire (or hit a TP)
            self._open(at, session, strategy="zero_dte")
        elif self.rng.random() < 0.1:
            self._open(at, session)
        if self.rng.random() < 0.025:
            self._close_one()

    def _open(self, at: datetime, session, *, strategy: str = "") -> None:
        rng = self.rng
        strategy = strategy or rng.choice([name for name in STRATEGIES if name != "zero_dte"])
        days, steps, sl_share, tp_multiple = STRATEGIES[strategy]
        ticker = rng.choice(UNIVERSE)
        expiry = self._expiry(session.day, days)
        if expiry is None:
            return
        spot = self.market.provider.underlying_quotes([ticker])[ticker].last
        option_type = "CALL" if rng.random() < 0.6 else "PUT"
        width = strike_step(spot)
        center = (spot / width).to_integral_value() * width
        offset = width * steps * (1 if option_type == "CALL" else -1)
        strike = center + offset
        symbol = build_symbol(ticker, expiry, option_type, strike)
        quote = self.market.quotes([symbol]).get(symbol)
        if quote is None or not quote.ask or quote.ask < Decimal("0.20"):
            return
        qty = 1
        limit = None
        roll = rng.random()
        if roll < 0.15 and strategy != "zero_dte":  # a patient limit far under the market: it expires at the close
            limit = (quote.bid * Decimal("0.6")).quantize(CENT, ROUND_DOWN) or CENT
        elif 0.15 <= roll < 0.25:  # sized as if the account were bigger: the broker refuses it
            qty = int(DEMO_LIMITS["account_balance"] / (quote.ask * 100)) + 1
        reference = limit or quote.ask
        sl = max((reference * sl_share).quantize(CENT, ROUND_DOWN), CENT)
        if qty > 1:
            sl = max(reference - Decimal("0.02"), CENT)  # a tight stop keeps its risk inside the limits
        tp = (reference * tp_multiple).quantize(CENT)
        context = {
            "strategy": strategy,
            "card_score": Decimal(rng.randint(45, 95)) / 10,
            "ai_score": Decimal(rng.randint(40, 99)) / 100,
            "ai_verdict": rng.choice(VERDICTS),
            "gate_verdict": rng.choice(GATES),
            "technical_score": Decimal(rng.randint(30, 95)) / 10,
            "sentiment_score": Decimal(rng.randint(-50, 80)) / 100,
            "delta_at_entry": quote.greeks.delta if quote.greeks else None,
            "iv_at_entry": quote.greeks.mid_iv if quote.greeks else None,
            "signals_snapshot": {"spot": str(spot), "minute": at.isoformat()},
        }
        data = TradeOpenInput(ticker=ticker, option_type=option_type, strike=strike, expiry=expiry, qty=qty,
                              sl_price=sl, tp_price=tp, limit_price=limit, context=context)
        try:
            trade_open(user=self.user, data=data, market=self.market, actor=Actor.SYSTEM, actor_label="demo-scanner")
        except RiskLimitExceeded as error:
            self.refused[error.limit] += 1
            return
        except InvalidTradeInput:
            self.refused["invalid"] += 1
            return
        self.opened += 1

    def _expiry(self, day: date, days: int) -> date | None:
        if days == 0:
            return day
        target = day + timedelta(days=days)
        friday = target + timedelta(days=(4 - target.weekday()) % 7)
        for _ in range(7):
            if market_clock.is_trading_day(friday):
                return friday
            friday -= timedelta(days=1)
        return None

    def _close_one(self) -> None:
        with tenancy.acting_as(self.user.pk):
            held = list(PaperTrade.objects.filter(owner=self.user, status=TradeStatus.OPEN)
                        .exclude(strategy="zero_dte").order_by("id").values_list("pk", "version"))
        if not held:
            return
        trade_id, version = self.rng.choice(held)
        try:
            result = trade_close(user=self.user, trade_id=trade_id, version=version, market=self.market)
        except TradeError:
            return
        if result.problem is None:
            self.manual_closes += 1
