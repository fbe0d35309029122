"""Order sync and the orphan guard: what the brokers say of our orders becomes the trades' state.

Once per cycle, for every broker account that has active trades, recently finished trades or
working local-paper orders, the account's order list is read in ONE call (`get_orders()`);
only an id the list does not show (Tradier lists today's orders only) is read on its own with
`get_order(id)`. Broker calls therefore grow with accounts, not trades, and reads of the
database are a constant number of queries per cycle; writes happen only for trades whose state
changed, each through the trades app's one gate (`trade_transition` and the services built on it).

What is read. A real broker's (Tradier) accounts: every one, every cycle, as above (their orders
change at the broker, unseen by us). Local-paper accounts: their orders are our own rows, so a
set-based pre-filter (`paper_look`, one query) first picks the accounts in which the sync could
decide anything now, and only those are read, each whole (every active and recently finished
trade, every working order, the orders the trades name by id or by tag: `_paper_books`) and
decided exactly as without the pre-filter: accounts with a trade never looked at, changed since
(its `version`), in a state the sync acts on by the clock (PENDING, CLOSING, unprotected, a part
sale, attention, over-sold), or with a paper order changed by a transaction the last look's
database snapshot did not see (`changed_xid`); and, as a safety net, every account at least every
`ORDER_SYNC_FULL_LOOK_SECONDS`. After the cycle the trades of the accounts looked at in full are
noted as seen (`note_looked`: the snapshot, the time, the version read). In a steady book (open
trades whose brackets rest) a cycle reads almost nothing; `ORDER_SYNC_PREFILTER=false` reads
every account every cycle, as before.

Decisions per trade, from the orders the broker reports:
- PENDING: the entry's fill (or cancel, refusal, expiry) → `trade_entry_update`; an entry placed
  with an unknown outcome is found by its tag `to-<id>-entry` and adopted. A multi-leg trade's
  entry is one multileg order, its fill written leg by leg (`spread_entry_update`); it has no
  bracket at the broker, so nothing below applies to it.
- OPEN without a bracket (it could not be attached after the fill, or was lost): the trades
  app adopts the one listed under its tag or places one, with backoff (`bracket_protect`).
- OPEN / CLOSING: an exit leg that filled → CLOSED with TP_HIT or SL_HIT at the broker's fill
  price and time (`trade_exit_filled`); a CLOSING trade's sell that ended → `close_confirm`
  (CLOSED/MANUAL_CLOSE, or OPEN again when it ended unfilled); a CLOSING trade with no sell at
  the broker at all, that no close request is at work on → `close_resume` finishes the close.
  Every one of these decisions is a `trades.services` function: the sync reads, hands facts
  over. A recorded bracket that ended unfilled (cancelled by hand, or by an adjust or a close
  that could not record what followed) leaves the position bare: the trades app stores any
  partial fills of its legs, forgets it and marks the trade UNPROTECTED (`bracket_lost`), and
  `bracket_protect` adopts or places a bracket at once (until the contract's expiry, when
  settlement takes over). A CLOSING trade's resume waits while a close request may be in
  flight (`close_in_flight_since`) and while a close holds the trade's lease (`close_in_progress`).
- Multi-leg trades (no bracket at the broker): a CLOSING one's closing multileg order, found by
  `close_order_id` or its tag `to-<id>-close`, is confirmed the same way (`close_confirm` reads
  its legs' fills); an OPEN one is the net watch's (`spread_exits_watch`), not the sync's.
- Over-sells: one read of each real broker account's positions; a contract of ours held short
  flags the newest trade of it (`trade_oversold_flag`: marked, shown in red, the trader told).
- Orphans (decided by the trades app's `orphans_guard`): a working order tagged for one of our
  trades that is finished (closed, cancelled, rejected) is cancelled, and the cancel written to
  that trade's log; the orders of trades finished in an earlier session, which Tradier no
  longer lists, are read by id, a few a cycle (`finished_orders_to_read`). A working order
  tagged for a trade the account does not hold is recorded as an ATTENTION_NEEDED event and
  logged once; a second working order for an active trade (one it does not know) marks that
  trade for attention.

Broker trouble met while reading an account (an outage, a refused token) is recorded for the
trader's page; an account whose token was refused is not read again until the token changes
(`broker_trouble_record`, `broker_polling_paused`).

`trigger_precision` keeps its meaning "fill minus trigger price, per share" (the slippage of a
stop in a gap, the improvement of a take-profit); where a close came from (a broker fill, an
expiry) is the event's `source` in its payload.

`reconcile` (ops) judges with the very same pieces, so they are public: `SyncAccount`,
`OrderBook`, `read_book`, `at_broker`, `known_order_ids`, `exit_legs`, `filled_exit`,
`sync_trade`, `is_adopted` and `guard_orphans`; it reads the accounts of the user asked about in
full (no pre-filter).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Q

from brokers.base import BrokerAuthError, BrokerError, BrokerRateLimited, Order, OrderPurpose, OrderStatus
from brokers.market import Market, default_market
from brokers.models import BrokerMode, PaperOrder
from brokers.paper import orders_of as paper_orders_of
from brokers.paper import owners_with_working_orders as paper_owners_with_working_orders
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from tradeoptions.rows import instances_of
from trades.models import ACTIVE_STATUSES, AccountSettings, Actor, EventKind, PaperTrade, StrategyType, TradeStatus
from trades.services import (
    BrokerReauthenticate,
    InvalidTransition,
    TradeError,
    VersionConflict,
    bracket_ids,
    bracket_lost,
    bracket_protect,
    broker_auth_failure_announce,
    broker_of,
    broker_polling_paused,
    broker_trouble_clear,
    broker_trouble_record,
    broker_troubles_of,
    close_confirm,
    close_in_progress,
    close_resume,
    closes_in_progress,
    filled_exit,
    finished_order_seen,
    finished_orders_to_read,
    order_is_adopted,
    orphans_guard,
    part_sale_resume,
    split_legs,
    spread_entry_update,
    trade_entry_update,
    trade_exit_filled,
    trade_order_ids,
    trade_order_tag,
    trade_oversold_clear,
    trade_oversold_flag,
    trade_transition,
)

from .sharding import Shard

logger = logging.getLogger(__name__)

SYSTEM = {"actor": Actor.SYSTEM, "actor_label": "sync_orders"}
# Finished trades whose orders may still be working at the broker: looked at for this long.
RECENTLY_FINISHED = timedelta(days=3)
# A CLOSING trade with no sell at the broker is finished by the sync once its close request moved it
# to CLOSING this long ago (`close_in_flight_since`), or at once when the request has ended: a
# request still at work is normally done by then. (Marks do not count: they leave the trade's
# `updated_at` alone.)
CLOSE_IN_FLIGHT = timedelta(minutes=2)


@dataclass
class SyncReport:
    accounts: int = 0
    broker_calls: int = 0
    changed: int = 0
    orphans: int = 0
    oversold: int = 0
    failed_accounts: list[int] = field(default_factory=list)
    paused_accounts: list[int] = field(default_factory=list)  # not read: their token was refused


@dataclass
class SyncAccount:
    owner_id: int
    mode: str
    trades: list[PaperTrade] = field(default_factory=list)
    finished: list[PaperTrade] = field(default_factory=list)  # recently: their exits may still work


class OrderBook:
    """One account's orders as the broker listed them, by id (heads and legs) and by tag."""

    def __init__(self, orders: list[Order]) -> None:
        self.orders = orders
        self.by_id: dict[str, Order] = {}
        self.by_tag: dict[str, Order] = {}
        for order in orders:
            self.add(order)

    def add(self, order: Order) -> None:
        self.by_id[order.id] = order
        for leg in order.legs:
            self.by_id.setdefault(leg.id, leg)
        # The newest live or filled order of a tag, as `find_order_by_tag` would answer.
        if order.tag and order.status not in (OrderStatus.REJECTED, OrderStatus.CANCELED):
            known = self.by_tag.get(order.tag)
            if known is None or _newer(order, known):
                self.by_tag[order.tag] = order

    def find(self, order_id: str) -> Order | None:
        return self.by_id.get(order_id) if order_id else None


def _newer(order: Order, than: Order) -> bool:
    if order.id.isdigit() and than.id.isdigit():
        return int(order.id) > int(than.id)
    never = datetime.min.replace(tzinfo=UTC)
    return (order.created_at or never) > (than.created_at or never)


def sync_orders(*, market: Market | None = None, at: datetime | None = None, shard: Shard | None = None) -> SyncReport:
    """Bring every active trade in line with its broker's orders, and deal with orphans. With a
    `shard`, only the accounts whose owner id falls in it (`Shard`): N shard tasks together sync
    every account once, each exactly as the unsharded sync would. Local-paper accounts of which
    nothing could have changed since the last look are skipped (`paper_look`, the pre-filter)."""
    market = market or default_market()
    at = at or market.now()
    report = SyncReport()
    look = paper_look(at, shard)
    accounts = _accounts_to_read(at, shard, look)
    settings_of = _settings_of({account.owner_id for account in accounts})
    paper_books = _paper_books([account for account in accounts if account.mode == BrokerMode.LOCAL_PAPER])
    troubles = broker_troubles_of(accounts=[(account.owner_id, account.mode) for account in accounts])
    # One read of every trade's order lease, not one a trade; a lease taken after it is seen by
    # the check each write makes right before it goes (`_acting_on`).
    leased = closes_in_progress(trade.pk for account in accounts for trade in account.trades)
    seen: dict[int, int] = {}  # the paper trades looked at in full: their version as read
    try:
        for account in accounts:
            report.accounts += 1
            # Only the local-paper trades carry a watermark: a real broker's are read every cycle.
            versions = ({trade.pk: trade.version for trade in account.trades + account.finished}
                        if account.mode == BrokerMode.LOCAL_PAPER else {})
            unsettled: set[int] = set()
            if _sync_account(account, settings_of, troubles, paper_books, market, at, leased, report, unsettled):
                seen.update((pk, version) for pk, version in versions.items() if pk not in unsettled)
    finally:  # what was looked at stays noted even when the cycle runs out of time
        if look is not None:
            _note_quietly(look, seen)
    return report


def _note_quietly(look: PaperLook, seen: dict[int, int]) -> None:
    """The note only spares the next cycle reads: if it fails, those accounts are simply read
    again, and the cycle's own error (a time limit) must not be replaced by the note's."""
    try:
        note_looked(look, seen)
    except Exception:
        logger.exception("sync: the trades looked at could not be noted; they are read again next cycle")


def _sync_account(account: SyncAccount, settings_of, troubles, paper_books, market: Market, at: datetime,
                  leased: set[int], report: SyncReport, unsettled: set[int]) -> bool:
    """One account's sync. True when it was looked at in full (read, every trade but those in
    `unsettled` decided, orphans guarded), so that the pre-filter may note it as seen."""
    settings = settings_of.get(account.owner_id) or AccountSettings(owner_id=account.owner_id)
    trouble = troubles.get((account.owner_id, account.mode))
    if broker_polling_paused(account=settings, mode=account.mode, trouble=trouble):  # until a token is saved
        report.paused_accounts.append(account.owner_id)
        return False
    try:
        broker = broker_of(settings, mode=account.mode, market=market)
        book = paper_books.get(account.owner_id) if account.mode == BrokerMode.LOCAL_PAPER else None
        book = book or read_book(account, broker, report)
    except (BrokerError, TradeError) as error:
        logger.warning("sync: the %s account of user %s could not be read: %s", account.mode, account.owner_id,
                       error)
        report.failed_accounts.append(account.owner_id)
        broker_trouble_record(account=settings, mode=account.mode, error=error, at=at)  # for the trader's page
        if isinstance(error, BrokerAuthError | BrokerReauthenticate):
            _tell_the_trader(account, error)
            _note_token(account, refused=True)
        return False
    if trouble is not None:
        broker_trouble_clear(owner_id=account.owner_id, mode=account.mode, trouble=trouble)
    _note_token(account, refused=False)
    for trade in account.trades:
        try:  # each write below runs as the trade's owner; deciding needs no database
            with about_trade(trade.pk):
                report.changed += sync_trade(trade, book, broker, market, at, leased=leased, unsettled=unsettled)
        except SoftTimeLimitExceeded:  # the cycle is out of time: stop here, the next one carries on
            raise
        except (VersionConflict, InvalidTransition) as error:  # the trader moved first: next cycle sees it
            logger.info("sync: trade %s changed meanwhile (%s); it is looked at again next cycle", trade.pk, error)
            unsettled.add(trade.pk)
        except Exception:  # one broken trade must not stop the others
            logger.exception("sync: trade %s could not be synced", trade.pk)
            unsettled.add(trade.pk)
    guarded = True
    try:
        report.orphans += guard_orphans(account, book, broker)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # the orphans of one account must not stop the others' sync
        logger.exception("orphan guard: the %s account of user %s failed", account.mode, account.owner_id)
        guarded = False
    if account.mode != BrokerMode.LOCAL_PAPER:
        try:
            report.oversold += flag_oversold(account, broker, report)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # one account's positions must not stop the others' sync
            logger.exception("sync: the positions of the %s account of user %s failed", account.mode,
                             account.owner_id)
    return guarded


def flag_oversold(account: SyncAccount, broker, report: SyncReport) -> int:
    """One read of the account's positions per cycle (never one per trade): a contract of ours
    held short flags the newest trade of that contract, active or recently finished, through
    the trades app (which tells the trader once); a flagged trade whose contract is no longer
    held short is cleared. The local paper broker is not read: it
    refuses at the fill any sale beyond what is held, so it can never be short."""
    report.broker_calls += 1
    try:
        positions = at_broker(account, broker.get_positions)
    except BrokerError as error:
        logger.warning("sync: the positions of user %s could not be read: %s", account.owner_id, error)
        return 0
    short = {position.symbol: int(-position.quantity) for position in positions if position.quantity < 0}
    # A spread's short legs are meant (its legs are sold to open): only single options are oversold.
    singles = [trade for trade in account.trades + account.finished if trade.strategy_type == StrategyType.SINGLE]
    newest = {trade.option_symbol: trade for trade in sorted(singles, key=lambda t: t.pk)
              if trade.option_symbol in short}
    flagged = 0
    for symbol, trade in newest.items():
        with tenancy.acting_as(trade.owner_id):
            if trade_oversold_flag(trade=trade, short_qty=short[symbol], **SYSTEM) is not None:
                logger.error("sync: the account of user %s holds %s %s short (trade %s)", account.owner_id,
                             short[symbol], symbol, trade.pk)
                flagged += 1
    for trade in singles:  # bought back since: the flag goes
        if trade.oversold_qty and trade.option_symbol not in short:
            with tenancy.acting_as(trade.owner_id):
                trade_oversold_clear(trade=trade, **SYSTEM)
    return flagged


def _tell_the_trader(account: SyncAccount, error: Exception) -> None:
    """Only the trader can fix a refused token: their webhook hears of it (at most hourly)."""
    try:
        broker_auth_failure_announce(owner_id=account.owner_id, broker_mode=account.mode, message=str(error))
    except Exception:  # telling must never stop the cycle
        logger.exception("sync: the broker auth failure of user %s could not be announced", account.owner_id)


TOKEN_REFUSED = ("The broker refused this account's token, so this trade's orders cannot be followed: "
                 "enter a new token in your settings.")


def _note_token(account: SyncAccount, *, refused: bool) -> None:
    """A refused token is the trader's to fix, and until then the monitor is blind to the
    account's orders: each active trade says so (its attention reason and one event), once, not
    every cycle; and stops saying so, once, when the broker accepts the token again. A trade that
    already needs attention for another reason keeps that reason."""
    for position, trade in enumerate(account.trades):
        if trade.attention_reason != (TOKEN_REFUSED if not refused else ""):
            continue
        try:
            with tenancy.acting_as(trade.owner_id):
                account.trades[position] = trade_transition(
                    trade_id=trade.pk, to=trade.status, kind=EventKind.ATTENTION_NEEDED if refused
                    else EventKind.STATE_CHANGE, expected_version=trade.version,
                    changes={"attention_reason": TOKEN_REFUSED if refused else ""},
                    payload={"broker_token": "refused" if refused else "accepted again"}, **SYSTEM)
        except (VersionConflict, InvalidTransition) as error:  # the trader moved first: next cycle
            logger.info("sync: trade %s changed meanwhile (%s)", trade.pk, error)


def _accounts_to_read(at: datetime, shard: Shard | None = None, look: PaperLook | None = None) -> list[SyncAccount]:
    """Accounts with active trades, with trades finished recently (their exits may still work),
    or with working local-paper orders (only the shard's, given one); two queries across tenants,
    so in the system context: the order sync is a system job over every user's trades, which no
    request can reach. The trades are read as one JSON document (`instances_of`): the same
    instances, without the driver's per-value loaders, which were most of this read's time.

    With the pre-filter's `look`, a local-paper account is read only if `look` says so; one it
    passes over is left out whole (its trades and its working orders): half an account would
    make the orphan guard take the orders of the trades left out for strays."""
    accounts: dict[tuple[int, str], SyncAccount] = {}
    with tenancy.system_context():
        recent = Q(status__in=[TradeStatus.CLOSED, TradeStatus.CANCELED, TradeStatus.REJECTED],
                   updated_at__gte=_recent_since(at))
        trades = PaperTrade.objects.filter(Q(status__in=ACTIVE_STATUSES) | recent)
        if look is not None:
            paper = Q(broker_mode=BrokerMode.LOCAL_PAPER)
            trades = (trades.filter(~paper | Q(owner_id__in=sorted(look.owners))) if look.owners
                      else trades.exclude(paper))
        for trade in instances_of(shard.of(trades) if shard is not None else trades, order_by="id"):
            account = accounts.setdefault((trade.owner_id, trade.broker_mode),
                                          SyncAccount(trade.owner_id, trade.broker_mode))
            (account.trades if trade.status in ACTIVE_STATUSES else account.finished).append(trade)
        for owner_id in paper_owners_with_working_orders():
            if shard and not shard.holds(owner_id):
                continue
            if look is not None and owner_id in look.held and owner_id not in look.owners:
                continue
            accounts.setdefault((owner_id, BrokerMode.LOCAL_PAPER), SyncAccount(owner_id, BrokerMode.LOCAL_PAPER))
    return list(accounts.values())


def _recent_since(at: datetime) -> datetime:
    """Trades finished since then are still read: their exits may still work."""
    return min(at, _now()) - RECENTLY_FINISHED


@dataclass
class PaperLook:
    """The pre-filter's answer for one cycle (one shard's): which local-paper accounts to read.

    `owners`: the accounts to look at; `held`: every local-paper account with trades in the
    sync's scope (active or recently finished), looked at or not; `snapshot` and `at`: the
    database snapshot the pre-filter read with and its clock then, which the trades looked at
    are noted as seen with (`note_looked`)."""

    snapshot: str
    at: datetime
    owners: set[int]
    held: set[int]


def paper_look(at: datetime, shard: Shard | None = None) -> PaperLook | None:
    """The set-based pre-filter of the local-paper accounts: which could the sync decide anything
    in now? None when it is off (`ORDER_SYNC_PREFILTER`), or when the sync runs inside a caller's
    transaction (the workers' never does): every account is read, none noted.

    The local paper broker's orders are our own rows, so "did anything the sync reads change since
    it last looked" is a query, not a call to a broker. Each trade carries a watermark
    (`orders_seen_snapshot`, `orders_seen_at`, `orders_seen_version`, written by `note_looked` for
    the trades looked at in full); an account is looked at, whole and exactly as without the
    pre-filter, when one of its trades in scope (active, or finished within RECENTLY_FINISHED)

    - was never looked at (no watermark), or its row changed since (`version`: every transition
      bumps it; a trade that finished since is here too, so the orphan guard sees its orders);
    - is in a state whose sync depends on the clock or on state outside the orders: not OPEN
      (PENDING: its entry; CLOSING: a resume waits `CLOSE_IN_FLIGHT`), OPEN single without a
      recorded bracket (`bracket_protect` retries with backoff), a part sale under way, an
      attention reason (a refused token is lifted by `_note_token`), an over-sell flag;
    - was last looked at longer ago than `ORDER_SYNC_FULL_LOOK_SECONDS` (the safety net: nothing
      missed can last longer; the orphan guard's once-a-day notes are repeated by it; each account
      is due after between half of it and all of it, by its id, so that after the first cycle, which
      notes every account at once, their safety looks fall in different cycles), or with a
      snapshot ahead of the database's own (taken in another cluster: a dump restored into a
      new one counts transactions from lower numbers, so its changes would look old);
    - or its account has a paper order (any: by id, by tag, a leg, a stray) changed by a
      transaction the snapshot of that look did not see (`changed_xid`, stamped by the database
      on every insert and change, brokers migration 0011; `pg_visible_in_snapshot`). A change
      committed after the look's read, however early it was written, is one of those: no clock,
      no margin, no race between a write's time and its commit.

    An OPEN single trade with its bracket recorded and an OPEN multi-leg trade decide only from
    their orders and their row (and the expiry cutoff, which only ever turns a decision into
    "do nothing"), so while neither changed, a look would decide nothing. Accounts with working
    orders but no trades in scope (only the orphan guard has work there) are always read.

    One query in the system context: the trades of the shard grouped by account and watermark
    (one a look, so mostly one an account), then one index probe (`paperorder_owner_changed_idx`)
    each for an order changed since."""
    if not django_settings.ORDER_SYNC_PREFILTER or connection.in_atomic_block:
        # Inside a caller's transaction the snapshot would count that transaction's own later
        # writes (the sync's too) as seen: a snapshot never lists its own transaction as running.
        return None
    shards = (shard.index, shard.count) if shard is not None else (0, 1)
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute(_LOOK_SQL, {
            "mode": BrokerMode.LOCAL_PAPER.value, "active": [status.value for status in ACTIVE_STATUSES],
            "finished": [TradeStatus.CLOSED.value, TradeStatus.CANCELED.value, TradeStatus.REJECTED.value],
            "recent": _recent_since(at), "open": TradeStatus.OPEN.value, "single": StrategyType.SINGLE.value,
            "full_look": django_settings.ORDER_SYNC_FULL_LOOK_SECONDS, "index": shards[0], "count": shards[1],
        })
        rows = cursor.fetchall()
        if rows:
            snapshot, clock = rows[0][2:]
        else:
            cursor.execute("SELECT pg_current_snapshot()::text, clock_timestamp()")
            snapshot, clock = cursor.fetchone()
    return PaperLook(snapshot=snapshot, at=clock, owners={owner for owner, look, *_ in rows if look},
                     held={owner for owner, *_ in rows})


_LOOK_SQL = f"""
WITH now AS MATERIALIZED (SELECT pg_current_snapshot()::text AS snapshot, clock_timestamp() AS clock),
scope AS (
    SELECT t.owner_id, t.orders_seen_snapshot::text AS seen, bool_or(
               t.orders_seen_snapshot IS NULL OR t.orders_seen_at IS NULL
               OR t.orders_seen_version IS DISTINCT FROM t.version
               -- the safety net, spread by account over [N/2, N): not every account in one cycle
               OR t.orders_seen_at < (SELECT clock FROM now)
                                     - make_interval(secs => %(full_look)s * (16 + t.owner_id %% 16) / 32.0)
               -- a snapshot ahead of this database's: taken in another cluster (a restored dump)
               OR pg_snapshot_xmax(t.orders_seen_snapshot) > pg_snapshot_xmax((SELECT snapshot FROM now)::pg_snapshot)
               OR (t.status = ANY(%(active)s) AND (
                   t.status <> %(open)s OR t.part_pending_qty > 0 OR t.attention_reason <> '' OR t.oversold_qty > 0
                   OR (t.strategy_type = %(single)s
                       AND t.bracket_order_id = '' AND t.sl_order_id = '' AND t.tp_order_id = '')))
           ) AS look
      FROM {PaperTrade._meta.db_table} t
     WHERE t.broker_mode = %(mode)s
       AND (t.status = ANY(%(active)s) OR (t.status = ANY(%(finished)s) AND t.updated_at >= %(recent)s))
       AND t.owner_id %% %(count)s = %(index)s
     GROUP BY t.owner_id, t.orders_seen_snapshot::text
)
SELECT owner_id,
       bool_or(look OR EXISTS (
           SELECT 1 FROM {PaperOrder._meta.db_table} o
            WHERE o.owner_id = scope.owner_id AND o.changed_xid >= pg_snapshot_xmin(seen::pg_snapshot)
              AND NOT pg_visible_in_snapshot(o.changed_xid, seen::pg_snapshot))),
       (SELECT snapshot FROM now), (SELECT clock FROM now)
  FROM scope
 GROUP BY owner_id
"""


def note_looked(look: PaperLook, versions: dict[int, int]) -> None:
    """Note the local-paper trades looked at in full this cycle as seen: their account's orders as
    the pre-filter's snapshot saw them (the reads that followed saw at least that much), each
    trade at the `version` it was read with. One UPDATE for all of them; it takes their row locks
    in id order and passes over a row another transaction holds (SKIP LOCKED): it never waits
    for, nor deadlocks with, a request writing several trades, and a trade left unnoted is only
    looked at again. It touches neither `version` nor `updated_at`, so nobody else sees a change.
    A trade the sync changed, or that changed meanwhile, keeps a version other than the one
    noted, and an order the sync or anyone else changed after that snapshot is not visible in
    it: either way the account is looked at again next cycle, as a full sync would."""
    if not versions:
        return
    ids = sorted(versions)
    with tenancy.system_context(), connection.cursor() as cursor:
        cursor.execute(f"""
            WITH locked AS (SELECT id FROM {PaperTrade._meta.db_table} WHERE id = ANY(%s::bigint[])
                             ORDER BY id FOR UPDATE SKIP LOCKED)
            UPDATE {PaperTrade._meta.db_table} t
               SET orders_seen_snapshot = %s::pg_snapshot, orders_seen_at = %s, orders_seen_version = s.version
              FROM unnest(%s::bigint[], %s::integer[]) AS s(id, version), locked
             WHERE t.id = s.id AND locked.id = s.id
        """, [ids, look.snapshot, look.at, ids, [versions[pk] for pk in ids]])


def _now() -> datetime:
    from django.utils import timezone

    return timezone.now()  # `updated_at` and `close_in_flight_since` are written with the wall clock


def _settings_of(owner_ids: set[int]) -> dict[int, AccountSettings]:
    with tenancy.system_context():
        return {row.owner_id: row for row in AccountSettings.objects.filter(owner_id__in=owner_ids)}


def at_broker(account: SyncAccount, call):
    """Local-paper orders are rows under row-level security: read them as their owner. A real
    broker is called outside any transaction."""
    if account.mode == BrokerMode.LOCAL_PAPER:
        with tenancy.acting_as(account.owner_id):
            return call()
    return call()


def _paper_books(accounts: list[SyncAccount]) -> dict[int, OrderBook]:
    """Every local-paper account's orders that matter now, in two queries for all accounts.

    The local paper broker's orders are our own rows, so instead of one `get_orders()` per
    account (two queries each, and every order the account ever had) the cycle reads, across
    tenants, the working orders and those its active trades refer to by id or by tag, as the
    broker's `Order` objects exactly as `LocalPaperBroker.get_orders` shows them (`orders_of`).
    """
    if not accounts:
        return {}
    owners = [account.owner_id for account in accounts]
    ids = [int(i) for account in accounts for trade in account.trades for i in known_order_ids(trade) if i.isdigit()]
    tags = [trade_order_tag(trade, purpose) for account in accounts for trade in account.trades
            for purpose in (OrderPurpose.ENTRY, OrderPurpose.STOP_LOSS, OrderPurpose.CLOSE, OrderPurpose.PART)]
    with tenancy.system_context():
        orders = paper_orders_of(owners, ids=ids, tags=tags)
    return {owner: OrderBook(listed) for owner, listed in orders.items()}


def read_book(account: SyncAccount, broker, report: SyncReport) -> OrderBook:
    book = OrderBook(at_broker(account, broker.get_orders))
    report.broker_calls += 1
    for trade in account.trades:
        for order_id in known_order_ids(trade):
            if book.find(order_id) is None:  # older than the list shows (Tradier: before today)
                try:
                    book.add(at_broker(account, lambda order_id=order_id: broker.get_order(order_id)))
                except BrokerError as error:
                    logger.warning("sync: order %s of trade %s could not be read: %s", order_id, trade.pk, error)
                report.broker_calls += 1
    _read_finished(account, broker, book, report)
    return book


def _read_finished(account: SyncAccount, broker, book: OrderBook, report: SyncReport) -> None:
    """Orders of recently finished trades that the list did not show (a GTC exit of an earlier
    day), read by id as the trades app asks, so the orphan guard sees any still working."""
    for order_id in finished_orders_to_read(trades=account.finished, listed=book.by_id):
        try:
            order = at_broker(account, lambda order_id=order_id: broker.get_order(order_id))
        except BrokerRateLimited:  # the budget is spent: the rest waits for the next cycle
            break
        except BrokerError as error:
            logger.warning("sync: order %s of a finished trade could not be read: %s", order_id, error)
            report.broker_calls += 1
            continue
        report.broker_calls += 1
        finished_order_seen(owner_id=account.owner_id, mode=account.mode, order=order)
        book.add(order)
        book.orders.append(order)


def known_order_ids(trade: PaperTrade) -> list[str]:
    return trade_order_ids(trade)


def sync_trade(trade: PaperTrade, book: OrderBook, broker, market: Market, at: datetime, *,
               leased: set[int] | None = None, unsettled: set[int] | None = None) -> int:
    """Apply what the broker says to one trade (in its owner's context). Returns 1 if it changed.
    A trade whose orders a request is changing at the broker (a close, a withdrawn or re-priced
    order: the trade's order lease) is left to that request, which records what it meets (a fill
    included); the next cycle looks again.

    `leased` is the cycle's one read of the leases (`closes_in_progress`), else the trade's lease is
    asked now. Either way every write below asks again right before it goes (`_acting_on`), so a
    lease taken since is respected at least as late as a check before each trade would.

    A trade left to a request that way is added to `unsettled` (given one): it was not decided,
    so the pre-filter must not note it as seen."""
    if trade.pk in leased if leased is not None else close_in_progress(trade_id=trade.pk):
        if unsettled is not None:
            unsettled.add(trade.pk)
        return 0
    entry_changed = 0
    try:
        if trade.strategy_type != StrategyType.SINGLE:  # one multileg order, no bracket at the broker
            if trade.status == TradeStatus.PENDING:
                return _sync_spread_entry(trade, book)
            return _sync_spread(trade, book, broker)
        if trade.status == TradeStatus.PENDING:
            entry_changed, trade = _sync_entry(trade, book, broker)
            if trade.status != TradeStatus.OPEN:
                return entry_changed
            return max(entry_changed, _sync_held(trade, book, broker, market, at))
        return _sync_held(trade, book, broker, market, at)
    except _LeaseTaken:
        logger.info("sync: a request took the order lease of trade %s meanwhile; it is left to it", trade.pk)
        if unsettled is not None:
            unsettled.add(trade.pk)
        return entry_changed


class _LeaseTaken(Exception):
    """A request took the trade's order lease after the sync last looked: the trade is its now."""


@contextmanager
def _acting_on(trade: PaperTrade):
    """Every write (and broker call) the sync makes for a trade, as its owner, once the trade's
    order lease is asked right before it: free, or `_LeaseTaken` and nothing is done."""
    if close_in_progress(trade_id=trade.pk):
        raise _LeaseTaken
    with tenancy.acting_as(trade.owner_id):
        yield


def _sync_entry(trade: PaperTrade, book: OrderBook, broker) -> tuple[int, PaperTrade]:
    order = book.find(trade.entry_order_id) or book.by_tag.get(trade_order_tag(trade, OrderPurpose.ENTRY))
    if order is None:
        return 0, trade
    changes = {}
    if not trade.entry_order_id:  # placed with an unknown outcome, found again by its tag
        changes["entry_order_id"] = order.id
        if order.legs:
            changes.update(bracket_ids(order))
    entry = (split_legs(order)[0] or order) if order.legs else order
    filled = entry.fill.quantity if entry.fill else entry.filled_quantity
    if not changes and not entry.status.is_final and filled == trade.filled_qty:
        return 0, trade
    with _acting_on(trade):
        trade = trade_entry_update(trade_id=trade.pk, entry=entry, changes=changes, **SYSTEM)
    return 1, trade  # a filled entry without a bracket gets one from `_sync_held`, in this cycle


def _sync_spread_entry(trade: PaperTrade, book: OrderBook) -> int:
    """A multi-leg trade's entry: its one multileg order (by id, or by its tag when its placement's
    outcome was unknown), whose fill writes every leg's (`spread_entry_update`)."""
    order = book.find(trade.entry_order_id) or book.by_tag.get(trade_order_tag(trade, OrderPurpose.ENTRY))
    if order is None:
        return 0
    changes = {} if trade.entry_order_id else {"entry_order_id": order.id}
    filled = order.fill.quantity if order.fill else order.filled_quantity
    if not changes and not order.status.is_final and filled == trade.filled_qty:
        return 0
    with _acting_on(trade):
        spread_entry_update(trade_id=trade.pk, entry=order, changes=changes, **SYSTEM)
    return 1


def exit_legs(trade: PaperTrade, book: OrderBook) -> tuple[Order | None, Order | None, Order | None]:
    """(bracket head, SL leg, TP leg) as the broker reports them."""
    if trade.bracket_order_id:
        head = book.find(trade.bracket_order_id)
        if head is None:
            return None, None, None
        _, sl, tp = split_legs(head)
        return head, sl, tp
    sl, tp = book.find(trade.sl_order_id), book.find(trade.tp_order_id)
    return None, sl, tp


def _sync_held(trade: PaperTrade, book: OrderBook, broker, market: Market, at: datetime) -> int:
    if trade.strategy_type != StrategyType.SINGLE:
        return _sync_spread(trade, book, broker)
    if trade.status == TradeStatus.OPEN and trade.part_pending_qty:  # a part sale's steps come first
        return _sync_part_sale(trade, book, broker, at)
    head, sl, tp = exit_legs(trade, book)
    if exit_fill := filled_exit(sl, tp):
        with _acting_on(trade):
            trade_exit_filled(trade=trade, exit_fill=exit_fill, close_order=book.find(trade.close_order_id),
                              broker=broker, **SYSTEM)
        return 1
    if trade.status == TradeStatus.CLOSING:
        sell = book.find(trade.close_order_id) or book.by_tag.get(trade_order_tag(trade, OrderPurpose.CLOSE))
        if sell is None:
            return _resume_close(trade, broker)
        if not sell.status.is_final:
            return 0
        changes = {} if trade.close_order_id else {"close_order_id": sell.id}
        with _acting_on(trade):
            close_confirm(trade_id=trade.pk, sell=sell, changes=changes, **SYSTEM)
        return 1
    if not (trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id):  # unprotected
        listed = book.by_tag.get(trade_order_tag(trade, OrderPurpose.STOP_LOSS))
        with _acting_on(trade):
            protected = bracket_protect(trade=trade, broker=broker, listed=listed, at=at,
                                        trading_ends=market.expiry_cutoff(trade.expiry), **SYSTEM)
        return int(protected.version != trade.version)
    exits = [order for order in (head, sl, tp) if order is not None]
    ended = exits and all(order.status.is_final for order in exits)
    if ended and at < market.expiry_cutoff(trade.expiry):  # at expiry, settlement takes over
        logger.warning("sync: trade %s has no working bracket; it is protected again", trade.pk)
        listed = book.by_tag.get(trade_order_tag(trade, OrderPurpose.STOP_LOSS))
        with _acting_on(trade):
            trade = bracket_lost(trade=trade, orders=exits, **SYSTEM)
            if trade.status == TradeStatus.OPEN:
                bracket_protect(trade=trade, broker=broker, listed=listed, at=at,
                                trading_ends=market.expiry_cutoff(trade.expiry), **SYSTEM)
        return 1
    return 0


def _sync_spread(trade: PaperTrade, book: OrderBook, broker) -> int:
    """A multi-leg trade has no bracket at the broker (the monitor watches its net: the trades app's
    `spread_exits_watch`), so an OPEN one has nothing to sync. A CLOSING one's closing multileg
    order (by `close_order_id`, else by its tag) is handed to `close_confirm` once it ended, or
    once any of it filled; none at the broker at all → the close is finished (`close_resume`)."""
    if trade.status != TradeStatus.CLOSING:
        return 0
    order = book.find(trade.close_order_id) or book.by_tag.get(trade_order_tag(trade, OrderPurpose.CLOSE))
    if order is None:
        return _resume_close(trade, broker)
    if not order.status.is_final and trade.close_order_id:
        return 0
    with _acting_on(trade):
        after = close_confirm(trade_id=trade.pk, sell=order, changes={"close_order_id": order.id}, **SYSTEM)
    return int(after.version != trade.version)


def _sync_part_sale(trade: PaperTrade, book: OrderBook, broker, at: datetime) -> int:
    """A part sale under way (a scale-out, a partial close): the trades app confirms its sell,
    protects the rest, or finishes steps a stopped process left (`part_sale_resume`)."""
    tag = trade_order_tag(trade, OrderPurpose.PART)  # each sale numbers its own: `to-<id>-part<n>`
    found = [order for order in book.orders if order.tag == tag or (
        (order.tag or "").startswith(tag) and order.tag[len(tag):].isdigit())]  # the resume picks this sale's
    if trade.part_order_id and book.find(trade.part_order_id) is not None:
        found.append(book.find(trade.part_order_id))
    with _acting_on(trade):
        after = part_sale_resume(trade=trade, broker=broker, found=found, at=at, **SYSTEM)
    return int(after.version != trade.version)


def _resume_close(trade: PaperTrade, broker) -> int:
    """A CLOSING trade whose sell is not at the broker, by id or by tag: its close stopped between
    two steps (the process died), or its request ended waiting for the broker (a cancel not yet
    confirmed). Once no close request can still be at work on it (it ended, or moved the trade
    to CLOSING longer ago than one takes), the trades app finishes it; a close whose sell was
    placed but not recorded is found by its tag above."""
    since = trade.close_in_flight_since
    if trade.close_order_id or (since is not None and _now() - since < CLOSE_IN_FLIGHT):
        return 0
    if close_in_progress(trade_id=trade.pk):  # a slow close is still at the broker: it finishes
        return 0
    logger.warning("sync: trade %s is CLOSING without a sell at the broker; finishing its close", trade.pk)
    with _acting_on(trade):
        close_resume(trade=trade, broker=broker, **SYSTEM)
    return 1


def guard_orphans(account: SyncAccount, book: OrderBook, broker) -> int:
    """The orphan guard over one account's orders as read (the trades app decides)."""
    return orphans_guard(owner_id=account.owner_id, mode=account.mode, orders=book.orders, active=account.trades,
                         broker=broker)


def is_adopted(trade: PaperTrade, order: Order) -> bool:
    """An order this cycle may just have adopted: not a stray (the trades app decides)."""
    return order_is_adopted(trade, order)
