"""Fill quality, calibration, exit replay, forensics and the data set: hand-computed answers, and
another user's rows never in them."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.selectors import DATASET_COLUMNS, SL_GRID_PCT, TP_GRID_PCT
from analytics.services import trade_targets_compute
from brokers.models import BrokerMode
from tests.factories import ClosedTradeFactory, PaperFillFactory, PaperTradeFactory, PriceSnapshotFactory
from tests.fakes.market import RecordedMinuteBars
from trades.models import CloseReason

ENTRY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def _at(minutes):
    return ENTRY + timedelta(minutes=minutes)


# --- Fill quality ---------------------------------------------------------------------------------


@pytest.fixture
def fills(trader, other_trader):
    # Bought 2 at the 4.30 ask, mid 4.20: 0.10 a share, $20, 238.10 bps; spread 4.76 %; 17 days to expiry.
    PaperFillFactory(owner=trader, option_symbol="SPY261218C00570000", side="buy_to_open", quantity=2,
                     price=Decimal("4.30"), bid=Decimal("4.10"), ask=Decimal("4.30"), mid=Decimal("4.20"))
    # Sold 1 at the 4.00 bid, mid 4.20: 0.20 a share, $20, 476.19 bps; spread 9.52 %; 3 days to expiry.
    PaperFillFactory(owner=trader, option_symbol="QQQ261204P00500000", side="sell_to_close", quantity=1,
                     price=Decimal("4.00"), bid=Decimal("4.00"), ask=Decimal("4.40"), mid=Decimal("4.20"))
    PaperFillFactory(owner=trader, bid=None, ask=None, mid=None)  # no quote: counted apart
    # An expiry settlement: sold to the expiry at intrinsic value, no quote, no commission. Not a fill at a
    # market quote, so neither slippage nor a fill without a quote: counted as a settlement.
    PaperFillFactory(owner=trader, option_symbol="SPY261127C00570000", side="sell_to_close", quantity=2,
                     price=Decimal("0"), commission=Decimal("0"), bid=None, ask=None, mid=None, quote_time=None,
                     settlement=True)
    PaperFillFactory(owner=other_trader, price=Decimal("9.99"))


def test_fill_quality_by_ticker_dte_and_spread(api_as, trader, fills, strict_json):
    body = strict_json(api_as(trader).get("/api/analytics/fill-quality"))
    assert body["fills"] == 2 and body["without_quote"] == 1 and body["settlements"] == 1
    assert body["summary"] == {"fills": 2, "contracts": 3, "slippage_total": "40.00", "slippage_per_share": "0.1500",
                               "slippage_bps_mean": 357.14, "slippage_bps_median": 357.14,
                               "slippage_bps_worst": 476.19}
    tickers = {row["ticker"]: row for row in body["by_ticker"]}
    assert tickers["SPY"]["slippage_total"] == "20.00" and tickers["SPY"]["slippage_bps_mean"] == 238.1
    assert tickers["QQQ"]["slippage_per_share"] == "0.2000"
    assert [(row["dte_bucket"], row["fills"]) for row in body["by_dte"]] == [("1-7", 1), ("8-30", 1)]
    assert [row["spread_bucket"] for row in body["by_spread"]] == ["2-5%", "5-10%"]


def test_fill_quality_without_fills(api_as, trader, strict_json):
    body = strict_json(api_as(trader).get("/api/analytics/fill-quality"))
    assert body["fills"] == 0 and body["summary"] is None and body["by_ticker"] == []
    assert body["without_quote"] == 0 and body["settlements"] == 0


def test_settlements_are_counted_apart_in_a_constant_number_of_queries(api_as, trader, fills, strict_json):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/analytics/fill-quality").status_code == 200
    for _ in range(3):
        PaperFillFactory(owner=trader, side="sell_to_close", price=Decimal("1.50"), commission=Decimal("0"),
                         bid=None, ask=None, mid=None, quote_time=None, settlement=True)
    PaperFillFactory(owner=trader, bid=None, ask=None, mid=None)
    with CaptureQueriesContext(connection) as many:
        body = strict_json(client.get("/api/analytics/fill-quality"))
    assert (body["fills"], body["without_quote"], body["settlements"]) == (2, 2, 4)
    assert body["summary"]["fills"] == 2 and len(many) == len(few)


def _sandbox_trade(owner, *, ticker="SPY", qty=2, entry="2.00", close="2.60", reason=CloseReason.TP_HIT, marks=()):
    trade = ClosedTradeFactory(owner=owner, ticker=ticker, qty=qty, entry_price=Decimal(entry), entry_date=ENTRY,
                               close_price=Decimal(close), close_date=_at(60), close_reason=reason,
                               broker_mode=BrokerMode.TRADIER_SANDBOX)
    for seconds, mark in marks:
        PriceSnapshotFactory(trade=trade, timestamp=ENTRY + timedelta(seconds=seconds), mark_price=Decimal(mark))
    return trade


@pytest.fixture
def sandbox_fills(trader, other_trader):
    # Bought 2 at 2.00; nearest mark 1.95 (30 s later; the 1.80 is 90 s before): 0.05 a share over, $10, 256.41 bps.
    # Sold 2 at 2.60 at +60'; nearest mark 2.64 (60 s later): 0.04 a share under, $8, 151.52 bps.
    _sandbox_trade(trader, marks=[(-90, "1.80"), (30, "1.95"), (3660, "2.64"), (3840, "2.40")])
    # No snapshot near its entry; it expired, which is a settlement and not a fill.
    _sandbox_trade(trader, ticker="QQQ", qty=1, entry="3.00", close="0.00", reason=CloseReason.EXPIRED,
                   marks=[(600, "3.10")])
    ClosedTradeFactory(owner=trader, entry_date=ENTRY)  # a local-paper trade: the paper broker's section
    _sandbox_trade(other_trader, marks=[(0, "9.00")])


def test_sandbox_fills_are_compared_with_the_nearest_mark_apart_from_paper_slippage(api_as, trader, sandbox_fills,
                                                                                      strict_json):
    body = strict_json(api_as(trader).get("/api/analytics/fill-quality"))
    assert body["fills"] == 0 and body["summary"] is None  # no local-paper fill: the sandbox is reported apart
    sandbox = body["tradier_sandbox"]
    assert "nearest" in sandbox["note"] and sandbox["fills"] == 3 and sandbox["without_quote"] == 1
    assert sandbox["quote_lag_seconds_mean"] == 45.0
    mean_bps = round((500 / 1.95 + 400 / 2.64) / 2, 2)
    assert sandbox["summary"] == {"fills": 2, "contracts": 4, "slippage_total": "18.00", "slippage_per_share": "0.0450",
                                  "slippage_bps_mean": mean_bps, "slippage_bps_median": mean_bps,
                                  "slippage_bps_worst": 256.41}
    sides = {row["side"]: (row["slippage_total"], row["slippage_per_share"]) for row in sandbox["by_side"]}
    assert sides == {"entry (buy)": ("10.00", "0.0500"), "exit (sell)": ("8.00", "0.0400")}
    assert [row["ticker"] for row in sandbox["by_ticker"]] == ["SPY"]


def test_sandbox_fill_gaps_take_a_constant_number_of_queries(api_as, trader, sandbox_fills):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/analytics/fill-quality").status_code == 200
    for ticker in ("AAPL", "MSFT", "NVDA"):
        _sandbox_trade(trader, ticker=ticker, marks=[(10, "2.01"), (3600, "2.55")])
    with CaptureQueriesContext(connection) as many:
        body = client.get("/api/analytics/fill-quality").json()
    assert body["tradier_sandbox"]["fills"] == 9 and len(many) == len(few)


# --- Calibration ----------------------------------------------------------------------------------


def test_calibration_with_four_trades_flags_nothing_and_says_why(api_as, trader, other_trader, strict_json):
    # card_score 1..4 with P&L -50, -100, +160, +200: win rate rises, expectancy does not, but one trade
    # a bucket says nothing: no flag. ai_score 1..3 with -100, -50, +200: both rise.
    for card, ai, pnl in [(1, 2, -50), (2, 1, -100), (3, None, 160), (4, 3, 200)]:
        ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2"), close_price=Decimal("2") + Decimal(pnl) / 100,
                           card_score=Decimal(card), ai_score=None if ai is None else Decimal(ai),
                           ai_verdict="BUY" if pnl > 0 else "SKIP")
    ClosedTradeFactory(owner=other_trader, card_score=Decimal(9), ai_verdict="SECRET")
    body = strict_json(api_as(trader).get("/api/analytics/calibration"))
    assert body["trades"] == 4 and body["flagged"] == []
    card = body["scores"]["card_score"]
    assert [row["expectancy"] for row in card["buckets"]] == ["-50.00", "-100.00", "160.00", "200.00"]
    assert card["win_rate_monotonic"] is True and card["expectancy_monotonic"] is False
    assert card["verdict"] == "too_few_trades" and card["min_bucket_trades"] == 10
    assert card["reason"].startswith("Too few trades: 4 of 4 bucket(s)")
    assert [row["enough"] for row in card["buckets"]] == [False] * 4
    assert card["buckets"][0]["win_rate_ci"] == [0.0, 0.7935]
    assert body["scores"]["ai_score"]["monotonic"] is True
    assert body["scores"]["technical_score"] == {
        "buckets": [], "monotonic": None, "win_rate_monotonic": None, "expectancy_monotonic": None, "spearman": None,
        "verdict": "too_few_trades", "reason": "No trade has this score.", "min_bucket_trades": 10}
    verdicts = {row["ai_verdict"]: (row["win_rate"], row["expectancy"]) for row in body["by_ai_verdict"]}
    assert verdicts == {"BUY": (1.0, "180.00"), "SKIP": (0.0, "-75.00")}


def test_calibration_flags_a_fall_the_data_support(api_as, trader, strict_json):
    # Card scores 1..40, the lowest 20 won, the rest lost: deciles of four trades each, too few to say.
    for score in range(1, 41):
        ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2"),
                           close_price=Decimal("2.50" if score <= 20 else "1.50"), card_score=Decimal(score))
    body = strict_json(api_as(trader).get("/api/analytics/calibration"))
    card = body["scores"]["card_score"]
    assert [row["trades"] for row in card["buckets"]] == [4] * 10
    assert card["verdict"] == "too_few_trades" and body["flagged"] == []
    # Sixty more losers above: deciles of ten, the top ones all lost: a fall beyond the intervals.
    for score in range(41, 101):
        ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2"), close_price=Decimal("1.50"),
                           card_score=Decimal(score))
    body = strict_json(api_as(trader).get("/api/analytics/calibration"))
    card = body["scores"]["card_score"]
    assert [row["trades"] for row in card["buckets"]] == [10] * 10 and all(row["enough"] for row in card["buckets"])
    assert card["verdict"] == "non_monotonic" and body["flagged"] == ["card_score"]


# --- Exit replay ----------------------------------------------------------------------------------


def _path_trade(owner, strategy="momentum"):
    # entry 2.00 × 2 → 2.20 (+5') 1.80 (+10') 2.40 (+20') 2.90 (+50') 2.70 (+70') → closed 2.60 (+90'): +$120.
    trade = ClosedTradeFactory(owner=owner, qty=2, entry_price=Decimal("2.00"), entry_date=ENTRY,
                               sl_price=Decimal("1.50"), tp_price=Decimal("3.00"), close_price=Decimal("2.60"),
                               close_date=_at(90), strategy=strategy)
    for minutes, mark in [(5, "2.20"), (10, "1.80"), (20, "2.40"), (50, "2.90"), (70, "2.70")]:
        PriceSnapshotFactory(trade=trade, timestamp=_at(minutes), mark_price=Decimal(mark))
    return trade


def test_exit_replay_on_a_hand_computed_path(api_as, trader, other_trader, strict_json):
    _path_trade(trader)
    _path_trade(other_trader, strategy="theirs")
    # No snapshot: entry 2.00, stopped out at 1.00 after 30'. Stops down to 50 % (1.00) are touched at
    # the close fill; a 60 % stop (0.80) is not, and the trade leaves where it really closed: -$100 everywhere.
    ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2.00"), entry_date=ENTRY, close_date=_at(30),
                       close_price=Decimal("1.00"), strategy="breakout")
    body = strict_json(api_as(trader).get("/api/analytics/exit-replay"))
    assert body["hindsight"] is True and "Hindsight" in body["note"]
    assert body["sl_pct"] == list(SL_GRID_PCT) and body["tp_pct"] == list(TP_GRID_PCT)
    breakout, strategy = body["strategies"]
    assert breakout["strategy"] == "breakout" and breakout["actual_pnl"] == "-100.00"
    assert {cell["total_pnl"] for cell in breakout["cells"]} == {"-100.00"}
    assert breakout["best"]["win_rate"] == 0.0
    assert strategy["strategy"] == "momentum" and strategy["actual_pnl"] == "120.00"
    cells = {(cell["sl_pct"], cell["tp_pct"]): cell["total_pnl"] for cell in strategy["cells"]}
    assert len(cells) == len(SL_GRID_PCT) * len(TP_GRID_PCT)
    assert cells[(10, 20)] == "-40.00"  # the 1.80 stop at +10' comes before the 2.40 target at +20'
    assert cells[(20, 20)] == "80.00"  # 1.60 never touched: out at 2.40
    assert cells[(20, 40)] == "180.00"  # 2.80 target: first mark at or above is 2.90
    assert cells[(20, 60)] == "120.00"  # 3.20 never touched: out where the trade really closed
    assert strategy["best"] == {"sl_pct": 20, "tp_pct": 40, "total_pnl": "180.00", "avg_pnl": "180.00",
                                "win_rate": 1.0}
    # Its own 1.50 stop and 3.00 target are never touched: replayed, it closes where it closed.
    assert strategy["own_brackets_pnl"] == "120.00"
    assert strategy["comparison"] == {
        "verdict": "grid_better", "booked_minus_replayed": "0.00",
        "sentence": "On the same recorded path, the best grid bracket would have made more than your own brackets."}
    assert "Like for like" in body["basis"] and "before commissions" in body["basis"]


def test_exit_replay_says_when_your_own_brackets_beat_the_grid(api_as, trader, strict_json):
    # A wide own stop (0.50) rode out a dip to 0.70 that stops every grid bracket (down to 60 %, 0.80),
    # then the trade reached its own 4.00 target: +$200 booked, -$130 in every grid cell. The best bracket
    # in hindsight reads worse than the trade, and the answer says why, on the same basis.
    trade = ClosedTradeFactory(owner=trader, qty=1, entry_price=Decimal("2.00"), entry_date=ENTRY,
                               sl_price=Decimal("0.50"), tp_price=Decimal("4.00"), close_price=Decimal("4.00"),
                               close_date=_at(30), close_reason=CloseReason.TP_HIT, strategy="wide")
    for minutes, mark in [(5, "0.70"), (20, "3.00")]:
        PriceSnapshotFactory(trade=trade, timestamp=_at(minutes), mark_price=Decimal(mark))
    (wide,) = strict_json(api_as(trader).get("/api/analytics/exit-replay"))["strategies"]
    assert wide["best"]["total_pnl"] == "-130.00" and wide["actual_pnl"] == "200.00"
    assert wide["own_brackets_pnl"] == "200.00"
    assert wide["comparison"]["verdict"] == "own_better"
    assert wide["comparison"]["sentence"].startswith("Your own brackets (and closes) did better than every bracket")


def test_exit_replay_without_trades(api_as, trader, strict_json):
    assert strict_json(api_as(trader).get("/api/analytics/exit-replay"))["strategies"] == []


# --- Forensics of one trade -----------------------------------------------------------------------


def test_forensics_of_own_trade_and_404_for_anothers(api_as, trader, other_trader):
    mine, theirs = _path_trade(trader), _path_trade(other_trader)
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), provider=RecordedMinuteBars())
    client = api_as(trader)
    response = client.get(f"/api/analytics/trades/{mine.pk}/forensics")
    assert response.status_code == 200
    assert response.json()["mfe_pct"] == "45.0000" and response.json()["first_touch"] == "NEITHER"
    assert client.get(f"/api/analytics/trades/{theirs.pk}/forensics").status_code == 404
    assert client.get("/api/analytics/trades/999999/forensics").status_code == 404


# --- Data set -------------------------------------------------------------------------------------


@pytest.fixture
def learning_book(trader, other_trader):
    first = _path_trade(trader)
    with_context = ClosedTradeFactory(
        owner=trader, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.50"), tp_price=Decimal("3.00"),
        close_price=Decimal("1.50"), entry_date=_at(60), close_date=_at(200), close_reason=CloseReason.SL_HIT,
        expiry=date(2026, 12, 18), card_score=Decimal("7.5"), ai_verdict="BUY", strategy="breakout",
        signals_snapshot={"1m": {"rsi14": 61.5, "squeeze": True, "ema_9_21_just_crossed": False}, "unknown": 1},
        market_regime={"vix": 18.2, "sector_etf": "XLK", "as_of": "2026-12-01T15:59:00+00:00"},
        order_book_state={"spread_pct": 2.5},
        ai_reasoning_log={"confidence": 0.8, "prompt": "…"},
    )
    PaperTradeFactory(owner=trader)  # open: not in the data set
    ClosedTradeFactory(owner=other_trader, close_date=_at(100))
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), provider=RecordedMinuteBars())
    return first, with_context


def _csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_dataset_csv_has_the_documented_columns_and_only_own_closed_trades(api_as, trader, learning_book):
    first, with_context = learning_book
    response = api_as(trader).get("/api/analytics/dataset?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines()[0].split(",") == list(DATASET_COLUMNS)
    rows = _csv(text)
    assert [row["trade_id"] for row in rows] == [str(first.pk), str(with_context.pk)]
    row = rows[1]
    assert (row["signals_1m_rsi14"], row["signals_1m_squeeze"], row["signals_5m_rsi14"]) == ("61.5", "true", "")
    assert (row["signals_1m_ema_9_21_just_crossed"], row["regime_as_of"]) == ("false", "2026-12-01T15:59:00+00:00")
    assert (row["regime_vix"], row["regime_sector_etf"], row["book_spread_pct"], row["ai_confidence"]) == \
        ("18.2", "XLK", "2.5", "0.8")
    assert (row["dte_at_entry"], row["entry_hour_ny"], row["entry_weekday"]) == ("17", "11", "2")
    assert (row["planned_risk"], row["realized_pnl"], row["r_multiple"], row["win"]) == \
        ("50.00", "-50.00", "-1.0000", "0")
    assert (row["sl_distance_pct"], row["tp_distance_pct"]) == ("25.0000", "50.0000")
    assert rows[0]["target_mfe_pct"] == "45.0000" and rows[0]["mfe_minutes"] == "50.0"
    assert rows[0]["first_touch"] == "NEITHER" and rows[0]["forensics_snapshots"] == "5"


def test_the_collected_entry_context_fills_the_documented_columns(api_as, trader):
    """The contract between the entry-context collector and the data set: what the collector
    writes lands in the documented columns, as of the entry, with nothing left blank but what it
    says is missing (the simulated quote is observed after the entry) and the scanner's AI log."""
    from monitoring.context import entry_context_collect
    from monitoring.marketdata.simulated import SimulatedProvider

    trade = ClosedTradeFactory(owner=trader, ticker="NVDA", strike=Decimal("140"), expiry=date(2026, 12, 18),
                               entry_date=_at(5), close_date=_at(120))
    entry_context_collect(trade_id=trade.pk, owner_id=trader.pk, entry_at=_at(5),
                          provider=SimulatedProvider(seed="dataset", clock=lambda: _at(60)))
    response = api_as(trader).get("/api/analytics/dataset?format=csv")
    [row] = _csv(b"".join(response.streaming_content).decode())
    context_columns = [name for name in DATASET_COLUMNS if name.startswith(("signals_", "regime_", "book_"))]
    blank = [name for name in context_columns if row[name] == ""]
    # The simulated market has no breadth or put/call data: those two are missing (and say why).
    assert set(blank) == {f"book_{key}" for key in ("bid", "ask", "spread_pct", "volume", "open_interest", "delta",
                                                     "gamma", "theta", "vega", "iv", "as_of")} | {
        "regime_advance_decline", "regime_put_call_ratio"}
    assert {row[f"signals_{tf}_squeeze_firing"] for tf in ("1m", "5m", "15m", "1h", "daily")} <= {"true", "false"}
    assert row["ai_confidence"] == ""
    assert row["regime_sector_etf"] == "XLK" and row["signals_daily_trend"] in ("up", "down", "sideways")
    assert row["signals_1m_ema_9_21_just_crossed"] in ("true", "false")
    assert row["signals_as_of"] == row["regime_as_of"] == "2026-12-01T15:05:00+00:00"


def test_dataset_filters_and_constant_queries(api_as, trader, learning_book):
    client = api_as(trader)
    assert len(_csv(b"".join(client.get("/api/analytics/dataset?strategy=breakout").streaming_content).decode())) == 1
    with CaptureQueriesContext(connection) as few:
        b"".join(client.get("/api/analytics/dataset").streaming_content)
    for _ in range(3):
        ClosedTradeFactory(owner=trader)
    with CaptureQueriesContext(connection) as many:
        b"".join(client.get("/api/analytics/dataset").streaming_content)
    assert len(many) == len(few)


def _parquet(content):
    return pq.read_table(io.BytesIO(content))


def test_dataset_parquet_has_the_csv_columns_typed(api_as, trader, learning_book):
    first, with_context = learning_book
    response = api_as(trader).get("/api/analytics/dataset?format=parquet")
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"].endswith('.parquet"')
    table = _parquet(response.content)
    assert table.column_names == list(DATASET_COLUMNS)
    schema = table.schema
    assert schema.field("entry_price").type == pa.decimal128(18, 4)
    assert schema.field("realized_pnl").type == pa.decimal128(18, 2)
    assert schema.field("entry_date").type == pa.timestamp("us", tz="UTC")
    assert schema.field("expiry").type == pa.date32() and schema.field("win").type == pa.bool_()
    assert schema.field("signals_1m_rsi14").type == pa.string()
    rows = table.to_pylist()
    assert [row["trade_id"] for row in rows] == [first.pk, with_context.pk]  # only the trader's closed trades
    row = rows[1]
    assert (row["entry_price"], row["realized_pnl"], row["r_multiple"], row["win"]) == \
        (Decimal("2.0000"), Decimal("-50.00"), Decimal("-1.0000"), False)
    assert row["entry_date"] == _at(60) and row["expiry"] == date(2026, 12, 18)
    assert (row["signals_1m_rsi14"], row["regime_sector_etf"], row["signals_5m_rsi14"]) == ("61.5", "XLK", None)
    assert rows[0]["target_mfe_pct"] == Decimal("45.0000") and rows[0]["mfe_minutes"] == 50.0
    # Its first hour has a 30' hole and the source had no bars of the contract.
    assert (rows[0]["forensics_snapshots"], rows[0]["forensics_bars"], rows[0]["forensics_bar_fallback"]) == \
        (5, 0, "NO_BARS")
    # The same values as the CSV, cell for cell.
    text = b"".join(api_as(trader).get("/api/analytics/dataset?format=csv").streaming_content).decode()
    assert [line["realized_pnl"] for line in _csv(text)] == [str(value) for value in table["realized_pnl"].to_pylist()]


def test_an_empty_parquet_data_set_still_has_its_columns(api_as, trader):
    table = _parquet(api_as(trader).get("/api/analytics/dataset?format=parquet").content)
    assert table.num_rows == 0 and table.column_names == list(DATASET_COLUMNS)


@pytest.mark.parametrize("wanted", ["xlsx", "json", ""])
def test_an_unknown_format_is_a_field_error(api_as, trader, wanted):
    response = api_as(trader).get(f"/api/analytics/dataset?format={wanted}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "format" and "csv, parquet" in response.json()["errors"][0]["detail"]


def test_a_bad_filter_on_the_csv_export_is_a_json_error(api_as, trader):
    response = api_as(trader).get("/api/analytics/dataset?format=csv&from=nope")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "from"


def test_export_dataset_command_writes_one_users_rows(trader, learning_book, tmp_path):
    target = tmp_path / "alice.csv"
    call_command("export_dataset", "alice", "--output", str(target))
    rows = _csv(target.read_text())
    assert [row["trade_id"] for row in rows] == [str(trade.pk) for trade in learning_book]


@pytest.mark.parametrize("url", ["/api/analytics/calibration", "/api/analytics/exit-replay",
                                 "/api/analytics/fill-quality"])
def test_reports_take_a_constant_number_of_queries(api_as, trader, url):
    client = api_as(trader)
    _path_trade(trader)
    PaperFillFactory(owner=trader)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for strategy in ("a", "b", "c"):
        _path_trade(trader, strategy=strategy)
        PaperFillFactory(owner=trader, option_symbol="QQQ261204P00500000")
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many) == len(few)


def test_export_dataset_command_writes_parquet(trader, learning_book, tmp_path):
    from django.core.management.base import CommandError

    target = tmp_path / "alice.parquet"
    call_command("export_dataset", "alice", "--format", "parquet", "--output", str(target))
    table = pq.read_table(target)
    assert table.column_names == list(DATASET_COLUMNS)
    assert table["trade_id"].to_pylist() == [trade.pk for trade in learning_book]
    with pytest.raises(CommandError, match="--output"):
        call_command("export_dataset", "alice", "--format", "parquet")


def test_export_dataset_command_to_stdout_and_unknown_user(trader, learning_book):
    from django.core.management.base import CommandError

    out = io.StringIO()
    call_command("export_dataset", "alice", "--strategy", "breakout", stdout=out)
    assert [row["trade_id"] for row in _csv(out.getvalue())] == [str(learning_book[1].pk)]
    with pytest.raises(CommandError):
        call_command("export_dataset", "nobody")
