"""The MCP knowledge server through the SDK's own client, in-process: each tool on real rows, the
same answers as the REST API, another trader's rows never there, clear refusals, pages."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from knox.models import AuthToken

from analytics.knowledge.server import TokenCaller, call_as
from analytics.selectors import DATASET_COLUMNS
from analytics.services import trade_targets_compute
from tests.factories import (
    ClosedTradeFactory,
    PaperFillFactory,
    PaperTradeFactory,
    PriceSnapshotFactory,
    TradeEventFactory,
)
from tests.fakes.market import RecordedMinuteBars
from tradeoptions import tenancy
from trades.models import CloseReason, EventKind, PaperTrade, TradeStatus

ENTRY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # 10:00 in New York


def _at(minutes):
    return ENTRY + timedelta(minutes=minutes)


def _closed(owner, *, close, strategy="momentum", ticker="SPY", minutes=60, **fields):
    """Bought 1 at 2.00; closed at `close` after `minutes`."""
    return ClosedTradeFactory(owner=owner, qty=1, entry_price=Decimal("2.00"), entry_date=ENTRY,
                              close_date=_at(minutes), close_price=Decimal(close), strategy=strategy, ticker=ticker,
                              **fields)


def test_the_server_offers_read_only_tools_and_the_dataset_dictionary(knowledge_as, trader):
    knowledge = knowledge_as(trader)
    tools = {tool.name: tool for tool in knowledge.tools()}
    assert set(tools) == {"open_positions", "search_trades", "trade_capsule", "performance_summary",
                          "performance_breakdown", "calibration", "exit_replay", "fill_quality"}
    assert all(tool.annotations.read_only_hint and tool.description for tool in tools.values())
    page_size = tools["search_trades"].input_schema["properties"]["page_size"]
    assert (page_size["minimum"], page_size["maximum"]) == (1, 100)
    assert {str(resource.uri) for resource in knowledge.resources()} == {"tradeoptions://dataset/columns",
                                                                        "tradeoptions://dataset/docs"}


def test_open_positions_are_the_active_trades_with_their_marks(knowledge_as, trader, other_trader):
    held = PaperTradeFactory(owner=trader, qty=2, entry_price=Decimal("4.20"), current_price=Decimal("4.50"),
                             current_bid=Decimal("4.45"), current_ask=Decimal("4.55"), unrealized_pnl=Decimal("60.00"))
    pending = PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    _closed(trader, close="2.50")
    PaperTradeFactory(owner=other_trader, ticker="NVDA")

    answer = knowledge_as(trader).call("open_positions")

    assert [row["id"] for row in answer["positions"]] == [pending.pk, held.pk]  # newest first
    assert answer["total"] == 2 and answer["next_page"] is None
    mark = answer["positions"][1]
    assert (mark["current_price"], mark["current_bid"], mark["current_ask"]) == ("4.5000", "4.4500", "4.5500")
    assert mark["unrealized_pnl"] == "60.00" and mark["unrealized_pnl_pct"] == "7.14"  # 60 / (4.20 × 2 × 100)
    assert mark["sl_distance"] == "1.5000" and mark["tp_distance"] == "2.0000"


def test_search_trades_takes_the_rest_apis_filters(knowledge_as, api_as, trader, other_trader):
    win = _closed(trader, close="2.50", ticker="SPY")
    _closed(trader, close="1.50", ticker="SPY")  # a loss
    _closed(trader, close="3.00", ticker="QQQ")  # a win on another ticker
    _closed(trader, close="0", ticker="SPY", close_reason=CloseReason.EXPIRED)
    _closed(other_trader, close="2.50", ticker="SPY")

    answer = knowledge_as(trader).call("search_trades", outcome="win", ticker="spy")

    assert [row["id"] for row in answer["trades"]] == [win.pk]
    rest = api_as(trader).get("/api/trades", {"outcome": "win", "ticker": "spy"}).json()
    assert answer["trades"] == rest["results"]
    closed_late = knowledge_as(trader).call("search_trades", closed_from=_at(90).isoformat())
    assert closed_late["total"] == 0


def test_trade_history_is_the_closed_trades_most_recently_closed_first(knowledge_as, api_as, trader):
    early = _closed(trader, close="2.50", minutes=30)
    late = _closed(trader, close="1.50", minutes=90)
    PaperTradeFactory(owner=trader)  # still open
    history = knowledge_as(trader).call("search_trades", history=True)
    assert [row["id"] for row in history["trades"]] == [late.pk, early.pk]
    assert history["trades"] == api_as(trader).get("/api/trades/history").json()["results"]
    assert {"hold_duration_h", "max_gain", "max_drawdown"} <= set(history["trades"][0])


def test_the_trades_that_never_filled_come_with_their_reason(knowledge_as, api_as, trader):
    rejected = PaperTradeFactory(owner=trader, status=TradeStatus.REJECTED, entry_price=None, entry_date=None,
                                 status_reason="Not enough buying power.")
    _closed(trader, close="2.50", minutes=30)
    unfilled = knowledge_as(trader).call("search_trades", history=True, outcome="unfilled")
    assert [(row["id"], row["status_reason"]) for row in unfilled["trades"]] == [
        (rejected.pk, "Not enough buying power.")]
    assert unfilled["trades"] == api_as(trader).get("/api/trades/history?outcome=unfilled").json()["results"]


def test_search_trades_comes_in_pages(knowledge_as, trader):
    trades = [PaperTradeFactory(owner=trader, strike=Decimal(500 + n)) for n in range(5)]
    knowledge = knowledge_as(trader)

    pages = [knowledge.call("search_trades", page=page, page_size=2) for page in (1, 2, 3)]

    assert [len(page["trades"]) for page in pages] == [2, 2, 1]
    assert [page["next_page"] for page in pages] == [2, 3, None]
    assert {(page["total"], page["pages"]) for page in pages} == {(5, 3)}
    assert [row["id"] for page in pages for row in page["trades"]] == [trade.pk for trade in reversed(trades)]
    assert "page: 4 is past the last page (3)" in knowledge.refusal("search_trades", page=4, page_size=2)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("search_trades", {"status": "WON"},
         "status: Choose a status: PENDING, OPEN, CLOSING, CLOSED, CANCELED, REJECTED."),
        ("search_trades", {"outcome": "draw"}, "outcome: Choose win, loss, flat, expired or unfilled."),
        ("search_trades", {"closed_from": "last tuesday"}, "closed_from: Datetime has wrong format."),
        ("search_trades", {"page_size": -5}, "page_size\n  Input should be greater than or equal to 1"),
        ("search_trades", {"page_size": 500}, "page_size\n  Input should be less than or equal to 100"),
        ("open_positions", {"page": 0}, "page\n  Input should be greater than or equal to 1"),
        ("performance_summary", {"closed_from": "2026-13-01"}, "closed_from: Give a date as YYYY-MM-DD"),
        ("performance_summary", {"closed_from": "2026-12-31", "closed_to": "2026-12-01"},
         "closed_to: The end date is before the start date."),
        ("performance_summary", {"closed_to": "9999-12-31"}, "closed_to: Must be a date from Jan 1, 2000 to Dec 31"),
        ("search_trades", {"closed_to": "9999-12-31T23:59:59Z"}, "closed_to: Must be a date from Jan 1, 2000"),
        ("performance_breakdown", {"by": "weekday"}, "by\n  Input should be 'close_reason', 'strategy'"),
        ("trade_capsule", {"trade_id": "seven"}, "trade_id\n  Input should be a valid integer"),
        ("trade_capsule", {"trade_id": 1, "snapshot_points": 1}, "snapshot_points: 0 (none) or 2 to 1000."),
        ("exit_replay", {"page_size": 21}, "page_size\n  Input should be less than or equal to 20"),
    ],
)
def test_bad_input_is_refused_naming_the_argument_and_the_reason(knowledge_as, trader, tool, arguments, expected):
    assert expected in knowledge_as(trader).refusal(tool, **arguments)


def test_a_trades_capsule_holds_its_context_history_events_and_forensics(knowledge_as, trader):
    trade = _closed(trader, close="2.60", minutes=90, sl_price=Decimal("1.50"), tp_price=Decimal("3.00"),
                    card_score=Decimal("7.5"), ai_verdict="BUY", signals_snapshot={"5m": {"rsi14": 61.5}},
                    market_regime={"vix": 14.2}, ai_reasoning_log={"confidence": 0.8})
    for minutes, mark in [(5, "2.20"), (10, "1.80"), (50, "2.90")]:
        PriceSnapshotFactory(trade=trade, timestamp=_at(minutes), mark_price=Decimal(mark))
    TradeEventFactory(trade=trade, kind=EventKind.BRACKET_ADJUSTED, old_status=TradeStatus.OPEN,
                      new_status=TradeStatus.OPEN, payload={"new_tp": "3.00"})
    # The recorded path only: a source without option bars (like ORATS), whatever today's date is.
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), owner_id=trader.pk,
                          provider=RecordedMinuteBars(unsupported=True))

    capsule = knowledge_as(trader).call("trade_capsule", trade_id=trade.pk, snapshot_points=2)

    record = capsule["trade"]
    assert record["id"] == trade.pk and record["card_score"] == "7.500" and record["ai_verdict"] == "BUY"
    assert record["signals_snapshot"] == {"5m": {"rsi14": 61.5}} and record["market_regime"] == {"vix": 14.2}
    assert [event["kind"] for event in record["events"]] == ["BRACKET_ADJUSTED"]
    snapshots = capsule["snapshots"]
    assert (snapshots["count"], snapshots["by_kind"]) == (3, {"INTRADAY": 3})
    assert (snapshots["low"], snapshots["high"]) == ("1.8000", "2.9000")
    assert (snapshots["first"]["mark_price"], snapshots["last"]["mark_price"]) == ("2.2000", "2.9000")
    assert [point["mark_price"] for point in snapshots["series"]] == ["2.2000", "2.9000"]  # thinned to 2
    forensics = capsule["forensics"]
    # Path 2.00 → 2.20 → 1.80 → 2.90 → closed 2.60: +45 % best, -10 % worst, neither exit touched.
    assert (forensics["mfe_pct"], forensics["mae_pct"], forensics["first_touch"]) == ("45.0000", "-10.0000",
                                                                                     "NEITHER")
    assert forensics["pnl_15m"] == "-20.00"  # the last mark by +15' is 1.80


def test_a_capsule_before_the_forensic_job_and_without_snapshots(knowledge_as, trader):
    trade = PaperTradeFactory(owner=trader)
    capsule = knowledge_as(trader).call("trade_capsule", trade_id=trade.pk)
    assert capsule["forensics"] is None and "series" not in capsule["snapshots"]
    assert capsule["attribution"]["available"] is False
    assert capsule["attribution"]["note"] == "The position has no mark yet: there is no P&L to explain."
    assert capsule["snapshots"] == {"count": 0, "by_kind": {}, "high": None, "low": None, "first": None,
                                    "last": None}


def test_another_traders_trade_is_not_found_exactly_like_a_missing_one(knowledge_as, trader, other_trader):
    theirs = _closed(other_trader, close="2.50")
    PriceSnapshotFactory(trade=theirs)
    knowledge = knowledge_as(trader)
    assert knowledge.refusal("trade_capsule", trade_id=theirs.pk).endswith(f"Trade {theirs.pk} not found.")
    missing = theirs.pk + 1000
    assert knowledge.refusal("trade_capsule", trade_id=missing).endswith(f"Trade {missing} not found.")


def test_performance_is_the_rest_apis_numbers_in_pages(knowledge_as, api_as, trader, other_trader, strict_json):
    _closed(trader, close="2.50", ticker="SPY", strategy="momentum")
    _closed(trader, close="1.50", ticker="QQQ", strategy="momentum")
    _closed(trader, close="3.00", ticker="IWM", strategy="breakout", minutes=24 * 60)
    _closed(other_trader, close="9.00", ticker="NVDA", strategy="secret")
    knowledge = knowledge_as(trader)
    rest = strict_json(api_as(trader).get("/api/analytics/performance"))

    summary = knowledge.call("performance_summary")
    assert summary["summary"] == rest["summary"] and summary["summary"]["trades"] == 3
    assert summary["max_drawdown"] == rest["max_drawdown"] and summary["best_strategy"] == "breakout"

    by_strategy = knowledge.call("performance_breakdown", by="strategy")
    assert by_strategy["rows"] == rest["by_strategy"]
    tickers = [knowledge.call("performance_breakdown", by="ticker", page=page, page_size=2) for page in (1, 2)]
    assert [row for page in tickers for row in page["rows"]] == rest["by_ticker"]
    assert [page["next_page"] for page in tickers] == [2, None]
    assert knowledge.call("performance_breakdown", by="day")["rows"] == rest["daily"]
    curve = knowledge.call("performance_breakdown", by="equity_curve")
    assert curve["start"] == rest["equity_curve"]["start"] == "5000.00"
    assert [(row["trade_id"], row["equity"]) for row in curve["rows"]] == list(
        zip(rest["equity_curve"]["trade_ids"], rest["equity_curve"]["equity"], strict=True))

    one_day = knowledge.call("performance_summary", closed_from="2026-12-01", closed_to="2026-12-01",
                             strategy="momentum")
    assert one_day["summary"]["trades"] == 2


def test_calibration_and_exit_replay_are_the_rest_apis_numbers(knowledge_as, api_as, trader, strict_json):
    for card, close, strategy in [(1, "1.50", "breakout"), (2, "2.50", "momentum"), (3, "3.00", "momentum")]:
        trade = _closed(trader, close=close, strategy=strategy, card_score=Decimal(card))
        PriceSnapshotFactory(trade=trade, timestamp=_at(10), mark_price=Decimal("1.70"))
    client = api_as(trader)
    knowledge = knowledge_as(trader)

    assert knowledge.call("calibration") == strict_json(client.get("/api/analytics/calibration"))

    rest = strict_json(client.get("/api/analytics/exit-replay"))
    first, second = (knowledge.call("exit_replay", page=page, page_size=1) for page in (1, 2))
    assert first["strategies"] + second["strategies"] == rest["strategies"]
    assert [first["next_page"], second["next_page"]] == [2, None]
    assert first["hindsight"] is True and first["sl_pct"] == rest["sl_pct"]


def test_fill_quality_is_the_rest_apis_numbers(knowledge_as, api_as, trader, other_trader, strict_json):
    PaperFillFactory(owner=trader, quantity=2, price=Decimal("4.30"), mid=Decimal("4.20"))
    PaperFillFactory(owner=other_trader, price=Decimal("9.99"))
    answer = knowledge_as(trader).call("fill_quality")
    assert answer == strict_json(api_as(trader).get("/api/analytics/fill-quality"))
    assert answer["fills"] == 1 and answer["summary"]["slippage_total"] == "20.00"


def test_the_dataset_column_dictionary_reads(knowledge_as, trader):
    knowledge = knowledge_as(trader)
    [columns] = knowledge.read("tradeoptions://dataset/columns")
    dictionary = json.loads(columns.text)
    assert dictionary["count"] == len(DATASET_COLUMNS) == len(dictionary["columns"])
    assert [column["name"] for column in dictionary["columns"]] == list(DATASET_COLUMNS)
    assert {column["group"] for column in dictionary["columns"]} == {"input", "context", "target", "structure"}
    assert dictionary["schema_version"] == 2
    [docs] = knowledge.read("tradeoptions://dataset/docs")
    assert docs.mime_type == "text/markdown" and docs.text.startswith("# The learning data set")
    assert "`first_touch`" in docs.text


def test_a_revoked_token_stops_answering_at_once(knowledge_as, trader):
    knowledge = knowledge_as(trader)
    assert knowledge.call("open_positions")["total"] == 0
    AuthToken.objects.filter(user=trader).delete()
    assert knowledge.refusal("open_positions").endswith("Not authenticated: Invalid token.")


def test_a_call_runs_in_the_callers_tenant_context_and_keeps_nothing(trader):
    trade = PaperTradeFactory(owner=trader, strategy="momentum")
    _, token = AuthToken.objects.create(user=trader)

    def tool(*, user):
        PaperTrade.objects.filter(pk=trade.pk).update(strategy="rewritten")  # as if a selector wrote
        return user.pk, tenancy.current_user_id(), tenancy.in_system_context()

    assert call_as(TokenCaller(token), None, tool, {}) == (trader.pk, trader.pk, False)
    assert tenancy.current_user_id() is None  # the caller's context ended with the call
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get(pk=trade.pk).strategy == "momentum"
