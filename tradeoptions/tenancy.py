"""Row-level security context: whose rows the current transaction may see.

Every user-owned table has PostgreSQL policies comparing its `owner_id` with the
transaction-local setting `app.user_id` (see `tradeoptions.rls`). No setting means no rows.
Settings are applied with `set_config(..., is_local => true)` and bound parameters, so they
end with the transaction and can never leak to the next request or task on a pooled
connection.

`system_context()` lets a job see every tenant. Only code that must (the monitor cycle, the
staff-only admin, ops commands) enters it, and each such place says why.
"""

from contextlib import contextmanager

from django.db import connection, transaction
from django.urls import Resolver404, resolve

USER_SETTING = "app.user_id"
SYSTEM_SETTING = "app.system"


def _read(name: str) -> str:
    return _read_all([name])[name]


def _read_all(names: list[str]) -> dict[str, str]:
    """Every setting in one round trip."""
    columns = ", ".join(["COALESCE(current_setting(%s, true), '')"] * len(names))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}", names)
        return dict(zip(names, cursor.fetchone(), strict=True))


def _write(values: dict[str, str]) -> None:
    """Every setting in one round trip, with bound parameters (never formatted into the SQL)."""
    calls = ", ".join(["set_config(%s, %s, true)"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {calls}", [item for pair in values.items() for item in pair])


@contextmanager
def _context(values: dict[str, str]):
    """Apply settings for the block inside a transaction, then put the previous ones back.

    If the block raises, the savepoint rollback already restores the settings (PostgreSQL
    rolls back set_config with the transaction), so nothing is written on the way out.
    """
    with transaction.atomic():
        previous = _read_all(list(values))
        _write(values)
        yield
        if not connection.needs_rollback:  # a block marked for rollback takes its settings with it
            _write(previous)


def acting_as(user_id: int | None):
    """Rows of `user_id` only (None: no rows at all). Clears any system context."""
    return _context({USER_SETTING: "" if user_id is None else str(int(user_id)), SYSTEM_SETTING: ""})


def system_context():
    """Every tenant's rows. Never reachable from a user's request; callers say why they need it."""
    return _context({USER_SETTING: "", SYSTEM_SETTING: "on"})


def scope_transaction_to(user_id: int | None) -> None:
    """Narrow the current transaction to `user_id` (None: nobody) once a request is authenticated.

    Only valid inside a transaction that an enclosing `acting_as` opened: that block restores
    the previous settings when it ends.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("scope_transaction_to() needs an open transaction (TenantContextMiddleware).")
    _write({USER_SETTING: "" if user_id is None else str(int(user_id)), SYSTEM_SETTING: ""})


def current_user_id() -> int | None:
    value = _read(USER_SETTING)
    return int(value) if value else None


def in_system_context() -> bool:
    return _read(SYSTEM_SETTING) == "on"


class TenantContextMiddleware:
    """Wraps each request in one transaction scoped to the session user's rows.

    API requests authenticated by token are scoped again by the API base view once DRF has
    authenticated them (see `trades.api.OwnedViewSetMixin`); until then only the session user,
    or nobody, is in context. Views that commit in steps are left to open their own blocks.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _commits_in_steps(request):
            return self.get_response(request)  # its tenant blocks are its own (see OwnedViewSetMixin)
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else None
        with acting_as(user_id):
            return self.get_response(request)


def _commits_in_steps(request) -> bool:
    """Views marked `transaction.non_atomic_requests` commit in steps, each in its own tenant
    block; wrapping them in the request transaction would undo exactly that."""
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return False
    return "default" in getattr(view, "_non_atomic_requests", ())
