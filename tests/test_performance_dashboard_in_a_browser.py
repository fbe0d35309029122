"""The Performance tab as a dashboard, in a real Chromium, on a hand-computed book of 14 closed
trades: every KPI card against the API and against the figures worked out by hand, the period
picker (from a pinned "now"), sortable breakdowns, one-line explanations that open on a tap, and
no sideways scrolling on a phone. Screenshots go to .data/screenshots/."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from playwright.sync_api import expect

from analytics import selectors
from tests.factories import ClosedTradeFactory
from tests.test_portfolio_in_a_browser import PHONE, alice, device, shoot  # noqa: F401  (fixtures)
from tradeoptions import tenancy
from trades.models import CloseReason

pytestmark = pytest.mark.django_db(transaction=True)

# Five wins, then nine losses, one a day from Monday 2 Nov 2026, closed 15:00 UTC (10:00 New York).
WINS = ["500.00", "450.00", "400.00", "300.00", "284.50"]
LOSSES = ["-75.00"] * 8 + ["-100.00"]
FIRST = datetime(2026, 11, 2, 15, tzinfo=UTC)
NOW = datetime(2026, 11, 19, 20, tzinfo=UTC)  # Thursday 19 Nov, 15:00 in New York: the 14th trade's day


@pytest.fixture
def book(alice):  # noqa: F811 (the imported fixture)
    """$2.00 entries with a $1.00 stop on one contract: $100 of planned risk each, so R = P&L / 100."""
    day, trades = FIRST, []
    for pnl in [*WINS, *LOSSES]:
        while day.weekday() >= 5:
            day += timedelta(days=1)
        trades.append(ClosedTradeFactory(
            owner=alice, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.00"), tp_price=Decimal("8.00"),
            entry_date=day - timedelta(hours=2), close_date=day, close_price=Decimal("2.00") + Decimal(pnl) / 100,
            realized_pnl=Decimal(pnl), hold_duration_h=Decimal("2.00"), ticker="SPY" if len(trades) < 10 else "QQQ",
            strategy="momentum" if len(trades) % 2 else "breakout",
            close_reason=CloseReason.TP_HIT if Decimal(pnl) > 0 else CloseReason.SL_HIT))
        day += timedelta(days=1)
    assert trades[-1].close_date.date() == NOW.date()
    return trades


# Worked out by hand: net 1,934.50 − 700 = 1,234.50; 5 of 14 won; profit factor 1,934.50 / 700;
# expectancy 1,234.50 / 14 = 88.178…; R 12.345 / 14 = 0.8818; the drawdown is the 9 losses after
# the peak of 6,934.50: −700 = −10.09 %; every hold 2 h; 14 sessions (< 20): no Sharpe yet.
BY_HAND = {
    "net_pnl": "+$1,234.50", "win_rate": "35.7\u00a0%", "profit_factor": "2.76",
    "expectancy": "+$88.18 · +0.88\u00a0R", "max_drawdown": "\u2212$700.00", "trades": "14", "avg_hold": "2h 0m",
    "risk_adjusted": "needs 6 more trading days",
}


def _kpis(page):
    return {key: page.locator(f".kpi[data-kpi={key}] .kpi-value").inner_text() for key in BY_HAND}


def test_every_kpi_matches_the_api_and_the_hand_computed_book(device, alice, book):  # noqa: F811
    with tenancy.acting_as(alice.pk):
        api = selectors.performance(user=alice)
    assert api["summary"]["net_pnl"] == "1234.50" and api["summary"]["win_rate"] == 0.3571
    assert api["summary"]["profit_factor"] == 2.7636 and api["summary"]["expectancy"] == "88.18"
    assert api["max_drawdown"]["amount"] == "-700.00" and api["risk_adjusted"]["needs_days"] == 6
    page = device()
    page.click("#tab-performance")
    cards = page.locator(".kpi-grid")
    expect(cards.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,234.50")
    assert _kpis(page) == BY_HAND
    low, high = api["summary"]["win_rate_ci"]
    expect(cards.locator(".kpi[data-kpi=win_rate] .kpi-sub")).to_have_text(
        f"95 % range {low * 100:.1f}\u00a0% to {high * 100:.1f}\u00a0%")
    expect(page.locator(".period-shown")).to_contain_text("All time")
    # Above the fold: every card fits in the first screen, nothing scrolls sideways.
    viewport = page.viewport_size
    box = cards.bounding_box()
    assert box["y"] + box["height"] <= viewport["height"], box
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    # No raw field names, ISO stamps or the developer's money note on the page.
    text = page.locator("#performance").inner_text()
    for raw in ("net_pnl", "win_rate", "Money: strings", "T15:00:00Z", "0.3571"):
        assert raw not in text, raw
    # One line of explanation on a tap (and on hover, as the title).
    win = cards.locator(".kpi[data-kpi=win_rate]")
    expect(win.locator(".explain-text")).to_be_hidden()
    win.locator(".explain summary").click()
    expect(win.locator(".explain-text")).to_be_visible()
    expect(win.locator(".explain-text")).to_contain_text("Wilson")
    # The equity curve with its drawdown, daily P&L and the distribution are drawn.
    for name in ("equity_curve", "daily", "pnl_distribution"):
        expect(page.locator(f"[data-metric={name}] canvas").first).to_be_visible()
    expect(page.locator("[data-metric=equity_curve] .chart-caption")).to_contain_text("deepest \u2212$700.00")
    shoot(page, "desktop-performance-dashboard")
    assert page.problems == []


def test_breakdowns_sort_and_switch(device, alice, book):  # noqa: F811
    page = device()
    page.click("#tab-performance")
    table = page.locator("[data-metric=breakdowns] .breakdown[data-breakdown=by_strategy] table")
    # breakout: trades 1, 3, 5 won (500 + 400 + 284.50), four losses (−75 × 3, −100): 884.50.
    expect(table.locator("tbody tr").first.locator("th")).to_have_text("breakout")
    expect(table.locator("tbody tr").first.locator("td[data-column=net_pnl]")).to_contain_text("+$884.50")
    table.locator("th[data-column=net_pnl] button").click()  # now ascending
    expect(table.locator("th[data-column=net_pnl]")).to_have_attribute("aria-sort", "ascending")
    expect(table.locator("tbody tr").first.locator("th")).to_have_text("momentum")
    page.click(".breakdown-picker button[data-breakdown=by_entry_hour]")
    hours = page.locator(".breakdown[data-breakdown=by_entry_hour] tbody th")
    expect(hours).to_have_text(["08:00–09:00 ET"])  # entered 13:00 UTC = 08:00 in New York (EST)
    page.click(".breakdown-picker button[data-breakdown=by_close_reason]")
    reasons = page.locator(".breakdown[data-breakdown=by_close_reason]")
    expect(reasons.locator("tbody tr[data-key=TP_HIT] td[data-column=win_rate]")).to_contain_text("100.0\u00a0%")
    expect(reasons.locator("tbody tr[data-key=SL_HIT] td[data-column=avg_hold_hours]")).to_have_text("2h 0m")
    reasons.locator("th[data-column=trades] button").click()
    expect(reasons.locator("tbody tr").first).to_have_attribute("data-key", "SL_HIT")  # 9 before 5
    # The refresh (every 15 s, or by hand) keeps what the trader chose.
    with page.expect_response(lambda response: "/api/analytics/exit-replay" in response.url):
        page.click("#refresh-all")
    picked = page.locator(".breakdown-picker button[data-breakdown=by_close_reason]")
    expect(picked).to_have_attribute("aria-pressed", "true")
    expect(reasons.locator("th[data-column=trades]")).to_have_attribute("aria-sort", "descending")
    assert page.problems == []


def test_a_greeks_attribution_in_the_answer_gets_its_card(device, alice, book):  # noqa: F811
    """The attribution is another part's field of the same answer; here it is added on the way in."""
    attribution = {"trades": 14, "trades_without_attribution": 4,
                   "sentence": "Time decay (theta): your calls lost $84.10.",
                   "total": {"trades": 10, "delta": "412.00", "gamma": "30.50", "theta": "-84.10", "vega": "-12.00",
                             "unattributed": "3.20", "execution": "-1.50", "pnl": "348.10"}}

    def add_attribution(route):
        answer = route.fetch().json()
        route.fulfill(json={**answer, "greeks_attribution": attribution})

    page = device()
    page.route("**/api/analytics/performance?*", add_attribution)
    page.click("#tab-performance")
    greeks = page.locator(".kpi[data-kpi=greeks]")
    expect(greeks.locator("dt")).to_have_text(["delta", "gamma", "theta", "vega", "unattributed", "execution"])
    minus = "\u2212"
    expect(greeks.locator("dd")).to_have_text(
        ["+$412.00", "+$30.50", f"{minus}$84.10", f"{minus}$12.00", "+$3.20", f"{minus}$1.50"])
    expect(greeks.locator(".kpi-note")).to_have_text("Time decay (theta): your calls lost $84.10.")
    expect(greeks.locator(".kpi-sub")).to_have_text("10 of 14 trades attributed")
    assert page.problems == []


def test_periods_from_a_pinned_now_and_a_bad_range_told_in_words(device, alice, book):  # noqa: F811
    with time_machine.travel(NOW, tick=True):
        page = device()
        page.click("#tab-performance")
        expect(page.locator(".kpi[data-kpi=trades] .kpi-value")).to_have_text("14")
        page.locator(".period-choices label", has_text="Today").click()
        expect(page.locator(".period-shown")).to_contain_text("Today · Nov 19, 2026")
        expect(page.locator(".kpi[data-kpi=trades] .kpi-value")).to_have_text("1")
        expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("\u2212$100.00")
        page.locator(".period-choices label", has_text="Week").click()  # Mon 16 to Thu 19 Nov: four losses
        expect(page.locator(".kpi[data-kpi=trades] .kpi-value")).to_have_text("4")
        expect(page.locator(".kpi[data-kpi=win_rate] .kpi-value")).to_have_text("0.0\u00a0%")
        page.locator(".period-choices label", has_text="Custom").click()
        page.fill("input[name=start]", "2026-11-10")
        page.fill("input[name=end]", "2026-11-02")
        page.click("#performance-custom button[type=submit]")
        expect(page.locator("#performance-end-error")).to_have_text(
            "The range ends before it starts: pick an end on or after the start.")
        page.fill("input[name=start]", "2026-11-02")
        page.fill("input[name=end]", "2026-11-06")
        page.click("#performance-custom button[type=submit]")
        expect(page.locator("#performance-end-error")).to_have_text("")
        expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,934.50")  # the five wins
        expect(page.locator(".kpi[data-kpi=profit_factor] .kpi-value")).to_have_text("no losses")
        assert page.problems == []


def test_the_dashboard_on_a_phone(device, alice, book):  # noqa: F811
    page = device(viewport=PHONE)
    page.click("#tab-performance")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,234.50")
    expect(page.locator(".kpi[data-kpi=win_rate] .kpi-value")).to_have_text("35.7\u00a0%")
    # Picking the tab brings its panel to the top: the KPI cards are above the fold; no sideways scroll.
    for key in BY_HAND:
        box = page.locator(f".kpi[data-kpi={key}]").bounding_box()
        assert box["y"] + box["height"] <= PHONE["height"], (key, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # Breakdown rows are stacked cards with their labels; sorting goes through a menu.
    table = page.locator(".breakdown[data-breakdown=by_strategy]")
    expect(table.locator("thead")).to_be_hidden()
    expect(table.locator(".sort-menu")).to_be_visible()
    table.locator(".sort-menu").select_option("trades")
    expect(table.locator("tbody tr").first.locator("th")).to_have_text("breakout")  # 7 and 7: stable order
    page.locator("[data-metric=calibration]").scroll_into_view_if_needed()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "mobile-performance-dashboard")
    assert page.problems == []
