"""The portfolio's layout, measured in a real Chromium at phone, tablet, laptop and desktop width:
the positions table (with PENDING and CLOSING badges and a "queued for the open" tag) stays inside
its card; a signed amount never wraps apart from its sign, in a cell, a dialog or a toast; the
expanded position leaves no empty column beside a taller one, and its chart's time labels are drawn
whole inside the chart. Screenshots go to .data/screenshots/ (git-ignored) for a person to look at."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from trades import services
from trades.models import TradeStatus

from . import test_portfolio_in_a_browser as portfolio
from .test_portfolio_in_a_browser import CONTRACT, EXPIRY, add_snapshots, mark, open_trade, shoot
from .test_working_orders_in_a_browser import _fits

device = portfolio.device
alice = portfolio.alice

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = {"phone": 390, "tablet": 800, "laptop": 1024, "desktop": 1280}
AFTER_THE_BELL = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # Tue 17:00 in New York

# How many lines each element's text is laid out on, keyed by the text.
LINES = """(selector) => Object.fromEntries([...document.querySelectorAll(selector)].filter((node) => node.offsetParent)
  .map((node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    return [node.textContent, new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size];
  }))"""
BOX = "(node) => { const r = node.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
# The time axis of the chart: its canvas' box and, in its own pixels, the rows and columns where
# anything differs from the background pixel in its top-left corner (the labels).
TIME_AXIS = """() => {
  const canvases = [...document.querySelectorAll(".chart-canvas canvas")];
  const pane = canvases[0].getBoundingClientRect();
  const axis = canvases.find((canvas) => canvas.getBoundingClientRect().top >= pane.bottom - 1);
  const { width, height } = axis;
  const data = axis.getContext("2d").getImageData(0, 0, width, height).data;
  const at = (x, y) => data.slice((y * width + x) * 4, (y * width + x) * 4 + 3).join();
  const background = at(width - 1, height - 1);
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 2; y < height; y++) for (let x = 0; x < width; x++) {  // row 0-1: the axis line
    if (at(x, y) === background) continue;
    top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
  }
  const box = axis.getBoundingClientRect();
  const ink = { top, bottom, left, right };
  return { width, height, ink, box: { x: box.x, y: box.y, width: box.width, height: box.height } };
}"""


def _inside(inner, outer, slack=1):
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack)


def _box(page, selector):
    return page.locator(selector).first.evaluate(BOX)


def _working_and_held_positions(user, market):
    """A close queued for the open, a resting limit entry and a held position at a loss: every badge."""
    queued = open_trade(user, qty=1)
    resting = services.trade_open(user=user, data=services.TradeOpenInput(
        ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY, qty=1,
        sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("4.00"))).trade
    assert resting.status == TradeStatus.PENDING
    held = open_trade(user, qty=1)
    add_snapshots(held)
    mark(held, "3.10", "3.30")
    market.open = False
    market.moment = AFTER_THE_BELL
    closing = services.trade_close(user=user, trade_id=queued.pk, version=queued.version, market=market).trade
    assert closing.status == TradeStatus.CLOSING
    return held


def test_the_positions_fit_their_card_and_the_detail_has_no_dead_space(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False, "heat_limit_pct": Decimal("10")})
    held = _working_and_held_positions(alice, market)
    page = device()
    held_row = page.locator(f"#positions tr.position[data-trade-id='{held.pk}']")
    expect(page.locator("#positions .status-closing")).to_have_text("CLOSING")
    expect(page.locator("#positions .status-pending")).to_have_text("PENDING")
    for name, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        shoot(page, f"{name}-layout-positions")
        assert _fits(page, "#positions", within="#panel-open"), name
        card = _box(page, "#panel-open")
        for badge in ("status-closing", "status-pending", "status-queued", "pnl-loss"):
            assert _inside(_box(page, f"#positions .{badge}"), card), (name, badge)
        lines = page.evaluate(LINES, "#positions .pnl > span, .summary-figure dd")
        assert lines and all(count == 1 for count in lines.values()), (name, lines)
        assert "\u2212$111.30" in lines  # the held position's net loss: (3.20 − 4.30) × 100 − 2 × $0.65

    held_row.locator("button.toggle").click()
    detail = page.locator(f"#detail-{held.pk}")
    expect(detail.locator(".chart-canvas canvas").first).to_be_visible()
    for name, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(100)  # the chart follows its box on the next frame
        detail.scroll_into_view_if_needed()
        shoot(page, f"{name}-layout-detail")
        inner, chart, side, events = (detail.locator(part).evaluate(BOX) for part in
                                      (".detail-inner", ".detail-chart", ".detail-side", ".events"))
        gap = 16
        if width > 640:  # two columns: the event log right under the chart, beside the facts
            assert events["y"] - (chart["y"] + chart["height"]) <= gap + 1, name
            assert side["x"] > chart["x"] + chart["width"], name
            tallest = max(events["y"] + events["height"] - chart["y"], side["height"])
        else:
            tallest = chart["height"] + side["height"] + events["height"] + 2 * gap
        explained = detail.locator(".explanation")  # the trade explained, full width under both columns
        if explained.count():
            tallest += explained.evaluate(BOX)["height"] + gap
        padding = inner["height"] - tallest
        assert padding <= 2 * gap + 1, (name, padding)  # the detail's own padding, nothing more

        canvas = _box(page, ".chart-canvas")
        assert _inside(canvas, _box(page, "#panel-open")), name
        axis = page.evaluate(TIME_AXIS)
        assert _inside(axis["box"], canvas), (name, axis)
        ink = axis["ink"]
        assert ink["bottom"] >= ink["top"], (name, axis)  # labels are drawn…
        assert ink["bottom"] < axis["height"] - 1, (name, axis)  # …whole: not cut at the bottom…
        assert ink["left"] > 0 and ink["right"] < axis["width"] - 1, (name, axis)  # …nor at either end
    assert page.problems == []


def test_a_signed_amount_stays_with_its_sign_in_a_dialog_and_a_toast(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    held = open_trade(alice, qty=1)
    mark(held, "3.10", "3.30")
    market.set_quote(CONTRACT, "3.10", "3.30")  # and the close sells at that bid
    page = device(viewport={"width": WIDTHS["phone"], "height": 844})
    # Squeezed far below any real width: every word on a line of its own, a figure still whole.
    squeeze = "(selector) => { document.querySelector(selector).style.width = '1px'; }"
    page.locator(f"#positions tr.position[data-trade-id='{held.pk}'] button.close").click()
    expect(page.locator("#close-dialog-text")).to_contain_text("unrealized \u2212$111.30 net of commissions.")
    page.evaluate(squeeze, "#close-dialog-text")
    lines = page.evaluate(LINES, "#close-dialog-text .nowrap")
    assert lines == {"\u2212$111.30": 1}
    [sentence] = page.evaluate(LINES, "#close-dialog-text").values()
    assert sentence > 5  # the sentence itself did wrap, word by word
    page.click("#close-confirm")
    toast = page.locator(".toast-success", has_text="Closed SPY 570C at 3.10")
    expect(toast).to_contain_text("\u2212$121.30")  # net; the gross figure beside it
    page.evaluate(squeeze, ".toast-success > span")
    assert page.evaluate(LINES, ".toast-success .nowrap") == {"\u2212$121.30": 1, "\u2212$120.00": 1}
    assert page.problems == []
