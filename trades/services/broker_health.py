"""Broker trouble the order cycle meets, told to the trader's page; and a refused token's pause.

The order cycle reads every account's orders each minute. When the broker was down or refused
the token, the trader used to learn it only from a request of their own failing. Now the cycle
records the trouble per trader and broker mode (`broker_trouble_record`), the page's top bar
shows it as a banner (`trades.selectors.broker_troubles`), and the next clean read clears it.

A refused token does not heal by itself, and asking again every minute only earns a 401 every
minute (for days, while finished trades are still watched). So the cycle stops polling the
account (`broker_polling_paused`) until the trader saves a token for that mode again: a new one,
or the same one once they fixed it at the broker. The trouble keeps a digest of the stored
(encrypted, and re-encrypted on every save) token to tell, never the token.

Kept in the cache: these are facts about now that the next cycle establishes again, and losing
them costs at most one more read. The history is in the audit log (each trade's attention event,
the trader's auth-failure webhook).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from django.core.cache import cache

from brokers.base import BrokerAuthError, BrokerUnavailable
from trades.models import AccountSettings

from .errors import BrokerDown, BrokerReauthenticate

REAUTHENTICATE = "broker_reauthenticate"
UNAVAILABLE = "broker_unavailable"
# An outage is said again by every failing cycle (a minute apart); if the monitor stops, the
# banner goes rather than claim what nobody checks any more.
OUTAGE_SHOWN_FOR = 10 * 60
REFUSAL_KEPT_FOR = 30 * 24 * 60 * 60


def broker_trouble_key(owner_id: int, mode: str) -> str:
    return f"broker-trouble:{owner_id}:{mode}"


def broker_trouble_record(*, account: AccountSettings, mode: str, error: Exception, at: datetime) -> str | None:
    """Record what kept the cycle from reading `account`'s orders in `mode`, if the trader should
    hear of it (a refused or missing token, an outage). Returns the trouble's code, or None."""
    code = _code(error)
    if code is None:
        return None
    trouble = {"code": code, "detail": str(error)[:300], "broker_mode": mode, "since": at.isoformat()}
    known = cache.get(broker_trouble_key(account.owner_id, mode))
    if known and known["code"] == code:
        trouble["since"] = known["since"]  # the same trouble, still going on since then
    if code == REAUTHENTICATE:
        trouble["refused_token"] = _stored_token_digest(account, mode)
    cache.set(broker_trouble_key(account.owner_id, mode), trouble,
              REFUSAL_KEPT_FOR if code == REAUTHENTICATE else OUTAGE_SHOWN_FOR)
    return code


def broker_trouble_clear(*, owner_id: int, mode: str) -> None:
    """The cycle read the account cleanly: whatever was wrong is over."""
    cache.delete(broker_trouble_key(owner_id, mode))


def broker_troubles_of(*, accounts: Iterable[tuple[int, str]]) -> dict[tuple[int, str], dict]:
    """The troubles recorded for these (owner id, broker mode) accounts, in one cache read: the
    order cycle asks once for all of them, not twice per account."""
    keys = {broker_trouble_key(owner_id, mode): (owner_id, mode) for owner_id, mode in accounts}
    return {keys[key]: trouble for key, trouble in cache.get_many(list(keys)).items()}


def broker_polling_paused(*, account: AccountSettings, mode: str, trouble: dict | None) -> bool:
    """True while the token the broker refused (or the lack of one) is still what is stored for
    `mode` (`trouble` as `broker_troubles_of` found it). Saving a token ends the pause: the next
    cycle tries it."""
    if not trouble or "refused_token" not in trouble:
        return False
    return trouble["refused_token"] == _stored_token_digest(account, mode)


def _code(error: Exception) -> str | None:
    if isinstance(error, BrokerAuthError | BrokerReauthenticate):
        return REAUTHENTICATE
    if isinstance(error, BrokerUnavailable | BrokerDown):
        return UNAVAILABLE
    return None


def _stored_token_digest(account: AccountSettings, mode: str) -> str:
    """Tells two saved tokens apart without decrypting or keeping either: the stored ciphertext
    is new on every save (Fernet), even of the same token."""
    stored = getattr(account, AccountSettings.TOKEN_FIELDS.get(mode, ""), "") or ""
    return hashlib.sha256(b"tradeoptions-refused-token\0" + stored.encode()).hexdigest()
