"""Closing a spread from the Portfolio, in a real Chromium against a live server: the close dialog
says it closes whole (the number of units read-only, never sent), and its one market order closes
every leg at the local paper broker."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from brokers.base import SpreadLeg, SpreadOrderRequest, order_tag
from tests import in_a_browser
from tests.factories import UserFactory, exits_mark, exits_spread_trade
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, LegSide, PaperTrade, TradeLeg

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device

P560, P555 = "SPY261218P00560000", "SPY261218P00555000"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def test_the_close_dialog_closes_a_spread_whole_in_one_order(device, market, alice, settings):
    settings.PAPER_COMMISSION_PER_CONTRACT = Decimal("0.65")
    settings.PAPER_SLIPPAGE_PER_SHARE = 0
    settings.PAPER_SPREAD_IMPROVEMENT_PCT = 0
    market.set_quote(P560, "3.00", "3.20")
    market.set_quote(P555, "2.00", "2.10")
    with tenancy.acting_as(alice.pk):
        AccountSettings.objects.update_or_create(owner=alice, defaults={"account_balance": Decimal("10000")})
    trade = exits_spread_trade(alice, legs=[(P560, LegSide.SHORT, 1, "3.00"), (P555, LegSide.LONG, 1, "2.10")],
                               strategy_type="vertical", units=2, sl_price="1.50", tp_price="0.30")
    with tenancy.acting_as(alice.pk):
        services.broker_of(services.account_settings_for(user=alice), market=market).place_spread_order(
            SpreadOrderRequest(underlying="SPY", price_type="market", tag=order_tag(trade.pk, "entry"),
                               legs=(SpreadLeg(P560, "sell_to_open", 2), SpreadLeg(P555, "buy_to_open", 2))))
    quotes = {P560: ("2.40", "2.50"), P555: ("1.70", "1.80")}
    for symbol, (bid, ask) in quotes.items():
        market.set_quote(symbol, bid, ask)
    exits_mark(trade, quotes)  # held mid 2.45 − 1.75 = 0.70

    page = device()
    row = page.locator(f"#positions tr.position[data-trade-id='{trade.pk}']")
    row.locator("button.close").click()
    dialog = page.locator("#close-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("Close SPY vertical at market?")
    expect(page.locator("#close-dialog-text")).to_contain_text("2 unit(s) of 2 legs held; it costs 0.70 at the mid")
    expect(page.locator("#close-dialog-note")).to_contain_text("One market order closes every leg together")
    quantity = page.locator("#close-quantity")
    expect(quantity).to_have_value("2")
    expect(quantity).to_have_attribute("readonly", "")
    expect(dialog.locator("label[for='close-quantity']")).to_have_text("Units to close")
    expect(page.locator("#close-confirm")).to_have_text("Close at market")

    dialog.locator("#close-confirm").click()
    # Bought P560 back at its 2.50 ask and sold P555 at its 1.70 bid: 0.80 for the 0.90 received, 2 units.
    expect(page.locator(".toast-success", has_text="Closed SPY vertical at 0.80")).to_be_visible()
    expect(dialog).to_be_hidden()
    with tenancy.acting_as(alice.pk):
        closed = PaperTrade.objects.get(pk=trade.pk)
        exits = list(TradeLeg.objects.filter(trade=trade).order_by("position").values_list("exit_price", flat=True))
    assert (closed.status, closed.close_reason, closed.realized_pnl) == ("CLOSED", "MANUAL_CLOSE", Decimal("20.00"))
    assert exits == [Decimal("2.50"), Decimal("1.70")]
    assert page.problems == []
