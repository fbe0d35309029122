"""Rate limits per broker token, shared by every process (web, workers, beat) through Redis.

Tradier counts requests per token, per group, per minute; our processes share tokens, so a limit
kept in one process's memory would let N workers send N times the budget. Each (token, group)
has one token bucket in Redis, updated atomically by a Lua script that reads Redis's own clock, so
no two processes can spend the same token and their clocks never need to agree.

A bucket of capacity C refilling at r per second lets through at most C + 60·r requests in any
60-second span; with r = (N − C) / 60 that never exceeds the broker's N per minute, however its
window is aligned. The broker's own `X-Ratelimit-Available` / `-Expiry` headers pull the bucket
down when it has seen requests we did not count (another app on the same token), and block the
group until the window resets when almost nothing is left, so we slow down before it says no.

Callers that would wait longer than `max_wait` get `BrokerRateLimited` at once: a worker must not
sit out a whole minute holding a slot.

The budgets themselves keep a safety margin below Tradier's published limits
(TRADIER_RATE_SAFETY_MARGIN_PCT, 20 % by default: another app on the same token, a clock edge, a
request Tradier counts in a group we did not expect), and the sandbox never more than the 50 a
minute the project's seed asks for. Within the trading budget each account has a smaller one for
stop modifications (TRADIER_MODIFY_BUDGET_PER_MINUTE, `spend_modification`): a trailing stop
that wants to move on every tick gets refused at once, with nothing sent, instead of crowding out
the placements and cancels that protect positions.

Two priorities share each bucket. CRITICAL (the default: the monitor's cycles, the order sync,
placements) queues for its slot as above. BACKGROUND (work that can come back later: the entry
context) never waits and never queues: it is granted a request only if that leaves at least
`reserved_share` of the bucket's burst in it, and only while its own second bucket, shaped like
the first but scaled by 1 − `reserved_share`, has a token. So in any 60-second span background
calls spend at most (1 − share)·N of the broker's N, and never the slots a waiting critical
caller is queued for (a queued caller holds the balance below the floor); the refused caller is
told when to come back (`retry_after`) and spends nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from brokers.base import BrokerRateLimited, ModifyBudgetSpent

log = logging.getLogger(__name__)

STANDARD = "standard"
MARKET_DATA = "market_data"
TRADING = "trading"
GROUPS = (STANDARD, MARKET_DATA, TRADING)

CRITICAL = "critical"
BACKGROUND = "background"
PRIORITIES = (CRITICAL, BACKGROUND)
BACKGROUND_RETRY_WITHOUT_REDIS = 30.0  # seconds: a Redis failover is usually over by then

DEFAULT_PER_MINUTE = 50  # when a group's budget is unknown, stay under what every Tradier tier allows
# Tradier's published limits per minute and token (reference §5: the rate-limiting page).
SANDBOX_LIMITS = {STANDARD: 60, MARKET_DATA: 60, TRADING: 60}
LIVE_LIMITS = {STANDARD: 120, MARKET_DATA: 120, TRADING: 60}
SANDBOX_CEILING = 50  # the seed's own rule for the sandbox, whatever the margin
MODIFY_BURST_SHARE = 4  # a quarter of the modification budget may go at once (one move of several trades)

# Tradier's window is a minute; an Expiry further out than this is a misread header, not a plan.
_LONGEST_WINDOW = 61.0

# Shared by both scripts: the bucket refilled up to `now` (Redis' own clock, so every process
# agrees), and how it is saved. KEYS[1] is the bucket hash; ARGV[1] capacity, ARGV[2] refill per ms.
_REFILL = """
redis.replicate_commands()
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp'))
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local function save()
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity + 1) / rate) + 1000)
end
"""

# KEYS[2] block key; ARGV[3] max wait ms. Reserves one token (the balance may go negative: that is
# the queue) and returns {granted, wait_ms}. A refused caller spends nothing.
_ACQUIRE = _REFILL + """
local max_wait = tonumber(ARGV[3])
tokens = tokens - 1
local wait = 0
if tokens < 0 then
  wait = math.ceil(-tokens / rate)
end
local blocked = redis.call('PTTL', KEYS[2])
if blocked > wait then
  wait = blocked
end
if wait > max_wait then
  return {0, wait}
end
save()
return {1, wait}
"""

# BACKGROUND: never waits, never queues. KEYS[2] block key, KEYS[3] the background bucket; ARGV[3]
# the floor the shared bucket must keep, ARGV[4] and ARGV[5] the background bucket's capacity and
# refill per ms. Grants {1, 0} and spends one token of each bucket, or {0, wait_ms} and spends nothing.
_TRY_BACKGROUND = _REFILL + """
local floor = tonumber(ARGV[3])
local own_capacity = tonumber(ARGV[4])
local own_rate = tonumber(ARGV[5])
local own = tonumber(redis.call('HGET', KEYS[3], 'tokens'))
local own_stamp = tonumber(redis.call('HGET', KEYS[3], 'stamp'))
if own == nil or own_stamp == nil then
  own = own_capacity
  own_stamp = now
end
own = math.min(own_capacity, own + math.max(0, now - own_stamp) * own_rate)
local wait = 0
if tokens - 1 < floor then
  wait = math.ceil((floor + 1 - tokens) / rate)
end
if own < 1 then
  wait = math.max(wait, math.ceil((1 - own) / own_rate))
end
local blocked = redis.call('PTTL', KEYS[2])
if blocked > wait then
  wait = blocked
end
if wait > 0 then
  return {0, wait}
end
tokens = tokens - 1
save()
redis.call('HSET', KEYS[3], 'tokens', tostring(own - 1), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[3], math.ceil((own_capacity + 1) / own_rate) + 1000)
return {1, 0}
"""

# ARGV[3] the most tokens the broker still allows.
_CLAMP = _REFILL + """
tokens = math.min(tokens, tonumber(ARGV[3]))
save()
return 1
"""


def token_fingerprint(token: str) -> str:
    """Names a token's buckets without storing it: Redis never sees the token itself."""
    return hashlib.sha256(b"tradeoptions-ratelimit\0" + token.encode()).hexdigest()[:32]


def seconds_until(expiry: str | float | None, *, now: float | None = None) -> float | None:
    """Seconds until an `X-Ratelimit-Expiry`, which Tradier documents in epoch milliseconds and
    others read as seconds: any value too large to be seconds is taken as milliseconds."""
    if expiry is None or expiry == "":
        return None
    try:
        moment = float(expiry)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(moment) or moment <= 0:
        return None
    if moment > 1e11:
        moment /= 1000.0
    remaining = moment - (time.time() if now is None else now)
    if remaining <= 0:
        return None
    return min(remaining, _LONGEST_WINDOW)


def connect(url: str) -> redis.Redis:
    """A client that gives up fast: short timeouts and one retry, because redis-py's default
    (ten retries with backoff) would hold every broker call for seconds while Redis is down."""
    return redis.Redis.from_url(
        url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 1)
    )


@cache
def _redis_for(url: str) -> redis.Redis:
    return connect(url)


class RateLimiter:
    """Budgets of one token, one bucket per group, shared through Redis."""

    def __init__(
        self,
        token: str,
        *,
        limits: Mapping[str, int] | None = None,
        max_wait: float = 5.0,
        burst: int | None = None,
        reserve: int = 1,
        throttle_penalty: float = 2.0,
        namespace: str = "brokers",
        redis_client: redis.Redis | None = None,
        sleep: Callable[[float], None] = time.sleep,
        priority: str = CRITICAL,
        reserved_share: float | None = None,
    ) -> None:
        if priority not in PRIORITIES:
            raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        if reserved_share is None:
            reserved_share = settings.TRADIER_RATE_RESERVED_SHARE
        if not 0 <= reserved_share < 1:
            raise ValueError(f"reserved_share must be at least 0 and below 1, not {reserved_share!r}")
        self._priority = priority
        self._reserved_share = float(reserved_share)
        self._limits = dict(limits or {})
        self._max_wait = max_wait
        self._burst = burst
        self._reserve = reserve
        self._throttle_penalty = throttle_penalty
        self._prefix = f"{namespace}:ratelimit:{token_fingerprint(token)}"
        self._redis = redis_client
        self._sleep = sleep
        self._acquire_script = None
        self._clamp_script = None
        self._background_script = None

    def __repr__(self) -> str:
        return f"<RateLimiter {self._prefix} {self._priority}>"

    @property
    def priority(self) -> str:
        return self._priority

    # -- budgets -------------------------------------------------------------------------------

    def per_minute(self, group: str) -> int:
        return self._limits.get(group, DEFAULT_PER_MINUTE)

    def _shape(self, group: str) -> tuple[int, float]:
        """(capacity, refill per millisecond) such that no 60 s span exceeds the budget."""
        limit = max(1, self.per_minute(group))
        capacity = self._burst if self._burst is not None else max(1, limit // 10)
        capacity = max(1, min(capacity, limit - 1)) if limit > 1 else 1
        rate_per_ms = max(limit - capacity, 1) / 60_000.0
        return capacity, rate_per_ms

    def _background_shape(self, group: str) -> tuple[float, float, float]:
        """(floor kept in the shared bucket, background capacity, background refill per ms)."""
        capacity, rate_per_ms = self._shape(group)
        own = 1 - self._reserved_share
        # At least one token, or a tiny budget would never grant background work anything.
        return self._reserved_share * capacity, max(1.0, own * capacity), own * rate_per_ms

    def spend_modification(self, account_id: str, per_minute: int) -> None:
        """Spends one of the account's `per_minute` stop modifications, or raises
        `ModifyBudgetSpent` at once (never waits: the working stop protects meanwhile). Fails
        closed without Redis: a modification can wait, the trading budget must not be overrun."""
        limit = max(1, min(int(per_minute), self.per_minute(TRADING)))
        capacity = max(1, min(limit // MODIFY_BURST_SHARE, limit - 1)) if limit > 1 else 1
        rate = max(limit - capacity, 1) / 60_000.0
        bucket = f"{self._prefix}:modify:{token_fingerprint(account_id)}"
        try:
            acquire, _ = self._scripts()
            granted, wait_ms = acquire(keys=[bucket, f"{bucket}:blocked"], args=[capacity, repr(rate), 0])
        except redis.RedisError as exc:
            log.warning("Rate limiter unavailable (%s); stop modification deferred", type(exc).__name__)
            raise ModifyBudgetSpent("The rate limiter is unavailable: the stop modification waits.",
                                    retry_after=BACKGROUND_RETRY_WITHOUT_REDIS) from exc
        if not int(granted):
            wait = int(wait_ms) / 1000.0
            raise ModifyBudgetSpent(
                f"This account's {limit} stop modifications a minute are spent: the next is {wait:.1f}s away.",
                retry_after=wait,
            )

    def _keys(self, group: str) -> tuple[str, str]:
        return f"{self._prefix}:{group}", f"{self._prefix}:{group}:blocked"

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = _redis_for(settings.REDIS_URL)
        return self._redis

    def _scripts(self):
        if self._acquire_script is None:
            client = self._client()
            self._acquire_script = client.register_script(_ACQUIRE)
            self._clamp_script = client.register_script(_CLAMP)
            self._background_script = client.register_script(_TRY_BACKGROUND)
        return self._acquire_script, self._clamp_script

    # -- use -----------------------------------------------------------------------------------

    def acquire(self, group: str) -> float:
        """Waits for the group's next slot and returns how long it waited.

        Fails open if Redis is unreachable: an exit order must not be held hostage by the
        limiter, and the broker's own 429 still protects the account. Background work fails
        closed instead: unthrottled, it would push the broker's 429s onto the monitor. A BACKGROUND limiter never
        waits: it is granted a slot outside the reserved share now, or refused (see the module).
        """
        capacity, rate = self._shape(group)
        try:
            acquire, _ = self._scripts()
            if self._priority == BACKGROUND:
                floor, own_capacity, own_rate = self._background_shape(group)
                granted, wait_ms = self._background_script(
                    keys=[*self._keys(group), f"{self._prefix}:{group}:{BACKGROUND}"],
                    args=[capacity, repr(rate), repr(floor), repr(own_capacity), repr(own_rate)])
            else:
                granted, wait_ms = acquire(keys=self._keys(group),
                                           args=[capacity, repr(rate), int(self._max_wait * 1000)])
        except redis.RedisError as exc:
            if self._priority == BACKGROUND:  # background work can wait; it must not spend trading's budget
                log.warning("Rate limiter unavailable (%s); background %s request deferred", type(exc).__name__, group)
                raise BrokerRateLimited(f"The rate limiter is unavailable: background {group} work waits.",
                                        retry_after=BACKGROUND_RETRY_WITHOUT_REDIS) from exc
            log.warning("Rate limiter unavailable (%s); sending the %s request unthrottled", type(exc).__name__, group)
            return 0.0
        wait = int(wait_ms) / 1000.0
        if not int(granted) and self._priority == BACKGROUND:
            raise BrokerRateLimited(
                f"The {group} budget left to background work is spent: the next slot is {wait:.1f}s away.",
                retry_after=wait,
            )
        if not int(granted):
            raise BrokerRateLimited(
                f"The {group} budget is spent: the next slot is {wait:.1f}s away, longer than {self._max_wait:.1f}s.",
                retry_after=wait,
            )
        if wait > 0:
            self._sleep(wait)
        return wait

    def observe(self, group: str, headers: Mapping[str, str]) -> None:
        """Takes the broker's own count into account after every response."""
        available = _int_header(headers, "X-Ratelimit-Available")
        if available is None:
            return
        if available <= self._reserve:
            remaining = seconds_until(headers.get("X-Ratelimit-Expiry"))
            if remaining:
                self._block(group, remaining)
            return
        capacity, rate = self._shape(group)
        try:
            _, clamp = self._scripts()
            clamp(keys=self._keys(group)[:1], args=[capacity, repr(rate), available - self._reserve])
        except redis.RedisError as exc:
            log.warning("Rate limiter unavailable (%s); broker's count not recorded", type(exc).__name__)

    def throttled(self, group: str, headers: Mapping[str, str]) -> float:
        """The broker said no: block the group until its window resets (or a short penalty if it
        did not say when). Returns the block in seconds."""
        remaining = seconds_until(headers.get("X-Ratelimit-Expiry")) or self._throttle_penalty
        self._block(group, remaining)
        return remaining

    def _block(self, group: str, seconds: float) -> None:
        try:
            self._client().set(self._keys(group)[1], b"1", px=max(1, int(seconds * 1000)))
        except redis.RedisError as exc:
            log.warning("Rate limiter unavailable (%s); block of %s not recorded", type(exc).__name__, group)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def limits_for(base_url: str, *, safety_margin_pct: float | None = None) -> dict[str, int]:
    """Our budgets for the environment a base URL points at: its published limits less the safety
    margin (TRADIER_RATE_SAFETY_MARGIN_PCT), the sandbox's also capped at the seed's 50 a minute.
    An unknown URL (a proxy, a test server) has no published limit: it gets the default 50."""
    margin = settings.TRADIER_RATE_SAFETY_MARGIN_PCT if safety_margin_pct is None else safety_margin_pct
    if not 0 <= margin < 100:
        raise ValueError(f"The rate safety margin must be at least 0 % and below 100 %, not {margin!r}.")
    live = "api.tradier.com" in base_url and "sandbox" not in base_url
    if not live and "sandbox" not in base_url:
        return {group: DEFAULT_PER_MINUTE for group in GROUPS}
    budgets = {}
    for group, published in (LIVE_LIMITS if live else SANDBOX_LIMITS).items():
        budget = max(1, math.floor(published * (100 - margin) / 100))
        budgets[group] = budget if live else min(budget, SANDBOX_CEILING)
    return budgets
