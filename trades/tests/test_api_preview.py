"""The preview before sending (POST /api/trades/validate), stops and targets as a percentage or
from a strategy's preset, the account summary (GET /api/account/summary), and errors in the
trader's words.

Alice's usual order (the `open_body` fixture): 2 × SPY 18 Dec 26 570 C at the 4.30 ask, stop 3.00,
target 6.50, on a $5,000 balance with the default limits (5 positions, $150 daily loss, 6 % heat).
"""

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.factories import ClosedTradeFactory, PaperTradeFactory, account_with
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, PaperTrade, TradeStatus

VALIDATE = "/api/trades/validate"
OPEN = "/api/trades"
SUMMARY = "/api/account/summary"
PUT_CONTRACT = "SPY261218P00560000"


@pytest.fixture(autouse=True)
def commission(settings):
    settings.PAPER_COMMISSION_PER_CONTRACT = "0.65"



def _stored(user) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.filter(owner=user).latest("id")


# --- The preview ------------------------------------------------------------------------------


def test_the_preview_shows_cost_risk_reward_breakeven_and_the_room_under_each_limit(api_as, trader, market,
                                                                                   open_body):
    response = api_as(trader).post(VALIDATE, open_body(), format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"valid": True, "preview": {
        "option_symbol": "SPY261218C00570000", "qty": 2,
        "entry_price": "4.3000", "sl_price": "3.0000", "tp_price": "6.5000",
        "debit": "860.00",  # 4.30 × 2 × 100
        "commission": "1.30",  # 0.65 × 2
        "total_cost": "861.30",
        "max_loss": "260.00",  # (4.30 − 3.00) × 200
        "reward": "440.00",  # (6.50 − 4.30) × 200
        "reward_r": "1.69",  # 440 / 260
        "breakeven": "574.3000",  # 570 + 4.30
        "balance_pct": "17.23",  # 861.30 of 5,000
        "limits": {
            "max_positions": {"limit": 5, "used": 0, "after": 1, "left": 4},
            "daily_loss_limit": {"limit": "150.00", "used": "0.00", "left": "150.00"},
            "heat_limit_pct": {"limit_pct": "6.00", "limit": "300.00", "used": "0.00", "after": "260.00",
                               "after_pct": "5.20", "left": "40.00"},
        },
    }, "queued_for_open": False, "next_session_open": None}


def test_the_preview_is_exact_decimal_arithmetic_rounded_only_when_shown(trader, market):
    market.set_quote("SPY261218C00570000", "4.10", "4.33")
    account_with(trader, heat_limit_pct=Decimal("10"))
    data = services.TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"),
                                   expiry=date(2026, 12, 18), qty=3, sl_price=Decimal("3.01"),
                                   tp_price=Decimal("6.07"))
    preview = services.trade_open_check(user=trader, data=data)
    assert preview.debit == Decimal("1299.00") and isinstance(preview.debit, Decimal)
    assert preview.max_loss == Decimal("396.00")  # (4.33 − 3.01) × 300
    assert preview.reward == Decimal("522.00")  # (6.07 − 4.33) × 300
    assert preview.reward_r == Decimal("522") / Decimal("396")  # 1.3181…, not a float's 1.318181818181818
    assert preview.total_cost == Decimal("1300.95")
    assert preview.balance_pct == Decimal("26.019")
    assert (preview.room.heat_after_pct, preview.room.heat_left) == (Decimal("7.92"), Decimal("104.00"))


def test_a_puts_breakeven_is_the_strike_less_the_premium(api_as, trader, market, open_body):
    market.set_quote(PUT_CONTRACT, "2.40", "2.55")
    body = open_body(option_type="PUT", strike="560", qty=1, sl_price="1.50", tp_price="4.00")
    preview = api_as(trader).post(VALIDATE, body, format="json").json()["preview"]
    assert (preview["breakeven"], preview["debit"], preview["max_loss"]) == ("557.4500", "255.00", "105.00")


def test_the_preview_counts_the_trades_already_held_and_todays_loss(api_as, trader, market, open_body):
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)  # 2 @ 4.20, stop 3.00: $240 at risk
    ClosedTradeFactory(owner=trader, close_price=Decimal("3.80"), realized_pnl=Decimal("-80"),
                       close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC))  # today in New York
    account_with(trader, heat_limit_pct=Decimal("12.5"))
    limits = api_as(trader).post(VALIDATE, open_body(), format="json").json()["preview"]["limits"]
    assert limits == {
        "max_positions": {"limit": 5, "used": 1, "after": 2, "left": 3},
        "daily_loss_limit": {"limit": "150.00", "used": "80.00", "left": "70.00"},
        "heat_limit_pct": {"limit_pct": "12.50", "limit": "625.00", "used": "240.00", "after": "500.00",
                           "after_pct": "10.00", "left": "125.00"},
    }


def test_the_room_the_preview_shows_is_the_room_the_open_enforces(api_as, trader, market, open_body):
    """One measure for both: a trade that uses exactly the heat left opens, and then the preview
    and the open refuse the next one alike; the same for the last free position."""
    client = api_as(trader)
    PaperTradeFactory(owner=trader, status=TradeStatus.OPEN)  # $240 at risk
    account_with(trader, max_positions=3, heat_limit_pct=Decimal("10"))  # $500 of heat
    room = client.post(VALIDATE, open_body(qty=1), format="json").json()["preview"]["limits"]["heat_limit_pct"]
    assert room["left"] == "130.00"  # $130 more could be risked after this $130 trade: exactly 2 contracts
    assert client.post(VALIDATE, open_body(qty=2), format="json").json()["preview"]["limits"]["heat_limit_pct"][
        "left"] == "0.00"
    assert client.post(OPEN, open_body(qty=2), format="json").status_code == 201  # at the limit, not over it
    for body in (open_body(qty=1), open_body(qty=1, sl_price="4.29")):  # even $2 more is too much
        checked, opened = (client.post(path, body, format="json") for path in (VALIDATE, OPEN))
        assert checked.status_code == opened.status_code == 422
        assert checked.json()["errors"] == opened.json()["errors"]
        assert checked.json()["errors"][0]["attr"] == "heat_limit_pct"
        # The refused check still shows the numbers: nothing left under the heat limit.
        assert checked.json()["preview"]["limits"]["heat_limit_pct"]["left"] == "0.00"
        assert "preview" not in opened.json()
    account_with(trader, heat_limit_pct=Decimal("100"))
    positions = client.post(VALIDATE, open_body(qty=1), format="json").json()["preview"]["limits"]["max_positions"]
    assert positions == {"limit": 3, "used": 2, "after": 3, "left": 0}
    assert client.post(OPEN, open_body(qty=1), format="json").status_code == 201
    checked, opened = (client.post(path, open_body(qty=1), format="json") for path in (VALIDATE, OPEN))
    assert checked.status_code == opened.status_code == 422
    assert checked.json()["errors"] == opened.json()["errors"] and checked.json()["errors"][0]["attr"] == (
        "max_positions")
    assert checked.json()["preview"]["limits"]["max_positions"] == {"limit": 3, "used": 3, "after": 4, "left": 0}


# --- Stop and target as a percentage ----------------------------------------------------------


def test_stop_and_target_may_be_a_percentage_of_the_entry(api_as, trader, market, open_body):
    client = api_as(trader)
    account_with(trader, heat_limit_pct=Decimal("10"))
    body = open_body(sl_price=None, tp_price=None, sl_pct="30", tp_pct="60")
    preview = client.post(VALIDATE, body, format="json").json()["preview"]
    assert (preview["sl_price"], preview["tp_price"]) == ("3.0100", "6.8800")  # 4.30 × 0.7, 4.30 × 1.6
    assert client.post(OPEN, body, format="json").status_code == 201
    trade = _stored(trader)
    assert (trade.sl_price, trade.tp_price) == (Decimal("3.01"), Decimal("6.88"))
    # A limit entry's percentages are of its limit, not of the ask.
    limit = client.post(VALIDATE, {**body, "entry_type": "limit", "limit_price": "4.00", "qty": 1},
                        format="json").json()
    assert (limit["preview"]["sl_price"], limit["preview"]["tp_price"]) == ("2.8000", "6.4000")


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"sl_pct": "30"}, "sl_pct", "as a price or as a percentage, not both"),
        ({"tp_pct": "60"}, "tp_pct", "as a price or as a percentage, not both"),
        ({"sl_price": None, "sl_pct": "100"}, "sl_pct", "below 100"),
        ({"sl_price": None, "sl_pct": "0"}, "sl_pct", "above 0"),
        ({"sl_price": None, "sl_pct": "-50"}, "sl_pct", "above 0"),
        ({"tp_price": None, "tp_pct": "1000.5"}, "tp_pct", "at most 1000"),
        ({"sl_price": None, "sl_pct": "0.1"}, "sl_pct", "below the entry (4.30)"),  # rounds to the entry
        ({"sl_price": "4.50"}, "sl_price", "below the entry (4.30)"),  # a stop above a long option's entry
        ({"sl_price": None}, "sl_price", "Give a stop-loss price, or a percentage of the entry."),
    ],
    ids=lambda value: str(value),
)
def test_nonsense_stops_and_targets_are_refused_on_their_field(api_as, trader, market, open_body, changes, field,
                                                               words):
    checked = api_as(trader).post(VALIDATE, open_body(**changes, strategy=None), format="json")
    assert checked.status_code == 400, checked.json()
    errors = {error["attr"]: error["detail"] for error in checked.json()["errors"]}
    assert words in errors[field]
    opened = api_as(trader).post(OPEN, open_body(**changes, strategy=None), format="json")
    assert (opened.status_code, opened.json()) == (400, checked.json())


# --- Strategy presets -------------------------------------------------------------------------


def test_a_strategys_preset_gives_the_stop_and_target_a_trade_leaves_out(api_as, trader, market, open_body):
    client = api_as(trader)
    saved = client.put("/api/settings", {"strategy_presets": {"scalp": {"sl_pct": 30, "tp_pct": "60.0"},
                                                              "swing": {"sl_pct": "50"}}}, format="json")
    assert saved.status_code == 200, saved.json()
    assert saved.json()["strategy_presets"] == {"scalp": {"sl_pct": "30", "tp_pct": "60"}, "swing": {"sl_pct": "50"}}
    preview = client.post(VALIDATE, open_body(strategy="scalp", sl_price=None, tp_price=None),
                          format="json").json()["preview"]
    assert (preview["sl_price"], preview["tp_price"]) == ("3.0100", "6.8800")
    # What the trade gives wins over the preset, side by side.
    preview = client.post(VALIDATE, open_body(strategy="scalp", sl_price="3.50", tp_price=None),
                          format="json").json()["preview"]
    assert (preview["sl_price"], preview["tp_price"]) == ("3.5000", "6.8800")
    # A preset without a target: the trade must give one.
    refused = client.post(VALIDATE, open_body(strategy="swing", sl_price=None, tp_price=None), format="json")
    assert [(e["attr"], e["detail"]) for e in refused.json()["errors"]] == [
        ("tp_price", "Give a take-profit price, or a percentage of the entry.")]
    assert client.post(OPEN, open_body(strategy="scalp", sl_price=None, tp_price=None), format="json"
                       ).status_code == 201
    assert (_stored(trader).sl_price, _stored(trader).tp_price) == (Decimal("3.01"), Decimal("6.88"))


def test_another_traders_presets_are_never_used(api_as, trader, other_trader, market, open_body):
    api_as(other_trader).put("/api/settings", {"strategy_presets": {"scalp": {"sl_pct": "30", "tp_pct": "60"}}},
                             format="json")
    refused = api_as(trader).post(VALIDATE, open_body(strategy="scalp", sl_price=None, tp_price=None), format="json")
    assert refused.status_code == 400
    assert {error["attr"] for error in refused.json()["errors"]} == {"sl_price", "tp_price"}


@pytest.mark.parametrize(
    ("presets", "words"),
    [
        ({"scalp": {"sl_pct": "130"}}, "scalp: A stop-loss percentage must be above 0 and below 100"),
        ({"scalp": {"tp_pct": "0"}}, "scalp: A take-profit percentage must be above 0"),
        ({"scalp": {"stop": "30"}}, "scalp: give a stop-loss percentage, a take-profit percentage or both, and"),
        ({"scalp": {}}, "scalp: give a stop-loss percentage"),
        ({"scalp": {"sl_pct": "thirty"}}, 'scalp: a percentage must be a number such as "30".'),
        ({"scalp": {"sl_pct": True}}, 'scalp: a percentage must be a number such as "30".'),
        ({"": {"sl_pct": "30"}}, "A strategy name must be 1 to 64 characters."),
        (["scalp"], "Give presets by strategy, each with a stop-loss percentage"),
    ],
    ids=lambda value: str(value),
)
def test_nonsense_presets_are_refused_and_nothing_is_saved(api_as, trader, presets, words):
    response = api_as(trader).put("/api/settings", {"strategy_presets": presets, "max_positions": 9}, format="json")
    assert response.status_code == 400, response.json()
    (error,) = response.json()["errors"]
    assert error["attr"] == "strategy_presets" and words in error["detail"]
    with tenancy.acting_as(trader.pk):
        account = AccountSettings.objects.get(owner=trader)
    assert (account.strategy_presets, account.max_positions) == ({}, 5)


# --- Errors in the trader's words -------------------------------------------------------------


@pytest.mark.parametrize("path", [VALIDATE, OPEN])
def test_an_empty_submit_flags_every_missing_field_at_once(api_as, trader, market, path):
    response = api_as(trader).post(path, {}, format="json")
    assert response.status_code == 400
    assert {error["attr"]: error["detail"] for error in response.json()["errors"]} == {
        "ticker": "Give a ticker.",
        "expiry": "Pick an expiry.",
        "strike": "Give a strike.",
        "option_type": "Choose call or put.",
        "qty": "Give the number of contracts.",
        "sl_price": "Give a stop-loss price, or a percentage of the entry.",
        "tp_price": "Give a take-profit price, or a percentage of the entry.",
    }


def test_a_partial_submit_gets_its_field_errors_and_its_missing_fields_together(api_as, trader, market):
    response = api_as(trader).post(VALIDATE, {"ticker": "SPY", "qty": 0, "entry_type": "limit"}, format="json")
    assert {error["attr"] for error in response.json()["errors"]} == {
        "qty", "expiry", "strike", "option_type", "limit_price", "sl_price", "tp_price"}


INTERNAL_NAME = re.compile(r"\b[a-z]+_[a-z_]+\b")  # heat_limit_pct, option_symbol, limit_price…


@pytest.mark.parametrize(
    "changes",
    [{}, {"option_symbol": "SPY2612"}, {"option_symbol": "SPY261218C00570000", "strike": "575"},
     {"entry_type": "limit"}, {"limit_price": "4.00"}, {"qty": 40}, {"sl_price": "5.00", "tp_price": "4.00"}],
    ids=lambda value: str(value),
)
def test_error_messages_name_no_internal_field(api_as, trader, market, open_body, changes):
    account_with(trader, max_positions=5)
    response = api_as(trader).post(VALIDATE, open_body(**changes) if changes else {}, format="json")
    assert response.status_code in (400, 422), response.json()
    details = [error["detail"] for error in response.json()["errors"]]
    assert [detail for detail in details if INTERNAL_NAME.search(detail)] == []


def test_each_risk_limit_is_told_in_words(api_as, trader, market, open_body):
    client = api_as(trader)
    assert client.post(VALIDATE, open_body(qty=3), format="json").json()["errors"][0]["detail"] == (
        "Risk at the stops would be $390.00, 7.80% of your $5,000.00 balance, and your heat limit is 6%.")
    account_with(trader, max_positions=0)
    assert client.post(VALIDATE, open_body(), format="json").json()["errors"][0]["detail"] == (
        "0 trades are open or pending and your limit is 0 positions at a time.")
    account_with(trader, max_positions=5, daily_loss_limit=Decimal("100"))
    ClosedTradeFactory(owner=trader, close_price=Decimal("1"), realized_pnl=Decimal("-1200"),
                       close_date=datetime(2026, 12, 1, 14, 45, tzinfo=UTC))
    assert client.post(VALIDATE, open_body(), format="json").json()["errors"][0]["detail"] == (
        "Today's realized loss is $1,200.00 and your daily loss limit is $100.00: no new trades until tomorrow.")


# --- The account summary ----------------------------------------------------------------------


def test_the_paper_account_summary_follows_the_ledger_and_the_active_trades(api_as, trader, other_trader, market,
                                                                           open_body):
    client = api_as(trader)
    account_with(trader, heat_limit_pct=Decimal("10"))
    assert client.get(SUMMARY).json() == {
        "broker_mode": "LOCAL_PAPER", "starting_balance": "5000.00", "cash": "5000.00", "buying_power": "5000.00",
        "premium_committed": "0.00", "open_risk": "0.00", "realized_pnl": "0.00", "market_value": "0.00",
        "open_pnl": "0.00", "equity": "5000.00", "open_positions": 0,
    }
    opened = client.post(OPEN, open_body(), format="json").json()  # 2 @ 4.30 + $1.30
    client.post(OPEN, open_body(entry_type="limit", limit_price="4.00", qty=1), format="json")  # rests
    market.set_quote("SPY261218C00570000", "4.60", "4.80")
    summary = client.get(SUMMARY).json()
    assert summary == {
        "broker_mode": "LOCAL_PAPER", "starting_balance": "5000.00",
        "cash": "4138.70",  # 5,000 − 860 − 1.30
        "buying_power": "3738.05",  # less the resting buy: 400 + 0.65
        "premium_committed": "1260.00",  # 860 held + 400 planned
        "open_risk": "360.00",  # (4.30 − 3) × 200 + (4.00 − 3) × 100
        "realized_pnl": "-1.30", "market_value": "940.00", "open_pnl": "80.00", "equity": "5078.70",
        "open_positions": 2,
    }
    client.post(f"{OPEN}/{opened['id']}/close", {"version": opened["version"]}, format="json")  # at the 4.60 bid
    summary = client.get(SUMMARY).json()
    assert (summary["cash"], summary["realized_pnl"], summary["open_positions"]) == ("5057.40", "57.40", 1)
    # Bob's account is his own: untouched by Alice's trades.
    assert api_as(other_trader).get(SUMMARY).json()["cash"] == "5000.00"


def test_the_summary_of_a_broker_not_set_up_says_so(api_as, trader, market):
    account_with(trader, broker_mode="TRADIER_SANDBOX", tradier_account_id="VA1")
    response = api_as(trader).get(SUMMARY)
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "broker_reauthenticate"


def test_the_tradier_summary_is_tradiers_balances(api_as, trader, market, fake_tradier, open_body,
                                                  tradier_budget_of_its_own):  # not about the limiter
    fake_tradier.add_account(token="sbxTOKEN-summary-77", account_id="VA00001234", cash=Decimal("10000"))
    fake_tradier.set_quote("SPY261218C00570000", "4.10", "4.30")
    client = api_as(trader)
    assert client.put("/api/settings", {"broker_mode": "TRADIER_SANDBOX", "tradier_account_id": "VA00001234",
                                        "tradier_sandbox_token": "sbxTOKEN-summary-77"}, format="json"
                      ).status_code == 200
    assert client.post(OPEN, open_body(), format="json").status_code == 201
    summary = client.get(SUMMARY).json()
    assert summary["broker_mode"] == "TRADIER_SANDBOX"
    assert (summary["cash"], summary["premium_committed"], summary["open_risk"]) == ("9140.00", "860.00", "260.00")
    assert (summary["market_value"], summary["open_pnl"]) == ("840.00", "-20.00")  # at the 4.20 mid
