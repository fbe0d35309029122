"""Multi-leg positions on the portfolio, in a real Chromium at desktop and phone width (issue 19): an
OPEN short iron condor (credit 1.50, 2 units) and a long call vertical (debit 2.20, 2 units), made by
factories and marked by two real monitor cycles (`snapshot_positions`) against a hand-set data source.
Each row names the strategy, lists its legs compactly and what it was opened for, and shows the held
mark and P&L; the detail has the legs table (each leg's entry, bid, ask and mark) and the chart of the
net mark from the snapshots. Screenshots go to $SPREAD_SCREENSHOTS (or a folder in the temporary
directory)."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from monitoring.services import snapshot_positions
from tests import in_a_browser
from tests.factories import UserFactory, marks_spread_trade
from tests.fakes.market import HandOptionQuotes
from tests.in_a_browser import IN_SESSION, WIDTHS, page_overflow, screenshot_folder, shoot, width_name
from trades import services
from trades.models import StrategyType

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday Dec 1, 2026, 10:00 in New York, standing still

SCREENSHOTS = screenshot_folder("SPREAD_SCREENSHOTS", "tradeoptions-spreads")
NBSP = "\u00a0"


def sym(strike: int, right: str) -> str:
    return f"SPY261218{right}{strike * 1000:08d}"


CONDOR = [(sym(500, "P"), "SHORT", 1, "1.60"), (sym(495, "P"), "LONG", 1, "0.90"),
          (sym(600, "C"), "SHORT", 1, "1.50"), (sym(605, "C"), "LONG", 1, "0.70")]
VERTICAL = [(sym(570, "C"), "LONG", 1, "4.30"), (sym(575, "C"), "SHORT", 1, "2.10")]
# The first cycle: the condor costs 1.30 − 0.60 + 0.90 − 0.40 = 1.20 to buy back, the vertical is
# worth 4.70 − 2.40 = 2.30; the second: the short put eased to 1.00 (0.90) and the long call rose to
# 4.90 (2.50).
FIRST = {sym(500, "P"): ("1.25", "1.35"), sym(495, "P"): ("0.55", "0.65"), sym(600, "C"): ("0.85", "0.95"),
         sym(605, "C"): ("0.35", "0.45"), sym(570, "C"): ("4.60", "4.80"), sym(575, "C"): ("2.30", "2.50")}
SECOND = {**FIRST, sym(500, "P"): ("0.95", "1.05"), sym(570, "C"): ("4.80", "5.00")}


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    services.account_settings_update(user=user, changes={"auto_refresh": False})  # the test says when to refresh
    return user


@pytest.fixture
def marked(alice, market_clock):
    """The two spreads, marked by two monitor cycles a slot apart."""
    condor = marks_spread_trade(alice, CONDOR, strategy_type=StrategyType.IRON_CONDOR, qty=2)
    vertical = marks_spread_trade(alice, VERTICAL, strategy_type=StrategyType.VERTICAL, qty=2)
    earlier = IN_SESSION - timedelta(minutes=1)
    assert snapshot_positions(provider=HandOptionQuotes(FIRST, at=earlier), at=earlier).written == 2
    assert snapshot_positions(provider=HandOptionQuotes(SECOND, at=IN_SESSION), at=IN_SESSION).written == 2
    return condor, vertical


def text(locator) -> str:
    return locator.text_content().replace(NBSP, " ").strip()


@WIDTHS
def test_a_spreads_row_shows_its_legs_held_mark_and_pnl_and_its_detail_the_legs_and_net_chart(
        device, alice, marked, viewport):
    condor, vertical = marked
    page = device(viewport=viewport, at=IN_SESSION)
    row = page.locator(f'tr.position[data-trade-id="{condor.pk}"]')
    expect(row).to_be_visible()
    assert text(row.locator(".contract-label")) == "SPY Iron condor Dec 18, 2026"
    assert text(row.locator(".spread-legs")) == "−1 SPY 500P · +1 SPY 495P · −1 SPY 600C · +1 SPY 605C"
    assert text(row.locator(".spread-summary .muted")) == "credit 1.50 · 2 units"
    assert text(row.locator(".mark")) == "0.90"  # buying it back costs 0.90 a share
    expect(row.locator(".mark")).to_have_attribute("title", "close at natural 1.10 / open at natural 0.70")
    assert text(row.locator(".pnl-amount").first) == "+$120.00"  # (1.50 − 0.90) × 2 units × 100, no costs
    assert text(row.locator(".sl .distance")).startswith("2.10 away")  # its stop at 3.00 is above the mark
    assert text(row.locator(".tp .distance")).startswith("0.15 away")  # its target at 0.75 is below
    assert row.locator(".mark-stale").count() == 0

    other = page.locator(f'tr.position[data-trade-id="{vertical.pk}"]')
    assert text(other.locator(".contract-label")) == "SPY Vertical Dec 18, 2026"
    assert text(other.locator(".spread-legs")) == "+1 SPY 570C · −1 SPY 575C"
    assert text(other.locator(".spread-summary .muted")) == "debit 2.20 · 2 units"
    assert text(other.locator(".mark")) == "2.50"
    assert text(other.locator(".pnl-amount").first) == "+$60.00"  # (2.50 − 2.20) × 2 × 100

    row.locator(".toggle").click()
    detail = page.locator(f"#detail-{condor.pk}")
    legs = detail.locator(".legs-table tbody tr")
    expect(legs).to_have_count(4)
    expect(detail.locator(".spread-legs-table h3")).to_have_text("Iron condor: 4 legs, credit 1.50")
    first = [text(cell) for cell in legs.nth(0).locator("th, td").all()]
    assert first == ["Short", "1", "SPY Dec 18, 2026 500 put", "1.60", "0.95", "1.05", "1.00"]
    last = [text(cell) for cell in legs.nth(3).locator("th, td").all()]
    assert last == ["Long", "1", "SPY Dec 18, 2026 605 call", "0.70", "0.35", "0.45", "0.40"]
    expect(detail.locator(".detail-chart > h3")).to_have_text("Net mark vs entry, stop-loss and take-profit")
    expect(detail.locator(".chart-canvas canvas").first).to_be_visible()
    expect(detail.locator(".chart-canvas")).to_have_attribute(
        "aria-label", "Mark price over 2 snapshots, last 0.90; entry, stop-loss and take-profit shown as lines.")
    expect(detail.locator(".facts")).to_contain_text("Close at natural (pay)")
    assert page_overflow(page) == 0
    shoot(page, f"spread-condor-{width_name(viewport)}", SCREENSHOTS)
    assert page.problems == []


def test_a_spread_whose_leg_had_no_quote_reads_stale(device, alice, marked):
    condor, _ = marked
    book = {symbol: quote for symbol, quote in SECOND.items() if symbol != sym(605, "C")}
    later = IN_SESSION + timedelta(minutes=1)
    assert snapshot_positions(provider=HandOptionQuotes(book, at=later), at=later).unquoted == 1
    page = device(at=IN_SESSION)
    row = page.locator(f'tr.position[data-trade-id="{condor.pk}"]')
    expect(row.locator(".mark-stale")).to_have_text("stale")
    assert text(row.locator(".mark")) == "0.90"  # the last net every leg made
    assert page.problems == []
