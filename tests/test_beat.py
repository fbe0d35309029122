"""Exactly one beat sends the schedule, however many run; each live beat leaves a heartbeat."""

import time
from pathlib import Path

import pytest

from tradeoptions.beat import LEADER_KEY, SingleBeatScheduler
from tradeoptions.celery import app


@pytest.fixture
def beats(transactional_db, redis_client, settings, tmp_path):
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "beat.heartbeat")
    redis_client.delete(LEADER_KEY)
    started = []

    def start():
        beat = SingleBeatScheduler(app=app)
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.close()
    redis_client.delete(LEADER_KEY)


def test_the_first_beat_leads_and_a_second_stands_by_until_the_first_stops(beats, redis_client, caplog):
    first, second = beats(), beats()
    assert first.lead() and not second.lead()
    assert redis_client.get(LEADER_KEY).decode() == first.identity
    assert "stands by" in caplog.text
    first.close()
    assert second.lead()


def test_a_standing_by_beat_sends_nothing_and_leaves_no_heartbeat(beats, settings, monkeypatch):
    from django_celery_beat.schedulers import DatabaseScheduler

    sent = []
    monkeypatch.setattr(DatabaseScheduler, "tick", lambda self, *a, **k: sent.append(self) or 1.0)
    first, second = beats(), beats()
    first.tick()
    heartbeat = Path(settings.BEAT_HEARTBEAT_FILE)
    assert sent == [first] and heartbeat.exists()
    heartbeat.unlink()
    assert second.tick() == second.max_interval
    assert sent == [first] and not heartbeat.exists()


def test_a_leader_s_lease_runs_out_when_it_stops_renewing(beats, redis_client):
    first, second = beats(), beats()
    assert first.lead()
    redis_client.pexpire(LEADER_KEY, 1)  # as if the first beat froze for LEASE_MS
    time.sleep(0.01)
    assert second.lead() and not first.lead()
