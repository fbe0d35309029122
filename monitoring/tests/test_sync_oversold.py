"""Over-sell detection: an account that holds one of our contracts short is flagged at once.

The observed failure, reproduced over real HTTP against the fake Tradier: a sell went to the
broker beside the working bracket, then the take-profit filled too. The account holds −1 while
the trade says CLOSED TP_HIT. The next order sync must flag the trade, the portfolio page show it
in red, and the trader's webhook hear of it, once; with one positions read per account per
cycle, however many trades it has.
"""

import pytest

from brokers import factory
from brokers.base import OrderRequest, OrderSide, OrderType
from brokers.ratelimit import GROUPS, RateLimiter
from brokers.tradier import TradierClient
from monitoring import sync
from tradeoptions import tenancy
from trades import services
from trades.models import AccountSettings, CloseReason, EventKind, TradeEvent, TradeStatus, WebhookEvent

from .conftest import SANDBOX_ACCOUNT, SANDBOX_CONTRACT, SANDBOX_TOKEN, open_sandbox_call, trade_as_stored


@pytest.fixture
def quick(monkeypatch, namespace, redis_client, tradier):
    """Production's client, with a rate budget no test reaches (the sandbox's spaces orders 1 s apart)."""

    def client(base_url, token, account_id):
        limiter = RateLimiter(token, limits=dict.fromkeys(GROUPS, 6000), namespace=namespace,
                              redis_client=redis_client)
        return TradierClient(base_url=base_url, token=token, account_id=account_id, limiter=limiter)

    monkeypatch.setattr(factory, "_tradier_client", client)
    tradier.pending_views = 0
    return client(tradier.url(), SANDBOX_TOKEN, SANDBOX_ACCOUNT)


@pytest.fixture
def webhook(trader):
    services.webhook_secret_rotate(user=trader)
    with tenancy.acting_as(trader.pk):
        AccountSettings.objects.filter(owner=trader).update(webhook_url="https://hooks.example.com/trades")


def _sold_twice(client, tradier):
    """A market sell beside the working bracket (fills at the 4.10 bid), then the TP fills too."""
    client.place_order(OrderRequest(option_symbol=SANDBOX_CONTRACT, side=OrderSide.SELL_TO_CLOSE, quantity=1,
                                    order_type=OrderType.MARKET, tag="sold-by-hand"))
    tradier.set_quote(SANDBOX_CONTRACT, "6.60", "6.80")
    assert tradier.accounts[SANDBOX_ACCOUNT].positions[SANDBOX_CONTRACT].quantity == -1


def _oversold_webhooks(user):
    with tenancy.acting_as(user.pk):
        return list(WebhookEvent.objects.filter(kind="trade.oversold"))


def test_a_contract_held_short_flags_its_trade_once_and_tells_the_trader(trader, tradier, market, quick, webhook):
    trade = open_sandbox_call(trader, market)
    _sold_twice(quick, tradier)

    report = sync.sync_orders(market=market)
    flagged = trade_as_stored(trade.pk)
    assert (flagged.status, flagged.close_reason) == (TradeStatus.CLOSED, CloseReason.TP_HIT)  # the broker's fill
    assert flagged.oversold_qty == 1 and report.oversold == 1
    assert flagged.attention_reason.startswith("OVERSOLD") and SANDBOX_CONTRACT in flagged.attention_reason
    with tenancy.acting_as(trader.pk):
        event = TradeEvent.objects.filter(trade_id=trade.pk, kind=EventKind.ATTENTION_NEEDED).get()
    assert event.payload["oversold"] == {"symbol": SANDBOX_CONTRACT, "short_qty": 1}
    (sent,) = _oversold_webhooks(trader)
    assert sent.payload["data"]["short_qty"] == 1 and sent.payload["data"]["trade"]["id"] == trade.pk

    sync.sync_orders(market=market)  # the same short position next cycle: nothing new
    assert trade_as_stored(trade.pk).version == flagged.version and len(_oversold_webhooks(trader)) == 1


def test_the_flag_goes_once_the_trader_has_bought_the_contract_back(trader, tradier, market, quick):
    trade = open_sandbox_call(trader, market)
    _sold_twice(quick, tradier)
    sync.sync_orders(market=market)
    assert trade_as_stored(trade.pk).oversold_qty == 1

    quick.place_order(OrderRequest(option_symbol=SANDBOX_CONTRACT, side=OrderSide.BUY_TO_CLOSE, quantity=1,
                                   order_type=OrderType.MARKET, tag="bought-back-by-hand"))
    assert SANDBOX_CONTRACT not in tradier.accounts[SANDBOX_ACCOUNT].positions or \
        tradier.accounts[SANDBOX_ACCOUNT].positions[SANDBOX_CONTRACT].quantity == 0
    sync.sync_orders(market=market)

    covered = trade_as_stored(trade.pk)
    assert covered.oversold_qty == 0 and covered.attention_reason == ""
    assert (covered.status, covered.close_reason) == (TradeStatus.CLOSED, CloseReason.TP_HIT)  # only the flag moved
    with tenancy.acting_as(trader.pk):
        assert TradeEvent.objects.filter(trade_id=trade.pk, payload__has_key="oversold_covered").count() == 1
    sync.sync_orders(market=market)  # nothing more to clear
    assert trade_as_stored(trade.pk).version == covered.version


def test_positions_are_read_once_per_account_per_cycle_whatever_the_trades(trader, tradier, market, quick):
    trades = [open_sandbox_call(trader, market) for _ in range(2)]  # two: within the default heat limit
    before = len(tradier.requests_for("GET", "/positions"))
    report = sync.sync_orders(market=market)
    assert len(tradier.requests_for("GET", "/positions")) - before == 1
    assert report.oversold == 0  # held long: nothing to flag
    assert {trade_as_stored(trade.pk).oversold_qty for trade in trades} == {0}


def test_the_portfolio_shows_a_short_contract_in_red_and_the_api_says_how_many(client, trader, tradier, market,
                                                                              quick):
    trade = open_sandbox_call(trader, market)
    client.force_login(trader)
    assert "banner-oversold" not in client.get("/").content.decode()
    _sold_twice(quick, tradier)
    sync.sync_orders(market=market)

    html = client.get("/").content.decode()
    assert 'class="banner banner-oversold" role="alert"' in html
    assert f"holds 1 {SANDBOX_CONTRACT} short" in html and f"trade #{trade.pk}" in html
    body = client.get(f"/api/trades/{trade.pk}").json()
    assert body["oversold_qty"] == 1 and body["needs_attention"]


def test_a_flag_never_changes_a_trades_state(trader, market):
    """Flagging a finished trade is allowed (it is why the flag exists) but only the flags move."""
    from tests.factories import PaperTradeFactory

    trade = PaperTradeFactory(owner=trader, qty=1)
    with tenancy.acting_as(trader.pk):
        with pytest.raises(ValueError, match="sets only"):
            services.trade_flag(trade_id=trade.pk, changes={"status": TradeStatus.CLOSED}, actor="SYSTEM")
        flagged = services.trade_oversold_flag(trade=trade, short_qty=2, actor="SYSTEM")
        assert services.trade_oversold_flag(trade=flagged, short_qty=2, actor="SYSTEM") is None
    stored = trade_as_stored(trade.pk)
    assert (stored.status, stored.oversold_qty, stored.version) == (trade.status, 2, trade.version + 1)
