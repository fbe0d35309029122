"""Exit policies through the API: at open, later with the version, and as a strategy's preset."""

from decimal import Decimal

import pytest
from django.utils import timezone

from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade, TradeEvent, TradeStatus


@pytest.fixture
def opened(api_as, trader, market, open_body):
    """Alice's trade at 4.30 with its bracket 3.00 / 6.50 and no policy."""
    return api_as(trader).post("/api/trades", open_body(), format="json").json()


def _set(api_as, user, trade, policy, version=None):
    return api_as(user).post(f"/api/trades/{trade['id']}/exit-policy",
                             {"version": version or trade["version"], "exit_policy": policy}, format="json")


def _errors(answer):
    return {error["attr"]: error["detail"] for error in answer.json()["errors"]}


def test_a_policy_set_later_is_stored_logged_and_bumps_the_version(api_as, trader, opened):
    assert opened["exit_policy"] == {}
    answer = _set(api_as, trader, opened, {"trail_pct": "15.0", "close_minutes_before_close": 10})
    assert answer.status_code == 200
    trade = answer.json()
    assert trade["exit_policy"] == {"trail_pct": "15", "close_minutes_before_close": "10"}
    assert trade["version"] == opened["version"] + 1 and trade["sl_price"] == opened["sl_price"]
    with tenancy.acting_as(trader.pk):
        event = TradeEvent.objects.filter(trade_id=opened["id"]).latest("id")
    assert (event.kind, event.actor, event.actor_label) == (EventKind.BRACKET_ADJUSTED, Actor.USER, "exit-policy")
    assert event.payload["exit_policy"] == {"from": {}, "to": trade["exit_policy"]}
    removed = _set(api_as, trader, trade, {})
    assert removed.status_code == 200 and removed.json()["exit_policy"] == {}


def test_a_new_policy_rearms_one_whose_close_ended_with_the_trade_still_open(api_as, trader, opened):
    with tenancy.acting_as(trader.pk):
        PaperTrade.objects.filter(pk=opened["id"]).update(
            exit_policy={"close_after_hours": "1"}, exit_requested_at=timezone.now(), exit_request_reason="TIME_STOP",
            exit_high_water=Decimal("5.00"))
    answer = _set(api_as, trader, opened, {"close_after_hours": "2"})
    assert answer.status_code == 200
    with tenancy.acting_as(trader.pk):
        trade = PaperTrade.objects.get(pk=opened["id"])
    assert (trade.exit_requested_at, trade.exit_request_reason, trade.exit_high_water) == (None, "", None)


def test_a_stale_version_is_409_and_changes_nothing(api_as, trader, opened):
    answer = _set(api_as, trader, opened, {"trail_pct": "15"}, version=opened["version"] + 5)
    assert answer.status_code == 409
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get(pk=opened["id"]).exit_policy == {}


@pytest.mark.parametrize(("policy", "detail"), [
    ({"trail_pct": "0"}, "The trailing stop's percentage must be between 0.1 and 99."),
    ({"close_after_hours": "two"}, "The hours held must be a number such as \"20\"."),
    ({"trail_amount": "0.5", "trail_pct": "5"}, "Give the trailing stop as a percentage or as a dollar distance, "
                                                "not both."),
])
def test_a_bad_policy_is_400_in_trader_words(api_as, trader, opened, policy, detail):
    answer = _set(api_as, trader, opened, policy)
    assert answer.status_code == 400 and _errors(answer) == {"exit_policy": detail}
    assert "trail_pct" not in detail and "_" not in detail


def test_a_closed_trades_policy_cannot_change(api_as, trader, opened):
    closing = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]},
                                  format="json").json()
    assert closing["status"] == TradeStatus.CLOSED
    answer = _set(api_as, trader, closing, {"trail_pct": "15"})
    assert answer.status_code == 409 and "closed" in str(answer.json())


def test_a_strategys_preset_policy_applies_when_the_trade_gives_none(api_as, trader, market, open_body):
    saved = api_as(trader).put("/api/settings", {"strategy_presets": {
        "momentum": {"sl_pct": "30", "exit_policy": {"breakeven_after_pct": "20"}}}}, format="json")
    assert saved.status_code == 200, saved.json()
    small = {"qty": 1, "sl_price": "4.00"}  # room for both under the risk limits
    preset = api_as(trader).post("/api/trades", open_body(**small), format="json").json()
    own = api_as(trader).post("/api/trades", open_body(exit_policy={"trail_pct": "10"}, **small),
                              format="json").json()
    assert (preset["exit_policy"], own["exit_policy"]) == ({"breakeven_after_pct": "20"}, {"trail_pct": "10"})


def test_a_bad_preset_policy_is_refused_naming_the_strategy(api_as, trader, market):
    saved = api_as(trader).put("/api/settings", {"strategy_presets": {
        "scalp": {"tp_pct": "50", "exit_policy": {"trail_after_pct": "10"}}}}, format="json")
    assert saved.status_code == 400
    assert _errors(saved) == {"strategy_presets": "scalp: A gain that starts the trailing needs a trailing stop "
                                                  "(a percentage or a dollar distance)."}


SCALE_OUT = {"scale_out_at_pct": "20", "scale_out_pct": "50"}


def test_a_scale_out_is_accepted_later_and_at_open_on_two_contracts(api_as, trader, opened, open_body):
    answer = _set(api_as, trader, opened, SCALE_OUT)
    assert answer.status_code == 200 and answer.json()["exit_policy"] == SCALE_OUT
    assert answer.json()["quantity_open"] == 2 and answer.json()["parts"] == []


def test_a_scale_out_on_one_contract_is_refused_in_trader_words(api_as, trader, market, open_body):
    answer = api_as(trader).post("/api/trades", open_body(qty=1, exit_policy=SCALE_OUT), format="json")
    assert answer.status_code == 400
    assert _errors(answer) == {"exit_policy": "A scale-out sells part of the position and keeps the rest: it needs "
                                              "at least 2 contracts, this trade has 1."}
    one = api_as(trader).post("/api/trades", open_body(qty=1), format="json").json()
    later = _set(api_as, trader, one, SCALE_OUT)
    assert later.status_code == 400 and "at least 2 contracts, this trade has 1" in _errors(later)["exit_policy"]


def test_a_strategys_preset_may_scale_out_and_does_nothing_on_one_contract(api_as, trader, market, open_body):
    saved = api_as(trader).put("/api/settings", {"strategy_presets": {
        "momentum": {"exit_policy": {**SCALE_OUT, "trail_pct": "10"}}}}, format="json")
    assert saved.status_code == 200, saved.json()
    one = api_as(trader).post("/api/trades", open_body(qty=1, sl_price="4.00"), format="json")
    assert one.status_code == 201 and one.json()["exit_policy"] == {**SCALE_OUT, "trail_pct": "10"}


def test_the_schema_states_every_setting_with_its_type_and_range(db):
    """Clients (and the fuzz test) see each setting of a policy, where it is asked for and where it
    is answered; its range is the one the service holds the policy to."""
    from drf_spectacular.generators import SchemaGenerator

    from trades.services.exit_policies import COUNT_KEYS, LIMITS, POLICY_KEYS

    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    for name in ("TradeOpen", "ExitPolicy", "Trade", "TradeDetail", "TradeHistory"):
        policy = components[name]["properties"]["exit_policy"]
        assert policy["type"] == "object" and policy["additionalProperties"] is False, name
        assert set(policy["properties"]) == set(POLICY_KEYS), name
        for key, spec in policy["properties"].items():
            low, high = LIMITS[key]
            assert spec["type"] == "string" and f"from {low.normalize():f} to {high.normalize():f}." in spec[
                "description"]
            assert spec["pattern"] == (r"^\d+$" if key in COUNT_KEYS else r"^\d+(\.\d+)?$")
    assert "`{}` removes the policy" in components["ExitPolicy"]["properties"]["exit_policy"]["description"]


def test_settings_the_schema_does_not_type_are_still_taken_as_before(api_as, trader, opened):
    """The schema documents decimal text; numbers were accepted before it said so, and still are."""
    answer = _set(api_as, trader, opened, {"trail_amount": 0.5, "close_after_hours": 6, "min_step": ""})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["exit_policy"] == {"trail_amount": "0.5", "close_after_hours": "6"}
