"""Idempotency keys for opening trades: one key, one trade, one answer, per user.

The first request with a key claims it by inserting its `IdempotencyKey` row, unanswered, with a
lease, in a transaction of its own that commits at once. A duplicate that arrives while the
first is still in flight finds the unanswered row and is told so (409) at once, without waiting;
one that arrives after the first stored its answer gets it again, unless its body differs (422).

Why a row and not a PostgreSQL advisory lock: the open commits in steps (the PENDING trade
before the broker call), so a claim must outlive a transaction, and a session-level lock does
not survive a transaction-mode pooler (PgBouncer, Neon's pooler), which hands the server session
to another client between transactions. The row is visible to every connection the moment it
commits. If the claimant dies, its lease runs out and the next duplicate takes the claim over;
the trade's own unique (owner, idempotency_key) constraint still guarantees one trade per key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from tradeoptions import tenancy
from trades.models import IdempotencyKey, PaperTrade

from .errors import IdempotencyKeyInFlight, IdempotencyKeyReused

IDEMPOTENCY_KEY_TTL = timedelta(hours=48)  # the issue promises at least 24 hours
# Longer than any open can take (validation, the broker's timeouts and one retry), so a live
# request never loses its claim; short enough that a crashed one does not block its key for long.
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: dict


@dataclass(frozen=True)
class IdempotencyClaim:
    """What `idempotency_claim` decided: the stored answer to `replay`, or a claim (held until
    `lease_until`) that this request must answer with `idempotency_store` or give back."""

    user_id: int
    key: str
    fingerprint: str
    replay: StoredAnswer | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class KeyedAnswer:
    """What a keyed request answers: its status and body, the trade it wrote (if any), and whether
    the answer is a replay of the first request's."""

    status: int
    body: dict
    trade: PaperTrade | None = None
    replayed: bool = False


def idempotent(*, user: AbstractBaseUser, key: str, body: dict, answer: Callable[[], KeyedAnswer]) -> KeyedAnswer:
    """Run `answer` at most once per (user, key): the first request claims the key and runs it; an
    answer that wrote a trade is stored and replayed to every duplicate with the same body. A
    refusal before any trade was written is not stored (the claim is given back), so a corrected
    retry is judged afresh. Raises IdempotencyKeyInFlight or IdempotencyKeyReused."""
    claim = idempotency_claim(user=user, key=key, fingerprint=request_fingerprint(body))
    try:
        if claim.replay is not None:
            return KeyedAnswer(claim.replay.status, claim.replay.body, replayed=True)
        result = answer()
        if result.trade is not None:
            idempotency_store(claim=claim, status=result.status, body=result.body, trade=result.trade)
        return result
    finally:
        idempotency_release(claim=claim)


def request_fingerprint(body: dict) -> str:
    """SHA-256 of the body as canonical JSON, without the key itself."""
    payload = {name: value for name, value in body.items() if name != "idempotency_key"}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_claim(*, user: AbstractBaseUser, key: str, fingerprint: str) -> IdempotencyClaim:
    """Claim `key` for this request, or find the answer to replay. Always `idempotency_release`
    the result once done. Raises IdempotencyKeyInFlight or IdempotencyKeyReused."""
    now = timezone.now()
    lease_until = now + CLAIM_LEASE
    claim = IdempotencyClaim(user_id=user.pk, key=key, fingerprint=fingerprint, lease_until=lease_until)
    with tenancy.acting_as(user.pk):
        try:
            with transaction.atomic():  # a duplicate inserting at the same moment waits here, then fails
                IdempotencyKey.objects.create(owner=user, key=key, fingerprint=fingerprint, claimed_until=lease_until)
        except IntegrityError:
            pass
        else:
            _refuse_if_a_trade_has_it(user, key)
            return claim
        stored = IdempotencyKey.objects.select_for_update().get(owner=user, key=key)
        if stored.response_status is None:
            if stored.claimed_until is not None and stored.claimed_until > now:
                raise IdempotencyKeyInFlight(
                    "A request with this Idempotency-Key is still being processed: retry when it has finished."
                )
            # The claimant died without an answer: this request takes its claim over.
            IdempotencyKey.objects.filter(pk=stored.pk).update(fingerprint=fingerprint, claimed_until=lease_until)
            _refuse_if_a_trade_has_it(user, key)
            return claim
    if stored.fingerprint != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was already used with a different request body.")
    return IdempotencyClaim(user_id=user.pk, key=key, fingerprint=fingerprint,
                            replay=StoredAnswer(status=stored.response_status, body=stored.response_body))


def _refuse_if_a_trade_has_it(user: AbstractBaseUser, key: str) -> None:
    """A trade carries the key but no answer is stored (purged, or its request died midway): the
    key cannot open another trade, and there is nothing to replay. The raise rolls the claim back."""
    trade = PaperTrade.objects.filter(owner=user, idempotency_key=key).only("pk").first()
    if trade is not None:
        raise IdempotencyKeyReused(
            f"This Idempotency-Key already opened trade {trade.pk} and its answer is no longer stored: "
            "look that trade up, or use a new key."
        )


def idempotency_release(*, claim: IdempotencyClaim) -> None:
    """Give back a claim that stored no answer (a refusal before any trade was written), so a
    corrected retry is judged afresh. Only this request's own claim: not one taken over after
    its lease ran out, and never an answered key."""
    if claim.lease_until is None:
        return
    with tenancy.acting_as(claim.user_id):
        IdempotencyKey.objects.filter(owner_id=claim.user_id, key=claim.key, response_status__isnull=True,
                                      claimed_until=claim.lease_until).delete()


def idempotency_store(
    *, claim: IdempotencyClaim, status: int, body: dict, trade: PaperTrade | None
) -> IdempotencyKey:
    """Answer the claimed key: from now on a duplicate replays `status` and `body`."""
    with tenancy.acting_as(claim.user_id):
        stored = IdempotencyKey.objects.select_for_update().get(owner_id=claim.user_id, key=claim.key)
        stored.fingerprint, stored.response_status, stored.response_body = claim.fingerprint, status, body
        stored.trade, stored.claimed_until = trade, None
        stored.save(update_fields=["fingerprint", "response_status", "response_body", "trade", "claimed_until"])
        return stored


def idempotency_keys_purge(*, older_than: timedelta = IDEMPOTENCY_KEY_TTL) -> int:
    """Forget stored answers older than `older_than` (never less than a day). Runs across tenants,
    as a periodic ops job: it deletes only expired replay data, never trades."""
    older_than = max(older_than, timedelta(hours=24))
    with tenancy.system_context():
        deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
