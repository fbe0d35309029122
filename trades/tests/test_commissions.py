"""Commissions are recorded on the trade when its orders fill, at the account's rate, and every
P&L has a gross figure (premiums only) and a net one: gross - commissions - fees, exactly."""

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.base import Fill, Order, OrderStatus
from brokers.models import BrokerMode, PaperFill
from tests.factories import ClosedTradeFactory, PaperTradeFactory
from tradeoptions import tenancy
from trades import services
from trades.models import CloseReason, CommissionSource, PaperTrade, TradeStatus

from .conftest import CONTRACT
from .test_tradier_lifecycle import ACCOUNT, TOKEN

AT = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def _trade(user, trade_id) -> PaperTrade:
    with tenancy.acting_as(user.pk):
        return PaperTrade.objects.get(pk=trade_id)


def _open_and_close(client, market_or_fake, open_body):
    opened = client.post("/api/trades", open_body(), format="json")
    assert opened.status_code == 201, opened.json()
    body = opened.json()
    market_or_fake.set_quote(CONTRACT, "5.00", "5.20")
    closed = client.post(f"/api/trades/{body['id']}/close", {"version": body["version"]}, format="json")
    assert closed.status_code == 200, closed.json()
    return body, closed.json()


def test_the_paper_broker_records_the_accounts_commission_at_entry_and_exit(api_as, trader, market, open_body):
    services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("0.50")})
    opened, closed = _open_and_close(api_as(trader), market, open_body)

    assert (opened["entry_commission"], opened["exit_commission"], opened["commission_per_contract"]) == (
        "1.00", "0.00", "0.5000")  # 2 contracts bought at $0.50
    assert opened["commission_source"] == CommissionSource.ACCOUNT_RATE
    # (5.00 − 4.30) × 2 × 100 = 140.00 gross; 1.00 in, 1.00 out.
    assert (closed["realized_pnl"], closed["realized_pnl_gross"], closed["commission_total"],
            closed["realized_pnl_net"]) == ("140.00", "140.00", "2.00", "138.00")
    trade = _trade(trader, closed["id"])
    assert (trade.entry_commission, trade.exit_commission, trade.fees) == (Decimal("1.00"), Decimal("1.00"), 0)
    assert trade.realized_pnl_net == trade.realized_pnl - trade.entry_commission - trade.exit_commission - trade.fees
    assert trade.realized_pnl_net == Decimal("138.00")
    # The paper broker charged its fills the same: the trade's commissions are what the books say.
    with tenancy.acting_as(trader.pk):
        charged = sum(fill.commission for fill in PaperFill.objects.filter(option_symbol=CONTRACT))
    assert charged == trade.commission_total


def test_a_paper_trade_records_what_the_ledger_charged_when_the_rate_changed_while_it_was_open(
        api_as, trader, market, open_body):
    """The paper broker charges each fill the account's rate of the moment: the trade records what
    its fills cost, so the account's realized P&L and cash are the trades' net P&L to the cent."""
    client = api_as(trader)
    services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("0.50")})
    opened = client.post("/api/trades", open_body(), format="json").json()  # 2 at 4.30, $1.00 in
    services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("1.00")})
    market.set_quote(CONTRACT, "5.00", "5.20")
    closed = client.post(f"/api/trades/{opened['id']}/close", {"version": opened["version"]}, format="json").json()
    # (5.00 − 4.30) × 2 × 100 = 140.00 gross; $1.00 in at the old rate, $2.00 out at the new one.
    assert (closed["entry_commission"], closed["exit_commission"], closed["realized_pnl_net"]) == (
        "1.00", "2.00", "137.00")
    summary = client.get("/api/account/summary").json()
    assert summary["realized_pnl"] == closed["realized_pnl_net"]
    assert Decimal(summary["cash"]) == Decimal(summary["starting_balance"]) + Decimal(closed["realized_pnl_net"])


def test_a_tradier_trade_records_the_configured_rate_at_entry_and_exit(api_as, trader, fake_tradier, market,
                                                                       open_body, tradier_budget_of_its_own):
    """Tradier's order answers carry no commission (reference §3): the account's rate is
    recorded, here the server's default ($0.65), and the trade says where it came from."""
    fake_tradier.add_account(token=TOKEN, account_id=ACCOUNT, cash=Decimal("10000"))
    fake_tradier.set_quote(CONTRACT, "4.10", "4.30")
    services.account_settings_update(user=trader, changes={"broker_mode": BrokerMode.TRADIER_SANDBOX,
                                                           "tradier_account_id": ACCOUNT}, sandbox_token=TOKEN)
    opened, closed = _open_and_close(api_as(trader), fake_tradier, open_body)

    assert (opened["broker_mode"], opened["entry_commission"]) == ("TRADIER_SANDBOX", "1.30")
    trade = _trade(trader, closed["id"])
    assert (trade.commission_source, trade.commission_per_contract) == (CommissionSource.ACCOUNT_RATE,
                                                                        Decimal("0.6500"))
    assert (trade.realized_pnl, trade.entry_commission, trade.exit_commission) == (
        Decimal("140.00"), Decimal("1.30"), Decimal("1.30"))
    assert trade.realized_pnl_net == Decimal("137.40") == Decimal(closed["realized_pnl_net"])


def _entry(status, filled):
    return Order(id="77", status=OrderStatus(status), order_class="option", filled_quantity=filled,
                 fill=Fill(quantity=filled, price=Decimal("4.30"), at=AT))


def test_a_partial_entry_fill_is_charged_for_what_filled(trader):
    """At Tradier (no commission in its answers): the rate × what filled."""
    pending = PaperTradeFactory(owner=trader, qty=5, status=TradeStatus.PENDING, entry_price=None, entry_date=None,
                                broker_mode=BrokerMode.TRADIER_SANDBOX)
    with tenancy.acting_as(trader.pk):
        trade = services.trade_entry_update(trade_id=pending.pk, entry=_entry("partially_filled", 2))
        assert trade.entry_commission == Decimal("1.30")
        trade = services.trade_entry_update(trade_id=pending.pk, entry=_entry("canceled", 3))
    assert (trade.status, trade.qty, trade.entry_commission) == (TradeStatus.OPEN, 3, Decimal("1.95"))


@pytest.mark.parametrize(("reason", "exit_commission"), [
    (CloseReason.SL_HIT, Decimal("2.40")),  # 2 sold by an exit leg earlier + 1 now, at $0.80
    (CloseReason.EXPIRED, Decimal("1.60")),  # the held contract is settled by the expiry: no commission
])
def test_the_exit_is_charged_for_what_orders_sold(trader, reason, exit_commission):
    """At Tradier (no commission in its answers): the trade's rate × contracts orders sold."""
    trade = PaperTradeFactory(owner=trader, qty=3, filled_qty=3, status=TradeStatus.OPEN,
                              broker_mode=BrokerMode.TRADIER_SANDBOX,
                              entry_price=Decimal("2.00"), commission_per_contract=Decimal("0.80"),
                              entry_commission=Decimal("2.40"), exit_filled_qty=2,
                              exit_filled_price=Decimal("1.50"))
    outcome = services.close_outcome(trade, price=Decimal("1.00"), at=AT, reason=reason)
    assert outcome["exit_commission"] == exit_commission


def test_an_open_positions_net_pnl_counts_the_entry_commission_and_the_exit_to_come(api_as, trader, market,
                                                                                  open_body):
    services.account_settings_update(user=trader, changes={"commission_per_contract": Decimal("0.65")})
    opened = api_as(trader).post("/api/trades", open_body(), format="json").json()
    with tenancy.acting_as(trader.pk):
        PaperTrade.objects.filter(pk=opened["id"]).update(unrealized_pnl=Decimal("40.00"))
    position = api_as(trader).get(f"/api/trades/{opened['id']}").json()
    assert (position["unrealized_pnl"], position["exit_commission_estimate"], position["unrealized_pnl_net"]) == (
        "40.00", "1.30", "37.40")  # 40.00 − 1.30 paid − 1.30 to sell


def test_an_open_positions_net_pnl_counts_the_commission_its_partial_exits_paid(trader):
    """3 bought, 2 sold by an exit leg before its cancel, 1 held: the exit's commission is on 3
    contracts (2 paid, 1 to pay), not on the one held."""
    trade = PaperTradeFactory(owner=trader, qty=3, filled_qty=3, status=TradeStatus.OPEN,
                              broker_mode=BrokerMode.TRADIER_SANDBOX, entry_price=Decimal("2.00"),
                              commission_per_contract=Decimal("0.65"), entry_commission=Decimal("1.95"),
                              exit_filled_qty=2, exit_filled_price=Decimal("2.50"), unrealized_pnl=Decimal("40.00"))
    assert (trade.held_qty, trade.exit_commission_estimate) == (1, Decimal("1.95"))
    assert trade.unrealized_pnl_net == Decimal("36.10")  # 40.00 − 1.95 in − 1.30 paid on 2 − 0.65 to sell 1
    # Closed at the same rate, the exit records what the estimate said.
    outcome = services.close_outcome(trade, price=Decimal("2.40"), at=AT, reason=CloseReason.MANUAL_CLOSE)
    assert outcome["exit_commission"] == trade.exit_commission_estimate


def test_the_trade_export_carries_gross_net_and_the_costs(api_as, trader):
    ClosedTradeFactory(owner=trader, qty=2, entry_price=Decimal("4.20"), close_price=Decimal("5.00"),
                       entry_commission=Decimal("1.30"), exit_commission=Decimal("1.30"), fees=Decimal("0.04"),
                       commission_per_contract=Decimal("0.65"), commission_source=CommissionSource.ACCOUNT_RATE)
    response = api_as(trader).get("/api/trades/export?format=csv")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    costs = ["realized_pnl_gross", "realized_pnl_net", "commission_total", "entry_commission",
             "exit_commission", "fees", "commission_per_contract", "commission_source"]
    start = list(row).index(costs[0])
    assert list(row)[start:start + len(costs)] == costs  # side by side (the spread's columns follow them)
    assert (row["realized_pnl"], row["realized_pnl_gross"], row["realized_pnl_net"], row["commission_total"]) == (
        "160.00", "160.00", "157.36", "2.60")
    assert (row["fees"], row["commission_source"]) == ("0.04", "ACCOUNT_RATE")
    (exported,) = json.loads(b"".join(api_as(trader).get("/api/trades/export?format=json").streaming_content))
    assert exported["realized_pnl_net"] == "157.36"
