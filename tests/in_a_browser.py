"""What the browser tests share: the two widths, a logged-in device, screenshots, the layout checks
the cockpit promises (tables inside their cards, nothing wider than a phone, a sign never wrapped
from its amount) and a pinned market clock.

Import the fixtures into a test module by name (`from .in_a_browser import device`); pytest finds
them there."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.factories import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parent.parent / ".data" / "screenshots"  # git-ignored
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
WIDTHS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])

# Tuesday Dec 1, 2026, 10:00 in New York: a regular session, seventeen days before the December
# monthly expiry; and 17:00 the same day, after the bell (the next open is Wednesday's, 09:30).
IN_SESSION = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
AFTER_THE_BELL = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def width_name(viewport) -> str:
    return "desktop" if viewport["width"] == DESKTOP["width"] else "phone"


@pytest.fixture
def device(browser, live_server):
    """A fresh browser context (a device) for alice, logged in on the portfolio; console errors
    and page errors are collected and must stay empty."""
    contexts = []

    def open_device(*, viewport=DESKTOP, username="alice", at=None):
        """`at`: the page's own clock (Date.now) stands at that moment, as the server's does under
        `market_clock`; its timers still run."""
        context = browser.new_context(viewport=viewport, accept_downloads=True)
        contexts.append(context)
        if at is not None:
            context.clock.set_fixed_time(at)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        # An HTTP error the page handles (a 400 with field errors, a 409) is logged by Chromium as
        # "Failed to load resource"; anything else on the console (a CSP refusal, an exception) is a problem.
        page.on("console", lambda message: message.type == "error"
                and not message.text.startswith("Failed to load resource") and page.problems.append(message.text))
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        expect(page.locator("#last-updated")).to_contain_text("Last updated")
        return page

    yield open_device
    for context in contexts:
        # A request still in flight when the test's database is flushed deadlocks the flush; a
        # request the test holds back on purpose (page.route) never ends: not waited for long.
        for page in context.pages:
            try:
                page.wait_for_load_state("networkidle", timeout=3_000)
            except PlaywrightTimeout:
                pass
        context.close()


@pytest.fixture
def market_clock():
    """This process's wall clock (the live server's thread included, so the exchange calendar,
    the simulated quotes and every "now" of the server) stands at IN_SESSION, whatever day the
    suite runs on or `--clock` moved it to; `market_clock.move_to(AFTER_THE_BELL)` rings the bell.
    It stands still, so a quote the page showed is the quote an order meets. The market-data
    cache is emptied first: expiries cached under another clock would not be this day's."""
    import time_machine
    from django.core.cache import cache

    cache.delete_pattern("market:*")
    with time_machine.travel(IN_SESSION, tick=False) as traveller:
        yield traveller
    cache.delete_pattern("market:*")


def shoot(page, name, folder: Path = SCREENSHOTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_folder(variable: str, default: str) -> Path:
    """Where a module's screenshots go: the folder named by the environment variable, or one in
    the system's temporary directory."""
    import tempfile

    return Path(os.environ.get(variable) or Path(tempfile.gettempdir()) / default)


def fits(page, selector, within=None) -> bool:
    """The element lies inside its card (`within`), and the card inside the viewport's width."""
    width = page.viewport_size["width"]
    box = page.locator(selector).bounding_box()
    if within:
        card = page.locator(within).bounding_box()
        if box["x"] < card["x"] or box["x"] + box["width"] > card["x"] + card["width"] + 1:
            return False
        box = card
    return box["x"] >= 0 and box["x"] + box["width"] <= width + 1


def page_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def outside_their_cells(page, selector) -> list[str]:
    """The texts of the visible elements matching `selector` that stick out of their table cell
    (or, outside a table, out of their parent): a badge or a figure cut off or spilling over."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((node) => node.offsetParent !== null)
        .filter((node) => {
          const box = node.getBoundingClientRect();
          const cell = (node.closest("td, th") || node.parentElement).getBoundingClientRect();
          return box.left < cell.left - 1 || box.right > cell.right + 1 || box.width === 0;
        })
        .map((node) => node.textContent.trim())""", selector)


def wrapped_apart(page, selector) -> list[str]:
    """The texts of visible elements matching `selector` laid out on more than one line: a sign
    or a currency symbol wrapped away from its amount."""
    return page.evaluate("""(selector) => [...document.querySelectorAll(selector)]
        .filter((node) => node.offsetParent !== null && node.textContent.trim())
        .filter((node) => {
          const style = getComputedStyle(node);
          const line = parseFloat(style.lineHeight) || 1.3 * parseFloat(style.fontSize);
          return node.getClientRects().length > 1 || node.getBoundingClientRect().height > 1.5 * line;
        })
        .map((node) => node.textContent.trim())""", selector)
