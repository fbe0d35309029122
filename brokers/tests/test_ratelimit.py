"""The rate limiter: one budget per token and group, shared by every process through Redis."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.conf import settings

from brokers.base import BrokerRateLimited, ModifyBudgetSpent
from brokers.ratelimit import (
    BACKGROUND,
    DEFAULT_PER_MINUTE,
    LIVE_LIMITS,
    MARKET_DATA,
    SANDBOX_CEILING,
    SANDBOX_LIMITS,
    STANDARD,
    TRADING,
    RateLimiter,
    connect,
    limits_for,
    seconds_until,
    token_fingerprint,
)

TOKEN = "rlTOKEN-77aa66bb55cc44dd"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def limiter(redis_client, namespace):
    def build(token=TOKEN, **options):
        return RateLimiter(token, namespace=namespace, redis_client=redis_client, **options)

    return build


def take(limiter, group, count):
    """How many of `count` requests the limiter lets through without waiting."""
    granted = 0
    for _ in range(count):
        try:
            limiter.acquire(group)
        except BrokerRateLimited:
            continue
        granted += 1
    return granted


def test_a_burst_is_let_through_then_the_next_caller_is_told_how_long_to_wait(limiter):
    bucket = limiter(limits={STANDARD: 60}, burst=5, max_wait=0.1)
    assert take(bucket, STANDARD, 5) == 5
    with pytest.raises(BrokerRateLimited) as refused:
        bucket.acquire(STANDARD)
    # 55 refills a minute: one slot every ~1.09 s.
    assert 0.5 < refused.value.retry_after <= 1.1


def test_a_caller_within_the_bound_waits_for_its_slot_instead_of_failing(limiter):
    # ~4 slots a second: a refill (~250 ms) is far longer than a call takes even on a loaded machine
    # (at ~20 a second, a call slowed past 50 ms by other work found its slot already refilled).
    bucket = limiter(limits={STANDARD: 61 * 4}, burst=1, max_wait=1.0)
    started = time.monotonic()
    waits = [bucket.acquire(STANDARD) for _ in range(3)]
    elapsed = time.monotonic() - started
    assert waits[0] == 0
    assert all(wait > 0 for wait in waits[1:])
    assert elapsed >= 0.45  # two refills at ~250 ms each


def test_a_refused_caller_spends_nothing(limiter):
    bucket = limiter(limits={STANDARD: 60}, burst=2, max_wait=0)
    assert take(bucket, STANDARD, 2) == 2
    assert take(bucket, STANDARD, 50) == 0
    patient = limiter(limits={STANDARD: 60}, burst=2, max_wait=1.5)
    assert 0.5 < patient.acquire(STANDARD) <= 1.2  # the first refill is still the next slot, not the 51st


def test_the_three_tradier_groups_have_separate_budgets(limiter):
    bucket = limiter(limits={STANDARD: 60, MARKET_DATA: 60, TRADING: 60}, burst=3, max_wait=0)
    assert take(bucket, MARKET_DATA, 10) == 3
    assert take(bucket, STANDARD, 10) == 3
    assert take(bucket, TRADING, 10) == 3


def test_each_token_has_its_own_bucket_and_redis_never_sees_the_token(limiter, redis_client, namespace):
    alice = limiter(token=TOKEN, limits={STANDARD: 60}, burst=2, max_wait=0)
    bob = limiter(token="other-token-1234567890", limits={STANDARD: 60}, burst=2, max_wait=0)
    assert take(alice, STANDARD, 5) == 2
    assert take(bob, STANDARD, 5) == 2
    keys = [key.decode() for key in redis_client.scan_iter(match=f"{namespace}:*")]
    assert keys and all(TOKEN not in key for key in keys)
    assert any(token_fingerprint(TOKEN) in key for key in keys)
    assert TOKEN not in repr(alice)


def test_an_unknown_group_gets_the_default_ceiling(limiter):
    bucket = limiter(limits={}, max_wait=0)
    assert bucket.per_minute("anything") == DEFAULT_PER_MINUTE
    assert take(bucket, "anything", 20) == DEFAULT_PER_MINUTE // 10


def test_budgets_keep_the_safety_margin_below_each_environments_published_limits(settings):
    settings.TRADIER_RATE_SAFETY_MARGIN_PCT = 20  # the default
    assert SANDBOX_LIMITS == {STANDARD: 60, MARKET_DATA: 60, TRADING: 60}  # Tradier's rate-limiting page
    assert LIVE_LIMITS == {STANDARD: 120, MARKET_DATA: 120, TRADING: 60}
    assert limits_for("https://sandbox.tradier.com/v1") == {STANDARD: 48, MARKET_DATA: 48, TRADING: 48}
    assert limits_for("https://api.tradier.com/v1") == {STANDARD: 96, MARKET_DATA: 96, TRADING: 48}
    # An unknown host (a proxy, a test server) publishes nothing: the default, under every tier's limit.
    assert set(limits_for("http://127.0.0.1:9/x/v1").values()) == {DEFAULT_PER_MINUTE}


def test_without_a_margin_the_sandbox_still_keeps_the_seeds_fifty_a_minute(settings):
    settings.TRADIER_RATE_SAFETY_MARGIN_PCT = 0
    assert limits_for("https://sandbox.tradier.com/v1") == {group: SANDBOX_CEILING for group in SANDBOX_LIMITS}
    assert SANDBOX_CEILING == 50
    assert limits_for("https://api.tradier.com/v1") == LIVE_LIMITS
    assert limits_for("https://api.tradier.com/v1", safety_margin_pct=50) == {STANDARD: 60, MARKET_DATA: 60,
                                                                            TRADING: 30}


@pytest.mark.parametrize("margin", [-1, 100, 150])
def test_a_margin_outside_zero_to_a_hundred_is_refused(margin):
    with pytest.raises(ValueError, match="margin"):
        limits_for("https://sandbox.tradier.com/v1", safety_margin_pct=margin)


def test_a_client_built_for_the_sandbox_spends_its_margined_budget(settings):
    from brokers.tradier import TradierClient

    settings.TRADIER_RATE_SAFETY_MARGIN_PCT = 25
    client = TradierClient(base_url="https://sandbox.tradier.com/v1", token=TOKEN, account_id="VA1")
    assert client._limiter.per_minute(TRADING) == 45


def test_no_sixty_second_span_can_exceed_the_brokers_budget(limiter):
    """Capacity plus a minute of refill is the most any 60 s span can hold."""
    bucket = limiter(limits={STANDARD: 60})
    capacity, rate_per_ms = bucket._shape(STANDARD)
    assert capacity + rate_per_ms * 60_000 <= 60


def test_when_the_broker_says_almost_nothing_is_left_the_group_waits_for_its_reset(limiter):
    bucket = limiter(limits={MARKET_DATA: 6000}, burst=100, max_wait=0.1)
    expiry_ms = int((time.time() + 30) * 1000)
    bucket.observe(MARKET_DATA, {"X-Ratelimit-Available": "1", "X-Ratelimit-Expiry": str(expiry_ms)})
    with pytest.raises(BrokerRateLimited) as refused:
        bucket.acquire(MARKET_DATA)
    assert 28 < refused.value.retry_after <= 30.5
    assert take(bucket, STANDARD, 1) == 1  # other groups carry on


def test_expiry_in_seconds_is_read_as_well_as_milliseconds(limiter):
    bucket = limiter(limits={TRADING: 6000}, burst=100, max_wait=0.1)
    bucket.observe(TRADING, {"X-Ratelimit-Available": "0", "X-Ratelimit-Expiry": str(int(time.time()) + 20)})
    with pytest.raises(BrokerRateLimited) as refused:
        bucket.acquire(TRADING)
    assert 18 < refused.value.retry_after <= 21
    assert seconds_until(str(int((time.time() + 10) * 1000))) == pytest.approx(10, abs=1)
    assert seconds_until(str(int(time.time() + 10))) == pytest.approx(10, abs=1)
    assert seconds_until(str(int(time.time() - 5))) is None
    assert seconds_until("garbage") is None


def test_the_brokers_count_pulls_our_bucket_down(limiter):
    """Another app on the same token spent most of the minute: we may send only what is left."""
    bucket = limiter(limits={STANDARD: 6000}, burst=100, max_wait=0)
    expiry_ms = int(time.time() * 1000) + 60_000
    bucket.observe(STANDARD, {"X-Ratelimit-Available": "4", "X-Ratelimit-Expiry": str(expiry_ms)})
    assert take(bucket, STANDARD, 10) == 3  # four left, one held in reserve


def test_a_broker_429_blocks_the_group_for_the_penalty_when_no_reset_is_given(limiter):
    bucket = limiter(limits={STANDARD: 6000}, burst=100, max_wait=1.0, throttle_penalty=0.3)
    assert bucket.throttled(STANDARD, {}) == 0.3
    waited = bucket.acquire(STANDARD)
    assert 0 < waited <= 0.31  # what is left of the penalty (less, if this machine stalled in between)


def test_background_work_never_takes_the_reserved_share_of_the_burst(limiter):
    """A burst of ten, 30 % reserved: background gets seven at once, the order sync still its three."""
    slept = []
    background = limiter(limits={STANDARD: 60}, burst=10, priority=BACKGROUND, reserved_share=0.3, sleep=slept.append)
    critical = limiter(limits={STANDARD: 60}, burst=10, max_wait=0)
    assert take(background, STANDARD, 20) == 7
    with pytest.raises(BrokerRateLimited) as refused:
        background.acquire(STANDARD)
    # Its own bucket refills at 70 % of 50 a minute: a token every ~1.7 s.
    assert 1.0 < refused.value.retry_after <= 1.8 and "background" in str(refused.value)
    assert take(critical, STANDARD, 3) == 3  # the reserve, untouched by the refusals
    assert slept == []  # background never sleeps on the limiter


def test_background_work_never_jumps_a_queued_critical_caller(limiter):
    """A critical caller queued behind the burst holds the balance below the floor: background waits."""
    background = limiter(limits={STANDARD: 600}, burst=5, priority=BACKGROUND, reserved_share=0.3)
    critical = limiter(limits={STANDARD: 600}, burst=5, max_wait=10, sleep=lambda seconds: None)
    for _ in range(5):
        critical.acquire(STANDARD)
    queued = critical.acquire(STANDARD)  # one slot owed (~0.1 s at 595 a minute), not slept here
    assert queued > 0
    with pytest.raises(BrokerRateLimited) as refused:
        background.acquire(STANDARD)
    # The owed slot, then the refill up to the floor (1.5 of 5) and one more: ~2.5 slots.
    assert refused.value.retry_after > queued


def test_background_work_spends_at_most_its_share_of_any_minute(limiter):
    bucket = limiter(limits={MARKET_DATA: 120}, priority=BACKGROUND, reserved_share=0.3)
    capacity, rate_per_ms = bucket._shape(MARKET_DATA)
    floor, own_capacity, own_rate_per_ms = bucket._background_shape(MARKET_DATA)
    assert own_capacity + own_rate_per_ms * 60_000 <= 0.7 * 120 + 1e-9
    assert floor == pytest.approx(0.3 * capacity)
    # Hammered for a second and a half at ~100 a minute (~1.6 a second): the burst's 70 % and
    # ~70 % of the refill, never more.
    fast = limiter(limits={MARKET_DATA: 6000}, burst=10, priority=BACKGROUND, reserved_share=0.3)
    _, own_capacity, own_rate_per_ms = fast._background_shape(MARKET_DATA)
    started, granted = time.monotonic(), 0
    while time.monotonic() - started < 1.5:
        granted += take(fast, MARKET_DATA, 1)
    elapsed = time.monotonic() - started
    assert 7 <= granted <= own_capacity + own_rate_per_ms * elapsed * 1000 + 1


def test_the_reserved_share_comes_from_the_settings_and_must_leave_background_something(limiter, settings):
    settings.TRADIER_RATE_RESERVED_SHARE = 0.5
    half = limiter(limits={STANDARD: 60}, burst=10, priority=BACKGROUND)
    assert take(half, STANDARD, 20) == 5
    with pytest.raises(ValueError):
        limiter(priority=BACKGROUND, reserved_share=1)
    with pytest.raises(ValueError):
        limiter(priority="urgent")


def test_without_redis_the_limiter_fails_open_and_says_so(caplog):
    bucket = RateLimiter(TOKEN, limits={STANDARD: 1}, redis_client=connect("redis://127.0.0.1:1/0"), max_wait=0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="brokers.ratelimit"):
        assert bucket.acquire(STANDARD) == 0.0
        assert bucket.acquire(STANDARD) == 0.0
    assert time.monotonic() - started < 1.0  # down Redis must not stall broker calls
    assert "unthrottled" in caplog.text
    assert TOKEN not in caplog.text


def test_without_redis_background_work_waits_instead_of_spending_tradings_budget(caplog):
    background = RateLimiter(TOKEN, limits={STANDARD: 1}, redis_client=connect("redis://127.0.0.1:1/0"),
                             priority=BACKGROUND)
    with caplog.at_level(logging.WARNING, logger="brokers.ratelimit"), pytest.raises(BrokerRateLimited) as refused:
        background.acquire(STANDARD)
    assert refused.value.retry_after > 0
    assert "deferred" in caplog.text and TOKEN not in caplog.text


WORKER = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from brokers.base import BrokerRateLimited
    from brokers.ratelimit import RateLimiter
    url, namespace, token, count, burst, per_minute, max_wait, start_at = sys.argv[1:]
    limiter = RateLimiter(token, limits={"trading": int(per_minute)}, burst=int(burst), max_wait=float(max_wait),
                          namespace=namespace, redis_client=redis.Redis.from_url(url))
    while time.monotonic() < float(start_at):
        time.sleep(0.001)
    granted, stamps = 0, []
    for _ in range(int(count)):
        try:
            limiter.acquire("trading")
        except BrokerRateLimited:
            continue
        granted += 1
        stamps.append(time.time())
    print(json.dumps({"granted": granted, "stamps": stamps}))
    """
)


def run_workers(namespace, *, processes, count, burst, per_minute, max_wait):
    # Every process has imported Django and Redis before anyone starts. The monotonic clock is one
    # for all processes of the machine; the wall clock may be moved for this one (make test-clock).
    start_at = time.monotonic() + 1.0
    env = {"DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, settings.REDIS_URL, namespace, TOKEN, str(count), str(burst),
             str(per_minute), str(max_wait), str(start_at)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, **env}, text=True,
        )
        for _ in range(processes)
    ]
    results = []
    try:
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for child in children:  # none outlives the test, whatever failed
            child.kill()
            child.wait()
    return results


def test_two_processes_share_one_budget(namespace):
    """Ten slots and no refill to speak of: two processes asking ten times each get ten in all."""
    results = run_workers(namespace, processes=2, count=10, burst=10, per_minute=11, max_wait=0)
    assert sum(result["granted"] for result in results) == 10


def test_two_processes_together_keep_to_the_refill_rate(namespace):
    """At ~10 slots a second with a burst of one, twelve requests from two processes need over a second."""
    results = run_workers(namespace, processes=2, count=6, burst=1, per_minute=601, max_wait=5)
    stamps = sorted(stamp for result in results for stamp in result["stamps"])
    assert len(stamps) == 12
    assert stamps[-1] - stamps[0] >= 1.0


def test_each_account_has_its_own_modification_budget_within_the_trading_budget(limiter, redis_client, namespace):
    bucket = limiter(limits={TRADING: 6}, max_wait=0)  # a budget of 100 is held to trading's 6: a burst of 1
    bucket.spend_modification("VA-ALICE", 100)
    with pytest.raises(ModifyBudgetSpent) as spent:
        bucket.spend_modification("VA-ALICE", 100)
    assert 0 < spent.value.retry_after <= 12.5
    bucket.spend_modification("VA-BOB", 100)  # another account of the same token is untouched
    assert take(bucket, TRADING, 1) == 1  # and modifications spent none of the trading bucket itself
    keys = [key.decode() for key in redis_client.scan_iter(match=f"{namespace}:*")]
    assert all("VA-ALICE" not in key for key in keys)  # the account number is not written to Redis


@pytest.mark.parametrize(("margin", "budget", "ids"), [
    (20, 10, []), (0, 1, []), (100, 10, ["brokers.E001"]), (-5, 10, ["brokers.E001"]), (20, 0, ["brokers.E002"]),
])
def test_the_system_check_refuses_budgets_that_cannot_work(settings, margin, budget, ids):
    from brokers.checks import tradier_rate_budgets

    settings.TRADIER_RATE_SAFETY_MARGIN_PCT = margin
    settings.TRADIER_MODIFY_BUDGET_PER_MINUTE = budget
    assert [error.id for error in tradier_rate_budgets(None)] == ids
