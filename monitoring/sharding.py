"""The snapshot cycle split by account across Celery workers (docs/operations.md, "Running N
monitor workers").

One coordinator a cycle (the beat's `monitoring.snapshot_prices`, still one job on one beat)
quotes every held contract once, in the provider's usual batched call, and leaves the answer in
Redis under the cycle's slot. It then sends N shard tasks; shard i marks the accounts whose
`owner_id % N == i`, reading its quotes from Redis only, so the provider is asked once a cycle
however many shards run. Each shard's work is the unsharded cycle's own code
(`services.snapshot_positions`) given a shard to filter by: same rows, same marks.

Exactly once per slot: a shard is acked late and re-queued when its worker dies; its snapshot rows
are unique per (trade, slot, kind) and its marks are the same values again, so a redone shard
changes nothing already written. A shard that finished notes it in the slot's done set, which makes
a redelivered copy a no-op; the last shard to finish records the job's heartbeat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.db.models.functions import Mod
from django_redis import get_redis_connection

from brokers.occ import parse_symbol
from brokers.settlement import AM, settlement_style
from tradeoptions import tenancy
from trades.models import PaperTrade, StrategyType, TradeLeg, TradeStatus

from . import clock as market_clock
from .marketdata import OptionQuote

HELD_STATUSES = (TradeStatus.OPEN, TradeStatus.CLOSING)
_META = "__cycle__"  # the hash's own field: present once the coordinator stored the cycle's quotes
_DECIMALS = {f.name for f in fields(OptionQuote) if "Decimal" in str(f.type)}
_INTS = {"volume", "open_interest"}


class QuotesGone(Exception):
    """The cycle's shared quotes are not in Redis (expired, or never stored): the shard waits for
    the next cycle rather than ask the provider itself."""


@dataclass(frozen=True)
class Shard:
    """Which accounts one shard task marks: those whose owner id is `index` modulo `count`.
    Stable across cycles for a fixed count, so one account is always marked by one shard."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}")

    def of(self, trades: QuerySet) -> QuerySet:
        if self.count == 1:
            return trades
        return trades.alias(shard_of=Mod("owner_id", self.count)).filter(shard_of=self.index)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def held_contracts(at: datetime) -> list[str]:
    """Every contract a held trade needs quoted this cycle: single options' and every leg still
    traded of a multi-leg trade (`leg_quotable`). Two reads, whatever the book; in the system
    context (all tenants)."""
    with tenancy.system_context():
        held = PaperTrade.objects.filter(status__in=HELD_STATUSES)
        singles = set(held.filter(strategy_type=StrategyType.SINGLE).values_list("option_symbol", flat=True)
                      .distinct())
        legs = {leg.option_symbol for leg in TradeLeg.objects.filter(trade__status__in=HELD_STATUSES, exit_reason="")
                .only("option_symbol", "exit_reason") if leg_quotable(leg, at)}
    return sorted(singles | legs)


def leg_quotable(leg: TradeLeg, at: datetime) -> bool:
    """Is the leg still traded, so worth a quote? Not once it has left the position (closed or
    settled: it counts at its exit price), nor an AM-settled index leg after its last trading
    session, the one before its expiry's (it settles at the next opening; a quote is stale)."""
    if leg.exit_reason:
        return False
    contract = parse_symbol(leg.option_symbol)
    if settlement_style(contract.root) != AM:
        return True
    expiry_day = market_clock.expiry_cutoff(contract.expiry).astimezone(market_clock.market_tz()).date()
    return at < market_clock.session_for(market_clock.previous_trading_day(expiry_day)).close


def _quotes_key(job: str, slot: datetime) -> str:
    return f"cycle-quotes:{job}:{slot.isoformat()}"


def _done_key(job: str, slot: datetime, count: int) -> str:
    return f"cycle-shards-done:{job}:{slot.isoformat()}:{count}"


def _quote_json(quote: OptionQuote) -> str:
    """Exactly what the provider said: Decimals as their strings, the time in ISO 8601."""
    data = {}
    for field in fields(OptionQuote):
        value = getattr(quote, field.name)
        if field.name == "contract":
            value = quote.symbol
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        data[field.name] = value
    return json.dumps(data)


def _quote_from(text: bytes) -> OptionQuote:
    data = json.loads(text)
    for name in _DECIMALS:
        if data[name] is not None:
            data[name] = Decimal(data[name])
    data["contract"] = parse_symbol(data["contract"])
    data["quote_time"] = datetime.fromisoformat(data["quote_time"])
    return OptionQuote(**data)


def cycle_quotes_share(*, job: str, slot: datetime, quotes: dict[str, OptionQuote], delayed: bool,
                       ttl: int) -> None:
    """Leave the cycle's quotes in Redis for its shards, in one round trip, for `ttl` seconds (a few
    periods: a shard that starts later than that has an expired task anyway)."""
    key = _quotes_key(job, slot)
    mapping = {symbol: _quote_json(quote) for symbol, quote in quotes.items()}
    mapping[_META] = json.dumps({"delayed": delayed})
    client = get_redis_connection("default")
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()


class SharedQuotes:
    """What a shard gives `snapshot_positions` as its provider: the cycle's quotes from Redis.
    A contract the coordinator got no quote for is left out, as the provider leaves it out."""

    def __init__(self, *, job: str, slot: datetime) -> None:
        self.key = _quotes_key(job, slot)
        self.client = get_redis_connection("default")
        meta = self.client.hget(self.key, _META)
        if meta is None:
            raise QuotesGone(f"no shared quotes for {job} at {slot.isoformat()}")
        self.delayed = bool(json.loads(meta)["delayed"])

    def option_quotes(self, contracts) -> dict[str, OptionQuote]:
        symbols = [str(contract) for contract in contracts]
        if not symbols:
            return {}
        values = self.client.hmget(self.key, symbols)
        return {symbol: _quote_from(value) for symbol, value in zip(symbols, values, strict=True)
                if value is not None}


def shard_is_done(*, job: str, slot: datetime, shard: Shard) -> bool:
    return bool(get_redis_connection("default").sismember(_done_key(job, slot, shard.count), shard.index))


def shard_done(*, job: str, slot: datetime, shard: Shard, ttl: int) -> bool:
    """Note that `shard` finished its slot; True when this made every shard of the slot done (once:
    only the call that adds the last index sees the set complete for the first time)."""
    key = _done_key(job, slot, shard.count)
    client = get_redis_connection("default")
    with client.pipeline(transaction=True) as pipe:
        pipe.sadd(key, shard.index)
        pipe.scard(key)
        pipe.expire(key, ttl)
        added, done, _ = pipe.execute()
    return bool(added) and done == shard.count


def snapshot_quotes_share(*, provider, job: str, slot: datetime, ttl: int) -> int:
    """The coordinator's part: quote every held contract in the provider's one batched call
    (outside any transaction) and leave the answer for the shards. Returns the contracts quoted."""
    contracts = held_contracts(slot)
    quotes = provider.option_quotes(contracts) if contracts else {}
    cycle_quotes_share(job=job, slot=slot, quotes=quotes, delayed=bool(getattr(provider, "delayed", False)), ttl=ttl)
    return len(quotes)
