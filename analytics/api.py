"""REST API of analytics: parse the query, call one selector, render. Every view scopes the
transaction to the caller through `tradeoptions.api.OwnedViewSetMixin` and passes the user on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from monitoring import clock
from tradeoptions.api import (
    ERROR,
    BoundedDateField,
    CSVRenderer,
    DayRangeFilterSerializer,
    OwnedViewSetMixin,
    TextField,
)
from tradeoptions.csvstream import csv_lines
from trades.models import PaperTrade, StrategyType

from . import metrics, parquet, periods, selectors
from .models import TradeForensics


class FilterSerializer(DayRangeFilterSerializer):
    """`?from=&to=&strategy=&strategy_type=`: New York close dates, both included, a strategy, and
    what the legs make."""

    strategy = TextField(required=False, max_length=64, trim_whitespace=False)
    strategy_type = serializers.ChoiceField(
        choices=StrategyType.choices, required=False,
        error_messages={"invalid_choice": f"Choose a strategy type: {', '.join(StrategyType.values)}."},
        help_text="Only trades whose legs make this: single, vertical, straddle, strangle, iron_condor, butterfly, "
                  "calendar.")


class BasisFilterSerializer(FilterSerializer):
    """The filters, and the basis every P&L figure of the report is computed on."""

    basis = serializers.ChoiceField(
        choices=metrics.BASES, required=False, default=metrics.NET,
        error_messages={"invalid_choice": "Choose net (after commissions and fees) or gross (premiums only)."},
        help_text="net (default): P&L after commissions and fees; gross: premiums only. `costs` gives both.")


def _basis_filters(request) -> tuple[selectors.AnalyticsFilters, str]:
    data = BasisFilterSerializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    return analytics_filters(data.validated_data), data.validated_data["basis"]


def _filters(request) -> selectors.AnalyticsFilters:
    data = FilterSerializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    return analytics_filters(data.validated_data)


def analytics_filters(values: dict) -> selectors.AnalyticsFilters:
    """The selectors' filters from a FilterSerializer's validated data (the MCP tools share it)."""
    return selectors.AnalyticsFilters(closed_from=values.get("from"), closed_to=values.get("to"),
                                      strategy=values.get("strategy") or None,
                                      strategy_type=values.get("strategy_type") or None)


FILTER_PARAMETERS = [FilterSerializer]  # documented from the serializer that checks them: one truth


class PerformanceFilterSerializer(BasisFilterSerializer):
    """`?period=&start=&end=` on top of the report filters: a period of New York close dates
    (today, this week, this month, year to date, all, or a custom range from `start` to `end`, either
    of which may be left open),
    worked out from the market clock's "now". `from`/`to` stay for older clients, without a period."""

    period = serializers.ChoiceField(
        choices=list(periods.PERIODS), required=False,
        error_messages={"invalid_choice": f"Pick a period: {', '.join(periods.PERIODS)}."},
        help_text="today, week (from Monday), month, ytd (year to date), all (default) or custom (with start and end).")
    start = BoundedDateField(required=False, help_text="First New York close date of a custom period, included.")
    end = BoundedDateField(required=False, help_text="Last New York close date of a custom period, included.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        name = attrs.get("period") or ("custom" if "start" in attrs or "end" in attrs else periods.DEFAULT_PERIOD)
        errors = {}
        if name == "custom":
            if "start" not in attrs and "end" not in attrs:
                errors["start"] = ["A custom period needs its first day, its last day, or both."]
            elif "start" in attrs and "end" in attrs and attrs["start"] > attrs["end"]:
                errors["end"] = ["The range ends before it starts: pick an end on or after the start."]
        else:
            for field in ("start", "end"):
                if field in attrs:
                    errors[field] = ["Start and end dates go with the custom period only."]
        if ("from" in attrs or "to" in attrs) and "period" in attrs:
            errors["period"] = ["Pick either a period or from/to dates, not both."]
        if errors:
            raise ValidationError(errors)
        attrs["period_range"] = periods.period_range(name, now=clock.now(), tz=clock.market_tz(),
                                                     start=attrs.get("start"), end=attrs.get("end"))
        return attrs


class AnalyticsView(OwnedViewSetMixin, generics.GenericAPIView):
    """Base of the report views: the caller's closed trades (the selectors scope again)."""

    queryset = PaperTrade.objects.none()
    pagination_class = None

    def owned_queryset(self, user):
        return selectors.closed_trades(user=user)


class PerformanceView(AnalyticsView):
    @extend_schema(parameters=[PerformanceFilterSerializer], responses={200: OpenApiTypes.OBJECT, 400: ERROR},
                   summary="Performance metrics, breakdowns, equity curve and daily P&L for a period (net of "
                           "commissions unless ?basis=gross)")
    def get(self, request):
        data = PerformanceFilterSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return Response(selectors.performance(user=request.user, filters=analytics_filters(values),
                                              basis=values["basis"], period=values["period_range"]))


class CalibrationView(AnalyticsView):
    @extend_schema(parameters=[BasisFilterSerializer], responses={200: OpenApiTypes.OBJECT, 400: ERROR},
                   summary="Win rate and expectancy per score decile and verdict; non-monotonic scores flagged")
    def get(self, request):
        filters, basis = _basis_filters(request)
        return Response(selectors.calibration(user=request.user, filters=filters, basis=basis))


class ReplayCellSerializer(serializers.Serializer):
    sl_pct = serializers.IntegerField(help_text="Stop-loss, % below the entry.")
    tp_pct = serializers.IntegerField(help_text="Take-profit, % above the entry.")
    total_pnl = serializers.CharField(help_text="Dollars, before commissions.")
    avg_pnl = serializers.CharField(allow_null=True)
    win_rate = serializers.FloatField(allow_null=True)


class ReplayComparisonSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["grid_better", "same", "own_better"])
    sentence = serializers.CharField()
    booked_minus_replayed = serializers.CharField()


class PolicyExitsSerializer(serializers.Serializer):
    stop = serializers.IntegerField(help_text="Trades sold by the stop (the trade's own, or as the policy moved it).")
    target = serializers.IntegerField(help_text="Trades sold at the target.")
    policy = serializers.IntegerField(help_text="Trades a time stop or the stock's trailing level closed.")
    closed = serializers.IntegerField(help_text="Trades nothing closed: out where they really closed.")


class PolicyFiguresSerializer(serializers.Serializer):
    trades = serializers.IntegerField()
    total_pnl = serializers.CharField(help_text="Dollars, after commissions and fees.")
    gross_pnl = serializers.CharField(help_text="Dollars, premiums only.")
    wins = serializers.IntegerField(help_text="Trades above 0 after commissions and fees.")
    win_rate = serializers.FloatField(allow_null=True)
    avg_hold_hours = serializers.FloatField(allow_null=True, help_text="From the entry to the replayed exit.")
    exits = PolicyExitsSerializer()


class PolicyRowSerializer(PolicyFiguresSerializer):
    key = serializers.CharField(help_text="trail_10, trail_20, …, `preset` (your strategy preset's policy) or "
                                          "`own` (each trade's own policy, as set).")
    policy = serializers.DictField(child=serializers.CharField(), allow_null=True,
                                   help_text="The policy's settings as a trade keeps them; null for `own`.")
    preset = serializers.BooleanField(help_text="Your preset for this strategy has this policy.")
    words = serializers.CharField(help_text="The policy in words, as its chips on a position.")
    vs_own_brackets = serializers.CharField(help_text="Dollars more (or less) than your own brackets replayed.")
    verdict = serializers.ChoiceField(choices=["better", "same", "worse"])
    sentence = serializers.CharField()
    trades_without_stock_price = serializers.IntegerField(
        help_text="For a stock trailing stop: trades whose snapshots recorded no stock price (it never acted).")


class StrategyPoliciesSerializer(serializers.Serializer):
    strategy = serializers.CharField()
    trades = serializers.IntegerField(help_text="Trades replayed.")
    own_brackets = PolicyFiguresSerializer(help_text="Your own stop and target replayed by the same rule.")
    candidates = PolicyRowSerializer(many=True)
    best = serializers.CharField(allow_null=True, help_text="The key of the policy with the most P&L (the first "
                                                           "on a tie), when it beats your own brackets; else null.")
    sentence = serializers.CharField()


class ReplayStrategySerializer(serializers.Serializer):
    strategy = serializers.CharField()
    trades = serializers.IntegerField()
    best = ReplayCellSerializer()
    cells = ReplayCellSerializer(many=True)
    actual_pnl = serializers.CharField(help_text="Booked, before commissions.")
    own_brackets_pnl = serializers.CharField(help_text="Your own brackets replayed, before commissions.")
    comparison = ReplayComparisonSerializer()


class ExitReplaySerializer(serializers.Serializer):
    hindsight = serializers.BooleanField()
    note = serializers.CharField()
    basis = serializers.CharField(help_text="What the SL/TP grid assumes.")
    sl_pct = serializers.ListField(child=serializers.IntegerField())
    tp_pct = serializers.ListField(child=serializers.IntegerField())
    strategies = ReplayStrategySerializer(many=True)


class ExitReplayView(AnalyticsView):
    @extend_schema(parameters=FILTER_PARAMETERS, responses={200: ExitReplaySerializer, 400: ERROR},
                   summary="Hindsight: other SL/TP brackets replayed on recorded paths, best per strategy")
    def get(self, request):
        return Response(selectors.exit_replay(user=request.user, filters=_filters(request)))


class ExitPolicyReplaySerializer(serializers.Serializer):
    hindsight = serializers.BooleanField()
    basis = serializers.CharField(help_text="What the replay assumes: fills, what the engine sees, commissions.")
    max_looks = serializers.IntegerField(help_text="Recorded marks replayed at most, the newest closes first.")
    trades_replayed = serializers.IntegerField()
    trades_left_out = serializers.IntegerField(help_text="Older trades beyond `max_looks`: narrow the dates or "
                                                         "the strategy to reach them.")
    strategies = StrategyPoliciesSerializer(many=True)


class ExitPolicyReplayView(AnalyticsView):
    @extend_schema(parameters=FILTER_PARAMETERS, responses={200: ExitPolicyReplaySerializer, 400: ERROR},
                   summary="Hindsight: trailing, breakeven and time-stop exit policies replayed with the live engine "
                           "inside your brackets on recorded paths, net of commissions, best per strategy")
    def get(self, request):
        return Response(selectors.exit_policy_replay(user=request.user, filters=_filters(request)))


class FillQualityView(AnalyticsView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   summary="Slippage of local-paper fills against the quote's mid, by ticker, DTE and spread; "
                           "Tradier sandbox fills apart, against the nearest snapshot's mark")
    def get(self, request):
        return Response(selectors.fill_quality(user=request.user))


class ForensicsSerializer(serializers.ModelSerializer):
    class Meta:
        model = TradeForensics
        fields = ["trade", "pnl_15m", "pnl_1h", "mfe_pct", "mae_pct", "mfe_at", "mae_at", "first_touch",
                  "first_touch_at", "snapshot_count", "bar_count", "bar_fallback", "computed_at"]
        read_only_fields = fields


class ForensicsView(OwnedViewSetMixin, generics.RetrieveAPIView):
    """One of the caller's trades' forensic values; another user's trade id is 404."""

    serializer_class = ForensicsSerializer
    queryset = TradeForensics.objects.none()
    lookup_field = "trade_id"

    def owned_queryset(self, user):
        return TradeForensics.objects.filter(owner=user)


def _value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):  # breakevens: exact decimals joined by ";"
        return ";".join(_value(item) for item in value)
    return str(value)


def dataset_csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    """The data set as CSV lines: header of DATASET_COLUMNS, then one line per trade."""
    return csv_lines(selectors.DATASET_COLUMNS,
                     ([_value(row[name]) for name in selectors.DATASET_COLUMNS] for row in rows))


class ParquetRenderer(BaseRenderer):
    """Lets `?format=parquet` through content negotiation; the view builds the file itself."""

    media_type = parquet.MEDIA_TYPE
    format = "parquet"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


DATASET_FORMATS = ("csv", "parquet")


class DatasetView(AnalyticsView):
    renderer_classes = [CSVRenderer, ParquetRenderer, JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # JSON is here for errors only (the base renders every error as JSON): not a data set format.
        if not force and request.query_params.get("format", "csv") not in DATASET_FORMATS:
            raise ValidationError({"format": [f"Must be one of: {', '.join(DATASET_FORMATS)}."]})
        return super().perform_content_negotiation(request, force)

    @extend_schema(parameters=[*FILTER_PARAMETERS,
                               OpenApiParameter("format", str, enum=list(DATASET_FORMATS), default="csv")],
                   responses={(200, "text/csv"): OpenApiTypes.STR, (200, parquet.MEDIA_TYPE): OpenApiTypes.BINARY,
                              400: ERROR},
                   summary="The learning data set: one row per closed trade (columns in docs/dataset.md)")
    def get(self, request):
        # Rows are read now, inside the request's tenant-scoped transaction; the body is built from memory.
        rows = list(selectors.dataset_rows(user=request.user, filters=_filters(request)))
        name = f"dataset-{timezone.now():%Y%m%d}"
        if request.query_params.get("format") == "parquet":
            response = HttpResponse(parquet.dataset_parquet(rows), content_type=parquet.MEDIA_TYPE)
            response["Content-Disposition"] = f'attachment; filename="{name}.parquet"'
            return response
        response = StreamingHttpResponse(dataset_csv_lines(iter(rows)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
