"""Idempotency keys for opening trades: one key, one trade, one answer, per user.

The first request with a key takes a transaction-scoped PostgreSQL advisory lock on (user, key)
and stores its answer in the same transaction as the trade. A duplicate that arrives while the
first is still in flight cannot take the lock and is told so (409) at once, without waiting; one
that arrives after the first committed finds the stored answer and gets it again, unless its
body differs (422). Advisory locks are visible across transactions the moment they are taken,
which is what makes "in flight" observable while the first request's rows are not yet committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils import timezone

from tradeoptions import tenancy
from trades.models import IdempotencyKey, PaperTrade

from .errors import IdempotencyKeyInFlight, IdempotencyKeyReused

IDEMPOTENCY_KEY_TTL = timedelta(hours=48)  # the issue promises at least 24 hours


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict


def request_fingerprint(body: dict) -> str:
    """SHA-256 of the body as canonical JSON, without the key itself."""
    payload = {name: value for name, value in body.items() if name != "idempotency_key"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_claim(*, user: AbstractBaseUser, key: str, fingerprint: str) -> StoredAnswer | None:
    """Claim `key` for this request until `idempotency_release` (always call it once claimed).

    The claim is a session-level advisory lock, so it holds across the open's separate commits
    (the trade row commits before the broker call) and dies with the connection if the process
    does. Returns the stored answer to replay, or None when this request is the first and should
    go on (and then `idempotency_store` its answer).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_lock_id(user.pk, key)])
        if not cursor.fetchone()[0]:
            raise IdempotencyKeyInFlight(
                "A request with this Idempotency-Key is still being processed: retry when it has finished."
            )
    try:
        with tenancy.acting_as(user.pk):
            stored = IdempotencyKey.objects.filter(owner=user, key=key).first()
            if stored is None:
                if PaperTrade.objects.filter(owner=user, idempotency_key=key).exists():
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key opened a trade too long ago to replay its answer: use a new key."
                    )
                return None
        if stored.fingerprint != fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was already used with a different request body.")
        return StoredAnswer(status=stored.response_status, body=stored.response_body)
    except IdempotencyKeyReused:
        idempotency_release(user=user, key=key)
        raise


def idempotency_release(*, user: AbstractBaseUser, key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [_lock_id(user.pk, key)])


def idempotency_store(
    *, user: AbstractBaseUser, key: str, fingerprint: str, status: int, body: dict, trade: PaperTrade | None
) -> IdempotencyKey:
    with tenancy.acting_as(user.pk):
        return IdempotencyKey.objects.create(
            owner=user, key=key, fingerprint=fingerprint, response_status=status, response_body=body, trade=trade
        )


def idempotency_keys_purge(*, older_than: timedelta = IDEMPOTENCY_KEY_TTL) -> int:
    """Forget stored answers older than `older_than` (never less than a day). Runs across tenants,
    as a periodic ops job: it deletes only expired replay data, never trades."""
    older_than = max(older_than, timedelta(hours=24))
    with tenancy.system_context():
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted


def _lock_id(user_id: int, key: str) -> int:
    digest = hashlib.sha256(f"tradeoptions:idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
