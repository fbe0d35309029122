"""The portfolio page's keyboard (static/js/keyboard.js), in a real Chromium: `n` opens the new-trade
form, `/` goes to its ticker from any tab, Escape closes the form, the close and re-price dialogs and
an expanded position's adjust form; no letter fires while the trader types in a field or a dialog
is up."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

from . import test_portfolio_in_a_browser as portfolio
from .test_portfolio_in_a_browser import EXPIRY, LABEL, open_trade, position

device = portfolio.device
alice = portfolio.alice

pytestmark = pytest.mark.django_db(transaction=True)


def test_n_and_slash_open_the_new_trade_form_but_never_while_typing(device, market, alice):
    page = device()
    form = page.locator("#new-trade")
    page.locator("body").press("n")
    expect(form).to_be_visible()
    expect(page.locator("#new-trade-toggle")).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(form).to_be_hidden()

    # Typing in a field is typing: the history's strategy filter takes an "n" and a "/".
    page.click("#tab-history")
    page.locator("#history-strategy").press_sequentially("n/a")
    expect(page.locator("#history-strategy")).to_have_value("n/a")
    expect(page.locator("#panel-history")).to_be_visible()
    expect(form).to_be_hidden()

    # From another tab, `/` comes back to the open positions and lands in the ticker.
    page.locator("#history-strategy").blur()
    page.keyboard.press("/")
    expect(page.locator("#panel-open")).to_be_visible()
    expect(page.locator("#nt-ticker")).to_be_focused()
    page.keyboard.type("n/")  # in the ticker: letters, not shortcuts
    expect(page.locator("#nt-ticker")).to_have_value("n/")
    page.fill("#nt-ticker", "")
    page.keyboard.press("Escape")  # Escape closes even from inside the form
    expect(form).to_be_hidden()
    expect(page.locator("#new-trade-toggle")).to_have_attribute("aria-expanded", "false")
    assert page.problems == []


def test_escape_closes_the_dialogs_and_the_adjust_form_and_letters_wait(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    trade = open_trade(alice, qty=1)
    result = services.trade_open(user=alice, data=services.TradeOpenInput(
        ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=EXPIRY, qty=1,
        sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("4.00")))
    assert result.trade.status == TradeStatus.PENDING, result.problem
    page = device()
    held = page.locator("#positions tr.position", has_text=LABEL).filter(has=page.locator("button.close"))
    resting = position(page).filter(has=page.locator(".status-pending"))
    form = page.locator("#new-trade")

    # The close dialog: a letter does not open the form behind it; Escape keeps the position.
    held.locator("button.close").click()
    close_dialog = page.locator("#close-dialog")
    expect(close_dialog).to_be_visible()
    page.keyboard.press("n")
    expect(form).to_be_hidden()
    page.keyboard.press("Escape")
    expect(close_dialog).to_be_hidden()
    expect(held.locator("button.close")).to_be_focused()

    # The re-price dialog: "n" is typed nowhere useful, Escape closes it, the order is untouched.
    resting.locator("button.reprice").click()
    order_dialog = page.locator("#order-dialog")
    expect(order_dialog).to_be_visible()
    expect(page.locator("#order-dialog-limit")).to_be_focused()
    page.keyboard.press("n")
    page.keyboard.press("/")
    expect(form).to_be_hidden()
    page.keyboard.press("Escape")
    expect(order_dialog).to_be_hidden()

    # Adjust opens the position with the focus in its stop-loss; Escape there folds it away and
    # gives the focus back to the row.
    held.locator("button.adjust").click()
    new_sl = page.locator(f"#detail-{trade.pk} input[name=new_sl]")
    expect(new_sl).to_be_focused()
    page.keyboard.press("n")  # typed into the field (a number field keeps no letter), not a shortcut
    expect(form).to_be_hidden()
    page.keyboard.press("Escape")
    expect(page.locator(f"#detail-{trade.pk}")).to_have_count(0)
    expect(held.locator("button.toggle")).to_be_focused()
    expect(held.locator("button.toggle")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("n")  # and with nothing open, the letter works again
    expect(form).to_be_visible()
    with tenancy.acting_as(alice.pk):  # Escape sent nothing: both orders are as they were
        kept = {row.pk: (row.status, row.planned_entry_price, row.sl_price) for row in PaperTrade.objects.all()}
    assert kept == {trade.pk: (TradeStatus.OPEN, Decimal("4.30"), Decimal("3.00")),
                    result.trade.pk: (TradeStatus.PENDING, Decimal("4.00"), Decimal("3.00"))}
    assert page.problems == []
