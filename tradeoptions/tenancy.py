"""Row-level security context: whose rows the current transaction may see.

Every user-owned table has two PostgreSQL policies (tradeoptions/migrations/0001 and each app's
"signed tenant context" migration), and no setting means no rows:

* tenant: `owner_id = app_user_id()`. The function returns `app.user_id` only if `app.user_sig`
  is its HMAC under a key that only these Python processes and a schema the application's roles
  cannot read hold. Arbitrary SQL on the web role (an injection, a leaked credential) can set any
  `app.user_id` but cannot sign it. The HMAC also covers the backend's pid and the transaction's
  start, so a signature is good for one transaction only: one seen elsewhere (pg_stat_activity
  shows other sessions' statements, parameters included) is useless.
* system: `app.system = 'on'`, heeded only for members of the `tradeoptions_system` group: the
  worker role (Celery, beat, ops commands) and the schema owner, never the web role. Entering it
  on a role outside the group raises instead of silently seeing no rows.

Settings are applied with `set_config(..., is_local => true)` and bound parameters, so they end
with the transaction and can never leak to the next request or task on a pooled connection. The
pid and the transaction's start are read in the same round trip as the previous settings.

`system_context()` lets a job see every tenant. Only code that must (the monitor cycle, the
staff-only admin, ops commands) enters it, and each such place says why.
"""

import hashlib
import hmac
from contextlib import ExitStack, contextmanager

from django.conf import settings
from django.db import connection, transaction

USER_SETTING = "app.user_id"
SIGNATURE_SETTING = "app.user_sig"
SYSTEM_SETTING = "app.system"
SYSTEM_GROUP = "tradeoptions_system"
_SETTINGS = (USER_SETTING, SIGNATURE_SETTING, SYSTEM_SETTING)
# The function app_user_id() computes exactly these two values for the message it checks.
_STATE = (
    "SELECT " + ", ".join(f"COALESCE(current_setting('{name}', true), '')" for name in _SETTINGS)
    + ", pg_backend_pid(), (extract(epoch FROM now()) * 1000000)::bigint"
)
_STATE_AND_GROUP = _STATE + f", pg_has_role(current_user, '{SYSTEM_GROUP}', 'member')"
_KEY_LABEL = b"tradeoptions tenant context key"
_HMAC_BLOCK = 64  # SHA-256's block size


class SystemContextRefused(RuntimeError):
    """The connection's role may not see every tenant (it is not in the system group)."""


def context_key() -> bytes:
    """TENANT_CONTEXT_KEY, or one derived from SECRET_KEY: never the SECRET_KEY itself."""
    if settings.TENANT_CONTEXT_KEY:
        return settings.TENANT_CONTEXT_KEY.encode()
    return hmac.new(settings.SECRET_KEY.encode(), _KEY_LABEL, hashlib.sha256).digest()


def context_key_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's precomputed inner and outer pads (RFC 2104): all PostgreSQL needs, with sha256(),
    to check a signature without pgcrypto (which embedded PostgreSQL lacks)."""
    if len(key) > _HMAC_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_HMAC_BLOCK, b"\0")
    return bytes(byte ^ 0x36 for byte in key), bytes(byte ^ 0x5C for byte in key)


def sign(user_id: str, backend_pid: int, transaction_start: int) -> str:
    message = f"{user_id}:{backend_pid}:{transaction_start}".encode()
    return hmac.new(context_key(), message, hashlib.sha256).hexdigest()


def _write(values: dict[str, str]) -> None:
    """Every setting in one round trip, with bound parameters (never formatted into the SQL)."""
    calls = ", ".join(["set_config(%s, %s, true)"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {calls}", [item for pair in values.items() for item in pair])


@contextmanager
def _context(user_id: int | None, *, system: bool = False):
    """Apply a context for the block inside a transaction, then put the previous one back.

    If the block raises, the savepoint rollback already restores the settings (PostgreSQL
    rolls back set_config with the transaction), so nothing is written on the way out.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_STATE_AND_GROUP if system else _STATE)
            row = cursor.fetchone()
        previous, (backend_pid, started) = row[:3], row[3:5]
        if system and not row[5]:
            raise SystemContextRefused(
                f"The database role of this process is not a member of {SYSTEM_GROUP}, so it may not see "
                "every tenant. Celery workers, beat and ops commands connect with DATABASE_WORKER_URL."
            )
        user = "" if user_id is None else str(int(user_id))
        _write({
            USER_SETTING: user,
            SIGNATURE_SETTING: sign(user, backend_pid, started) if user else "",
            SYSTEM_SETTING: "on" if system else "",
        })
        yield
        if not connection.needs_rollback:  # a block marked for rollback takes its settings with it
            _write(dict(zip(_SETTINGS, previous, strict=True)))


def acting_as(user_id: int | None):
    """Rows of `user_id` only (None: no rows at all). Clears any system context."""
    return _context(user_id)


def system_context():
    """Every tenant's rows. Never reachable from a user's request; callers say why they need it."""
    return _context(None, system=True)


def _read(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(current_setting(%s, true), '')", [name])
        return cursor.fetchone()[0]


def current_user_id() -> int | None:
    value = _read(USER_SETTING)
    return int(value) if value else None


def in_system_context() -> bool:
    return _read(SYSTEM_SETTING) == "on"


class TenantContextMiddleware:
    """Wraps each page request in one transaction scoped to the session user's rows.

    The transaction opens once the view is known (`process_view`) and closes when the response
    is ready. Views marked with Django's `transaction.non_atomic_requests` own their transactions
    and are left alone: every API view is (its one policy is `tradeoptions.api.OwnedViewSetMixin`),
    and so is the staff admin (tradeoptions/admin.py).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with ExitStack() as request.tenant_block:
            return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if "default" in getattr(view_func, "_non_atomic_requests", ()):
            return None
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        request.tenant_block.enter_context(acting_as(user_id))
        return None
