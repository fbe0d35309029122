"""The cockpit from end to end, in a real Chromium at desktop and phone width, against a live
server and the configured (simulated) market on a pinned Tuesday: a trader types a ticker, picks
the monthly expiry in the chain, clicks an ask and reads the preview, opens a working limit at the
bid, re-prices it and cancels it, opens at market, and after the bell queues a close for the open
and withdraws it.

After every step the page is photographed (to $COCKPIT_SCREENSHOTS, or a folder in the system's
temporary directory) and the layout promises of the cockpit are checked: the positions table
inside its card, PENDING / CLOSING / queued badges shown whole, nothing wider than a phone, and no
sign or currency symbol wrapped away from its amount. Elements are found by id, role and class,
not by the wording of messages, so a change of words does not break the walk."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests import in_a_browser
from tests.factories import UserFactory
from tests.in_a_browser import (
    AFTER_THE_BELL,
    IN_SESSION,
    WIDTHS,
    fits,
    outside_their_cells,
    page_overflow,
    screenshot_folder,
    width_name,
    wrapped_apart,
)
from tests.in_a_browser import shoot as shoot_into
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday Dec 1, 2026, 10:00 in New York, standing still

SCREENSHOTS = screenshot_folder("COCKPIT_SCREENSHOTS", "tradeoptions-cockpit")
AMOUNTS = "#positions .pnl-amount, #account-summary [data-figure] dd"


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    services.account_settings_update(user=user, changes={"auto_refresh": False})  # no poll races the steps
    return user


def _trades(user) -> list[PaperTrade]:
    with tenancy.acting_as(user.pk):
        return list(PaperTrade.objects.order_by("pk"))


def _cents(value) -> str:
    return f"{Decimal(value):.2f}"


def step(page, name, *, positions=True):
    """Photograph the step, then check the layout faults the cockpit must not have."""
    path = shoot_into(page, name, SCREENSHOTS)
    assert page_overflow(page) == 0, f"the page scrolls sideways: {path}"
    assert wrapped_apart(page, AMOUNTS) == [], f"a sign wrapped from its amount: {path}"
    if positions:
        assert fits(page, "#positions", within="#panel-open"), f"the positions table leaves its card: {path}"
        assert outside_their_cells(page, "#positions .status-tag") == [], f"a badge is cut off: {path}"
    return path


def choose_the_monthly(page):
    """Open the form, type the ticker, pick the first monthly expiry: the chain shows."""
    if page.locator("#new-trade").is_hidden():
        page.click("#new-trade-toggle")
    page.fill("#nt-ticker", "spy")
    expect(page.locator("#oe-quote .oe-last")).to_contain_text("SPY ")
    monthly = page.locator("#oe-expiry option", has_text="monthly").first
    expect(monthly).to_be_attached()
    page.select_option("#oe-expiry", monthly.get_attribute("value"))
    expect(page.locator("#oe-chain table")).to_be_visible()
    return page.locator("#oe-chain tbody tr.oe-atm")


def exits_around(page, price: Decimal):
    """A stop 30 % under `price` and a target 60 % over it, typed as prices."""
    page.fill("#nt-sl", _cents(price * Decimal("0.7")))
    page.fill("#nt-tp", _cents(price * Decimal("1.6")))


@WIDTHS
def test_ticker_chain_preview_working_limit_market_order_and_a_close_queued_after_the_bell(
        market_clock, device, alice, viewport):
    page = device(viewport=viewport, at=IN_SESSION)
    name = f"{width_name(viewport)}-cockpit"
    expect(page.locator("#positions-empty")).to_be_visible()

    # 1. The ticker: its price and day change. 2. The chain of the monthly expiry, around the money.
    page.click("#new-trade-toggle")
    page.fill("#nt-ticker", "spy")
    expect(page.locator("#oe-quote .oe-last")).to_contain_text("SPY ")
    step(page, f"{name}-01-ticker", positions=False)
    atm = choose_the_monthly(page)
    call_ask = atm.locator("td.oe-call button.oe-ask")
    call_bid = atm.locator("td.oe-call button.oe-bid")
    expect(call_ask).to_be_visible()
    ask, bid = Decimal(call_ask.inner_text()), Decimal(call_bid.inner_text())
    strike = atm.locator("th.oe-strike").inner_text()
    assert bid < ask
    step(page, f"{name}-02-chain", positions=False)

    # 3. Click the ask: the form holds that contract and a limit at the ask; the preview prices it.
    call_ask.click()
    expect(page.locator("#nt-strike")).to_have_value(strike)
    expect(page.locator("#nt-limit")).to_have_value(_cents(ask))
    exits_around(page, ask)
    debit = f"${ask * 100:,.2f}"  # one contract: the premium × 100
    expect(page.locator("#oe-preview-body .oe-item", has_text="Debit").first.locator("dd")).to_contain_text(debit)
    expect(page.locator("#oe-queued")).to_be_hidden()  # in session: nothing waits for the open
    step(page, f"{name}-03-preview", positions=False)

    # 4. The trader bids instead: a limit at the bid rests, working, until the market comes to it.
    call_bid.click()
    expect(page.locator("#nt-limit")).to_have_value(_cents(bid))
    exits_around(page, bid)
    page.click("#nt-submit")
    expect(page.locator(".toast-success")).to_be_visible()
    row = page.locator("#positions tr.position").first
    expect(row.locator(".status-pending")).to_be_visible()
    [working] = _trades(alice)
    assert (working.status, working.planned_entry_price) == (TradeStatus.PENDING, bid)
    step(page, f"{name}-04-working-limit")

    # 5. Re-price the working limit, a nickel lower.
    lower = bid - Decimal("0.05")
    row.locator("button.reprice").click()
    expect(page.locator("#order-dialog")).to_be_visible()
    expect(page.locator("#order-dialog-limit")).to_have_value(_cents(bid))
    step(page, f"{name}-05-reprice-dialog")
    page.fill("#order-dialog-limit", _cents(lower))
    page.click("#order-dialog-send")
    expect(page.locator("#order-dialog")).to_be_hidden()
    expect(row.locator("td[data-label=Entry]")).to_have_text(_cents(lower))
    assert _trades(alice)[0].planned_entry_price == lower
    step(page, f"{name}-06-repriced")

    # 6. Cancel it.
    row.locator("button.cancel-order").click()
    expect(page.locator("#positions-empty")).to_be_visible()
    assert _trades(alice)[0].status == TradeStatus.CANCELED
    expect(page.locator(".toast-warning")).to_have_count(0)  # the cancel is told once, not again as news
    step(page, f"{name}-07-cancelled")

    # 7. Open at market: it fills at the ask at once.
    atm = choose_the_monthly(page)
    atm.locator("td.oe-call button.oe-ask").click()
    page.select_option("#nt-entry-type", "market")
    exits_around(page, ask)
    page.click("#nt-submit")
    expect(page.locator("#positions tr.position")).to_have_count(1)
    row = page.locator("#positions tr.position").first
    expect(row.locator("button.close")).to_be_enabled()
    held = _trades(alice)[1]
    assert (held.status, held.entry_type, held.entry_price) == (TradeStatus.OPEN, "market", ask)
    expect(row.locator("td[data-label=Held]")).to_have_text("0m")  # the page's clock is the server's
    step(page, f"{name}-08-open-at-market")

    # 8. The bell rings. The close dialog says, before sending, that the sell waits for the open.
    market_clock.move_to(AFTER_THE_BELL)
    page.clock.set_fixed_time(AFTER_THE_BELL)
    page.click("#refresh-all")
    expect(row.locator("td[data-label=Mark]")).to_have_class(re.compile(r"\bmark-closed\b"))  # not dressed as live
    expect(page.locator("#market-status")).to_have_class(re.compile(r"\bbad\b"))  # the top bar agrees: closed
    row.locator("button.close").click()
    expect(page.locator("#close-dialog")).to_be_visible()
    expect(page.locator("#close-dialog-note")).to_contain_text("Dec 2")  # Wednesday's open, 09:30 New York
    step(page, f"{name}-09-close-dialog-after-the-bell")
    page.click("#close-confirm")
    expect(row.locator(".status-closing")).to_be_visible()
    expect(row.locator(".status-queued")).to_contain_text("Dec 2")
    assert _trades(alice)[1].status == TradeStatus.CLOSING
    step(page, f"{name}-10-close-queued")

    # 9. Withdraw it: the position is held again, and can be closed again.
    row.locator("button.cancel-order").click()
    expect(row.locator(".status-closing")).to_have_count(0)
    expect(row.locator("button.close")).to_be_enabled()
    assert _trades(alice)[1].status == TradeStatus.OPEN
    step(page, f"{name}-11-close-withdrawn")
    assert page.problems == []
