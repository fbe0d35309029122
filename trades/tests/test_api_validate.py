"""POST /api/trades/validate: the new-trade form's live validation. The checks of a real open,
answered the same way, with nothing written, locked or placed."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.models import BrokerMode, PaperAccount, PaperOrder
from tests.factories import PaperTradeFactory, account_with
from tradeoptions import tenancy
from trades.models import AccountSettings, CloseReason, IdempotencyKey, PaperTrade, TradeEvent, TradeStatus

VALIDATE = "/api/trades/validate"



def _rows(user) -> dict[str, int]:
    """Everything an open could have written for `user`, counted in their tenant context."""
    with tenancy.acting_as(user.pk):
        return {model.__name__: model.objects.count()
                for model in (PaperTrade, TradeEvent, PaperOrder, PaperAccount, IdempotencyKey, AccountSettings)}


def test_a_valid_trade_answers_valid_and_writes_and_places_nothing(api_as, trader, scripted_broker, open_body):
    before = _rows(trader)
    response = api_as(trader).post(VALIDATE, open_body(), format="json", HTTP_IDEMPOTENCY_KEY="form-1")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["valid"] is True and (body["queued_for_open"], body["next_session_open"]) == (False, None)
    assert _rows(trader) == before and before["PaperTrade"] == 0
    assert scripted_broker(trader).calls == []  # the broker was looked up, never called
    # The key was not claimed: the real open with it goes through as a first request.
    opened = api_as(trader).post("/api/trades", open_body(), format="json", HTTP_IDEMPOTENCY_KEY="form-1")
    assert opened.status_code == 201 and "Idempotent-Replayed" not in opened


def test_a_limit_entry_is_checked_against_its_limit_not_the_ask(api_as, trader, market, open_body):
    client = api_as(trader)
    assert client.post(VALIDATE, open_body(entry_type="limit", limit_price="3.50"), format="json").status_code == 200
    refused = client.post(VALIDATE, open_body(entry_type="limit", limit_price="2.90"), format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"code": "invalid", "attr": "sl_price",
                                         "detail": "A long option's stop-loss must be below the entry (2.90)."}]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"qty": 0}, "qty"),  # the serializer's field rules
        ({"strike": None}, "strike"),
        ({"sl_price": "abc"}, "sl_price"),
        ({"entry_type": "limit"}, "limit_price"),
        ({"ticker": None, "option_symbol": "SPY2612"}, "option_symbol"),
        ({"expiry": "2026-11-27"}, "expiry"),  # the service's, against the market
        ({"expiry": "2026-12-19"}, "expiry"),
        ({"ticker": "sp-y"}, "ticker"),
        ({"strike": "571"}, "option_symbol"),
        ({"sl_price": "4.30"}, "sl_price"),
        ({"tp_price": "4.00"}, "tp_price"),
    ],
    ids=lambda value: str(value),
)
def test_each_field_error_is_the_one_a_real_open_gives(api_as, trader, market, open_body, changes, field):
    client = api_as(trader)
    checked = client.post(VALIDATE, open_body(**changes), format="json")
    assert checked.status_code == 400, checked.json()
    assert checked.json()["type"] == "validation_error"
    assert field in [error["attr"] for error in checked.json()["errors"]]
    opened = client.post("/api/trades", open_body(**changes), format="json")
    assert (opened.status_code, opened.json()) == (checked.status_code, checked.json())
    assert _rows(trader)["PaperTrade"] == 0


def test_every_field_error_comes_at_once_with_its_field(api_as, trader, market, open_body):
    response = api_as(trader).post(VALIDATE, open_body(sl_price="5.00", tp_price="4.00"), format="json")
    assert response.status_code == 400
    assert {error["attr"]: error["detail"] for error in response.json()["errors"]} == {
        "sl_price": "A long option's stop-loss must be below the entry (4.30).",
        "tp_price": "A long option's take-profit must be above the entry (4.30).",
    }


def test_max_positions_answers_422_naming_the_limit(api_as, trader, market, open_body):
    account_with(trader, max_positions=1)
    PaperTradeFactory(owner=trader, status=TradeStatus.PENDING, entry_price=None, entry_date=None)
    before = _rows(trader)
    response = api_as(trader).post(VALIDATE, open_body(), format="json")
    assert response.status_code == 422
    assert {name: value for name, value in response.json().items() if name != "preview"} == {
        "type": "client_error", "errors": [{
            "code": "risk_limit_exceeded", "attr": "max_positions",
            "detail": "1 trade is open or pending and your limit is 1 position at a time."}]}
    assert _rows(trader) == before


def test_the_daily_loss_limit_answers_422_naming_the_limit(api_as, trader, market, open_body):
    account_with(trader, daily_loss_limit=Decimal("100"))
    PaperTradeFactory(owner=trader, status=TradeStatus.CLOSED, close_price=Decimal("1"),
                      close_reason=CloseReason.SL_HIT, realized_pnl=Decimal("-120"),
                      close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC))
    response = api_as(trader).post(VALIDATE, open_body(), format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["attr"] == "daily_loss_limit" and "$120.00" in error["detail"] and "$100.00" in error["detail"]


def test_the_heat_limit_answers_422_naming_the_limit(api_as, trader, market, open_body):
    account_with(trader, heat_limit_pct=Decimal("5"))  # $250 of a $5,000 balance; this trade risks $260
    response = api_as(trader).post(VALIDATE, open_body(), format="json")
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["attr"] == "heat_limit_pct" and "$260.00" in error["detail"] and "5.20%" in error["detail"]
    assert api_as(trader).post(VALIDATE, open_body(qty=1), format="json").status_code == 200  # $130: 2.60%


def test_a_broker_that_is_not_set_up_is_said_as_a_real_open_says_it(api_as, trader, market, open_body):
    account_with(trader, broker_mode=BrokerMode.TRADIER_SANDBOX, tradier_account_id="VA1")
    response = api_as(trader).post(VALIDATE, open_body(), format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "broker_reauthenticate"


def test_another_users_settings_and_trades_are_never_used(api_as, trader, other_trader, market, open_body):
    # Bob could open nothing: no position left, no heat allowed, a loss already over his limit.
    account_with(other_trader, max_positions=1, heat_limit_pct=Decimal("0"), daily_loss_limit=Decimal("1"),
              broker_mode=BrokerMode.TRADIER_SANDBOX)
    PaperTradeFactory(owner=other_trader, status=TradeStatus.OPEN)
    PaperTradeFactory(owner=other_trader, status=TradeStatus.CLOSED, close_price=Decimal("1"),
                      close_reason=CloseReason.SL_HIT, realized_pnl=Decimal("-500"),
                      close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC))
    assert api_as(trader).post(VALIDATE, open_body(), format="json").status_code == 200
    # And the other way round: Alice's tight limit is hers alone.
    account_with(trader, max_positions=0)
    assert api_as(trader).post(VALIDATE, open_body(), format="json").json()["errors"][0]["attr"] == "max_positions"
    account_with(other_trader, max_positions=5, heat_limit_pct=Decimal("100"), daily_loss_limit=Decimal("1000"),
              broker_mode=BrokerMode.LOCAL_PAPER)
    assert api_as(other_trader).post(VALIDATE, open_body(), format="json").status_code == 200


def test_a_trader_without_a_settings_row_is_measured_against_the_defaults_and_gets_none(
        api_as, trader, market, open_body):
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.filter(owner=trader).delete()
    assert api_as(trader).post(VALIDATE, open_body(), format="json").status_code == 200
    assert api_as(trader).post(VALIDATE, open_body(qty=3), format="json").json()["errors"][0]["attr"] == (
        "heat_limit_pct")  # $390 is over the default 6% of $5,000
    assert _rows(trader)["AccountSettings"] == 0


def test_the_page_session_may_validate_but_nobody_anonymous(client, trader, market, open_body):
    assert client.post(VALIDATE, open_body(), content_type="application/json").status_code in (401, 403)
    client.force_login(trader)
    response = client.post(VALIDATE, open_body(), content_type="application/json")
    assert response.status_code == 200 and response.json()["valid"] is True
