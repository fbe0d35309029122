"""Tradier's 403 against the fake over real HTTP: the account (not the token) is forbidden. The open
is refused in the trader's words (409 `broker_forbidden`), the trouble is on the page, and new
trades are refused before they reach Tradier until the account's Tradier settings change."""


import pytest
from django.core.cache import cache

from tradeoptions import tenancy
from trades import services
from trades.models import PaperTrade

from .conftest import trade_at_fake_tradier

TOKEN = "sbxTOKEN-forbidden-5e4d3c2b1a"
ACCOUNT = "VA00004343"
VALIDATE = "/api/trades/validate"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # the troubles live there


@pytest.fixture
def tradier(fake_tradier, trader, market, tradier_budget_of_its_own):
    return trade_at_fake_tradier(fake_tradier, trader, token=TOKEN, account=ACCOUNT)


def _forbidden_open(client, open_body):
    response = client.post("/api/trades", open_body(), format="json")
    assert response.status_code == 409, response.json()
    (error,) = response.json()["errors"]
    assert error["code"] == "broker_forbidden"
    return response, error


def test_a_403_rejects_the_open_in_trader_words_and_blocks_the_next_without_asking(api_as, trader, tradier,
                                                                                  open_body):
    tradier.forbid(ACCOUNT, trading_only=True)
    client = api_as(trader)

    response, error = _forbidden_open(client, open_body)
    assert response.json()["trade"]["status"] == "REJECTED"
    assert "does not allow this account to trade" in error["detail"] and "token is fine" in error["detail"]
    assert TOKEN not in response.content.decode() and ACCOUNT not in response.content.decode()
    (trouble,) = client.get("/api/broker-status").json()
    assert (trouble["code"], trouble["broker_mode"]) == ("broker_forbidden", "TRADIER_SANDBOX")
    assert trouble["detail"] == error["detail"]

    posts = len(tradier.requests_for("POST", "/orders"))
    _, again = _forbidden_open(client, open_body)  # refused here: Tradier is not asked again
    assert again["detail"] == error["detail"]
    assert client.post(VALIDATE, open_body(), format="json").json()["errors"][0]["code"] == "broker_forbidden"
    assert len(tradier.requests_for("POST", "/orders")) == posts
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.count() == 1  # the second was refused before anything was written


def test_a_401_is_still_a_token_to_replace_not_a_forbidden_account(api_as, trader, tradier, open_body):
    tradier.accounts[ACCOUNT].token = "rotated-at-tradier"
    response = api_as(trader).post("/api/trades", open_body(), format="json")
    assert response.status_code == 502 and response.json()["errors"][0]["code"] == "broker_reauthenticate"
    assert api_as(trader).post("/api/trades", open_body(), format="json").status_code == 502  # asked again


def test_saving_the_tradier_settings_lifts_the_block(api_as, trader, tradier, open_body):
    tradier.forbid(ACCOUNT, trading_only=True)
    client = api_as(trader)
    _forbidden_open(client, open_body)
    tradier.allow(ACCOUNT)  # fixed with Tradier

    services.account_settings_update(user=trader, changes={"max_positions": 7})  # not a Tradier setting
    _forbidden_open(client, open_body)
    services.account_settings_update(user=trader, changes={}, sandbox_token=TOKEN)  # the token, saved again

    assert client.get("/api/broker-status").json() == []
    opened = client.post("/api/trades", open_body(), format="json")
    assert opened.status_code == 201, opened.json()


def test_another_traders_forbidden_account_blocks_only_theirs(api_as, trader, other_trader, tradier, open_body):
    tradier.forbid(ACCOUNT, trading_only=True)
    _forbidden_open(api_as(trader), open_body)
    assert api_as(other_trader).get("/api/broker-status").json() == []
    opened = api_as(other_trader).post("/api/trades", open_body(), format="json")  # the local paper broker
    assert opened.status_code == 201, opened.json()


def test_the_account_summary_of_a_forbidden_account_says_so(api_as, trader, tradier):
    tradier.forbid(ACCOUNT)
    response = api_as(trader).get("/api/account/summary")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "broker_forbidden"


def test_a_close_tradier_forbids_leaves_the_trade_open_with_its_bracket(api_as, trader, tradier, open_body):
    client = api_as(trader)
    opened = client.post("/api/trades", open_body(), format="json").json()
    tradier.forbid(ACCOUNT, trading_only=True)

    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")

    # The bracket's cancel is forbidden, so nothing is sold beside it (the close's own wording).
    assert closed.status_code == 503 and "nothing was sold" in closed.json()["errors"][0]["detail"]
    assert closed.json()["errors"][0]["code"] == "broker_forbidden"
    assert tradier.orders_tagged(f"to-{opened['id']}-close") == []  # no sell went out
    (oco,) = tradier.orders_tagged(f"to-{opened['id']}-sl")
    assert oco.status == "open"
    with tenancy.acting_as(trader.pk):
        assert PaperTrade.objects.get(pk=opened["id"]).status == "OPEN"


@pytest.mark.parametrize("trading_only", [True, False], ids=["orders-forbidden", "everything-forbidden"])
def test_a_forbidden_close_says_trading_is_blocked_until_fixed_not_that_tradier_is_down(
        api_as, trader, tradier, open_body, trading_only):
    client = api_as(trader)
    opened = client.post("/api/trades", open_body(), format="json").json()
    tradier.forbid(ACCOUNT, trading_only=trading_only)

    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")

    assert closed.status_code == 503
    (error,) = closed.json()["errors"]
    detail = error["detail"]
    assert error["code"] == "broker_forbidden" and closed.json()["type"] == "server_error"
    assert "does not allow this account to trade" in detail and "nothing was sold" in detail
    assert "blocked here until that is fixed with Tradier" in detail and "close the position at Tradier" in detail
    assert "try again" not in detail and "not available" not in detail  # not an outage: asking again won't help
    assert TOKEN not in closed.content.decode() and ACCOUNT not in closed.content.decode()
    trade = closed.json()["trade"]
    assert (trade["status"], trade["status_reason"]) == (
        "OPEN", "The broker forbids this account to trade (403): nothing was sold.")
    (trouble,) = client.get("/api/broker-status").json()  # the page's banner says so, and new trades wait
    assert trouble["code"] == "broker_forbidden"
    posts = len(tradier.requests_for("POST", "/orders"))
    _forbidden_open(client, open_body)
    assert len(tradier.requests_for("POST", "/orders")) == posts


def test_a_close_the_broker_cannot_take_for_an_outage_still_says_try_again(api_as, trader, tradier, open_body):
    client = api_as(trader)
    opened = client.post("/api/trades", open_body(), format="json").json()
    tradier.maintenance = True

    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")

    tradier.maintenance = False
    assert closed.status_code == 503
    (error,) = closed.json()["errors"]
    assert error["code"] == "broker_unavailable" and "try again" in error["detail"]
