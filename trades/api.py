"""REST API of the trades app: translate HTTP to selectors/services and back, nothing more.

Errors have one shape across the API (drf-standardized-errors):
`{"type": "validation_error|client_error|server_error", "errors": [{"code", "detail", "attr"}]}`;
answers about one trade (a version conflict, a broker refusal) also carry `"trade"`, the trade as
it now stands, so the UI can refresh from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from brokers.models import BrokerMode
from brokers.occ import InvalidOptionSymbol, parse_symbol
from tradeoptions import tenancy
from tradeoptions.api import (
    BoundedDateField,
    CSVRenderer,
    DecimalText,
    FlagField,
    OwnedViewSetMixin,
    ProblemSerializer,
    TextField,
    TraderWords,
)
from tradeoptions.csvstream import csv_lines
from tradeoptions.pagination import SizedPages

from . import selectors, services
from .models import (
    MAX_COMMISSION_PER_CONTRACT,
    AccountSettings,
    EntryType,
    NetDirection,
    OptionType,
    PaperTrade,
    StrategyType,
    TradeStatus,
)
from .serializers import (
    ExitPolicyField,
    HistoryQuerySerializer,
    SnapshotSerializer,
    TradeDetailSerializer,
    TradeExplainedSerializer,
    TradeFilterSerializer,
    TradeHistorySerializer,
    TradeSerializer,
    TradeTotalsSerializer,
    active_time_zone_name,
    json_columns,
)

PRICE = {"max_digits": 12, "decimal_places": 4}
SCORE = {"max_digits": 7, "decimal_places": 3, "required": False, "allow_null": True}
GREEK = {"max_digits": 12, "decimal_places": 6, "required": False, "allow_null": True}
PCT = {"max_digits": 9, "decimal_places": 4, "required": False, "allow_null": True}


# --- Errors -----------------------------------------------------------------------------------

_STATUS = {
    services.InvalidTradeInput: 400,
    services.BracketWouldFill: 400,
    services.VersionConflict: 409,
    services.InvalidTransition: 409,
    services.IdempotencyKeyInFlight: 409,
    services.BrokerNotConfigured: 409,
    services.CloseForbidden: 503,  # before its base class: a close the broker forbade is one it cannot take now
    services.BrokerAccountForbidden: 409,
    services.LiveTradingOff: 409,
    services.IdempotencyKeyReused: 422,
    services.RiskLimitExceeded: 422,
    services.OrderAlreadyFilled: 409,
    services.OrdersBusy: 409,
    services.OrderRefused: 422,
    services.BrokerOutcomeUnknown: 502,
    services.BracketReplaceFailed: 502,
    services.PositionUnprotected: 502,
    services.BrokerDown: 503,
}


def problem_status(problem: services.TradeError) -> int:
    if isinstance(problem, services.BrokerReauthenticate):
        # No token stored: the account is not ready (409). The broker refused the token (502).
        return 502 if problem.refused_by_broker else 409
    return next((code for kind, code in _STATUS.items() if isinstance(problem, kind)), 500)


def problem_response(problem: services.TradeError) -> Response:
    """A domain refusal in the API's one error shape. Returned, not raised: writes made on the way
    (a REJECTED trade, a refused conflict in the audit log) stay committed."""
    code = problem_status(problem)
    if isinstance(problem, services.InvalidTradeInput):
        errors = [{"code": "invalid", "detail": text, "attr": field}
                  for field, texts in problem.field_errors.items() for text in texts]
        body = {"type": "validation_error", "errors": errors}
    else:
        attr = getattr(problem, "field", None) or getattr(problem, "limit", None)
        kind = "validation_error" if code == 400 else ("client_error" if code < 500 else "server_error")
        body = {"type": kind, "errors": [{"code": problem.code, "detail": problem.message, "attr": attr}]}
    if problem.trade is not None:
        body["trade"] = TradeDetailSerializer(problem.trade).data
    return Response(body, status=code)


# --- Serializers ------------------------------------------------------------------------------


SPREAD_SIDES = {"LONG": "LONG", "SHORT": "SHORT", "BUY": "LONG", "SELL": "SHORT"}
SPREAD_SIDE_CHOICES = ["LONG", "SHORT", "buy", "sell"]  # what an opening leg may say (buy/sell: its aliases)
SPREAD_STRATEGY_CHOICES = [choice for choice in StrategyType.choices if choice[0] != StrategyType.SINGLE]
SPREAD_ONLY = ("legs", "strategy_type", "net_direction", "take_profit_pct_of_max", "stop_loss_credit_multiple")


class SpreadLegOpenSerializer(TraderWords, serializers.Serializer):
    """One leg of a multi-leg trade: its OCC symbol, or its type, strike and expiry."""

    option_symbol = TextField(required=False, max_length=21)
    option_type = serializers.ChoiceField(choices=OptionType.choices, required=False)
    strike = DecimalText(max_digits=9, decimal_places=3, required=False, min_value=Decimal("0.001"))
    expiry = BoundedDateField(required=False)
    side = serializers.ChoiceField(
        choices=SPREAD_SIDE_CHOICES, help_text="LONG (or buy): bought to open; SHORT (or sell): sold.",
        error_messages={"invalid_choice": "Say LONG (bought) or SHORT (sold).", "required": "Say LONG or SHORT."})
    ratio = serializers.IntegerField(min_value=1, max_value=100, default=1,
                                     help_text="Contracts of this leg per unit of the trade (a butterfly's body: 2).")
    labels = {"option_symbol": "option symbol", "option_type": "option type"}

    def validate(self, attrs):
        attrs["side"] = SPREAD_SIDES[attrs["side"].upper()]
        if attrs.get("option_symbol"):
            try:
                parse_symbol(attrs["option_symbol"].strip().upper())
            except InvalidOptionSymbol as error:
                raise ValidationError({"option_symbol": [str(error)]}) from None
            if any(name in attrs for name in ("option_type", "strike", "expiry")):
                raise ValidationError({"option_symbol": ["Give the leg's option symbol or its type, strike and expiry, "
                                                         "not both."]})
        elif missing := [name for name in ("option_type", "strike", "expiry") if name not in attrs]:
            raise ValidationError({name: [TradeOpenSerializer.CONTRACT[name]] for name in missing})
        return attrs


class TradeOpenSerializer(TraderWords, serializers.Serializer):
    """A contract by its parts or by its OCC symbol; entry at market or at a limit price. The stop
    and the target each as a price (`sl_price`, `tp_price`) or as a percentage of the entry
    (`sl_pct`, `tp_pct`), not both; with neither, the preset saved for `strategy` in the settings
    (`strategy_presets`) gives them. An empty or partial body is answered with every missing field.

    A multi-leg trade (`legs`, docs/spreads.md) names its contracts in its legs; `ticker` is the
    underlying and `qty` the units. Its prices are held prices, positive: a debit's is what is paid,
    a credit's what is received (`net_direction`, else the sign of the legs' mid net now). Its
    target is `tp_price` or `take_profit_pct_of_max`, its stop `sl_price` or, for a credit,
    `stop_loss_credit_multiple`."""

    option_symbol = TextField(required=False, max_length=21)
    ticker = TextField(required=False, max_length=6)
    option_type = serializers.ChoiceField(choices=OptionType.choices, required=False)
    strike = DecimalText(max_digits=9, decimal_places=3, required=False, min_value=Decimal("0.001"))
    expiry = BoundedDateField(required=False)
    qty = serializers.IntegerField(min_value=1, max_value=10_000)
    entry_type = serializers.ChoiceField(choices=EntryType.choices, default=EntryType.MARKET)
    limit_price = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"))
    sl_price = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"),
                           help_text="The stop-loss price; or give `sl_pct`.")
    tp_price = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"),
                           help_text="The take-profit price; or give `tp_pct`.")
    sl_pct = DecimalText(**PCT, help_text="The stop-loss as a percentage below the entry (30: at 70% of it), "
                                          "above 0 and below 100; instead of `sl_price`.")
    tp_pct = DecimalText(**PCT, help_text="The take-profit as a percentage above the entry (60: at 160% of it), "
                                          "above 0 and at most 1000; instead of `tp_price`.")
    idempotency_key = TextField(required=False, max_length=255)
    strategy = TextField(required=False, max_length=64, allow_blank=True)
    card_score = DecimalText(**SCORE)
    ai_score = DecimalText(**SCORE)
    ai_verdict = TextField(required=False, max_length=32, allow_blank=True)
    gate_verdict = TextField(required=False, max_length=32, allow_blank=True)
    technical_score = DecimalText(**SCORE)
    sentiment_score = DecimalText(**SCORE)
    delta_at_entry = DecimalText(**GREEK)
    iv_at_entry = DecimalText(**GREEK)
    signals_snapshot = serializers.JSONField(required=False)
    market_regime = serializers.JSONField(required=False)
    order_book_state = serializers.JSONField(required=False)
    ai_reasoning_log = serializers.JSONField(required=False)
    exit_policy = ExitPolicyField(
        required=False, help_text="Exits beyond the bracket: `trail_pct` or `trail_amount` (a trailing stop on the "
        "option, starting after `trail_after_pct` of gain, moving by at least `min_step`), `underlying_trail_pct` or "
        "`underlying_trail_amount` (close when the stock falls back that far from its best), `breakeven_after_pct`, "
        "`close_minutes_before_close`, `close_days_to_expiry`, `close_after_hours`, `scale_out_at_pct` with "
        "`scale_out_pct` (at that gain, sell that share of the contracts once, rounded down, at least 1 and never "
        "all; 2 contracts or more). With none, the strategy's preset.")

    legs = serializers.ListField(
        child=SpreadLegOpenSerializer(), required=False, allow_empty=False, max_length=8,
        error_messages={"not_a_list": "Give the legs as a list, each with its option and its side.",
                        "empty": "Give 2 to 4 legs, or leave the legs out for a single option.",
                        "max_length": "A multi-leg trade has 2 to 4 legs."},
        help_text="A multi-leg trade: 2 to 4 legs, each `{option_symbol}` or `{option_type, strike, expiry}`, with "
                  "`side` (LONG/SHORT, or buy/sell) and `ratio` (default 1). Without it, a single option.")
    strategy_type = serializers.ChoiceField(
        choices=SPREAD_STRATEGY_CHOICES, required=False,
        help_text="The template the legs must make (refused when they do not); without it, the one they make.")
    net_direction = serializers.ChoiceField(
        choices=NetDirection.choices, required=False,
        help_text="debit (you pay the net) or credit (you receive it); without it, the sign of the legs' mid net now.")
    take_profit_pct_of_max = DecimalText(
        **PCT, help_text="A multi-leg trade's target as a share of its max profit, 1 to 99 (50: half the credit kept); "
                         "turned into `tp_price` at the open.")
    stop_loss_credit_multiple = DecimalText(
        max_digits=6, decimal_places=2, required=False, allow_null=True,
        help_text="A credit trade's stop as a multiple of the credit, above 1 and at most 10 (2: buy back at twice "
                  "the credit); turned into `sl_price` at the open.")

    def validate_exit_policy(self, value):
        return exit_policy_field(value)

    labels = {"option_symbol": "option symbol", "option_type": "option type", "qty": "number of contracts",
              "entry_type": "entry", "limit_price": "limit price", "sl_price": "stop-loss", "tp_price": "take-profit",
              "sl_pct": "stop-loss percentage", "tp_pct": "take-profit percentage", "ai_score": "AI score",
              "ai_verdict": "AI verdict", "iv_at_entry": "IV at entry", "ai_reasoning_log": "AI reasoning log"}
    CONTRACT = {"ticker": "Give a ticker.", "expiry": "Pick an expiry.", "strike": "Give a strike.",
                "option_type": "Choose call or put."}

    @classmethod
    def missing(cls, values: Mapping) -> dict[str, list[str]]:
        """Every field a trade cannot go without that `values` leaves out, in the trader's words
        (said as the form asks; an `option_symbol` may stand for the contract's four parts, as the
        schema says). A stop or target may be left out when a strategy is named (its preset may give it)."""
        def absent(name: str) -> bool:
            return values.get(name) in (None, "")

        errors = {}
        spread = not absent("legs")
        if spread and absent("ticker"):
            errors["ticker"] = ["Give the underlying's ticker."]
        elif absent("option_symbol") and not spread:
            errors = {name: [words] for name, words in cls.CONTRACT.items() if absent(name)}
        if absent("qty"):
            errors["qty"] = ["Give the number of spreads." if spread else "Give the number of contracts."]
        if values.get("entry_type") == EntryType.LIMIT and absent("limit_price"):
            errors["limit_price"] = ["A limit entry needs a limit price."]
        if absent("strategy") and not spread:
            for name, words in (("sl", "stop-loss"), ("tp", "take-profit")):
                if absent(f"{name}_price") and absent(f"{name}_pct"):
                    errors[f"{name}_price"] = [f"Give a {words} price, or a percentage of the entry."]
        return errors

    def to_internal_value(self, data):
        """Field errors and missing fields together: an empty form is told everything it lacks at once."""
        try:
            return super().to_internal_value(data)
        except ValidationError as error:
            if not isinstance(data, Mapping) or not isinstance(error.detail, dict):
                raise
            errors = dict(error.detail)
            for name, texts in self.missing(data).items():
                errors.setdefault(name, texts)
            raise ValidationError(errors) from None

    def validate(self, attrs):
        if attrs.get("legs"):
            return self._spread(attrs)
        if given := [name for name in SPREAD_ONLY if attrs.get(name) not in (None, "")]:
            raise ValidationError({name: ["Only a multi-leg trade (with legs) takes this."] for name in given})
        if attrs.get("option_symbol"):
            try:
                contract = parse_symbol(attrs["option_symbol"].strip().upper())
            except InvalidOptionSymbol as error:
                raise ValidationError({"option_symbol": [str(error)]}) from None
            parts = {"ticker": contract.root, "option_type": contract.option_type, "strike": contract.strike,
                     "expiry": contract.expiry}
            clashes = [name for name in self.CONTRACT if name in attrs and attrs[name] != parts[name]]
            if clashes:
                raise ValidationError({name: ["Does not match the option symbol."] for name in clashes})
            attrs.update(parts)
        if missing := self.missing(attrs):
            raise ValidationError(missing)
        attrs["ticker"] = attrs["ticker"].strip().upper()
        if attrs["entry_type"] == EntryType.MARKET and attrs.get("limit_price") is not None:
            raise ValidationError({"limit_price": ["A market entry takes no limit price."]})
        for name in ("signals_snapshot", "market_regime", "order_book_state", "ai_reasoning_log"):
            if name in attrs and not isinstance(attrs[name], dict | list):
                raise ValidationError({name: ["Must be a JSON object or array."]})
            if name in attrs and "\\u0000" in json.dumps(attrs[name]):  # PostgreSQL's jsonb cannot store NUL
                raise ValidationError({name: ["Null characters are not allowed."]})
        return attrs

    def _spread(self, attrs):
        """A multi-leg trade: its contracts are in its legs; the rest the service checks."""
        errors = {name: ["A multi-leg trade names its contracts in its legs."]
                  for name in ("option_symbol", "option_type", "strike", "expiry") if attrs.get(name) not in (None, "")}
        errors.update({name: ["For a multi-leg trade give a price, take_profit_pct_of_max or "
                              "stop_loss_credit_multiple."] for name in ("sl_pct", "tp_pct") if attrs.get(name)})
        errors.update(self.missing(attrs))
        if errors:
            raise ValidationError(errors)
        attrs["ticker"] = attrs["ticker"].strip().upper()
        if attrs["entry_type"] == EntryType.MARKET and attrs.get("limit_price") is not None:
            raise ValidationError({"limit_price": ["A market entry takes no limit price."]})
        return attrs

    @property
    def is_spread(self) -> bool:
        return bool(self.validated_data.get("legs"))

    def to_input(self) -> services.TradeOpenInput | services.SpreadOpenInput:
        data = self.validated_data
        context = {name: data[name] for name in services.CONTEXT_FIELDS if name in data and data[name] is not None}
        if self.is_spread:
            return services.SpreadOpenInput(
                ticker=data["ticker"], qty=data["qty"], strategy_type=data.get("strategy_type"),
                legs=tuple(_leg_input(leg) for leg in data["legs"]),
                limit_price=data.get("limit_price"), net_direction=data.get("net_direction"),
                sl_price=data.get("sl_price"), tp_price=data.get("tp_price"),
                take_profit_pct_of_max=data.get("take_profit_pct_of_max"),
                stop_loss_credit_multiple=data.get("stop_loss_credit_multiple"),
                context=context, exit_policy=data.get("exit_policy"))
        return services.TradeOpenInput(
            ticker=data["ticker"], option_type=data["option_type"], strike=data["strike"], expiry=data["expiry"],
            qty=data["qty"], sl_price=data.get("sl_price"), tp_price=data.get("tp_price"),
            sl_pct=data.get("sl_pct"), tp_pct=data.get("tp_pct"), limit_price=data.get("limit_price"),
            context=context, exit_policy=data.get("exit_policy"),
        )


def _leg_input(leg: dict) -> services.SpreadLegInput:
    return services.SpreadLegInput(
        side=leg["side"], ratio=leg["ratio"], option_symbol=(leg.get("option_symbol") or "").strip().upper(),
        option_type=leg.get("option_type"), strike=leg.get("strike"), expiry=leg.get("expiry"))


def exit_policy_field(value) -> dict:
    """The exit policy checked by the service's rules, its refusals as this field's messages."""
    try:
        return services.exit_policy_checked(value)
    except services.InvalidTradeInput as error:
        raise ValidationError(error.field_errors["exit_policy"]) from None


class VersionSerializer(TraderWords, serializers.Serializer):
    version = serializers.IntegerField(min_value=1, max_value=2_147_483_647)

    labels = {"version": "version of the trade you saw", "limit_price": "limit price", "order_type": "order type",
              "new_sl": "new stop-loss", "new_tp": "new take-profit", "allow_immediate": "fill-at-once choice"}


class ExitPolicySerializer(VersionSerializer):
    exit_policy = ExitPolicyField(help_text="As at open (see `exit_policy` there); `{}` removes the policy.")

    def validate_exit_policy(self, value):
        return exit_policy_field(value)


class AdjustSerializer(VersionSerializer):
    new_sl = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"))
    new_tp = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"))
    allow_immediate = FlagField(default=False, help_text="A new stop-loss or take-profit that would fill at once "
                                "against the bid is refused (400 `bracket_would_fill_immediately`) unless this is "
                                "true.")

    def validate(self, attrs):
        if attrs.get("new_sl") is None and attrs.get("new_tp") is None:  # each input is told, beside it
            raise ValidationError({"new_sl": ["Give a new stop-loss, or a new take-profit."],
                                   "new_tp": ["Give a new take-profit, or a new stop-loss."]})
        return attrs


class EntryRepriceSerializer(VersionSerializer):
    limit_price = DecimalText(**PRICE, min_value=Decimal("0.0001"),
                              help_text="The resting entry's new limit, between the stop-loss and the take-profit.")


class CloseSerializer(VersionSerializer):
    quantity = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=100_000,
        help_text="Contracts to sell: fewer than are held closes the trade in part (the rest keeps a bracket for "
                  "what is left); all of them, or none given, closes the trade.")

    labels = {**VersionSerializer.labels, "quantity": "number of contracts to sell"}


class CloseRepriceSerializer(VersionSerializer):
    order_type = serializers.ChoiceField(choices=["market", "limit"])
    limit_price = DecimalText(**PRICE, required=False, allow_null=True, min_value=Decimal("0.0001"))

    def validate(self, attrs):
        if attrs["order_type"] == "limit" and attrs.get("limit_price") is None:
            raise ValidationError({"limit_price": ["A limit close needs a limit price."]})
        if attrs["order_type"] == "market" and attrs.get("limit_price") is not None:
            raise ValidationError({"limit_price": ["A market close takes no limit price."]})
        return attrs


FILTER_PARAMETERS = [TradeFilterSerializer]  # documented from the serializer that checks them: one truth
PAGE_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="1 for the first page."),
    OpenApiParameter("page_size", {"type": "integer", "minimum": 1, "maximum": SizedPages.max_page_size},
                     description=f"Rows a page (default {settings.REST_FRAMEWORK['PAGE_SIZE']})."),
]
HISTORY_PAGE = inline_serializer("TradeHistoryPage", {
    "count": serializers.IntegerField(help_text="Trades in the filtered set."),
    "page": serializers.IntegerField(),
    "pages": serializers.IntegerField(),
    "page_size": serializers.IntegerField(),
    "next": serializers.URLField(allow_null=True),
    "previous": serializers.URLField(allow_null=True),
    "results": TradeHistorySerializer(many=True),
    "totals": TradeTotalsSerializer(),
})


class TradeProblemSerializer(ProblemSerializer):
    """The API's one error shape, as `problem_response` writes it: about one trade, with the trade."""

    trade = TradeDetailSerializer(required=False, help_text="The trade as it now stands (refusals about one trade).")


ERROR = OpenApiResponse(TradeProblemSerializer,
                        description="The API's one error shape; about one trade it also carries `trade`.")


def _money(**kwargs):
    """Dollars, shown to the cent (the services keep the exact Decimal)."""
    return serializers.DecimalField(max_digits=None, decimal_places=2, rounding=ROUND_HALF_UP, read_only=True,
                                    **kwargs)


def _price(**kwargs):
    return serializers.DecimalField(max_digits=None, decimal_places=4, rounding=ROUND_HALF_UP, read_only=True,
                                    **kwargs)


class PositionsRoomSerializer(serializers.Serializer):
    limit = serializers.IntegerField(source="max_positions", help_text="Trades open or pending at a time.")
    used = serializers.IntegerField(source="positions", help_text="Open or pending now.")
    after = serializers.IntegerField(source="positions_after", help_text="With this trade.")
    left = serializers.IntegerField(source="positions_left", help_text="Could still be opened after this one.")


class DailyLossRoomSerializer(serializers.Serializer):
    limit = _money(source="daily_loss_limit")
    used = _money(source="loss_today", help_text="Today's realized loss (New York day), net of commissions "
                  "and fees.")
    left = _money(source="daily_loss_left")


class HeatRoomSerializer(serializers.Serializer):
    limit_pct = _money(source="heat_limit_pct", help_text="The limit, in % of the balance.")
    limit = _money(source="heat_allowed", help_text="The limit in dollars.")
    used = _money(source="heat", help_text="Risk at the stops of the active trades.")
    after = _money(source="heat_after", help_text="With this trade.")
    after_pct = _money(source="heat_after_pct", allow_null=True, help_text="With this trade, in % of the balance.")
    left = _money(source="heat_left", help_text="Risk that could still be added after this trade.")


class RiskRoomSerializer(serializers.Serializer):
    """The room under each risk limit: the numbers `POST /api/trades` enforces."""

    max_positions = PositionsRoomSerializer(source="*")
    daily_loss_limit = DailyLossRoomSerializer(source="*")
    heat_limit_pct = HeatRoomSerializer(source="*")


class TradePreviewSerializer(serializers.Serializer):
    """A trade's numbers before it is sent. Money for the whole order, to the cent; risk and reward
    are premiums only (the commission is its own line)."""

    option_symbol = serializers.CharField()
    qty = serializers.IntegerField()
    entry_price = _price(help_text="The price the checks use: the limit, or the ask of a market entry.")
    sl_price = _price(help_text="The stop, as given or from the percentage or the strategy's preset.")
    tp_price = _price(help_text="The target, as given or from the percentage or the strategy's preset.")
    debit = _money(help_text="Premium × qty × 100.")
    commission = _money()
    total_cost = _money()
    max_loss = _money(help_text="To the stop.")
    reward = _money(help_text="To the target.")
    reward_r = _money(allow_null=True, help_text="Reward over risk (R).")
    breakeven = _price(help_text="The underlying at expiry: strike + premium for a call, − for a put.")
    balance_pct = _money(allow_null=True, help_text="Total cost in % of the account balance.")
    limits = RiskRoomSerializer(source="room")


class CheckProblemSerializer(TradeProblemSerializer):
    preview = TradePreviewSerializer(required=False, help_text="Over a risk limit (422): the trade's numbers and "
                                     "the room under each limit, as for a valid trade.")


CHECK_ERROR = OpenApiResponse(CheckProblemSerializer, description="The API's one error shape; over a risk "
                              "limit it also carries the `preview`.")
VALID_RESPONSE = inline_serializer("TradeOpenCheck", {
    "valid": serializers.BooleanField(),
    "preview": TradePreviewSerializer(),
    "queued_for_open": serializers.BooleanField(help_text="The market is closed: the order would wait for the open "
                                                "of `next_session_open`, and could be withdrawn until it fills."),
    "next_session_open": serializers.DateTimeField(allow_null=True, help_text="While the market is closed: the "
                                                   "open the order would first meet (exchange calendar)."),
})
WORKING_ORDER_RESPONSES = {200: TradeDetailSerializer, 202: TradeDetailSerializer, 400: ERROR, 409: ERROR,
                           422: ERROR, 502: ERROR, 503: ERROR}
WORKING_ORDER_NOTE = (
    "Needs the version you saw: a repeat, or a parallel change, is refused with 409 and the trade as it stands. "
    "The order is cancelled first; a fill the broker made before the cancel arrived wins and is recorded (409 "
    "`order_already_filled`, with the trade OPEN after an entry, CLOSED after a close), and nothing else is sent. "
    "202: the broker has the new order and it has not filled yet. Every step is in the trade's event log."
)


def _require_object(data) -> None:
    if not isinstance(data, Mapping):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})


WORKING_ORDER_SUMMARIES = {
    "entry_cancel": "Withdraw a pending entry (a resting limit, or one queued for the open)",
    "entry_reprice": "Re-price a pending limit entry (cancel/replace, same SL/TP)",
    "close_cancel": "Withdraw a pending close: the position is OPEN again under its SL/TP bracket",
    "close_reprice": "Switch a pending close between market and limit (cancel/replace)",
}


def _working_order(name: str, serializer_class):
    """One working-order endpoint of `TradeViewSet`, `POST /api/trades/{id}/<entry|close>/<cancel|
    reprice>`: the action `name`, served by the service of that name through `TradeViewSet._working`,
    its body checked by `serializer_class`. The four differ only in these and their summary."""
    service = getattr(services, name)

    def view(self, request, pk=None):
        return self._working(request, serializer_class, service)

    view.__name__ = view.__qualname__ = name  # the action's name: routing, `stepwise_actions`, the schema
    url_path = name.replace("_", "/")
    routed = action(detail=True, methods=["post"], url_path=url_path, url_name=url_path.replace("/", "-"))(view)
    return extend_schema(summary=WORKING_ORDER_SUMMARIES[name], description=WORKING_ORDER_NOTE,
                         request=serializer_class, responses=WORKING_ORDER_RESPONSES)(routed)


# --- Export -----------------------------------------------------------------------------------


def _export_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    return csv_lines(selectors.EXPORT_COLUMNS, (
        [json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else _export_value(value)
         for value in (row[name] for name in selectors.EXPORT_COLUMNS)]
        for row in rows
    ))


def _json_chunks(rows: Iterator[dict]) -> Iterator[str]:
    yield "["
    for index, row in enumerate(rows):
        prefix = "," if index else ""
        yield prefix + json.dumps({name: _export_value(row[name]) for name in selectors.EXPORT_COLUMNS})
    yield "]"


def _chart_json(request, trade: PaperTrade) -> bytes | None:
    """The chart's body as PostgreSQL writes it (issue 20: DRF's formatting of ~1,000 rows cost twice
    the query at 100 M rows), when the answer is the JSON renderer's compact UTF-8 and every field
    is one the database writes as DRF does; None otherwise (the browsable API, `indent=`, a setting
    or field the SQL does not follow): DRF's path then."""
    renderer = request.accepted_renderer
    if (type(renderer) is not JSONRenderer or renderer.ensure_ascii or not renderer.compact
            or renderer.get_indent(request.accepted_media_type, {}) is not None):
        return None
    columns, zone = json_columns(SnapshotSerializer()), active_time_zone_name()
    # UTC only (the project's zone): another zone's rules live in two tz databases, PostgreSQL's and
    # Python's, which can disagree (a zone one of them lacks, a country that changed its clocks).
    if columns is None or zone != "UTC":
        return None
    return selectors.trade_snapshots_json(trade=trade, columns=columns, time_zone=zone)


# --- Views ------------------------------------------------------------------------------------


class TradeViewSet(OwnedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The signed-in trader's trades, newest first."""

    serializer_class = TradeSerializer
    stepwise_actions = frozenset({"create", "close", "entry_cancel", "entry_reprice", "close_cancel",
                                  "close_reprice"})
    queryset = PaperTrade.objects.none()  # the model, for the schema; rows come from owned_queryset
    lookup_value_regex = r"\d+"

    def owned_queryset(self, user):
        trades = self._trades(user)
        # Answers that show trades show their legs: loaded in one more query, whatever the count.
        return selectors.trades_with_legs(trades) if self.action in ("list", "retrieve", "history") else trades

    def _trades(self, user):
        if self.action == "retrieve":
            return selectors.trade_with_events(user=user)
        if self.action == "history":
            query = HistoryQuerySerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            return selectors.trade_history(user=user, filters=query.filters(), ordering=query.sort())
        filters = TradeFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.trade_list(user=user, filters=filters.filters())

    def get_serializer_class(self):
        chosen = {"retrieve": TradeExplainedSerializer, "history": TradeHistorySerializer}
        return chosen.get(self.action, TradeSerializer)

    @extend_schema(parameters=FILTER_PARAMETERS, summary="List trades, newest first",
                   responses={200: TradeSerializer(many=True), 400: ERROR})
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="One trade with its brackets, latest mark, event log and explanation",
                   responses={200: TradeExplainedSerializer})
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Open a trade",
        request=TradeOpenSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="Same key and body: the first answer again. Kept ≥ 24 h.")],
        responses={201: TradeDetailSerializer, 400: ERROR, 409: ERROR, 422: ERROR, 502: ERROR, 503: ERROR},
    )
    def create(self, request):
        if not isinstance(request.data, Mapping):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        key = request.headers.get("Idempotency-Key") or request.data.get("idempotency_key")
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 255 and "\x00" not in key):
            raise ValidationError({"idempotency_key": ["Must be 1 to 255 characters, none of them NUL."]})
        if not key:
            return self._open(request, key=None)
        body = request.data.dict() if hasattr(request.data, "dict") else dict(request.data)

        def open_once() -> services.KeyedAnswer:
            response = self._open(request, key=key)
            return services.KeyedAnswer(response.status_code, response.data, trade=response.trade)

        try:
            answer = services.idempotent(user=request.user, key=key, body=body, answer=open_once)
        except services.TradeError as problem:
            return problem_response(problem)
        return Response(answer.body, status=answer.status,
                        headers={"Idempotent-Replayed": "true"} if answer.replayed else None)

    def _open(self, request, *, key: str | None) -> Response:
        """The trade row commits before its order goes to the broker (see `stepwise_actions`)."""
        serializer = TradeOpenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        open_trade = services.spread_open if serializer.is_spread else services.trade_open
        try:
            result = open_trade(user=request.user, data=serializer.to_input(), idempotency_key=key)
        except services.TradeError as problem:
            response = problem_response(problem)  # refused before any trade was written
            response.trade = None
            return response
        with tenancy.acting_as(request.user.pk):
            if result.problem is not None:
                response = problem_response(result.problem)
            else:
                response = Response(TradeDetailSerializer(self._reload(result.trade)).data,
                                    status=status.HTTP_201_CREATED)
        response.trade = result.trade
        return response

    @extend_schema(
        summary="Check a trade without opening it (the form's live validation)",
        description="The body of `POST /api/trades`, checked as an open would check it (fields, contract and "
                    "prices against the market, broker configuration, risk limits). Nothing is written or placed; "
                    "refusals come in the same shape and status as from a real open. A valid trade is answered "
                    "with its preview: cost, commission, risk and reward to the stop and target, breakeven, "
                    "share of the balance, and the room left under each risk limit after it.",
        request=TradeOpenSerializer,
        responses={200: VALID_RESPONSE, 400: ERROR, 409: ERROR, 422: CHECK_ERROR},
    )
    @action(detail=False, methods=["post"])
    def validate(self, request):
        _require_object(request.data)
        serializer = TradeOpenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if serializer.is_spread:
            raise ValidationError({"legs": ["A multi-leg trade is previewed by the strategy builder; this check is "
                                            "for a single option."]})
        try:
            preview = services.trade_open_check(user=request.user, data=serializer.to_input())
        except services.TradeError as problem:
            response = problem_response(problem)
            if getattr(problem, "preview", None) is not None:  # over a limit: the numbers, with the room left
                response.data["preview"] = TradePreviewSerializer(problem.preview).data
            return response
        session = services.market_session()
        return Response({"valid": True, "preview": TradePreviewSerializer(preview).data,
                         "queued_for_open": session.queued_for_open, "next_session_open": session.next_open})

    @extend_schema(summary="Close at market, all of it or a part (needs the version you saw)", request=CloseSerializer,
                   responses={200: TradeDetailSerializer, 202: TradeDetailSerializer, 400: ERROR, 409: ERROR,
                              422: ERROR, 502: ERROR, 503: ERROR})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        with tenancy.acting_as(request.user.pk):
            trade = self.get_object()
        payload = CloseSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            result = services.trade_close_some(user=request.user, trade_id=trade.pk,
                                               version=payload.validated_data["version"],
                                               quantity=payload.validated_data.get("quantity"))
        except services.TradeError as problem:
            return problem_response(problem)
        with tenancy.acting_as(request.user.pk):
            if result.problem is not None:
                return problem_response(result.problem)
            done = result.trade.status == TradeStatus.CLOSED or (
                result.trade.status == TradeStatus.OPEN and not result.trade.part_pending_qty)  # a part sold
            return Response(TradeDetailSerializer(self._reload(result.trade)).data,
                            status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED)

    entry_cancel = _working_order("entry_cancel", VersionSerializer)
    entry_reprice = _working_order("entry_reprice", EntryRepriceSerializer)
    close_cancel = _working_order("close_cancel", VersionSerializer)
    close_reprice = _working_order("close_reprice", CloseRepriceSerializer)

    def _working(self, request, serializer_class, service) -> Response:
        with tenancy.acting_as(request.user.pk):
            trade = self.get_object()
        _require_object(request.data)
        payload = serializer_class(data=request.data)
        payload.is_valid(raise_exception=True)
        extra = {"limit_price": payload.validated_data.get("limit_price")} if "limit_price" in payload.fields else {}
        try:
            result = service(user=request.user, trade_id=trade.pk, version=payload.validated_data["version"], **extra)
        except services.TradeError as problem:
            return problem_response(problem)
        with tenancy.acting_as(request.user.pk):
            if result.problem is not None:
                return problem_response(result.problem)
            waiting = result.trade.status == TradeStatus.CLOSING or (
                result.trade.status == TradeStatus.PENDING and service is services.entry_reprice)
            return Response(TradeDetailSerializer(self._reload(result.trade)).data,
                            status=status.HTTP_202_ACCEPTED if waiting else status.HTTP_200_OK)

    @extend_schema(summary="Move the stop-loss and/or take-profit", request=AdjustSerializer,
                   responses={200: TradeDetailSerializer, 400: ERROR, 409: ERROR, 502: ERROR, 503: ERROR})
    @action(detail=True, methods=["post"])
    def adjust(self, request, pk=None):
        trade = self.get_object()
        payload = AdjustSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            result = services.brackets_adjust(
                user=request.user, trade_id=trade.pk, version=data["version"], new_sl=data.get("new_sl"),
                new_tp=data.get("new_tp"), allow_immediate=data["allow_immediate"],
            )
        except services.TradeError as problem:
            return problem_response(problem)
        if result.problem is not None:
            return problem_response(result.problem)
        return Response(TradeDetailSerializer(self._reload(result.trade)).data)

    @extend_schema(summary="Set the exit policy (trailing, breakeven and time stops); an empty one removes it",
                   request=ExitPolicySerializer,
                   responses={200: TradeDetailSerializer, 400: ERROR, 404: ERROR, 409: ERROR})
    @action(detail=True, methods=["post"], url_path="exit-policy")
    def exit_policy(self, request, pk=None):
        trade = self.get_object()
        payload = ExitPolicySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            result = services.exit_policy_set(user=request.user, trade_id=trade.pk, version=data["version"],
                                              policy=data["exit_policy"])
        except services.TradeError as problem:
            return problem_response(problem)
        if result.problem is not None:
            return problem_response(result.problem)
        return Response(TradeDetailSerializer(self._reload(result.trade)).data)

    @extend_schema(summary="Price history for charts (at most 1,000 points)",
                   responses={200: SnapshotSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def snapshots(self, request, pk=None):
        trade = self.get_object()
        body = _chart_json(request, trade)
        if body is not None:
            return HttpResponse(body, content_type=JSONRenderer.media_type)
        rows = selectors.trade_snapshots(trade=trade)
        return Response(SnapshotSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[HistoryQuerySerializer, *PAGE_PARAMETERS],
        summary="Finished trades, a page at a time, with the totals of every page",
        description="Closed trades, most recently closed first; with `outcome=unfilled` (or `status=CANCELED` "
                    "or `REJECTED`) the trades whose entry never filled, with the reason in `status_reason`. "
                    "`totals` sum up the whole filtered set, not only this page.",
        responses={200: HISTORY_PAGE, 400: ERROR, 404: ERROR})
    @action(detail=False, methods=["get"], pagination_class=SizedPages)
    def history(self, request):
        trades = self.get_queryset()
        totals = selectors.trade_totals(trades=trades)  # its count is the pages' count: one query for both
        page = self.paginator.paginate_queryset(trades, request, view=self, count=totals.count)
        body = self.get_paginated_response(self.get_serializer(page, many=True).data).data
        body["totals"] = TradeTotalsSerializer(totals).data
        return Response(body)

    @extend_schema(
        summary="Every trade, streamed as CSV or JSON (or those the filters keep, as the list filters them)",
        parameters=[OpenApiParameter("format", str, enum=["csv", "json"], default="csv"), *FILTER_PARAMETERS],
        responses={(200, "text/csv"): OpenApiTypes.STR,
                   (200, "application/json"): {"type": "array", "items": {"type": "object"}}, 400: ERROR},
    )
    @action(detail=False, methods=["get"], renderer_classes=[CSVRenderer, JSONRenderer], pagination_class=None)
    def export(self, request):
        kind = request.query_params.get("format", "csv")
        if kind not in ("csv", "json"):
            raise ValidationError({"format": ["Choose csv or json."]})
        filters = TradeFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        # Its own tenant context, see there.
        rows = selectors.trade_export_rows(user_id=request.user.pk, filters=filters.filters())
        if kind == "json":
            response = StreamingHttpResponse(_json_chunks(rows), content_type="application/json")
        else:
            response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d")
        response["Content-Disposition"] = f'attachment; filename="trades-{stamp}.{kind}"'
        return response

    def _reload(self, trade: PaperTrade) -> PaperTrade:
        """The trade as stored, with its events, for the answer."""
        return selectors.trades_with_legs(selectors.trade_with_events(user=self.request.user)).get(pk=trade.pk)


class AccountSettingsSerializer(TraderWords, serializers.ModelSerializer):
    """Tokens are write-only: answers say only whether one is set. An empty token removes it."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.CharField: TextField,
                                models.BooleanField: FlagField, models.DecimalField: DecimalText}

    tradier_sandbox_token = TextField(write_only=True, required=False, allow_blank=True,
                                                  max_length=512, trim_whitespace=True)
    tradier_live_token = TextField(write_only=True, required=False, allow_blank=True, max_length=512,
                                               trim_whitespace=True)
    confirmation = TextField(write_only=True, required=False, allow_blank=True, max_length=64,
                                         help_text=f"Repeat '{services.LIVE_CONFIRMATION}' to switch to live, "
                                                   f"'{services.NAKED_SHORTS_CONFIRMATION}' to allow naked short "
                                                   f"options.")
    has_sandbox_token = serializers.SerializerMethodField()
    has_live_token = serializers.SerializerMethodField()
    live_trading_allowed = serializers.SerializerMethodField()
    has_webhook_secret = serializers.BooleanField(read_only=True, help_text="The secret itself is shown only once, "
                                                  "when made (POST /api/settings/webhook-secret).")

    class Meta:
        model = AccountSettings
        fields = [
            "broker_mode", "tradier_account_id", "account_balance", "max_positions", "daily_loss_limit",
            "heat_limit_pct", "auto_refresh", "tradier_sandbox_token", "tradier_live_token", "confirmation",
            "has_sandbox_token", "has_live_token", "live_trading_allowed", "browser_notifications", "webhook_url",
            "has_webhook_secret", "strategy_presets", "commission_per_contract", "daily_report", "weekly_report",
            "allow_naked_short_options",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        extra_kwargs = {"webhook_url": {"help_text": "http(s) URL that receives signed JSON events; empty: none."},
                        "daily_report": {"help_text": "Send the daily report after the close to the notification "
                                         "channels that chose it (report.daily)."},
                        "weekly_report": {"help_text": "Send the weekly Performance summary after the week's last "
                                          "session to the channels that chose it (report.weekly)."},
                        "allow_naked_short_options": {"help_text": "Multi-leg trades may sell options no bought "
                                                      "option covers (unlimited loss). Off by default; switching it "
                                                      "on needs `confirmation`; the broker must allow it too."},
                        "strategy_presets": {"help_text": 'Stop and target per strategy, in % of the entry: '
                                             '{"scalp": {"sl_pct": "30", "tp_pct": "60"}}; a trade naming the '
                                             'strategy and giving neither a price nor a percentage gets them. '
                                             'PUT replaces the whole object.'},
                        "account_balance": {"min_value": Decimal(0)}, "daily_loss_limit": {"min_value": Decimal(0)},
                        "heat_limit_pct": {"min_value": Decimal(0), "max_value": Decimal(100)},
                        "commission_per_contract": {
                            "min_value": Decimal(0), "max_value": MAX_COMMISSION_PER_CONTRACT,
                            "allow_null": False, "max_digits": 6, "decimal_places": 4,
                            "error_messages": dict.fromkeys(("min_value", "max_value", "invalid", "max_digits",
                                                              "max_decimal_places", "max_whole_digits", "null"),
                                                             services.COMMISSION_RANGE),
                            "help_text": "Dollars per contract bought or sold: the local paper broker charges it, "
                                         "and trades at Tradier record it (Tradier's orders do not report one). "
                                         "0 to 10; the server's default until set."}}

    def to_representation(self, account):
        """The rate in force, the server's default included (an account that never set one)."""
        data = super().to_representation(account)
        data["commission_per_contract"] = self.fields["commission_per_contract"].to_representation(
            account.commission_rate)
        return data

    labels = {"tradier_account_id": "Tradier account id", "max_positions": "limit on open positions",
              "heat_limit_pct": "heat limit", "auto_refresh": "auto-refresh choice",
              "tradier_sandbox_token": "sandbox token", "tradier_live_token": "live token",
              "browser_notifications": "browser notifications choice", "webhook_url": "webhook URL",
              "daily_report": "daily report choice", "weekly_report": "weekly report choice",
              "allow_naked_short_options": "naked short options choice"}

    def get_has_sandbox_token(self, account) -> bool:
        return account.has_broker_token(BrokerMode.TRADIER_SANDBOX)

    def get_has_live_token(self, account) -> bool:
        return account.has_broker_token(BrokerMode.TRADIER_LIVE)

    def get_live_trading_allowed(self, account) -> bool:
        return bool(settings.ALLOW_LIVE_TRADING)


class AccountSettingsView(OwnedViewSetMixin, generics.GenericAPIView):
    """The signed-in trader's broker and risk settings. PUT changes only the fields it sends."""

    serializer_class = AccountSettingsSerializer
    queryset = AccountSettings.objects.none()
    # A changed webhook URL is resolved (DNS, maybe slow) before the settings are written, and no
    # request transaction may hold a database connection meanwhile (the service opens its own).
    stepwise_actions = frozenset({"put"})

    def owned_queryset(self, user):
        return AccountSettings.objects.filter(owner=user)

    def get_object(self):
        """The caller's own settings; DRF's OPTIONS (metadata) asks for the object to check PUT."""
        return services.account_settings_for(user=self.request.user)

    @extend_schema(summary="Broker mode, account id, risk limits, auto-refresh")
    def get(self, request):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(summary="Change settings (live trading needs ALLOW_LIVE_TRADING, a live token and confirmation)",
                   responses={200: AccountSettingsSerializer, 400: ERROR})
    def put(self, request):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        tokens = {name: data.pop(name, None) for name in ("tradier_sandbox_token", "tradier_live_token")}
        confirmation = data.pop("confirmation", "")
        try:
            account = services.account_settings_update(
                user=request.user, changes=data, sandbox_token=tokens["tradier_sandbox_token"],
                live_token=tokens["tradier_live_token"], confirmation=confirmation,
            )
        except services.TradeError as problem:
            return problem_response(problem)
        return Response(self.get_serializer(account).data)


class AccountSummarySerializer(serializers.Serializer):
    broker_mode = serializers.ChoiceField(choices=BrokerMode.choices, help_text="Whose books the money figures "
                                          "are: the local paper ledger or the Tradier account.")
    starting_balance = _money(help_text="The balance in the settings (the paper ledger starts from it).")
    cash = _money()
    buying_power = _money(help_text="Cash less what working buy orders reserve.")
    premium_committed = _money(help_text="Entry premium of the active trades (pending ones at their planned entry).")
    open_risk = _money(help_text="Risk at the stops of the active trades: what the heat limit counts.")
    realized_pnl = _money(help_text="Closed positions at the broker, after commissions.")
    market_value = _money()
    open_pnl = _money()
    equity = _money()
    open_positions = serializers.IntegerField(help_text="Trades open or pending.")


class AccountSummaryView(OwnedViewSetMixin, generics.GenericAPIView):
    """The trader's account at a glance, from the local paper ledger or Tradier's balances."""

    serializer_class = AccountSummarySerializer
    queryset = AccountSettings.objects.none()
    pagination_class = None

    def owned_queryset(self, user):
        return AccountSettings.objects.filter(owner=user)

    @extend_schema(summary="Starting balance, cash, buying power, premium committed, open risk, realized P&L",
                   responses={200: AccountSummarySerializer, 409: ERROR, 502: ERROR, 503: ERROR})
    def get(self, request):
        try:
            summary = selectors.account_summary(user=request.user)
        except services.TradeError as problem:
            return problem_response(problem)
        return Response(self.get_serializer(summary).data)


class BrokerTroubleSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[services.BrokerReauthenticate.code, services.BrokerDown.code, services.BrokerAccountForbidden.code],
        help_text="What the monitor met: a refused (or missing) token, an outage, or an account the broker forbids "
                  "(its 403: new trades are refused until it is fixed).")
    detail = serializers.CharField(help_text="The broker's answer, without tokens or account numbers.")
    broker_mode = serializers.ChoiceField(choices=BrokerMode.choices)
    since = serializers.DateTimeField(help_text="When the monitor first met it.")


class BrokerStatusView(OwnedViewSetMixin, generics.GenericAPIView):
    """Broker trouble the order cycle met on the trader's accounts and that is not over, for the
    pages' banner: the trader hears of it even when no request of theirs failed."""

    serializer_class = BrokerTroubleSerializer
    queryset = AccountSettings.objects.none()
    pagination_class = None

    def owned_queryset(self, user):
        return AccountSettings.objects.filter(owner=user)

    @extend_schema(summary="Broker trouble the monitor met (a refused token, an outage)",
                   responses={200: BrokerTroubleSerializer(many=True)})
    def get(self, request):
        return Response(self.get_serializer(selectors.broker_troubles(user=request.user), many=True).data)


class WebhookSecretSerializer(serializers.Serializer):
    webhook_secret = serializers.CharField(read_only=True, help_text="Sign-check key for the receiver; shown once.")


class WebhookSecretView(OwnedViewSetMixin, generics.GenericAPIView):
    """A new signing secret for the trader's webhook, shown in this answer and never again."""

    serializer_class = WebhookSecretSerializer
    queryset = AccountSettings.objects.none()

    def owned_queryset(self, user):
        return AccountSettings.objects.filter(owner=user)

    @extend_schema(summary="Make (or replace) the webhook's signing secret; the answer is the only time it is shown",
                   request=None, responses={201: WebhookSecretSerializer})
    def post(self, request):
        secret = services.webhook_secret_rotate(user=request.user)
        return Response({"webhook_secret": secret}, status=status.HTTP_201_CREATED,
                        headers={"Cache-Control": "no-store"})
