"""Order sync, the orphan guard and a killed cycle, end to end through the Celery tasks (eager).

Trades are opened through `trade_open` at the local paper broker over a hand-driven market; the
test moves quotes and the clock, the tasks do the rest: paper matching, then the sync turning
fills into trade states.
"""

import importlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.cache import cache

from brokers.base import OrderDuration, OrderRequest, OrderSide, OrderStatus, OrderType
from brokers.models import BrokerMode, PaperOrder
from brokers.paper import FillRules, LocalPaperBroker
from monitoring import clock as market_clock
from monitoring import services, tasks
from tradeoptions import tenancy
from trades import services as trade_services
from trades.models import AccountSettings, Actor, CloseReason, EventKind, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_close, trade_open

CONTRACT = "SPY261218C00570000"
OTHER = "QQQ261218P00500000"
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def market(market, monkeypatch):
    """The shared hand-driven market (root conftest) with a QQQ put too, and the clock the tasks
    read at its moment."""
    market.set_quote(OTHER, "3.00", "3.20")
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    return market


def _roomy(*users):
    """Room for many positions (the default limits allow two of these)."""
    for user in users:
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(
                owner=user, defaults={"account_balance": Decimal("100000"), "max_positions": 50})


def _open(user, market, *, ticker="SPY", option_type="CALL", strike="570", sl="3.00", tp="6.50"):
    data = TradeOpenInput(ticker=ticker, option_type=option_type, strike=Decimal(strike), expiry=date(2026, 12, 18),
                          qty=1, sl_price=Decimal(sl), tp_price=Decimal(tp), context={"strategy": "momentum"})
    return trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM, actor_label="scanner").trade


def _trade(pk):
    with tenancy.system_context():
        return PaperTrade.objects.get(pk=pk)


def _events(pk, kind=None):
    with tenancy.system_context():
        events = TradeEvent.objects.filter(trade_id=pk)
        return list(events.filter(kind=kind) if kind else events)


def _cycle(market, **delta):
    market.advance(**delta)
    return tasks.sync_orders.apply().get()


def test_a_take_profit_hit_closes_the_trade_at_the_broker_fill(trader, market):
    trade = _open(trader, market)
    assert trade.status == TradeStatus.OPEN and trade.bracket_order_id and trade.entry_price == Decimal("4.30")
    market.set_quote(CONTRACT, "6.60", "6.80")
    _cycle(market, minutes=1)
    trade = _trade(trade.pk)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.TP_HIT,
                                                                     Decimal("6.50"))
    assert trade.broker_fill_price == Decimal("6.50") and trade.broker_fill_time == market.moment
    assert trade.trigger_precision == Decimal("0") and trade.realized_pnl == Decimal("220.00")
    [filled] = [e for e in _events(trade.pk, EventKind.ORDER_FILLED) if e.new_status == TradeStatus.CLOSED]
    assert filled.payload["source"] == trade_services.BROKER_FILL and filled.actor == Actor.SYSTEM
    _cycle(market, minutes=1)  # a second cycle changes nothing
    assert _trade(trade.pk).version == trade.version


def test_a_stop_loss_hit_in_a_gap_fills_at_the_worse_bid(trader, market):
    trade = _open(trader, market)
    market.open = False  # overnight the stock gaps down; the stop fills at the next open's bid
    _cycle(market, hours=18)
    assert _trade(trade.pk).status == TradeStatus.OPEN
    market.open = True
    market.set_quote(CONTRACT, "2.10", "2.30")
    _cycle(market, hours=6)  # Wednesday 10:00
    trade = _trade(trade.pk)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.SL_HIT,
                                                                     Decimal("2.10"))
    assert trade.trigger_precision == Decimal("-0.90") and trade.realized_pnl == Decimal("-220.00")


def test_a_manual_close_racing_a_bracket_fill_leaves_one_close_the_brokers(trader, market):
    trade = _open(trader, market)
    market.set_quote(CONTRACT, "6.60", "6.80")
    market.advance(seconds=20)
    assert services.match_paper_orders(market=market) == 1  # the TP filled at the broker...
    result = trade_close(user=trader, trade_id=trade.pk, version=_trade(trade.pk).version, market=market)
    # ...the close learns it from the bracket's cancel and closes at that fill, selling nothing
    assert (result.trade.status, result.trade.close_reason) == (TradeStatus.CLOSED, CloseReason.TP_HIT)
    with tenancy.acting_as(trader.pk):
        assert not PaperOrder.objects.filter(tag=f"to-{trade.pk}-close").exists()
    _cycle(market, seconds=40)
    trade = _trade(trade.pk)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.TP_HIT,
                                                                     Decimal("6.50"))
    assert len([e for e in _events(trade.pk) if e.new_status == TradeStatus.CLOSED]) == 1


def test_a_manual_close_filled_after_hours_is_confirmed_at_the_next_open(trader, market):
    trade = _open(trader, market)
    market.open = False
    result = trade_close(user=trader, trade_id=trade.pk, version=trade.version, market=market)
    assert result.trade.status == TradeStatus.CLOSING and result.trade.close_order_id
    _cycle(market, minutes=1)
    assert _trade(trade.pk).status == TradeStatus.CLOSING
    market.open = True
    market.set_quote(CONTRACT, "4.50", "4.70")
    _cycle(market, hours=1)
    trade = _trade(trade.pk)
    assert (trade.status, trade.close_reason, trade.close_price) == (TradeStatus.CLOSED, CloseReason.MANUAL_CLOSE,
                                                                     Decimal("4.50"))


def test_a_pending_limit_entry_opens_when_it_fills_and_keeps_its_otoco_bracket(trader, market):
    data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("4.00"))
    trade = trade_open(user=trader, data=data, market=market).trade
    assert trade.status == TradeStatus.PENDING and trade.bracket_order_id
    _cycle(market, minutes=1)
    assert _trade(trade.pk).version == trade.version  # nothing new at the broker: nothing written
    market.set_quote(CONTRACT, "3.80", "3.95")
    _cycle(market, minutes=1)
    trade = _trade(trade.pk)
    assert (trade.status, trade.entry_price, trade.entry_date) == (TradeStatus.OPEN, Decimal("4.00"), market.moment)
    market.set_quote(CONTRACT, "6.55", "6.70")
    _cycle(market, minutes=1)
    assert _trade(trade.pk).close_reason == CloseReason.TP_HIT


def test_orphans_are_cancelled_recorded_and_surfaced(trader, market, caplog):
    closed, active = _open(trader, market), _open(trader, market, ticker="QQQ", option_type="PUT", strike="500",
                                                  sl="2.00", tp="5.00")
    # The trade was closed while its bracket stayed working (as after a crash between the two).
    with tenancy.acting_as(trader.pk):
        trade_services.trade_transition(
            trade_id=closed.pk, to=TradeStatus.CLOSED, actor=Actor.STAFF, actor_label="test",
            changes={"close_price": Decimal("4.10"), "close_date": AT, "close_reason": CloseReason.MANUAL_CLOSE})
        broker = LocalPaperBroker(trader.pk, starting_cash=Decimal("5000"), market=market,
                                  rules=FillRules(Decimal("0"), Decimal("0")))
        stray = broker.place_oco_order(*_exits(OTHER, f"to-{active.pk}"))
        unknown = broker.place_oco_order(*_exits(OTHER, "to-987654"))
    _cycle(market, minutes=1)
    with tenancy.acting_as(trader.pk):
        assert PaperOrder.objects.get(pk=closed.bracket_order_id).status == OrderStatus.CANCELED
        assert PaperOrder.objects.get(pk=unknown.id).status == OrderStatus.OPEN  # not ours to cancel
    [cancel] = [e for e in _events(closed.pk, EventKind.ORDER_CANCELED) if e.payload.get("orphan")]
    assert cancel.actor_label == "orphan_guard"
    assert stray.id in _trade(active.pk).attention_reason
    with tenancy.system_context():
        noted = list(TradeEvent.objects.filter(trade=None, kind=EventKind.ATTENTION_NEEDED))
    assert [event.payload["tagged_trade"] for event in noted] == [987654]
    assert "matches no trade" in caplog.text
    _cycle(market, minutes=1)  # said once, not every minute
    with tenancy.system_context():
        assert TradeEvent.objects.filter(trade=None, kind=EventKind.ATTENTION_NEEDED).count() == 1
    assert len(_events(active.pk, EventKind.ATTENTION_NEEDED)) == 1


def _exits(symbol, prefix):
    common = {"option_symbol": symbol, "side": OrderSide.SELL_TO_CLOSE, "quantity": 1, "duration": OrderDuration.GTC}
    return (OrderRequest(**common, order_type=OrderType.STOP, stop_price=Decimal("1.00"), tag=f"{prefix}-sl"),
            OrderRequest(**common, order_type=OrderType.LIMIT, limit_price=Decimal("9.00"), tag=f"{prefix}-tp"))


def test_the_worker_start_reconciles_once(trader, market, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.reconcile_orders, "delay", lambda: sent.append(1))
    tasks.reconcile_at_worker_start()
    tasks.reconcile_at_worker_start()  # a second worker starting at the same time
    assert sent == [1]
    assert tasks.reconcile_orders.apply().get().startswith("SyncReport")


def test_a_cycle_killed_midway_loses_no_transition_when_run_again(trader, other_trader, market, monkeypatch):
    first, second = _open(trader, market), _open(other_trader, market)
    market.set_quote(CONTRACT, "6.60", "6.80")
    # Fault injection at a private seam of trades (by its dotted name: monitoring's code never
    # imports trades' private modules, and its tests only reach in to kill a step).
    seam = "trades.services.closing.trade_transition"  # where an exit fill becomes the trade's close
    real = importlib.import_module("trades.services.closing").trade_transition
    calls = []

    def killed_on_the_second_close(**kwargs):
        calls.append(kwargs["trade_id"])
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()
        return real(**kwargs)

    monkeypatch.setattr(seam, killed_on_the_second_close)
    with pytest.raises(SoftTimeLimitExceeded):
        _cycle(market, minutes=1)
    assert {_trade(first.pk).status, _trade(second.pk).status} == {TradeStatus.CLOSED, TradeStatus.OPEN}
    monkeypatch.setattr(seam, real)
    _cycle(market, minutes=1)
    for trade in (first, second):
        assert _trade(trade.pk).close_reason == CloseReason.TP_HIT
        assert len([e for e in _events(trade.pk) if e.new_status == TradeStatus.CLOSED]) == 1


def test_a_snapshot_cycle_killed_before_commit_writes_once_on_rerun(trader, market, monkeypatch):
    from monitoring.marketdata.simulated import SimulatedProvider
    from monitoring.models import PriceSnapshot

    _open(trader, market)
    at = datetime(2026, 12, 1, 17, 0, 5, tzinfo=UTC)
    provider = SimulatedProvider(seed="killed", clock=lambda: at)

    def killed(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "_update_marks", killed)
    with pytest.raises(SoftTimeLimitExceeded):
        services.snapshot_positions(provider=provider, at=at)
    monkeypatch.undo()
    with tenancy.system_context():
        assert PriceSnapshot.objects.count() == 0  # the insert rolled back with the kill
    assert services.snapshot_positions(provider=provider, at=at).written == 1
    assert services.snapshot_positions(provider=provider, at=at + timedelta(seconds=10)).written == 0
    with tenancy.system_context():
        assert PriceSnapshot.objects.count() == 1


def test_local_paper_reads_stay_constant_however_many_trades_and_accounts(trader, other_trader, market,
                                                                         monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import UserFactory

    _roomy(trader, other_trader)
    for _ in range(2):
        _open(trader, market), _open(other_trader, market)
    calls = []
    real = LocalPaperBroker.get_orders
    monkeypatch.setattr(LocalPaperBroker, "get_orders", lambda self: calls.append(self.owner_id) or real(self))
    with CaptureQueriesContext(connection) as few:
        report = services.sync_orders(market=market, at=market.moment)
    assert report.accounts == 2 and report.broker_calls == 0 and calls == []  # paper orders: one batch read
    third = UserFactory()
    _roomy(third)
    for user in (trader, third, third):
        _open(user, market)
    with CaptureQueriesContext(connection) as many:
        assert services.sync_orders(market=market, at=market.moment).accounts == 3
    assert len(many) == len(few)


def test_an_entry_filled_by_the_cycle_opens_the_trade_and_gets_its_bracket(trader, market):
    market.open = False  # placed before the open: the market order waits
    trade = _open(trader, market)
    assert trade.status == TradeStatus.PENDING and not trade.bracket_order_id
    market.open = True
    market.set_quote(CONTRACT, "4.20", "4.40")
    _cycle(market, minutes=1)
    trade = _trade(trade.pk)
    assert (trade.status, trade.entry_price, trade.entry_date) == (TradeStatus.OPEN, Decimal("4.40"), market.moment)
    with tenancy.acting_as(trader.pk):
        bracket = PaperOrder.objects.get(pk=trade.bracket_order_id)
    assert bracket.order_class == "oco" and bracket.status == OrderStatus.OPEN
    assert [e.kind for e in _events(trade.pk)][-2:] == [EventKind.ORDER_FILLED, EventKind.ORDER_PLACED]


def test_a_limit_entry_that_expires_at_the_close_cancels_the_trade_and_its_waiting_exits(trader, market):
    data = TradeOpenInput(ticker="SPY", option_type="CALL", strike=Decimal("570"), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal("3.00"), tp_price=Decimal("6.50"), limit_price=Decimal("3.50"))
    trade = trade_open(user=trader, data=data, market=market).trade
    assert trade.status == TradeStatus.PENDING
    _cycle(market, hours=6, minutes=1)  # 16:01 in New York: the day order expired at the close
    trade = _trade(trade.pk)
    assert trade.status == TradeStatus.CANCELED and "expired" in trade.status_reason
    # The broker ended the OTOCO's waiting exits with its entry, in the same cycle (as Tradier does):
    # nothing is left for the orphan guard.
    with tenancy.acting_as(trader.pk):
        group = PaperOrder.objects.filter(pk=trade.entry_order_id) | PaperOrder.objects.filter(
            parent_id=trade.entry_order_id)
        assert not group.filter(status__in=["open", "pending", "partially_filled"]).exists()
    _cycle(market, minutes=1)
    assert [e.payload.get("orphan") for e in _events(trade.pk, EventKind.ORDER_CANCELED)] == [None]


def test_the_monitors_paper_matching_charges_each_account_its_own_commission(trader, other_trader, market):
    """Two accounts, two rates: the bracket fills the monitor's matching makes are charged each
    account's own, and each trade's net P&L is what its fills cost in the paper ledger."""
    from brokers.models import PaperFill

    for user, rate in ((trader, "0.35"), (other_trader, "1.00")):
        trade_services.account_settings_update(user=user, changes={"commission_per_contract": Decimal(rate)})
    trades = {user.pk: _open(user, market) for user in (trader, other_trader)}
    market.set_quote(CONTRACT, "6.60", "6.80")
    _cycle(market, minutes=1)
    for user, rate in ((trader, Decimal("0.35")), (other_trader, Decimal("1.00"))):
        trade = _trade(trades[user.pk].pk)
        assert (trade.status, trade.entry_commission, trade.exit_commission) == (TradeStatus.CLOSED, rate, rate)
        assert trade.realized_pnl_net == Decimal("220.00") - 2 * rate
        with tenancy.acting_as(user.pk):
            fills = list(PaperFill.objects.filter(owner=user).values_list("side", "commission"))
        assert sorted(fills) == [("buy_to_open", rate), ("sell_to_close", rate)]


def test_two_shards_sync_every_account_once_and_together_what_the_unsharded_sync_does(trader, other_trader, market):
    from monitoring import sync
    from monitoring.sharding import Shard
    from tests.factories import UserFactory

    third, fourth = UserFactory(), UserFactory()
    users = [trader, other_trader, third]
    assert {user.pk % 2 for user in users} == {0, 1}
    _roomy(*users)
    trades = {user.pk: _open(user, market) for user in users}
    with tenancy.acting_as(fourth.pk):  # an account with a working order and no trade: read too, by its shard
        LocalPaperBroker(fourth.pk, starting_cash=Decimal("5000"), market=market).place_order(OrderRequest(
            option_symbol=OTHER, side=OrderSide.BUY_TO_OPEN, quantity=1, order_type=OrderType.LIMIT,
            limit_price=Decimal("0.50"), tag="by-hand"))
    at = market.now()
    whole = {(account.owner_id, account.mode) for account in sync._accounts_to_read(at)}
    halves = [{(account.owner_id, account.mode) for account in sync._accounts_to_read(at, Shard(index, 2))}
              for index in (0, 1)]
    assert halves[0] | halves[1] == whole and not halves[0] & halves[1]
    assert all(owner % 2 == index for index, half in enumerate(halves) for owner, _ in half)
    assert len(whole) == 4 and (fourth.pk, BrokerMode.LOCAL_PAPER) in whole

    market.set_quote(CONTRACT, "6.60", "6.80")
    market.advance(seconds=20)
    assert services.match_paper_orders(market=market) == 3  # every take-profit filled at the broker
    first = sync.sync_orders(market=market, at=market.now(), shard=Shard(0, 2))
    assert {pk for pk, trade in trades.items() if _trade(trade.pk).status == TradeStatus.CLOSED} == {
        pk for pk in trades if pk % 2 == 0}
    second = sync.sync_orders(market=market, at=market.now(), shard=Shard(1, 2))
    assert first.accounts + second.accounts == len(whole) and first.changed + second.changed == 3
    closed = [_trade(trade.pk) for trade in trades.values()]
    assert {(trade.status, trade.close_reason, trade.close_price) for trade in closed} == {
        (TradeStatus.CLOSED, CloseReason.TP_HIT, Decimal("6.50"))}
    assert sync.sync_orders(market=market, at=market.now()).changed == 0  # nothing left for the whole
