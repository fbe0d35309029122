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

A forbidden account (Tradier's 403: the token is fine, the account may not do this) is its own
trouble, `broker_forbidden`: polling goes on (the next clean read clears it), but new trades are
refused before they reach the broker (`broker_trading_check`) until then, or until the account's
Tradier settings (its token or account number) change (`broker_forbidden_lift`).

Kept in the cache: these are facts about now that the next cycle establishes again, and losing
them costs at most one more read. The history is in the audit log (each trade's attention event,
the trader's auth-failure webhook). An outage's start and end are told to the trader's channels
that chose it, once each (`alerts.broker_outage_tell`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import datetime

from django.core.cache import cache

from brokers.base import BrokerAuthError, BrokerForbidden, BrokerUnavailable
from trades.models import AccountSettings

from .alerts import broker_outage_tell
from .errors import BrokerAccountForbidden, BrokerDown, BrokerReauthenticate
from .orders import FORBIDDEN_TOLD

logger = logging.getLogger(__name__)

REAUTHENTICATE = "broker_reauthenticate"
UNAVAILABLE = "broker_unavailable"
FORBIDDEN = BrokerAccountForbidden.code
_KEPT_UNTIL_FIXED = (REAUTHENTICATE, FORBIDDEN)
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
    detail = FORBIDDEN_TOLD if code == FORBIDDEN else str(error)
    trouble = {"code": code, "detail": detail[:300], "broker_mode": mode, "since": at.isoformat()}
    known = cache.get(broker_trouble_key(account.owner_id, mode))
    if known and known["code"] == code:
        trouble["since"] = known["since"]  # the same trouble, still going on since then
    if code == REAUTHENTICATE:
        trouble["refused_token"] = _stored_token_digest(account, mode)
    if code == UNAVAILABLE and not (known and known["code"] == UNAVAILABLE):  # an outage starts: told once
        broker_outage_tell(owner_id=account.owner_id, mode=mode, since=trouble["since"], detail=detail)
    if code == FORBIDDEN:
        trouble["forbidden_settings"] = _broker_settings_digest(account, mode)
        logger.warning("broker: the %s account of user %s is forbidden (403); its new trades are refused: %s",
                       mode, account.owner_id, error)
    cache.set(broker_trouble_key(account.owner_id, mode), trouble,
              REFUSAL_KEPT_FOR if code in _KEPT_UNTIL_FIXED else OUTAGE_SHOWN_FOR)
    return code


def broker_trading_check(*, account: AccountSettings, mode: str) -> None:
    """Refuses (`BrokerAccountForbidden`) to open trades on an account the broker forbade, as long
    as its Tradier settings are the ones it forbade; nothing is sent to the broker meanwhile."""
    trouble = cache.get(broker_trouble_key(account.owner_id, mode))
    if not trouble or trouble.get("code") != FORBIDDEN:
        return
    if trouble.get("forbidden_settings") != _broker_settings_digest(account, mode):
        broker_trouble_clear(owner_id=account.owner_id, mode=mode)  # changed since: try again
        return
    raise BrokerAccountForbidden(trouble["detail"])


def broker_forbidden_lift(*, account: AccountSettings) -> None:
    """The trader saved their settings: a forbidden account whose token or account number changed
    since is tried again (its trouble goes, banner included)."""
    for mode in AccountSettings.TOKEN_FIELDS:
        trouble = cache.get(broker_trouble_key(account.owner_id, mode))
        if (trouble and trouble.get("code") == FORBIDDEN
                and trouble.get("forbidden_settings") != _broker_settings_digest(account, mode)):
            broker_trouble_clear(owner_id=account.owner_id, mode=mode)


def broker_trouble_clear(*, owner_id: int, mode: str, trouble: dict | None = None) -> None:
    """The cycle read the account cleanly: whatever was wrong (`trouble`, as it was recorded) is
    over; an outage's end is told to the channels that heard of its start."""
    cache.delete(broker_trouble_key(owner_id, mode))
    if trouble and trouble.get("code") == UNAVAILABLE:
        broker_outage_tell(owner_id=owner_id, mode=mode, since=trouble.get("since", ""), ended=True)


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
    if isinstance(error, BrokerForbidden | BrokerAccountForbidden):
        return FORBIDDEN
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


def _broker_settings_digest(account: AccountSettings, mode: str) -> str:
    """The account's Tradier settings for `mode` (stored token, account number) as a digest: any
    save of either makes a new one."""
    stored = getattr(account, AccountSettings.TOKEN_FIELDS.get(mode, ""), "") or ""
    material = f"{stored}\0{account.tradier_account_id}".encode()
    return hashlib.sha256(b"tradeoptions-forbidden-settings\0" + material).hexdigest()
