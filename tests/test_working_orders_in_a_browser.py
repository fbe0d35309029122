"""Working orders on the portfolio, in a real Chromium at desktop and phone width: a resting limit
entry is re-priced and then cancelled; a position bought at market is closed after the bell (the
dialog says the sell waits for the open, the row says it is queued) and the close withdrawn; the
account summary card shows the API's own numbers; a mark taken before the close says its age.
Screenshots of each step go to .data/screenshots/ (git-ignored) for a person to look at."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from playwright.sync_api import expect

from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

from . import in_a_browser
from .in_a_browser import AFTER_THE_BELL, DESKTOP, PHONE, WIDTHS, shoot
from .in_a_browser import fits as _fits
from .test_portfolio_in_a_browser import EXPIRY, mark, open_trade, position

device = in_a_browser.device  # the same logged-in browser device, console errors collected

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice")


def _trade(user, pk) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(pk=pk)


@WIDTHS
def test_a_resting_limit_entry_is_repriced_and_then_cancelled(device, market, alice, viewport):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    result = services.trade_open(user=alice, data=services.TradeOpenInput(
        ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY, qty=2,
        sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("4.00")))
    trade = result.trade
    assert trade.status == TradeStatus.PENDING, result.problem
    page = device(viewport=viewport)
    name = "desktop" if viewport == DESKTOP else "phone"
    row = position(page)
    expect(row.locator(".status-pending")).to_have_text("PENDING")
    expect(row.locator(".status-queued")).to_have_count(0)  # the market is open: it works now
    expect(row.locator("button.close")).to_have_count(0)  # the disabled Close gave way to what can be done
    shoot(page, f"{name}-orders-1-resting-entry")
    assert _fits(page, "#positions", within="#panel-open")

    row.locator("button.reprice").click()
    dialog = page.locator("#order-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("Re-price the entry of SPY 570C")
    expect(page.locator("#order-dialog-limit")).to_have_value("4.00")
    expect(page.locator("#order-dialog-limit")).to_be_focused()
    expect(page.locator("#order-dialog-type")).to_be_hidden()  # an entry is a limit: no market/limit choice
    page.fill("#order-dialog-limit", "7.00")  # above the take-profit: refused in the API's words, in place
    page.click("#order-dialog-send")
    expect(page.locator("#order-dialog-error")).not_to_be_empty()
    assert "limit_price" not in page.locator("#order-dialog-error").inner_text()
    shoot(page, f"{name}-orders-2-reprice-refused")
    page.fill("#order-dialog-limit", "4.05")
    page.click("#order-dialog-send")
    expect(page.locator(".toast-success", has_text="SPY 570C: entry re-priced to limit 4.05")).to_be_visible()
    expect(dialog).to_be_hidden()
    assert _trade(alice, trade.pk).planned_entry_price == Decimal("4.05")
    expect(row.locator("td[data-label=Entry]")).to_have_text("4.05")
    shoot(page, f"{name}-orders-3-repriced")

    row.locator("button.cancel-order").click()
    expect(page.locator(".toast-success", has_text="SPY 570C: entry order cancelled")).to_be_visible()
    expect(page.locator("#positions-empty")).to_be_visible()
    assert _trade(alice, trade.pk).status == TradeStatus.CANCELED
    shoot(page, f"{name}-orders-4-cancelled")
    assert page.problems == []


@WIDTHS
def test_a_close_after_the_bell_is_queued_for_the_open_and_withdrawn(device, market, alice, viewport):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    trade = open_trade(alice)  # bought at market while the market is open, at 4.30
    mark(trade, "4.10", "4.30")
    market.open = False
    market.moment = AFTER_THE_BELL
    page = device(viewport=viewport)
    name = "desktop" if viewport == DESKTOP else "phone"
    row = position(page)
    # The market is shut: the mark says when it was taken and is not dressed as live.
    expect(row.locator(".mark-age")).to_contain_text("last quote ")
    expect(row.locator("td[data-label=Mark]")).to_have_class("num mark-closed")

    row.locator("button.close").click()
    dialog = page.locator("#close-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#close-dialog-note")).to_contain_text(
        "The market is closed: a market sell order is queued for the open at Wed Dec 2, 09:30 ET")
    expect(dialog).not_to_contain_text("sent at once")
    shoot(page, f"{name}-orders-5-close-dialog-queued")
    dialog.locator("#close-confirm").click()
    queued = "Close of SPY 570C queued for the open Wed Dec 2, 09:30 ET"
    expect(page.locator(".toast-info", has_text=queued)).to_be_visible()
    expect(row.locator(".status-closing")).to_have_text("CLOSING")
    expect(row.locator(".status-close-order")).to_have_text("sell at market")
    expect(row.locator(".status-queued")).to_have_text("queued for the open Wed Dec 2, 09:30 ET")
    assert _trade(alice, trade.pk).status == TradeStatus.CLOSING
    shoot(page, f"{name}-orders-6-close-queued")
    assert _fits(page, "#positions", within="#panel-open")
    # Days to expiry count from the server's today: a run far past the expiry reads "expired", not "-387d".
    expect(row.locator("td[data-label=DTE]")).to_have_text(re.compile(r"^(\d+d|expired)$"))

    row.locator("button.cancel-order", has_text="Withdraw").click()
    expect(page.locator(".toast-success", has_text="SPY 570C: close withdrawn")).to_be_visible()
    expect(row.locator(".status-closing")).to_have_count(0)
    expect(row.locator("button.close")).to_be_enabled()
    assert _trade(alice, trade.pk).status == TradeStatus.OPEN
    shoot(page, f"{name}-orders-7-close-withdrawn")
    assert page.problems == []


def test_a_queued_close_switches_to_limit_and_a_fill_that_beat_the_withdrawal_is_told(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    trade = open_trade(alice)
    market.open = False
    market.moment = AFTER_THE_BELL
    page = device()
    row = position(page)
    row.locator("button.close").click()
    page.click("#close-confirm")
    expect(row.locator(".status-closing")).to_be_visible()

    row.locator("button.reprice").click()
    expect(page.locator("#order-dialog-type")).to_be_visible()
    expect(page.locator("#order-dialog-when")).to_contain_text("queued for the open Wed Dec 2, 09:30 ET")
    page.check("#order-dialog input[value=limit]")
    page.fill("#order-dialog-limit", "5.10")
    page.click("#order-dialog-send")
    expect(page.locator(".toast-success", has_text="SPY 570C: close now at limit 5.10")).to_be_visible()
    expect(row.locator(".status-close-order")).to_have_text("sell limit 5.10")  # the row says how it sells
    shoot(page, "desktop-orders-8-close-at-limit")

    # The bell rings and the sell fills before the trader's withdrawal reaches the broker.
    from monitoring.services import match_paper_orders

    market.open = True
    market.set_quote("SPY261218C00570000", "5.20", "5.40")
    assert match_paper_orders(market=market) == 1
    row.locator("button.cancel-order").click()
    told = page.locator(".toast-info", has_text="the close filled before the cancel reached the broker")
    expect(told).to_contain_text("SPY 570C: the close filled before the cancel reached the broker (at 5.20, +$180.00)")
    expect(page.locator("#positions-empty")).to_be_visible()
    assert _trade(alice, trade.pk).status == TradeStatus.CLOSED
    assert page.problems == []


def test_the_account_summary_card_shows_the_api_numbers(device, market, alice, live_server):
    open_trade(alice)
    page = device(viewport=PHONE)
    summary = page.context.request.get(f"{live_server.url}/api/account/summary").json()
    card = page.locator("#account-summary")

    def shown(name):
        return card.locator(f"[data-figure={name}] dd").inner_text()

    expect(card.locator("[data-figure=cash] dd")).to_be_visible()
    assert shown("starting_balance") == f"${Decimal(summary['starting_balance']):,.2f}"
    assert shown("cash") == f"${Decimal(summary['cash']):,.2f}"
    assert shown("buying_power") == f"${Decimal(summary['buying_power']):,.2f}"
    assert shown("premium_committed") == "$860.00"  # 2 × 4.30 × 100
    assert shown("open_risk") == f"${Decimal(summary['open_risk']):,.2f}"
    realized = Decimal(summary["realized_pnl"])
    sign = "\u2212" if realized < 0 else "+" if realized > 0 else ""
    assert shown("realized_pnl") == f"{sign}${abs(realized):,.2f}"
    for name in ("starting_balance", "cash", "realized_pnl", "buying_power"):  # a sign never wraps from its amount
        box = card.locator(f"[data-figure={name}] dd").bounding_box()
        assert box["height"] < 30, name
    assert _fits(page, "#account-summary")
    shoot(page, "phone-account-summary")
    assert page.problems == []


def test_a_mark_says_delayed_its_age_after_the_close_and_frozen_when_the_source_has_nothing_new(device, market, alice):
    """One delayed mark, quoted Tue 09:58 New York, seen three ways: live while the market is open
    (labelled delayed), with its age after the close, and frozen when the market reads open again
    (as FORCE_MARKET_OPEN makes it) but the source still has nothing newer. The server's clock is
    pinned days behind the browser's: the top bar's "last mark" is measured on the server's."""
    from monitoring.models import SnapshotKind
    from tests.factories import PriceSnapshotFactory

    with time_machine.travel(market.moment, tick=True):
        services.account_settings_update(user=alice, changes={"auto_refresh": False})
        trade = open_trade(alice)
        mark(trade, "4.10", "4.30")
        PriceSnapshotFactory(trade=trade, owner=alice, timestamp=datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
                             kind=SnapshotKind.INTRADAY, mark_price=Decimal("4.20"), source="orats", delayed=True,
                             quote_time=datetime(2026, 12, 1, 14, 58, tzinfo=UTC))
        page = device()
        row = position(page)
        mark_cell = row.locator("td[data-label=Mark]")
        expect(row.locator(".mark-age")).to_have_count(0)  # the market is open: the mark is live
        expect(row.locator(".mark-delayed")).to_have_text("delayed")
        expect(mark_cell).to_have_class("num")
        expect(page.locator("#data-freshness")).to_contain_text("last mark just now")

        market.open = False
        market.moment = AFTER_THE_BELL
        page.click("#refresh-all")
        expect(row.locator(".mark-age")).to_have_text("last quote Tue 09:58")
        expect(mark_cell).to_have_class("num mark-closed")
        row.locator("button.toggle").click()
        facts = page.locator(f"#detail-{trade.pk} .facts")
        expect(facts.locator("dt", has_text="Source")).to_be_visible()
        expect(facts).to_contain_text("orats (delayed)")
        shoot(page, "desktop-orders-9-delayed-source")

        market.open = True
        market.moment = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # open the next morning, nothing newer quoted
        page.click("#refresh-all")
        expect(row.locator(".mark-frozen")).to_have_text("frozen, last quote Tue 09:58")
        expect(row.locator(".mark-delayed")).to_have_text("delayed")
        expect(mark_cell).to_have_class("num mark-closed")
        shoot(page, "desktop-orders-10-frozen-mark")
        assert page.problems == []


def test_a_busy_order_and_a_stale_version_are_told_in_words(device, market, alice):
    """The two refusals a trader can meet beside a fill: another request at the broker with this
    trade's orders (409 orders_busy, held here at the network so it can be seen) and a version
    another device moved (a real 409 from the API)."""
    import json

    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    result = services.trade_open(user=alice, data=services.TradeOpenInput(
        ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY, qty=1,
        sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("4.00")))
    page = device()
    row = position(page)
    busy = {"errors": [{"code": "orders_busy", "detail": "Another request is working this trade's orders.",
                        "attr": None}]}
    page.route("**/entry/cancel", lambda route: route.fulfill(status=409, content_type="application/json",
                                                               body=json.dumps(busy)))
    row.locator("button.cancel-order").click()
    expect(page.locator(".toast-warning")).to_contain_text(
        "SPY 570C: another request is working this order right now. Try again in a moment.")
    page.unroute("**/entry/cancel")

    services.entry_reprice(user=alice, trade_id=result.trade.pk, version=result.trade.version,
                           limit_price=Decimal("4.02"))  # another device moved it meanwhile
    row.locator("button.cancel-order").click()
    expect(page.locator(".toast-warning", has_text="This trade was updated on another device")).to_be_visible()
    expect(row.locator("td[data-label=Entry]")).to_have_text("4.02")  # the truth, refreshed
    assert _trade(alice, result.trade.pk).status == TradeStatus.PENDING
    assert page.problems == []
