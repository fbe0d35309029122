"""One trade, fully explained: the trade detail's `explanation` (greeks attribution, forensic
targets, entry context in words) and the attribution summed on GET /api/analytics/performance.

The hand-computed trade: 2 contracts bought at $4.20 at 15:00 UTC, sold at $5.00 at 16:00, three
snapshots half an hour apart (theta per calendar day: half an hour is 1/48 of a day).
  15:00 → 15:30: Δ 0.50 × dS 1.00 = 0.50; ½ Γ 0.02 × 1² = 0.01; Θ −0.10 × 1/48 = −0.0020833;
                 ν 0.05 × 1 IV point = 0.05; per share, × 200 shares: $100.00, $2.00, −$0.4167, $10.00.
  15:30 → 16:00: Δ 0.60 × 0.20 = 0.12; ½ × 0.02 × 0.04 = 0.0004; Θ −0.12 / 48 = −0.0025; no IV move:
                 $24.00, $0.08, −$0.50, $0.
  Sums: delta $124.00, gamma $2.08, theta −$0.92, vega $10.00 = $135.16. The marks moved 4.30 → 4.98:
  $136.00, so the residual is $0.84. Realized $160.00: the fills against the marks, $24.00.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.models import BarFallback, FirstTouch, TradeForensics
from tests.factories import ClosedTradeFactory, PaperTradeFactory, PriceSnapshotFactory
from tradeoptions import tenancy
from trades.models import OptionType, TradeStatus

ENTRY = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)
PATH = [  # mark, underlying, iv, delta, gamma, theta, vega
    ("4.30", "570.00", "0.25", "0.50", "0.02", "-0.10", "0.05"),
    ("4.86", "571.00", "0.26", "0.60", "0.02", "-0.12", "0.05"),
    ("4.98", "571.20", "0.26", "0.62", "0.02", "-0.12", "0.05"),
]
PERFORMANCE = "/api/analytics/performance"


def _snapshots(trade, path=PATH, *, start=ENTRY, greeks=True):
    for n, (mark, spot, iv, delta, gamma, theta, vega) in enumerate(path):
        values = dict(underlying=Decimal(spot), iv=Decimal(iv), delta=Decimal(delta), gamma=Decimal(gamma),
                      theta=Decimal(theta), vega=Decimal(vega)) if greeks else {}
        PriceSnapshotFactory(trade=trade, timestamp=start + n * STEP + timedelta(seconds=5),
                             quote_time=start + n * STEP, mark_price=Decimal(mark), bid=None, ask=None, **values)


def _closed(owner, **fields):
    return ClosedTradeFactory(owner=owner, entry_date=ENTRY, close_date=ENTRY + 2 * STEP + timedelta(seconds=5),
                              entry_price=Decimal("4.20"), close_price=Decimal("5.00"), qty=2, **fields)


def _detail(api_as, user, trade):
    response = api_as(user).get(f"/api/trades/{trade.pk}")
    assert response.status_code == 200
    return response.json()["explanation"]


def test_the_detail_splits_the_pnl_into_the_greeks_as_computed_by_hand(api_as, trader):
    trade = _closed(trader)
    _snapshots(trade)
    split = _detail(api_as, trader, trade)["attribution"]
    assert split["available"] is True and split["note"] == "" and split["theta_days"] == "calendar"
    assert {name: split[name] for name in ("delta", "gamma", "theta", "vega", "residual", "execution", "pnl")} == {
        "delta": "124.00", "gamma": "2.08", "theta": "-0.92", "vega": "10.00", "residual": "0.84",
        "execution": "24.00", "pnl": "160.00"}
    assert (split["snapshots"], split["steps"], split["steps_without_greeks"]) == (3, 2, 0)
    assert split["unattributed"] == "0.00"


def test_snapshots_without_greeks_say_attribution_is_unavailable_and_why(api_as, trader):
    blind = _closed(trader)
    _snapshots(blind, greeks=False)
    split = _detail(api_as, trader, blind)["attribution"]
    assert split["available"] is False and "carry no greeks" in split["note"]
    assert split["delta"] is None and split["theta"] is None and split["pnl"] == "160.00"
    bare = _closed(trader)
    assert _detail(api_as, trader, bare)["attribution"]["note"] == "No price snapshots were recorded while the " \
                                                                   "trade was open."
    pending = PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_date=None, entry_price=None)
    assert "has not filled" in _detail(api_as, trader, pending)["attribution"]["note"]


def test_an_open_position_is_explained_up_to_its_latest_mark(api_as, trader):
    trade = PaperTradeFactory(owner=trader, entry_date=ENTRY, entry_price=Decimal("4.20"), qty=2,
                              current_price=Decimal("4.98"), unrealized_pnl=Decimal("156.00"))
    _snapshots(trade)
    split = _detail(api_as, trader, trade)["attribution"]
    assert (split["pnl"], split["delta"], split["theta"], split["execution"]) == ("156.00", "124.00", "-0.92",
                                                                                  "20.00")


def test_the_detail_reads_its_forensic_targets_in_words(api_as, trader):
    trade = _closed(trader)
    assert _detail(api_as, trader, trade)["forensics"] == {"available": False,
                                                           "note": "Computed nightly once the trade has closed."}
    with tenancy.acting_as(trader.pk):
        TradeForensics.objects.create(
            trade=trade, owner=trader, pnl_15m=Decimal("30.00"), pnl_1h=Decimal("152.00"), mfe_pct=Decimal("20.5"),
            mae_pct=Decimal("-3.25"), mfe_at=ENTRY + timedelta(minutes=42), mae_at=ENTRY + timedelta(minutes=3),
            first_touch=FirstTouch.TP, first_touch_at=ENTRY + timedelta(minutes=50), snapshot_count=3,
            computed_at=ENTRY + timedelta(hours=8), bar_fallback=BarFallback.NOT_NEEDED)
    forensics = _detail(api_as, trader, trade)["forensics"]
    assert forensics["available"] is True
    assert (forensics["mfe_pct"], forensics["mae_pct"], forensics["pnl_15m"], forensics["pnl_1h"]) == (
        "20.5000", "-3.2500", "30.00", "152.00")
    assert (forensics["minutes_to_mfe"], forensics["minutes_to_mae"], forensics["minutes_to_first_touch"]) == (
        42.0, 3.0, 50.0)
    assert forensics["first_touch_label"] == "Take-profit touched first"


def test_the_entry_context_reads_with_labels_and_units(api_as, trader):
    trade = _closed(trader, signals_snapshot={
        "5m": {"rsi14": 61.234, "macd_hist": -0.0123, "ema_9_21_cross": "above", "squeeze": True,
               "squeeze_firing": False, "trend": "up", "sma200_distance_pct": 1.5, "bars": 300,
               "as_of": "2026-12-01T14:55:00+00:00"},
        "as_of": "2026-12-01T14:55:00+00:00", "source": "simulated", "missing": {"1m": "No 1m bars of SPY."},
    }, market_regime={
        "spy_price": 590.1, "spy_change_pct": -0.42, "vix": 17.3, "sector_etf": "XLK", "sector_corr_30d": 0.81,
        "internals": {"advance_decline": {"value": None, "missing": "The simulated market has no breadth data."},
                      "put_call_ratio": {"value": 0.92, "missing": ""}},
        "as_of": "2026-12-01T14:59:00+00:00", "source": "simulated", "missing": {},
    })
    context = _detail(api_as, trader, trade)["entry_context"]
    (five,) = context["signals"]
    assert five["label"] == "5 minutes"
    rows = {row["label"]: row["text"] for row in five["rows"]}
    assert rows == {"RSI (14)": "61.2", "MACD histogram": "-0.0123", "EMA 9 against EMA 21": "9 above 21",
                    "In squeeze (Bollinger inside Keltner)": "Yes", "Squeeze firing (released on this bar)": "No",
                    "Trend (50 and 200-bar averages)": "Up", "Distance from the 200-bar average": "+1.50 %",
                    "Bars used": "300"}
    regime = {row["label"]: row["text"] for row in context["regime"]}
    assert regime == {"SPY": "$590.10", "SPY change on the day": "-0.42 %", "VIX": "17.30", "Sector ETF": "XLK",
                      "Correlation with the sector (30 days)": "0.81",
                      "Advance/decline (advancers ÷ decliners)": "Not available", "Put/call ratio (volume)": "0.92"}
    assert {"label": "1 minute", "reason": "No 1m bars of SPY."} in context["missing"]
    assert {"label": "Advance/decline (advancers ÷ decliners)",
            "reason": "The simulated market has no breadth data."} in context["missing"]


def test_another_traders_trade_has_no_detail_to_explain(api_as, trader, other_trader):
    trade = _closed(other_trader)
    _snapshots(trade)
    assert api_as(trader).get(f"/api/trades/{trade.pk}").status_code == 404


@pytest.fixture
def attributed_book(trader, other_trader):
    call = _closed(trader, option_type=OptionType.CALL, strategy="momentum")
    _snapshots(call)
    # A put, a day later, that lost: its price fell as the stock rose and time passed.
    put_path = [("3.00", "570.00", "0.30", "-0.40", "0.02", "-0.20", "0.06"),
                ("2.50", "571.00", "0.30", "-0.35", "0.02", "-0.20", "0.06")]
    put = ClosedTradeFactory(owner=trader, option_type=OptionType.PUT, strategy="", qty=1,
                             entry_date=ENTRY + timedelta(days=1), entry_price=Decimal("3.05"),
                             close_date=ENTRY + timedelta(days=1) + STEP + timedelta(seconds=5),
                             close_price=Decimal("2.45"))
    _snapshots(put, put_path, start=ENTRY + timedelta(days=1))
    _closed(trader)  # no snapshots: counted apart, not summed as zeros
    _snapshots(_closed(other_trader))  # another trader's: never counted
    return call, put


def test_performance_sums_the_attribution_by_option_type_and_strategy(api_as, trader, attributed_book):
    # The put: Δ −0.40 × 1 = −0.40 → −$40.00; ½ × 0.02 × 1 = $1.00; −0.20 / 48 → −$0.42; residual
    # −$50.00 − (−$39.42) = −$10.58; fills: realized −$60.00 against −$50.00 of marks: −$10.00.
    body = api_as(trader).get(PERFORMANCE).json()["greeks_attribution"]
    assert (body["trades"], body["trades_without_attribution"], body["theta_days"]) == (3, 1, "calendar")
    by_type = {row["option_type"]: row for row in body["by_option_type"]}
    assert {name: by_type["PUT"][name] for name in ("trades", "delta", "gamma", "theta", "vega", "residual",
                                                    "execution", "pnl")} == {
        "trades": 1, "delta": "-40.00", "gamma": "1.00", "theta": "-0.42", "vega": "0.00", "residual": "-10.58",
        "execution": "-10.00", "pnl": "-60.00"}
    assert (by_type["CALL"]["theta"], by_type["CALL"]["pnl"]) == ("-0.92", "160.00")
    assert body["total"]["theta"] == "-1.34" and body["total"]["pnl"] == "100.00"
    strategies = {row["strategy"]: row["theta"] for row in body["by_strategy"]}
    assert strategies == {"No strategy": "-0.42", "momentum": "-0.92"}
    assert body["sentence"] == "Time decay (theta): your calls lost $0.92 and your puts lost $0.42."


def test_performance_attribution_follows_the_period_filter(api_as, trader, attributed_book):
    body = api_as(trader).get(PERFORMANCE, {"from": "2026-12-02", "to": "2026-12-02"}).json()["greeks_attribution"]
    assert body["trades"] == 1 and [row["option_type"] for row in body["by_option_type"]] == ["PUT"]
    assert body["sentence"] == "Time decay (theta): your puts lost $0.42."
    empty = api_as(trader).get(PERFORMANCE, {"from": "2026-12-20"}).json()["greeks_attribution"]
    assert empty["trades"] == 0 and empty["total"]["theta"] == "0.00" and empty["sentence"] == ""


def test_the_data_set_documents_exactly_its_columns():
    from pathlib import Path

    from analytics.selectors import DATASET_COLUMNS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "dataset.md").read_text()
    assert f"`analytics.selectors.DATASET_COLUMNS`, {len(DATASET_COLUMNS)} columns)" in docs
    assert {"signals_1m_squeeze_firing", "regime_advance_decline", "regime_put_call_ratio"} <= set(DATASET_COLUMNS)


def test_the_nightly_forensics_store_the_split_and_performance_sums_what_is_stored(api_as, trader, attributed_book):
    from analytics.services import trade_targets_compute
    from tests.fakes.market import RecordedMinuteBars

    call, put = attributed_book
    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), owner_id=trader.pk,
                          provider=RecordedMinuteBars())
    with tenancy.acting_as(trader.pk):
        stored = TradeForensics.objects.get(trade=call)
        bare = TradeForensics.objects.exclude(trade=call).get(trade__close_date__date=date(2026, 12, 1))
    assert (stored.greeks_delta, stored.greeks_gamma, stored.greeks_theta, stored.greeks_vega) == (
        Decimal("124.00"), Decimal("2.08"), Decimal("-0.92"), Decimal("10.00"))
    assert (stored.greeks_residual, stored.greeks_execution, stored.greeks_unattributed) == (
        Decimal("0.84"), Decimal("24.00"), Decimal("0.00"))
    assert (stored.greeks_steps, stored.greeks_steps_missing) == (2, 0)
    assert bare.greeks_delta is None and bare.greeks_steps == 0  # no snapshots: nothing stored, not zeros
    # Performance reads the stored split (the put, closed the next day, is still attributed live).
    with tenancy.acting_as(trader.pk):
        TradeForensics.objects.filter(trade=call).update(greeks_theta=Decimal("-5.00"))
    body = api_as(trader).get(PERFORMANCE).json()["greeks_attribution"]
    by_type = {row["option_type"]: row["theta"] for row in body["by_option_type"]}
    assert by_type == {"CALL": "-5.00", "PUT": "-0.42"}
    assert body["trades_without_attribution"] == 1


def test_the_attribution_from_the_performance_frame_is_the_one_read_on_its_own(trader, attributed_book):
    """Performance hands greeks_attribution the trades' frame instead of reading them again: the
    same answer, for trades the nightly forensics stored (the call) and trades attributed live."""
    from analytics import selectors
    from analytics.services import trade_targets_compute
    from tests.fakes.market import RecordedMinuteBars

    trade_targets_compute(closed_from=date(2026, 12, 1), closed_to=date(2026, 12, 1), owner_id=trader.pk,
                          provider=RecordedMinuteBars())
    with tenancy.acting_as(trader.pk):
        trades = selectors.closed_trades(user=trader)
        alone = selectors.greeks_attribution(trades)
        from_frame = selectors.greeks_attribution(trades, selectors.trade_frame(trades, attribution=True))
    assert from_frame == alone and alone["trades"] == 3 and alone["total"]["theta"] == "-1.34"
