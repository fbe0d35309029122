"""GET/PUT /api/settings: limits, write-only tokens, and the guarded switch to live trading."""

from decimal import Decimal

import pytest

from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades import services
from trades.models import EventKind, TradeEvent

SANDBOX_TOKEN = "sbx-SECRET-7f3a9c1e"
LIVE_TOKEN = "live-SECRET-2b8d4e6f"


def _events(user):
    with tenancy.acting_as(user.pk):
        return list(TradeEvent.objects.filter(owner=user, kind=EventKind.SETTINGS_CHANGED).order_by("id"))


def test_a_trader_reads_her_settings_with_the_defaults(api_as, trader):
    body = api_as(trader).get("/api/settings").json()
    assert body["broker_mode"] == "LOCAL_PAPER" and body["account_balance"] == "5000.00"
    assert (body["max_positions"], body["daily_loss_limit"], body["heat_limit_pct"]) == (5, "150.00", "6.00")
    assert body["has_sandbox_token"] is False and body["auto_refresh"] is True


def test_limits_change_and_the_change_is_audited(api_as, trader):
    response = api_as(trader).put("/api/settings", {"max_positions": 8, "heat_limit_pct": "10"}, format="json")
    assert response.status_code == 200 and response.json()["max_positions"] == 8
    account = services.account_settings_for(user=trader)
    assert account.max_positions == 8 and account.heat_limit_pct == Decimal("10")
    (event,) = _events(trader)
    assert event.trade_id is None and event.actor_user_id == trader.pk
    assert event.payload["changes"]["max_positions"] == {"from": 5, "to": 8}


@pytest.mark.parametrize("body", [{"heat_limit_pct": "101"}, {"max_positions": -1}, {"account_balance": "-5"},
                                  {"broker_mode": "CASINO"}, {"auto_refresh": "perhaps"}])
def test_bad_settings_are_field_errors(api_as, trader, body):
    response = api_as(trader).put("/api/settings", body, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == next(iter(body))


def test_tokens_are_write_only_and_appear_in_no_response_or_event(api_as, trader):
    client = api_as(trader)
    responses = [
        client.put("/api/settings", {"tradier_sandbox_token": SANDBOX_TOKEN, "tradier_account_id": "VA1",
                                     "broker_mode": "TRADIER_SANDBOX"}, format="json"),
        client.get("/api/settings"),
        client.get("/api/trades"),
        client.get("/api/schema/"),
    ]
    assert responses[0].status_code == 200 and responses[1].json()["has_sandbox_token"] is True
    assert "tradier_sandbox_token" not in responses[1].json()
    for response in responses:
        assert SANDBOX_TOKEN not in response.content.decode()
    (event,) = _events(trader)
    assert event.payload["tokens"] == {"TRADIER_SANDBOX": "set"} and SANDBOX_TOKEN not in str(event.payload)
    assert services.account_settings_for(user=trader).broker_token(BrokerMode.TRADIER_SANDBOX) == SANDBOX_TOKEN


def test_an_empty_token_removes_it(api_as, trader):
    client = api_as(trader)
    client.put("/api/settings", {"tradier_sandbox_token": SANDBOX_TOKEN}, format="json")
    assert client.put("/api/settings", {"tradier_sandbox_token": ""}, format="json").json()[
        "has_sandbox_token"] is False


def test_the_sandbox_needs_a_token_and_an_account_id(api_as, trader):
    response = api_as(trader).put("/api/settings", {"broker_mode": "TRADIER_SANDBOX"}, format="json")
    assert response.status_code == 400
    assert {error["attr"] for error in response.json()["errors"]} == {"tradier_sandbox_token", "tradier_account_id"}


def test_a_server_with_the_sandbox_switched_off_refuses_the_switch(api_as, trader, settings):
    settings.ALLOW_TRADIER_SANDBOX = False
    response = api_as(trader).put("/api/settings", {"broker_mode": "TRADIER_SANDBOX", "tradier_account_id": "VA1",
                                                    "tradier_sandbox_token": SANDBOX_TOKEN}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "broker_mode" and "ALLOW_TRADIER_SANDBOX" in error["detail"]


LIVE = {"broker_mode": "TRADIER_LIVE", "tradier_account_id": "6YA0001", "tradier_live_token": LIVE_TOKEN,
        "confirmation": "LIVE TRADING"}


@pytest.mark.parametrize(("allow", "changes", "refused"), [
    (False, {}, {"broker_mode"}),
    (True, {"tradier_live_token": None}, {"tradier_live_token"}),
    (True, {"confirmation": None}, {"confirmation"}),
    (True, {"confirmation": "live trading please"}, {"confirmation"}),
])
def test_live_trading_needs_the_server_switch_a_live_token_and_the_words(api_as, trader, settings, allow, changes,
                                                                         refused):
    settings.ALLOW_LIVE_TRADING = allow
    body = {name: value for name, value in {**LIVE, **changes}.items() if value is not None}
    response = api_as(trader).put("/api/settings", body, format="json")
    assert response.status_code == 400
    assert {error["attr"] for error in response.json()["errors"]} == refused
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.LOCAL_PAPER and not account.has_broker_token(BrokerMode.TRADIER_LIVE)
    assert _events(trader) == []


def test_switching_to_live_with_all_three_is_audited(api_as, trader, settings):
    settings.ALLOW_LIVE_TRADING = True
    response = api_as(trader).put("/api/settings", LIVE, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["broker_mode"] == "TRADIER_LIVE" and response.json()["has_live_token"] is True
    assert LIVE_TOKEN not in response.content.decode()
    (event,) = _events(trader)
    assert event.payload["changes"]["broker_mode"] == {"from": "LOCAL_PAPER", "to": "TRADIER_LIVE"}
    assert event.payload["tokens"] == {"TRADIER_LIVE": "set"}
    # The audit log is append-only: the account number goes in masked, to its last four.
    assert event.payload["changes"]["tradier_account_id"] == {"from": "", "to": "…0001"}
    assert "6YA0001" not in str(event.payload)


@pytest.mark.parametrize(("number", "masked"), [("6YA00005151", "…5151"), ("…5151", "…5151"), ("VA12", "…"),
                                                ("", "")])
def test_an_account_number_is_masked_to_its_last_four(number, masked):
    assert services.account_number_masked(number) == masked


def test_settings_are_the_callers_own(api_as, trader, other_trader):
    api_as(other_trader).put("/api/settings", {"max_positions": 9}, format="json")
    assert api_as(trader).get("/api/settings").json()["max_positions"] == 5


def test_the_commission_per_contract_defaults_to_the_servers_and_can_be_set(api_as, trader, settings):
    settings.PAPER_COMMISSION_PER_CONTRACT = "0.65"
    client = api_as(trader)
    assert client.get("/api/settings").json()["commission_per_contract"] == "0.6500"
    response = client.put("/api/settings", {"commission_per_contract": "0.35"}, format="json")
    assert response.status_code == 200 and response.json()["commission_per_contract"] == "0.3500"
    assert services.account_settings_for(user=trader).commission_rate == Decimal("0.35")
    (event,) = _events(trader)
    assert event.payload["changes"]["commission_per_contract"] == {"from": None, "to": "0.3500"}
    assert client.put("/api/settings", {"commission_per_contract": "0"}, format="json").status_code == 200


@pytest.mark.parametrize("value", ["10.01", "-0.01", "lots", None, 0.65, "0.12345"])
def test_a_commission_outside_0_to_10_dollars_is_a_field_error_in_trader_words(api_as, trader, value):
    response = api_as(trader).put("/api/settings", {"commission_per_contract": value}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["attr"] == "commission_per_contract"
    assert error["detail"] == "A commission per contract is between $0 and $10.00, e.g. 0.65."
    assert services.account_settings_for(user=trader).commission_per_contract is None  # nothing written


def test_the_service_refuses_a_commission_out_of_range_too(trader):
    with pytest.raises(services.InvalidTradeInput) as refused:
        services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("11")})
    assert refused.value.field_errors == {"commission_per_contract": [services.COMMISSION_RANGE]}
