"""The trade lifecycle's tables. Every table here carries `owner`, the tenant key that
PostgreSQL row-level security compares with the transaction's user (trades/migrations/0002).

The model stores states and the one table of transitions between them (`ALLOWED_TRANSITIONS`);
`trades.services.trade_transition` is the only code that moves a trade along it.
"""

import json
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Greatest, NullIf
from django.db.models.lookups import Exact, GreaterThan, LessThan
from django.utils import timezone

from brokers import crypto
from brokers.models import BrokerMode
from brokers.occ import build_symbol

from .net_price import direction_sign

PRICE = {"max_digits": 12, "decimal_places": 4}  # option premium per share
MONEY = {"max_digits": 14, "decimal_places": 2}  # dollars
SCORE = {"max_digits": 7, "decimal_places": 3, "null": True, "blank": True}
GREEK = {"max_digits": 12, "decimal_places": 6, "null": True, "blank": True}
CONTRACT_MULTIPLIER = 100  # shares per option contract
MAX_COMMISSION_PER_CONTRACT = Decimal("10")  # dollars; more is a typo, not a broker


class OptionType(models.TextChoices):
    CALL = "CALL", "Call"
    PUT = "PUT", "Put"


class TradeStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (entry order working)"
    OPEN = "OPEN", "Open"
    CLOSING = "CLOSING", "Closing (exit order in flight)"
    CLOSED = "CLOSED", "Closed"
    CANCELED = "CANCELED", "Canceled (entry never filled)"
    REJECTED = "REJECTED", "Rejected by the broker"


ACTIVE_STATUSES = (TradeStatus.PENDING, TradeStatus.OPEN, TradeStatus.CLOSING)
UNFILLED_STATUSES = (TradeStatus.CANCELED, TradeStatus.REJECTED)  # final, the entry never filled
FINAL_STATUSES = (TradeStatus.CLOSED, *UNFILLED_STATUSES)

# The state machine. A state may lead to itself where a change is recorded without a new state
# (a partial entry fill, an adjusted bracket, a trade marked for attention): that still bumps the
# version and writes an event. Final states lead nowhere.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    TradeStatus.PENDING: frozenset(
        {TradeStatus.PENDING, TradeStatus.OPEN, TradeStatus.CANCELED, TradeStatus.REJECTED}
    ),
    # OPEN -> CLOSED directly: a bracket leg (SL/TP) filled, or the contract expired.
    TradeStatus.OPEN: frozenset({TradeStatus.OPEN, TradeStatus.CLOSING, TradeStatus.CLOSED}),
    # CLOSING -> OPEN: the exit order was refused or cancelled, the position is still held.
    TradeStatus.CLOSING: frozenset({TradeStatus.CLOSING, TradeStatus.OPEN, TradeStatus.CLOSED}),
    TradeStatus.CLOSED: frozenset(),
    TradeStatus.CANCELED: frozenset(),
    TradeStatus.REJECTED: frozenset(),
}


class EntryType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"


class CommissionSource(models.TextChoices):
    """Where a trade's recorded commissions came from (see docs/pnl.md)."""

    ACCOUNT_RATE = "ACCOUNT_RATE", "The account's commission per contract"
    BACKFILL = "BACKFILL", "Backfilled at the configured rate (migration 0014)"


class StrategyType(models.TextChoices):
    """What a trade's legs make (the templates of trades/spreads.py); a single option is `single`."""

    SINGLE = "single", "Single option"
    VERTICAL = "vertical", "Vertical spread"
    STRADDLE = "straddle", "Straddle"
    STRANGLE = "strangle", "Strangle"
    IRON_CONDOR = "iron_condor", "Iron condor"
    BUTTERFLY = "butterfly", "Butterfly"
    CALENDAR = "calendar", "Calendar"


class NetDirection(models.TextChoices):
    """Whether opening the trade pays (a debit: every long option) or receives (a credit)."""

    DEBIT = "debit", "Net debit (paid)"
    CREDIT = "credit", "Net credit (received)"


class LegSide(models.TextChoices):
    """A leg bought or sold to open (the values of trades.spreads.LONG and SHORT)."""

    LONG = "LONG", "Long (bought)"
    SHORT = "SHORT", "Short (sold)"


class LegExit(models.TextChoices):
    """How a leg left the position: sold or bought back by a closing order, or at expiry (worthless,
    exercised, assigned, or settled in cash for an index option)."""

    CLOSED = "CLOSED", "Closed by an order"
    EXPIRED = "EXPIRED", "Expired worthless"
    EXERCISED = "EXERCISED", "Exercised (long, in the money)"
    ASSIGNED = "ASSIGNED", "Assigned (short, in the money)"
    CASH_SETTLED = "CASH_SETTLED", "Settled in cash"


class CloseReason(models.TextChoices):
    TP_HIT = "TP_HIT", "Take-profit hit"
    SL_HIT = "SL_HIT", "Stop-loss hit"
    MANUAL_CLOSE = "MANUAL_CLOSE", "Closed manually"
    EXPIRED = "EXPIRED", "Expired worthless"
    EXPIRED_ITM = "EXPIRED_ITM", "Expired in the money (settled at intrinsic)"
    # Closed by the trade's exit policy (trades.services.exit_policies), not by a bracket leg.
    TIME_STOP = "TIME_STOP", "Time stop"
    STOCK_STOP = "STOCK_STOP", "Stock trailing stop"


def _in(field: str, choices) -> Q:
    return Q(**{f"{field}__in": choices.values})


def _not_negative(*fields: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 0}), name=f"trade_{name}_not_negative"
        )
        for name in fields
    ]


def commission_total_sql():
    """Entry plus exit commission, in SQL (`PaperTrade.commission_total` for one row)."""
    return F("entry_commission") + F("exit_commission")


def realized_pnl_net_sql():
    """Realized P&L after commissions and fees, in SQL (`PaperTrade.realized_pnl_net` for one row)."""
    return F("realized_pnl") - F("entry_commission") - F("exit_commission") - F("fees")


# A closed trade's result on the net basis (docs/pnl.md): the history's filter and totals count
# wins, losses and flat trades as Performance does, so a small gross win eaten by commissions is a loss.
NET_OUTCOMES = {"win": GreaterThan, "loss": LessThan, "flat": Exact}


def net_outcome_q(outcome: str) -> Q:
    """Trades whose realized P&L after commissions and fees makes them a `win`, `loss` or `flat`."""
    return Q(NET_OUTCOMES[outcome](realized_pnl_net_sql(), Decimal(0)))


class PaperTradeQuerySet(models.QuerySet):
    """Reusable filters; scoping to a user is the selectors' job (and row-level security's)."""

    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def closed(self):
        return self.filter(status=TradeStatus.CLOSED)

    def outcome(self, outcome: str):
        """`win`, `loss` and `flat` (made exactly nothing) by realized P&L net of commissions and
        fees, as Performance counts them, expiries aside; `expired` by close reason; `unfilled`:
        the entry never filled (canceled, rejected)."""
        expired = Q(close_reason__in=[CloseReason.EXPIRED, CloseReason.EXPIRED_ITM])
        if outcome == "unfilled":
            return self.filter(status__in=UNFILLED_STATUSES)
        if outcome == "expired":
            return self.closed().filter(expired)
        if outcome in NET_OUTCOMES:
            return self.closed().exclude(expired).filter(net_outcome_q(outcome))
        raise ValueError(f"Unknown outcome {outcome!r}: win, loss, flat, expired or unfilled.")


    def needing_attention(self):
        return self.exclude(attention_reason="")

    def with_held_qty(self):
        """`held`: contracts a held (OPEN/CLOSING) trade still holds, as `PaperTrade.held_qty` says,
        computed by the database for set-based readers (the snapshot cycle)."""
        bought = Coalesce(NullIf(F("filled_qty"), 0), F("qty"))
        return self.annotate(held=Greatest(bought - F("exit_filled_qty"), 0))


class PaperTrade(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trades")
    # NULL, not "": many trades have no key, and the per-owner unique constraint skips NULLs.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001

    # The contract.
    ticker = models.CharField(max_length=6, validators=[RegexValidator(r"^[A-Z]{1,6}$", "1 to 6 capital letters.")])
    option_type = models.CharField(max_length=4, choices=OptionType.choices)
    strike = models.DecimalField(max_digits=9, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    expiry = models.DateField()
    option_symbol = models.CharField(max_length=21, editable=False, db_index=True)

    # What the legs make (the rows of TradeLeg; a single option has one) and whether the entry was a
    # net debit or a net credit. The contract fields above stay the single option's own.
    strategy_type = models.CharField(max_length=12, choices=StrategyType.choices, default=StrategyType.SINGLE)
    net_direction = models.CharField(max_length=6, choices=NetDirection.choices, default=NetDirection.DEBIT)

    # Entry and brackets (premiums per share).
    qty = models.PositiveIntegerField()  # contracts of a single option; units (spreads) of a multi-leg trade
    entry_type = models.CharField(max_length=6, choices=EntryType.choices, default=EntryType.MARKET)
    # The limit price, or the ask when a market entry was sent: risk is measured from it until the fill.
    planned_entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    filled_qty = models.PositiveIntegerField(default=0, help_text="Contracts of the entry filled so far.")
    entry_price = models.DecimalField(**PRICE, null=True, blank=True)
    entry_date = models.DateTimeField(null=True, blank=True)
    sl_price = models.DecimalField(**PRICE)
    tp_price = models.DecimalField(**PRICE)

    # What the scanner (or person) knew when it opened the trade.
    strategy = models.CharField(max_length=64, blank=True)
    card_score = models.DecimalField(**SCORE)
    ai_score = models.DecimalField(**SCORE)
    ai_verdict = models.CharField(max_length=32, blank=True)
    gate_verdict = models.CharField(max_length=32, blank=True)
    technical_score = models.DecimalField(**SCORE)
    sentiment_score = models.DecimalField(**SCORE)
    delta_at_entry = models.DecimalField(**GREEK)
    iv_at_entry = models.DecimalField(**GREEK)

    # Live monitoring: the latest mark, written by the monitor cycle.
    current_price = models.DecimalField(**PRICE, null=True, blank=True)
    current_bid = models.DecimalField(**PRICE, null=True, blank=True)
    current_ask = models.DecimalField(**PRICE, null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True)
    unrealized_pnl = models.DecimalField(**MONEY, null=True, blank=True)

    # Outcome.
    status = models.CharField(max_length=10, choices=TradeStatus.choices, default=TradeStatus.PENDING)
    close_price = models.DecimalField(**PRICE, null=True, blank=True)
    close_date = models.DateTimeField(null=True, blank=True)
    # NULL until the trade closes; set exactly once (checked by constraints and the state machine).
    close_reason = models.CharField(max_length=12, choices=CloseReason.choices, null=True, blank=True)  # noqa: DJ001
    realized_pnl = models.DecimalField(**MONEY, null=True, blank=True)
    realized_pnl_pct = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    max_drawdown = models.DecimalField(**MONEY, null=True, blank=True)
    max_gain = models.DecimalField(**MONEY, null=True, blank=True)
    hold_duration_h = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    override_count = models.PositiveIntegerField(default=0)
    # Costs, in dollars, written by the lifecycle when an order fills (trades.services.commissions):
    # `realized_pnl` above is the premiums only (gross); net = gross - commissions - fees.
    commission_per_contract = models.DecimalField(
        max_digits=6, decimal_places=4, null=True, blank=True,
        help_text="The rate the trade's commissions were (and its exit's will be) charged at, per contract.")
    entry_commission = models.DecimalField(**MONEY, default=Decimal(0))
    exit_commission = models.DecimalField(**MONEY, default=Decimal(0))
    fees = models.DecimalField(**MONEY, default=Decimal(0), help_text="Regulatory and exchange fees, if reported.")
    commission_source = models.CharField(max_length=12, choices=CommissionSource.choices, blank=True)

    # Broker links.
    broker_mode = models.CharField(max_length=16, choices=BrokerMode.choices, default=BrokerMode.LOCAL_PAPER)
    entry_order_id = models.CharField(max_length=64, blank=True)
    sl_order_id = models.CharField(max_length=64, blank=True)
    tp_order_id = models.CharField(max_length=64, blank=True)
    # The OCO (or OTOCO) order holding both exits: cancelling it cancels both legs.
    bracket_order_id = models.CharField(max_length=64, blank=True)
    close_order_id = models.CharField(max_length=64, blank=True)
    # When a close request moved the trade to CLOSING and is (or may be) still at work on it; NULL
    # once the request ended leaving the trade CLOSING. The monitor finishes a CLOSING trade without
    # a sell only when no request is at work on it (monitoring.sync, CLOSE_IN_FLIGHT).
    close_in_flight_since = models.DateTimeField(null=True, blank=True)
    # Contracts an exit leg sold before its bracket was cancelled (partial fills), and their average
    # price per share (more places than PRICE: an average of fills). `held_qty` is what is left; the
    # close's P&L blends these in (trades.services.closing.close_outcome).
    exit_filled_qty = models.PositiveIntegerField(default=0)
    exit_filled_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    trigger_precision = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="Fill minus trigger price, per share."
    )
    broker_fill_price = models.DecimalField(**PRICE, null=True, blank=True)
    broker_fill_time = models.DateTimeField(null=True, blank=True)

    # The exit policy beyond the fixed bracket (trades.services.exit_policies): its settings as
    # decimal text ({} for none), the best bid and underlying price seen since it was set (the
    # trailing stops' high-water marks), when the stop last moved (the anti-storm interval) and
    # whether the policy already asked for the close (a time stop fires once).
    exit_policy = models.JSONField(default=dict, blank=True)
    exit_high_water = models.DecimalField(**PRICE, null=True, blank=True)
    exit_underlying_extreme = models.DecimalField(**PRICE, null=True, blank=True)
    exit_stop_moved_at = models.DateTimeField(null=True, blank=True)
    exit_requested_at = models.DateTimeField(null=True, blank=True)
    exit_request_reason = models.CharField(max_length=12, choices=CloseReason.choices, blank=True)
    # A scale-out fires once (trades.services.exit_policies): when it was asked for.
    exit_scaled_out_at = models.DateTimeField(null=True, blank=True)
    # A part of the position being sold (a scale-out or a manual partial close), step by step
    # (trades.services.parts): how many contracts, why, and the sell once it is placed. 0: none.
    # The trade records the step it is in, so a process killed between steps is resumed.
    part_pending_qty = models.PositiveIntegerField(default=0)
    part_pending_reason = models.CharField(max_length=16, blank=True)
    part_order_id = models.CharField(max_length=64, blank=True)
    part_started_at = models.DateTimeField(null=True, blank=True)

    # Concurrency: the optimistic lock clients send back. (Work in flight is a row lock held by
    # `trade_transition`; a final trade is immutable because the transition table leads nowhere
    # from a final state, so no separate "locked" flag is kept.)
    version = models.PositiveIntegerField(default=1)
    # Why the trade is in its state (e.g. the broker's rejection), and what a person must look at
    # (e.g. a position left without its bracket); empty when all is well.
    status_reason = models.CharField(max_length=255, blank=True)
    attention_reason = models.CharField(max_length=255, blank=True)
    # Contracts of this trade's contract the broker account was last seen holding SHORT (0: none).
    # A long-options system never means to be short: something sold twice (see the monitor).
    oversold_qty = models.PositiveIntegerField(default=0)

    # Context at entry, for later learning.
    signals_snapshot = models.JSONField(default=dict, blank=True)
    market_regime = models.JSONField(default=dict, blank=True)
    order_book_state = models.JSONField(default=dict, blank=True)
    ai_reasoning_log = models.JSONField(default=dict, blank=True)

    # Forensic targets, filled after the close.
    target_pnl_15m = models.DecimalField(**MONEY, null=True, blank=True)
    target_pnl_1h = models.DecimalField(**MONEY, null=True, blank=True)
    target_mfe_pct = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    target_mae_pct = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaperTradeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "status", "-created_at"], name="trade_owner_status_idx"),
            models.Index(fields=["owner", "-created_at"], name="trade_owner_recent_idx"),
            # The history: an owner's closed trades, most recently closed first, by close date range.
            models.Index(fields=["owner", "status", "-close_date", "-id"], name="trade_owner_closed_idx"),
            # The monitor cycle reads every active trade across tenants.
            models.Index(fields=["status"], condition=Q(status__in=ACTIVE_STATUSES), name="trade_active_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="trade_idempotency_key_unique_per_owner",
            ),
            models.CheckConstraint(condition=Q(qty__gt=0), name="trade_qty_positive"),
            models.CheckConstraint(condition=Q(strike__gt=0), name="trade_strike_positive"),
            models.CheckConstraint(condition=Q(version__gte=1), name="trade_version_positive"),
            models.CheckConstraint(condition=Q(filled_qty__lte=F("qty")), name="trade_filled_within_qty"),
            models.CheckConstraint(condition=_in("entry_type", EntryType), name="trade_entry_type_known"),
            models.CheckConstraint(condition=_in("status", TradeStatus), name="trade_status_known"),
            models.CheckConstraint(condition=_in("option_type", OptionType), name="trade_option_type_known"),
            models.CheckConstraint(condition=_in("broker_mode", BrokerMode), name="trade_broker_mode_known"),
            models.CheckConstraint(condition=_in("strategy_type", StrategyType), name="trade_strategy_type_known"),
            models.CheckConstraint(condition=_in("net_direction", NetDirection), name="trade_net_direction_known"),
            models.CheckConstraint(
                condition=Q(close_reason__isnull=True) | _in("close_reason", CloseReason),
                name="trade_close_reason_known",
            ),
            models.CheckConstraint(
                condition=~Q(status=TradeStatus.CLOSED)
                | Q(close_price__isnull=False, close_date__isnull=False, close_reason__isnull=False),
                name="trade_closed_has_outcome",
            ),
            models.CheckConstraint(
                condition=Q(close_reason__isnull=True) | Q(status__in=[TradeStatus.CLOSING, TradeStatus.CLOSED]),
                name="trade_close_reason_only_when_closing",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[TradeStatus.OPEN, TradeStatus.CLOSING, TradeStatus.CLOSED])
                | Q(entry_price__isnull=False, entry_date__isnull=False),
                name="trade_filled_has_entry",
            ),
            models.CheckConstraint(
                condition=Q(sl_price__gte=0) & Q(tp_price__gte=0), name="trade_brackets_not_negative"
            ),
            models.CheckConstraint(condition=Q(commission_source="") | _in("commission_source", CommissionSource),
                                   name="trade_commission_source_known"),
            *_not_negative(
                "commission_per_contract", "entry_commission", "exit_commission", "fees",
                "planned_entry_price",
                "entry_price", "current_price", "current_bid", "current_ask", "broker_fill_price"
            ),
            # A multi-leg trade's close is its legs' fills netted in its direction, and that can land
            # on the other side of zero (a long butterfly whose wings' bids do not pay the body's asks
            # costs money to close): the fill is a fact, and realized P&L sums the legs exactly.
            models.CheckConstraint(
                condition=Q(close_price__isnull=True) | Q(close_price__gte=0) | ~Q(strategy_type=StrategyType.SINGLE),
                name="trade_close_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.option_symbol} ×{self.qty} [{self.status}]"

    def save(self, *args, **kwargs):
        self.option_symbol = build_symbol(self.ticker, self.expiry, self.option_type, self.strike)
        super().save(*args, **kwargs)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention_reason)

    @property
    def unprotected(self) -> bool:
        """An OPEN position that no SL/TP order protects at the broker (its bracket could not be
        attached, or was lost): the pages say UNPROTECTED and the order cycle keeps trying."""
        if self.strategy_type != StrategyType.SINGLE:
            return False  # no broker holds a multi-leg bracket: the monitor watches its net (docs/spreads.md)
        return self.status == TradeStatus.OPEN and self.held_qty > 0 and not (
            self.bracket_order_id or self.sl_order_id or self.tp_order_id)

    @property
    def held_qty(self) -> int:
        """Contracts actually held: the filled part of the entry (all of it once OPEN), less what
        exit legs already sold in partial fills (`exit_filled_qty`)."""
        bought = self.filled_qty or (self.qty if self.status in (TradeStatus.OPEN, TradeStatus.CLOSING) else 0)
        return max(bought - self.exit_filled_qty, 0)

    @property
    def quantity_open(self) -> int:
        """Contracts the trade holds now: what `held_qty` says while it is active, none once final."""
        return 0 if self.status in FINAL_STATUSES else self.held_qty

    # Figures the pages show, derived here once so that no page computes its own and disagrees.

    @property
    def commission_total(self) -> Decimal:
        """Commissions charged so far: the entry's, and the exit's once it filled."""
        return self.entry_commission + self.exit_commission

    @property
    def realized_pnl_gross(self) -> Decimal | None:
        """Premiums only: what `realized_pnl` holds (kept under that name for compatibility)."""
        return self.realized_pnl

    @property
    def realized_pnl_net(self) -> Decimal | None:
        """Gross less commissions and fees, exactly: what the account really made or lost."""
        if self.realized_pnl is None:
            return None
        return self.realized_pnl - self.commission_total - self.fees

    @property
    def exit_commission_estimate(self) -> Decimal:
        """The whole exit's commission at the trade's rate (0 before the entry fills): what exit legs
        already cost on the contracts they sold in partial fills (`exit_filled_qty`: paid, though
        `exit_commission` records it only at the close) and what selling the held ones will cost."""
        sold_and_held = self.exit_filled_qty + self.held_qty
        if self.strategy_type != StrategyType.SINGLE and self.pk is not None:
            # A spread's closing order pays on every contract of every leg still held: units × Σ ratio.
            sold_and_held *= sum(leg.ratio for leg in self.legs.all() if not leg.exit_reason)
        return ((self.commission_per_contract or Decimal(0)) * sold_and_held).quantize(Decimal("0.01"))

    @property
    def unrealized_pnl_net(self) -> Decimal | None:
        """The open position's P&L if sold at the mark now: gross, less the entry commission paid,
        the exit's commission (paid on partial exits, and to pay on what is held), and fees."""
        if self.unrealized_pnl is None:
            return None
        return self.unrealized_pnl - self.entry_commission - self.exit_commission_estimate - self.fees

    @property
    def unrealized_pnl_pct(self) -> Decimal | None:
        """Unrealized P&L over what the held contracts cost, in percent."""
        if self.unrealized_pnl is None or self.entry_price is None:
            return None
        return _percent(self.unrealized_pnl, self.entry_price * self.held_qty * CONTRACT_MULTIPLIER)

    @property
    def sl_distance(self) -> Decimal | None:
        """How far the mark is from the stop-loss on its safe side, per share (negative: past it). A
        debit trade's stop is below its mark, a credit trade's above (trades.net_price)."""
        if self.current_price is None:
            return None
        return (self.current_price - self.sl_price) * direction_sign(self.net_direction)

    @property
    def sl_distance_pct(self) -> Decimal | None:
        return _percent(self.sl_distance, self.current_price)

    @property
    def tp_distance(self) -> Decimal | None:
        """How far the mark still has to go to the take-profit, per share (negative: past it): up
        for a debit trade, down for a credit one."""
        if self.current_price is None:
            return None
        return (self.tp_price - self.current_price) * direction_sign(self.net_direction)

    @property
    def tp_distance_pct(self) -> Decimal | None:
        return _percent(self.tp_distance, self.current_price)

    @property
    def days_to_expiry(self) -> int:
        """Calendar days to expiry, counted in New York."""
        return (self.expiry - timezone.localdate(timezone=ZoneInfo(settings.MARKET_TIME_ZONE))).days


class TradeLeg(models.Model):
    """One leg of a trade: `ratio` contracts per unit of `option_symbol`, bought (LONG) or sold
    (SHORT), and the per-share prices it filled at to enter and to exit. A single option is the
    one-leg case: LONG, ratio 1, its prices the trade's own (trades.services.legs keeps them so)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    trade = models.ForeignKey(PaperTrade, on_delete=models.CASCADE, related_name="legs")
    position = models.PositiveSmallIntegerField(default=0, help_text="The leg's place in the order, from 0.")
    option_symbol = models.CharField(max_length=21)
    option_type = models.CharField(max_length=4, choices=OptionType.choices)
    strike = models.DecimalField(max_digits=9, decimal_places=3)
    expiry = models.DateField()
    side = models.CharField(max_length=5, choices=LegSide.choices)
    ratio = models.PositiveSmallIntegerField(default=1, help_text="Contracts of this leg per unit of the trade.")
    entry_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="Entry fill, per share.")
    exit_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="Exit fill, per share.")
    exit_reason = models.CharField(max_length=12, choices=LegExit.choices, blank=True)
    # The leg's latest quote, per share, written by the monitor for a multi-leg trade (a single
    # option's lives on its trade row: current_bid / current_ask / current_price).
    bid = models.DecimalField(**PRICE, null=True, blank=True)
    ask = models.DecimalField(**PRICE, null=True, blank=True)
    mark = models.DecimalField(**PRICE, null=True, blank=True)
    iv = models.DecimalField(**GREEK, help_text="Implied volatility at the last mark (0.25 = 25 %).")
    marked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["trade", "position"]
        constraints = [
            models.UniqueConstraint(fields=["trade", "position"], name="leg_position_unique_per_trade"),
            models.UniqueConstraint(fields=["trade", "option_symbol"], name="leg_contract_unique_per_trade"),
            models.CheckConstraint(condition=_in("side", LegSide), name="leg_side_known"),
            models.CheckConstraint(condition=_in("option_type", OptionType), name="leg_option_type_known"),
            models.CheckConstraint(condition=Q(ratio__gte=1), name="leg_ratio_positive"),
            models.CheckConstraint(condition=Q(strike__gt=0), name="leg_strike_positive"),
            models.CheckConstraint(condition=Q(entry_price__isnull=True) | Q(entry_price__gte=0),
                                   name="leg_entry_price_not_negative"),
            models.CheckConstraint(condition=Q(exit_price__isnull=True) | Q(exit_price__gte=0),
                                   name="leg_exit_price_not_negative"),
            models.CheckConstraint(condition=Q(exit_reason="") | _in("exit_reason", LegExit),
                                   name="leg_exit_reason_known"),
            models.CheckConstraint(
                condition=(Q(bid__isnull=True) | Q(bid__gte=0)) & (Q(ask__isnull=True) | Q(ask__gte=0))
                & (Q(mark__isnull=True) | Q(mark__gte=0)),
                name="leg_quote_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.ratio} {self.option_symbol} of trade {self.trade_id}"

    @classmethod
    def single_of(cls, trade: PaperTrade) -> "TradeLeg":
        """The one leg a single-option trade is made of, unsaved: its contract, bought, ratio 1, at
        its entry and close prices."""
        return cls(owner_id=trade.owner_id, trade=trade, position=0,
                   option_symbol=build_symbol(trade.ticker, trade.expiry, trade.option_type, trade.strike),
                   option_type=trade.option_type, strike=trade.strike, expiry=trade.expiry, side=LegSide.LONG,
                   ratio=1, entry_price=trade.entry_price, exit_price=trade.close_price)

    @property
    def sign(self) -> int:
        """+1 for a long leg, -1 for a short one: how its price counts in the trade's net."""
        return 1 if self.side == LegSide.LONG else -1


def _percent(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    if part is None or not whole:
        return None
    return (part / whole * 100).quantize(Decimal("0.01"))


class EventKind(models.TextChoices):
    STATE_CHANGE = "STATE_CHANGE", "State change"
    ORDER_PLACED = "ORDER_PLACED", "Order placed"
    ORDER_FILLED = "ORDER_FILLED", "Order filled"
    ORDER_CANCELED = "ORDER_CANCELED", "Order canceled"
    ORDER_REJECTED = "ORDER_REJECTED", "Order rejected"
    BRACKET_ADJUSTED = "BRACKET_ADJUSTED", "Bracket adjusted"
    CONFLICT_REFUSED = "CONFLICT_REFUSED", "Conflicting change refused"
    STAFF_EDIT = "STAFF_EDIT", "Changed by staff"
    SETTINGS_CHANGED = "SETTINGS_CHANGED", "Account settings changed"
    ATTENTION_NEEDED = "ATTENTION_NEEDED", "Needs a person's attention"
    CONTEXT_CAPTURED = "CONTEXT_CAPTURED", "Entry context captured"


class Actor(models.TextChoices):
    USER = "USER", "The trader"
    SYSTEM = "SYSTEM", "A system task"
    STAFF = "STAFF", "Staff (admin)"


class AppendOnlyQuerySet(models.QuerySet):
    """Audit rows are written once. Bulk changes are refused here, and by a trigger in the database."""

    def update(self, **kwargs):
        raise TypeError("Trade events are append-only.")

    def delete(self):
        raise TypeError("Trade events are append-only.")


class TradeEvent(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # NULL only for account-level events (settings changes), which belong to no trade.
    trade = models.ForeignKey(PaperTrade, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    actor = models.CharField(max_length=8, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=100, blank=True, help_text="Task or command name for system actors.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    old_status = models.CharField(max_length=10, choices=TradeStatus.choices, blank=True)
    new_status = models.CharField(max_length=10, choices=TradeStatus.choices, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["trade", "created_at"], name="event_trade_time_idx")]
        constraints = [
            models.CheckConstraint(condition=_in("kind", EventKind), name="event_kind_known"),
            models.CheckConstraint(condition=_in("actor", Actor), name="event_actor_known"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on trade {self.trade_id or '-'} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("Trade events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Trade events are append-only.")


class ExitPartReason(models.TextChoices):
    """Why some of a trade's contracts were sold."""

    SCALE_OUT = "SCALE_OUT", "Scale-out target"
    PARTIAL_CLOSE = "PARTIAL_CLOSE", "Closed in part"
    EXIT_LEG = "EXIT_LEG", "Exit order filled in part"
    FINAL = "FINAL", "Final exit"


class TradeExitPart(models.Model):
    """One part of a trade's position that left it: a scale-out, a manual partial close, an exit
    leg's partial fill, and the final exit (written when the trade closes). A closed trade's
    realized P&L is the sum of its parts, gross and net, to the cent (docs/pnl.md).

    `commission`: the part's sell commission plus its share of the buy's (pro rata by contracts);
    the final part takes what is left of the trade's commissions and fees, so the parts' net
    adds up to the trade's net exactly."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    trade = models.ForeignKey(PaperTrade, on_delete=models.PROTECT, related_name="exit_parts")
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=14, decimal_places=6, help_text="Average fill price, per share.")
    filled_at = models.DateTimeField()
    reason = models.CharField(max_length=16, choices=ExitPartReason.choices)
    order_id = models.CharField(max_length=64, blank=True)
    commission = models.DecimalField(**MONEY, default=Decimal(0))
    pnl_gross = models.DecimalField(**MONEY)
    pnl_net = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["filled_at", "id"]
        indexes = [models.Index(fields=["trade", "filled_at"], name="exit_part_trade_time_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="exit_part_quantity_positive"),
            models.CheckConstraint(condition=_in("reason", ExitPartReason), name="exit_part_reason_known"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} of trade {self.trade_id} at {self.price} ({self.reason})"


class AccountSettings(models.Model):
    """One per user: which broker, its tokens (encrypted at rest) and the risk limits."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_settings")
    broker_mode = models.CharField(max_length=16, choices=BrokerMode.choices, default=BrokerMode.LOCAL_PAPER)
    tradier_sandbox_token_encrypted = models.TextField(blank=True, editable=False)
    tradier_live_token_encrypted = models.TextField(blank=True, editable=False)
    tradier_account_id = models.CharField(max_length=32, blank=True)
    account_balance = models.DecimalField(**MONEY, default=Decimal("5000"))
    max_positions = models.PositiveIntegerField(default=5)
    daily_loss_limit = models.DecimalField(**MONEY, default=Decimal("150"))
    heat_limit_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("6.0"))
    auto_refresh = models.BooleanField(default=True)
    # What a contract costs to buy or sell: the local paper broker charges it, and trades at Tradier
    # record it (Tradier's order answers carry no commission). NULL: the server's
    # PAPER_COMMISSION_PER_CONTRACT (`commission_rate`).
    commission_per_contract = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    # Stop and target per strategy, as percentages of the entry: {"scalp": {"sl_pct": "30",
    # "tp_pct": "60"}}; a trade naming the strategy and giving neither a price nor a percentage
    # gets them (checked and normalised by services.account_settings_update).
    strategy_presets = models.JSONField(default=dict, blank=True)
    # Multi-leg trades whose short legs no long leg covers (a short straddle or strangle: an unlimited
    # loss). Off: refused before the broker. Switching it on repeats NAKED_SHORTS_CONFIRMATION, as
    # the live switch does (services.accounts), and the broker must write naked options too.
    allow_naked_short_options = models.BooleanField(default=False)
    # Notifications: the pages' browser notifications (opt-in), and an outgoing webhook whose
    # signing secret is made on the server and, like the tokens, stored encrypted.
    browser_notifications = models.BooleanField(default=False)
    # The reports after the close, sent to the channels that chose them (NotificationEvent.*_REPORT).
    daily_report = models.BooleanField(default=False)
    weekly_report = models.BooleanField(default=False)
    webhook_url = models.CharField(max_length=500, blank=True)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    TOKEN_FIELDS = {
        BrokerMode.TRADIER_SANDBOX: "tradier_sandbox_token_encrypted",
        BrokerMode.TRADIER_LIVE: "tradier_live_token_encrypted",
    }
    # Every column under ENCRYPTION_KEYS: key rotation must rewrite them all, or removing an old
    # key leaves a secret nobody can read.
    ENCRYPTED_FIELDS = (*TOKEN_FIELDS.values(), "webhook_secret_encrypted")

    class Meta:
        verbose_name_plural = "account settings"
        constraints = [
            models.CheckConstraint(condition=_in("broker_mode", BrokerMode), name="settings_broker_mode_known"),
            models.CheckConstraint(condition=Q(account_balance__gte=0), name="settings_balance_not_negative"),
            models.CheckConstraint(condition=Q(daily_loss_limit__gte=0), name="settings_loss_limit_not_negative"),
            models.CheckConstraint(
                condition=Q(heat_limit_pct__gte=0) & Q(heat_limit_pct__lte=100), name="settings_heat_limit_percent"
            ),
            models.CheckConstraint(
                condition=Q(commission_per_contract__isnull=True)
                | Q(commission_per_contract__gte=0, commission_per_contract__lte=MAX_COMMISSION_PER_CONTRACT),
                name="settings_commission_per_contract_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Settings of user {self.owner_id} ({self.broker_mode})"

    @property
    def commission_rate(self) -> Decimal:
        """The commission per contract in force: the account's own, else the server's default."""
        if self.commission_per_contract is not None:
            return self.commission_per_contract
        return Decimal(str(settings.PAPER_COMMISSION_PER_CONTRACT))

    def set_broker_token(self, mode: str, token: str) -> None:
        """Store `token` for `mode` encrypted; an empty token removes it."""
        setattr(self, self.TOKEN_FIELDS[mode], crypto.encrypt(token) if token else "")

    def broker_token(self, mode: str) -> str:
        """The plaintext token, for the broker client only. Never render or log it."""
        ciphertext = getattr(self, self.TOKEN_FIELDS[mode])
        return crypto.decrypt(ciphertext) if ciphertext else ""

    def has_broker_token(self, mode: str) -> bool:
        return bool(getattr(self, self.TOKEN_FIELDS[mode]))

    def set_webhook_secret(self, secret: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(secret) if secret else ""

    def webhook_secret(self) -> str:
        """The plaintext signing secret, for signing only. Never render or log it."""
        return crypto.decrypt(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else ""

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)

    @property
    def sends_webhooks(self) -> bool:
        return bool(self.webhook_url and self.webhook_secret_encrypted)


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` a user sent with a trade-opening request, and the answer given.

    Keys are per user. A repeat with the same body gets the stored answer again; a repeat with a
    different body is refused. Rows are kept at least `IDEMPOTENCY_KEY_TTL` (then purged by
    `trades.services.idempotency_keys_purge`).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body.")
    trade = models.ForeignKey(PaperTrade, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # No answer yet: the key is claimed by a request in flight until `claimed_until` (its lease).
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_unique_per_owner"),
            models.CheckConstraint(
                condition=Q(response_status__isnull=False, response_body__isnull=False)
                | Q(claimed_until__isnull=False),
                name="idempotency_key_answered_or_claimed",
            ),
        ]

    def __str__(self) -> str:
        return f"key {self.key!r} of user {self.owner_id} -> {self.response_status or 'in flight'}"


class WebhookEventKind(models.TextChoices):
    """What a trader's webhook is told about, as the `type` of its payload."""

    TRADE_OPENED = "trade.opened", "Trade opened"
    TP_HIT = "trade.tp_hit", "Take-profit hit"
    SL_HIT = "trade.sl_hit", "Stop-loss hit"
    MANUAL_CLOSE = "trade.manual_close", "Closed manually"
    POLICY_EXIT = "trade.policy_exit", "Closed by its exit policy (time or stock stop)"
    EXPIRED = "trade.expired", "Expired"
    REJECTED = "trade.rejected", "Rejected by the broker"
    BROKER_AUTH_FAILED = "broker.auth_failed", "Broker refused the credentials"
    OVERSOLD = "trade.oversold", "The broker account holds the contract short"


class WebhookEventStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (being delivered)"
    DELIVERED = "DELIVERED", "Delivered"
    FAILED = "FAILED", "Given up"


class WebhookEvent(models.Model):
    """One message for a trader's webhook (an outbox row): written in the transaction of the change
    it reports, so a rolled-back change leaves none, and sent after the commit by a task. Its id is
    the event id receivers dedupe on; its payload is frozen when the change happens."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    trade = models.ForeignKey(PaperTrade, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=32, choices=WebhookEventKind.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=WebhookEventStatus.choices, default=WebhookEventStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the next attempt is due: a pending event long past it lost its task (the queue was down
    # at the commit, a worker died mid-attempt) and is queued again by `webhook_events_resend`.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(status="PENDING"),
                                name="webhook_event_pending_idx")]
        constraints = [
            models.CheckConstraint(condition=_in("kind", WebhookEventKind), name="webhook_event_kind_known"),
            models.CheckConstraint(condition=_in("status", WebhookEventStatus), name="webhook_event_status_known"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} [{self.status}]"


class WebhookDelivery(models.Model):
    """One attempt at delivering a webhook event: what the receiver answered, or why not."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    # The host only: a webhook URL may carry a capability in its path or query.
    target_host = models.CharField(max_length=255, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "attempt"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "attempt"], name="webhook_delivery_attempt_unique"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of {self.event_id}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class NotificationEvent(models.TextChoices):
    """What a notification channel can be told about: the webhook's kinds, and moments only the
    channels hear of (a position left without its bracket)."""

    TRADE_OPENED = "trade.opened", "Entry filled"
    TP_HIT = "trade.tp_hit", "Take-profit hit"
    SL_HIT = "trade.sl_hit", "Stop-loss hit"
    MANUAL_CLOSE = "trade.manual_close", "Manual close filled"
    POLICY_EXIT = "trade.policy_exit", "Closed by its exit policy"
    EXPIRED = "trade.expired", "Expired"
    REJECTED = "trade.rejected", "Rejected by the broker"
    UNPROTECTED = "position.unprotected", "Position unprotected"
    PIN_RISK = "position.pin_risk", "Pin risk at expiry"
    OVERSOLD = "trade.oversold", "Over-sold at the broker"
    BROKER_AUTH_FAILED = "broker.auth_failed", "Broker refused the token"
    BROKER_OUTAGE = "broker.outage", "Broker down, and back up"
    RISK_LIMIT = "risk.limit_reached", "A risk limit stopped a trade"
    DAILY_LOSS = "risk.daily_loss_hit", "Daily loss limit hit"
    DAILY_REPORT = "report.daily", "Daily report after the close"
    WEEKLY_REPORT = "report.weekly", "Weekly report (performance)"
    TEST = "channel.test", "Test message"


# Told even in a channel's quiet hours: the trader must act, and waiting until morning costs money.
CRITICAL_EVENTS = frozenset({NotificationEvent.UNPROTECTED, NotificationEvent.OVERSOLD,
                             NotificationEvent.BROKER_AUTH_FAILED, NotificationEvent.PIN_RISK})


class QuietMode(models.TextChoices):
    HOLD = "HOLD", "Hold until quiet hours end"
    DROP = "DROP", "Drop"


class ChannelKind(models.TextChoices):
    APPRISE = "APPRISE", "Apprise URL"
    WEB_PUSH = "WEB_PUSH", "Push to a device"


class NotificationChannel(models.Model):
    """One place a trader is told things (Telegram, Discord, email, ntfy, …) as an Apprise URL.
    The URL carries the service's credentials, so it is stored encrypted like broker tokens and
    only its scheme and a masked hint are ever shown back.

    A WEB_PUSH channel is one browser's Web Push subscription (its `PushSubscription`): it has no
    URL of its own (an encrypted empty one), and the same events, quiet hours and delivery log."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=8, choices=ChannelKind.choices, default=ChannelKind.APPRISE)
    url_encrypted = models.TextField(editable=False)
    url_hint = models.CharField(max_length=40, editable=False)  # "tgram://…4f2"
    enabled = models.BooleanField(default=True)
    events = models.JSONField(default=list)  # NotificationEvent values
    # New York wall-clock times; both empty: no quiet hours. A window may span midnight (22:00-07:00).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_mode = models.CharField(max_length=4, choices=QuietMode.choices, default=QuietMode.HOLD)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    ENCRYPTED_FIELDS = ("url_encrypted",)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(condition=_in("quiet_mode", QuietMode),
                                   name="notification_channel_quiet_mode_known"),
            models.CheckConstraint(condition=_in("kind", ChannelKind), name="notification_channel_kind_known"),
            models.CheckConstraint(condition=Q(quiet_start__isnull=True, quiet_end__isnull=True)
                                   | Q(quiet_start__isnull=False, quiet_end__isnull=False),
                                   name="notification_channel_quiet_hours_both_or_neither"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.url_hint})"

    def set_url(self, url: str) -> None:
        self.url_encrypted = crypto.encrypt(url)

    def url(self) -> str:
        """The plaintext URL, for the sender only; raises VaultError if the key is gone."""
        return crypto.decrypt(self.url_encrypted)


class ChannelMessageStatus(models.TextChoices):
    PENDING = "PENDING", "Pending (being delivered)"
    HELD = "HELD", "Held for the end of quiet hours"
    DELIVERED = "DELIVERED", "Delivered"
    FAILED = "FAILED", "Given up"
    DROPPED = "DROPPED", "Dropped (quiet hours)"


class ChannelMessage(models.Model):
    """One message for one channel (an outbox row and its delivery log line): written in the
    transaction of the change it reports, sent after the commit by a task on the webhooks queue."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=32, choices=NotificationEvent.choices)
    title = models.CharField(max_length=120)
    body = models.TextField()
    body_html = models.TextField(blank=True)  # a report's HTML, for email channels (the text goes elsewhere)
    # Told once per channel: a moment met by every monitor cycle (an outage, the day's loss limit)
    # or a report a rerun must not send again; empty: no such limit.
    dedupe_key = models.CharField(max_length=100, blank=True)
    critical = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=ChannelMessageStatus.choices,
                              default=ChannelMessageStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)  # the last attempt's, never the URL
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["channel", "-created_at"], name="channel_message_log_idx"),
                   models.Index(fields=["next_attempt_at"], condition=Q(status__in=["PENDING", "HELD"]),
                                name="channel_message_due_idx")]
        constraints = [
            models.CheckConstraint(condition=_in("status", ChannelMessageStatus), name="channel_message_status_known"),
            models.UniqueConstraint(fields=["channel", "dedupe_key"], condition=~Q(dedupe_key=""),
                                    name="channel_message_told_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to channel {self.channel_id} [{self.status}]"


class PushSubscription(models.Model):
    """One browser's Web Push subscription, for its WEB_PUSH channel (which holds the trader's
    event choices, quiet hours and delivery log). The endpoint is a capability URL and the keys
    encrypt what we send, so the three are stored encrypted like channel URLs; the endpoint's
    SHA-256 finds a device's subscription again without decrypting, its host is what is shown."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.OneToOneField(NotificationChannel, on_delete=models.CASCADE, related_name="push_subscription")
    subscription_encrypted = models.TextField(editable=False)  # JSON: endpoint, keys.p256dh, keys.auth
    endpoint_sha256 = models.CharField(max_length=64, editable=False)
    endpoint_host = models.CharField(max_length=255, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    ENCRYPTED_FIELDS = ("subscription_encrypted",)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "endpoint_sha256"], name="push_subscription_endpoint_unique"),
        ]

    def __str__(self) -> str:
        return f"push to {self.endpoint_host} (channel {self.channel_id})"

    def set_subscription(self, info: dict) -> None:
        self.subscription_encrypted = crypto.encrypt(json.dumps(info, separators=(",", ":"), sort_keys=True))

    def subscription(self) -> dict:
        """{"endpoint", "keys": {"p256dh", "auth"}}, for the sender only; raises VaultError if the key is gone."""
        return json.loads(crypto.decrypt(self.subscription_encrypted))
