"""Broker faults through the whole flow: the API (or the monitor's order cycle) → the trade
services → the real Tradier client over HTTP → the fake Tradier, misbehaving on cue.

The client tests (brokers/tests/test_tradier_client.py) prove each fault at the client; the
service tests (trades/tests/test_api_open.py) prove each error class maps to a status. Here the
fault happens on the wire and the assertions are what the trader and the broker end up with:
the trade's state, what the API said, and exactly one order at the broker per intent.

The client is the production one, built by the production factory; only its timeouts and retry
pauses are shortened (a 0.3 s read timeout against the fake's 1 s hang) to keep the suite fast.
"""

from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers import factory
from brokers.models import BrokerMode
from brokers.ratelimit import RateLimiter
from brokers.tradier import ConfirmPolicy, RetryPolicy, TradierClient
from monitoring import services as monitor
from tradeoptions import tenancy
from trades import services
from trades.models import EventKind, PaperTrade, TradeStatus

CONTRACT = "SPY261218C00570000"
TOKEN = "sbxTOKEN-faults-5e4d3c2b1a"
ACCOUNT = "VA00007777"
OPEN_BODY = {"ticker": "SPY", "option_type": "CALL", "strike": "570", "expiry": "2026-12-18", "qty": 1,
             "entry_type": "market", "sl_price": "3.00", "tp_price": "6.50", "strategy": "momentum"}


@pytest.fixture
def tradier(fake_tradier, trader, market, monkeypatch, redis_client, namespace):
    """Alice trades at the (fake) Tradier sandbox, through the production factory."""
    cache.clear()
    fake = fake_tradier
    fake.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake.set_quote(CONTRACT, "4.10", "4.30")

    def quick_client(base_url, token, account_id):
        limiter = RateLimiter(token, limits={"standard": 120, "market_data": 120, "trading": 60}, max_wait=0.2,
                              throttle_penalty=0.05, namespace=namespace, redis_client=redis_client)
        return TradierClient(base_url=base_url, token=token, account_id=account_id, limiter=limiter, timeout=0.3,
                             retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
                             confirm=ConfirmPolicy(attempts=5, first_delay=0.01, max_delay=0.05))

    monkeypatch.setattr(factory, "_tradier_client", quick_client)
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    return fake


def trade_of(pk) -> PaperTrade:
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def entries(fake, pk) -> list:
    return fake.orders_tagged(f"to-{pk}-entry")


def only_trade(user) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        (trade,) = PaperTrade.objects.all()
        return trade


# --- Opening ------------------------------------------------------------------------------------


def test_an_order_accepted_but_answered_too_late_opens_the_trade_once(api_as, trader, tradier):
    tradier.inject("hang_after", method="POST", path="/orders")
    response = api_as(trader).post("/api/trades", OPEN_BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    (entry,) = entries(tradier, body["id"])  # found by its tag, not sent again
    assert body["status"] == TradeStatus.OPEN and entry.status == "filled"
    assert str(entry.id) == body["entry_order_id"]
    assert len(tradier.orders_tagged(f"to-{body['id']}-sl")) == 1  # and one bracket


def test_a_500_on_the_order_is_looked_up_by_tag_then_placed_once(api_as, trader, tradier):
    tradier.inject("500", method="POST", path="/orders")
    response = api_as(trader).post("/api/trades", OPEN_BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == TradeStatus.OPEN and len(entries(tradier, body["id"])) == 1
    assert len(tradier.requests_for("POST", "/orders")) == 3  # the 500, the entry again, the bracket


def test_a_maintenance_page_rejects_the_trade_says_so_and_places_nothing(api_as, trader, tradier):
    tradier.inject("html_503", method="POST", path="/orders")
    response = api_as(trader).post("/api/trades", OPEN_BODY, format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["errors"][0]["code"] == "broker_unavailable" and "maintenance" in body["errors"][0]["detail"]
    assert body["trade"]["status"] == TradeStatus.REJECTED
    assert "<html" not in response.content.decode().lower()  # the broker's page is not passed on
    assert entries(tradier, body["trade"]["id"]) == [] and tradier.orders == {}
    assert only_trade(trader).status == TradeStatus.REJECTED


def test_orders_refused_for_the_rate_limit_reject_the_trade_and_say_why(api_as, trader, tradier):
    tradier.budgets["trading"] = 0  # another app spent this minute's order budget
    response = api_as(trader).post("/api/trades", OPEN_BODY, format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["errors"][0]["code"] == "broker_unavailable"
    assert "rate" in body["errors"][0]["detail"].lower() or "limit" in body["errors"][0]["detail"].lower()
    assert body["trade"]["status"] == TradeStatus.REJECTED and tradier.orders == {}
    assert len(tradier.requests_for("POST", "/orders")) == 1  # told no once, not hammered


def test_an_entry_lost_twice_is_pending_flagged_and_reconciled_by_tag(api_as, trader, tradier, market):
    tradier.inject("drop", method="POST", path="/orders", times=2)
    response = api_as(trader).post("/api/trades", OPEN_BODY, format="json")
    assert response.status_code == 502
    body = response.json()
    assert body["errors"][0]["code"] == "broker_outcome_unknown"
    assert body["trade"]["status"] == TradeStatus.PENDING and body["trade"]["needs_attention"] is True
    assert tradier.orders == {}  # both attempts were lost on the way: nothing exists there


# --- Closing ------------------------------------------------------------------------------------


def test_a_close_answered_too_late_closes_once_with_one_sell(api_as, trader, tradier):
    client = api_as(trader)
    opened = client.post("/api/trades", OPEN_BODY, format="json").json()
    tradier.set_quote(CONTRACT, "5.00", "5.20")
    tradier.inject("hang_after", method="POST", path="/orders")
    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert closed.status_code == 200, closed.json()
    assert closed.json()["status"] == TradeStatus.CLOSED and closed.json()["close_price"] == "5.0000"
    (sell,) = tradier.orders_tagged(f"to-{opened['id']}-close")
    assert sell.status == "filled"


def test_a_close_during_maintenance_keeps_the_trade_open_with_its_bracket(api_as, trader, tradier):
    client = api_as(trader)
    opened = client.post("/api/trades", OPEN_BODY, format="json").json()
    tradier.maintenance = True
    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json")
    assert closed.status_code == 503
    assert closed.json()["errors"][0]["code"] == "broker_unavailable"
    tradier.maintenance = False
    trade = trade_of(opened["id"])
    assert trade.status == TradeStatus.OPEN and trade.bracket_order_id == opened["bracket_order_id"]
    assert tradier.order(trade.bracket_order_id).status == "open"  # still protected
    assert tradier.orders_tagged(f"to-{opened['id']}-close") == []


# --- The order cycle ----------------------------------------------------------------------------


@pytest.mark.parametrize("outage", ["401", "maintenance", "500s", "429s"])
def test_a_broker_outage_mid_cycle_is_caught_up_by_the_next_cycle(api_as, trader, tradier, market, outage):
    opened = api_as(trader).post("/api/trades", OPEN_BODY, format="json").json()
    tradier.set_quote(CONTRACT, "6.60", "6.80")  # the take-profit fills at Tradier
    account = tradier.accounts[ACCOUNT]
    if outage == "401":
        account.token = "rotated-elsewhere"  # the trader's token stops working between two cycles
    elif outage == "maintenance":
        tradier.maintenance = True
    else:
        tradier.inject(outage[:3], method="GET", times=10)

    report = monitor.sync_orders(market=market, at=market.moment)
    assert report.failed_accounts == [trader.pk]
    trade = trade_of(opened["id"])
    assert trade.status == TradeStatus.OPEN  # not guessed: the broker could not be read
    if outage == "401":  # the trader must act: the trade says so
        assert trade.needs_attention and "token" in trade.attention_reason.lower()
        detail = api_as(trader).get(f"/api/trades/{opened['id']}").json()
        assert detail["events"][-1]["kind"] == EventKind.ATTENTION_NEEDED
        assert "rotated-elsewhere" not in str(detail) and TOKEN not in str(detail)
        paused = monitor.sync_orders(market=market, at=market.moment)  # said once, and not asked every cycle
        assert trade_of(opened["id"]).version == trade.version and paused.paused_accounts == [trader.pk]
        account.token = TOKEN  # put right at Tradier, and saved again by the trader: polling resumes
        services.account_settings_update(user=trader, changes={}, sandbox_token=TOKEN)

    tradier.maintenance = False
    tradier._faults.clear()
    monitor.sync_orders(market=market, at=market.moment)
    trade = trade_of(opened["id"])
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, "TP_HIT", Decimal("6.60"))
    assert not trade.needs_attention  # the token was accepted again: nothing is left to do
    with tenancy.system_context():
        assert trade.events.filter(new_status=TradeStatus.CLOSED).count() == 1
    assert len(tradier.orders_tagged(f"to-{opened['id']}-entry")) == 1
    assert len(tradier.orders_tagged(f"to-{opened['id']}-sl")) == 1
