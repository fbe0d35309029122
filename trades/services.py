"""Writes of the trades app. Each function takes the acting user explicitly and is atomic."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from brokers import crypto
from tradeoptions import tenancy

from .models import AccountSettings, Actor, EventKind, PaperTrade, TradeEvent


@transaction.atomic
def user_create(*, username: str, password: str, email: str = "", only_if_missing: bool = False):
    """A trader with their account settings. Returns (user, created)."""
    User = get_user_model()
    if only_if_missing and (existing := User.objects.filter(username=username).first()):
        return existing, False
    user = User.objects.create_user(username=username, password=password, email=email)
    with tenancy.acting_as(user.pk):
        AccountSettings.objects.create(owner=user)
    return user, True


def account_settings_for(*, user: AbstractBaseUser) -> AccountSettings:
    """The user's settings row, created with the defaults on first use."""
    with tenancy.acting_as(user.pk):
        settings, _ = AccountSettings.objects.get_or_create(owner=user)
    return settings


def event_record(
    *,
    trade: PaperTrade,
    kind: str,
    actor: str,
    actor_user: AbstractBaseUser | None = None,
    actor_label: str = "",
    old_status: str = "",
    new_status: str = "",
    payload: dict | None = None,
) -> TradeEvent:
    """Append one audit event to the trade's log (in the caller's transaction and tenant context)."""
    return TradeEvent.objects.create(
        owner_id=trade.owner_id,
        trade=trade,
        kind=kind,
        actor=actor,
        actor_user=actor_user,
        actor_label=actor_label,
        old_status=old_status,
        new_status=new_status,
        payload=payload or {},
    )


@transaction.atomic
def trade_staff_edit(*, staff_user: AbstractBaseUser, trade: PaperTrade, changed_fields: list[str]) -> PaperTrade:
    """Save a staff change from the ops admin and write what changed, from what, to the event log.

    The caller runs in the system context (the admin is staff-only and cross-tenant).
    """
    before = PaperTrade.objects.select_for_update().get(pk=trade.pk)
    trade.version = before.version + 1
    trade.save()
    trade.refresh_from_db()  # compare stored values, as the database rounded them
    changes = {
        name: {"from": _jsonable(getattr(before, name)), "to": _jsonable(getattr(trade, name))}
        for name in changed_fields
        if getattr(before, name) != getattr(trade, name)
    }
    event_record(
        trade=trade,
        kind=EventKind.STAFF_EDIT,
        actor=Actor.STAFF,
        actor_user=staff_user,
        actor_label="admin",
        old_status=before.status,
        new_status=trade.status,
        payload={"changes": changes},
    )
    return trade


def _jsonable(value):
    return value if value is None or isinstance(value, bool | int | str | dict | list) else str(value)


@transaction.atomic
def broker_tokens_rotate() -> int:
    """Re-encrypt every stored broker token with the current key, in one transaction.

    Runs in the system context: rotation is an ops task over every tenant's settings. Safe to
    re-run (a token already under the current key is simply re-encrypted). Returns how many
    tokens were rotated.
    """
    rotated = 0
    with tenancy.system_context():
        for account in AccountSettings.objects.select_for_update().order_by("pk"):
            fields = [name for name in AccountSettings.TOKEN_FIELDS.values() if getattr(account, name)]
            for name in fields:
                setattr(account, name, crypto.rotate(getattr(account, name)))
            if fields:
                account.save(update_fields=[*fields, "updated_at"])
                rotated += len(fields)
    return rotated
