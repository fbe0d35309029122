"""The strategy builder in a real Chromium against a live server and the (simulated) market: a
trader picks the iron condor, clicks four strikes on the chain, reads the legs, the figures (the
ones POST /api/spreads/preview answered) and a chart with two curves (at expiry and today), sets
the exits and sends; the request body Send posts is the documented one, and a 400's field errors
are shown beside their inputs. Desktop and phone width; screenshots go to .data/screenshots/."""

import json
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests import in_a_browser
from tests.factories import UserFactory
from tests.in_a_browser import PHONE, WIDTHS, page_overflow, shoot, width_name

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device
market_clock = in_a_browser.market_clock  # Tuesday Dec 1, 2026, 10:00 in New York, standing still


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def _money(value: str) -> str:
    return f"${abs(Decimal(value)):,.2f}"


def _figure(page, key: str):
    return page.locator(f'#sb-figures [data-figure="{key}"] dd .sb-value')


@WIDTHS
def test_an_iron_condor_clicked_on_the_chain_is_previewed_charted_and_sent(market_clock, device, alice, viewport,
                                                                          live_server):
    page = device(viewport=viewport)
    name = width_name(viewport)
    page.click("#tab-builder")
    expect(page.locator("#panel-builder")).to_be_visible()
    page.fill("#sb-ticker", "SPY")
    monthly = page.locator("#sb-expiry option", has_text="monthly").first
    expect(monthly).to_be_attached()
    expiry = monthly.get_attribute("value")
    page.select_option("#sb-template", "iron_condor")
    page.select_option("#sb-expiry", expiry)
    expect(page.locator("#sb-hint")).to_contain_text("4 more to click")

    # Four strikes: two puts below the money (bought, sold), two calls above (sold, bought).
    rows = page.locator("#sb-chain tbody tr")
    expect(rows).to_have_count(17)
    strikes = [row.get_attribute("data-strike") for row in rows.all()]
    atm = strikes.index(page.locator("#sb-chain tr.oe-atm").get_attribute("data-strike"))
    chosen = {"long_put": strikes[atm - 4], "short_put": strikes[atm - 2], "short_call": strikes[atm + 2],
              "long_call": strikes[atm + 4]}
    answers = []
    page.on("response", lambda r: r.url.endswith("/api/spreads/preview") and r.status == 200 and answers.append(r))
    for field, strike in chosen.items():
        side = "put" if field.endswith("put") else "call"
        page.click(f'#sb-chain .sb-pick[data-side="{side}"][data-strike="{strike}"]')
    for side, strike in (("put", chosen["long_put"]), ("call", chosen["long_call"])):
        expect(page.locator(f'#sb-chain .sb-pick[data-side="{side}"][data-strike="{strike}"]')).to_have_attribute(
            "aria-pressed", "true")

    # The legs, as the API built them: buy, sell, sell, buy; one contract each.
    legs = page.locator("#sb-legs li.sb-leg")
    expect(legs).to_have_count(4)
    expect(_figure(page, "max_profit")).not_to_be_empty()
    assert [leg.get_attribute("data-side") for leg in legs.all()] == ["LONG", "SHORT", "SHORT", "LONG"]
    answer = answers[-1].json()

    # The same question asked of the API directly gets the same numbers the page shows.
    question = {"ticker": "SPY", "strategy_type": "iron_condor", "expiry": expiry, "qty": 1, **chosen}
    csrf = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    direct = page.request.post(f"{live_server.url}/api/spreads/preview", data=question, headers={"X-CSRFToken": csrf})
    assert direct.ok, direct.text()
    api = direct.json()
    for key in ("net_price", "cost", "max_profit", "max_loss", "breakevens", "buying_power", "greeks", "payoff"):
        assert api[key] == answer[key], key
    assert api["net_direction"] == "credit" and api["defined_risk"] is True
    assert Decimal(api["max_profit"]) + Decimal(api["max_loss"]) == (
        Decimal(chosen["short_put"]) - Decimal(chosen["long_put"])) * 100  # both wings 2 strikes wide
    expect(page.locator('#sb-figures [data-figure="net"] dt')).to_have_text("Net credit")
    expect(_figure(page, "net")).to_have_text(f"{Decimal(api['net_price']):.2f}")
    expect(_figure(page, "cost")).to_have_text(_money(api["cost"]))
    expect(_figure(page, "max_profit")).to_have_text(_money(api["max_profit"]))
    expect(_figure(page, "max_loss")).to_have_text(_money(api["max_loss"]))
    expect(_figure(page, "buying_power")).to_have_text(_money(api["buying_power"]))
    expect(_figure(page, "breakevens")).to_have_text(" · ".join(f"{Decimal(b):.2f}" for b in api["breakevens"]))
    expect(_figure(page, "delta")).to_have_text(api["greeks"]["delta"])

    # One chart, two curves: at expiry and today, each through every point of the answer.
    chart = page.locator("#sb-chart")
    expect(chart).to_have_attribute("data-curves", "2")
    for curve in ("expiry", "today"):
        line = chart.locator(f'path[data-curve="{curve}"]')
        expect(line).to_have_attribute("data-points", str(len(api["payoff"])))
        box = line.bounding_box()
        assert box["width"] > 200 and box["height"] > 20, (curve, box)
    box, card = chart.bounding_box(), page.locator("#panel-builder").bounding_box()
    assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"] + 1
    assert page_overflow(page) == 0

    # Removing a leg takes its strike back off the chain; clicking it again restores the condor.
    page.click(f'#sb-legs button[aria-label="Remove the {chosen["long_call"]} call"]')
    expect(page.locator("#sb-legs li.sb-pending")).to_have_count(3)
    expect(page.locator("#sb-send")).to_be_disabled()
    expect(page.locator("#sb-hint")).to_contain_text("1 more to click")
    page.click(f'#sb-chain .sb-pick[data-side="call"][data-strike="{chosen["long_call"]}"]')
    expect(page.locator("#sb-legs li.sb-leg:not(.sb-pending)")).to_have_count(4)
    expect(page.locator("#sb-send")).to_be_enabled()
    shoot(page, f"strategy-builder-{name}-condor")

    # Exits as a share of the max profit and a multiple of the credit; Send posts the documented body.
    # The server's field errors of a 400 come back beside their inputs.
    page.select_option("#sb-exit-mode", "share")
    expect(page.locator("#sb-multiple")).to_be_visible()
    expect(page.locator("#sb-tp")).to_be_hidden()
    page.fill("#sb-tp-pct", "50")
    page.fill("#sb-multiple", "2")
    sent = []
    refusal = {"type": "validation_error", "errors": [
        {"code": "invalid", "attr": "stop_loss_credit_multiple", "detail": "The stop must be above the credit."},
        {"code": "invalid", "attr": "legs", "detail": "The broker does not take this spread."}]}

    def answer_400(route):
        sent.append(route.request)
        route.fulfill(status=400, content_type="application/json", body=json.dumps(refusal))

    page.route("**/api/trades", answer_400)
    page.click("#sb-send")
    expect(page.locator('#sb-form [data-error-for="stop_loss_credit_multiple"]')).to_have_text(
        "The stop must be above the credit.")
    expect(page.locator('#sb-form [data-error-for="legs"]')).to_have_text("The broker does not take this spread.")
    expect(page.locator("#sb-multiple")).to_have_attribute("aria-invalid", "true")
    (request,) = sent
    assert request.method == "POST" and request.headers["idempotency-key"]
    assert request.post_data_json == {
        "ticker": "SPY", "strategy_type": "iron_condor", "qty": 1, "entry_type": "limit",
        "limit_price": f"{Decimal(api['net_price']):.2f}",
        "legs": [{"option_symbol": leg["option_symbol"], "side": leg["side"], "ratio": 1} for leg in api["legs"]],
        "take_profit_pct_of_max": "50", "stop_loss_credit_multiple": "2",
    }
    # Held prices instead: the stop above the credit, the target below, both sent as given.
    page.select_option("#sb-exit-mode", "prices")
    page.fill("#sb-sl", "2.40")
    page.fill("#sb-tp", "0.60")
    page.fill("#sb-qty", "2")
    expect(_figure(page, "cost")).to_have_text(_money(str(2 * Decimal(api["cost"]))))
    page.click("#sb-send")
    expect(page.locator('#sb-form [data-error-for="legs"]')).to_have_text("The broker does not take this spread.")
    body = sent[-1].post_data_json
    assert (body["qty"], body["sl_price"], body["tp_price"]) == (2, "2.40", "0.60")
    assert "take_profit_pct_of_max" not in body and "stop_loss_credit_multiple" not in body
    if viewport is PHONE:
        assert page_overflow(page) == 0
    shoot(page, f"strategy-builder-{name}-refused")
    assert page.problems == [], json.dumps(page.problems)


def test_a_short_strangle_says_its_risk_is_unlimited(market_clock, device, alice):
    page = device()
    page.click("#tab-builder")
    page.fill("#sb-ticker", "SPY")
    expiry = page.locator("#sb-expiry option", has_text="monthly").first
    expect(expiry).to_be_attached()
    page.select_option("#sb-template", "strangle")
    page.select_option("#sb-direction", "credit")
    page.select_option("#sb-expiry", expiry.get_attribute("value"))
    rows = page.locator("#sb-chain tbody tr")
    expect(rows).to_have_count(17)
    strikes = [row.get_attribute("data-strike") for row in rows.all()]
    page.click(f'#sb-chain .sb-pick[data-side="call"][data-strike="{strikes[12]}"]')
    page.click(f'#sb-chain .sb-pick[data-side="put"][data-strike="{strikes[4]}"]')
    expect(_figure(page, "max_loss")).to_have_text("Unlimited")
    expect(_figure(page, "buying_power")).to_have_text("Not reserved")
    expect(page.locator("#sb-risk-note")).to_contain_text("Unlimited risk")
    # A put clicked above the call is refused by the API beside the strikes, in trader words.
    page.click(f'#sb-chain .sb-pick[data-side="put"][data-strike="{strikes[14]}"]')
    expect(page.locator('#sb-form [data-error-for="call_strike"]')).to_contain_text("must be above its put strike")
    expect(page.locator("#sb-send")).to_be_disabled()
    assert page.problems == [], json.dumps(page.problems)


def test_a_calendar_takes_one_click_and_a_back_expiry_and_says_its_figures_are_modelled(market_clock, device, alice):
    page = device(viewport=PHONE)
    page.click("#tab-builder")
    page.fill("#sb-ticker", "SPY")
    front = page.locator("#sb-expiry option", has_text="monthly").first
    expect(front).to_be_attached()
    page.select_option("#sb-template", "calendar")
    expect(page.locator("#sb-back-box")).to_be_visible()
    expect(page.locator("#sb-direction-box")).to_be_hidden()
    page.select_option("#sb-expiry", front.get_attribute("value"))
    expect(page.locator("#sb-chain tr.oe-atm")).to_be_visible()
    strike = page.locator("#sb-chain tr.oe-atm").get_attribute("data-strike")
    back = page.locator("#sb-back-expiry").input_value()
    assert back > front.get_attribute("value")
    page.click(f'#sb-chain .sb-pick[data-side="call"][data-strike="{strike}"]')
    expect(page.locator("#sb-legs li.sb-leg")).to_have_count(2)
    assert [leg.get_attribute("data-side") for leg in page.locator("#sb-legs li.sb-leg").all()] == ["SHORT", "LONG"]
    expect(page.locator('#sb-figures [data-figure="max_profit"]')).to_contain_text("modelled at the front expiry")
    expect(page.locator("#sb-chart")).to_have_attribute("data-curves", "2")
    assert page_overflow(page) == 0
    shoot(page, "strategy-builder-phone-calendar")
    assert page.problems == [], json.dumps(page.problems)


def test_an_iron_condor_sent_for_real_appears_in_the_portfolio_with_its_legs(market_clock, device, alice):
    """No route is faked: Send posts to the real POST /api/trades, the local paper broker fills the
    condor at market, and the Open Positions tab shows the trade with its four legs."""
    from tradeoptions import tenancy
    from trades import services
    from trades.models import PaperTrade

    account = services.account_settings_for(user=alice)
    account.account_balance, account.heat_limit_pct, account.max_positions = Decimal("100000"), Decimal("100"), 20
    with tenancy.acting_as(alice.pk):
        account.save()
    page = device()
    page.click("#tab-builder")
    page.fill("#sb-ticker", "SPY")
    monthly = page.locator("#sb-expiry option", has_text="monthly").first
    expect(monthly).to_be_attached()
    page.select_option("#sb-template", "iron_condor")
    page.select_option("#sb-expiry", monthly.get_attribute("value"))
    rows = page.locator("#sb-chain tbody tr")
    expect(rows).to_have_count(17)
    strikes = [row.get_attribute("data-strike") for row in rows.all()]
    atm = strikes.index(page.locator("#sb-chain tr.oe-atm").get_attribute("data-strike"))
    for side, strike in (("put", strikes[atm - 4]), ("put", strikes[atm - 2]), ("call", strikes[atm + 2]),
                         ("call", strikes[atm + 4])):
        page.click(f'#sb-chain .sb-pick[data-side="{side}"][data-strike="{strike}"]')
    expect(page.locator("#sb-legs li.sb-leg:not(.sb-pending)")).to_have_count(4)
    expect(page.locator("#sb-send")).to_be_enabled()
    page.select_option("#sb-entry-type", "market")
    page.select_option("#sb-exit-mode", "share")
    page.fill("#sb-tp-pct", "50")
    page.fill("#sb-multiple", "2")
    page.click("#sb-send")
    expect(page.locator("#sb-sent")).to_contain_text("Sent: trade #")
    expect(page.locator("#sb-sent")).to_contain_text("open")

    with tenancy.acting_as(alice.pk):
        (trade,) = PaperTrade.objects.all()
        legs = list(trade.legs.order_by("position"))
    assert (trade.strategy_type, trade.net_direction, trade.qty) == ("iron_condor", "credit", 1)
    assert [leg.side for leg in legs] == ["LONG", "SHORT", "SHORT", "LONG"]
    assert trade.tp_price < trade.entry_price < trade.sl_price  # a credit's target below, its stop above
    page.click("#tab-open")
    row = page.locator(f'tr.position[data-trade-id="{trade.pk}"]')
    expect(row).to_be_visible()
    expect(row.locator(".contract-label")).to_contain_text("SPY Iron condor")
    expect(row.locator(".spread-legs")).to_have_text(" · ".join(
        f"{'+' if leg.side == 'LONG' else '−'}1 SPY {leg.strike.normalize():f}{leg.option_type[0]}" for leg in legs))
    assert page.problems == [], json.dumps(page.problems)
