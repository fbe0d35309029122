"""The Performance tab as a dashboard, in a real Chromium, on a hand-computed book of 14 closed
trades with their commissions and a fee: every KPI card against the API and against the figures
worked out by hand (net, and gross through the basis toggle), the costs card, the period picker
(from a pinned "now"), sortable breakdowns, one-line explanations that open on a tap, and
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
    """$2.00 entries with a $1.00 stop on one contract: $100 of planned risk each, so R = P&L / 100.
    Each pays $0.65 to enter and $0.65 to exit; the last one a $0.05 fee too."""
    day, trades = FIRST, []
    for n, pnl in enumerate([*WINS, *LOSSES]):
        while day.weekday() >= 5:
            day += timedelta(days=1)
        trades.append(ClosedTradeFactory(
            owner=alice, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.00"), tp_price=Decimal("8.00"),
            entry_date=day - timedelta(hours=2), close_date=day, close_price=Decimal("2.00") + Decimal(pnl) / 100,
            realized_pnl=Decimal(pnl), hold_duration_h=Decimal("2.00"), ticker="SPY" if len(trades) < 10 else "QQQ",
            strategy="momentum" if len(trades) % 2 else "breakout",
            close_reason=CloseReason.TP_HIT if Decimal(pnl) > 0 else CloseReason.SL_HIT,
            commission_per_contract=Decimal("0.65"), entry_commission=Decimal("0.65"),
            exit_commission=Decimal("0.65"), fees=Decimal("0.05") if n == len(WINS) + len(LOSSES) - 1 else 0))
        day += timedelta(days=1)
    assert trades[-1].close_date.date() == NOW.date()
    return trades


# Worked out by hand, net of $1.30 of commissions a trade and the $0.05 fee: the wins 1,934.50 −
# 5 × 1.30 = 1,928.00, the losses −700 − 9 × 1.30 − 0.05 = −711.75; net 1,216.25; 5 of 14 won;
# profit factor 1,928.00 / 711.75 = 2.7088; expectancy 1,216.25 / 14 = 86.875 → 86.88; R
# 12.1625 / 14 = 0.87; the drawdown is the 9 losses after the peak of 6,928.00: −711.75 = −10.27 %;
# every hold 2 h; 14 sessions (< 20): no Sharpe yet.
BY_HAND = {
    "net_pnl": "+$1,216.25", "win_rate": "35.7\u00a0%", "profit_factor": "2.71",
    "expectancy": "+$86.88 · +0.87\u00a0R", "max_drawdown": "\u2212$711.75", "trades": "14", "avg_hold": "2h 0m",
    "risk_adjusted": "needs 6 more trading days",
}
# Gross (premiums only): 1,934.50 − 700 = 1,234.50; profit factor 1,934.50 / 700 = 2.76; expectancy
# 1,234.50 / 14 = 88.18, R 0.88; the drawdown −700.00.
GROSS_BY_HAND = {**BY_HAND, "net_pnl": "+$1,234.50", "profit_factor": "2.76", "expectancy": "+$88.18 · +0.88\u00a0R",
                 "max_drawdown": "\u2212$700.00"}
COSTS_BY_HAND = ["+$1,234.50", "\u2212$18.20", "\u2212$0.05", "+$1,216.25"]  # 14 × 1.30 = 18.20


def _kpis(page):
    return {key: page.locator(f".kpi[data-kpi={key}] .kpi-value").inner_text() for key in BY_HAND}


def test_every_kpi_matches_the_api_and_the_hand_computed_book(device, alice, book):  # noqa: F811
    with tenancy.acting_as(alice.pk):
        api = selectors.performance(user=alice)
    assert api["basis"] == "net" and api["summary"]["net_pnl"] == "1216.25" and api["summary"]["win_rate"] == 0.3571
    assert api["summary"]["profit_factor"] == 2.7088 and api["summary"]["expectancy"] == "86.88"
    assert api["max_drawdown"]["amount"] == "-711.75" and api["risk_adjusted"]["needs_days"] == 6
    assert api["costs"] == {"gross_pnl": "1234.50", "commission_total": "18.20", "fees_total": "0.05",
                            "net_pnl": "1216.25"}
    page = device()
    page.click("#tab-performance")
    cards = page.locator(".kpi-grid")
    expect(cards.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,216.25")
    assert _kpis(page) == BY_HAND
    expect(cards.locator(".kpi[data-kpi=net_pnl] .kpi-title")).to_have_text("Net P&L")
    expect(cards.locator(".kpi[data-kpi=costs] dd")).to_have_text(COSTS_BY_HAND)
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
    expect(page.locator("[data-metric=equity_curve] .chart-caption")).to_contain_text("deepest \u2212$711.75")
    shoot(page, "desktop-performance-dashboard")
    assert page.problems == []


def test_the_basis_toggle_shows_gross_and_back_to_net_and_keeps_the_period(device, alice, book):  # noqa: F811
    with tenancy.acting_as(alice.pk):
        api = selectors.performance(user=alice, basis="gross")
    assert (api["summary"]["net_pnl"], api["summary"]["profit_factor"], api["max_drawdown"]["amount"]) == (
        "1234.50", 2.7636, "-700.00")
    page = device()
    page.click("#tab-performance")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,216.25")
    expect(page.locator(".period-shown")).to_contain_text("net of commissions and fees")
    with page.expect_request(lambda request: "/api/analytics/performance?" in request.url
                             and "basis=gross" in request.url) as asked, \
            page.expect_request(lambda request: "/api/analytics/calibration?" in request.url
                                and "basis=gross" in request.url):
        page.locator(".basis-choices label", has_text="Gross").click()
    assert "period=all" in asked.value.url
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-title")).to_have_text("Gross P&L")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,234.50")
    assert _kpis(page) == GROSS_BY_HAND
    expect(page.locator(".period-shown")).to_contain_text("gross: premiums only")
    # The costs are both bases side by side: they do not move with the basis.
    expect(page.locator(".kpi[data-kpi=costs] dd")).to_have_text(COSTS_BY_HAND)
    # Another period keeps the basis; a refresh too.
    page.locator(".period-choices label", has_text="Custom").click()
    page.fill("input[name=start]", "2026-11-02")
    page.fill("input[name=end]", "2026-11-06")
    page.click("#performance-custom button[type=submit]")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,934.50")  # the five wins, gross
    with page.expect_response(lambda response: "/api/analytics/exit-replay" in response.url):
        page.click("#refresh-all")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,934.50")
    page.locator(".basis-choices label", has_text="Net").click()
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-title")).to_have_text("Net P&L")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,928.00")
    expect(page.locator(".period-shown")).to_contain_text("Nov 2, 2026 to Nov 6, 2026")
    shoot(page, "desktop-performance-basis")
    assert page.problems == []


def test_breakdowns_sort_and_switch(device, alice, book):  # noqa: F811
    page = device()
    page.click("#tab-performance")
    table = page.locator("[data-metric=breakdowns] .breakdown[data-breakdown=by_strategy] table")
    # breakout: trades 1, 3, 5 won (500 + 400 + 284.50), four lost 75 each; 7 × 1.30 of commissions: 875.40.
    expect(table.locator("tbody tr").first.locator("th")).to_have_text("breakout")
    expect(table.locator("tbody tr").first.locator("td[data-column=net_pnl]")).to_contain_text("+$875.40")
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
        expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("\u2212$101.35")  # −100 − 1.30 − 0.05
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
        expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,928.00")  # the five wins
        expect(page.locator(".kpi[data-kpi=profit_factor] .kpi-value")).to_have_text("no losses")
        assert page.problems == []


def test_the_dashboard_on_a_phone(device, alice, book):  # noqa: F811
    page = device(viewport=PHONE)
    page.click("#tab-performance")
    expect(page.locator(".kpi[data-kpi=net_pnl] .kpi-value")).to_have_text("+$1,216.25")
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
