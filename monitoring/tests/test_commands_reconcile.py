"""`manage.py reconcile`: a trader's books against their broker's, the local paper broker and the
Tradier sandbox (the fake Tradier over HTTP), each with a difference seeded behind the sync's
back. Reports only unless --fix; --fix applies the sync's own fixes and lists what remains."""

from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError

from brokers.base import OrderRequest, order_tag
from brokers.models import PaperOrder
from brokers.paper import LocalPaperBroker
from brokers.tradier import TradierClient
from monitoring import clock as market_clock
from monitoring import services
from tests.factories import ClosedTradeFactory
from tests.fakes.tradier import SANDBOX
from tradeoptions import tenancy
from trades import services as trade_services
from trades.models import CloseReason, TradeStatus

from .conftest import SANDBOX_ACCOUNT, SANDBOX_TOKEN, open_sandbox_call, trade_as_stored

CONTRACT = "SPY261218C00570000"
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def market(market, monkeypatch):
    """The shared hand-driven market (root conftest), and the clock the tasks read at its moment."""
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    return market




def _reconcile(*args):
    out = StringIO()
    call_command("reconcile", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- the local paper broker ---------------------------------------------------------------------


def test_a_take_profit_filled_at_the_paper_broker_is_reported_then_fixed(trader, market):
    trade = open_sandbox_call(trader, market)
    market.set_quote(CONTRACT, "6.60", "6.80")
    services.match_paper_orders(market=market)  # the broker fills the TP; the sync has not run

    report = _reconcile("--user", "alice")
    assert f"broker_ahead (trade {trade.pk})" in report and "-> close the trade at the broker's fill" in report
    assert "no_position" in report  # the trade holds a contract here, the broker sold it
    assert "Dry run: nothing was written" in report
    assert trade_as_stored(trade.pk).status == TradeStatus.OPEN

    fixed = _reconcile("--user", "alice", "--fix")
    trade = trade_as_stored(trade.pk)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.TP_HIT,
                                                                     Decimal("6.50"))
    assert "fixed 1; 0 remain" in fixed
    assert "0 difference(s)" in _reconcile("--user", "alice")


def test_an_orphan_order_of_a_closed_trade_is_cancelled_only_with_fix(trader, market):
    closed = ClosedTradeFactory(owner=trader, ticker="SPY", strike=Decimal("570"), expiry=date(2026, 12, 18))
    with tenancy.acting_as(trader.pk):
        orphan = LocalPaperBroker(trader.pk, starting_cash=Decimal("10000"), market=market).place_order(
            OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1, order_type="limit",
                         limit_price=Decimal("1.00"), tag=order_tag(closed.pk, "entry")))
    assert orphan.status.is_working

    report = _reconcile("--user", "alice")
    assert f"orphan_order (trade {closed.pk})" in report and "-> cancel it at the broker" in report
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.get(pk=orphan.id).status == "open"

    assert "0 remain" in _reconcile("--user", "alice", "--apply")  # --apply is --fix
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.get(pk=orphan.id).status == "canceled"


def test_without_user_every_trader_with_active_trades_is_looked_at(trader, other_trader, market):
    open_sandbox_call(trader, market)
    open_sandbox_call(other_trader, market)
    report = _reconcile()
    assert "alice (LOCAL_PAPER): 0 difference(s)" in report and "bob (LOCAL_PAPER): 0 difference(s)" in report


def test_an_unknown_user_is_a_clear_failure(db):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        _reconcile("--user", "nobody")


# --- the Tradier sandbox (fake Tradier over HTTP) -----------------------------------------------


def test_tradier_quantity_mismatch_and_a_bracket_cancelled_at_the_broker(trader, tradier, market):
    trade = open_sandbox_call(trader, market)
    assert trade.status == TradeStatus.OPEN and trade.bracket_order_id
    tradier.add_position(SANDBOX_ACCOUNT, CONTRACT, 3, Decimal("1290"))  # someone bought two more by hand
    client = TradierClient(base_url=tradier.url(SANDBOX), token=SANDBOX_TOKEN, account_id=SANDBOX_ACCOUNT)
    client.cancel_order(trade.bracket_order_id)  # ... and cancelled the bracket on Tradier's website
    client.close()

    report = _reconcile("--user", "alice")
    assert f"quantity_mismatch (trade {trade.pk})" in report and f"hold 1 {CONTRACT} here; the broker holds 3" in report
    assert f"bracket_missing (trade {trade.pk})" in report and "-> protect it again" in report
    assert trade_as_stored(trade.pk).attention_reason == ""

    fixed = _reconcile("--user", "alice", "--fix")
    protected = trade_as_stored(trade.pk)
    # The bracket is mended as the monitor would (a new one for the trade's contract); the
    # quantities are a person's to decide.
    assert protected.bracket_order_id not in ("", trade.bracket_order_id) and not protected.unprotected
    assert "fixed 1; 1 remain" in fixed and "still: [TRADIER_SANDBOX] quantity_mismatch" in fixed
    assert "bracket_missing" not in _reconcile("--user", "alice")


def test_without_user_a_tradier_trader_with_no_active_trade_is_looked_at_too(trader, tradier, market):
    client = TradierClient(base_url=tradier.url(SANDBOX), token=SANDBOX_TOKEN, account_id=SANDBOX_ACCOUNT)
    client.place_order(OrderRequest(option_symbol=CONTRACT, side="buy_to_open", quantity=1, order_type="limit",
                                    limit_price=Decimal("1.00"), tag="by-hand-1"))  # placed on Tradier's website
    client.close()
    report = _reconcile()
    assert "alice (TRADIER_SANDBOX): 1 difference(s)" in report and "foreign_order" in report


def test_an_unreachable_broker_exits_non_zero_with_the_reason(trader, tradier, market):
    open_sandbox_call(trader, market)
    tradier.maintenance = True
    with pytest.raises(CommandError, match="Some accounts could not be read: alice: the account could not be read"):
        _reconcile("--user", "alice")


def test_a_refused_token_is_reported_without_the_token(trader, tradier, market):
    trade_services.account_settings_update(user=trader, changes={}, sandbox_token="sbx-expired-0000")
    with pytest.raises(CommandError) as failure:
        _reconcile("--user", "alice")
    assert "could not be read" in str(failure.value) and "sbx-expired-0000" not in str(failure.value)
