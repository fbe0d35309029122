"""Finished spreads in Performance, the learning data set and the knowledge server's tools (issue
19): a credit iron condor, a debit call vertical, a long straddle and a single call side by side
(tests.factories.analytics_four_trades, premiums only: net = gross), exact figures; the held-price
convention for wins and R; the legs read in one query whatever the number of trades."""

import csv
import io
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.selectors import DATASET_COLUMNS, STRUCTURE_COLUMNS
from tests.factories import analytics_four_trades

CONDOR_LEGS = [
    {"side": "LONG", "ratio": 1, "option_symbol": "SPY261218P00490000", "option_type": "PUT", "strike": "490.000",
     "expiry": "2026-12-18", "entry_price": "0.8000", "exit_price": "0.3000", "exit_reason": "CLOSED"},
    {"side": "SHORT", "ratio": 1, "option_symbol": "SPY261218P00495000", "option_type": "PUT", "strike": "495.000",
     "expiry": "2026-12-18", "entry_price": "1.6000", "exit_price": "0.7000", "exit_reason": "CLOSED"},
    {"side": "SHORT", "ratio": 1, "option_symbol": "SPY261218C00515000", "option_type": "CALL", "strike": "515.000",
     "expiry": "2026-12-18", "entry_price": "1.5000", "exit_price": "0.6000", "exit_reason": "CLOSED"},
    {"side": "LONG", "ratio": 1, "option_symbol": "SPY261218C00520000", "option_type": "CALL", "strike": "520.000",
     "expiry": "2026-12-18", "entry_price": "0.7000", "exit_price": "0.2000", "exit_reason": "CLOSED"},
]


@pytest.fixture
def four(trader):
    return analytics_four_trades(trader)


def _performance(client, query=""):
    response = client.get(f"/api/analytics/performance{query}")
    assert response.status_code == 200
    return response.json()


def test_performance_breaks_down_by_strategy_type_with_the_return_on_max_loss(api_as, trader, four):
    rows = {row["strategy_type"]: row for row in _performance(api_as(trader))["by_strategy_type"]}
    assert list(rows) == ["iron_condor", "single", "straddle", "vertical"]
    figures = {name: (row["label"], row["trades"], row["wins"], row["losses"], row["net_pnl"], row["expectancy"],
                      row["max_loss_total"], row["return_on_max_loss"], row["avg_return_on_max_loss"],
                      row["expectancy_r"]) for name, row in rows.items()}
    assert figures == {
        # A credit trade bought back cheaper (0.80) than it sold (1.60) is a win: +$160 on a $680 max loss
        # ((5 − 1.60) × 2 × 100), R = 160 / ((3.20 − 1.60) × 2 × 100).
        "iron_condor": ("Iron condor", 1, 1, 0, "160.00", "160.00", "680.00", 0.2353, 0.2353, 0.5),
        "single": ("Single option", 1, 1, 0, "160.00", "160.00", "840.00", 0.1905, 0.1905, 0.6667),
        "straddle": ("Straddle", 1, 1, 0, "70.00", "70.00", "750.00", 0.0933, 0.0933, 0.1867),
        "vertical": ("Vertical spread", 1, 0, 1, "-60.00", "-60.00", "180.00", -0.3333, -0.3333, -0.6667),
    }
    assert rows["iron_condor"]["win_rate"] == 1.0 and rows["iron_condor"]["return_trades"] == 1


def test_every_trade_counts_in_r_on_its_held_price(api_as, trader, four):
    summary = _performance(api_as(trader))["summary"]
    # Four R multiples (0.5, −0.6667, 0.1867, 0.6667): the credit condor's stop above its entry counts too.
    assert summary["r_trades"] == 4 and summary["expectancy_r"] == 0.1717
    assert (summary["trades"], summary["wins"], summary["losses"], summary["net_pnl"]) == (4, 3, 1, "330.00")


def test_performance_reads_the_legs_in_one_query_for_4_or_12_trades(api_as, trader, four):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as baseline:
        _performance(client)
    analytics_four_trades(trader)
    analytics_four_trades(trader)
    with CaptureQueriesContext(connection) as more:
        assert _performance(client)["summary"]["trades"] == 12
    assert len(more.captured_queries) == len(baseline.captured_queries)
    assert sum("trades_tradeleg" in query["sql"] for query in more.captured_queries) == 1


def _dataset_csv(client):
    response = client.get("/api/analytics/dataset?format=csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == DATASET_COLUMNS
    return {int(row[0]): dict(zip(rows[0], row, strict=True)) for row in rows[1:]}


def test_the_data_set_carries_structure_and_risk_on_the_held_price(api_as, trader, four):
    rows = _dataset_csv(api_as(trader))
    structure = {name: tuple(rows[trade.pk][column] for column in (
        *STRUCTURE_COLUMNS[:4], *STRUCTURE_COLUMNS[5:], "planned_risk", "sl_distance_pct", "tp_distance_pct",
        "r_multiple", "win")) for name, trade in four.items()}
    assert structure == {
        "condor": ("iron_condor", "credit", "Iron condor 490/495/515/520", "4", "5.000", "-1.6000", "320.00",
                   "680.00", "493.4000;516.6000", "23.53", "320.00", "100.0000", "50.0000", "0.5000", "1"),
        "vertical": ("vertical", "debit", "Call debit spread 500/505", "2", "5.000", "1.8000", "320.00", "180.00",
                     "501.8000", "-33.33", "90.00", "50.0000", "100.0000", "-0.6667", "0"),
        "straddle": ("straddle", "debit", "Long straddle 500", "2", "0.000", "7.5000", "", "750.00",
                     "492.5000;507.5000", "9.33", "375.00", "50.0000", "100.0000", "0.1867", "1"),
        "single": ("single", "debit", "Long call 570", "1", "0.000", "4.2000", "", "840.00", "574.2000", "19.05",
                   "240.00", "28.5714", "54.7619", "0.6667", "1"),
    }
    assert json.loads(rows[four["condor"].pk]["legs"]) == CONDOR_LEGS


def test_the_parquet_data_set_types_the_structure(api_as, trader, four):
    response = api_as(trader).get("/api/analytics/dataset?format=parquet")
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == list(DATASET_COLUMNS)
    schema = table.schema
    assert (schema.field("breakevens").type, schema.field("max_loss").type, schema.field("leg_count").type,
            schema.field("legs").type) == (pa.list_(pa.decimal128(18, 4)), pa.decimal128(18, 2), pa.int64(),
                                          pa.string())
    rows = {row["trade_id"]: row for row in table.to_pylist()}
    condor = rows[four["condor"].pk]
    assert (condor["breakevens"], condor["max_loss"], condor["net_entry"], condor["width"]) == (
        [Decimal("493.4000"), Decimal("516.6000")], Decimal("680.00"), Decimal("-1.6000"), Decimal("5.000"))
    assert json.loads(condor["legs"]) == CONDOR_LEGS
    assert rows[four["straddle"].pk]["max_profit"] is None


def test_the_data_set_reads_the_legs_in_one_query_for_4_or_12_trades(api_as, trader, four):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as baseline:
        _dataset_csv(client)
    analytics_four_trades(trader)
    analytics_four_trades(trader)
    with CaptureQueriesContext(connection) as more:
        assert len(_dataset_csv(client)) == 12
    assert len(more.captured_queries) == len(baseline.captured_queries)
    assert sum("trades_tradeleg" in query["sql"] for query in more.captured_queries) == 1


def test_the_tools_carry_the_structure_and_filter_by_strategy_type(knowledge_as, api_as, trader, four, strict_json):
    knowledge = knowledge_as(trader)
    found = knowledge.call("search_trades", history=True, strategy_type="iron_condor")
    [condor] = found["trades"]
    assert condor["id"] == four["condor"].pk
    assert (condor["strategy_type"], condor["net_direction"], condor["strategy_label"], condor["width"],
            condor["max_profit"], condor["max_loss"], condor["breakevens"], condor["return_on_max_loss_pct"]) == (
        "iron_condor", "credit", "Iron condor 490/495/515/520", "5.000", "320.00", "680.00",
        ["493.4000", "516.6000"], "23.53")
    assert [(leg["symbol"], leg["side"], leg["exit_reason"]) for leg in condor["legs"]] == [
        (leg["option_symbol"], leg["side"], "CLOSED") for leg in CONDOR_LEGS]
    every = knowledge.call("search_trades", strategy_type="straddle")["trades"]
    assert [trade["id"] for trade in every] == [four["straddle"].pk] and every[0]["max_profit"] is None
    by_type = knowledge.call("performance_breakdown", by="strategy_type")
    assert by_type["rows"] == strict_json(api_as(trader).get("/api/analytics/performance"))["by_strategy_type"]
    assert [row["strategy_type"] for row in by_type["rows"]] == ["iron_condor", "single", "straddle", "vertical"]


def test_a_tool_refuses_an_unknown_strategy_type_naming_the_choices(knowledge_as, trader):
    refusal = knowledge_as(trader).refusal("search_trades", strategy_type="condor")
    assert "strategy_type" in refusal and "iron_condor" in refusal


def test_the_exit_replays_leave_spreads_out(api_as, trader, four):
    """Their grids move a stop below and a target above a bought premium: a credit spread's exits
    are the other way round, so only the single call is replayed (its strategy shared with two
    spreads)."""
    replay = api_as(trader).get("/api/analytics/exit-replay").json()
    assert [(row["strategy"], row["trades"]) for row in replay["strategies"]] == [("momentum", 1)]
    assert "Single options only" in replay["note"]


def test_performance_and_the_data_set_filter_by_strategy_type(api_as, trader, four):
    client = api_as(trader)
    credit = _performance(client, "?strategy_type=iron_condor")
    assert credit["summary"]["trades"] == 1 and credit["summary"]["net_pnl"] == "160.00"
    assert [row["strategy_type"] for row in credit["by_strategy_type"]] == ["iron_condor"]
    response = client.get("/api/analytics/dataset?format=csv&strategy_type=straddle")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{four['straddle'].pk},")
    refused = client.get("/api/analytics/performance?strategy_type=condor")
    assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "strategy_type"


def test_the_performance_tools_filter_by_strategy_type(knowledge_as, trader, four):
    knowledge = knowledge_as(trader)
    summary = knowledge.call("performance_summary", strategy_type="vertical")
    assert (summary["summary"]["trades"], summary["summary"]["net_pnl"]) == (1, "-60.00")
    rows = knowledge.call("performance_breakdown", by="strategy_type", strategy_type="straddle")["rows"]
    assert [(row["strategy_type"], row["return_on_max_loss"]) for row in rows] == [("straddle", 0.0933)]


def test_export_dataset_writes_one_strategy_types_trades(trader, four, tmp_path):
    from django.core.management import call_command

    target = tmp_path / "condors.parquet"
    call_command("export_dataset", trader.username, "--format", "parquet", "--output", str(target),
                 "--strategy-type", "iron_condor")
    table = pq.read_table(target)
    assert table.column("trade_id").to_pylist() == [four["condor"].pk]
    assert table.column("strategy_label").to_pylist() == ["Iron condor 490/495/515/520"]


def test_a_credit_condors_forensics_read_its_held_price(trader, four):
    """Sold at 1.60 (target 0.80, stop 3.20), marked 2.00 ten minutes in, 0.80 at twenty, closed at
    0.80 after an hour: the rise was its worst moment, the fall its best and its target."""
    from datetime import UTC, date, datetime

    from analytics.models import BarFallback, FirstTouch, TradeForensics
    from analytics.services import trade_targets_compute
    from tests.factories import PriceSnapshotFactory
    from tests.fakes.market import RecordedMinuteBars
    from tradeoptions import tenancy

    condor = four["condor"]
    for minute, mark in ((10, "2.00"), (20, "0.80")):
        PriceSnapshotFactory(trade=condor, timestamp=datetime(2026, 12, 1, 15, minute, tzinfo=UTC),
                             mark_price=Decimal(mark), bid=None, ask=None)
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), owner_id=trader.pk,
                          provider=RecordedMinuteBars())
    with tenancy.acting_as(trader.pk):
        row = TradeForensics.objects.get(trade=condor)
    assert (row.pnl_15m, row.pnl_1h, row.mfe_pct, row.mae_pct, row.first_touch, row.bar_fallback) == (
        Decimal("-80.00"), Decimal("160.00"), Decimal("50.0000"), Decimal("-25.0000"), FirstTouch.TP,
        BarFallback.UNSUPPORTED)
    assert row.first_touch_at == datetime(2026, 12, 1, 15, 20, tzinfo=UTC)
