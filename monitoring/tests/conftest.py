"""Fixtures for market data: a fake ORATS server, a provider pointed at it, and a fixed clock."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from monitoring.marketdata.orats import OratsClient, OratsProvider
from tests.fakes.orats import FakeOrats

# Wednesday 17 June 2026, 11:00 in New York: an ordinary session in the middle of the day.
MIDDAY = datetime(2026, 6, 17, 11, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.fixture
def fake_orats():
    with FakeOrats() as fake:
        yield fake


@pytest.fixture
def sleeps():
    """The retry pauses the client asked for, recorded instead of slept."""
    return []


@pytest.fixture
def orats_client(fake_orats, sleeps):
    return OratsClient(base_url=fake_orats.url, token=fake_orats.token, sleep=sleeps.append, timeout=(2, 5))


@pytest.fixture
def orats(orats_client):
    return OratsProvider(orats_client, clock=lambda: MIDDAY)
