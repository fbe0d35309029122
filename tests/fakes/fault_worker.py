"""A real Celery worker with one fault hook, for the fault scenarios (tests/test_faults_*.py).

Run as `python -m tests.fakes.fault_worker` with the usual worker environment plus:

* FAULT_QUOTES: JSON {option symbol: [bid, ask]}: the market every layer of the worker sees (a
  `HandDrivenMarket`, open), so fills do not depend on a simulator.
* FAULT_NOW: ISO instant the worker's market clock is frozen at (the cycle's slot).
* FAULT_AT: "<module>:<function>:<n>:<before|after>": the n-th call of that function stops the
  worker before or after the real call. It sets the Redis key FAULT_KEY to "paused" and waits
  until the key says "resume" (then carries on) or the test kills the process. The test kills
  the worker at a known line instead of after a guessed sleep.

It is a test helper: nothing in the application imports it.
"""

import importlib
import json
import os
import sys
import time
from datetime import datetime
from decimal import Decimal


def _pause(client, key: str) -> None:
    client.set(key, "paused")
    while client.get(key) != b"resume":
        time.sleep(0.05)
    client.set(key, "resumed")


def _install_hook(spec: str, key: str) -> None:
    import redis
    from django.conf import settings

    module_name, function_name, nth, when = spec.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, function_name)
    calls = []
    client = redis.Redis.from_url(settings.REDIS_URL)

    def hooked(*args, **kwargs):
        calls.append(1)
        hit = len(calls) == int(nth)
        if hit and when == "before":
            _pause(client, key)
        result = real(*args, **kwargs)
        if hit and when == "after":
            _pause(client, key)
        return result

    setattr(module, function_name, hooked)


def _install_market(quotes: dict, now: str) -> None:
    from brokers import market as market_registry
    from monitoring import clock as market_clock
    from tests.fakes.market import HandDrivenMarket

    hand = HandDrivenMarket(datetime.fromisoformat(now))
    for symbol, (bid, ask) in quotes.items():
        hand.set_quote(symbol, str(Decimal(bid)), str(Decimal(ask)))
    market_registry.use_market(hand)
    market_clock.now = lambda: hand.moment


def main() -> None:
    import django

    django.setup()
    if os.environ.get("FAULT_QUOTES"):
        _install_market(json.loads(os.environ["FAULT_QUOTES"]), os.environ["FAULT_NOW"])
    if os.environ.get("FAULT_AT"):
        _install_hook(os.environ["FAULT_AT"], os.environ["FAULT_KEY"])
    from tradeoptions.celery import app

    app.worker_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
