"""The entry-context collector: indicators and the market regime as of the entry, never after it.

Scenarios run the collector on the simulated market and on hand-made bars (tests/fakes/market.py),
and once end to end: a trade opened, its commit queuing the Celery task (run eagerly through
Celery's own call path), the context filled.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from brokers import market as market_registry
from monitoring import clock as market_clock
from monitoring import context, tasks
from monitoring.marketdata import Interval, MarketDataProvider, ProviderThrottled, ProviderUnavailable
from monitoring.marketdata.simulated import SimulatedProvider
from tests.factories import PaperTradeFactory
from tests.fakes.market import HandDrivenMarket, HandMadeBars
from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_open

ENTRY = datetime(2026, 12, 1, 15, 7, 30, tzinfo=UTC)  # Tuesday 10:07:30 in New York
SESSION_OPEN = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
TIMEFRAMES = ("1m", "5m", "15m", "1h", "daily")


def _trade(owner, **fields):
    return PaperTradeFactory(owner=owner, ticker=fields.pop("ticker", "NVDA"), strike=Decimal("140"),
                             expiry=date(2026, 12, 18), **fields)


def _stored(trade):
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk)


def _events(trade):
    with tenancy.acting_as(trade.owner_id):
        return list(TradeEvent.objects.filter(trade=trade, kind=EventKind.CONTEXT_CAPTURED))


def _collect(trade, provider, **options):
    return context.entry_context_collect(trade_id=trade.pk, owner_id=trade.owner_id, entry_at=ENTRY,
                                         provider=provider, **options)


def _simulated(*, hours_after_entry: float):
    return SimulatedProvider(seed="entry-context", clock=lambda: ENTRY + timedelta(hours=hours_after_entry))


def test_the_simulated_market_fills_every_timeframe_and_the_regime_as_of_the_entry(trader):
    trade = _trade(trader)
    report = _collect(trade, _simulated(hours_after_entry=0.1))
    assert report.filled == ["signals_snapshot", "market_regime", "order_book_state"]
    stored = _stored(trade)
    signals = stored.signals_snapshot
    for timeframe in TIMEFRAMES:
        values = signals[timeframe]
        assert 0 <= values["rsi14"] <= 100 and values["trend"] in ("up", "down", "sideways")
        assert isinstance(values["macd_hist"], float) and isinstance(values["squeeze"], bool)
        assert isinstance(values["squeeze_firing"], bool)
        assert values["ema_9_21_cross"] in ("above", "below") and isinstance(values["ema_9_21_just_crossed"], bool)
        assert isinstance(values["sma200_distance_pct"], float)
        assert datetime.fromisoformat(values["as_of"]) <= ENTRY
    # The last complete bar of each: the minute and the five minutes still forming at 10:07:30 are left
    # out, and the hour 9:30–10:30 is not over, so the last hour ended at Monday's close.
    assert signals["1m"]["as_of"] == "2026-12-01T15:07:00+00:00"
    assert signals["5m"]["as_of"] == "2026-12-01T15:05:00+00:00"
    assert signals["15m"]["as_of"] == "2026-12-01T15:00:00+00:00"
    assert signals["1h"]["as_of"] == signals["daily"]["as_of"] == "2026-11-30T21:00:00+00:00"
    assert signals["daily"]["bars"] == 300 and signals["missing"] == {} and signals["source"] == "simulated"
    regime = stored.market_regime
    assert regime["sector_etf"] == "XLK" and -1 <= regime["sector_corr_30d"] <= 1
    assert regime["spy_price"] > 0 and regime["vix"] > 0 and isinstance(regime["sector_change_pct"], float)
    assert regime["as_of"] == "2026-12-01T15:07:00+00:00" and regime["missing"] == {}
    # The simulated market has no breadth or put/call data: recorded as missing, with why.
    no_breadth = SimulatedProvider.internals_missing
    assert regime["internals"] == {"advance_decline": {"value": None, "missing": no_breadth},
                                   "put_call_ratio": {"value": None, "missing": no_breadth}}
    assert "no breadth data" in no_breadth
    # The simulated quote is observed now, six minutes after the entry: refused, and said why.
    assert "after the entry" in stored.order_book_state["missing"]["quote"]
    assert (stored.status, stored.version) == (TradeStatus.OPEN, trade.version)  # nothing else touched
    [event] = _events(trade)
    assert event.actor == Actor.SYSTEM and event.actor_label == "monitoring.collect_entry_context"
    assert event.payload["filled"] == report.filled and "order_book_state" in event.payload["missing"]


def test_a_late_run_stores_exactly_what_an_immediate_one_would(trader, other_trader):
    # The same source a day later knows how the session went on; none of it may reach the context.
    soon, late = _trade(trader), _trade(other_trader)
    _collect(soon, _simulated(hours_after_entry=0.1))
    _collect(late, _simulated(hours_after_entry=30))
    assert _stored(late).signals_snapshot == _stored(soon).signals_snapshot
    assert _stored(late).market_regime == _stored(soon).market_regime


class Rationed(MarketDataProvider):
    """Another provider behind a rate budget of `slots` requests, then refusals (as the background
    Tradier provider does when the budget left to it is spent); counts what it let through."""

    def __init__(self, inner: MarketDataProvider, slots: int) -> None:
        self.inner, self.slots, self.served = inner, slots, 0
        self.source = inner.source

    def _spend(self) -> None:
        if self.served == self.slots:
            raise ProviderThrottled("The market_data budget left to background work is spent.", retry_after=2.5)
        self.served += 1

    def bars(self, symbol, interval, start, end):
        self._spend()
        return self.inner.bars(symbol, interval, start, end)

    def option_quotes(self, contracts):
        self._spend()
        return self.inner.option_quotes(contracts)

    def underlying_quotes(self, symbols):
        self._spend()
        return self.inner.underlying_quotes(symbols)


def test_a_spent_budget_defers_the_collection_and_the_next_runs_resume_where_it_stopped(trader, other_trader):
    """Three slots a run (fewer than one collection needs): each run stops at the refusal with
    nothing written and says when to come back; the runs together fetch each bar series once and
    store exactly what one unhindered run stores."""
    unhindered = Rationed(_simulated(hours_after_entry=0.1), slots=1000)
    reference = _trade(other_trader)
    _collect(reference, unhindered)
    needed = unhindered.served
    assert needed > 3

    trade, runs, served, waits = _trade(trader), 0, 0, []
    while True:
        source = Rationed(_simulated(hours_after_entry=0.1), slots=3)
        report = _collect(trade, source, defer_throttled=True, deferrals=runs)
        runs, served = runs + 1, served + source.served
        if report.retry_in is None:
            break
        waits.append(report.retry_in)
        assert "deferred" in report.skipped and _stored(trade).signals_snapshot == {} and _events(trade) == []
        assert runs < 20
    assert served == needed and runs == -(-needed // 3)  # nothing fetched twice
    # The slot's wait (2.5 s), plus jitter that grows with each deferral.
    assert all(2.5 <= wait <= 2.5 + min(2 ** n, 60) for n, wait in enumerate(waits))
    stored, expected = _stored(trade), _stored(reference)
    assert stored.signals_snapshot == expected.signals_snapshot and stored.market_regime == expected.market_regime
    assert len(_events(trade)) == 1


def test_the_last_allowed_run_records_what_the_budget_left_out(trader):
    trade = _trade(trader)
    report = _collect(trade, Rationed(_simulated(hours_after_entry=0.1), slots=3), defer_throttled=False,
                      retry_unavailable=True)  # a spent budget is not an outage: not retried as one
    assert report.retry_in is None
    stored = _stored(trade)
    assert stored.status == TradeStatus.OPEN
    assert "rate budget" in stored.market_regime["missing"]["spy"]
    assert len(stored.signals_snapshot["missing"]) > 0


def test_the_task_defers_itself_and_fills_the_context_in_the_end(trader, monkeypatch, eager_celery):
    """Through Celery's own retry path (eager: each deferral runs at once): every run gets the
    background provider with three slots, the task keeps deferring until the context is filled."""
    provided = []

    def rationed(*, background):
        assert background  # the entry context is background work for the rate budget
        provided.append(Rationed(_simulated(hours_after_entry=0.1), slots=3))
        return provided[-1]

    monkeypatch.setattr(tasks, "provider_for", rationed)
    trade = _trade(trader)
    tasks.collect_entry_context.apply_async(args=[trade.pk, trader.pk, ENTRY.isoformat()])
    assert len(provided) > 2 and all(source.served == 3 for source in provided[:-1])
    assert _stored(trade).signals_snapshot["daily"]["bars"] == 300 and len(_events(trade)) == 1


def test_deferrals_do_not_use_up_the_retries_of_a_source_that_is_down(trader, monkeypatch, eager_celery):
    """Deferred twice for the budget, then the source is down: still three retries with backoff
    (both kinds count in Celery's `retries`), then the last run records what is missing."""
    runs = []

    def throttled_then_down(*, background):
        source = HandMadeBars()
        source.failure = (ProviderThrottled("spent", retry_after=1.0) if len(runs) < 2
                          else ProviderUnavailable("Tradier did not answer after 3 attempts."))
        runs.append(source)
        return source

    monkeypatch.setattr(tasks, "provider_for", throttled_then_down)
    trade = _trade(trader)
    tasks.collect_entry_context.apply_async(args=[trade.pk, trader.pk, ENTRY.isoformat()])
    assert len(runs) == 2 + 1 + tasks.ENTRY_CONTEXT_OUTAGE_RETRIES
    assert _stored(trade).signals_snapshot["missing"]["1m"] == "Tradier did not answer after 3 attempts."


def _sessions_before(day, count):
    days = market_clock.trading_days(day - timedelta(days=count * 2), day - timedelta(days=1))[-count:]
    return [market_clock.session_for(day).open for day in days]


def test_hand_made_bars_give_hand_computed_values_and_bars_after_the_entry_are_dropped(trader):
    source = HandMadeBars(leaky=True)  # answers with every bar it holds, even those after the cut-off
    source.add_bars("NVDA", Interval.DAILY, range(1, 251), starts=_sessions_before(date(2026, 12, 1), 250))
    source.add_bars("NVDA", Interval.DAILY, [1_000_000], starts=[SESSION_OPEN])  # today's, still forming
    minutes = [SESSION_OPEN + timedelta(minutes=minute) for minute in range(37)]  # 9:30 … 10:06
    source.add_bars("NVDA", Interval.MINUTE, [100 + minute for minute in range(37)], starts=minutes)
    # 10:07 ends after the entry at 10:07:30; 10:20 lies wholly after it.
    source.add_bars("NVDA", Interval.MINUTE, [1, 1], starts=[ENTRY.replace(second=0), ENTRY + timedelta(minutes=12)])
    trade = _trade(trader)
    _collect(trade, source)
    signals = _stored(trade).signals_snapshot
    daily = signals["daily"]
    # Closes 1 … 250: only gains (RSI 100), and the last close 66.1130 % above the 200-day mean of 150.5.
    assert (daily["bars"], daily["rsi14"], daily["trend"], daily["sma200_distance_pct"]) == (250, 100.0, "up", 66.113)
    assert daily["as_of"] == "2026-11-30T21:00:00+00:00"
    minute = signals["1m"]
    assert (minute["bars"], minute["rsi14"], minute["as_of"]) == (37, 100.0, "2026-12-01T15:07:00+00:00")
    assert minute["trend"] is None  # 37 bars cannot make a 200-bar average
    assert signals["missing"] == {name: f"No {name} bars of NVDA before the entry." for name in ("5m", "15m", "1h")}
    regime = _stored(trade).market_regime
    assert regime["sector_etf"] == "XLK"
    assert set(regime["missing"]) == {"spy", "vix", "sector", "sector_corr_30d"}


def test_the_sector_correlation_of_hand_made_series(trader):
    sessions = _sessions_before(date(2026, 12, 1), 40)
    ticker = [100 * 1.01 ** n if n % 2 else 100 * 1.01 ** (n - 1) for n in range(40)]  # up, flat, up, flat…
    source = HandMadeBars()
    source.add_bars("NVDA", Interval.DAILY, ticker, starts=sessions)
    source.add_bars("XLK", Interval.DAILY, ticker, starts=sessions)  # the same moves: correlation 1
    source.add_bars("SPY", Interval.DAILY, [500] * 39 + [505], starts=sessions)
    source.add_bars("VIX", Interval.DAILY, [20] * 40, starts=sessions)
    trade = _trade(trader)
    _collect(trade, source)
    regime = _stored(trade).market_regime
    assert regime["sector_corr_30d"] == 1.0
    assert (regime["spy_price"], regime["spy_change_pct"]) == (505.0, 1.0)  # Monday's close over Friday's
    assert (regime["vix"], regime["vix_change_pct"]) == (20.0, 0.0)
    assert regime["as_of"] == "2026-11-30T21:00:00+00:00" and regime["missing"] == {}


def test_internals_a_source_gives_are_stored_and_what_it_lacks_says_why():
    class Breadth(HandMadeBars):
        def market_internals(self, at):
            assert at == ENTRY  # asked as of the entry, never later
            return {"advance_decline": 1.8}

    internals = context.market_internals(Breadth(), ENTRY)
    assert internals["advance_decline"] == {"value": 1.8, "missing": ""}
    assert internals["put_call_ratio"] == {"value": None, "missing": "The hand-made source gave no put call ratio."}
    assert context.market_internals(HandMadeBars(), ENTRY)["put_call_ratio"]["missing"] == (
        "This market-data source offers no advance/decline or put/call figures.")


def test_an_unknown_ticker_has_an_unknown_sector_not_a_guess(trader):
    trade = _trade(trader, ticker="ZZZZ")
    _collect(trade, _simulated(hours_after_entry=0.1))
    regime = _stored(trade).market_regime
    assert regime["sector_etf"] == "unknown" and "sector_corr_30d" not in regime
    assert regime["missing"] == {"sector_etf": "ZZZZ is not in the sector table (monitoring/sectors.py)."}


def test_a_failing_source_leaves_the_trade_open_and_says_what_is_missing(trader):
    source = HandMadeBars()
    source.failure = ProviderUnavailable("Tradier did not answer after 3 attempts.")
    trade = _trade(trader)
    report = _collect(trade, source)
    stored, why = _stored(trade), "Tradier did not answer after 3 attempts."
    assert stored.status == TradeStatus.OPEN
    assert stored.signals_snapshot["missing"] == dict.fromkeys(TIMEFRAMES, why)
    assert stored.market_regime["missing"]["spy"] == why
    assert report.missing["order_book_state"] == {"quote": why}


def test_a_source_that_is_down_is_retried_before_anything_is_written(trader):
    source = HandMadeBars()
    source.failure = ProviderUnavailable("down")
    trade = _trade(trader)
    with pytest.raises(ProviderUnavailable):
        _collect(trade, source, retry_unavailable=True)
    assert _stored(trade).signals_snapshot == {} and _events(trade) == []


def test_a_source_that_cannot_be_built_is_recorded_as_missing(trader):
    def unconfigured():
        raise ImproperlyConfigured("MARKET_DATA_SOURCE=orats needs ORATS_TOKEN.")

    trade = _trade(trader)
    _collect(trade, unconfigured)
    assert _stored(trade).market_regime == {"as_of": None, "missing": {"source": "MARKET_DATA_SOURCE=orats needs "
                                                                                  "ORATS_TOKEN."}}


def test_the_scanners_parts_win_and_a_second_run_changes_nothing(trader):
    sent = {"1m": {"rsi14": 61.5}, "as_of": "2026-12-01T15:07:00+00:00"}
    trade = _trade(trader, signals_snapshot=sent)
    first = _collect(trade, _simulated(hours_after_entry=0.1))
    assert first.filled == ["market_regime", "order_book_state"]
    regime = _stored(trade).market_regime
    second = _collect(trade, _simulated(hours_after_entry=1))
    assert second.skipped == "nothing to collect"
    assert _stored(trade).signals_snapshot == sent and _stored(trade).market_regime == regime
    assert len(_events(trade)) == 1


def test_another_traders_trade_is_out_of_reach(trader, other_trader):
    trade = _trade(trader)
    report = context.entry_context_collect(trade_id=trade.pk, owner_id=other_trader.pk, entry_at=ENTRY,
                                           provider=_simulated(hours_after_entry=0.1))
    assert report.skipped == "no such trade for this owner"
    assert _stored(trade).signals_snapshot == {}


def test_hours_are_counted_from_the_open_and_only_complete_ones_kept():
    quarters = [SESSION_OPEN - timedelta(days=1) + timedelta(minutes=15 * n) for n in range(26)]  # Monday
    quarters += [SESSION_OPEN + timedelta(minutes=15 * n) for n in range(4)]  # Tuesday 9:30 … 10:15
    source = HandMadeBars()
    source.add_bars("NVDA", Interval.FIFTEEN_MINUTES, range(len(quarters)), starts=quarters)
    half_past_ten = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)
    hours = context.hourly(context.PointInTimeBars(source, half_past_ten).frame("NVDA", Interval.FIFTEEN_MINUTES, 1),
                           half_past_ten)
    # Monday: 9:30, 10:30, …, 15:30 (the last one half an hour, to the 16:00 close); Tuesday 9:30–10:30.
    assert len(hours) == 8
    assert hours["end"].iloc[-2] == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    assert (hours["open"].iloc[-1], hours["close"].iloc[-1], hours["high"].iloc[-1]) == (26.0, 29.0, 29.5)
    # At 10:07:30 Tuesday's first hour is not over: the last hour known is Monday's last.
    early = context.hourly(context.PointInTimeBars(source, ENTRY).frame("NVDA", Interval.FIFTEEN_MINUTES, 1), ENTRY)
    assert len(early) == 7 and early["end"].iloc[-1] == datetime(2026, 11, 30, 21, 0, tzinfo=UTC)


def test_the_task_keeps_the_house_hygiene():
    task = tasks.collect_entry_context
    assert task.name == "monitoring.collect_entry_context"
    assert task.soft_time_limit < task.time_limit < 3600 and task.expires == 24 * 3600
    assert task.acks_late and task.reject_on_worker_lost
    assert task.autoretry_for == (ProviderUnavailable,)
    assert task.max_retries == tasks.ENTRY_CONTEXT_OUTAGE_RETRIES + tasks.ENTRY_CONTEXT_DEFERRALS


def test_bars_stamped_in_new_york_and_in_utc_are_read_as_the_same_instants(trader):
    def mixed(moments):  # every other bar stamped in New York time, as some sources do
        return [moment.astimezone(market_clock.market_tz()) if n % 2 else moment for n, moment in enumerate(moments)]

    source = HandMadeBars()
    minutes = mixed([SESSION_OPEN + timedelta(minutes=minute) for minute in range(37)])
    source.add_bars("NVDA", Interval.MINUTE, [100 + minute for minute in range(37)], starts=minutes)
    monday = mixed([SESSION_OPEN - timedelta(days=1) + timedelta(minutes=15 * n) for n in range(26)])
    source.add_bars("NVDA", Interval.FIFTEEN_MINUTES, range(26), starts=monday)
    trade = _trade(trader)
    _collect(trade, source)
    signals = _stored(trade).signals_snapshot
    assert (signals["1m"]["bars"], signals["1m"]["as_of"]) == (37, "2026-12-01T15:07:00+00:00")
    assert (signals["1h"]["bars"], signals["1h"]["as_of"]) == (7, "2026-11-30T21:00:00+00:00")


@pytest.fixture
def eager_celery():
    """Tasks sent with apply_async run at once, in this process, through Celery's own call path."""
    conf = tasks.collect_entry_context.app.conf
    previous, conf.task_always_eager = conf.task_always_eager, True
    yield
    conf.task_always_eager = previous


def test_an_open_queues_the_task_that_fills_the_context(trader, monkeypatch, eager_celery,
                                                        django_capture_on_commit_callbacks):
    """The whole path: the open commits, its hook queues `monitoring.collect_entry_context` (run
    eagerly here, through Celery's own call path), the task fills the parts the scanner did not send."""
    at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    hand = HandDrivenMarket(at)
    hand.set_quote("SPY261218C00570000", "4.10", "4.30")
    monkeypatch.setattr(market_registry, "_market", hand)
    later = at + timedelta(hours=1)
    monkeypatch.setattr(tasks, "provider_for", lambda background: SimulatedProvider(seed="task", clock=lambda: later))
    data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"),
                          context={"ai_reasoning_log": {"prompt": "…", "output": "BUY", "confidence": 0.7}})
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        trade = trade_open(user=trader, data=data, market=hand).trade
    assert len(hooks) == 1
    stored = _stored(trade)
    assert stored.status == TradeStatus.OPEN
    assert stored.signals_snapshot["1m"]["as_of"] == "2026-12-01T15:00:00+00:00"  # 9:59's bar, the last before 10:00
    assert stored.market_regime["sector_etf"] == "unknown"  # a broad-market fund has no sector
    assert stored.order_book_state["bid"] == 4.1  # taken by the open itself, from the entry's quote
    assert stored.ai_reasoning_log == {"prompt": "…", "output": "BUY", "confidence": 0.7}
    assert [event.payload["filled"] for event in _events(trade)] == [["signals_snapshot", "market_regime"]]
