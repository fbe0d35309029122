"""A position that leaves in parts, seen from the portfolio in a real Chromium at desktop and phone
width: a 4-contract paper trade with a scale-out policy; the exit-policy runner sells half at the
target (called between page loads, as the monitor's order cycle calls it), the row says "2 of 4"
and the detail lists the part (the policy form answers a scale-out typo beside its field); the
trader sells 1 more through the close dialog's contracts field (a number above those held
answered beside it first), "1 of 4"; the rest closed, the history's row lists the two parts and
the final exit, and the net P&L of the parts adds up to the trade's.
Screenshots go to $PARTS_SCREENSHOTS (or a folder in the temporary directory)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests import in_a_browser
from tests.factories import UserFactory
from tests.in_a_browser import IN_SESSION, WIDTHS, page_overflow, screenshot_folder, shoot, width_name
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeExitPart, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday Dec 1, 2026, 10:00 in New York, standing still

SCREENSHOTS = screenshot_folder("PARTS_SCREENSHOTS", "tradeoptions-parts")
CONTRACT = "SPY261218C00570000"
NBSP = "\u00a0"
MONEY = ".exit-part .pnl-amount, .exit-part .pnl-gross .nowrap, .held-of"  # each figure on one line


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    services.account_settings_update(user=user, changes={"auto_refresh": False})  # the test says when to refresh
    return user


@pytest.fixture
def clock(market, market_clock):
    def move(minutes: int):
        market.moment = IN_SESSION + timedelta(minutes=minutes)
        market_clock.move_to(market.moment)
        return market.moment
    market.moment = IN_SESSION
    return move


def stored(trade) -> PaperTrade:
    with tenancy.acting_as(trade.owner_id):
        return PaperTrade.objects.get(pk=trade.pk)


def sold_parts(trade) -> list[TradeExitPart]:
    with tenancy.acting_as(trade.owner_id):
        return list(TradeExitPart.objects.filter(trade_id=trade.pk).order_by("filled_at", "id"))


def scaling_trade(user) -> PaperTrade:
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"),
                                   expiry=IN_SESSION.date().replace(day=18), qty=4, sl_price=Decimal("3.80"),
                                   tp_price=Decimal("9.00"),
                                   exit_policy={"scale_out_at_pct": "30", "scale_out_pct": "50"})
    trade = services.trade_open(user=user, data=data).trade
    assert trade.status == TradeStatus.OPEN and trade.entry_price == Decimal("4.30")
    return trade


def runner_looks(market, bid: str, ask: str) -> None:
    """One look of the exit-policy runner at the market, as the monitor's order cycle makes it."""
    market.set_quote(CONTRACT, bid, ask)
    report = services.exit_policies_apply(
        option_bids=lambda symbols: {symbol: quote.bid for symbol, quote in market.quotes(symbols).items()},
        underlying_prices=lambda tickers: {}, now=market.moment, today=market.moment.date(), session_close=None,
        market=market)
    assert report.parts_sold == 1


def laid_out_whole(page, name, what):
    path = shoot(page, f"{name}-{what}", SCREENSHOTS)
    assert page_overflow(page) == 0, f"the page scrolls sideways: {path}"
    assert in_a_browser.wrapped_apart(page, MONEY) == [], f"a figure wrapped: {path}"
    return path


@WIDTHS
def test_a_scale_out_and_a_partial_close_show_as_parts_in_the_row_the_detail_and_the_history(
        device, market, alice, clock, settings, viewport):
    settings.EXIT_POLICY_MIN_INTERVAL_SECONDS = 60
    name = f"{width_name(viewport)}-parts"
    trade = scaling_trade(alice)
    page = device(viewport=viewport, at=IN_SESSION)
    row = page.locator(f'#positions tr.position[data-trade-id="{trade.pk}"]')
    expect(row.locator("td[data-label=Qty]")).to_have_text("4")
    expect(row.locator(".policy-chip")).to_have_text([f"scale out 50{NBSP}% at +30{NBSP}%"])

    # The option rises past +30 % (a bid of 5.70 over the 4.30 paid): the runner sells 2 of the 4.
    clock(3)
    runner_looks(market, "5.70", "5.90")
    page.click("#refresh-all")
    expect(row.locator("td[data-label=Qty]")).to_have_text("2 of 4")
    assert in_a_browser.fits(page, f'tr.position[data-trade-id="{trade.pk}"] .held-of', "#positions")
    row.locator("button.toggle").click()
    detail = page.locator(f"#detail-{trade.pk}")
    parts = detail.locator(".exit-parts")
    expect(parts.locator("> p")).to_have_text("2 of 4 contracts sold in 1 part, 2 still held.")
    expect(parts.locator(".exit-part")).to_have_count(1)
    first = parts.locator(".exit-part").first
    expect(first.locator(".part-reason")).to_have_text("Scale-out target")
    expect(first.locator(".part-fill")).to_have_text("2 × 5.70")
    [sold] = sold_parts(trade)
    assert sold.pnl_gross == Decimal("280.00")  # (5.70 - 4.30) x 2 x 100
    expect(first.locator(".pnl-amount")).to_have_text(f"+${sold.pnl_net:,.2f}")
    expect(first.locator(".pnl-gross")).to_have_text(f"gross +$280.00, costs \u2212${sold.commission:,.2f}")
    expect(first.locator(".part-what small")).to_have_text("Dec 1, 2026 10:03 ET")
    # The policy form edits the scale-out like the other settings.
    form = detail.locator("form.policy-form")
    expect(form.locator("input[name=scale_out_at_pct]")).to_have_value("30")
    expect(form.locator("input[name=scale_out_pct]")).to_have_value("50")
    form.locator("input[name=scale_out_pct]").fill("100")
    form.locator("input[name=scale_out_at_pct]").fill("")
    form.locator("button.save-policy").click()
    told = form.locator('[data-error-for="scale_out_pct"]')  # every problem at once: the typo and the missing gain
    expect(told).to_contain_text("The share of contracts sold there must be between 1 and 99.")
    expect(told).to_contain_text("A scale-out needs both the gain that sells the first part")
    expect(form.locator("input[name=scale_out_pct]")).to_have_attribute("aria-invalid", "true")
    form.locator("input[name=scale_out_pct]").fill("50")
    form.locator("button.save-policy").click()
    expect(form.locator('[data-error-for="scale_out_pct"]')).to_have_text(
        "A scale-out needs both the gain that sells the first part and the share of contracts sold there.")
    expect(form.locator('[data-error-for="exit_policy"]')).to_have_text("")  # told beside the field only
    shoot(page, f"{name}-policy-error", SCREENSHOTS)
    laid_out_whole(page, name, "scaled-out")

    # The trader sells one more: a number above those held is answered beside the field first.
    clock(5)
    market.set_quote(CONTRACT, "5.50", "5.70")
    row.locator("button.close").click()
    dialog = page.locator("#close-dialog")
    quantity = dialog.locator("#close-quantity")
    expect(quantity).to_have_value("2")
    quantity.fill("3")
    dialog.locator("#close-confirm").click()
    expect(dialog.locator("#close-quantity-error")).to_have_text(
        "The position holds 2 contracts: a partial close sells fewer (close the trade to sell them all).")
    expect(quantity).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_be_visible()
    shoot(page, f"{name}-quantity-error", SCREENSHOTS)
    quantity.fill("1")
    expect(dialog.locator("#close-confirm")).to_have_text("Sell 1 of 2 at market")
    dialog.locator("#close-confirm").click()
    expect(page.locator(".toast-success", has_text="Sold 1 of SPY 570C at 5.50")).to_be_visible()
    expect(dialog).to_be_hidden()
    expect(row.locator("td[data-label=Qty]")).to_have_text("1 of 4")
    expect(parts.locator(".exit-part")).to_have_count(2)
    expect(parts.locator(".exit-part .part-reason")).to_have_text(["Scale-out target", "Closed in part"])
    expect(parts.locator("> p")).to_have_text("3 of 4 contracts sold in 2 parts, 1 still held.")
    assert stored(trade).quantity_open == 1
    laid_out_whole(page, name, "partial-close")

    # The rest: the dialog offers the one held, and closing it ends the trade.
    clock(7)
    market.set_quote(CONTRACT, "5.20", "5.40")
    row.locator("button.close").click()
    expect(quantity).to_have_value("1")
    expect(dialog.locator("#close-confirm")).to_have_text("Close at market")
    dialog.locator("#close-confirm").click()
    expect(page.locator(".toast-success", has_text="Closed SPY 570C")).to_be_visible()
    closed = stored(trade)
    assert closed.status == TradeStatus.CLOSED

    # The history's expanded row: two parts and the final exit, adding up to the trade's net.
    page.click("#tab-history")
    history_row = page.locator(f'#history tbody tr[data-trade-id="{trade.pk}"]')
    history_row.locator("button.explain").click()
    listed = page.locator(f"#history-detail-{trade.pk} .exit-part")
    expect(listed).to_have_count(3)
    expect(listed.locator(".part-reason")).to_have_text(["Scale-out target", "Closed in part", "Final exit"])
    expect(listed.locator(".part-fill")).to_have_text(["2 × 5.70", "1 × 5.50", "1 × 5.20"])
    nets = [Decimal(text.replace("$", "").replace(",", "").replace("\u2212", "-"))
            for text in listed.locator(".pnl-amount").all_text_contents()]
    assert sum(nets) == closed.realized_pnl_net
    assert in_a_browser.fits(page, f"#history-detail-{trade.pk} .exit-parts", "#history")
    laid_out_whole(page, name, "history")
    assert page.problems == []
