"""A trailing stop seen from the portfolio, in a real Chromium at desktop and phone width: the
exit-policy runner moves the stop twice as the option rises (called between page reloads, as the
monitor's order cycle calls it), the position row shows the stop as it now stands with the
policy's chips, the chart draws the stop's path as steps at the moves' times, and the adjust panel
edits the policy (a typo answered beside its field, a save that meets a stop moved meanwhile) and
removes it; an adjust that meets a stop moved meanwhile says so beside the stop. Screenshots go to
$STOP_PATH_SCREENSHOTS (or a folder in the temporary directory)."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from monitoring.models import SnapshotKind
from tests import in_a_browser
from tests.factories import PriceSnapshotFactory, UserFactory
from tests.in_a_browser import IN_SESSION, WIDTHS, page_overflow, screenshot_folder, shoot, width_name
from tests.test_layout_in_a_browser import TIME_AXIS
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday Dec 1, 2026, 10:00 in New York, standing still

SCREENSHOTS = screenshot_folder("STOP_PATH_SCREENSHOTS", "tradeoptions-stop-path")
CONTRACT = "SPY261218C00570000"
NBSP = "\u00a0"

# Rows of the chart's pane (its first canvas) where a run of pixels has the stop's colour: one
# cluster of rows per level the stepped line holds (3.00, then 4.50, then 5.00).
STOP_LEVELS_DRAWN = """(colour) => {
  const pane = document.querySelector(".chart-canvas canvas");
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = colour;
  probe.fillRect(0, 0, 1, 1);
  const want = [...probe.getImageData(0, 0, 1, 1).data.slice(0, 3)].join();
  const { width, height } = pane;
  const data = pane.getContext("2d").getImageData(0, 0, width, height).data;
  const rows = [];
  for (let y = 0; y < height; y++) {
    let count = 0;
    for (let x = 0; x < width; x++) {
      if ([...data.slice((y * width + x) * 4, (y * width + x) * 4 + 3)].join() === want) count++;
    }
    if (count >= 8) rows.push(y);
  }
  return rows.filter((y, index) => index === 0 || y - rows[index - 1] > 2).length;
}"""


# The leftmost column of the chart's pane drawn in `colour` (the stop's: its line starts at the first
# snapshot's place; the mark's own colour also draws its last-value line across the whole pane).
FIRST_X = """(colour) => {
  const pane = document.querySelector(".chart-canvas canvas");
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = colour;
  probe.fillRect(0, 0, 1, 1);
  const want = [...probe.getImageData(0, 0, 1, 1).data.slice(0, 3)].join();
  const { width, height } = pane;
  const data = pane.getContext("2d").getImageData(0, 0, width, height).data;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const at = (y * width + x) * 4;
      if ([...data.slice(at, at + 3)].join() === want) return x / (width / pane.clientWidth);
    }
  }
  return null;
}"""


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    services.account_settings_update(user=user, changes={"auto_refresh": False})  # the test says when to refresh
    return user


@pytest.fixture
def clock(market, market_clock):
    """The wall clock (the server's, the audit events') and the hand-driven market move together."""
    def move(minutes: int):
        market.moment = IN_SESSION + timedelta(minutes=minutes)
        market_clock.move_to(market.moment)
        return market.moment
    market.moment = IN_SESSION
    return move


def runner_looks(market, bid: str, ask: str) -> None:
    """One look of the exit-policy runner at the market, as the monitor's order cycle makes it."""
    market.set_quote(CONTRACT, bid, ask)
    report = services.exit_policies_apply(
        option_bids=lambda symbols: {symbol: quote.bid for symbol, quote in market.quotes(symbols).items()},
        underlying_prices=lambda tickers: {}, now=market.moment, today=market.moment.date(), session_close=None,
        market=market)
    assert report.stops_moved == 1


def trailing_trade(user) -> PaperTrade:
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"),
                                   expiry=IN_SESSION.date().replace(day=18), qty=2, sl_price=Decimal("3.00"),
                                   tp_price=Decimal("6.50"), exit_policy={"trail_pct": "10", "trail_after_pct": "10"})
    trade = services.trade_open(user=user, data=data).trade
    assert trade.status == TradeStatus.OPEN and trade.entry_price == Decimal("4.30")
    for minute, mark in ((1, "4.40"), (2, "4.70"), (4, "5.10"), (5, "5.40"), (7, "5.70"), (8, "5.60")):
        PriceSnapshotFactory(trade=trade, owner=user, timestamp=IN_SESSION + timedelta(minutes=minute),
                             kind=SnapshotKind.INTRADAY, mark_price=Decimal(mark))
    return trade


def stored(trade) -> PaperTrade:
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk)


@WIDTHS
def test_a_trailing_stops_moves_show_in_the_row_and_the_chart_and_the_panel_edits_the_policy(
        device, market, alice, clock, settings, viewport):
    settings.EXIT_POLICY_MIN_INTERVAL_SECONDS = 60
    name = f"{width_name(viewport)}-stop-path"
    trade = trailing_trade(alice)
    page = device(viewport=viewport, at=IN_SESSION)
    row = page.locator(f'#positions tr.position[data-trade-id="{trade.pk}"]')
    expect(row.locator("td.sl .exit > span").first).to_have_text("3.00")
    expect(row.locator(".policy-chip")).to_have_text([f"trail 10{NBSP}% after +10{NBSP}%"])

    # The option rises: the runner trails the stop to 4.50 at 10:03, then to 5.00 at 10:06.
    first = clock(3)
    runner_looks(market, "5.00", "5.20")
    page.click("#refresh-all")
    expect(row.locator("td.sl .exit > span").first).to_have_text("4.50")
    second = clock(6)
    runner_looks(market, "5.60", "5.80")
    page.reload()
    row = page.locator(f'#positions tr.position[data-trade-id="{trade.pk}"]')
    expect(row.locator("td.sl .exit > span").first).to_have_text("5.00")
    expect(row.locator(".trail-note")).to_have_text("trailing the best bid 5.60")
    expect(row.locator(".policy-chip")).to_have_text([f"trail 10{NBSP}% after +10{NBSP}%"])

    # The chart: the stop as steps over the mark, landing at the moves' times.
    row.locator("button.toggle").click()
    detail = page.locator(f"#detail-{trade.pk}")
    canvas = detail.locator(".chart-canvas")
    expect(canvas).to_have_attribute("data-stop-moves", "2")
    start, end = (int((IN_SESSION + timedelta(minutes=minute)).timestamp()) for minute in (1, 8))
    assert json.loads(canvas.get_attribute("data-stop-path")) == [
        [start, 3], [int(first.timestamp()), 4.5], [int(second.timestamp()), 5], [end, 5]]
    expect(canvas).to_have_attribute("data-target-moves", "0")
    expect(canvas).to_have_attribute("aria-label", "Mark price over 6 snapshots, last 5.60; entry, stop-loss and "
                                                   "take-profit shown as lines, the stop-loss moved 2 time(s).")
    legend = detail.locator(".chart-legend")
    expect(legend.locator('[data-legend="stop"]')).to_have_text("stop-loss 5.00 (exit policy: trailing)")
    expect(legend.locator('[data-legend="target"]')).to_have_text("take-profit 6.50 (not moved)")
    loss = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--loss').trim()")
    assert page.evaluate(STOP_LEVELS_DRAWN, loss) == 3  # three levels held, as three runs of the stop's colour
    axis = page.evaluate(TIME_AXIS)  # the time labels drawn whole, the first and the last too
    assert 0 < axis["ink"]["left"] and axis["ink"]["right"] < axis["width"] - 1, (name, axis)

    # The legend follows the pointer: at 10:01 the stop stood where the trade opened with it.
    canvas.scroll_into_view_if_needed()
    pane = page.locator(".chart-canvas canvas").first.bounding_box()
    first = page.evaluate(FIRST_X, loss)
    page.mouse.move(pane["x"] + first + 2, pane["y"] + pane["height"] / 2)
    expect(legend.locator('[data-legend-value="stop"]')).to_have_text("3.00")
    expect(legend.locator('[data-legend-value="mark"]')).to_have_text("4.40")
    page.mouse.move(0, 0)
    expect(legend.locator('[data-legend-value="stop"]')).to_have_text("5.00")
    path = shoot(page, f"{name}-chart", SCREENSHOTS)
    assert page_overflow(page) == 0, f"the page scrolls sideways: {path}"

    # The trader raises the target while the runner moves the stop (10:09): told beside the stop,
    # with what they typed kept; saved again, the target moves and the stop stays where it went.
    adjust = detail.locator("form.adjust-form")
    adjust.locator("input[name=new_tp]").fill("7.00")
    clock(9)
    runner_looks(market, "6.00", "6.20")
    adjust.locator("button.save-adjust").click()
    expect(adjust.locator('[data-error-for="new_sl"]')).to_contain_text("The stop-loss is now 5.40 (the exit policy "
                                                                        "moved it")
    expect(row.locator("td.sl .exit > span").first).to_have_text("5.40")
    expect(adjust.locator("input[name=new_sl]")).to_have_value("5.40")
    expect(adjust.locator("input[name=new_tp]")).to_have_value("7.00")
    shoot(page, f"{name}-adjust-conflict", SCREENSHOTS)
    adjust.locator("button.save-adjust").click()
    expect(page.locator(".toast-success", has_text="take-profit 7.00 saved")).to_be_visible()
    expect(row.locator("td.tp .exit > span").first).to_have_text("7.00")
    assert (stored(trade).sl_price, stored(trade).tp_price) == (Decimal("5.40"), Decimal("7.00"))

    # The panel: a typo is answered beside its field, in the trader's words.
    form = detail.locator("form.policy-form")
    expect(form.locator("input[name=trail_pct]")).to_have_value("10")
    form.locator("input[name=trail_pct]").fill("0")
    form.locator("button.save-policy").click()
    expect(form.locator('[data-error-for="trail_pct"]')).to_have_text(
        "The trailing stop's percentage must be between 0.1 and 99.")
    expect(form.locator("input[name=trail_pct]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator('[data-error-for="exit_policy"]')).to_have_text("")  # told once, beside its field
    shoot(page, f"{name}-policy-error", SCREENSHOTS)

    # Meanwhile the runner moves the stop again (the page's version is stale): the save still lands.
    clock(12)
    runner_looks(market, "6.40", "6.60")  # 10 % under 6.40: 5.75 on the nickel grid
    form.locator("input[name=trail_pct]").fill("20")
    form.locator("button.save-policy").click()
    expect(page.locator(".toast-success", has_text="exit policy saved")).to_be_visible()
    expect(row.locator(".policy-chip")).to_have_text([f"trail 20{NBSP}% after +10{NBSP}%"])
    assert stored(trade).exit_policy == {"trail_pct": "20", "trail_after_pct": "10"}
    expect(row.locator("td.sl .exit > span").first).to_have_text("5.75")
    expect(form.locator('[data-error-for="trail_pct"]')).to_have_text("")

    # Removed: no chips, no policy, the stop where the policy left it.
    form.locator("button.remove-policy").click()
    expect(page.locator(".toast-success", has_text="exit policy removed")).to_be_visible()
    expect(row.locator(".policy-chip")).to_have_count(0)
    expect(form.locator("input[name=trail_pct]")).to_have_value("")
    expect(form.locator("button.remove-policy")).to_be_disabled()
    after = stored(trade)
    assert (after.exit_policy, after.sl_price) == ({}, Decimal("5.75"))
    page.wait_for_load_state("networkidle")
    path = shoot(page, f"{name}-policy-removed", SCREENSHOTS)
    assert page_overflow(page) == 0, f"the page scrolls sideways: {path}"
    assert page.problems == []
