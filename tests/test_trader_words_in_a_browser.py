"""Trader words on the portfolio, in a real Chromium: an empty submit of the new-trade form (and of
the adjust form) marks every missing field at once, each beside its input; the position's event
log reads as a trader talks (no task module names, order tags, codes, paths or URLs outside its
"raw" view, which keeps the event as stored); dates read "Dec 18, 2026" and moments
"Dec 18, 2026 15:59 ET", never "18 Dec 26" nor ISO. Screenshots go to .data/screenshots/."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.factories import TradeEventFactory
from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade, TradeStatus

from . import test_portfolio_in_a_browser as portfolio
from .test_portfolio_in_a_browser import DESKTOP, PHONE, add_snapshots, mark, open_trade, position, shoot

device = portfolio.device  # the same logged-in browser device, console errors collected

pytestmark = pytest.mark.django_db(transaction=True)

SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
UPPER_CODE = re.compile(r"\b[A-Z]+_[A-Z_]+\b")  # "BROKER_FILL", "LOCAL_PAPER"
ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
SHORT_YEAR = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{2}\b")  # "18 Dec 26"
MOMENT = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, 20\d{2} \d{2}:\d{2} ET$")  # "Dec 1, 2026 10:00 ET"
COLLECTOR = "monitoring.collect_entry_context"
BROKER_ERROR = ("HTTPSConnectionPool(host='sandbox.tradier.com', port=443): Max retries exceeded with url: "
                "/v1/accounts/VA000001/orders")


@pytest.fixture
def alice(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice")


def _errors_beside(form, names):
    """{field: its message} for each of `names`, read from the box beside the input."""
    return {name: form.locator(f'[data-error-for="{name}"]').inner_text() for name in names}


def test_an_empty_new_trade_flags_every_missing_field_beside_its_input(device, market, alice):
    page = device()
    page.click("#new-trade-toggle")
    page.fill("#nt-qty", "")
    page.click("#nt-submit")
    form = page.locator("#new-trade")
    missing = {"ticker": "Give a ticker.", "expiry": "Pick an expiry.", "strike": "Give a strike.",
               "qty": "Give the number of contracts.",
               "sl_price": "Give a stop-loss price, or a percentage of the entry.",
               "tp_price": "Give a take-profit price, or a percentage of the entry."}
    expect(form.locator('[data-error-for="tp_price"]')).to_have_text(missing["tp_price"])
    assert _errors_beside(form, missing) == missing
    for name in missing:
        expect(form.locator(f"[name={name}]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator('[data-error-for="non_field_errors"]')).to_be_empty()  # nothing lands in the form's box
    expect(form.locator('[aria-invalid="true"]').first).to_be_focused()
    shoot(page, "desktop-new-trade-empty-submit")

    # Filled in, the messages go; the preview's verdict is a label, a refusal on a limit too.
    page.fill("#nt-ticker", "SPY")
    page.fill("#nt-expiry", "2026-12-18")
    page.fill("#nt-strike", "570")
    page.fill("#nt-qty", "3")  # $390 at the stops: over 6% of the $5,000 balance
    page.fill("#nt-sl", "3.00")
    page.fill("#nt-tp", "6.50")
    expect(page.locator("#oe-preview .oe-verdict")).to_have_text("Over your heat limit")
    page.fill("#nt-qty", "1")
    expect(page.locator("#oe-preview .oe-verdict")).to_have_text("Passes every check")
    for name in missing:
        expect(form.locator(f'[data-error-for="{name}"]')).to_be_empty()
    page.click("#nt-submit")
    expect(page.locator(".toast-success")).to_contain_text("Opened SPY Dec 18, 2026 570 C ×1 at 4.30")


def test_an_empty_adjust_flags_both_exits_beside_their_inputs(device, market, alice):
    trade = open_trade(alice)
    page = device()
    position(page).locator("button.toggle").click()
    form = page.locator(f"#detail-{trade.pk} form.adjust-form")
    expect(form.locator("input[name=new_sl]")).to_have_value("3.00")
    form.locator("input[name=new_sl]").fill("")
    form.locator("input[name=new_tp]").fill("")
    form.locator("button.save-adjust").click()
    expect(form.locator('[data-error-for="new_tp"]')).to_have_text("Give a new take-profit, or a new stop-loss.")
    assert _errors_beside(form, ["new_sl", "new_tp", "non_field_errors"]) == {
        "new_sl": "Give a new stop-loss, or a new take-profit.",
        "new_tp": "Give a new take-profit, or a new stop-loss.",
        "non_field_errors": ""}
    expect(form.locator("input[name=new_sl]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("input[name=new_tp]")).to_have_attribute("aria-invalid", "true")
    # Unchanged exits are still told in the form's own box, without a request.
    form.locator("input[name=new_sl]").fill("3.00")
    form.locator("input[name=new_tp]").fill("6.50")
    form.locator("button.save-adjust").click()
    expect(form.locator('[data-error-for="non_field_errors"]')).to_have_text(
        "Change the stop-loss or the take-profit first.")


def _machine_events(trade):
    """What the system writes beside the trader's own events: the entry context collector (a module
    name as its actor, field names in its payload, a URL in a reason) and an outage the monitor met
    (an error code, a broker's error text with a host and a path)."""
    owner = trade.owner
    TradeEventFactory(trade=trade, owner=owner, kind=EventKind.CONTEXT_CAPTURED, actor=Actor.SYSTEM,
                      actor_label=COLLECTOR, old_status="", new_status="",
                      payload={"entry_at": "2026-12-01T15:00:00+00:00", "filled": ["signals_snapshot", "market_regime"],
                               "missing": {"order_book_state": {"quote": "https://api.orats.io/datav2/strikes: 503"}}})
    TradeEventFactory(trade=trade, owner=owner, kind=EventKind.ATTENTION_NEEDED, actor=Actor.SYSTEM,
                      actor_label="sync_orders", old_status=TradeStatus.OPEN, new_status=TradeStatus.OPEN,
                      payload={"error": "broker_unavailable", "detail": BROKER_ERROR, "bracket_attempt": 2,
                               "source": "BROKER_FILL"})


def _tags(trade) -> list[str]:
    """Every order tag the trade's events keep."""
    with tenancy.acting_as(trade.owner_id):
        payloads = [json.dumps(event.payload) for event in trade.events.all()]
    return sorted({tag for payload in payloads for tag in re.findall(r'"tag": "([^"]+)"', payload)})


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_event_log_and_the_dates_read_in_trader_words(device, market, alice, viewport):
    trade = open_trade(alice)
    with tenancy.acting_as(alice.pk):  # as a scanner sends them
        PaperTrade.objects.filter(pk=trade.pk).update(ai_verdict="strong_buy", gate_verdict="PASS")
    mark(trade, "4.40", "4.60")
    add_snapshots(trade)
    _machine_events(trade)
    tags = _tags(trade)
    assert tags, "the order summaries keep their tags (the raw view must still show them)"

    page = device(viewport=viewport)
    row = position(page, "SPY Dec 18, 2026 570 C")
    expect(row).to_be_visible()
    row.locator("button.toggle").click()
    detail = page.locator(f"#detail-{trade.pk}")
    log = detail.locator(".event-log")
    expect(log.locator(":scope > li")).to_have_count(5)  # opened, filled, bracket placed, context, attention

    # The readable view: the kinds' labels, who acted in words, codes as words, no machine text.
    readable = log.inner_text()  # a closed "raw" shows nothing
    for words in ("Entry context captured", "by the system", "captured: signals snapshot, market regime",
                  "missing order book state: in the raw view",
                  "error: broker unavailable", "source: broker fill", "Needs a person's attention", "by alice",
                  "contract: SPY Dec 18, 2026 570 call"):
        assert words in readable, (words, readable)
    for machine in (COLLECTOR, "sync_orders", "sandbox.tradier.com", "/v1/", "api.orats.io", *tags):
        assert machine not in readable, (machine, readable)
    assert not SNAKE.findall(readable) and not UPPER_CODE.findall(readable), readable
    assert not ISO.findall(readable) and not SHORT_YEAR.findall(readable), readable
    times = log.locator(":scope > li > time").all_inner_texts()
    assert len(times) == 5 and all(MOMENT.match(text) for text in times), times
    shoot(page, f"{'desktop' if viewport is DESKTOP else 'phone'}-event-log-in-words")

    # The raw view keeps the event as stored, its actor's tag and the order tags included.
    context = log.locator("li", has_text="Entry context captured")
    context.locator(".payload-raw summary").click()
    raw = context.locator(".payload-raw code")
    expect(raw).to_contain_text(COLLECTOR)
    expect(raw).to_contain_text('"signals_snapshot"')
    for summary in log.locator(".payload-raw summary").all():
        summary.click()
    everything = log.inner_text()
    assert all(tag in everything for tag in tags) and "sandbox.tradier.com" in everything, everything

    # Dates elsewhere in the detail, and the scanner's verdicts as labels.
    facts = detail.locator(".facts")
    expect(facts).to_contain_text("Strong buy")
    expect(facts).to_contain_text("Pass")
    updated = facts.locator("dt", has_text="Updated").locator("xpath=following-sibling::dd[1]")
    expect(updated).to_have_text(MOMENT)
    assert "strong_buy" not in facts.inner_text()
