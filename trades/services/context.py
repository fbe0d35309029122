"""Context at entry: what the scanner sent is checked and kept; what it did not send is collected.

Four JSON parts of a trade describe the moment it was opened: `signals_snapshot`,
`market_regime`, `order_book_state` and `ai_reasoning_log`. The scanner's own parts win and are
stored as sent, after two checks made with the rest of the open's validation (400, per field):
- the AI reasoning log must fit `ENTRY_AI_LOG_MAX_BYTES` of JSON;
- nothing may be as of a time after the entry (`as_of`, at the top of a part or one level down,
  or in each object of a part sent as an array):
  the data set learns from what was known at entry, never from the future. The scanner stamps
  `as_of` by its own clock, so up to ENTRY_CONTEXT_CLOCK_SKEW_SECONDS after the entry is taken as
  clock skew (documented in docs/dataset.md); anything later is refused.

The order book is taken by the open itself from the very quote the entry was priced from.
Indicators and the market regime need bars and math the broker order must not wait for: after
the open, the layer that owns market data is asked (through the collector it registered with
`use_entry_context_collector`, since trades cannot import monitoring) to collect them as of the
entry, and writes them back with `trade_context_fill`, only into parts still empty.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.db import transaction

from brokers.base import Quote
from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade

from .lifecycle import event_record, jsonable

logger = logging.getLogger(__name__)

CONTEXT_PARTS = ("signals_snapshot", "market_regime", "order_book_state", "ai_reasoning_log")
DEFAULT_AI_LOG_MAX_BYTES = 64 * 1024
DEFAULT_CLOCK_SKEW_SECONDS = 5


class EntryContextCollector(Protocol):
    def __call__(self, *, trade_id: int, owner_id: int, entry_at: datetime) -> None:
        """Arrange for the context of the trade to be collected as of `entry_at` (e.g. queue a task)."""
        ...


_collector: EntryContextCollector | None = None


def use_entry_context_collector(collector: EntryContextCollector | None) -> None:
    """Called once at start-up by the layer that owns market data."""
    global _collector
    _collector = collector


def context_errors(context: dict, *, entry_at: datetime) -> dict[str, list[str]]:
    """Field errors of the scanner's context parts: an oversized AI log, or data as of after the entry."""
    errors: dict[str, list[str]] = {}
    log = context.get("ai_reasoning_log")
    limit = getattr(settings, "ENTRY_AI_LOG_MAX_BYTES", DEFAULT_AI_LOG_MAX_BYTES)
    if log is not None and (size := len(json.dumps(log, ensure_ascii=False, separators=(",", ":")).encode())) > limit:
        errors["ai_reasoning_log"] = [f"{size} bytes of JSON; the limit is {limit} (ENTRY_AI_LOG_MAX_BYTES)."]
    skew = timedelta(seconds=getattr(settings, "ENTRY_CONTEXT_CLOCK_SKEW_SECONDS", DEFAULT_CLOCK_SKEW_SECONDS))
    for name in CONTEXT_PARTS:
        if problem := _as_of_problem(context.get(name), entry_at, skew):
            errors.setdefault(name, []).append(problem)
    return errors


def _as_of_problem(part, entry_at: datetime, skew: timedelta) -> str | None:
    """The first `as_of` of the part (top level, or in a direct child object; for a part sent as
    an array, in each of its objects) that is unreadable or later than the entry plus `skew`."""
    if isinstance(part, dict):
        stamps = [("as_of", part.get("as_of"))]
        stamps += [(f"{key}.as_of", child.get("as_of")) for key, child in part.items() if isinstance(child, dict)]
    elif isinstance(part, list):  # the API takes arrays too, e.g. an AI log as a list of steps
        stamps = [(f"[{index}].as_of", item.get("as_of")) for index, item in enumerate(part) if isinstance(item, dict)]
    else:
        return None
    for path, value in stamps:
        if value is None:
            continue
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.utcoffset() is None:
            return f"{path} must be an ISO 8601 instant with its UTC offset, got {value!r}."
        if moment > entry_at + skew:
            return f"{path} ({value}) is after the entry ({entry_at.isoformat()}): context must be known at entry."
    return None


def book_at_entry(quote: Quote, *, entry_at: datetime) -> dict:
    """`order_book_state` from the quote the entry was priced from: the book at the moment of entry."""
    greeks = quote.greeks
    spread = None
    if quote.bid is not None and quote.ask is not None and quote.mid:
        spread = round(float((quote.ask - quote.bid) / quote.mid * 100), 4)
    missing = {}
    if quote.bid is None or quote.ask is None:
        missing["spread_pct"] = "The quote had no two-sided market."
    if greeks is None:
        missing["greeks"] = "The quote carried no greeks or IV."
    if quote.open_interest is None:
        missing["open_interest"] = "The quote carried no open interest."
    return jsonable({
        "as_of": quote.quoted_at or entry_at, "bid": _float(quote.bid), "ask": _float(quote.ask), "spread_pct": spread,
        "last": _float(quote.last), "volume": quote.volume, "open_interest": quote.open_interest,
        **{name: _float(getattr(greeks, name, None)) for name in ("delta", "gamma", "theta", "vega")},
        "iv": _float(getattr(greeks, "mid_iv", None)), "missing": missing,
    })


def _float(value) -> float | None:
    return None if value is None else float(value)


def entry_context_request(*, trade: PaperTrade, entry_at: datetime) -> None:
    """Ask for the parts the scanner did not send, once the trade has committed. A failing request
    (no collector, the queue down) is logged and never reaches the trader: the trade stands."""
    if not any(getattr(trade, name) in ({}, None) for name in CONTEXT_PARTS if name != "ai_reasoning_log"):
        return
    if _collector is None:
        logger.warning("No entry-context collector is registered: trade %s keeps only what was sent.", trade.pk)
        return
    collector, trade_id, owner_id = _collector, trade.pk, trade.owner_id

    def collect_entry_context() -> None:  # a named function: Django logs a robust hook's failure by name
        collector(trade_id=trade_id, owner_id=owner_id, entry_at=entry_at)

    transaction.on_commit(collect_entry_context, robust=True)


def trade_context_fill(*, owner_id: int, trade_id: int, parts: dict[str, dict], entry_at: datetime,
                       actor_label: str = "") -> list[str]:
    """Write collected `parts` into the trade's context parts that are still empty, as its owner.

    Each part is set by an UPDATE that only matches while the part is empty, so the scanner's
    parts (and a collection already written) are never overwritten, and status changes made
    meanwhile are not touched (no version bump: the trader's view of the trade did not change).
    One CONTEXT_CAPTURED event lists what was filled and what is missing. Returns the filled names.
    """
    if unknown := set(parts) - set(CONTEXT_PARTS):
        raise ValueError(f"Unknown context parts: {sorted(unknown)}")
    with tenancy.acting_as(owner_id):
        trade = PaperTrade.objects.filter(pk=trade_id).only("id", "owner_id", "status", "broker_mode").first()
        if trade is None:
            return []
        filled = [
            name for name, value in parts.items()
            if PaperTrade.objects.filter(pk=trade_id, **{name: {}}).update(**{name: jsonable(value)})
        ]
        if filled:
            event_record(
                trade=trade, kind=EventKind.CONTEXT_CAPTURED, actor=Actor.SYSTEM, actor_label=actor_label,
                payload={"entry_at": entry_at, "filled": filled,
                         "missing": {name: parts[name]["missing"] for name in filled if parts[name].get("missing")}},
            )
    return filled
