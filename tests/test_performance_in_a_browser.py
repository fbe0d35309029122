"""The Performance tab in a real Chromium, on a history lived through the real engine by
`manage.py simulate`: the equity curve, daily P&L and P&L distribution charts, the calibration
curves with their monotonicity flags, the exit-replay heat maps and the exit policies replayed
under them (desktop and phone), each showing the API's own values. Screenshots go to
.data/screenshots/ for a person to look at."""

from datetime import date

import pytest
from django.core.cache import cache
from django.core.management import call_command
from playwright.sync_api import expect

from analytics import selectors
from analytics.services import trade_targets_compute
from tests.fakes.market import RecordedMinuteBars
from tests.test_portfolio_in_a_browser import PHONE, alice, device, shoot  # noqa: F401  (fixtures)
from tradeoptions import tenancy

pytestmark = pytest.mark.django_db(transaction=True)

END = date(2026, 11, 27)  # the same pinned week as monitoring/tests/test_simulate.py


@pytest.fixture
def lived_history(alice):  # noqa: F811 (the imported fixture)
    cache.clear()  # bookends are marked done in Redis
    call_command("simulate", "--days", "4", "--user", "alice", "--seed", "pinned", "--end", END.isoformat(),
                 "--step-minutes", "10", "--apply")
    trade_targets_compute(closed_from=date(2026, 11, 1), closed_to=END, provider=RecordedMinuteBars())
    with tenancy.acting_as(alice.pk):
        return selectors.calibration(user=alice), selectors.exit_replay(user=alice), selectors.exit_policy_replay(
            user=alice)


def test_the_performance_tab_draws_calibration_and_the_hindsight_heat_map(device, lived_history):  # noqa: F811
    calibration, replay, policies = lived_history
    assert calibration["trades"] >= 10 and replay["strategies"]
    assert [row["strategy"] for row in policies["strategies"]] == [row["strategy"] for row in replay["strategies"]]
    policies_of = {row["strategy"]: row for row in policies["strategies"]}
    page = device()
    page.click("#tab-performance")
    panel = page.locator("#performance")
    for name in ("equity_curve", "daily", "pnl_distribution"):
        expect(panel.locator(f"[data-metric={name}] canvas").first).to_be_visible()
    expect(panel.locator("[data-metric=pnl_distribution] [role=img]")).to_have_attribute(
        "aria-label", _contains(f"Histogram of {calibration['trades']} closed trades by realized P&L"))

    # Calibration: one card per score, its flag as the API says, its curve drawn.
    cards = panel.locator(".calibration-card")
    expect(cards).to_have_count(4)
    for name, result in calibration["scores"].items():
        card = panel.locator(f".calibration-card[data-score={name}]")
        expect(card).to_have_attribute("data-monotonic", str(result["monotonic"]).lower()
                                       if result["monotonic"] is not None else "null")
        if result["buckets"]:
            expect(card.locator("canvas").first).to_be_visible()
            first = result["buckets"][0]
            expect(card.locator("[role=img]")).to_have_attribute("aria-label", _contains(f"D1 ({first['score_min']}"))
        expect(card).to_have_attribute("data-verdict", result["verdict"])
        if result["verdict"] == "non_monotonic":
            expect(card.locator(".flag-warn")).to_contain_text("non-monotonic")
        else:
            expect(card.locator(".flag-warn")).to_have_count(0)

    # The exit replay: said to be hindsight, one 6 × 6 grid per strategy, its values the API's.
    block = panel.locator("[data-metric=exit_replay]")
    expect(block.locator("h2")).to_contain_text("hindsight")
    expect(block.locator(".hindsight-note")).to_contain_text("Hindsight: each closed trade's recorded path")
    expect(block.locator(".hindsight-note")).to_contain_text("Not a forecast.")
    expect(block.locator(".replay-basis")).to_contain_text("Like for like")
    maps = block.locator("table.heatmap")
    expect(maps).to_have_count(len(replay["strategies"]))
    for strategy in replay["strategies"]:
        grid = block.locator(f"table.heatmap[data-strategy={strategy['strategy']}]")
        expect(grid.locator("tbody td")).to_have_count(len(replay["sl_pct"]) * len(replay["tp_pct"]))
        best = strategy["best"]
        cell = grid.locator(f"td.best[data-sl='{best['sl_pct']}'][data-tp='{best['tp_pct']}']")
        card = block.locator(f".heatmap-card:has(table.heatmap[data-strategy={strategy['strategy']}])")
        expect(card.locator(".replay-verdict")).to_have_text(strategy["comparison"]["sentence"])
        expect(cell).to_have_attribute("data-pnl", best["total_pnl"])
        for sample in strategy["cells"][::7]:
            expect(grid.locator(f"td[data-sl='{sample['sl_pct']}'][data-tp='{sample['tp_pct']}']")).to_have_attribute(
                "data-pnl", sample["total_pnl"])
        _policies_shown(card, policies_of[strategy["strategy"]])
    expect(block.locator(".policy-basis")).to_have_text(policies["basis"])
    shoot(page, "desktop-performance")
    panel.locator(".chart-row").screenshot(path=str(_screenshot("desktop-performance-charts")))
    panel.locator("[data-metric=calibration]").screenshot(path=str(_screenshot("desktop-performance-calibration")))
    block.screenshot(path=str(_screenshot("desktop-performance-exit-replay")))
    assert page.problems == []


def _policies_shown(card, policies):
    """The strategy's exit-policy table shows the API's figures, its best row highlighted."""
    table = card.locator("table.policy-table")
    expect(card.locator(".policy-verdict")).to_contain_text(policies["sentence"])
    expect(table.locator("tbody tr")).to_have_count(len(policies["candidates"]) + 1)
    expect(table.locator("tr[data-key=own_brackets] td[data-label='P&L, net']")).to_have_attribute(
        "data-pnl", policies["own_brackets"]["total_pnl"])
    for row in policies["candidates"]:
        shown = table.locator(f"tr[data-key={row['key']}]")
        expect(shown.locator("td[data-label='P&L, net']")).to_have_attribute("data-pnl", row["total_pnl"])
        expect(shown.locator("td[data-label=Wins]")).to_have_text(f"{row['wins']} of {row['trades']}")
        expect(shown.locator("td[data-label='vs your brackets']")).to_have_attribute("data-gap", row["vs_own_brackets"])
        expect(shown.locator("td[data-label='vs your brackets']")).to_have_attribute("title", row["sentence"])
        if row["policy"] is not None:  # the policy in the words of its chips on a position row
            expect(shown.locator(".policy-chip").first).to_be_visible()
    # The best is outlined only when it beats your own brackets.
    expect(table.locator("tr.best-policy")).to_have_count(1 if policies["best"] else 0)
    if policies["best"]:
        expect(table.locator("tr.best-policy")).to_have_attribute("data-key", policies["best"])


def test_the_performance_tab_on_a_phone(device, lived_history):  # noqa: F811
    _, replay, policies = lived_history
    page = device(viewport=PHONE)
    page.click("#tab-performance")
    expect(page.locator(".calibration-card canvas").first).to_be_visible()
    expect(page.locator("table.heatmap").first).to_be_visible()
    # The exit policies' tables become cards: no header row, each cell labelled, the API's figures.
    block = page.locator("[data-metric=exit_replay]")
    shown = next((row for row in policies["strategies"] if row["best"]), policies["strategies"][0])
    card = block.locator(f".heatmap-card:has(table.heatmap[data-strategy={shown['strategy']}])")
    card.locator("table.policy-table").scroll_into_view_if_needed()
    expect(card.locator("table.policy-table thead")).to_be_hidden()
    key = shown["best"] or shown["candidates"][0]["key"]
    cell = card.locator(f"table.policy-table tr[data-key={key}] td[data-label='P&L, net']")
    expect(cell).to_be_visible()
    (row,) = [row for row in shown["candidates"] if row["key"] == key]
    expect(cell).to_have_attribute("data-pnl", row["total_pnl"])
    _policies_shown(card, shown)
    card.locator(".policy-replay").screenshot(path=str(_screenshot("mobile-performance-exit-policies")))
    # Wide tables scroll inside their box; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "mobile-performance")
    page.locator("[data-metric=calibration]").screenshot(path=str(_screenshot("mobile-performance-calibration")))
    page.locator("[data-metric=exit_replay]").screenshot(path=str(_screenshot("mobile-performance-exit-replay")))
    assert page.problems == []


def _contains(text):
    import re

    return re.compile(re.escape(text))


def _screenshot(name):
    from tests.test_portfolio_in_a_browser import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
