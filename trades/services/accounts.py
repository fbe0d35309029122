"""Traders and their account settings: broker, tokens (write-only) and risk limits."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from brokers import crypto
from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades.models import (
    MAX_COMMISSION_PER_CONTRACT,
    AccountSettings,
    Actor,
    EventKind,
    NotificationChannel,
    PushSubscription,
)

from .broker_health import broker_forbidden_lift
from .errors import InvalidTradeInput
from .exit_policies import exit_policy_checked
from .lifecycle import event_record, jsonable
from .notifications import UnsafeWebhookTarget, webhook_url_check
from .risk import pct_errors

LIVE_CONFIRMATION = "LIVE TRADING"
# Switching naked short options on is repeated in words, as the live switch is: their loss is unlimited.
NAKED_SHORTS_CONFIRMATION = "NAKED SHORTS"
# What a trader may change through the API besides tokens (never the encrypted columns).
EDITABLE = ("broker_mode", "tradier_account_id", "account_balance", "max_positions", "daily_loss_limit",
            "heat_limit_pct", "auto_refresh", "browser_notifications", "webhook_url", "strategy_presets",
            "commission_per_contract", "daily_report", "weekly_report", "allow_naked_short_options")
COMMISSION_RANGE = (
    f"A commission per contract is between $0 and ${MAX_COMMISSION_PER_CONTRACT:.2f}, e.g. 0.65.")
MAX_PRESETS = 50
PRESET_KEYS = ("sl_pct", "tp_pct")
# Recorded in the audit log as changed, never by value: a webhook URL may carry a capability.
UNLOGGED_VALUES = frozenset({"webhook_url"})


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
        account, _ = AccountSettings.objects.get_or_create(owner=user)
    return account


def account_settings_update(
    *,
    user: AbstractBaseUser,
    changes: dict,
    sandbox_token: str | None = None,
    live_token: str | None = None,
    confirmation: str = "",
    staff_user: AbstractBaseUser | None = None,
) -> AccountSettings:
    """Change the user's settings. Tokens: None keeps, "" removes, anything else replaces.

    Switching to live trading needs three things at once: the server allows it
    (ALLOW_LIVE_TRADING), a live token is stored or sent along, and `confirmation` repeats the
    words LIVE TRADING. A webhook URL must be one we send to (see `notifications`): its host is
    resolved first, then the settings are written in a transaction of their own, so call this
    outside any transaction (a slow resolver must not hold one open). Every change is written to
    the audit log, tokens only as set/removed, the webhook URL only as changed, the account number
    masked to its last four characters.

    `staff_user` is the staff member changing a trader's settings from the ops admin: the same
    rules apply (the live switch too), and the audit event names them as its actor.
    """
    if unknown := set(changes) - set(EDITABLE):
        raise ValueError(f"Not editable: {sorted(unknown)}")
    if "webhook_url" in changes:
        changes = {**changes, "webhook_url": _checked_webhook_url(changes["webhook_url"], owner_id=user.pk)}
    if "strategy_presets" in changes:
        changes = {**changes, "strategy_presets": strategy_presets_checked(changes["strategy_presets"])}
    if changes.get("commission_per_contract") is not None:
        commission_per_contract_check(changes["commission_per_contract"])
    with tenancy.acting_as(user.pk):
        account_settings_for(user=user)
        account = AccountSettings.objects.select_for_update().get(owner=user)
        before = {name: getattr(account, name) for name in EDITABLE}
        tokens = {}
        for mode, token in ((BrokerMode.TRADIER_SANDBOX, sandbox_token), (BrokerMode.TRADIER_LIVE, live_token)):
            if token is not None:
                account.set_broker_token(mode, token)
                tokens[mode.value] = "set" if token else "removed"
        for name, value in changes.items():
            setattr(account, name, value)
        _check_mode(
            mode=account.broker_mode, switching=before["broker_mode"] != account.broker_mode,
            has_token={mode: account.has_broker_token(mode) for mode in AccountSettings.TOKEN_FIELDS},
            account_id=account.tradier_account_id, confirmation=confirmation,
        )
        _check_naked(switching_on=account.allow_naked_short_options and not before["allow_naked_short_options"],
                     confirmation=confirmation)
        account.save()
        after = {name: getattr(account, name) for name in EDITABLE}
        if payload := _settings_changed_payload(before, after, tokens):
            event_record(
                trade=None, owner_id=user.pk, kind=EventKind.SETTINGS_CHANGED,
                actor=Actor.STAFF if staff_user is not None else Actor.USER, actor_user=staff_user or user,
                actor_label="admin" if staff_user is not None else "settings", payload=payload,
            )
    broker_forbidden_lift(account=account)  # a new token or account number: Tradier is asked again
    return account


def account_settings_check(
    *,
    account: AccountSettings,
    changes: dict,
    sandbox_token: str | None = None,
    live_token: str | None = None,
    confirmation: str = "",
) -> None:
    """Raise InvalidTradeInput, by field, if `account_settings_update` would refuse these changes
    to `account`; write nothing. For a form that shows its errors before saving (the ops admin);
    the update checks again under the row lock."""
    if changes.get("commission_per_contract") is not None:
        commission_per_contract_check(changes["commission_per_contract"])
    mode = changes.get("broker_mode", account.broker_mode)
    tokens = {BrokerMode.TRADIER_SANDBOX: sandbox_token, BrokerMode.TRADIER_LIVE: live_token}
    _check_mode(
        mode=mode, switching=mode != account.broker_mode,
        has_token={key: bool(token) if token is not None else account.has_broker_token(key)
                   for key, token in tokens.items()},
        account_id=changes.get("tradier_account_id", account.tradier_account_id), confirmation=confirmation,
    )
    _check_naked(switching_on=bool(changes.get("allow_naked_short_options")) and not account.allow_naked_short_options,
                 confirmation=confirmation)


def _check_naked(*, switching_on: bool, confirmation: str) -> None:
    """Naked short options lose without limit: switching them on repeats NAKED SHORTS (switch it
    and live trading one at a time: each has its own words)."""
    if switching_on and (confirmation or "").strip() != NAKED_SHORTS_CONFIRMATION:
        raise InvalidTradeInput({"confirmation": [
            f"Type {NAKED_SHORTS_CONFIRMATION} to confirm that options may be sold with no bought option covering "
            "them: their loss is unlimited, and the broker must allow uncovered writing too."]})


def account_number_masked(number: str) -> str:
    """An account number as the audit log keeps it: its last four characters ("…5151"); one of four
    characters or fewer is not shown at all ("…"). Masking a masked number changes nothing."""
    if not number:
        return ""
    return "…" + number[-4:] if len(number) > 4 else "…"


def _settings_changed_payload(before: dict, after: dict, tokens: dict) -> dict:
    """The SETTINGS_CHANGED event's payload, or {} when nothing changed. Tokens appear only as
    set/removed, the webhook URL only as changed, the account number masked: the audit log is
    append-only, so whatever is written here is kept for good."""
    changed = {}
    for name in EDITABLE:
        if before[name] == after[name]:
            continue
        if name in UNLOGGED_VALUES:
            changed[name] = "changed"
        elif name == "tradier_account_id":
            changed[name] = {"from": account_number_masked(before[name]), "to": account_number_masked(after[name])}
        else:
            changed[name] = {"from": before[name], "to": after[name]}
    return jsonable({"changes": changed, "tokens": tokens}) if changed or tokens else {}


def _check_mode(*, mode: str, switching: bool, has_token: dict[str, bool], account_id: str,
                confirmation: str) -> None:
    errors: dict[str, list[str]] = {}
    if mode == BrokerMode.TRADIER_LIVE and switching:
        if not settings.ALLOW_LIVE_TRADING:
            errors["broker_mode"] = ["Live trading is switched off on this server (ALLOW_LIVE_TRADING)."]
        elif not has_token[BrokerMode.TRADIER_LIVE]:
            errors["tradier_live_token"] = ["Switching to live trading needs a Tradier live token."]
        if (confirmation or "").strip() != LIVE_CONFIRMATION:
            errors["confirmation"] = [f"Type {LIVE_CONFIRMATION} to confirm that real money will be traded."]
    elif mode == BrokerMode.TRADIER_SANDBOX and switching and not settings.ALLOW_TRADIER_SANDBOX:
        errors["broker_mode"] = ["The Tradier sandbox is switched off on this server (ALLOW_TRADIER_SANDBOX)."]
    elif mode == BrokerMode.TRADIER_SANDBOX and switching and not has_token[BrokerMode.TRADIER_SANDBOX]:
        errors["tradier_sandbox_token"] = ["The Tradier sandbox needs a token."]
    if mode != BrokerMode.LOCAL_PAPER and not account_id:
        errors["tradier_account_id"] = ["Tradier needs the account id the orders go to."]
    if errors:
        raise InvalidTradeInput(errors)


def commission_per_contract_check(rate: Decimal) -> None:
    """InvalidTradeInput on the field unless 0 <= rate <= $10 (more is a typo, not a broker)."""
    if not (isinstance(rate, Decimal) and rate.is_finite() and 0 <= rate <= MAX_COMMISSION_PER_CONTRACT):
        raise InvalidTradeInput({"commission_per_contract": [COMMISSION_RANGE]})


def strategy_presets_checked(presets) -> dict[str, dict]:
    """Presets as stored: {strategy: {"sl_pct": "30", "tp_pct": "60"}}, percentages as exact decimal
    text, each within the range a trade's own percentage must respect. InvalidTradeInput on the
    `strategy_presets` field otherwise, every problem at once, in the trader's words."""
    problems: list[str] = []
    if not isinstance(presets, dict):
        raise InvalidTradeInput({"strategy_presets": [
            "Give presets by strategy, each with a stop-loss percentage, a take-profit percentage or both."]})
    if len(presets) > MAX_PRESETS:
        problems.append(f"At most {MAX_PRESETS} strategies can have presets.")
    checked: dict[str, dict[str, str]] = {}
    for name, preset in presets.items():
        label = name.strip()
        if not label or len(label) > 64 or "\x00" in label:
            problems.append("A strategy name must be 1 to 64 characters.")
            continue
        if not isinstance(preset, dict) or not preset or set(preset) - {*PRESET_KEYS, "exit_policy"}:
            problems.append(f"{label}: give a stop-loss percentage, a take-profit percentage or both, and nothing "
                            f"else (an exit policy may go with them).")
            continue
        preset = dict(preset)
        policy = _preset_policy(label, preset.pop("exit_policy", None), problems)
        values = {}
        for key, value in preset.items():
            try:
                number = isinstance(value, str | int | float) and not isinstance(value, bool)
                values[key] = Decimal(str(value).strip()) if number else None
            except InvalidOperation:
                values[key] = None
            if values[key] is None or not values[key].is_finite():
                problems.append(f"{label}: a percentage must be a number such as \"30\".")
                values.pop(key)
        for texts in pct_errors(sl_pct=values.get("sl_pct"), tp_pct=values.get("tp_pct")).values():
            problems.extend(f"{label}: {text}" for text in texts)
        checked[label] = {key: format(value.normalize(), "f") for key, value in sorted(values.items())}
        if policy:
            checked[label]["exit_policy"] = policy
    if problems:
        raise InvalidTradeInput({"strategy_presets": problems})
    return checked


def _preset_policy(label: str, raw, problems: list[str]) -> dict:
    """A strategy's preset exit policy, checked as a trade's own; its problems named by strategy."""
    try:
        return exit_policy_checked(raw)
    except InvalidTradeInput as error:
        problems.extend(f"{label}: {text}" for text in error.field_errors["exit_policy"])
        return {}


def _checked_webhook_url(url: str, *, owner_id: int) -> str:
    """Checked before any transaction opens: it resolves the host name, which may take a while.
    Sending checks the URL again against what the name resolves to then (SSRF guard)."""
    url = url.strip()
    if url:
        try:
            webhook_url_check(url, owner_id=owner_id)
        except UnsafeWebhookTarget as refused:
            raise InvalidTradeInput({"webhook_url": [str(refused)]}) from None
    return url


@transaction.atomic
def encrypted_secrets_rotate() -> int:
    """Re-encrypt every stored secret (broker tokens, webhook signing secrets, notification
    channel URLs, Web Push subscriptions) with the current
    key, in one transaction.

    Runs in the system context: rotation is an ops task over every tenant's settings. Safe to
    re-run (a secret already under the current key is simply re-encrypted). Returns how many
    secrets were rotated.
    """
    rotated = 0
    with tenancy.system_context():
        for account in AccountSettings.objects.select_for_update().order_by("pk"):
            fields = [name for name in AccountSettings.ENCRYPTED_FIELDS if getattr(account, name)]
            for name in fields:
                setattr(account, name, crypto.rotate(getattr(account, name)))
            if fields:
                account.save(update_fields=[*fields, "updated_at"])
                rotated += len(fields)
        for channel in NotificationChannel.objects.select_for_update().order_by("pk"):
            channel.url_encrypted = crypto.rotate(channel.url_encrypted)
            channel.save(update_fields=["url_encrypted", "updated_at"])
            rotated += 1
        for subscription in PushSubscription.objects.select_for_update().order_by("pk"):
            subscription.subscription_encrypted = crypto.rotate(subscription.subscription_encrypted)
            subscription.save(update_fields=["subscription_encrypted"])
            rotated += 1
    return rotated
