"""Opening a trade while Tradier throttles the account (a 429 with its rate-limit headers): the
entry is sent again once the window resets, or, if it resets too late, the trade says truthfully
that nothing was placed. Over real HTTP against the fake Tradier."""

from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade, TradeStatus

from .conftest import CONTRACT

TOKEN = "sbxTOKEN-throttled-4e3d2c1b0a"
ACCOUNT = "VA00009090"


@pytest.fixture
def tradier(fake_tradier, trader, market):
    cache.clear()  # the rate limiter's buckets and blocks live in the same Redis
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    yield fake_tradier
    cache.clear()


def test_an_entry_tradier_throttles_is_placed_once_the_window_resets(api_as, trader, tradier, open_body):
    tradier.inject("429", method="POST", path="/orders", order_class="option", retry_in=0.5)
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "OPEN" and body["bracket_order_id"] and not body["needs_attention"]
    assert len(tradier.orders_tagged(f"to-{body['id']}-entry")) == 1  # sent twice, placed once


def test_an_entry_throttled_past_the_bound_is_reported_not_placed(api_as, trader, tradier, open_body):
    tradier.inject("429", method="POST", path="/orders", order_class="option", retry_in=50)
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["errors"][0]["code"] == "broker_unavailable" and body["trade"]["status"] == TradeStatus.REJECTED
    assert "throttling" in body["errors"][0]["detail"] and "was not placed" in body["errors"][0]["detail"]
    with tenancy.acting_as(trader.pk):
        trade = PaperTrade.objects.get()
    assert "not placed" in trade.status_reason
    assert tradier.orders_tagged(f"to-{trade.pk}-entry") == [] and len(tradier.requests_for("POST", "/orders")) == 1
