"""The one gate for a trade's state: `trade_transition`, and the audit log it writes to."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from brokers.models import BrokerMode
from tradeoptions.logs import about_trade
from trades.models import ALLOWED_TRANSITIONS, Actor, EventKind, PaperTrade, TradeEvent, TradeStatus

from . import (
    alerts,  # as a module: it reaches lifecycle again through the channels
    notifications,
)
from .errors import InvalidTradeInput, InvalidTransition, VersionConflict
from .exit_parts import final_part_record
from .legs import single_leg_fills_follow

logger = logging.getLogger(__name__)

# Fields a transition may never set through `changes`: they are the machine's own.
_PROTECTED = frozenset({"id", "pk", "owner", "owner_id", "status", "version", "created_at", "updated_at"})
# What a trade must carry in each state (the database's CHECK constraints say the same).
_REQUIRED = {
    TradeStatus.OPEN: ("entry_price", "entry_date"),
    TradeStatus.CLOSING: ("entry_price", "entry_date"),
    TradeStatus.CLOSED: ("entry_price", "entry_date", "close_price", "close_date", "close_reason"),
}


def event_record(
    *,
    trade: PaperTrade | None,
    kind: str,
    actor: str,
    actor_user: AbstractBaseUser | None = None,
    actor_label: str = "",
    old_status: str = "",
    new_status: str = "",
    payload: dict | None = None,
    owner_id: int | None = None,
) -> TradeEvent:
    """Append one audit event to the trade's log (in the caller's transaction and tenant context).
    Account-level events (settings) pass `trade=None` and the `owner_id`. Every event of a live
    (real-money) trade says so in its payload (`"live": true`), whoever wrote it."""
    payload = dict(payload or {})
    if trade is not None and trade.broker_mode == BrokerMode.TRADIER_LIVE:
        payload.setdefault("live", True)
    return TradeEvent.objects.create(
        owner_id=trade.owner_id if trade is not None else owner_id,
        trade=trade,
        kind=kind,
        actor=actor,
        actor_user=actor_user,
        actor_label=actor_label,
        old_status=old_status,
        new_status=new_status,
        payload=jsonable(payload),
    )


def trade_transition(
    *,
    trade_id: int,
    to: str,
    actor: str,
    actor_user: AbstractBaseUser | None = None,
    actor_label: str = "",
    expected_version: int | None = None,
    kind: str = EventKind.STATE_CHANGE,
    payload: dict | None = None,
    changes: dict | None = None,
) -> PaperTrade:
    """Move a trade to `to` (or record a change in its current state), or raise and change nothing.

    Locks the row, checks the client's `expected_version` (a stale one raises VersionConflict
    carrying the current trade), checks `ALLOWED_TRANSITIONS` and what the new state must carry,
    writes with `UPDATE … WHERE id = … AND version = …`, bumps `version` and appends the event,
    all in one transaction. `close_reason` is set exactly once: when the trade becomes CLOSED.
    """
    changes = dict(changes or {})
    if forbidden := _PROTECTED & changes.keys():
        raise ValueError(f"A transition sets {sorted(forbidden)} itself.")
    to = TradeStatus(to)
    with about_trade(trade_id), transaction.atomic():
        current = PaperTrade.objects.select_for_update().get(pk=trade_id)
        if expected_version is not None and current.version != expected_version:
            raise VersionConflict(
                f"The trade changed since you loaded it (your version {expected_version}, now {current.version}).",
                trade=current,
            )
        _check_allowed(current, to, changes)
        now = timezone.now()
        updated = PaperTrade.objects.filter(pk=trade_id, version=current.version).update(
            status=to, version=F("version") + 1, updated_at=now, **changes
        )
        if updated != 1:  # impossible under the row lock; never write an event for a change not made
            raise VersionConflict("The trade changed while it was being updated.", trade=current)
        old_status = current.status
        held_before = current.held_qty
        for name, value in changes.items():
            setattr(current, name, value)
        current.status, current.version, current.updated_at = to, current.version + 1, now
        single_leg_fills_follow(trade=current, changes=changes)
        event_record(
            trade=current, kind=kind, actor=actor, actor_user=actor_user, actor_label=actor_label,
            old_status=old_status, new_status=to, payload={**(payload or {}), **_changed(changes)},
        )
        if to == TradeStatus.CLOSED and old_status != TradeStatus.CLOSED:
            final_part_record(current, held=held_before)  # the last part: the parts add up to the trade
            alerts.daily_loss_limit_check(owner_id=current.owner_id, at=current.close_date or now)
        logger.info("trade %s: %s -> %s (%s by %s)", trade_id, old_status, to, kind, actor)
        notifications.trade_transition_announce(trade=current, old_status=old_status,  # sent after commit
                                                attention=changes.get("attention_reason"))
    return current


# What may change on a trade whatever its state, a finished one included: what a person must look at.
_FLAGS = frozenset({"attention_reason", "oversold_qty"})


def trade_flag(*, trade_id: int, changes: dict, actor: str, actor_label: str = "",
               payload: dict | None = None) -> PaperTrade:
    """Mark a trade for a person's attention, in any state (a CLOSED trade whose broker account
    went short needs it most). Only the flags change; the row is locked, its version bumped, and
    an ATTENTION_NEEDED event written, as `trade_transition` does for a state."""
    if not changes or set(changes) - _FLAGS:
        raise ValueError(f"trade_flag sets only {sorted(_FLAGS)}.")
    with about_trade(trade_id), transaction.atomic():
        current = PaperTrade.objects.select_for_update().get(pk=trade_id)
        now = timezone.now()
        PaperTrade.objects.filter(pk=trade_id).update(version=F("version") + 1, updated_at=now, **changes)
        for name, value in changes.items():
            setattr(current, name, value)
        current.version, current.updated_at = current.version + 1, now
        event_record(trade=current, kind=EventKind.ATTENTION_NEEDED, actor=actor, actor_label=actor_label,
                     old_status=current.status, new_status=current.status,
                     payload={**(payload or {}), **_changed(changes)})
        logger.warning("trade %s flagged: %s", trade_id, changes)
    return current


def _check_allowed(current: PaperTrade, to: str, changes: dict) -> None:
    if to not in ALLOWED_TRANSITIONS[current.status]:
        raise InvalidTransition(f"A {current.status} trade cannot become {to}.", trade=current)
    closing_now = to == TradeStatus.CLOSED and current.status != TradeStatus.CLOSED
    if "close_reason" in changes and not closing_now:
        raise InvalidTransition("A close reason is set once, when the trade closes.", trade=current)
    if closing_now and (current.close_reason or not changes.get("close_reason")):
        raise InvalidTransition("A trade closes with exactly one close reason.", trade=current)
    if to == TradeStatus.CLOSING and current.part_pending_qty and changes.get("part_pending_qty") != 0:
        # its sell and the rest's bracket are at the broker: a close now could sell the part twice
        raise InvalidTransition("A part of this position is being sold: close the rest in a moment, once that "
                                "is done.", trade=current)
    missing = [name for name in _REQUIRED.get(to, ()) if changes.get(name, getattr(current, name)) in (None, "")]
    if missing:
        raise InvalidTransition(f"A {to} trade needs {', '.join(missing)}.", trade=current)


def _changed(changes: dict) -> dict:
    return {"changes": changes} if changes else {}


def jsonable(value):
    """Decimals, dates and nested containers as JSON-safe values (Decimals as exact strings)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


# What staff may change from the ops admin: what the trader or the scanner said about the trade,
# and the note asking a person to look at it. Not what the broker holds (the contract, the
# quantity, the brackets, the orders), not what the monitor writes (marks, P&L, forensics), and
# never the status: every move out of a state needs the broker (a close, a cancel), so it goes
# through the trade's own actions, which call `trade_transition` after talking to the broker.
STAFF_EDITABLE_FIELDS = (
    "strategy", "card_score", "ai_score", "ai_verdict", "gate_verdict", "technical_score", "sentiment_score",
    "delta_at_entry", "iv_at_entry", "signals_snapshot", "market_regime", "order_book_state", "ai_reasoning_log",
    "attention_reason",
)


def trade_staff_edit(*, staff_user: AbstractBaseUser, trade_id: int, version: int, changes: dict) -> PaperTrade:
    """Apply a staff change from the ops admin through the one gate (`trade_transition`, staying
    in the trade's state), or refuse it whole and change nothing.

    Refuses a status change and any field outside STAFF_EDITABLE_FIELDS (InvalidTradeInput: they
    need the broker or belong to the monitor), a final trade (InvalidTransition: the transition
    table leads nowhere from a final state, so its record stays as it closed, for staff too), and a
    stale `version` (VersionConflict). The event carries the new values and, under "from", the old.
    The caller runs in the system context (the admin is staff-only and cross-tenant).
    """
    refused = sorted(set(changes) - set(STAFF_EDITABLE_FIELDS))
    if refused:
        raise InvalidTradeInput({name: ["Not editable by staff: it needs the broker or belongs to the monitor."]
                                 for name in refused})
    with transaction.atomic():
        before = PaperTrade.objects.select_for_update().get(pk=trade_id)
        changes = {name: value for name, value in changes.items() if getattr(before, name) != value}
        if not changes:
            return before  # nothing to record
        return trade_transition(
            trade_id=trade_id, to=before.status, expected_version=version, kind=EventKind.STAFF_EDIT,
            actor=Actor.STAFF, actor_user=staff_user, actor_label="admin", changes=changes,
            payload={"from": {name: getattr(before, name) for name in changes}},
        )
