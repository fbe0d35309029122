"""A position's detail explains the trade, in a real Chromium: where the P&L came from (greeks),
what is known after the entry, and the entry context in words (labels and units, no raw keys), on
a desktop and on a phone."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.factories import PaperTradeFactory, PriceSnapshotFactory
from tests.test_portfolio_in_a_browser import DESKTOP, PHONE, alice, device, position, shoot  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ENTRY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
MINUS = "\u2212"


@pytest.fixture
def explained_trade(alice):  # noqa: F811 - the fixture imported above
    """2 contracts bought at 4.30, marked 4.80 now; two snapshots 48 minutes (1/30 of a day) apart:
    delta 0.52 × $1 × 200 = $104.00, gamma ½ × 0.02 × 1 × 200 = $2.00, theta −0.10 / 30 × 200 = −$0.67,
    no IV move; the marks moved $100.00, so the residual is −$5.33."""
    trade = PaperTradeFactory(
        owner=alice, entry_date=ENTRY, entry_price=Decimal("4.30"), qty=2, current_price=Decimal("4.80"),
        current_bid=Decimal("4.75"), current_ask=Decimal("4.85"), unrealized_pnl=Decimal("100.00"),
        last_updated=ENTRY + timedelta(minutes=48),
        signals_snapshot={"5m": {"rsi14": 58.21, "squeeze": True, "squeeze_firing": False, "trend": "up"}},
        market_regime={"spy_price": 590.1, "spy_change_pct": 0.42, "internals": {
            "advance_decline": {"value": None, "missing": "The simulated market has no breadth data."}}},
    )
    for minutes, mark, spot in ((0, "4.30", "570.00"), (48, "4.80", "571.00")):
        PriceSnapshotFactory(trade=trade, timestamp=ENTRY + timedelta(minutes=minutes), mark_price=Decimal(mark),
                             underlying=Decimal(spot), iv=Decimal("0.18"), delta=Decimal("0.52"),
                             gamma=Decimal("0.02"), theta=Decimal("-0.10"), vega=Decimal("0.05"))
    return trade


def _value(section, label):
    return section.locator("dt", has_text=label).locator("xpath=following-sibling::dd[1]")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_position_detail_explains_the_trade(device, market, explained_trade, viewport):  # noqa: F811
    page = device(viewport=viewport)
    position(page, "SPY").locator("button.toggle").click()
    section = page.locator(f"#detail-{explained_trade.pk} .explanation")
    expect(section).to_be_visible()
    for label, text in (("Delta (the stock's move)", "+$104.00"), ("Gamma (its curvature)", "+$2.00"),
                        ("Theta (time decay)", f"{MINUS}$0.67"), ("Vega (implied volatility)", "$0.00"),
                        ("Residual (what the greeks miss)", f"{MINUS}$5.33"), ("Fills against the marks", "$0.00"),
                        ("Total P&L", "+$100.00")):
        expect(_value(section, label)).to_have_text(text)
    expect(section).to_contain_text("From 2 snapshots; theta in calendar days.")
    expect(section).to_contain_text("Computed nightly once the trade has closed.")
    expect(_value(section, "RSI (14)")).to_have_text("58.2")
    expect(_value(section, "Squeeze firing (released on this bar)")).to_have_text("No")
    expect(_value(section, "SPY change on the day")).to_have_text("+0.42 %")
    expect(_value(section, "Advance/decline (advancers ÷ decliners)")).to_have_text("Not available")
    section.locator("details.missing summary").click()
    expect(section.locator("details.missing")).to_contain_text("The simulated market has no breadth data.")
    for raw in ("rsi14", "squeeze_firing", "spy_change_pct", "advance_decline"):
        expect(section).not_to_contain_text(raw)
    shoot(page, f"trade-explained-{'phone' if viewport is PHONE else 'desktop'}")
    assert page.problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_closed_trade_is_explained_from_the_history(device, market, alice, viewport):  # noqa: F811
    from analytics.tests.test_api_explanation import _closed, _snapshots

    trade = _closed(alice)
    _snapshots(trade)
    page = device(viewport=viewport)
    page.click("#tab-history")
    row = page.locator(f"#history tr[data-trade-id='{trade.pk}']")
    row.locator("button.explain").click()
    expect(row.locator("button.explain")).to_have_attribute("aria-expanded", "true")
    section = page.locator(f"#history-detail-{trade.pk} .explanation")
    for label, text in (("Theta (time decay)", f"{MINUS}$0.92"), ("Residual (what the greeks miss)", "+$0.84"),
                        ("Fills against the marks", "+$24.00"), ("Total P&L", "+$160.00")):
        expect(_value(section, label)).to_have_text(text)
    expect(section).to_contain_text("Computed nightly once the trade has closed.")
    with page.expect_response(lambda response: "/api/trades/history" in response.url):
        page.click("#refresh-all")  # a refresh redraws the table: the explanation stays open
    expect(section).to_be_visible()
    expect(row.locator("button.explain")).to_have_attribute("aria-expanded", "true")
    row.locator("button.explain").click()
    expect(page.locator(f"#history-detail-{trade.pk}")).to_have_count(0)
    shoot(page, f"history-explained-{'phone' if viewport is PHONE else 'desktop'}")
    assert page.problems == []
