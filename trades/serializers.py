"""How a trade reads on the wire: the REST API answers with these, and the knowledge server's
tools (analytics) render with them too, so a number reads the same in both places. Read-only
representations and the list filters; the write serializers stay with the API views."""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from tradeoptions.api import BoundedDateTimeField, DayRangeFilterSerializer, TextField

from . import selectors
from .models import (
    FINAL_STATUSES,
    PRICE,
    CloseReason,
    ExitPartReason,
    LegExit,
    LegSide,
    OptionType,
    PaperTrade,
    StrategyType,
    TradeEvent,
    TradeStatus,
)
from .services.exit_parts import quantity_history, trade_parts
from .services.exit_policies import COUNT_KEYS, LABELS, LIMITS, POLICY_KEYS
from .services.marks import HELD
from .services.working import Session, market_session


def exit_policy_schema() -> dict:
    """The exit policy's settings as OpenAPI states them: each key, its type (decimal text; the
    time stops whole numbers, as text too, as the API echoes them) and its range from the rules
    the service checks (`LIMITS`). OpenAPI 3.0 has no range for text and no rule across fields, so
    the ranges are in each description, and the service still says no in the trader's words."""
    properties = {}
    for key in POLICY_KEYS:
        low, high = (f"{bound.normalize():f}" for bound in LIMITS[key])
        whole = key in COUNT_KEYS
        properties[key] = {
            "type": "string", **({} if whole else {"format": "decimal"}),
            "pattern": r"^\d+$" if whole else r"^\d+(\.\d+)?$",
            "description": f"{LABELS[key].capitalize()}: {'a whole number' if whole else 'a decimal'} from {low} "
                           f"to {high}.", "example": low if whole else high,
        }
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "description": "Exits beyond the bracket, every setting optional: a trailing stop on the option "
                           "(`trail_pct` or `trail_amount`, not both; starting after `trail_after_pct` of gain, "
                           "moving by at least `min_step`), a trailing stop on the stock (`underlying_trail_pct` or "
                           "`underlying_trail_amount`, not both: the trade closes when the stock falls back that "
                           "far from its best), `breakeven_after_pct`, and the time stops "
                           "(`close_minutes_before_close`, `close_days_to_expiry`, `close_after_hours`). `{}` is no "
                           "policy."}


@extend_schema_field(exit_policy_schema())
class ExitPolicyField(serializers.JSONField):
    """A trade's exit policy on the wire: a JSON object whose schema lists every setting. Checked
    by the service (`exit_policy_checked`) where it is written, not here."""


class PendingCloseSerializer(serializers.Serializer):
    order_type = serializers.ChoiceField(choices=["market", "limit"])
    limit_price = serializers.DecimalField(**PRICE, allow_null=True)


class ExitPartSerializer(serializers.Serializer):
    """One part of the position that left it (docs/pnl.md, "Partial closes")."""

    quantity = serializers.IntegerField(help_text="Contracts sold in this part.")
    price = serializers.DecimalField(max_digits=None, decimal_places=6, allow_null=True,
                                     help_text="Average fill price, per share.")
    at = serializers.DateTimeField(allow_null=True, help_text="When it filled.")
    reason = serializers.ChoiceField(choices=ExitPartReason.choices, help_text="SCALE_OUT (the exit policy's first "
                                     "target), PARTIAL_CLOSE (the trader's), EXIT_LEG (an exit order filled in part), "
                                     "FINAL (the trade's close; its close_reason says how).")
    reason_label = serializers.SerializerMethodField(help_text="The reason in words.")
    commission = serializers.DecimalField(max_digits=None, decimal_places=2, help_text="The sell's commission plus "
                                          "this part's share of the buy's (the final part: what is left, fees too).")
    pnl_gross = serializers.DecimalField(max_digits=None, decimal_places=2,
                                         help_text="(price - entry) x contracts x 100, in dollars.")
    pnl_net = serializers.DecimalField(max_digits=None, decimal_places=2, help_text="pnl_gross - commission.")

    def get_reason_label(self, part) -> str:
        return ExitPartReason(part["reason"]).label


class QuantityChangeSerializer(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True)
    change = serializers.IntegerField(help_text="Contracts bought (+) or sold (-).")
    quantity_open = serializers.IntegerField(help_text="Contracts held after it.")
    reason = serializers.CharField(help_text="ENTRY, or the part's reason.")


def _dollars(help_text: str) -> serializers.DecimalField:
    """A read-only amount of dollars, to the cent."""
    return serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                    help_text=help_text)


PARTED = (TradeStatus.OPEN, TradeStatus.CLOSING, TradeStatus.CLOSED)  # trades that may have sold parts


class TradeLegSerializer(serializers.Serializer):
    """One leg of a trade: a single option has one (bought, ratio 1)."""

    symbol = serializers.CharField(source="option_symbol", help_text="The OCC option symbol.")
    side = serializers.ChoiceField(choices=LegSide.choices, help_text="LONG (bought) or SHORT (sold).")
    ratio = serializers.IntegerField(help_text="Contracts of this leg per unit of the trade (qty units).")
    strike = serializers.DecimalField(max_digits=9, decimal_places=3)
    expiry = serializers.DateField()
    right = serializers.ChoiceField(source="option_type", choices=OptionType.choices, help_text="CALL or PUT.")
    entry_price = serializers.DecimalField(**PRICE, allow_null=True, help_text="The leg's entry fill, per share.")
    exit_price = serializers.DecimalField(**PRICE, allow_null=True, help_text="The leg's exit fill, per share.")
    # A multi-leg trade's legs carry the monitor's latest quote of each (a single option's is its row's).
    bid = serializers.DecimalField(**PRICE, allow_null=True, default=None,
                                   help_text="The leg's latest bid, per share (multi-leg trades; null for a single).")
    ask = serializers.DecimalField(**PRICE, allow_null=True, default=None, help_text="The leg's latest ask.")
    mark = serializers.DecimalField(**PRICE, allow_null=True, default=None, help_text="The leg's latest mark (mid).")
    iv = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True, default=None,
                                  help_text="Implied volatility at that mark (0.25 = 25 %).")
    marked_at = serializers.DateTimeField(allow_null=True, default=None,
                                          help_text="When the monitor took the leg's quote.")
    exit_reason = serializers.ChoiceField(choices=LegExit.choices, allow_blank=True, read_only=True, help_text=(
        "How the leg left: CLOSED by an order, EXPIRED worthless, EXERCISED, ASSIGNED, CASH_SETTLED; blank "
        "while held."))


def _figure(help_text: str) -> serializers.SerializerMethodField:
    return serializers.SerializerMethodField(help_text=help_text)


class TradeSerializer(serializers.ModelSerializer):
    """A trade as the pages show it, with the figures the model derives (P&L %, distances to the
    exits, days to expiry), so that no page computes its own and disagrees."""

    needs_attention = serializers.BooleanField(read_only=True)
    unrealized_pnl_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                                  help_text="Unrealized P&L over the entry cost, in %.")
    sl_distance = serializers.DecimalField(max_digits=None, decimal_places=4, read_only=True, allow_null=True,
                                           help_text="How far the mark is from the stop-loss on its safe side, per "
                                                     "share (negative: past it): mark minus stop for a debit trade, "
                                                     "stop minus mark for a credit one.")
    sl_distance_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                               help_text="sl_distance in % of the mark.")
    tp_distance = serializers.DecimalField(max_digits=None, decimal_places=4, read_only=True, allow_null=True,
                                           help_text="How far the mark still has to go to the take-profit, per "
                                                     "share (negative: past it): up for a debit trade, down for a "
                                                     "credit one.")
    tp_distance_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                               help_text="tp_distance in % of the mark.")
    unprotected = serializers.BooleanField(read_only=True, help_text="OPEN, but no SL/TP order protects it at the "
                                           "broker yet: the monitor keeps trying to attach one.")
    days_to_expiry = serializers.IntegerField(read_only=True, help_text="Calendar days to expiry, in New York.")
    # Gross is premiums only; net is after commissions and fees (docs/pnl.md). `realized_pnl` and
    # `unrealized_pnl` keep their old meaning, gross, for compatibility.
    realized_pnl_gross = _dollars(help_text="Realized P&L from premiums only (= realized_pnl).")
    realized_pnl_net = _dollars(help_text="Realized P&L after commissions and fees: gross - commission_total - fees.")
    commission_total = _dollars(help_text="Entry commission plus exit commission, in dollars.")
    unrealized_pnl_net = _dollars(help_text="Unrealized P&L (gross) less the entry commission paid, the exit's "
                                "commission (exit_commission_estimate) and fees.")
    exit_commission_estimate = _dollars(help_text="The exit's commission: paid on contracts exit legs already sold "
                                      "in partial fills, and what selling the held ones would cost: "
                                      "commission_per_contract x (contracts sold + contracts held).")
    queued_for_open = serializers.SerializerMethodField(
        help_text="PENDING or CLOSING while the market is closed: its working order waits for the open "
                  "(`next_session_open`) and can be withdrawn until it fills.")
    next_session_open = serializers.SerializerMethodField(
        help_text="While the market is closed: the open of the session an order sent (or working) now first "
                  "meets, from the exchange calendar. Null while the market is open.")
    mark_source = serializers.SerializerMethodField(
        help_text="The market-data source of the latest mark (simulated, orats, tradier); null before the first.")
    mark_delayed = serializers.SerializerMethodField(
        help_text="The latest mark's source is late by design (ORATS delayed, Tradier sandbox).")
    mark_quote_time = serializers.SerializerMethodField(
        help_text="The source's own time of the latest mark's quote (`last_updated` is when the monitor took it).")
    mark_frozen = serializers.SerializerMethodField(
        help_text="The market reads open (really, or forced by FORCE_MARKET_OPEN) but the source has nothing new: "
                  "the quote time has not moved for longer than a live quote may. Not a live mark.")
    close_order = serializers.SerializerMethodField(
        help_text="CLOSING: how the working sell is priced (market, or limit at `limit_price`). Null otherwise.")
    quantity_open = serializers.IntegerField(read_only=True,
                                             help_text="Contracts held now (0 once closed).")
    parts = serializers.SerializerMethodField(
        help_text="Each part of the position sold, in order: scale-outs, partial closes, exit orders' partial "
                  "fills and the final exit. A closed trade's realized P&L (gross and net) is their sum.")
    quantity_history = serializers.SerializerMethodField(
        help_text="Contracts held after the entry and after each part sold.")
    # The trade as a position of legs (issue 19; docs/spreads.md). Per share of one unit unless in dollars.
    legs = serializers.SerializerMethodField(help_text="The trade's legs in order; a single option has one.")
    net_mark = _figure("The net of the legs' marks per share of one unit: each long's mark minus each short's, "
                       "× its ratio (negative: a credit position's cost to buy back). Equals current_price for a "
                       "single option. Null while a leg has no mark, or nothing is held (not OPEN or CLOSING).")
    liquidation_value = _figure("What closing every leg at its natural side brings per share of one unit: longs "
                                "sold at the bid, shorts bought back at the ask, × ratio (negative: closing costs). "
                                "Equals current_bid for a single option. Null while a leg lacks that side, or "
                                "nothing is held.")
    liquidation_value_dollars = _figure("liquidation_value for the units held, in dollars (× 100 a contract).")
    mark_stale = _figure("A multi-leg trade whose last cycle could not quote every leg: current_price, current_bid "
                         "and unrealized_pnl are the last net every leg made, and net_mark is null until every leg "
                         "is quoted in one cycle again. Always false for a single option.")
    max_profit = _figure("The most the position can make at expiry, in dollars, from the entry fills; null: "
                         "unlimited, or not known (a spread not filled yet, legs on two expiries).")
    max_loss = _figure("The most the position can lose at expiry, in dollars, a positive amount; null: unlimited, "
                       "or not known (as max_profit).")
    breakevens = _figure("Underlying prices where the position makes exactly nothing at expiry; empty when "
                         "not known.")
    width = _figure("The widest gap between neighbouring strikes of one right (a vertical's width, a condor's "
                    "wider wing); 0 for a single option, a straddle, a strangle or a calendar.")
    exit_policy = ExitPolicyField(read_only=True)

    class Meta:
        model = PaperTrade
        fields = [
            "id", "ticker", "option_type", "strike", "expiry", "option_symbol", "qty", "filled_qty",
            "entry_type", "planned_entry_price", "entry_price", "entry_date", "sl_price", "tp_price", "status",
            "status_reason", "close_reason", "close_price", "close_date", "current_price", "current_bid",
            "current_ask", "last_updated", "unrealized_pnl", "realized_pnl", "realized_pnl_pct",
            "realized_pnl_gross", "realized_pnl_net", "unrealized_pnl_net", "exit_commission_estimate",
            "commission_per_contract", "entry_commission", "exit_commission", "fees", "commission_total",
            "commission_source", "strategy", "exit_policy", "exit_high_water",
            "broker_mode", "override_count", "needs_attention", "unprotected", "attention_reason", "oversold_qty",
            "version",
            "created_at",
            "unrealized_pnl_pct", "sl_distance", "sl_distance_pct", "tp_distance", "tp_distance_pct",
            "days_to_expiry", "queued_for_open", "next_session_open",
            "mark_source", "mark_delayed", "mark_quote_time", "mark_frozen", "close_order",
            "quantity_open", "parts", "quantity_history",
            "strategy_type", "net_direction", "legs", "net_mark", "liquidation_value", "liquidation_value_dollars",
            "mark_stale", "max_profit", "max_loss", "breakevens", "width",
        ]
        read_only_fields = fields
        extra_kwargs = {"realized_pnl": {"help_text": "Gross: premiums only, before commissions (kept for "
                                         "compatibility; see realized_pnl_gross and realized_pnl_net)."},
                        "unrealized_pnl": {"help_text": "Gross: at the mark, premiums only (see unrealized_pnl_net)."}}

    def _session(self) -> Session:
        """Once per answer (a list shares its context)."""
        if "market_session" not in self.context:
            self.context["market_session"] = market_session()
        return self.context["market_session"]

    def get_queued_for_open(self, trade) -> bool:
        return trade.status in (TradeStatus.PENDING, TradeStatus.CLOSING) and self._session().queued_for_open

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_session_open(self, trade) -> str | None:
        # A string like every other time here: an open's answer is also stored as JSON for its replay.
        next_open = self._session().next_open
        return serializers.DateTimeField().to_representation(next_open) if next_open else None

    def _per_page(self, name: str, trade, statuses, read) -> object | None:
        """A fact read for every trade of the answer at once (a list's page shares its context), so a
        page costs the same queries for 2 trades or 50; only trades in `statuses` are asked about."""
        if trade.status not in statuses:
            return None
        known = self.context.setdefault(name, {})
        if trade.pk not in known:
            page = self.parent.instance if isinstance(self.parent, serializers.ListSerializer) else None
            wanted = ({t.pk for t in (page or ()) if t.status in statuses} | {trade.pk}) - known.keys()
            found = read(sorted(wanted))
            known.update({pk: found.get(pk) for pk in wanted})
        return known[trade.pk]

    def _freshness(self, trade) -> selectors.MarkFreshness | None:
        session = self._session()
        return self._per_page("mark_freshness", trade, HELD, lambda ids: selectors.marks_freshness(
            trade_ids=ids, now=session.at or timezone.now(), market_open=session.open))

    def get_mark_source(self, trade) -> str | None:
        freshness = self._freshness(trade)
        return freshness.source if freshness else None

    def get_mark_delayed(self, trade) -> bool:
        freshness = self._freshness(trade)
        return bool(freshness and freshness.delayed)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_mark_quote_time(self, trade) -> str | None:
        freshness = self._freshness(trade)
        quote_time = freshness.quote_time if freshness else None
        return serializers.DateTimeField().to_representation(quote_time) if quote_time else None

    def get_mark_frozen(self, trade) -> bool:
        freshness = self._freshness(trade)
        return bool(freshness and freshness.frozen)

    def _parts(self, trade) -> list[dict]:
        rows = self._per_page("exit_parts", trade, PARTED, lambda ids: selectors.exit_parts_of(trade_ids=ids))
        return trade_parts(trade, rows or []) if trade.status in PARTED else []

    @extend_schema_field(ExitPartSerializer(many=True))
    def get_parts(self, trade) -> list[dict]:
        return ExitPartSerializer(self._parts(trade), many=True).data

    @extend_schema_field(QuantityChangeSerializer(many=True))
    def get_quantity_history(self, trade) -> list[dict]:
        return QuantityChangeSerializer(quantity_history(trade, self._parts(trade)), many=True).data

    @extend_schema_field(PendingCloseSerializer(allow_null=True))
    def get_close_order(self, trade) -> dict | None:
        pending = self._per_page("pending_closes", trade, (TradeStatus.CLOSING,),
                                 lambda ids: selectors.pending_closes(trade_ids=ids))
        return PendingCloseSerializer(pending).data if pending else None

    def _position(self, trade) -> dict:
        """The trade's legs, their quotes and its risk, worked out once per trade of the answer."""
        known = self.context.setdefault("positions", {})
        if trade.pk not in known:
            legs = selectors.trade_legs(trade)
            quotes = selectors.leg_quotes(trade)
            known[trade.pk] = {"legs": legs, "net_mark": selectors.net_mark(legs, quotes),
                               "liquidation_value": selectors.liquidation_value(legs, quotes),
                               "risk": selectors.position_risk(trade)}
        return known[trade.pk]

    @extend_schema_field(TradeLegSerializer(many=True))
    def get_legs(self, trade) -> list[dict]:
        return TradeLegSerializer(self._position(trade)["legs"], many=True).data

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=4, allow_null=True))
    def get_net_mark(self, trade) -> str | None:
        return _decimal(self._position(trade)["net_mark"], 4)

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=4, allow_null=True))
    def get_liquidation_value(self, trade) -> str | None:
        return _decimal(self._position(trade)["liquidation_value"], 4)

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=2, allow_null=True))
    def get_liquidation_value_dollars(self, trade) -> str | None:
        return _decimal(selectors.position_dollars(trade, self._position(trade)["liquidation_value"]), 2)

    @extend_schema_field(serializers.BooleanField())
    def get_mark_stale(self, trade) -> bool:
        return selectors.mark_stale(trade)

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=2, allow_null=True))
    def get_max_profit(self, trade) -> str | None:
        risk = self._position(trade)["risk"]
        return _decimal(risk.max_profit if risk else None, 2)

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=2, allow_null=True))
    def get_max_loss(self, trade) -> str | None:
        risk = self._position(trade)["risk"]
        return _decimal(risk.max_loss if risk else None, 2)

    @extend_schema_field(serializers.ListField(child=serializers.DecimalField(max_digits=None, decimal_places=4)))
    def get_breakevens(self, trade) -> list[str]:
        risk = self._position(trade)["risk"]
        return [_decimal(price, 4) for price in risk.breakevens] if risk else []

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=3, allow_null=True))
    def get_width(self, trade) -> str | None:
        return _decimal(selectors.position_width(self._position(trade)["legs"]), 3)


def _decimal(value, places: int) -> str | None:
    """A figure as the API writes decimals (a string, to `places`), rounded only here, for display."""
    if value is None:
        return None
    return serializers.DecimalField(max_digits=None, decimal_places=places).to_representation(value)


class TradeHistorySerializer(TradeSerializer):
    """A finished trade as the history shows it: how long it was held, and the best and worst it
    stood at while open (MFE, MAE, in dollars). A trade that never filled says why in `status_reason`."""

    strategy_label = serializers.SerializerMethodField(
        help_text="The strategy in a trader's words with its strikes: \"Iron condor 490/495/515/520\", \"Put credit "
                  "spread 500/495\" (a vertical's strike nearer the money first), \"Long call 570\".")
    return_on_max_loss_pct = serializers.SerializerMethodField(
        help_text="Realized P&L (gross) over the most the position could lose at entry, in %: a credit spread's "
                  "max loss is width × 100 − the credit per unit, a debit trade's the debit. For a single option it "
                  "equals realized_pnl_pct. Null when the max loss is unlimited or not known.")

    class Meta(TradeSerializer.Meta):
        fields = [*TradeSerializer.Meta.fields, "hold_duration_h", "max_gain", "max_drawdown", "strategy_label",
                  "return_on_max_loss_pct"]
        read_only_fields = fields

    def get_strategy_label(self, trade) -> str:
        return selectors.strategy_label_of(trade, self._position(trade)["legs"])

    @extend_schema_field(serializers.DecimalField(max_digits=None, decimal_places=2, allow_null=True))
    def get_return_on_max_loss_pct(self, trade) -> str | None:
        risk = self._position(trade)["risk"]
        return _decimal(selectors.return_on_max_loss(trade.realized_pnl, risk.max_loss if risk else None), 2)


class TradeTotalsSerializer(serializers.Serializer):
    """The whole filtered set's totals (every page of it)."""

    count = serializers.IntegerField(help_text="Trades in the set.")
    realized_pnl = serializers.DecimalField(
        max_digits=None, decimal_places=2, allow_null=True,
        help_text="Their realized P&L, gross (premiums only), summed; null when none closed.")
    realized_pnl_net = serializers.DecimalField(
        max_digits=None, decimal_places=2, allow_null=True,
        help_text="Their realized P&L after commissions and fees, summed; null when none closed.")
    closed = serializers.IntegerField(help_text="Closed trades among them (the win rate's base).")
    wins = serializers.IntegerField(help_text="Closed with a net P&L (after commissions and fees) above $0.")
    losses = serializers.IntegerField(help_text="Closed with a net P&L below $0.")
    flat = serializers.IntegerField(help_text="Closed for exactly $0 net.")
    win_rate = serializers.DecimalField(max_digits=None, decimal_places=2, allow_null=True,
                                        help_text="Wins in % of the closed trades; null when none closed.")


class TradeEventSerializer(serializers.ModelSerializer):
    actor_username = serializers.CharField(source="actor_user.username", read_only=True, default=None)
    # Blank when the event is not a move (and before the first state): the schema must say so.
    old_status = serializers.ChoiceField(choices=TradeStatus.choices, allow_blank=True, read_only=True)
    new_status = serializers.ChoiceField(choices=TradeStatus.choices, allow_blank=True, read_only=True)
    kind_label = serializers.CharField(source="get_kind_display", read_only=True,
                                       help_text="The kind in words, as the event log shows it.")

    class Meta:
        model = TradeEvent
        fields = ["id", "created_at", "kind", "kind_label", "actor", "actor_username", "actor_label", "old_status",
                  "new_status", "payload"]
        read_only_fields = fields


class ExitStepSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="From when the level was in force (the last step: until when).")
    price = serializers.DecimalField(**PRICE, help_text="The exit's level, per share.")
    why = serializers.CharField(help_text="What set it: the open, the trader, the exit policy (and its reason), "
                                          "staff or the system; `now` or `at the close` for the last step.")


class TradeDetailSerializer(TradeSerializer):
    """One trade with its brackets' orders, latest mark, context and its audit log."""

    events = TradeEventSerializer(many=True, read_only=True)
    stop_path = serializers.SerializerMethodField(
        help_text="The stop-loss over time, from the audit log: the level set at the open, each move (by the "
                  "trader, the exit policy, staff or the system) and the level in force at the close or now.")
    target_path = serializers.SerializerMethodField(help_text="The take-profit over time, as `stop_path`.")

    class Meta(TradeSerializer.Meta):
        fields = [
            *TradeSerializer.Meta.fields, "entry_order_id", "bracket_order_id", "sl_order_id", "tp_order_id",
            "close_order_id", "broker_fill_price", "broker_fill_time", "trigger_precision", "hold_duration_h",
            "max_drawdown", "max_gain", "card_score", "ai_score", "ai_verdict", "gate_verdict", "technical_score",
            "sentiment_score", "delta_at_entry", "iv_at_entry", "signals_snapshot", "market_regime",
            "order_book_state", "ai_reasoning_log", "updated_at", "events", "stop_path", "target_path",
        ]
        read_only_fields = fields

    def _paths(self, trade: PaperTrade) -> dict[str, list[dict]]:
        # Both paths from one read of the events (prefetched by the detail's queryset), once per trade.
        if getattr(self, "_exit_paths_of", None) is not trade:
            self._exit_paths_of = trade
            self._exit_paths = selectors.exit_level_paths(trade=trade, events=trade.events.all(), now=timezone.now())
        return self._exit_paths

    @extend_schema_field(ExitStepSerializer(many=True))
    def get_stop_path(self, trade) -> list[dict]:
        return ExitStepSerializer(self._paths(trade)["stop"], many=True).data

    @extend_schema_field(ExitStepSerializer(many=True))
    def get_target_path(self, trade) -> list[dict]:
        return ExitStepSerializer(self._paths(trade)["target"], many=True).data


class TradeExplainedSerializer(TradeDetailSerializer):
    """The detail as `GET /api/trades/{id}/` answers it: with what analytics explains about it."""

    explanation = serializers.SerializerMethodField(
        help_text="`attribution`: the P&L split into delta, gamma, theta, vega, a residual, what snapshots "
                  "without greeks leave unattributed, and `execution` (the fills against the marks), in dollars "
                  "of the position, or `available: false` with the reason in `note`. `forensics`: MFE/MAE %, "
                  "minutes to each, which exit was touched first, P&L after 15 minutes and 1 hour (after the "
                  "close, nightly). `entry_context`: the signals per timeframe and the market regime as labelled "
                  "rows (`label`, `value`, `text`), and what is missing with why.")

    class Meta(TradeDetailSerializer.Meta):
        fields = [*TradeDetailSerializer.Meta.fields, "explanation"]
        read_only_fields = fields

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_explanation(self, trade) -> dict | None:
        return selectors.trade_explanation(trade=trade)


class SnapshotRowsSerializer(serializers.ListSerializer):
    """A chart's rows (dicts keyed by every field, as `selectors.trade_snapshots` gives them) through
    the same field objects as DRF's own loop, without its per-value attribute lookup: the same JSON,
    about a third of the CPU for a 1,000-point chart (issue 20: DRF's generic path cost ~40 ms for
    835 rows, three times the query's own). Anything else takes DRF's path."""

    def to_representation(self, data):
        rows = data.all() if hasattr(data, "all") else data
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            return super().to_representation(data)
        fields = [(field.field_name, field) for field in self.child._readable_fields]
        if any(field.source != name for name, field in fields):  # a renamed field reads elsewhere
            return super().to_representation(data)
        return [{name: None if row[name] is None else field.to_representation(row[name]) for name, field in fields}
                for row in rows]


class SnapshotSerializer(serializers.Serializer):
    class Meta:
        list_serializer_class = SnapshotRowsSerializer

    timestamp = serializers.DateTimeField()
    kind = serializers.CharField()
    mark_price = serializers.DecimalField(**PRICE)
    bid = serializers.DecimalField(**PRICE, allow_null=True)
    ask = serializers.DecimalField(**PRICE, allow_null=True)
    delta = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    gamma = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    theta = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    vega = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    iv = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    underlying = serializers.DecimalField(**PRICE, allow_null=True)
    quote_time = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField(help_text="The market-data source of the mark (simulated, orats, tradier, ...).")
    delayed = serializers.BooleanField(help_text="The source is late by design (ORATS delayed, Tradier sandbox).")


def json_columns(serializer: serializers.Serializer) -> list[selectors.JsonColumn] | None:
    """The snapshot serializer's fields as the database can write them exactly as DRF's JSON does
    (`selectors.trade_snapshots_json`): every field read from the column of its name, decimals as
    text with their column's decimal places (so DRF rounds nothing), times in ISO 8601 in the
    active time zone. None when a field or setting asks for anything else (other places, a format,
    a localized or normalized number, numbers as numbers, a field's own time zone): DRF's own path
    must write it then."""
    columns = []
    for field in serializer.fields.values():
        if field.source != field.field_name or field.write_only:
            return None
        if isinstance(field, serializers.DecimalField):
            if (not getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING) or field.localize
                    or field.normalize_output or field.decimal_places != selectors.snapshot_places(field.field_name)):
                return None
            columns.append(selectors.JsonColumn(field.field_name, "decimal", field.decimal_places))
        elif isinstance(field, serializers.DateTimeField):
            if (str(getattr(field, "format", api_settings.DATETIME_FORMAT)).lower() != ISO_8601
                    or hasattr(field, "timezone")):
                return None
            columns.append(selectors.JsonColumn(field.field_name, "datetime"))
        elif type(field) in (serializers.BooleanField, serializers.CharField):
            columns.append(selectors.JsonColumn(
                field.field_name, "boolean" if isinstance(field, serializers.BooleanField) else "text"))
        else:
            return None
    return columns


def active_time_zone_name() -> str | None:
    """The IANA name of the time zone DRF shows times in (the active one), for the database to
    show them in the same; None without time zones or for a zone with no such name."""
    if not settings.USE_TZ:
        return None
    zone = timezone.get_current_timezone()
    return "UTC" if zone is UTC else getattr(zone, "key", None)


def _choose(words: str) -> dict:
    return {"invalid_choice": words}


OUTCOMES = ("win", "loss", "flat", "expired", "unfilled")
_SORT_WORDS = ("close date, time placed, P&L, net P&L, P&L %, time held, best (MFE), worst (MAE), ticker, strategy, "
               "qty, entry, exit or close reason")


class TradeFilterSerializer(DayRangeFilterSerializer):
    """`?status=&outcome=&strategy=&strategy_type=&ticker=&close_reason=&from=&to=&closed_from=&closed_to=`. The
    days `from`..`to` are those of the close, or of the order for a trade that never filled."""

    status = serializers.ChoiceField(choices=TradeStatus.choices, required=False, error_messages=_choose(
        f"Choose a status: {', '.join(TradeStatus.values)}."))
    outcome = serializers.ChoiceField(
        choices=OUTCOMES, required=False, error_messages=_choose("Choose win, loss, flat, expired or unfilled."),
        help_text="By realized P&L net of commissions and fees (win > 0, loss < 0, flat = 0; expiries aside), "
                  "`expired`, or `unfilled`: "
                  "the entry never filled (canceled, rejected).")
    strategy = TextField(required=False, max_length=64, trim_whitespace=False)
    strategy_type = serializers.ChoiceField(
        choices=StrategyType.choices, required=False,
        error_messages=_choose(f"Choose a strategy type: {', '.join(StrategyType.values)}."),
        help_text="What the legs make: single (one option), vertical, straddle, strangle, iron_condor, butterfly, "
                  "calendar.")
    ticker = TextField(required=False, max_length=6, trim_whitespace=False)
    close_reason = serializers.ChoiceField(choices=CloseReason.choices, required=False, error_messages=_choose(
        "Choose a close reason: take-profit, stop-loss, manual, expired or expired in the money."))
    closed_from = BoundedDateTimeField(required=False)
    closed_to = BoundedDateTimeField(required=False)

    def filters(self) -> selectors.TradeFilters:
        values = {name: value for name, value in self.validated_data.items() if name not in ("from", "to", "ordering")}
        return selectors.TradeFilters(**values, day_from=self.validated_data.get("from"),
                                      day_to=self.validated_data.get("to"))


class HistoryQuerySerializer(TradeFilterSerializer):
    """The history's filters and its sort: `?ordering=realized_pnl` (`-realized_pnl`: largest first)."""

    status = serializers.ChoiceField(choices=FINAL_STATUSES, required=False, error_messages=_choose(
        "The history holds finished trades: choose CLOSED, CANCELED or REJECTED."))
    ordering = serializers.ChoiceField(
        choices=[f"{sign}{name}" for name in selectors.HISTORY_ORDERING for sign in ("", "-")], required=False,
        error_messages=_choose(f"Sort by one of the columns: {_SORT_WORDS}."),
        help_text="A column, `-` first for descending; default `-close_date` (`-created_at` for unfilled trades).")

    def sort(self) -> str | None:
        return self.validated_data.get("ordering")
