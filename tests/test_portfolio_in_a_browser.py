"""The portfolio and settings pages, in a real Chromium against a live server: a trader opens a
trade through the form, watches it, adjusts it, closes it, finds it in the history and exports
it; two devices disagree about a trade; broker trouble shows as a banner. Screenshots of the
desktop and mobile views go to .data/screenshots/ (git-ignored) for a person to look at."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from knox.models import AuthToken
from playwright.sync_api import expect

from brokers.models import BrokerMode
from monitoring.models import SnapshotKind
from tests import in_a_browser
from tests.factories import PASSWORD, PriceSnapshotFactory, UserFactory
from tests.in_a_browser import DESKTOP, PHONE, SCREENSHOTS, shoot  # noqa: F401 - other browser tests import them from here
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, PaperTrade, TradeStatus

pytestmark = pytest.mark.django_db(transaction=True)

device = in_a_browser.device  # the logged-in browser device the browser tests share

CONTRACT = "SPY261218C00570000"
EXPIRY = date(2026, 12, 18)
LABEL = "SPY Dec 18, 2026 570 C"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


def open_trade(user, **changes) -> PaperTrade:
    data = {"ticker": "SPY", "option_type": "CALL", "strike": Decimal("570"), "expiry": EXPIRY, "qty": 2,
            "sl_price": Decimal("3.00"), "tp_price": Decimal("6.50"), **changes}
    result = services.trade_open(user=user, data=services.TradeOpenInput(**data))
    assert result.trade.status == TradeStatus.OPEN, result.problem
    return result.trade


def mark(trade, bid, ask):
    """What the monitor cycle writes on a held trade: the latest quote and the unrealized P&L."""
    bid, ask = Decimal(bid), Decimal(ask)
    with tenancy.acting_as(trade.owner_id):
        trade.refresh_from_db()
        middle = (bid + ask) / 2
        PaperTrade.objects.filter(pk=trade.pk).update(
            current_bid=bid, current_ask=ask, current_price=middle, last_updated=timezone.now(),
            unrealized_pnl=(middle - trade.entry_price) * trade.qty * 100)


def add_snapshots(trade):
    start = datetime(2026, 12, 1, 14, 25, tzinfo=UTC)
    marks = [("4.20", SnapshotKind.PRE_MARKET), ("4.25", SnapshotKind.INTRADAY), ("4.60", SnapshotKind.INTRADAY),
             ("4.45", SnapshotKind.INTRADAY), ("4.80", SnapshotKind.POST_MARKET)]
    for minutes, (mark, kind) in zip((0, 20, 60, 180, 400), marks, strict=True):
        PriceSnapshotFactory(trade=trade, owner=trade.owner, timestamp=start + timedelta(minutes=minutes), kind=kind,
                             mark_price=Decimal(mark), bid=Decimal(mark) - Decimal("0.05"),
                             ask=Decimal(mark) + Decimal("0.05"), delta=Decimal("0.52"), iv=Decimal("0.18"))


def position(page, label=LABEL):
    return page.locator("#positions tr.position", has_text=label)


def test_a_trader_opens_watches_adjusts_closes_and_exports_a_trade(device, market, alice):
    page = device()
    assert page.locator("#broker-mode").inner_text() == "LOCAL PAPER"
    expect(page.locator("#market-status")).to_contain_text("Market:")
    expect(page.locator("#positions-empty")).to_be_visible()

    # The form shows the API's own validation messages, next to the field they are about.
    page.click("#new-trade-toggle")
    page.fill("#nt-ticker", "spy")
    page.fill("#nt-expiry", EXPIRY.isoformat())
    page.fill("#nt-strike", "570")
    page.fill("#nt-qty", "0")
    page.fill("#nt-sl", "3.00")
    page.fill("#nt-tp", "6.50")
    page.click("#nt-submit")
    expect(page.locator('#new-trade [data-error-for="qty"]')).to_have_text(
        "The number of contracts must be at least 1.")
    expect(page.locator("#nt-qty")).to_have_attribute("aria-invalid", "true")
    page.fill("#nt-qty", "2")
    page.click("#nt-submit")
    expect(page.locator(".toast-success")).to_contain_text(f"Opened {LABEL} ×2 at 4.30")

    row = position(page)
    expect(row).to_be_visible()
    expect(row.locator("td[data-label=Entry]")).to_have_text("4.30")
    expect(row.locator("td[data-label=DTE]")).to_contain_text("d")
    trade = _only_trade(alice)
    mark(trade, "4.70", "4.90")
    page.click("#refresh-all")
    # Net of the $1.30 paid to buy and the $1.30 selling would cost ($0.65 a contract), gross below.
    unrealized = row.locator("td[data-label='Unrealized P&L, net']")
    expect(unrealized.locator(".pnl")).to_have_text("+$97.40 gain")
    expect(unrealized.locator(".pnl-gross")).to_have_text("gross +$100.00 (+11.63%), costs −$2.60")
    expect(unrealized).to_have_attribute("title", re.compile("the commission selling now would cost"))
    expect(row.locator(".mark")).to_have_attribute("title", "bid 4.70 / ask 4.90")
    expect(row.locator("td.sl")).to_contain_text("1.80 away (37.50%)")

    # Expand it: the chart over its snapshots, greeks, scores, the event log.
    add_snapshots(trade)
    row.locator("button.toggle").click()
    detail = page.locator(f"#detail-{trade.pk}")
    expect(detail.locator(".chart-canvas canvas").first).to_be_visible()
    expect(detail.locator(".chart-canvas")).to_have_attribute("aria-label", "Mark price over 5 snapshots, last 4.80; "
                                                              "entry, stop-loss and take-profit shown as lines.")
    expect(detail.locator(".facts")).to_contain_text("Delta")
    expect(detail.locator(".event-log li").first).to_be_visible()
    # Each event's payload reads as "name: value" pairs, prices with two decimals; the JSON is behind "raw".
    opened = detail.locator(".event-log li", has_text="planned entry")
    fields = opened.locator(".payload-fields li")
    for text in ("contract: SPY Dec 18, 2026 570 call", "contracts: 2", "planned entry: 4.30", "stop-loss: 3.00",
                 "take-profit: 6.50", "broker: local paper"):
        expect(fields.filter(has_text=text)).to_have_count(1)
    filled = detail.locator(".event-log li", has_text="order filled").locator(".payload-fields")
    expect(filled).to_contain_text("order fill: price 4.30, quantity 2")  # two levels down: written inline
    raw = opened.locator(".payload-raw code")
    expect(raw).to_be_hidden()
    opened.locator(".payload-raw summary", has_text="raw").click()
    expect(raw).to_contain_text('"planned_entry_price"')
    shoot(page, "desktop-open-positions-expanded")

    # Adjust the stop-loss inline; a stop above the bid is refused with the API's reason, in place.
    detail.locator("input[name=new_sl]").fill("5.00")
    detail.locator("button.save-adjust").click()
    expect(detail.locator(".adjust-form .error:not(:empty)").first).to_contain_text(
        "A stop-loss at 5.00 is at or above the bid (4.10): it would fire at once")  # money with 2 decimals
    detail.locator("input[name=new_sl]").fill("3.20")
    detail.locator("button.save-adjust").click()
    expect(page.locator(".toast-success", has_text="stop-loss 3.20 saved")).to_be_visible()
    expect(row.locator("td.sl")).to_contain_text("3.20")
    adjusted = detail.locator(".event-log li", has_text="bracket adjusted").locator(".payload-fields")
    expect(adjusted).to_contain_text("before stop-loss: 3.00")
    expect(adjusted).to_contain_text("after stop-loss: 3.20")
    expect(adjusted).to_contain_text("allowed to fill at once: no")

    # Close through the confirmation dialog; the bid has moved up. Escape keeps the position.
    market.set_quote(CONTRACT, "5.00", "5.20")
    row.locator("button.close").click()
    dialog = page.locator("#close-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(row.locator("button.close")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text("Close SPY 570C at market?")
    expect(page.locator("#close-cancel")).to_be_focused()
    dialog.locator("#close-confirm").click()
    expect(page.locator(".toast-success", has_text="Closed SPY 570C at 5.00: +$137.40 net, +$140.00 (+16.28%) "
                                                   "before commissions")).to_be_visible()
    expect(dialog).to_be_hidden()
    expect(page.locator("#positions-empty")).to_be_visible()

    # History (reached with the keyboard): the trade, its close reason as a word, the P&L with its sign.
    page.focus("#tab-open")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-history")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-history")).to_be_focused()
    expect(page.locator("#panel-open")).to_be_hidden()
    history_row = page.locator("#history tbody tr", has_text=LABEL)
    expect(history_row.locator(".reason")).to_have_text("Manual close")
    realized = history_row.locator("td[data-label='Realized P&L, net']")
    expect(realized.locator(".pnl")).to_have_text("+$137.40 gain")
    expect(realized.locator(".pnl-gross")).to_have_text("gross +$140.00 (+16.28%), costs −$2.60")
    page.check("text=Losses")
    expect(page.locator("#history-empty")).to_be_visible()
    page.check("text=Wins")
    expect(history_row).to_be_visible()
    shoot(page, "desktop-history")

    with page.expect_download() as download:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [(row["id"], row["close_reason"], row["realized_pnl"], row["realized_pnl_net"]) for row in rows] == [
        (str(trade.pk), "MANUAL_CLOSE", "140.00", "137.40")]

    page.click("#tab-performance")
    # Performance shows what GET /api/analytics/performance answers, or says plainly that it is coming.
    expect(page.locator("#performance")).not_to_contain_text("Loading")
    expect(page.locator("[data-metric=equity_curve] canvas").first).to_be_visible()
    shoot(page, "desktop-performance")
    assert page.problems == []


def _only_trade(user) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(owner=user)


def test_the_new_trade_form_says_what_is_wrong_while_the_trader_types(device, market, alice):
    page = device()
    checks = []
    page.on("request", lambda request: request.url.endswith("/api/trades/validate") and checks.append(request))
    page.click("#new-trade-toggle")
    page.fill("#nt-ticker", "SPY")
    page.fill("#nt-strike", "-570")
    # The answer names every missing field too; only the ones the trader has been at are marked.
    expect(page.locator("#nt-strike-error")).to_have_text("The strike must be above zero.")
    for name in ("expiry", "sl_price", "tp_price"):
        expect(page.locator(f"#nt-{name}-error")).to_be_empty()
    expect(page.locator("#new-trade [aria-invalid]")).to_have_count(1)
    page.fill("#nt-strike", "570")
    expect(page.locator("#nt-strike-error")).to_be_empty()
    page.fill("#nt-expiry", EXPIRY.isoformat())
    page.fill("#nt-tp", "6.50")
    page.fill("#nt-sl", "4.50")  # above the 4.30 ask the entry would be bought at
    sl_message = page.locator("#nt-sl_price-error")
    expect(sl_message).to_have_text("A long option's stop-loss must be below the entry (4.30).")
    expect(page.locator("#nt-sl")).to_have_attribute("aria-invalid", "true")
    expect(sl_message).to_have_attribute("aria-live", "polite")
    assert page.locator("#nt-sl").get_attribute("aria-describedby") == "nt-sl_price-error"
    shoot(page, "desktop-new-trade-live-validation")

    page.fill("#nt-sl", "3.00")
    expect(sl_message).to_be_empty()
    expect(page.locator("#nt-sl")).not_to_have_attribute("aria-invalid", "true")
    assert len(checks) >= 2 and _trades(alice) == []  # asked as they typed; nothing was opened

    # A risk limit is about no one field: it is said in the form's own box, and goes when fixed too.
    page.fill("#nt-qty", "3")  # $390 at the stops, over 6% of the $5,000 balance
    form_message = page.locator('#new-trade [data-error-for="non_field_errors"]')
    expect(form_message).to_contain_text("your heat limit is 6%")  # in words, no field name
    page.fill("#nt-qty", "2")
    expect(form_message).to_be_empty()

    # Submit still does the opening.
    page.click("#nt-submit")
    expect(page.locator(".toast-success")).to_contain_text(f"Opened {LABEL} ×2 at 4.30")
    assert len(_trades(alice)) == 1
    assert page.problems == []


def _trades(user) -> list[PaperTrade]:
    with tenancy.acting_as(user.pk):
        return list(PaperTrade.objects.filter(owner=user))


def test_two_devices_one_trade_the_stale_one_is_told_and_refreshed(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})  # no poll hides the race
    trade = open_trade(alice)
    phone, laptop = device(), device()
    expect(position(phone)).to_be_visible()
    expect(position(laptop)).to_be_visible()

    position(laptop).locator("button.adjust").click()
    laptop.locator(f"#detail-{trade.pk} input[name=new_tp]").fill("7.00")
    laptop.locator(f"#detail-{trade.pk} button.save-adjust").click()
    expect(laptop.locator(".toast-success")).to_contain_text("take-profit 7.00 saved")

    position(phone).locator("button.close").click()
    phone.locator("#close-confirm").click()
    expect(phone.locator(".toast-warning")).to_have_text("This trade was updated on another device×")
    shoot(phone, "desktop-conflict-toast")
    expect(position(phone).locator("td.tp")).to_contain_text("7.00")  # the truth, about a second later
    assert _only_trade(alice).status == TradeStatus.OPEN
    assert phone.problems == [] and laptop.problems == []


def test_a_phone_shows_cards_with_thumb_sized_actions(device, market, alice, settings):
    settings.FORCE_MARKET_OPEN = True  # the live server runs in this process: the top bar says so
    trade = open_trade(alice)
    add_snapshots(trade)
    mark(trade, "3.90", "4.10")
    market.set_quote("QQQ261218P00500000", "7.90", "8.00")
    open_trade(alice, ticker="QQQ", strike=Decimal("500"), option_type="PUT", qty=1, sl_price=Decimal("7.80"),
               tp_price=Decimal("9.50"))
    page = device(viewport=PHONE)
    row = position(page)
    expect(row).to_be_visible()
    expect(page.locator("#market-status")).to_have_text("Market: FORCE OPEN (not the real clock)")
    assert page.locator("#positions thead").is_hidden()
    assert row.locator("button.close").bounding_box()["height"] >= 40
    shoot(page, "mobile-open-positions")
    row.locator("button.toggle").click()
    expect(page.locator(f"#detail-{trade.pk} .chart-canvas canvas").first).to_be_visible()
    shoot(page, "mobile-open-positions-expanded")
    page.click("#tab-history")
    shoot(page, "mobile-history")
    page.click("nav >> text=Settings")
    expect(page.locator("#sandbox-token-state")).to_have_text("(not set)")
    shoot(page, "mobile-settings")
    assert page.problems == []


def test_broker_trouble_shows_a_banner_with_a_link_to_settings(device, market, alice):
    with tenancy.acting_as(alice.pk):
        AccountSettings.objects.filter(owner=alice).update(broker_mode=BrokerMode.TRADIER_SANDBOX)
    page = device()
    assert page.locator("#broker-mode").inner_text() == "SANDBOX"
    page.click("#new-trade-toggle")
    page.fill("#nt-ticker", "SPY")
    page.fill("#nt-expiry", EXPIRY.isoformat())
    page.fill("#nt-strike", "570")
    page.fill("#nt-sl", "3.00")
    page.fill("#nt-tp", "6.50")
    page.click("#nt-submit")
    banner = page.locator(".banner[data-code=broker_reauthenticate]")
    expect(banner).to_contain_text("Re-authenticate your broker token")
    banner.locator("a", has_text="Open settings").click()
    page.wait_for_url("**/settings/")
    expect(page.locator("#sandbox-token-state")).to_have_text("(not set)")


def test_settings_tokens_are_write_only_and_api_tokens_are_shown_once(device, market, alice, live_server):
    page = device()
    page.click("nav >> text=Settings")
    expect(page.locator("#sandbox-token-state")).to_have_text("(not set)")
    page.fill("#s-sandbox-token", "sandbox-secret")
    page.fill("#s-max-positions", "7")
    page.click("#settings-save")
    expect(page.locator(".toast-success")).to_have_text("Settings saved×")
    expect(page.locator("#sandbox-token-state")).to_have_text("(set)")
    assert page.locator("#s-sandbox-token").input_value() == ""
    assert services.account_settings_for(user=alice).max_positions == 7

    # The commission per contract: the server's default until set; out of range, refused in words.
    expect(page.locator("#s-commission")).to_have_value("0.6500")
    page.fill("#s-commission", "12")
    page.click("#settings-save")
    expect(page.locator('[data-error-for="commission_per_contract"]')).to_have_text(
        "A commission per contract is between $0 and $10.00, e.g. 0.65.")
    expect(page.locator("#s-commission")).to_have_attribute("aria-invalid", "true")
    page.fill("#s-commission", "0.35")
    page.click("#settings-save")
    expect(page.locator("#s-commission")).to_have_value("0.3500")
    assert services.account_settings_for(user=alice).commission_rate == Decimal("0.35")

    page.select_option("#s-broker-mode", "TRADIER_LIVE")
    expect(page.locator("#live-guard")).to_be_visible()
    page.click("#settings-save")
    expect(page.locator("#settings-form .error:not(:empty)").first).to_be_visible()  # refused, said why
    assert services.account_settings_for(user=alice).broker_mode == BrokerMode.LOCAL_PAPER
    page.select_option("#s-broker-mode", "LOCAL_PAPER")

    page.click("#token-create")
    expect(page.locator("#token-issued")).to_be_visible()
    token = page.locator("#token-value").input_value()
    assert len(token) > 20
    api = page.context.request
    assert api.get(f"{live_server.url}/api/settings", headers={"Authorization": f"Token {token}"}).ok
    page.click("#token-revoke-new")
    expect(page.locator("#token-issued")).to_be_hidden()
    assert api.get(f"{live_server.url}/api/settings", headers={"Authorization": f"Token {token}"}).status == 401
    shoot(page, "desktop-settings")
    assert page.problems == []


def test_api_tokens_are_listed_by_their_key_and_revoked_from_the_list(device, market, alice, live_server):
    _, scanner_token = AuthToken.objects.create(user=alice)  # one a scanner holds already
    AuthToken.objects.create(user=UserFactory(username="bob"))  # not alice's: never listed
    page = device()
    page.click("nav >> text=Settings")
    rows = page.locator("#token-list tbody tr")
    expect(rows).to_have_count(1)

    page.click("#token-create")
    expect(page.locator("#token-issued")).to_be_visible()
    token = page.locator("#token-value").input_value()
    key = token[:15]
    row = page.locator(f'#token-list tbody tr[data-token-key="{key}"]')
    expect(row.locator("th")).to_have_text(f"{key}…new")
    expect(rows).to_have_count(2)
    shoot(page, "desktop-settings-token-list")
    page.reload()  # shown once: now only its key is left
    expect(row.locator("th")).to_have_text(f"{key}…")
    expect(page.locator("#token-issued")).to_be_hidden()
    assert token not in page.content()

    api = page.context.request
    works = lambda secret: api.get(f"{live_server.url}/api/settings",  # noqa: E731
                                   headers={"Authorization": f"Token {secret}"}).status
    revoke = row.get_by_role("button", name=f"Revoke token {key}…")
    revoke.click()  # a confirmation first; Escape keeps the token
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h2")).to_have_text(f"Revoke token {key}…?")
    expect(page.locator("#token-dialog-keep")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(revoke).to_be_focused()
    assert works(token) == 200

    revoke.click()
    page.click("#token-dialog-revoke")
    expect(page.locator(".toast-success", has_text=f"Token {key}… revoked")).to_be_visible()
    expect(row).to_have_count(0)
    expect(rows).to_have_count(1)
    assert works(token) == 401 and works(scanner_token) == 200
    assert page.problems == []


def test_a_signed_in_trader_signs_out_every_api_token_without_pasting_one(device, market, alice, live_server):
    _, scanner_token = AuthToken.objects.create(user=alice)
    _, laptop_token = AuthToken.objects.create(user=alice)
    _, bobs_token = AuthToken.objects.create(user=UserFactory(username="bob"))
    page = device()
    page.click("nav >> text=Settings")
    rows = page.locator("#token-list tbody tr")
    expect(rows).to_have_count(2)
    api = page.context.request
    works = lambda secret: api.get(f"{live_server.url}/api/settings",  # noqa: E731
                                   headers={"Authorization": f"Token {secret}"}).status

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first; "Cancel" keeps them
    page.click("#token-sign-out-all")
    expect(rows).to_have_count(2)
    assert works(scanner_token) == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#token-sign-out-all")
    expect(page.locator(".toast-success", has_text="2 API token(s) signed out")).to_be_visible()
    expect(rows).to_have_count(0)
    expect(page.locator("#token-list-empty")).to_be_visible()
    assert works(scanner_token) == 401 and works(laptop_token) == 401 and works(bobs_token) == 200
    page.reload()  # the session itself is still signed in
    expect(page.locator("#token-list-empty")).to_be_visible()
    assert page.problems == []


def test_a_poll_that_finds_a_take_profit_hit_rings_the_register(device, market, alice):
    from monitoring.services import match_paper_orders
    from monitoring.sync import sync_orders

    trade = open_trade(alice)
    page = device()
    expect(position(page)).to_be_visible()
    page.uncheck("#auto-refresh")  # saved in the account's settings
    expect(page.locator(".toast", has_text="Auto-refresh off (saved)")).to_be_visible()
    assert services.account_settings_for(user=alice).auto_refresh is False
    page.click("#mute-toggle")  # muted: nothing is heard, the page still says which sound it was
    expect(page.locator("#mute-toggle")).to_have_attribute("aria-pressed", "true")
    market.set_quote(CONTRACT, "6.60", "6.80")
    assert match_paper_orders(market=market) == 1  # the monitor's order cycle: the TP fills at the bid…
    sync_orders(market=market)  # …and becomes the trade's state
    page.click("#refresh-all")
    expect(page.locator(".toast-success")).to_contain_text("SPY 570C: take-profit hit, +$")
    expect(page.locator("body")).to_have_attribute("data-last-sound", "profit")
    expect(page.locator("#positions-empty")).to_be_visible()
    assert _only_trade(alice).close_reason == "TP_HIT" and trade.pk
    page.reload()
    expect(page.locator("#mute-toggle")).to_have_attribute("aria-pressed", "true")  # remembered
    expect(page.locator("#auto-refresh")).not_to_be_checked()
    assert page.problems == []


COUNT_FETCHES = """
window.positionPolls = 0;
const realFetch = window.fetch;
window.fetch = (url, ...rest) => {
  if (String(url).includes("/api/trades?status=OPEN")) window.positionPolls += 1;
  return realFetch(url, ...rest);
};
"""
HIDE = """Object.defineProperty(document, "hidden", {value: %s, configurable: true});
document.dispatchEvent(new Event("visibilitychange"));"""


def test_polling_runs_every_15_seconds_pauses_while_hidden_and_resumes_on_return(browser, live_server, market, alice):
    trade = open_trade(alice)
    context = browser.new_context()
    page = context.new_page()
    page.clock.install()  # the page's timers run on a clock the test moves
    page.add_init_script(COUNT_FETCHES)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#last-updated")).to_contain_text("Last updated")
    polls = lambda: page.evaluate("window.positionPolls")  # noqa: E731
    assert polls() == 1
    stamp = page.locator("#last-updated").inner_text()
    page.clock.run_for(14_000)
    assert polls() == 1
    page.clock.run_for(2_000)
    assert polls() == 2  # every 15 s while someone looks
    expect(page.locator("#last-updated")).not_to_have_text(stamp)  # that refresh has landed

    # Someone typing a new stop-loss is not disturbed by the next poll.
    position(page).locator("button.toggle").click()
    new_sl = page.locator(f"#detail-{trade.pk} input[name=new_sl]")
    expect(new_sl).to_have_value("3.00")
    new_sl.fill("3.1")
    stamp = page.locator("#last-updated").inner_text()
    page.wait_for_load_state("networkidle")  # the detail's own fetches are done, the next poll is set
    page.clock.run_for(16_000)
    assert polls() == 3
    expect(page.locator("#last-updated")).not_to_have_text(stamp)
    expect(new_sl).to_be_focused()
    expect(new_sl).to_have_value("3.1")
    page.evaluate(HIDE % "true")
    page.clock.run_for(120_000)
    assert polls() == 3  # nobody looks: nothing is fetched
    page.evaluate(HIDE % "false")
    assert polls() == 4  # back: at once
    context.close()


def test_typing_an_exit_while_the_details_load_keeps_every_keystroke(device, market, alice):
    services.account_settings_update(user=alice, changes={"auto_refresh": False})
    trade = open_trade(alice)
    page = device()
    held = []  # the trade's details are held back until the trader has typed
    page.route(f"**/api/trades/{trade.pk}", lambda route: held.append(route))
    position(page).locator("button.adjust").click()
    tp = page.locator(f"#detail-{trade.pk} input[name=new_tp]")
    tp.fill("7.00")
    for _ in range(100):  # Playwright hands over intercepted requests while it waits
        if held:
            break
        page.wait_for_timeout(50)
    for route in held:
        route.continue_()
    expect(page.locator(f"#detail-{trade.pk} .event-log li").first).to_be_visible()  # the details arrived
    expect(tp).to_have_value("7.00")
    expect(tp).to_be_focused()
    expect(page.locator(f"#detail-{trade.pk} input[name=new_sl]")).to_have_value("3.00")
    page.locator(f"#detail-{trade.pk} button.save-adjust").click()
    expect(page.locator(".toast-success")).to_contain_text("take-profit 7.00 saved")
    assert page.problems == []


def test_a_contract_held_short_at_the_broker_shows_in_red(device, market, alice):
    """The over-sell flag (monitoring's sync sets it through trades.services.trade_oversold_flag):
    a red banner for every flagged trade, closed ones included, and a red tag on an open row."""
    held, closed = open_trade(alice, qty=1), open_trade(alice, qty=1)
    with tenancy.acting_as(alice.pk):
        services.trade_oversold_flag(trade=held, short_qty=1, actor="SYSTEM")
        PaperTrade.objects.filter(pk=closed.pk).update(status=TradeStatus.CLOSED, close_reason="TP_HIT",
                                                       close_price=Decimal("6.50"), close_date=timezone.now())
        services.trade_oversold_flag(trade=PaperTrade.objects.get(pk=closed.pk), short_qty=2, actor="SYSTEM")
    page = device()
    red = "rgb(185, 28, 28)"
    banners = page.locator(".banner-oversold")
    expect(banners).to_have_count(2)
    expect(banners.nth(0)).to_contain_text(f"holds 2 {CONTRACT} short (trade #{closed.pk}, closed, take-profit hit)")
    expect(banners.nth(1)).to_contain_text(f"trade #{held.pk}")
    expect(banners.nth(0)).to_have_css("background-color", red)
    tag = position(page).locator(".status-oversold")
    expect(tag).to_have_text("short 1 at the broker")
    expect(tag).to_have_css("background-color", red)
    shoot(page, "portfolio-oversold")
    assert page.problems == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_position_shows_its_exit_policy_as_chips_and_the_stop_it_trails(device, market, alice, viewport):
    trade = open_trade(alice, exit_policy={"trail_amount": "0.50", "trail_after_pct": "10",
                                           "close_minutes_before_close": "15"})
    with tenancy.acting_as(alice.pk):  # what the monitor leaves after a move: the stop and the best bid
        PaperTrade.objects.filter(pk=trade.pk).update(sl_price=Decimal("4.50"), exit_high_water=Decimal("5.00"))
    page = device(viewport=viewport)
    row = position(page)
    expect(row.locator(".policy-chip")).to_have_text(["trail $0.50 after +10\u00a0%", "close 15 min before the bell"])
    expect(row.locator("td.sl")).to_contain_text("4.50")
    expect(row.locator("td.sl .trail-note")).to_have_text("trailing the best bid 5.00")
    shoot(page, f"{'phone' if viewport == PHONE else 'desktop'}-exit-policy-chips")
    assert page.problems == []


def test_a_trader_edits_the_exit_policy_in_the_expanded_row_and_is_told_what_is_wrong(device, market, alice):
    trade = open_trade(alice, exit_policy={"close_days_to_expiry": "2"})  # not in the form: kept
    page = device()
    row = position(page)
    row.locator("button.toggle").click()
    form = page.locator(f"#detail-{trade.pk} form.policy-form")
    expect(form.locator(".policy-kept")).to_have_text("Also in force, set through the API and kept: close at 2 DTE.")
    form.locator("input[name=trail_after_pct]").fill("10")
    form.locator("button.save-policy").click()
    expect(form.locator('[data-error-for="trail_after_pct"]')).to_have_text(  # beside the setting it is about
        "A gain that starts the trailing needs a trailing stop (a percentage or a dollar distance).")
    expect(form.locator('[data-error-for="exit_policy"]')).to_have_text("")
    form.locator("input[name=trail_pct]").fill("15")
    form.locator("button.save-policy").click()
    expect(page.locator(".toast-success")).to_contain_text("exit policy saved")
    expect(row.locator(".policy-chip")).to_have_text(["trail 15\u00a0% after +10\u00a0%", "close at 2 DTE"])
    with tenancy.acting_as(alice.pk):
        assert PaperTrade.objects.get(pk=trade.pk).exit_policy == {
            "trail_pct": "15", "trail_after_pct": "10", "close_days_to_expiry": "2"}
    shoot(page, "desktop-exit-policy-form")
    assert page.problems == []
