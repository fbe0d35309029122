"""POST /api/spreads/preview: the strategy builder's numbers for a multi-leg position, priced at
the market now. The view parses, calls `services.spread_preview`, renders; nothing is written.
The numbers and their conventions are docs/spreads.md's."""

from __future__ import annotations

import re
from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from brokers.base import BrokerError
from tradeoptions.api import ERROR, BoundedDateField, DecimalText, FlagField, OwnedViewSetMixin, TraderWords

from . import services
from .api import _money, _price  # the API's one way of writing dollars (to the cent) and prices
from .models import LegSide, NetDirection, OptionType, StrategyType

TICKER = re.compile(r"[A-Za-z]{1,6}")
STRIKE = {"max_digits": 9, "decimal_places": 3, "required": False, "min_value": Decimal("0.001")}
MAX_LEGS = 4


# --- the request --------------------------------------------------------------------------------

class SpreadLegRequestSerializer(TraderWords, serializers.Serializer):
    option_symbol = serializers.CharField(required=False, max_length=21,
                                          help_text="OCC symbol (SPY261218C00570000); or give option_type, "
                                                    "strike and expiry.")
    option_type = serializers.ChoiceField(choices=OptionType.choices, required=False)
    strike = DecimalText(**STRIKE)
    expiry = BoundedDateField(required=False)
    side = serializers.ChoiceField(choices=LegSide.choices, help_text="LONG: bought; SHORT: sold.")
    ratio = serializers.IntegerField(min_value=1, max_value=10, default=1, help_text="Contracts per spread.")

    labels = {"option_type": "call or put", "ratio": "contracts per spread"}


class SpreadPreviewRequestSerializer(TraderWords, serializers.Serializer):
    ticker = serializers.CharField(max_length=6, help_text="The underlying (SPY).")
    strategy_type = serializers.ChoiceField(
        choices=StrategyType.choices, required=False,
        help_text="A template (not single): its fields build the legs. Leave it out (or give it with `legs`, as "
                  "a name) to price given legs.")
    qty = serializers.IntegerField(min_value=1, max_value=10_000, default=1, help_text="Spreads (units).")
    option_type = serializers.ChoiceField(choices=OptionType.choices, required=False,
                                          help_text="vertical, butterfly, calendar.")
    expiry = BoundedDateField(required=False, help_text="Every template but the calendar.")
    front_expiry = BoundedDateField(required=False, help_text="calendar: the month sold.")
    back_expiry = BoundedDateField(required=False, help_text="calendar: the month bought.")
    lower = DecimalText(**STRIKE, help_text="vertical, butterfly.")
    middle = DecimalText(**STRIKE, help_text="butterfly: the body, sold twice.")
    upper = DecimalText(**STRIKE, help_text="vertical, butterfly.")
    strike = DecimalText(**STRIKE, help_text="straddle, calendar.")
    put_strike = DecimalText(**STRIKE, help_text="strangle.")
    call_strike = DecimalText(**STRIKE, help_text="strangle.")
    long_put = DecimalText(**STRIKE, help_text="iron_condor: the bought put, lowest.")
    short_put = DecimalText(**STRIKE, help_text="iron_condor: the sold put.")
    short_call = DecimalText(**STRIKE, help_text="iron_condor: the sold call.")
    long_call = DecimalText(**STRIKE, help_text="iron_condor: the bought call, highest.")
    credit = FlagField(required=False, default=False, help_text="vertical: sell the strike nearer the money.")
    short = FlagField(required=False, default=False, help_text="straddle, strangle: sell both.")
    legs = SpreadLegRequestSerializer(many=True, required=False, help_text=f"1 to {MAX_LEGS} legs, instead of a "
                                      "template's fields.")

    labels = {"qty": "number of spreads", "option_type": "call or put", "lower": "lower strike",
              "upper": "upper strike", "middle": "middle strike", "put_strike": "put strike",
              "call_strike": "call strike", "long_put": "bought put strike", "short_put": "sold put strike",
              "short_call": "sold call strike", "long_call": "bought call strike",
              "front_expiry": "front expiry", "back_expiry": "back expiry"}

    def validate_ticker(self, value: str) -> str:
        if not TICKER.fullmatch(value):
            raise ValidationError("A ticker is 1 to 6 letters (SPY).")
        return value.upper()

    def validate_legs(self, value):
        if not 1 <= len(value) <= MAX_LEGS:
            raise ValidationError(f"Give 1 to {MAX_LEGS} legs.")
        return value

    def validate(self, attrs):
        if not attrs.get("legs") and not attrs.get("strategy_type"):
            raise ValidationError({"strategy_type": ["Pick a strategy, or give the legs."]})
        return attrs

    def to_input(self) -> services.SpreadPreviewInput:
        data = self.validated_data
        legs = [services.SpreadLegInput(**leg) for leg in data.get("legs") or []]
        params = {name: value for name, value in data.items() if name not in ("ticker", "qty", "strategy_type", "legs")}
        return services.SpreadPreviewInput(ticker=data["ticker"], qty=data["qty"],
                                           strategy_type=data.get("strategy_type"), params=params, legs=legs or None)


# --- the answer ---------------------------------------------------------------------------------

class PreviewLegSerializer(serializers.Serializer):
    option_symbol = serializers.CharField(source="leg.symbol")
    option_type = serializers.CharField(source="leg.option_type")
    strike = _price(source="leg.strike")
    expiry = serializers.DateField(source="leg.expiry")
    side = serializers.CharField(source="leg.side")
    ratio = serializers.IntegerField(source="leg.ratio")
    bid = _price(allow_null=True)
    ask = _price(allow_null=True)
    mid = _price(allow_null=True)
    price = _price(help_text="The natural side, per share: the ask to buy, the bid to sell.", source="leg.premium")
    iv = serializers.FloatField(source="leg.iv", allow_null=True, help_text="A fraction: 0.25 is 25 %.")


class NetGreeksSerializer(serializers.Serializer):
    delta = _money(help_text="Shares of the underlying, to two places.")
    gamma = _price(help_text="Shares per $1.")
    theta = _money(help_text="Dollars per calendar day.")
    vega = _money(help_text="Dollars per volatility point.")

    def to_representation(self, instance):
        return super().to_representation({name: Decimal(repr(getattr(instance, name)))
                                          for name in ("delta", "gamma", "theta", "vega")})


class PayoffPointSerializer(serializers.Serializer):
    underlying = _price()
    at_expiry = _money(allow_null=True)
    today = _money(allow_null=True)


class SpreadPreviewSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    strategy_type = serializers.CharField(help_text="The template, or custom for given legs.")
    qty = serializers.IntegerField()
    as_of = serializers.DateTimeField()
    underlying_price = _price()
    legs = PreviewLegSerializer(many=True)
    net_direction = serializers.ChoiceField(choices=NetDirection.choices)
    net_price = _price(help_text="Per share of one spread at the natural sides, positive: the debit paid or the credit "
                       "received (the held price of docs/spreads.md).")
    net_premium = _price(help_text="Per share of one spread: + debit, − credit.", source="risk.net_premium")
    net_mid = _price(help_text="The same at the mids (+ debit, − credit); null while a leg lacks a bid or an ask.",
                     allow_null=True)
    cost = _money(help_text="The whole position in dollars: + paid, − received.", source="risk.cost")
    max_profit = _money(help_text="Dollars; null: unlimited.", source="risk.max_profit", allow_null=True)
    max_loss = _money(help_text="Dollars, a positive amount; null: unlimited.", source="risk.max_loss", allow_null=True)
    unlimited_loss = serializers.BooleanField()
    defined_risk = serializers.BooleanField(source="risk.defined_risk")
    buying_power = _money(help_text="What opening reserves; null: not defined-risk (see risk_note).",
                          source="risk.buying_power", allow_null=True)
    risk_note = serializers.CharField(help_text="The buying-power rule, or why the risk is unlimited or undefined.")
    breakevens = serializers.ListField(child=_price(), source="risk.breakevens")
    width = _price(source="risk.width")
    modelled = serializers.BooleanField(source="risk.modelled", help_text="Max profit, max loss and breakevens "
                                        "come from the model at the front expiry (a calendar).")
    today_modelled = serializers.BooleanField(help_text="False when a leg has no implied volatility: no greeks "
                                              "and no curve of today.")
    greeks = NetGreeksSerializer(allow_null=True)
    payoff = PayoffPointSerializer(many=True, help_text="P&L in dollars at expiry (at the front expiry for a "
                                   "calendar) and today (Black–Scholes at the current IVs).")


IRON_CONDOR = {"ticker": "SPY", "strategy_type": "iron_condor", "expiry": "2026-12-18", "long_put": "555",
               "short_put": "560", "short_call": "580", "long_call": "585", "qty": 1}


class SpreadPreviewView(OwnedViewSetMixin, APIView):
    """The market is the same for everyone and nothing is read from the database: no tenant
    transaction is opened."""

    stepwise_actions = frozenset({"post"})

    def owned_queryset(self, user):  # pragma: no cover - no rows here
        raise NotImplementedError

    @extend_schema(
        summary="Price a multi-leg position now: legs, cost, max profit and loss, breakevens, greeks, payoff",
        description="The strategy builder's preview. Give a template (`strategy_type` and its fields) or the "
                    "`legs`. Each leg is priced at its natural side (the ask to buy, the bid to sell) from the "
                    "market's quotes; the payoff today and the greeks use Black–Scholes at each quote's implied "
                    "volatility. Nothing is written or placed. Figures: docs/spreads.md.",
        request=SpreadPreviewRequestSerializer,
        responses={200: SpreadPreviewSerializer, 400: ERROR, 503: ERROR},
        examples=[OpenApiExample("An iron condor", value=IRON_CONDOR, request_only=True)],
    )
    def post(self, request):
        payload = SpreadPreviewRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            preview = services.spread_preview(data=payload.to_input())
        except services.InvalidTradeInput as problem:
            errors = [{"code": "invalid", "detail": text, "attr": field}
                      for field, texts in problem.field_errors.items() for text in texts]
            return Response({"type": "validation_error", "errors": errors}, status=400)
        except BrokerError:
            return Response({"type": "server_error", "errors": [{
                "code": "market_data_unavailable", "attr": None,
                "detail": "Market data is unavailable right now; try again in a moment."}]}, status=503)
        return Response(SpreadPreviewSerializer(preview).data)
