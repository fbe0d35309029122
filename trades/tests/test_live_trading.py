"""Live trading end to end against the fake Tradier on its live URL: the guarded switch, every live
order tagged `live-` and logged and audited as LIVE, one click back to paper, and each token only
ever on its own environment's base URL."""

import logging
from decimal import Decimal

import pytest

from brokers.base import BrokerError, OrderRequest
from brokers.factory import LiveBroker, LiveOrderUntagged, broker_for
from brokers.models import BrokerMode
from monitoring import sync
from tests.fakes.tradier import LIVE, SANDBOX
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus

from .conftest import CONTRACT

SANDBOX_TOKEN = "sbxTOKEN-live-test-3c2b1a0f9e"
LIVE_TOKEN = "liveTOKEN-live-test-8d7c6b5a4f"
SANDBOX_ACCOUNT = "VA00005151"
LIVE_ACCOUNT = "6YA00005151"
GO_LIVE = {"broker_mode": "TRADIER_LIVE", "tradier_account_id": LIVE_ACCOUNT, "tradier_live_token": LIVE_TOKEN,
           "confirmation": "LIVE TRADING"}


@pytest.fixture
def tradier(fake_tradier, market, tradier_budget_of_its_own):
    """One fake Tradier serving both environments, each with its own account and token."""
    fake = fake_tradier
    fake.add_account(token=SANDBOX_TOKEN, account_id=SANDBOX_ACCOUNT, cash=Decimal("10000"), environment=SANDBOX)
    fake.add_account(token=LIVE_TOKEN, account_id=LIVE_ACCOUNT, cash=Decimal("10000"), environment=LIVE)
    fake.set_quote(CONTRACT, "4.10", "4.30")
    return fake


def _events(trade_id):
    with tenancy.system_context():
        return list(TradeEvent.objects.filter(trade_id=trade_id).order_by("id"))


@pytest.mark.parametrize(("allow", "missing"), [(False, None), (True, "tradier_live_token"), (True, "confirmation")])
def test_going_live_needs_the_server_switch_a_live_token_and_the_typed_words(api_as, trader, tradier, settings,
                                                                             allow, missing):
    settings.ALLOW_LIVE_TRADING = allow
    body = {name: value for name, value in GO_LIVE.items() if name != missing}
    response = api_as(trader).put("/api/settings", body, format="json")
    assert response.status_code == 400
    assert services.account_settings_for(user=trader).broker_mode == BrokerMode.LOCAL_PAPER
    assert tradier.requests == []  # refusing needs no broker


def test_a_live_trade_is_tagged_logged_and_audited_as_live(api_as, trader, tradier, settings, open_body, caplog):
    settings.ALLOW_LIVE_TRADING = True
    client = api_as(trader)
    assert client.put("/api/settings", GO_LIVE, format="json").status_code == 200

    with caplog.at_level(logging.WARNING, logger="brokers.live"):
        opened = client.post("/api/trades", open_body(), format="json")
    assert opened.status_code == 201, opened.json()
    trade = opened.json()
    assert trade["broker_mode"] == "TRADIER_LIVE" and trade["status"] == "OPEN"

    # At the broker: the entry and the bracket carry the live- mark, in the live environment.
    (entry,) = tradier.orders_tagged(f"live-to-{trade['id']}-entry")
    (bracket,) = tradier.orders_tagged(f"live-to-{trade['id']}-sl")
    assert entry.account_id == bracket.account_id == LIVE_ACCOUNT
    assert tradier.orders_tagged(f"to-{trade['id']}-entry") == []
    # In the log: every placement as LIVE, with its tag, never the token or the account number.
    lines = [record.getMessage() for record in caplog.records if record.name == "brokers.live"]
    assert any(line.startswith("LIVE place_order") and f"live-to-{trade['id']}-entry" in line for line in lines)
    assert any(line.startswith("LIVE place_oco_order") and f"live-to-{trade['id']}-sl" in line for line in lines)
    assert all(getattr(record, "live", False) for record in caplog.records if record.name == "brokers.live")
    assert not any(LIVE_TOKEN in line or LIVE_ACCOUNT in line for line in lines)
    # In the audit log: every event of the trade says live.
    events = _events(trade["id"])
    assert events and all(event.payload.get("live") is True for event in events)

    # The monitor's order sync finds the live orders by their live tags and ids: a TP fill closes it.
    tradier.set_quote(CONTRACT, "6.60", "6.80")
    sync.sync_orders()
    with tenancy.acting_as(trader.pk):
        closed = PaperTrade.objects.get(pk=trade["id"])
    assert (closed.status, closed.close_reason) == (TradeStatus.CLOSED, CloseReason.TP_HIT)
    assert _events(trade["id"])[-1].payload["live"] is True

    # Each token went only to its own base URL; in live mode the sandbox was never called.
    assert tradier.tokens_seen() == {(LIVE, LIVE_TOKEN)}


def test_in_sandbox_mode_the_live_token_is_never_sent_anywhere(api_as, trader, tradier, open_body):
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": SANDBOX_ACCOUNT},
                                     sandbox_token=SANDBOX_TOKEN, live_token=LIVE_TOKEN)  # both stored
    opened = api_as(trader).post("/api/trades", open_body(), format="json")
    assert opened.status_code == 201, opened.json()
    assert tradier.orders_tagged(f"to-{opened.json()['id']}-entry")  # a paper tag at the sandbox
    sync.sync_orders()
    assert tradier.tokens_seen() == {(SANDBOX, SANDBOX_TOKEN)}
    assert all(event.payload.get("live") is None for event in _events(opened.json()["id"]))


def test_back_to_paper_is_one_click_without_typing(client, trader, tradier, settings):
    settings.ALLOW_LIVE_TRADING = True
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_LIVE,
                                                           "tradier_account_id": LIVE_ACCOUNT},
                                     live_token=LIVE_TOKEN, confirmation="LIVE TRADING")
    client.force_login(trader)
    page = client.get("/settings/").content.decode()
    assert 'id="live-banner"' in page and 'id="back-to-paper"' in page

    response = client.post("/settings/paper")
    assert response.status_code == 302 and response["Location"] == "/settings/"
    account = services.account_settings_for(user=trader)
    assert account.broker_mode == BrokerMode.LOCAL_PAPER and account.has_broker_token(BrokerMode.TRADIER_LIVE)
    with tenancy.acting_as(trader.pk):
        last = TradeEvent.objects.filter(owner=trader, kind=EventKind.SETTINGS_CHANGED).order_by("id").last()
    assert last.payload["changes"]["broker_mode"] == {"from": "TRADIER_LIVE", "to": "LOCAL_PAPER"}
    assert 'id="live-banner"' not in client.get("/settings/").content.decode()
    assert client.get("/settings/paper").status_code == 405  # a link cannot switch modes; only the form
    assert tradier.requests == []


def test_the_live_broker_refuses_an_order_without_the_live_mark(trader, tradier, settings):
    settings.ALLOW_LIVE_TRADING = True
    account = services.account_settings_update(
        user=trader, changes={"broker_mode": BrokerMode.TRADIER_LIVE, "tradier_account_id": LIVE_ACCOUNT},
        live_token=LIVE_TOKEN, confirmation="LIVE TRADING")
    broker = broker_for(account)
    assert isinstance(broker, LiveBroker)
    with pytest.raises(LiveOrderUntagged, match="live orders are tagged live-"):
        broker.place_order(OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1,
                                        order_type="market", tag="to-1-entry"))
    assert tradier.requests_for("POST", "/orders") == []


def test_a_live_cancel_the_broker_refuses_is_logged_as_a_live_failure(trader, tradier, settings, caplog):
    settings.ALLOW_LIVE_TRADING = True
    account = services.account_settings_update(
        user=trader, changes={"broker_mode": BrokerMode.TRADIER_LIVE, "tradier_account_id": LIVE_ACCOUNT},
        live_token=LIVE_TOKEN, confirmation="LIVE TRADING")
    with caplog.at_level(logging.WARNING, logger="brokers.live"), pytest.raises(BrokerError):
        broker_for(account).cancel_order("987654")  # no such order at the broker
    (failed,) = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert failed.name == "brokers.live" and failed.getMessage().startswith("LIVE cancel of order 987654 failed")
    assert failed.live is True and LIVE_TOKEN not in caplog.text and LIVE_ACCOUNT not in caplog.text


def test_after_going_back_to_paper_open_live_trades_are_still_announced(client, trader, other_trader):
    from tests.factories import PaperTradeFactory

    PaperTradeFactory(owner=trader, broker_mode=BrokerMode.TRADIER_LIVE)  # placed live, still held
    PaperTradeFactory(owner=other_trader, broker_mode=BrokerMode.TRADIER_LIVE)  # Bob's: not Alice's business
    client.force_login(trader)
    for path in ("/", "/settings/"):
        page = client.get(path).content.decode()
        assert "1 trade placed live still open at Tradier live" in page and 'id="back-to-paper"' not in page
