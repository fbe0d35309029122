"""Finished spreads on the History and Performance tabs in a real Chromium at 1280 px (issue 19):
each row names its strategy with its legs, credit or debit and max loss, a credit condor bought back
cheaper is a gain with its return on the max loss, the legs filter narrows the rows, Explain shows
each leg's fills; Performance breaks the results down by legs with the return on max loss."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.factories import analytics_four_trades
from tests.test_portfolio_in_a_browser import alice, device, shoot  # noqa: F401  (fixtures)
from tradeoptions import tenancy
from trades.models import PaperTrade

pytestmark = pytest.mark.django_db(transaction=True)


def test_history_and_performance_show_spreads_at_1280(device, alice):  # noqa: F811
    four = analytics_four_trades(alice)
    page = device()
    page.click("#tab-history")
    rows = page.locator("#history tbody tr[data-trade-id]")
    expect(rows).to_have_count(4)
    condor = page.locator(f"#history tbody tr[data-trade-id='{four['condor'].pk}']")
    expect(condor.locator("th .strategy-label")).to_have_text("SPY Iron condor 490/495/515/520")
    expect(condor.locator("th .legs-compact")).to_have_text(
        "+490P \u2212495P \u2212515C +520C · Dec 18, 2026 · credit 1.60 · width 5 · max loss $680.00")
    expect(condor.locator("td[data-label=Entry]")).to_have_text("1.60\u00a0cr")
    expect(condor.locator("td[data-label=Exit]")).to_have_text("0.80\u00a0cr")
    pnl = condor.locator("td[data-label='Realized P&L, net']")
    expect(pnl.locator(".pnl-word").first).to_have_text("gain")
    expect(pnl).to_contain_text("+$160.00")
    expect(pnl.locator(".pnl-gross")).to_contain_text("(+23.53%)")
    single = page.locator(f"#history tbody tr[data-trade-id='{four['single'].pk}']")
    expect(single.locator("td[data-label=Entry]")).to_have_text("4.20")

    condor.get_by_role("button", name="Explain").click()
    legs = page.locator(f"#history-detail-{four['condor'].pk} .trade-legs")
    expect(legs.locator("p")).to_have_text("Iron condor 490/495/515/520: Opened for a credit of 1.60, bought back "
                                           "for 0.80 per share of one unit.")
    expect(legs.locator("tbody tr")).to_have_count(4)
    expect(legs.locator("tbody tr").nth(1)).to_have_text("Sold2SPY Dec 18, 2026 495 put1.600.70closed")

    page.select_option("#history-strategy-type", "vertical")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("th .strategy-label")).to_have_text("SPY Call debit spread 500/505")
    shoot(page, "history-spreads-desktop")

    page.click("#tab-performance")
    page.click(".breakdown-picker button[data-breakdown=by_strategy_type]")
    table = page.locator(".breakdown[data-breakdown=by_strategy_type]")
    expect(table.locator("tbody th")).to_have_text(["Iron condors", "Single options", "Straddles", "Vertical spreads"])
    returns = table.locator("td[data-column=return_on_max_loss]")
    expect(returns).to_have_text(["23.5\u00a0% of $680.00", "19.1\u00a0% of $840.00", "9.3\u00a0% of $750.00",
                                  "-33.3\u00a0% of $180.00"])
    shoot(page, "performance-spreads-desktop")
    assert page.problems == []


def test_a_spread_closed_at_a_net_cost_says_so_in_words(device, alice):  # noqa: F811
    """A debit spread whose close cost money (a calendar's back sold for less than its settled front
    cost) closes below zero: Explain says "closed at a net cost of 5.00", never "sold for -5.00"."""
    vertical = analytics_four_trades(alice)["vertical"]
    with tenancy.system_context():
        PaperTrade.objects.filter(pk=vertical.pk).update(close_price=Decimal("-5.00"))
    page = device()
    page.click("#tab-history")
    page.locator(f"#history tbody tr[data-trade-id='{vertical.pk}']").get_by_role("button", name="Explain").click()
    legs = page.locator(f"#history-detail-{vertical.pk} .trade-legs")
    expect(legs.locator("p")).to_have_text("Call debit spread 500/505: Opened for a debit of 1.80, closed at a net "
                                           "cost of 5.00 per share of one unit.")
    assert page.problems == []
