"""Broker trouble the order cycle meets reaches the trader's page (`/api/broker-status`, the
banner), and a refused token stops the account's polling until a token is saved again. Over
real HTTP against the fake Tradier."""

from datetime import timedelta

import pytest
from django.core.cache import cache

from monitoring import services
from trades import services as trade_services
from trades.models import TradeStatus

from .conftest import SANDBOX_ACCOUNT, SANDBOX_TOKEN, open_sandbox_call, trade_as_stored

NEW_TOKEN = "sbxTOKEN-monitor-new-9f8e7d6c"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()  # the troubles and pauses live there


def _troubles(api_as, trader):
    response = api_as(trader).get("/api/broker-status")
    assert response.status_code == 200
    return response.json()


def test_a_refused_token_is_on_the_page_and_stops_polling_until_a_token_is_saved(trader, tradier, market, api_as):
    trade = open_sandbox_call(trader, market)
    tradier.accounts[SANDBOX_ACCOUNT].token = NEW_TOKEN  # the trader rotated it at Tradier: ours is refused
    report = services.sync_orders(market=market, at=market.moment)
    assert report.failed_accounts == [trader.pk]
    (trouble,) = _troubles(api_as, trader)
    assert (trouble["code"], trouble["broker_mode"]) == ("broker_reauthenticate", "TRADIER_SANDBOX")
    assert "401" in trouble["detail"] and SANDBOX_TOKEN not in str(trouble) and set(trouble) == {
        "code", "detail", "broker_mode", "since"}
    assert trade_as_stored(trade.pk).needs_attention

    requests = len(tradier.requests)
    for minute in range(1, 4):  # no 401 every minute: the account is not polled
        report = services.sync_orders(market=market, at=market.moment + timedelta(minutes=minute))
        assert report.paused_accounts == [trader.pk] and report.broker_calls == 0
    assert len(tradier.requests) == requests
    assert _troubles(api_as, trader)[0]["since"] == trouble["since"]  # still the one trouble

    trade_services.account_settings_update(user=trader, changes={}, sandbox_token=NEW_TOKEN)
    tradier.set_quote("SPY261218C00570000", "6.60", "6.80")  # meanwhile the take-profit filled
    report = services.sync_orders(market=market, at=market.moment + timedelta(minutes=5))
    assert report.paused_accounts == [] and report.failed_accounts == [] and report.broker_calls >= 1
    assert _troubles(api_as, trader) == []
    trade = trade_as_stored(trade.pk)
    assert trade.status == TradeStatus.CLOSED and not trade.needs_attention


def test_the_same_token_saved_again_is_tried_again(trader, tradier, market):
    open_sandbox_call(trader, market)
    tradier.accounts[SANDBOX_ACCOUNT].token = NEW_TOKEN
    services.sync_orders(market=market, at=market.moment)
    assert services.sync_orders(market=market, at=market.moment).paused_accounts == [trader.pk]
    tradier.accounts[SANDBOX_ACCOUNT].token = SANDBOX_TOKEN  # fixed at Tradier; the trader saves it again
    trade_services.account_settings_update(user=trader, changes={}, sandbox_token=SANDBOX_TOKEN)
    report = services.sync_orders(market=market, at=market.moment)
    assert report.paused_accounts == [] and report.failed_accounts == []


def test_an_outage_is_on_the_page_until_the_monitor_reads_the_account_again(trader, tradier, market, api_as):
    open_sandbox_call(trader, market)
    tradier.maintenance = True
    report = services.sync_orders(market=market, at=market.moment)
    assert report.failed_accounts == [trader.pk]
    (trouble,) = _troubles(api_as, trader)
    assert trouble["code"] == "broker_unavailable" and "maintenance" in trouble["detail"]
    services.sync_orders(market=market, at=market.moment + timedelta(minutes=1))  # still down: still polled
    assert len(_troubles(api_as, trader)) == 1

    tradier.maintenance = False
    report = services.sync_orders(market=market, at=market.moment + timedelta(minutes=2))
    assert report.failed_accounts == [] and _troubles(api_as, trader) == []


def test_another_traders_trouble_is_not_on_my_page(trader, other_trader, tradier, market, api_as):
    open_sandbox_call(trader, market)
    tradier.maintenance = True
    services.sync_orders(market=market, at=market.moment)
    assert len(_troubles(api_as, trader)) == 1 and _troubles(api_as, other_trader) == []


def test_an_outage_reaches_the_channels_when_it_starts_and_when_it_ends(trader, tradier, market):
    from tests.factories import NotificationChannelFactory
    from tradeoptions import tenancy
    from trades.models import ChannelMessage, NotificationEvent

    NotificationChannelFactory(owner=trader, events=[NotificationEvent.BROKER_OUTAGE])
    open_sandbox_call(trader, market)
    tradier.maintenance = True
    for minute in range(3):  # three cycles meet it
        services.sync_orders(market=market, at=market.moment + timedelta(minutes=minute))
    tradier.maintenance = False
    for minute in range(3, 5):
        services.sync_orders(market=market, at=market.moment + timedelta(minutes=minute))
    with tenancy.acting_as(trader.pk):
        told = list(ChannelMessage.objects.order_by("created_at").values_list("title", flat=True))
    assert told == ["Broker down (Tradier sandbox)", "Broker back up (Tradier sandbox)"]
