"""How a trade reads on the wire: the REST API answers with these, and the knowledge server's
tools (analytics) render with them too, so a number reads the same in both places. Read-only
representations and the list filters; the write serializers stay with the API views."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tradeoptions.api import BoundedDateTimeField, QueryFilterSerializer, TextField

from . import selectors
from .models import PRICE, PaperTrade, TradeEvent, TradeStatus
from .services.marks import HELD
from .services.working import Session, market_session


class PendingCloseSerializer(serializers.Serializer):
    order_type = serializers.ChoiceField(choices=["market", "limit"])
    limit_price = serializers.DecimalField(**PRICE, allow_null=True)


class TradeSerializer(serializers.ModelSerializer):
    """A trade as the pages show it, with the figures the model derives (P&L %, distances to the
    exits, days to expiry), so that no page computes its own and disagrees."""

    needs_attention = serializers.BooleanField(read_only=True)
    unrealized_pnl_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                                  help_text="Unrealized P&L over the entry cost, in %.")
    sl_distance = serializers.DecimalField(max_digits=None, decimal_places=4, read_only=True, allow_null=True,
                                           help_text="Mark minus stop-loss, per share.")
    sl_distance_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                               help_text="Mark minus stop-loss, in % of the mark.")
    tp_distance = serializers.DecimalField(max_digits=None, decimal_places=4, read_only=True, allow_null=True,
                                           help_text="Take-profit minus mark, per share.")
    tp_distance_pct = serializers.DecimalField(max_digits=None, decimal_places=2, read_only=True, allow_null=True,
                                               help_text="Take-profit minus mark, in % of the mark.")
    unprotected = serializers.BooleanField(read_only=True, help_text="OPEN, but no SL/TP order protects it at the "
                                           "broker yet: the monitor keeps trying to attach one.")
    days_to_expiry = serializers.IntegerField(read_only=True, help_text="Calendar days to expiry, in New York.")
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

    class Meta:
        model = PaperTrade
        fields = [
            "id", "ticker", "option_type", "strike", "expiry", "option_symbol", "qty", "filled_qty",
            "entry_type", "planned_entry_price", "entry_price", "entry_date", "sl_price", "tp_price", "status",
            "status_reason", "close_reason", "close_price", "close_date", "current_price", "current_bid",
            "current_ask", "last_updated", "unrealized_pnl", "realized_pnl", "realized_pnl_pct", "strategy",
            "broker_mode", "override_count", "needs_attention", "unprotected", "attention_reason", "oversold_qty",
            "version",
            "created_at",
            "unrealized_pnl_pct", "sl_distance", "sl_distance_pct", "tp_distance", "tp_distance_pct",
            "days_to_expiry", "queued_for_open", "next_session_open",
            "mark_source", "mark_delayed", "mark_quote_time", "mark_frozen", "close_order",
        ]
        read_only_fields = fields

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

    @extend_schema_field(PendingCloseSerializer(allow_null=True))
    def get_close_order(self, trade) -> dict | None:
        pending = self._per_page("pending_closes", trade, (TradeStatus.CLOSING,),
                                 lambda ids: selectors.pending_closes(trade_ids=ids))
        return PendingCloseSerializer(pending).data if pending else None


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


class TradeDetailSerializer(TradeSerializer):
    """One trade with its brackets' orders, latest mark, context and its audit log."""

    events = TradeEventSerializer(many=True, read_only=True)

    class Meta(TradeSerializer.Meta):
        fields = [
            *TradeSerializer.Meta.fields, "entry_order_id", "bracket_order_id", "sl_order_id", "tp_order_id",
            "close_order_id", "broker_fill_price", "broker_fill_time", "trigger_precision", "hold_duration_h",
            "max_drawdown", "max_gain", "card_score", "ai_score", "ai_verdict", "gate_verdict", "technical_score",
            "sentiment_score", "delta_at_entry", "iv_at_entry", "signals_snapshot", "market_regime",
            "order_book_state", "ai_reasoning_log", "updated_at", "events",
        ]
        read_only_fields = fields


class SnapshotSerializer(serializers.Serializer):
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


class TradeFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=TradeStatus.choices, required=False)
    outcome = serializers.ChoiceField(choices=["win", "loss", "expired"], required=False)
    strategy = TextField(required=False, max_length=64, trim_whitespace=False)
    ticker = TextField(required=False, max_length=6, trim_whitespace=False)
    closed_from = BoundedDateTimeField(required=False)
    closed_to = BoundedDateTimeField(required=False)

    def filters(self) -> selectors.TradeFilters:
        return selectors.TradeFilters(**self.validated_data)
