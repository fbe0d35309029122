"""Order entry on the option chain, in a real Chromium against a live server and the configured
(simulated) market: a trader types a ticker, sees its price, picks a listed expiry, clicks an ask
in the chain, reads the preview (the numbers validate answered), and opens the order. Desktop and
phone width; screenshots go to .data/screenshots/ (git-ignored) for a person to look at."""

import json
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests import in_a_browser
from tests.factories import UserFactory
from tests.in_a_browser import DESKTOP, SCREENSHOTS, WIDTHS, shoot, width_name
from tradeoptions import tenancy
from trades.models import AccountSettings, PaperTrade, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday 10:00 in New York, standing still: the market is open


@pytest.fixture
def alice(db):
    user = UserFactory(username="alice")
    with tenancy.acting_as(user.pk):
        AccountSettings.objects.filter(owner=user).update(strategy_presets={"scalp": {"sl_pct": "30", "tp_pct": "60"}})
    return user


def _money(value: str) -> str:
    return f"${Decimal(value):,.2f}"


@WIDTHS
def test_ticker_chain_click_the_ask_preview_and_open(market_clock, device, alice, viewport):
    page = device(viewport=viewport)
    name = width_name(viewport)
    page.locator("body").press("n")  # the keyboard opens the form…
    expect(page.locator("#new-trade")).to_be_visible()
    page.locator("#nt-cancel").click()
    page.locator("body").press("/")  # …and `/` goes to the ticker
    expect(page.locator("#nt-ticker")).to_be_focused()

    # An unknown ticker is answered with the API's own message.
    page.keyboard.type("ZZZZ")
    expect(page.locator("#oe-quote")).to_contain_text("ZZZZ")
    expect(page.locator("#oe-quote .error")).to_be_visible()

    # SPY: its price and day change, then its listed expiries with DTE and weekly/monthly.
    page.fill("#nt-ticker", "spy")
    expect(page.locator("#oe-quote .oe-last")).to_contain_text("SPY ")
    expect(page.locator("#oe-quote")).to_contain_text("%)")
    options = page.locator("#oe-expiry option")
    expect(options.nth(1)).to_contain_text("DTE")
    labels = options.all_inner_texts()
    assert any("monthly" in label for label in labels), labels
    monthly = page.locator("#oe-expiry option", has_text="monthly").first.get_attribute("value")
    page.select_option("#oe-expiry", monthly)

    # The chain around the money: both sides, every column, the quotes' age.
    table = page.locator("#oe-chain table")
    expect(table).to_be_visible()
    expect(page.locator("#oe-chain-status")).to_contain_text("old")
    # However wide the chain, it scrolls inside the form: nothing sticks out of the card on a phone,
    # and the "Calls" / "Puts" headers span the columns shown (a phone shows the bid and the ask).
    card = page.locator("#panel-open").bounding_box()
    for box in (page.locator("#new-trade fieldset").first.bounding_box(), page.locator("#nt-expiry").bounding_box()):
        assert box["x"] + box["width"] <= card["x"] + card["width"], (box, card)
    shown = table.locator("tbody tr").first.locator("td.oe-call:visible").count()
    assert shown == (8 if viewport is DESKTOP else 2)
    expect(table.locator("th.oe-side").first).to_have_attribute("colspan", str(shown))
    rows = table.locator("tbody tr")
    assert rows.count() == 17  # 8 strikes each side of the money and the one at it
    atm = table.locator("tbody tr.oe-atm")
    ask = atm.locator("td.oe-call button.oe-ask")
    ask_price = ask.inner_text()
    strike = atm.locator("th.oe-strike").inner_text()

    # Clicking the ask fills the contract and a limit at that ask.
    answers = []
    page.on("response", lambda r: r.url.endswith("/api/trades/validate") and answers.append(r))
    ask.click()
    expect(page.locator("#nt-strike")).to_have_value(strike)
    expect(page.locator("#nt-expiry")).to_have_value(monthly)
    expect(page.locator("#nt-type")).to_have_value("CALL")
    expect(page.locator("#nt-entry-type")).to_have_value("limit")
    expect(page.locator("#nt-limit")).to_have_value(ask_price)
    expect(ask).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#oe-picked")).to_contain_text(f"{strike} call, limit {ask_price} (the ask)")
    # The stop and target from the strategy's preset, as % of the entry.
    page.fill("#nt-strategy", "scalp")
    page.locator("#nt-strategy").dispatch_event("change")
    expect(page.locator("#oe-sl-unit")).to_have_value("pct")
    expect(page.locator("#nt-sl")).to_have_value("30")
    expect(page.locator("#oe-preset")).to_contain_text("stop 30% below")
    # Too many contracts for the heat limit: the refusal says so, and the preview still shows the cost.
    too_many = int(Decimal(300) / (Decimal(ask_price) * 30)) + 1  # 30 % of the ask × 100 per contract
    page.fill("#nt-qty", str(too_many))
    expect(page.locator('#new-trade [data-error-for="non_field_errors"]')).to_contain_text("heat limit")
    expect(page.locator("#oe-preview-note")).to_contain_text(f"{too_many} ×")
    expect(page.locator("#oe-preview-body")).to_contain_text("$0.00")  # no heat room left
    page.fill("#nt-qty", "1")
    expect(page.locator("#oe-preview-note")).to_contain_text("1 × SPY ")
    expect(page.locator("#oe-preview-note")).to_contain_text(f" {strike} call at {ask_price}")
    expect(page.locator('#new-trade [data-error-for="non_field_errors"]')).to_be_empty()
    body = answers[-1].json()
    preview = body["preview"]
    assert body["valid"] and preview["qty"] == 1 and Decimal(preview["entry_price"]) == Decimal(ask_price)
    assert Decimal(preview["sl_price"]) == (Decimal(ask_price) * Decimal("0.7")).quantize(Decimal("0.01"))  # 30 % below
    figures = page.locator("#oe-preview-body")
    for label, value in (("Debit", preview["debit"]), ("Commission", preview["commission"]),
                         ("Total cost", preview["total_cost"]), ("Max loss", preview["max_loss"]),
                         ("Reward", preview["reward"])):
        expect(figures.locator(".oe-item", has_text=label).first.locator("dd")).to_contain_text(_money(value))
    expect(figures).to_contain_text(f"{preview['reward_r']}R")
    expect(figures).to_contain_text(f"{preview['balance_pct']}% of balance")
    expect(figures.locator(".oe-item", has_text="Breakeven")).to_contain_text(f"{Decimal(preview['breakeven']):.2f}")
    expect(figures.locator(".oe-item", has_text="Positions")).to_contain_text(
        f"{preview['limits']['max_positions']['left']} left")
    expect(figures.locator(".oe-item", has_text="Heat room")).to_contain_text(
        _money(preview["limits"]["heat_limit_pct"]["left"]))
    assert not body["queued_for_open"]  # in session: the order goes now
    expect(page.locator("#oe-queued")).to_be_hidden()
    shoot(page, f"order-entry-{name}-preview")
    page.locator("#new-trade fieldset").first.screenshot(path=str(SCREENSHOTS / f"order-entry-{name}-chain.png"))

    page.click("#nt-submit")
    expect(page.locator(".toast-success")).to_be_visible()
    with tenancy.acting_as(alice.pk):
        trade = PaperTrade.objects.get(owner=alice)
    assert (trade.strike, trade.qty, trade.entry_type) == (Decimal(strike), 1, "limit")
    # The clock stands still, so the ask clicked is the ask the limit meets: it fills there.
    assert (trade.status, trade.entry_price) == (TradeStatus.OPEN, Decimal(ask_price))
    assert trade.sl_price == Decimal(preview["sl_price"]) and trade.tp_price == Decimal(preview["tp_price"])
    expect(page.locator("#positions tbody tr", has_text=f"{strike} C")).to_be_visible()
    expect(page.locator("#new-trade")).to_be_hidden()
    expect(page.locator("#oe-chain table")).to_have_count(0)  # the next trade starts clean
    shoot(page, f"order-entry-{name}-opened")
    assert page.problems == [], json.dumps(page.problems)


def test_an_empty_submit_flags_every_missing_field_at_once(device, alice):
    page = device(viewport=DESKTOP)
    page.click("#new-trade-toggle")
    page.click("#nt-submit")
    for field in ("ticker", "expiry", "strike", "sl_price", "tp_price"):
        expect(page.locator(f'#new-trade [data-error-for="{field}"]')).not_to_be_empty()
    page.keyboard.press("Escape")
    expect(page.locator("#new-trade")).to_be_hidden()
