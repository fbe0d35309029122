"""`--clock=…`: run the whole suite as if it were another day, to prove no test depends on today.

The suite must pass on any day of any year; the plain run only proves it for the day it runs.
`make test-clock CLOCK=+400d` (or an ISO moment such as `2027-03-14T07:30:00Z`, a DST-change
Sunday, or `2027-07-05T15:00:00Z`, a market holiday) moves this process's wall clock there for the
whole session with time-machine, ticking on from that moment. A Python process a test starts
follows the same moved clock when it is started through `python -m tests.clock_shift <module> …`
(the beats of the two-beats test); other processes keep the real clock, as a second machine would.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

ENVIRONMENT = "TEST_CLOCK_MOVED"  # "<moved epoch> <real epoch>" at the moment the run moved its clock
RELATIVE = re.compile(r"^(?P<sign>[+-])(?P<amount>\d+)(?P<unit>[dhm])$")
UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def moment(spec: str, now: datetime) -> datetime:
    """`+400d`, `-3h`, `+90m` from `now`, or an ISO 8601 moment (UTC when it names no offset)."""
    relative = RELATIVE.match(spec.strip())
    if relative:
        amount = int(relative["amount"]) * (1 if relative["sign"] == "+" else -1)
        return now + timedelta(**{UNITS[relative["unit"]]: amount})
    try:
        stamp = datetime.fromisoformat(spec.strip())
    except ValueError as error:
        raise pytest.UsageError(f"--clock: {spec!r} is neither +Nd/+Nh/+Nm nor an ISO 8601 moment") from error
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def pytest_addoption(parser):
    parser.addoption("--clock", default=None, metavar="MOMENT",
                     help="Run the suite with the wall clock moved: +400d, -3h or an ISO 8601 moment.")


def pytest_configure(config):
    spec = config.getoption("--clock")
    if not spec:
        return
    import time_machine

    target = moment(spec, datetime.now(UTC))
    os.environ[ENVIRONMENT] = f"{target.timestamp()} {time.time()}"
    traveller = time_machine.travel(target, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)
    config.add_cleanup(lambda: os.environ.pop(ENVIRONMENT, None))
    config.stash[_TARGET] = target


_TARGET = pytest.StashKey[datetime]()


def pytest_report_header(config):
    if _TARGET in config.stash:
        return f"clock moved to {config.stash[_TARGET].isoformat()} (time-machine, ticking)"
    return None


def follow() -> None:
    """In a child process: move this process's clock as far as the test run moved its own."""
    moved = os.environ.get(ENVIRONMENT)
    if not moved:
        return
    import time_machine

    target, real = (float(value) for value in moved.split())
    time_machine.travel(target + (time.time() - real), tick=True).start()


if __name__ == "__main__":  # python -m tests.clock_shift <module> [args…]: run <module> on the moved clock
    follow()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
