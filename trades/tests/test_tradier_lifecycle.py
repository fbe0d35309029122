"""The lifecycle against Tradier over real HTTP (the fake Tradier server): the same services,
the sandbox's token, order tags from the trade id, and a refused token asking to re-authenticate."""

from decimal import Decimal

import pytest

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade

from .conftest import CONTRACT

TOKEN = "sbxTOKEN-trades-9d8c7b6a5f"
ACCOUNT = "VA00004242"


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    return fake_tradier


def _use_sandbox(user, token=TOKEN):
    services.account_settings_update(user=user, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                         "tradier_account_id": ACCOUNT}, sandbox_token=token)


def test_a_trade_opens_and_closes_at_tradier_with_tagged_orders(api_as, trader, tradier, open_body):
    _use_sandbox(trader)
    client = api_as(trader)
    opened = client.post("/api/trades", open_body(), format="json")
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    assert body["status"] == "OPEN" and body["entry_price"] == "4.3000" and body["broker_mode"] == "TRADIER_SANDBOX"
    (entry,) = tradier.orders_tagged(f"to-{body['id']}-entry")
    (oco,) = tradier.orders_tagged(f"to-{body['id']}-sl")
    assert entry.status == "filled" and oco.order_class == "oco" and str(oco.id) == body["bracket_order_id"]
    assert TOKEN not in opened.content.decode()

    tradier.set_quote(CONTRACT, "5.00", "5.20")
    closed = client.post(f"/api/trades/{body['id']}/close", {"version": body["version"]}, format="json")
    assert closed.status_code == 200, closed.json()
    assert closed.json()["close_price"] == "5.0000" and closed.json()["realized_pnl"] == "140.00"
    (sell,) = tradier.orders_tagged(f"to-{body['id']}-close")
    assert sell.status == "filled" and oco.status == "canceled"


def test_a_token_tradier_refuses_asks_to_reauthenticate(api_as, trader, tradier, open_body):
    _use_sandbox(trader, token="sbx-expired-0000")
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 502
    body = response.json()
    assert body["errors"][0]["code"] == "broker_reauthenticate" and body["trade"]["status"] == "REJECTED"
    assert "sbx-expired-0000" not in response.content.decode()
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get().status == "REJECTED"


def test_a_limit_entry_goes_to_tradier_as_one_otoco_with_its_bracket(api_as, trader, tradier, open_body):
    _use_sandbox(trader)
    opened = api_as(trader).post("/api/trades", open_body(entry_type="limit", limit_price="4.00"), format="json")
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    assert body["status"] == "PENDING"  # the limit rests under the 4.30 ask
    (otoco,) = tradier.orders_tagged(f"to-{body['id']}-entry")
    assert otoco.order_class == "otoco" and len(otoco.legs) == 3
    entry, stop, take = otoco.legs
    assert (entry.side, entry.type, entry.price) == ("buy_to_open", "limit", Decimal("4.00"))
    assert (stop.type, stop.stop, take.type, take.price) == ("stop", Decimal("3.00"), "limit", Decimal("6.50"))
    assert str(otoco.id) == body["entry_order_id"]
    form = tradier.requests_for("POST", "/orders")[0].form
    assert form["class"] == "otoco" and form["option_symbol[1]"] == form["option_symbol[2]"] == CONTRACT
