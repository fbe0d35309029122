"""The theme follows the system's light or dark scheme (static/css/app.css custom properties and
static/js/chart.js), in a real Chromium emulating each scheme: background and text change, every
pair the page relies on keeps a readable contrast, and an open trade's chart is repainted in the
new colours when the scheme switches, without a reload. Screenshots of both go to .data/screenshots/."""

import re

import pytest
from playwright.sync_api import expect

from trades import services

from . import test_portfolio_in_a_browser as portfolio
from .test_portfolio_in_a_browser import add_snapshots, mark, open_trade, position, shoot

device = portfolio.device
alice = portfolio.alice

pytestmark = pytest.mark.django_db(transaction=True)

# Colours as the browser computed them: each a text colour and the background it sits on.
COLOURS = """() => {
  const style = (selector) => getComputedStyle(document.querySelector(selector));
  const bg = style("body").backgroundColor, card = style("#panel-open").backgroundColor;
  return {
    bg, card, fg: style("body").color, chartBg: style("html").getPropertyValue("--chart-bg").trim(),
    pairs: {
      "text on the page": [style("body").color, bg],
      "text on a card": [style("#positions tbody th").color, card],
      "muted on the page": [style("#last-updated").color, bg],
      "muted on a card": [style("#positions thead th").color, card],
      "a loss on a card": [style("#positions .pnl-loss").color, card],
      "a button": [style("#new-trade-toggle").color, style("#new-trade-toggle").backgroundColor],
      "the broker badge": [style("#broker-mode").color, style("#broker-mode").backgroundColor],
      "the detail": [style(".detail-side dd").color, style("tr.detail > td").backgroundColor],
    },
  };
}"""
# The colour of the chart's own background, read off its canvas near the top-left corner.
CHART_PIXEL = """() => {
  const canvas = document.querySelector(".chart-canvas canvas");
  const [r, g, b] = canvas.getContext("2d").getImageData(4, 4, 1, 1).data;
  return `rgb(${r}, ${g}, ${b})`;
}"""


def _rgb(css: str) -> tuple[int, int, int]:
    if css.startswith("#"):
        return tuple(int(css[index:index + 2], 16) for index in (1, 3, 5))
    return tuple(int(part) for part in re.findall(r"[\d.]+", css)[:3])


def _contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two opaque colours."""
    def luminance(css):
        channels = [value / 255 for value in _rgb(css)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _readable(colours):
    ratios = {name: round(_contrast(fg, bg), 2) for name, (fg, bg) in colours["pairs"].items()}
    assert _contrast(colours["fg"], colours["bg"]) >= 7, ratios
    assert all(ratio >= 4.5 for ratio in ratios.values()), str(ratios)


def _chart_painted(page, colours):
    css = "rgb({}, {}, {})".format(*_rgb(colours["chartBg"]))
    page.wait_for_function(f"expected => ({CHART_PIXEL})() === expected", arg=css)


def test_the_page_and_its_chart_follow_the_system_scheme(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    trade = open_trade(alice)
    mark(trade, "3.10", "3.30")  # a loss, shown in the loss colour
    add_snapshots(trade)
    page = device()
    page.emulate_media(color_scheme="dark")
    position(page).locator("button.toggle").click()
    expect(page.locator(".chart-canvas canvas").first).to_be_visible()
    dark = page.evaluate(COLOURS)
    _readable(dark)
    _chart_painted(page, dark)
    shoot(page, "desktop-theme-dark")

    page.emulate_media(color_scheme="light")  # the system switches while the page is open
    light = page.evaluate(COLOURS)
    assert light["bg"] != dark["bg"] and light["fg"] != dark["fg"] and light["card"] != dark["card"]
    assert _contrast(light["bg"], "#ffffff") < _contrast(dark["bg"], "#ffffff")  # light is the lighter
    _readable(light)
    assert light["chartBg"] != dark["chartBg"]
    _chart_painted(page, light)  # repainted in place, no reload
    shoot(page, "desktop-theme-light")
    assert page.problems == []
