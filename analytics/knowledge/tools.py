"""The knowledge server's tools as plain functions: check the input, call a selector, serialize.

Each takes the caller (`user`) and runs inside that user's tenant context (see `server.call_as`).
Filters are checked by the REST API's own filter serializers and answers are rendered by its own
serializers, so a filter means the same thing, and a number reads the same, in both places. A
refusal raises `ToolError` naming the argument and the reason; the model reads it and retries.
"""

from __future__ import annotations

from math import ceil
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from rest_framework import serializers

from analytics import selectors
from analytics.api import BasisFilterSerializer, FilterSerializer, ForensicsSerializer, analytics_filters
from trades import selectors as trade_selectors
from trades.models import PRICE, PaperTrade
from trades.serializers import (
    SnapshotSerializer,
    TradeDetailSerializer,
    TradeFilterSerializer,
    TradeHistorySerializer,
    TradeSerializer,
)

MAX_PAGE_SIZE = 100
MAX_SNAPSHOT_POINTS = trade_selectors.MAX_CHART_POINTS
# performance_breakdown's `by`, and the part of the Performance report each one reads.
BREAKDOWNS = {
    "close_reason": "by_close_reason", "strategy": "by_strategy", "strategy_type": "by_strategy_type",
    "ticker": "by_ticker",
    "ai_verdict": "by_ai_verdict", "gate_verdict": "by_gate_verdict", "card_score_decile": "by_card_score_decile",
    "ai_score_decile": "by_ai_score_decile", "day": "daily", "equity_curve": "equity_curve",
}
# The REST API calls the analytics date filters `from`/`to`; here they are arguments, named for what they filter.
ANALYTICS_ARGUMENTS = {"from": "closed_from", "to": "closed_to"}
DATASET_DOCS = "docs/dataset.md"


# --- input ------------------------------------------------------------------------------------------


def _validated(serializer: serializers.Serializer, names: dict[str, str] | None = None) -> dict:
    """The serializer's validated data, or a ToolError listing every bad argument and why."""
    if serializer.is_valid():
        return serializer.validated_data
    names = names or {}
    problems = [f"{names.get(field, field)}: {' '.join(str(message) for message in messages)}"
                for field, messages in serializer.errors.items()]
    raise ToolError("Invalid input. " + "; ".join(problems))


def _given(**arguments) -> dict[str, Any]:
    """The arguments the caller gave (an omitted filter is None, and means no filter)."""
    return {name: value for name, value in arguments.items() if value is not None}


def _analytics_filters(closed_from: str | None, closed_to: str | None,
                       strategy: str | None) -> selectors.AnalyticsFilters:
    data = FilterSerializer(data=_given(**{"from": closed_from, "to": closed_to, "strategy": strategy}))
    return analytics_filters(_validated(data, ANALYTICS_ARGUMENTS))


def _basis_filters(closed_from: str | None, closed_to: str | None, strategy: str | None,
                   basis: str | None, strategy_type: str | None = None) -> tuple[selectors.AnalyticsFilters, str]:
    """The filters and the P&L basis, checked by the Performance API's own serializer."""
    data = BasisFilterSerializer(data=_given(**{"from": closed_from, "to": closed_to, "strategy": strategy,
                                                "basis": basis, "strategy_type": strategy_type}))
    values = _validated(data, ANALYTICS_ARGUMENTS)
    return analytics_filters(values), values["basis"]


def _page(rows: QuerySet | list, *, page: int, page_size: int) -> tuple[Any, dict]:
    """One page of `rows` and where it sits. A page past the end is refused rather than empty, so a
    caller walking `next_page` can tell the end from a mistake."""
    total = rows.count() if isinstance(rows, QuerySet) else len(rows)
    pages = max(1, ceil(total / page_size))
    if page > pages:
        raise ToolError(f"Invalid input. page: {page} is past the last page ({pages}).")
    start = (page - 1) * page_size
    return rows[start : start + page_size], {"page": page, "page_size": page_size, "total": total, "pages": pages,
                                             "next_page": page + 1 if page < pages else None}


# --- trades ------------------------------------------------------------------------------------------


def open_positions(*, user: AbstractBaseUser, page: int, page_size: int) -> dict:
    active = trade_selectors.trades_with_legs(trade_selectors.trade_list(user=user).active())
    trades, meta = _page(active, page=page, page_size=page_size)
    return {**meta, "positions": TradeSerializer(trades, many=True).data}


def search_trades(*, user: AbstractBaseUser, page: int, page_size: int, history: bool = False,
                  status: str | None = None, outcome: str | None = None, strategy: str | None = None,
                  strategy_type: str | None = None, ticker: str | None = None, closed_from: str | None = None,
                  closed_to: str | None = None) -> dict:
    data = TradeFilterSerializer(data=_given(status=status, outcome=outcome, strategy=strategy,
                                             strategy_type=strategy_type, ticker=ticker, closed_from=closed_from,
                                             closed_to=closed_to))
    _validated(data)
    select = trade_selectors.trade_history if history else trade_selectors.trade_list
    trades, meta = _page(trade_selectors.trades_with_legs(select(user=user, filters=data.filters())), page=page,
                         page_size=page_size)
    serializer = TradeHistorySerializer if history else TradeSerializer  # as the REST API's history
    return {**meta, "trades": serializer(trades, many=True).data}


class SnapshotSummarySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    by_kind = serializers.DictField(child=serializers.IntegerField())
    high = serializers.DecimalField(**PRICE, allow_null=True, help_text="Highest mark recorded.")
    low = serializers.DecimalField(**PRICE, allow_null=True, help_text="Lowest mark recorded.")
    first = SnapshotSerializer(allow_null=True)
    last = SnapshotSerializer(allow_null=True)


def trade_capsule(*, user: AbstractBaseUser, trade_id: int, snapshot_points: int = 0) -> dict:
    if snapshot_points == 1:
        raise ToolError(f"Invalid input. snapshot_points: 0 (none) or 2 to {MAX_SNAPSHOT_POINTS}.")
    try:
        trade = trade_selectors.trades_with_legs(trade_selectors.trade_with_events(user=user)).get(pk=trade_id)
    except PaperTrade.DoesNotExist:  # another user's trade reads exactly like a missing one
        raise ToolError(f"Trade {trade_id} not found.") from None
    snapshots = SnapshotSummarySerializer(selectors.snapshot_summary(trade=trade)).data
    if snapshot_points:
        series = trade_selectors.trade_snapshots(trade=trade, max_points=snapshot_points)
        snapshots["series"] = SnapshotSerializer(series, many=True).data
    forensics = selectors.trade_forensics(user=user, trade_id=trade.pk)
    return {
        "trade": TradeDetailSerializer(trade).data,
        "snapshots": snapshots,
        "forensics": ForensicsSerializer(forensics).data if forensics else None,
        "attribution": selectors.trade_attribution(trade=trade).as_json(),
    }


# --- analytics ---------------------------------------------------------------------------------------


def performance_summary(*, user: AbstractBaseUser, closed_from: str | None = None, closed_to: str | None = None,
                        strategy: str | None = None, basis: str | None = None,
                        strategy_type: str | None = None) -> dict:
    filters, basis = _basis_filters(closed_from, closed_to, strategy, basis, strategy_type)
    report = selectors.performance(user=user, filters=filters, basis=basis)
    keys = ("money", "basis", "costs", "summary", "max_drawdown", "risk_adjusted", "best_strategy")
    return {**{key: report[key] for key in keys}, "breakdowns": list(BREAKDOWNS)}


def performance_breakdown(*, user: AbstractBaseUser, by: str, page: int, page_size: int,
                          closed_from: str | None = None, closed_to: str | None = None,
                          strategy: str | None = None, basis: str | None = None,
                          strategy_type: str | None = None) -> dict:
    if by not in BREAKDOWNS:
        raise ToolError(f"Invalid input. by: one of {', '.join(BREAKDOWNS)}.")
    filters, basis = _basis_filters(closed_from, closed_to, strategy, basis, strategy_type)
    report = selectors.performance(user=user, filters=filters, basis=basis)
    head = {"by": by, "money": report["money"], "basis": report["basis"]}
    if by == "equity_curve":  # columns in the report; rows here, so that it pages like the rest
        curve = report["equity_curve"]
        rows, meta = _page(_curve_rows(curve), page=page, page_size=page_size)
        return {**head, "start": curve["start"], **meta, "rows": rows}
    rows, meta = _page(report[BREAKDOWNS[by]], page=page, page_size=page_size)
    return {**head, **meta, "rows": rows}


def _curve_rows(curve: dict) -> list[dict]:
    columns = ("trade_ids", "closed_at", "pnl", "equity")
    return [{"trade_id": trade_id, "closed_at": closed_at, "pnl": pnl, "equity": equity}
            for trade_id, closed_at, pnl, equity in zip(*(curve[name] for name in columns), strict=True)]


def fill_quality(*, user: AbstractBaseUser) -> dict:
    return selectors.fill_quality(user=user)


def calibration(*, user: AbstractBaseUser, closed_from: str | None = None, closed_to: str | None = None,
                strategy: str | None = None, basis: str | None = None) -> dict:
    filters, basis = _basis_filters(closed_from, closed_to, strategy, basis)
    return selectors.calibration(user=user, filters=filters, basis=basis)


def exit_replay(*, user: AbstractBaseUser, page: int, page_size: int, closed_from: str | None = None,
                closed_to: str | None = None, strategy: str | None = None) -> dict:
    report = selectors.exit_replay(user=user, filters=_analytics_filters(closed_from, closed_to, strategy))
    strategies, meta = _page(report["strategies"], page=page, page_size=page_size)
    return {**report, **meta, "strategies": strategies}


# --- the data set's column dictionary (no user data) --------------------------------------------------


def dataset_columns() -> dict:
    """Every column of the learning data set in export order, with its group: `input` (known at
    entry), `context` (entry context JSON, flattened), `target` (known after the close) or
    `structure` (what the legs make: strategy type, legs, width, max profit and loss, breakevens)."""
    groups = (("input", selectors.INPUT_COLUMNS), ("context", tuple(selectors.CONTEXT_COLUMNS)),
              ("target", selectors.TARGET_COLUMNS), ("structure", selectors.STRUCTURE_COLUMNS))
    return {"count": len(selectors.DATASET_COLUMNS), "schema_version": selectors.DATASET_SCHEMA_VERSION,
            "meanings": "resource tradeoptions://dataset/docs",
            "columns": [{"name": name, "group": group} for group, names in groups for name in names]}


def dataset_docs() -> str:
    try:
        return (settings.BASE_DIR / DATASET_DOCS).read_text(encoding="utf-8")
    except OSError as error:
        raise ResourceError(f"{DATASET_DOCS} is not available on this server ({error.strerror}).") from None
