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
import logging
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from django.core.cache import cache
from django.db.models import QuerySet
from django.db.models.functions import Mod
from django_redis import get_redis_connection

from brokers.base import Greeks, Quote
from brokers.market import Market
from brokers.occ import parse_symbol
from brokers.paper import working_symbols
from brokers.settlement import AM, settlement_style
from tradeoptions import tenancy
from trades.models import ACTIVE_STATUSES, PaperTrade, StrategyType, TradeLeg, TradeStatus

from . import clock as market_clock
from .expiry import pin_risk_tickers
from .marketdata import MarketDataError, OptionQuote

logger = logging.getLogger(__name__)

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
        """Any rows with an `owner_id` (trades, legs, paper orders and fills), narrowed to the shard's."""
        if self.count == 1:
            return trades
        return trades.alias(shard_of=Mod("owner_id", self.count)).filter(shard_of=self.index)

    def holds(self, owner_id: int) -> bool:
        return owner_id % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def held_contracts(at: datetime) -> list[str]:
    """Every contract a held trade needs quoted this cycle: single options' and every leg still
    traded of a multi-leg trade (`leg_quotable`). Two reads, whatever the book; in the system
    context (all tenants)."""
    with tenancy.system_context():
        held = PaperTrade.objects.filter(status__in=HELD_STATUSES)
        singles = set(held.filter(strategy_type=StrategyType.SINGLE).order_by()
                      .values_list("option_symbol", flat=True).distinct())
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


def _sent_key(job: str, slot: datetime) -> str:
    return f"cycle-sent:{job}:{slot.isoformat()}"


def _runs_key(job: str, slot: datetime, count: int) -> str:
    return f"cycle-shard-runs:{job}:{slot.isoformat()}:{count}"


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
    _share(job=job, slot=slot, mapping={symbol: _quote_json(quote) for symbol, quote in quotes.items()},
           meta={"delayed": delayed}, ttl=ttl)


def _share(*, job: str, slot: datetime, mapping: dict[str, str], meta: dict, ttl: int) -> None:
    """Every sharded job's one write of what its shards read: one hash per job and slot, replaced
    whole (a coordinator run again for its slot leaves no field of the first run behind)."""
    key = _quotes_key(job, slot)
    mapping = {**mapping, _META: json.dumps(meta)}
    client = get_redis_connection("default")
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()


def _shared_meta(client, key: str, job: str, slot: datetime) -> dict:
    meta = client.hget(key, _META)
    if meta is None:
        raise QuotesGone(f"no shared quotes for {job} at {slot.isoformat()}")
    return json.loads(meta)


class SharedQuotes:
    """What a shard gives `snapshot_positions` as its provider: the cycle's quotes from Redis.
    A contract the coordinator got no quote for is left out, as the provider leaves it out."""

    def __init__(self, *, job: str, slot: datetime) -> None:
        self.key = _quotes_key(job, slot)
        self.client = get_redis_connection("default")
        self.delayed = bool(_shared_meta(self.client, self.key, job, slot)["delayed"])

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
    key, runs = _done_key(job, slot, shard.count), _runs_key(job, slot, shard.count)
    client = get_redis_connection("default")
    with client.pipeline(transaction=True) as pipe:
        pipe.sadd(key, shard.index)
        pipe.scard(key)
        pipe.expire(key, ttl)
        pipe.hincrby(runs, shard.index, 1)
        pipe.expire(runs, ttl)
        added, done, *_ = pipe.execute()
    return bool(added) and done == shard.count


def slot_was_sent(*, job: str, slot: datetime) -> bool:
    """Has a coordinator of `job` already sent this slot's shards? A coordinator delayed into the
    next slot (queued behind a slow one) would otherwise quote the market again for nothing and
    send shards that find their slot done."""
    return bool(get_redis_connection("default").exists(_sent_key(job, slot)))


def slot_sent(*, job: str, slot: datetime, count: int, ttl: int) -> None:
    """Note the slot's shards as sent, once they are: a coordinator that died before sending them
    is redelivered and sends them, not skipped."""
    get_redis_connection("default").set(_sent_key(job, slot), count, ex=ttl)


def shard_runs(*, job: str, slot: datetime, count: int) -> dict[int, int]:
    """How many times each shard of the slot ran to its end (for ops and the fault tests): a shard
    done twice in one slot shows as 2 here, whatever its rows say."""
    runs = get_redis_connection("default").hgetall(_runs_key(job, slot, count))
    return {int(index): int(times) for index, times in runs.items()}


def snapshot_quotes_share(*, provider, job: str, slot: datetime, ttl: int) -> int:
    """The coordinator's part: quote every held contract in the provider's one batched call
    (outside any transaction) and leave the answer for the shards. Returns the contracts quoted."""
    contracts = held_contracts(slot)
    quotes = provider.option_quotes(contracts) if contracts else {}
    cycle_quotes_share(job=job, slot=slot, quotes=quotes, delayed=bool(getattr(provider, "delayed", False)), ttl=ttl)
    return len(quotes)


# --- the order cycle: the local paper broker's quotes and the stocks' last prices ---------------
#
# The order jobs (`monitoring.sync_orders`, `monitoring.match_paper_orders`) see option quotes
# through the broker layer's `Market` (the local paper broker fills against it) and the stocks'
# last prices through the provider (exit policies that trail the stock, pin risk). The
# coordinator asks both once, for every account, and its shards read them from Redis through
# `SharedMarket` and `SharedStocks`.

_STOCK = "stock:"  # the hash's fields for the underlyings' last prices; an OCC symbol never starts so


# A broker quote in the share is a JSON array of its fields in this order (the Greeks an array too,
# or null), Decimals as their strings and times in ISO 8601: the shards read 10,000 of them each
# cycle, and an array of strings costs half what the former object of tagged values did to write
# and to read. The order is the dataclasses' own (tests/test_shared_quote_format.py holds it so).
QUOTE_ORDER = ("symbol", "bid", "ask", "last", "bid_size", "ask_size", "volume", "bid_at", "ask_at", "traded_at",
               "greeks", "open_interest")
GREEKS_ORDER = ("delta", "gamma", "theta", "vega", "rho", "mid_iv", "smv_vol", "updated_at")


def _text(value) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def broker_quote_json(quote: Quote) -> str:
    greeks = quote.greeks
    return json.dumps([
        quote.symbol, _text(quote.bid), _text(quote.ask), _text(quote.last), quote.bid_size, quote.ask_size,
        quote.volume, _iso(quote.bid_at), _iso(quote.ask_at), _iso(quote.traded_at),
        None if greeks is None else [_text(greeks.delta), _text(greeks.gamma), _text(greeks.theta),
                                     _text(greeks.vega), _text(greeks.rho), _text(greeks.mid_iv),
                                     _text(greeks.smv_vol), _iso(greeks.updated_at)],
        quote.open_interest,
    ])


def broker_quote_from(text: bytes) -> Quote:
    data = json.loads(text, object_hook=_unplain)
    if isinstance(data, dict):  # written by a coordinator of before the arrays (a deploy mid-cycle)
        return Quote(**data)
    symbol, bid, ask, last, bid_size, ask_size, volume, bid_at, ask_at, traded_at, greeks, open_interest = data
    if greeks is not None:
        delta, gamma, theta, vega, rho, mid_iv, smv_vol, updated_at = greeks
        greeks = Greeks(delta=_decimal(delta), gamma=_decimal(gamma), theta=_decimal(theta), vega=_decimal(vega),
                        rho=_decimal(rho), mid_iv=_decimal(mid_iv), smv_vol=_decimal(smv_vol),
                        updated_at=_moment(updated_at))
    return Quote(symbol=symbol, bid=_decimal(bid), ask=_decimal(ask), last=_decimal(last), bid_size=bid_size,
                 ask_size=ask_size, volume=volume, bid_at=_moment(bid_at), ask_at=_moment(ask_at),
                 traded_at=_moment(traded_at), greeks=greeks, open_interest=open_interest)


def _unplain(value: dict):
    """The former format's values (`json.loads`' object_hook, innermost first): {"d": Decimal
    string}, {"t": ISO 8601 time} and {"g": the Greeks' object}; any other object is kept."""
    if len(value) == 1:
        if "d" in value:
            return Decimal(value["d"])
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "g" in value:
            return Greeks(**value["g"])
    return value


def order_cycle_contracts(*, broker_modes: list[str] | None = None) -> list[str]:
    """Every contract an order cycle may ask the market about: the options of active trades (the
    exit policies' bids, the fills of exits and brackets placed this cycle) and their legs still
    held (a spread's net close), and those of every working local-paper order (the matching).
    Three reads, whatever the book; all tenants. With `broker_modes`, only trades at those brokers
    (the 20-second matching job looks at the local paper broker's)."""
    with tenancy.system_context():
        active = PaperTrade.objects.filter(status__in=ACTIVE_STATUSES)
        if broker_modes is not None:
            active = active.filter(broker_mode__in=broker_modes)
        singles = set(active.filter(strategy_type=StrategyType.SINGLE).order_by()
                      .values_list("option_symbol", flat=True).distinct())
        legs = set(TradeLeg.objects.filter(trade__in=active, exit_reason="").order_by()
                   .values_list("option_symbol", flat=True).distinct())
        working = set(working_symbols() or ())
    return sorted(singles | legs | working)


def order_cycle_stocks(*, at: datetime, broker_modes: list[str] | None = None) -> list[str]:
    """The stocks whose last price an order cycle may ask for: those of open trades with an exit
    policy (it may trail the stock; a few more than needed costs nothing, the call is one batch)
    and, in the last hour before a short leg stops trading, those of pin risk."""
    with tenancy.system_context():
        policed = PaperTrade.objects.filter(status=TradeStatus.OPEN).exclude(exit_policy={})
        if broker_modes is not None:
            policed = policed.filter(broker_mode__in=broker_modes)
        tickers = set(policed.order_by().values_list("ticker", flat=True).distinct())
    if broker_modes is None:
        tickers |= set(pin_risk_tickers(at=at))
    return sorted(tickers)


def order_quotes_share(*, market: Market, provider_factory, job: str, slot: datetime, at: datetime, ttl: int,
                       broker_modes: list[str] | None = None) -> int:
    """The order coordinator's part: while the market is open, one batch of option quotes from the
    market and one of stock prices from the provider (built only when a stock is wanted: the
    simulated one takes a second to lay out), both outside any transaction, left for the shards.
    Closed, the shards get an empty share (nothing is matched against quotes then: day orders
    expire, contracts settle). Returns the contracts quoted."""
    quotes, stocks, is_open = {}, {}, market.is_open(at)
    if is_open:
        contracts = order_cycle_contracts(broker_modes=broker_modes)
        quotes = market.quotes(contracts) if contracts else {}
    quoted_at = market_clock.now()  # the option quotes are in: their age counts from here, not from `at`
    if is_open:
        tickers = order_cycle_stocks(at=at, broker_modes=broker_modes)
        if tickers:
            try:
                stocks = {ticker: quote.last for ticker, quote in provider_factory().underlying_quotes(tickers).items()}
            except MarketDataError as error:  # as unsharded: the stock stops wait, the rest go on
                logger.warning("%s: no stock prices this cycle: %s", job, error)
    mapping = {symbol: broker_quote_json(quote) for symbol, quote in quotes.items()}
    mapping.update({_STOCK + ticker: str(last) for ticker, last in stocks.items() if last is not None})
    _share(job=job, slot=slot, mapping=mapping, meta={"stocks": len(stocks), "quoted_at": quoted_at.isoformat()},
           ttl=ttl)
    return len(quotes)


def shared_quoted_at(*, job: str, slot: datetime) -> datetime | None:
    """When the option quotes of the slot's order share came in (after the market answered, which
    a slow or rate-limited provider may take seconds to do); None when the share is gone or was
    written before it recorded the time."""
    meta = get_redis_connection("default").hget(_quotes_key(job, slot), _META)
    quoted_at = json.loads(meta).get("quoted_at") if meta is not None else None
    return datetime.fromisoformat(quoted_at) if quoted_at else None


class SharedMarket:
    """The `brokers.market.Market` an order shard works with: the cycle's shared option quotes, and
    the real market for everything else (the clock, the calendar, and the settlement prices of
    expired contracts, which are daily bars asked for after the close, not quotes)."""

    def __init__(self, market: Market, *, job: str, slot: datetime) -> None:
        self.market = market
        self.key = _quotes_key(job, slot)
        self.client = get_redis_connection("default")
        _shared_meta(self.client, self.key, job, slot)
        self.read: dict[str, Quote | None] = {}  # what this shard has read of the share (None: not there)

    def quotes(self, symbols) -> dict[str, Quote]:
        """The share's quotes of `symbols`. A shard's steps (exit policies, net exits, matching,
        sync) ask for mostly the same contracts: each is read from Redis and parsed once a shard,
        and the share is written once a slot, so a second read would say the same."""
        symbols = list(symbols)
        unread = list(dict.fromkeys(symbol for symbol in symbols if symbol not in self.read))
        if unread:
            values = self.client.hmget(self.key, unread)
            self.read.update((symbol, None if value is None else broker_quote_from(value))
                             for symbol, value in zip(unread, values, strict=True))
        return {symbol: self.read[symbol] for symbol in symbols if self.read[symbol] is not None}

    def __getattr__(self, name: str):
        return getattr(self.market, name)


@dataclass(frozen=True)
class SharedStock:
    symbol: str
    last: Decimal


class SharedStocks:
    """The provider an order shard works with: the stocks' last prices the coordinator shared,
    and the real provider (built when first asked) for the daily bars that settle an expiry."""

    def __init__(self, provider_factory, *, job: str, slot: datetime) -> None:
        self.provider_factory = provider_factory
        self.key = _quotes_key(job, slot)
        self.client = get_redis_connection("default")
        _shared_meta(self.client, self.key, job, slot)

    def underlying_quotes(self, symbols) -> dict[str, SharedStock]:
        symbols = list(symbols)
        if not symbols:
            return {}
        values = self.client.hmget(self.key, [_STOCK + symbol for symbol in symbols])
        return {symbol: SharedStock(symbol, Decimal(value.decode())) for symbol, value
                in zip(symbols, values, strict=True) if value is not None}

    def bars(self, *args, **kwargs):
        return self.provider.bars(*args, **kwargs)

    @cached_property
    def provider(self):
        return self.provider_factory()


# --- how many shards -----------------------------------------------------------------------------

AUTO = "auto"
WORKERS_KEY = "monitor-worker-processes"
WORKERS_FOR = 30  # seconds: a worker started now spreads the cycle within one order period


def monitor_processes(stats: dict | None, queues: dict | None, *, queue: str = "monitor") -> int:
    """The pool processes of the live workers that consume `queue`, from Celery's `inspect()`
    replies (`stats`: each node's pool size; `active_queues`: what it consumes). 0 when none replied."""
    consuming = {node for node, listed in (queues or {}).items() if any(q.get("name") == queue for q in listed)}
    return sum(int(((stats or {}).get(node) or {}).get("pool", {}).get("max-concurrency") or 1) for node in consuming)


def shard_count(setting, *, live_processes) -> int:
    """MONITOR_SHARDS as a number of shards: a number as it is; `auto`, the monitor workers' pool
    processes now (`live_processes()`, asked at most every WORKERS_FOR seconds and shared by
    every coordinator through the cache), or 1 when none answers (one shard still runs the cycle)."""
    if setting != AUTO:
        return int(setting)
    counted = cache.get(WORKERS_KEY)
    if counted is None:
        try:
            counted = live_processes()
        except Exception:  # a broker hiccup must not stop the cycle: one shard does it all
            logger.warning("the monitor workers could not be counted; one shard this cycle", exc_info=True)
            counted = 0
        cache.set(WORKERS_KEY, counted, WORKERS_FOR)
    return max(int(counted), 1)


# --- one shard count at a time ---------------------------------------------------------------------
#
# Accounts are split by `owner_id % count`, so shards of two different counts overlap (owner 6 is
# shard 0 of 2 and shard 0 of 3): if a coordinator sent 3 shards while shards of 2 still ran, one
# account could be synced by two processes at once and get two brackets. So each job has one count
# in force in Redis: a shard takes its lock only while its count is the one in force, and the count
# changes only while no shard lock of the count in force is held, each test-and-set atomic in Redis.
# Held shard locks are therefore always of the count in force. A shard of a superseded count does
# nothing (its accounts wait one cycle for the shards of the new count). The unsharded job is
# count 0 (MONITOR_SHARDS=0): it moves the count to 0 as a coordinator would, so it skips while
# shards of the count before still run, and a shard of that count delivered later does nothing.

_TAKE_IF_IN_FORCE = """
local in_force = redis.call('get', KEYS[2])
if in_force and in_force ~= ARGV[3] then return -1 end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_CHANGE_IF_IDLE = """
local in_force = redis.call('get', KEYS[1])
if (in_force or '') ~= ARGV[2] then return in_force end
for i = 2, #KEYS do
  if redis.call('exists', KEYS[i]) == 1 then return in_force end
end
redis.call('set', KEYS[1], ARGV[1])
return ARGV[1]
"""


def count_key(job: str) -> str:
    return f"cycle-shard-count:{job}"


def shard_lock_key(shard_task: str, shard: Shard) -> str:
    return f"lock:{shard_task}:{shard}"


def count_in_force(*, job: str, shard_task: str, wanted: int) -> int:
    """The shard count this cycle of `job` sends: `wanted`, or the count in force while any of its
    shards still holds its lock (a changed count waits for them to finish)."""
    client = get_redis_connection("default")
    read = client.get(count_key(job))
    if read is not None and int(read) == wanted:
        return wanted
    running = [shard_lock_key(shard_task, Shard(index, int(read))) for index in range(int(read))] if read else []
    answer = client.register_script(_CHANGE_IF_IDLE)(keys=[count_key(job), *running],
                                                    args=[wanted, read.decode() if read else ""])
    return int(answer) if answer is not None else wanted


def held_shard_locks(*, shard_task: str, count: int) -> list[tuple[str, float, str]]:
    """The shard locks of `count` still held: (key, seconds to expiry, holder as node|boot|pid-…),
    what an operator needs to tell a running shard from one a killed worker left behind."""
    client = get_redis_connection("default")
    keys = [shard_lock_key(shard_task, Shard(index, count)) for index in range(count)]
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.pttl(key)
            pipe.get(key)
        answers = pipe.execute()
    return [(key, ttl / 1000, holder.decode(errors="replace"))
            for key, ttl, holder in zip(keys, answers[::2], answers[1::2], strict=True) if holder is not None]


def shard_lock_take(*, job: str, shard_task: str, shard: Shard, token: str, ttl_ms: int) -> int:
    """Take the shard's lock if its count is in force: 1 taken, 0 held by another copy, -1 its
    count is superseded (the shard must do nothing)."""
    client = get_redis_connection("default")
    return int(client.register_script(_TAKE_IF_IN_FORCE)(
        keys=[shard_lock_key(shard_task, shard), count_key(job)], args=[token, ttl_ms, shard.count]))
