"""The beat scheduler: django-celery-beat's, made safe to deploy carelessly and easy to probe.

Exactly one beat may send the schedule, or every job would run twice per period. Compose runs
one beat service, but nothing stops a second one on another machine (or `--scale beat=2`), so
each beat must hold a leader lease in Redis before it sends anything; a second beat waits,
and takes over within `LEASE` if the first dies.

Each tick that completes also touches `BEAT_HEARTBEAT_FILE`, so the container's health check
can tell a live scheduler loop (which reads the schedule from the database every few seconds)
from a process that is up but stuck.
"""

from __future__ import annotations

import logging
import socket
import uuid
from pathlib import Path

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

LEADER_KEY = "beat:leader"
LEASE_MS = 30_000  # renewed every tick (at most 5 s apart), so only a dead or stuck beat loses it
# Take the lease if free, renew it if ours; answer whether we hold it (one atomic step).
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RESIGN = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class SingleBeatScheduler(DatabaseScheduler):
    """DatabaseScheduler that sends only while it holds the leader lease, and leaves a heartbeat."""

    def __init__(self, *args, **kwargs):
        self.identity = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._leading: bool | None = None  # unknown until the first tick: then its role is logged
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if not self.lead():
            return self.max_interval
        interval = super().tick(*args, **kwargs)
        beat_heartbeat_touch()
        return interval

    def lead(self) -> bool:
        """Hold (or take, or renew) the leader lease; log each change of role once."""
        try:
            leading = bool(get_redis_connection("default").eval(_LEAD, 1, LEADER_KEY, self.identity, LEASE_MS))
        except Exception as error:  # Redis down: the tasks could not be queued anyway
            logger.warning("beat: cannot reach Redis for the leader lease: %s", type(error).__name__)
            leading = False
        if leading != self._leading:
            role = "now sends the schedule" if leading else "stands by: another beat sends the schedule"
            logger.warning("beat %s %s", self.identity, role)
            self._leading = leading
        return leading

    def close(self):
        if self._leading:
            try:
                get_redis_connection("default").eval(_RESIGN, 1, LEADER_KEY, self.identity)
            except Exception as error:  # the lease then simply runs out
                logger.warning("beat: could not resign the leader lease: %s", type(error).__name__)
        super().close()


def beat_heartbeat_touch() -> None:
    if settings.BEAT_HEARTBEAT_FILE:
        Path(settings.BEAT_HEARTBEAT_FILE).touch()
