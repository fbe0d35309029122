"""The pages' server side: the Content-Security-Policy, the market status the top bar reads,
and the derived figures the API gives the pages so that they compute none."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.models import BrokerMode
from tests.factories import PaperTradeFactory
from tradeoptions import tenancy
from tradeoptions.csp import DATA_POLICY, POLICY
from trades.models import AccountSettings


@pytest.fixture
def signed_in(client, trader):
    client.force_login(trader)
    return client


def test_pages_carry_a_policy_without_inline_script(signed_in):
    for url in ("/", "/settings/"):
        response = signed_in.get(url)
        assert response.status_code == 200
        policy = response["Content-Security-Policy"]
        assert policy == POLICY and "script-src 'self';" in policy and "unsafe-inline" not in policy
        html = response.content.decode()
        # Scripts come from files; the page data is a JSON block, which browsers never execute.
        data = '<script id="page-config" type="application/json">'
        allowed = html.count('<script type="module" src=') + html.count(data)
        assert html.count("<script") == allowed
        assert " on" + "click=" not in html and " style=" not in html


def test_the_login_page_has_the_policy_and_the_admin_keeps_working(client, ops_user):
    assert client.get("/login/")["Content-Security-Policy"] == POLICY
    client.force_login(ops_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "script-src 'self';" in response["Content-Security-Policy"]  # inline styles only, never scripts
    assert client.get("/api/trades")["Content-Security-Policy"] == DATA_POLICY  # JSON: nothing may run


def test_market_status_tells_the_top_bar_open_early_close_forced_and_source(signed_in, settings):
    settings.FORCE_MARKET_OPEN = True
    body = signed_in.get("/market-status").json()
    assert body["forced"] is True and body["open"] is True
    assert set(body) >= {"early_close", "session_close", "next_open", "next_close", "data_source", "trading_day"}
    assert body["data_source"] == settings.MARKET_DATA_SOURCE


def test_market_status_needs_a_login(client, db):
    assert client.get("/market-status").status_code == 302


def test_the_api_gives_pnl_percent_distances_and_days_to_expiry(signed_in, trader):
    expiry = timezone.localdate() + timedelta(days=30)
    PaperTradeFactory(owner=trader, qty=2, entry_price=Decimal("4.30"), current_price=Decimal("4.80"),
                      unrealized_pnl=Decimal("100.00"), sl_price=Decimal("3.00"), tp_price=Decimal("6.50"),
                      expiry=expiry)
    (row,) = signed_in.get("/api/trades").json()["results"]
    assert row["unrealized_pnl_pct"] == "11.63"  # 100 / (4.30 × 2 × 100)
    assert (row["sl_distance"], row["sl_distance_pct"]) == ("1.8000", "37.50")
    assert (row["tp_distance"], row["tp_distance_pct"]) == ("1.7000", "35.42")
    assert row["days_to_expiry"] in (29, 30, 31)  # New York's date may differ from UTC's by one


def test_without_a_mark_the_derived_figures_are_null(signed_in, trader):
    PaperTradeFactory(owner=trader, current_price=None, unrealized_pnl=None)
    (row,) = signed_in.get("/api/trades").json()["results"]
    assert row["unrealized_pnl_pct"] is None and row["sl_distance"] is None and row["tp_distance_pct"] is None


@pytest.mark.parametrize(("mode", "badge"), [
    (BrokerMode.LOCAL_PAPER, "LOCAL PAPER"), (BrokerMode.TRADIER_SANDBOX, "SANDBOX"),
    (BrokerMode.TRADIER_LIVE, "LIVE · real money"),
])
def test_the_top_bar_names_the_broker_mode_and_live_is_unmistakable(signed_in, trader, mode, badge):
    signed_in.get("/settings/")  # creates the account settings
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.filter(owner=trader).update(broker_mode=mode)
    html = signed_in.get("/").content.decode()
    assert f"mode-{mode.lower()}" in html and badge in html
    assert ('class="topbar topbar-live"' in html) is (mode == BrokerMode.TRADIER_LIVE)
