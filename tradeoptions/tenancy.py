"""Row-level security context: whose rows the current transaction may see.

Every user-owned table has PostgreSQL policies comparing its `owner_id` with the
transaction-local setting `app.user_id` (see the apps' row-level security migrations). No
setting means no rows.
Settings are applied with `set_config(..., is_local => true)` and bound parameters, so they
end with the transaction and can never leak to the next request or task on a pooled
connection.

`system_context()` lets a job see every tenant. Only code that must (the monitor cycle, the
staff-only admin, ops commands) enters it, and each such place says why.
"""

from contextlib import ExitStack, contextmanager

from django.db import connection, transaction

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


def current_user_id() -> int | None:
    value = _read(USER_SETTING)
    return int(value) if value else None


def in_system_context() -> bool:
    return _read(SYSTEM_SETTING) == "on"


class TenantContextMiddleware:
    """Wraps each page request in one transaction scoped to the session user's rows.

    The transaction opens once the view is known (`process_view`) and closes when the response
    is ready. Views marked with Django's `transaction.non_atomic_requests` own their transactions
    and are left alone: every API view is (its one policy is `tradeoptions.api.OwnedViewSetMixin`).
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
