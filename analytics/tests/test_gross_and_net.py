"""Every P&L figure of the reports has a gross (premiums only) and a net (after commissions and
fees) reading: the Performance API (net by default, ?basis=gross), the data set in CSV and
Parquet, and the knowledge server's tools. A book where the two disagree on who won."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analytics import metrics
from tests.factories import ClosedTradeFactory

CLOSE = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


@pytest.fixture
def book(trader):
    """Gross +1.00, +100.00, −50.00 (51.00); commissions 1.30, 2.60, 1.30 (5.20); fees 0.05 on the
    loser: net −0.30, +97.40, −51.35 (45.75). A gross win that is a net loss."""
    def closed(minutes, pnl, commission_in, commission_out, fees="0"):
        return ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.00"),
                                  close_date=CLOSE + timedelta(minutes=minutes), realized_pnl=Decimal(pnl),
                                  entry_commission=Decimal(commission_in), exit_commission=Decimal(commission_out),
                                  fees=Decimal(fees), commission_per_contract=Decimal("0.65"))

    return [closed(1, "1.00", "0.65", "0.65"), closed(2, "100.00", "1.30", "1.30"),
            closed(3, "-50.00", "0.65", "0.65", fees="0.05")]


def test_performance_is_net_of_commissions_by_default(api_as, trader, book):
    report = api_as(trader).get("/api/analytics/performance").json()
    assert report["basis"] == "net"
    assert report["costs"] == {"gross_pnl": "51.00", "commission_total": "5.20", "fees_total": "0.05",
                               "net_pnl": "45.75"}
    summary = report["summary"]
    assert (summary["net_pnl"], summary["wins"], summary["losses"]) == ("45.75", 1, 2)
    assert (summary["largest_loss"], summary["expectancy"]) == ("-51.35", "15.25")
    assert report["equity_curve"]["pnl"] == ["-0.30", "97.40", "-51.35"]
    assert [row["pnl"] for row in report["daily"]] == ["45.75"]


def test_performance_on_the_gross_basis_counts_premiums_only(api_as, trader, book):
    report = api_as(trader).get("/api/analytics/performance?basis=gross").json()
    assert report["basis"] == "gross" and report["costs"]["net_pnl"] == "45.75"  # the costs do not move
    summary = report["summary"]
    assert (summary["net_pnl"], summary["wins"], summary["losses"]) == ("51.00", 2, 1)
    assert report["equity_curve"]["pnl"] == ["1.00", "100.00", "-50.00"]
    by_strategy = report["by_strategy"][0]
    assert (by_strategy["net_pnl"], by_strategy["expectancy_r"]) == ("51.00", 0.17)  # (0.01 + 1 − 0.5) / 3


def test_a_gross_win_eaten_by_commissions_is_a_loss_in_the_history_and_in_performance(api_as, trader):
    """+$0.50 gross, $1.30 of commissions: −$0.80 net. The history's totals, its outcome filter and
    its net P&L column count it as Performance does: a loss."""
    small = ClosedTradeFactory(owner=trader, qty=1, close_date=CLOSE, realized_pnl=Decimal("0.50"),
                               entry_commission=Decimal("0.65"), exit_commission=Decimal("0.65"))
    big = ClosedTradeFactory(owner=trader, qty=1, close_date=CLOSE + timedelta(minutes=1),
                             realized_pnl=Decimal("0.70"))  # +0.70 gross and net: above the small one on net only
    client = api_as(trader)
    history = client.get("/api/trades/history").json()
    assert {name: history["totals"][name] for name in ("realized_pnl_net", "wins", "losses", "flat", "win_rate")} == {
        "realized_pnl_net": "-0.10", "wins": 1, "losses": 1, "flat": 0, "win_rate": "50.00"}
    assert [row["id"] for row in client.get("/api/trades/history?outcome=loss").json()["results"]] == [small.pk]
    assert [row["id"] for row in client.get("/api/trades/history?outcome=win").json()["results"]] == [big.pk]
    assert client.get("/api/trades/history?outcome=flat").json()["count"] == 0
    assert [row["id"] for row in client.get("/api/trades/history?ordering=realized_pnl_net").json()["results"]] == [
        small.pk, big.pk]
    assert [row["id"] for row in client.get("/api/trades/history?ordering=-realized_pnl_net").json()["results"]] == [
        big.pk, small.pk]
    summary = client.get("/api/analytics/performance").json()["summary"]
    assert (summary["wins"], summary["losses"], summary["net_pnl"]) == (1, 1, "-0.10")


def test_a_basis_other_than_net_or_gross_is_a_field_error(api_as, trader):
    response = api_as(trader).get("/api/analytics/performance?basis=after-tax")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "basis"
    assert error["detail"] == "Choose net (after commissions and fees) or gross (premiums only)."


def test_the_data_set_carries_gross_net_and_costs(api_as, trader, book):
    text = b"".join(api_as(trader).get("/api/analytics/dataset?format=csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    first = rows[0]
    assert (first["realized_pnl"], first["realized_pnl_gross"], first["realized_pnl_net"]) == ("1.00", "1.00",
                                                                                              "-0.30")
    assert (first["commission_total"], first["fees"], first["win"], first["win_net"]) == ("1.30", "0.00", "1", "0")
    assert [row["realized_pnl_net"] for row in rows] == ["-0.30", "97.40", "-51.35"]

    content = api_as(trader).get("/api/analytics/dataset?format=parquet").content
    table = pq.read_table(io.BytesIO(content)).to_pylist()
    assert [row["realized_pnl_net"] for row in table] == [Decimal("-0.30"), Decimal("97.40"), Decimal("-51.35")]
    assert [row["win_net"] for row in table] == [False, True, False]
    assert table[2]["fees"] == Decimal("0.05") and table[2]["commission_total"] == Decimal("1.30")


def test_the_knowledge_tools_report_the_basis_they_were_asked(knowledge_as, trader, book):
    knowledge = knowledge_as(trader)
    net = knowledge.call("performance_summary")
    gross = knowledge.call("performance_summary", basis="gross")
    assert (net["basis"], net["summary"]["net_pnl"], gross["basis"], gross["summary"]["net_pnl"]) == (
        "net", "45.75", "gross", "51.00")
    assert net["costs"]["commission_total"] == "5.20"
    curve = knowledge.call("performance_breakdown", by="equity_curve", basis="gross")
    assert [row["pnl"] for row in curve["rows"]] == ["1.00", "100.00", "-50.00"]
    (trade, *_) = knowledge.call("search_trades", history=True)["trades"]
    assert (trade["realized_pnl_gross"], trade["realized_pnl_net"], trade["commission_total"]) == (
        "-50.00", "-51.35", "1.30")
    assert "basis" in knowledge.refusal("performance_summary", basis="after-tax")


def test_a_frame_keeps_its_basis_through_the_metrics_unless_asked_another():
    frame = pd.DataFrame({"id": [1, 2], "pnl_gross": [100, -50], "pnl_net": [-30, -180], "risk": [1000, 1000],
                          "strategy": ["a", "a"]})
    gross = metrics.on_basis(frame, metrics.GROSS)
    assert metrics.summary(gross)["net_pnl"] == "0.50"  # the frame's own basis
    assert metrics.summary(gross, basis=metrics.NET)["net_pnl"] == "-2.10"
    assert metrics.summary(frame)["net_pnl"] == "-2.10"  # a frame that says nothing: net
    assert metrics.breakdown(gross, "strategy", basis="net")[0]["expectancy_r"] == -0.105
