"""The order sync's pre-filter (monitoring/sync.py, `paper_look`): reading only the local-paper
accounts of which something could have changed decides exactly what reading every account does.

The equivalence: seeded books of local-paper trades in every state (open with a bracket, pending
limit entries, closing after hours, closed with their bracket still working, with a stray order,
a guard-only account), and between cycles what happens to books: quotes move (take-profits,
stops and entries fill), traders close, a bracket leg is cancelled by hand, a trade is finished
behind its bracket's back, a stray order appears, the market closes and opens. Each book runs
the same cycles twice from the same start (a savepoint rolled back between), once with the
pre-filter and once without; trades, events and orders must agree after every cycle, and the
pre-filter must really have passed accounts over.

The pre-filter tells changes by the transactions that made them (a snapshot sees a committed
transaction), so these tests commit as they go (`transaction=True`): the two runs of a book are
two copies of it, built from the same seed, their ids compared by rank.

The race: an order changed by a transaction that commits after the sync's read is still seen by
the next cycle, though it was written before the read (a watermark of time would miss it).
"""

import random
import re
import textwrap
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection, transaction

from brokers.base import BrokerError, OrderDuration, OrderRequest, OrderSide, OrderStatus, OrderType
from brokers.models import PaperOrder
from brokers.paper import FillRules, LocalPaperBroker
from monitoring import clock as market_clock
from monitoring import sync, tasks
from monitoring.tests.conftest import open_sandbox_call
from tests.factories import UserFactory
from tradeoptions import tenancy
from tradeoptions.db import as_schema_owner
from trades import services as trade_services
from trades.models import AccountSettings, Actor, CloseReason, PaperTrade, TradeEvent, TradeStatus
from trades.services import TradeOpenInput, trade_close, trade_open

SPY, QQQ, IWM = "SPY261218C00570000", "QQQ261218P00500000", "IWM261218C00250000"
# Each contract's quotes: resting, then beyond its take-profit, then through its stop.
LEVELS = {SPY: [("4.10", "4.30"), ("6.60", "6.80"), ("2.80", "2.95")],
          QQQ: [("3.00", "3.20"), ("5.10", "5.30"), ("1.80", "1.95")],
          IWM: [("3.00", "3.20"), ("5.10", "5.30"), ("1.80", "1.95")]}
CYCLES = 8
START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York


@pytest.fixture
def market(market, monkeypatch):
    monkeypatch.setattr(market_clock, "now", lambda: market.moment)
    return market


def _open(user, market, symbol):
    contracts = {SPY: ("SPY", "CALL", "570"), QQQ: ("QQQ", "PUT", "500"), IWM: ("IWM", "CALL", "250")}
    ticker, kind, strike = contracts[symbol]
    sl, tp = {SPY: ("3.00", "6.50"), QQQ: ("2.00", "5.00"), IWM: ("2.00", "5.00")}[symbol]
    data = TradeOpenInput(ticker=ticker, option_type=kind, strike=Decimal(strike), expiry=date(2026, 12, 18), qty=1,
                          sl_price=Decimal(sl), tp_price=Decimal(tp))
    return trade_open(user=user, data=data, market=market, actor=Actor.SYSTEM, actor_label="scanner").trade


def _exits(symbol, prefix):
    common = {"option_symbol": symbol, "side": OrderSide.SELL_TO_CLOSE, "quantity": 1, "duration": OrderDuration.GTC}
    return (OrderRequest(**common, order_type=OrderType.STOP, stop_price=Decimal("1.00"), tag=f"{prefix}-sl"),
            OrderRequest(**common, order_type=OrderType.LIMIT, limit_price=Decimal("9.00"), tag=f"{prefix}-tp"))


def _broker(owner_id, market):
    return LocalPaperBroker(owner_id, starting_cash=Decimal("100000"), market=market,
                            rules=FillRules(Decimal("0"), Decimal("0")))


def _quote_all(market, levels):
    for symbol, level in levels.items():
        market.set_quote(symbol, *LEVELS[symbol][level])


def _book(seed, market):
    """Five traders with one to three trades each (some entries resting for the open), and a
    sixth whose only order is a stray tagged for a trade that is not theirs (the guard's alone)."""
    rng = random.Random(seed)
    _quote_all(market, {SPY: 0, QQQ: 0, IWM: 0})
    users = UserFactory.create_batch(5)
    for user in users:
        with tenancy.acting_as(user.pk):
            AccountSettings.objects.update_or_create(
                owner=user, defaults={"account_balance": Decimal("100000"), "max_positions": 50})
        for symbol in rng.sample([SPY, QQQ], rng.randint(1, 2)):
            _open(user, market, symbol)
    market.open = False
    for user in users:
        if rng.random() < 0.5:
            _open(user, market, IWM)  # its market entry waits for the open
    market.open = True
    loner = UserFactory()
    with tenancy.acting_as(loner.pk):
        _broker(loner.pk, market).place_order(OrderRequest(
            option_symbol=QQQ, side=OrderSide.BUY_TO_OPEN, quantity=1, duration=OrderDuration.GTC,
            order_type=OrderType.LIMIT, limit_price=Decimal("0.50"), tag="to-987654-entry"))
    return [user.pk for user in users] + [loner.pk]


def _trades(owners, *statuses):
    with tenancy.system_context():
        return list(PaperTrade.objects.filter(owner_id__in=owners, status__in=statuses).order_by("id"))


def _happen(rng, market, owners):
    """One or two of the things that happen to books between two cycles, chosen by the seed among
    the trades as they stand (the same in both runs, as long as the runs agree)."""
    for _ in range(rng.randint(0, 2)):
        what = rng.choice(["quote", "quote", "close", "cancel_leg", "finish", "stray", "hours"])
        opened = _trades(owners, TradeStatus.OPEN)
        if what == "quote":
            symbol = rng.choice([SPY, QQQ, IWM])
            market.set_quote(symbol, *LEVELS[symbol][rng.choice([0, 0, 1, 2])])
        elif what == "hours":
            market.open = not market.open
        elif opened and what == "close":
            trade = rng.choice(opened)
            user = trade.owner
            try:
                trade_close(user=user, trade_id=trade.pk, version=trade.version, market=market)
            except trade_services.TradeError:
                pass
        elif opened and what == "cancel_leg":  # by hand, at the broker: the bracket is lost
            trade = rng.choice(opened)
            with tenancy.acting_as(trade.owner_id):
                legs = PaperOrder.objects.filter(parent_id=trade.bracket_order_id or None, status=OrderStatus.OPEN)
                leg = legs.order_by("id").first()
                if leg is not None:
                    _at_broker(lambda t=trade, head=str(leg.parent_id): _broker(t.owner_id, market).cancel_order(head))
        elif opened and what == "finish":  # finished while its bracket stayed working: an orphan
            trade = rng.choice(opened)
            with tenancy.acting_as(trade.owner_id):
                trade_services.trade_transition(
                    trade_id=trade.pk, to=TradeStatus.CLOSED, actor=Actor.STAFF, actor_label="test",
                    changes={"close_price": Decimal("4.10"), "close_date": market.moment,
                             "close_reason": CloseReason.MANUAL_CLOSE})
        elif opened and what == "stray":  # a second working order for an active trade
            trade = rng.choice(opened)
            with tenancy.acting_as(trade.owner_id):
                _at_broker(lambda t=trade: _broker(t.owner_id, market).place_oco_order(
                    *_exits(t.option_symbol, f"to-{t.pk}")))


def _at_broker(call):
    """A refusal (nothing to sell, nothing to cancel) is one of the things that happen."""
    try:
        call()
    except BrokerError:
        pass


def _state(owners) -> dict:
    """Trades, events and orders of these accounts as a cycle leaves them, every id replaced by
    its rank (the runs' copies of a book have ids of their own), tags too."""
    with tenancy.system_context():
        orders = list(PaperOrder.objects.filter(owner_id__in=owners).order_by("id").values(
            "id", "owner_id", "parent_id", "order_class", "tag", "side", "order_type", "status", "quantity",
            "filled_quantity", "avg_fill_price", "stop_price", "limit_price", "active"))
        trades = list(PaperTrade.objects.filter(owner_id__in=owners).order_by("id").values(
            "id", "owner_id", "status", "version", "close_reason", "close_price", "entry_price", "filled_qty",
            "attention_reason", "part_pending_qty", "entry_order_id", "bracket_order_id", "sl_order_id",
            "tp_order_id", "close_order_id"))
        events = list(TradeEvent.objects.filter(owner_id__in=owners).order_by("id").values_list(
            "trade_id", "kind", "old_status", "new_status", "actor_label"))
    order_rank = {str(order["id"]): f"#{n}" for n, order in enumerate(orders)}
    trade_rank = {str(trade["id"]): f"T{n}" for n, trade in enumerate(trades)}
    owner_rank = {owner: n for n, owner in enumerate(owners)}

    def tag(text):
        return re.sub(r"^to-(\d+)", lambda match: f"to-{trade_rank.get(match[1], match[1])}", text or "")

    for order in orders:
        order["id"], order["parent_id"] = order_rank[str(order["id"])], order_rank.get(str(order["parent_id"]))
        order["owner_id"], order["tag"] = owner_rank[order["owner_id"]], tag(order["tag"])
    for trade in trades:
        trade["id"], trade["owner_id"] = trade_rank[str(trade["id"])], owner_rank[trade["owner_id"]]
        for name in ("entry_order_id", "bracket_order_id", "sl_order_id", "tp_order_id", "close_order_id"):
            trade[name] = order_rank.get(trade[name], trade[name])
        trade["attention_reason"] = re.sub(r"\d+", "#", trade["attention_reason"])
    events = [(trade_rank.get(str(trade_id)), *rest) for trade_id, *rest in events]
    return {"trades": trades, "events": events, "orders": orders}


def _run(seed, market, *, prefilter, settings, monkeypatch) -> tuple[list[dict], list[int]]:
    """One copy of the book and its cycles: the state after each, and how many of its accounts
    each sync read."""
    settings.ORDER_SYNC_PREFILTER = prefilter
    cache.clear()  # leases and the guard's notes start as they did
    market.moment, market.book, market.open = START, {}, True
    owners = _book(seed, market)
    rng = random.Random(seed * 7919)
    read = []
    real = sync._sync_account
    monkeypatch.setattr(sync, "_sync_account", lambda account, *rest: read.append(account.owner_id) or real(account,
                                                                                                               *rest))
    states, accounts = [], []
    for _ in range(CYCLES):
        _happen(rng, market, owners)
        market.advance(minutes=1)
        read.clear()
        tasks.sync_orders.apply().get()
        accounts.append(len([owner for owner in read if owner in owners]))
        states.append(_state(owners))
    return states, accounts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(6))
def test_the_prefilter_decides_what_a_full_sync_decides(seed, market, settings, monkeypatch):
    filtered, filtered_reads = _run(seed, market, prefilter=True, settings=settings, monkeypatch=monkeypatch)
    full, full_reads = _run(seed, market, prefilter=False, settings=settings, monkeypatch=monkeypatch)
    for cycle, (with_it, without_it) in enumerate(zip(filtered, full, strict=True)):
        assert with_it == without_it, f"cycle {cycle + 1} of seed {seed}"
    assert full_reads == [6] * CYCLES
    assert sum(filtered_reads) < sum(full_reads)  # the pre-filter passed accounts over


@pytest.mark.django_db(transaction=True)
def test_a_steady_account_is_passed_over_and_looked_at_again_when_an_order_changes(market):
    owners = _book(0, market)
    tasks.sync_orders.apply().get()  # the first look: every account
    look = sync.paper_look(market.moment)
    assert look.owners < look.held == set(owners[:-1])
    read = {account.owner_id for account in sync._accounts_to_read(market.moment, look=look)}
    assert read == look.owners | {owners[-1]}  # the guard-only account is always read
    steady = sorted(look.held - look.owners)
    assert steady
    [trade, *_] = _trades([steady[0]], TradeStatus.OPEN)
    with tenancy.acting_as(trade.owner_id):
        _broker(trade.owner_id, market).cancel_order(trade.bracket_order_id)
    assert sync.paper_look(market.moment).owners == look.owners | {steady[0]}


@pytest.mark.django_db(transaction=True)
def test_every_account_is_looked_at_again_after_the_full_look_interval(market, settings):
    owners = _book(1, market)
    tasks.sync_orders.apply().get()
    assert sync.paper_look(market.moment).owners != set(owners[:-1])
    settings.ORDER_SYNC_FULL_LOOK_SECONDS = 0
    assert sync.paper_look(market.moment).owners == set(owners[:-1])  # all those with trades


def _commit_late(trade, market, changed, committed):
    """Another connection cancels the trade's bracket at the broker, then holds its transaction
    open until told to commit."""
    from django.db import connections

    try:
        with tenancy.acting_as(trade.owner_id), transaction.atomic():
            _broker(trade.owner_id, market).cancel_order(trade.bracket_order_id)
            changed.set()
            committed.wait(30)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_an_order_changed_by_a_transaction_committing_after_the_read_is_seen_next_cycle(market, settings,
                                                                                        monkeypatch):
    """The bracket's cancel is written before the sync's read but committed after it (so the
    read saw the bracket working), before the look is noted: the next cycle still looks at the
    account, and only at it among the steady ones, and protects the trade again."""
    _book(2, market)
    tasks.sync_orders.apply().get()
    tasks.sync_orders.apply().get()
    look = sync.paper_look(market.moment)
    steady = sorted(look.held - look.owners)
    assert len(steady) >= 2
    [trade, *_] = _trades([steady[0]], TradeStatus.OPEN)
    changed, committed = threading.Event(), threading.Event()
    late = threading.Thread(target=_commit_late, args=(trade, market, changed, committed))
    late.start()
    assert changed.wait(30)
    note = sync.note_looked

    def commit_then_note(*args):  # between the sync's reads and its note
        committed.set()
        late.join(30)
        note(*args)

    monkeypatch.setattr(sync, "note_looked", commit_then_note)
    settings.ORDER_SYNC_FULL_LOOK_SECONDS = 0  # this cycle looks at (and notes) every account
    market.advance(minutes=1)
    sync.sync_orders(market=market, at=market.moment)  # the cancel is not committed: the bracket works
    settings.ORDER_SYNC_FULL_LOOK_SECONDS = 900
    assert not late.is_alive()
    assert _trades([trade.owner_id], TradeStatus.OPEN)[0].bracket_order_id == trade.bracket_order_id
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("""
            SELECT pg_visible_in_snapshot(o.changed_xid, t.orders_seen_snapshot)
              FROM brokers_paperorder o, trades_papertrade t WHERE o.id = %s AND t.id = %s
        """, [int(trade.bracket_order_id), trade.pk])
        assert cursor.fetchone() == (False,)  # written before the noted read, yet unseen by it
    assert sync.paper_look(market.moment).owners & set(steady) == {trade.owner_id}
    market.advance(minutes=1)
    sync.sync_orders(market=market, at=market.moment)
    after = _trades([trade.owner_id], TradeStatus.OPEN)[0]
    assert after.pk == trade.pk and after.bracket_order_id != trade.bracket_order_id  # protected again


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_from_another_cluster_counts_as_never_seen(market):
    """A dump restored into a new cluster brings snapshots whose transaction ids run ahead of the
    new cluster's: the changes made there would all look older than them."""
    owners = _book(3, market)
    tasks.sync_orders.apply().get()
    look = sync.paper_look(market.moment)
    steady = sorted(look.held - look.owners)
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("UPDATE trades_papertrade SET orders_seen_snapshot = '9000000000:9000000000:' "
                       "WHERE owner_id = %s", [steady[0]])
    assert sync.paper_look(market.moment).owners == look.owners | {steady[0]}
    assert owners


@pytest.mark.django_db(transaction=True)
def test_a_real_brokers_trades_are_read_every_cycle_and_never_noted(trader, tradier, market):
    """The watermark is the local paper broker's alone: a Tradier account is read from the broker
    every cycle, so noting its trades would only rewrite their rows every minute for nothing."""
    held = open_sandbox_call(trader, market)
    paper_owners = _book(2, market)
    for _ in range(2):
        sync.sync_orders(market=market, at=market.moment)
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT id, orders_seen_version FROM trades_papertrade WHERE owner_id = ANY(%s)",
                       [[held.owner_id, *paper_owners]])
        noted = dict(cursor.fetchall())
    assert noted.pop(held.pk) is None
    assert noted and all(version is not None for version in noted.values())


@pytest.mark.django_db(transaction=True)
def test_a_trade_locked_by_a_request_is_left_unnoted_rather_than_waited_for(market):
    """The note passes over a row another transaction holds: it never waits for a trader's
    request; the trade is only looked at again next cycle."""
    owners = _book(3, market)
    look = sync.paper_look(market.moment)
    trades = _trades(owners, TradeStatus.OPEN)
    busy, free = trades[0], trades[1]
    locked, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic(), tenancy.system_context():
            PaperTrade.objects.select_for_update().get(pk=busy.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        sync.note_looked(look, {busy.pk: busy.version, free.pk: free.version})
    finally:
        release.set()
        holder.join()
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute("SELECT id, orders_seen_version FROM trades_papertrade WHERE id = ANY(%s)",
                       [[busy.pk, free.pk]])
        assert dict(cursor.fetchall()) == {busy.pk: None, free.pk: free.version}

def _restore_reset_sql() -> str:
    """The reset that docs/operations.md gives for after a restore into another cluster."""
    text = (Path(django_settings.BASE_DIR) / "docs" / "operations.md").read_text()
    return textwrap.dedent(re.search(r"<<'SQL'\n(.*?)\n *SQL\n", text, re.DOTALL).group(1))


@pytest.mark.django_db(transaction=True)
def test_order_stamps_from_another_cluster_are_read_every_cycle_until_the_documented_reset(market):
    """A restored dump brings `changed_xid` stamps ahead of the new cluster's counter: no snapshot
    there sees them, so the account is read every cycle (the pre-filter silently off) until the
    runbook's reset, after which it is read once and then passed over again."""
    _book(3, market)
    tasks.sync_orders.apply().get()
    look = sync.paper_look(market.moment)
    restored = sorted(look.held - look.owners)[0]
    with as_schema_owner() as owner, owner.cursor() as cursor:
        cursor.execute(f"""
            BEGIN;
            SELECT set_config('app.system', 'on', true);
            ALTER TABLE brokers_paperorder DISABLE TRIGGER paperorder_changed_xid;
            UPDATE brokers_paperorder SET changed_xid = '9000000000' WHERE owner_id = {int(restored)};
            ALTER TABLE brokers_paperorder ENABLE TRIGGER paperorder_changed_xid;
            COMMIT;
        """)
    for _ in range(2):
        assert restored in sync.paper_look(market.moment).owners
        market.advance(minutes=1)
        tasks.sync_orders.apply().get()
    with as_schema_owner() as owner, owner.cursor() as cursor:
        cursor.execute(_restore_reset_sql())
    assert restored in sync.paper_look(market.moment).owners  # never looked at: once
    market.advance(minutes=1)
    tasks.sync_orders.apply().get()
    assert restored not in sync.paper_look(market.moment).owners
