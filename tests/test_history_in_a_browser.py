"""The History tab in a real Chromium against a live server: time held and MFE/MAE on each row,
pages with their counts, a column header that sorts (aria-sort), filters that narrow the rows and
the totals of every page, the address that keeps them (a reload shows the same view), the trades
that never filled with their reasons, a bad value in a bookmarked address told in words; on a
desktop and on a phone (no headers there: the sort is a list)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.factories import ClosedTradeFactory, PaperTradeFactory
from tests.test_portfolio_in_a_browser import PHONE, alice, device, shoot  # noqa: F401  (fixtures)
from trades.models import CloseReason, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

EXPIRY = date(2026, 12, 18)
FIRST_CLOSE = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def book(alice):  # noqa: F811 (the imported fixture)
    """30 closed trades: QQQ every third one, P&L -$100 to +$190 in $10 steps (one flat), and one
    order the broker rejected."""
    trades = []
    for n in range(30):
        trades.append(ClosedTradeFactory(
            owner=alice, ticker="QQQ" if n % 3 == 0 else "SPY", expiry=EXPIRY, qty=1,
            strategy="breakout" if n % 2 else "momentum", entry_date=FIRST_CLOSE + timedelta(hours=n - 2),
            close_date=FIRST_CLOSE + timedelta(hours=n), realized_pnl=Decimal((n - 10) * 10),
            close_reason=CloseReason.TP_HIT if n >= 10 else CloseReason.SL_HIT,
            hold_duration_h=Decimal("2.50"), max_gain=Decimal("150.00"), max_drawdown=Decimal("-40.00")))
    rejected = PaperTradeFactory(owner=alice, ticker="IWM", expiry=EXPIRY, status=TradeStatus.REJECTED,
                                 entry_price=None, entry_date=None,
                                 status_reason="Not enough buying power for 2 contracts.")
    return trades, rejected


def _query(page) -> dict:
    return {name: values[0] for name, values in parse_qs(urlsplit(page.url).query).items()}


def test_the_history_pages_sorts_filters_and_keeps_its_view_in_the_address(device, live_server, book):  # noqa: F811
    trades, rejected = book
    page = device()
    page.click("#tab-history")
    rows = page.locator("#history tbody tr")
    expect(rows).to_have_count(30)
    first = rows.first  # most recently closed first: +$190
    expect(first.locator("td[data-label='Realized P&L, net']")).to_contain_text("+$190.00")
    expect(first.locator("td[data-label='Held']")).to_have_text("2h 30m")
    expect(first.locator("td[data-label='MFE / MAE']")).to_have_text("+$150.00 / \u2212$40.00")
    closed_header = page.locator("#history th[data-sort=close_date]")
    expect(closed_header).to_have_attribute("aria-sort", "descending")
    totals = page.locator("#history tfoot tr.totals")
    # 30 trades, 19 of them above $0 (+$10 to +$190), one flat; the sum of -100..190 in steps of 10.
    expect(totals.locator("th")).to_have_text("30 trades · 63.33% won (19 of 30 closed)")
    expect(totals.locator("td[data-label='Total P&L, net']")).to_contain_text("+$1,350.00")

    # Pages: 25 a page, the count, page 2 by its link; the totals stay those of every page.
    page.select_option("#history-page-size", "25")
    expect(rows).to_have_count(25)
    pager = page.locator("#history-pager")
    expect(pager.locator(".page-count")).to_have_text("1–25 of 30")
    expect(pager.locator("[aria-current=page]")).to_have_text("1")
    pager.get_by_role("link", name="Page 2").click()
    expect(rows).to_have_count(5)
    expect(pager.locator(".page-count")).to_have_text("26–30 of 30")
    expect(pager.locator("[aria-current=page]")).to_have_text("2")
    expect(rows.last.locator("td[data-label='Realized P&L, net']")).to_contain_text("\u2212$100.00")
    expect(totals.locator("th")).to_contain_text("30 trades")
    assert _query(page) == {"page_size": "25", "page": "2"}

    # A header sorts (back to page 1), a second click turns the order round.
    pnl_header = page.locator("#history th[data-sort=realized_pnl_net]")
    pnl_header.get_by_role("button").click()
    expect(pnl_header).to_have_attribute("aria-sort", "descending")
    expect(closed_header).not_to_have_attribute("aria-sort", "descending")
    expect(pager.locator("[aria-current=page]")).to_have_text("1")
    expect(first.locator("td[data-label='Realized P&L, net']")).to_contain_text("+$190.00")
    pnl_header.get_by_role("button").click()
    expect(pnl_header).to_have_attribute("aria-sort", "ascending")
    expect(first.locator("td[data-label='Realized P&L, net']")).to_contain_text("\u2212$100.00")

    # Filters narrow the rows and the totals; the address keeps them, and a reload shows the same.
    page.fill("#history-ticker", "QQQ")
    expect(rows).to_have_count(10)
    expect(totals.locator("th")).to_have_text("10 trades · 60.00% won (6 of 10 closed)")
    expect(totals.locator("td[data-label='Total P&L, net']")).to_contain_text("+$350.00")
    page.check("text=Losses")  # leaving the ticker field asks once more, without the outcome yet
    expect(rows).to_have_count(4)
    page.wait_for_load_state("networkidle")
    expect(rows).to_have_count(4)  # the answer to the last question is the one shown, whatever came last
    assert _query(page) == {"ticker": "QQQ", "outcome": "loss", "ordering": "realized_pnl_net", "page_size": "25"}
    csv_link = page.locator("#export-csv")
    assert parse_qs(urlsplit(csv_link.get_attribute("href")).query) == {
        "format": ["csv"], "ticker": ["QQQ"], "outcome": ["loss"]}
    shoot(page, "desktop-history-filtered")
    page.reload()
    expect(page.locator("#tab-history")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#history-ticker")).to_have_value("QQQ")
    expect(page.locator("input[name=outcome][value=loss]")).to_be_checked()
    expect(pnl_header).to_have_attribute("aria-sort", "ascending")
    expect(rows).to_have_count(4)
    expect(first.locator("td[data-label='Realized P&L, net']")).to_contain_text("\u2212$100.00")

    # The trades that never filled, with the broker's reason.
    page.click("#history-clear")
    expect(rows).to_have_count(30)
    page.check("text=Never filled")
    expect(rows).to_have_count(1)
    expect(first.locator("td[data-label=Reason]")).to_contain_text("rejected")
    expect(first.locator("td[data-label=Reason]")).to_contain_text("Not enough buying power for 2 contracts.")
    expect(totals.locator("th")).to_have_text("1 trade · no closed trade")

    # A bookmarked address with a bad value is told in words, and nothing is shown as if it matched.
    page.goto(f"{live_server.url}/?from=2026-12-03&to=2026-12-01#history")
    expect(page.locator("#history-filters [data-error-for=to]")).to_have_text("The end date is before the start date.")
    expect(page.locator("#history-to")).to_have_attribute("aria-invalid", "true")
    assert page.problems == []


def test_the_history_on_a_phone_sorts_with_a_list_and_pages(device, live_server, book):  # noqa: F811
    page = device(viewport=PHONE)
    # An address written by hand: a page size the list does not offer is honoured all the same.
    page.goto(f"{live_server.url}/?ticker=SPY&page_size=10#history")
    cards = page.locator("#history tbody tr")
    expect(cards).to_have_count(10)
    expect(page.locator("#history-pager .page-count")).to_have_text("1–10 of 20")
    expect(page.locator("#history thead")).to_be_hidden()
    page.select_option("#history-sort", label="Realized P&L, net, low to high")
    expect(cards.first.locator("td[data-label='Realized P&L, net']")).to_contain_text("\u2212$90.00")
    expect(page.locator("#history th[data-sort=realized_pnl_net]")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#history tfoot tr.totals th")).to_contain_text("20 trades")
    expect(page.locator("#history tfoot tr.totals th")).to_be_visible()
    page.fill("#history-ticker", "")
    expect(page.locator("#history-pager .page-count")).to_have_text("1–10 of 30")
    page.locator("#history-pager").get_by_role("link", name="Next page").click()
    expect(page.locator("#history-pager .page-count")).to_have_text("11–20 of 30")
    expect(cards.first.locator("td[data-label='Realized P&L, net']")).to_contain_text("$0.00")
    assert _query(page) == {"ordering": "realized_pnl_net", "page_size": "10", "page": "2"}
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "mobile-history-paged")
    assert page.problems == []
