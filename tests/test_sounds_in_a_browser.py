"""The sounds of the portfolio page (static/js/sound.js), in a real Chromium: a stop-loss the monitor
filled plays the falling "womp", a position closed on another device or through the close dialog
plays the pop, like the take-profit's register in test_portfolio_in_a_browser. Beyond the name the
page writes on <body>, the tones handed to the Web Audio API are recorded, so a sound that is named
but never synthesized (or the wrong one) fails."""

import pytest
from playwright.sync_api import expect

from monitoring.services import match_paper_orders
from monitoring.sync import sync_orders
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

from . import test_portfolio_in_a_browser as portfolio
from .test_portfolio_in_a_browser import CONTRACT, open_trade, position

device = portfolio.device
alice = portfolio.alice

pytestmark = pytest.mark.django_db(transaction=True)

# Every oscillator the page starts, as {type, from}: its waveform and first frequency.
RECORD_TONES = """
window.tones = [];
const createOscillator = BaseAudioContext.prototype.createOscillator;
BaseAudioContext.prototype.createOscillator = function () {
  const oscillator = createOscillator.call(this);
  const tone = { type: null, from: null };
  const set = oscillator.frequency.setValueAtTime.bind(oscillator.frequency);
  oscillator.frequency.setValueAtTime = (value, at) => { tone.from ??= value; return set(value, at); };
  const start = oscillator.start.bind(oscillator);
  oscillator.start = (at) => { tone.type = oscillator.type; window.tones.push(tone); return start(at); };
  return oscillator;
};
"""
LOSS = [{"type": "sawtooth", "from": 330}, {"type": "sawtooth", "from": 262}]
POP = [{"type": "sine", "from": 600}]


def listening(device):
    """A logged-in page whose synthesized tones are recorded, auto-refresh off (the test refreshes)."""
    page = device()
    page.context.add_init_script(RECORD_TONES)
    page.uncheck("#auto-refresh")
    page.reload()
    expect(page.locator("#last-updated")).to_contain_text("Last updated")
    assert page.evaluate("window.tones") == []
    return page


def _status(user, trade) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(pk=trade.pk)


def test_a_poll_that_finds_a_stop_loss_hit_plays_the_loss(device, market, alice):
    trade = open_trade(alice)  # 2 × 4.30, stop-loss 3.00
    page = listening(device)
    expect(position(page)).to_be_visible()
    market.set_quote(CONTRACT, "2.90", "3.10")
    assert match_paper_orders(market=market) == 1  # the stop fills at the bid…
    sync_orders(market=market)  # …and becomes the trade's state
    page.click("#refresh-all")
    expect(page.locator(".toast-warning")).to_contain_text("SPY 570C: stop-loss hit, \u2212$")
    expect(page.locator("body")).to_have_attribute("data-last-sound", "loss")
    assert page.evaluate("window.tones") == LOSS
    assert _status(alice, trade).close_reason == "SL_HIT"
    assert page.problems == []


def test_a_close_from_another_device_pops_and_one_here_pops_once(device, market, alice):
    elsewhere = open_trade(alice, qty=1)  # two positions stay under the heat limit
    here = open_trade(alice, qty=1)
    page = listening(device)
    expect(page.locator("#positions tr.position")).to_have_count(2)

    result = services.trade_close(user=alice, trade_id=elsewhere.pk, version=elsewhere.version, market=market)
    assert result.trade.status == TradeStatus.CLOSED, result.problem
    page.click("#refresh-all")
    expect(page.locator(".toast-info", has_text="SPY 570C was closed, ")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-last-sound", "pop")
    assert page.evaluate("window.tones") == POP

    page.evaluate("window.tones = []; delete document.body.dataset.lastSound")
    position(page).locator("button.close").click()
    page.click("#close-confirm")
    expect(page.locator(".toast-success", has_text="Closed SPY 570C at 4.10")).to_be_visible()
    expect(page.locator("#positions-empty")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-last-sound", "pop")
    # The close done here is not heard again when the refresh finds it gone.
    assert page.evaluate("window.tones") == POP
    assert _status(alice, here).status == TradeStatus.CLOSED
    assert page.problems == []
