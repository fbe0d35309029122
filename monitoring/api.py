"""The market data API: quotes, listed expirations and option chains from the configured source
(monitoring/selectors.py holds the rules; these views parse, call one selector, render).

No rows of anyone's are read: the views run outside the request's tenant transaction (the
market is the same for everyone), token or session, in the API's one error shape.
"""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from tradeoptions.api import ERROR, BoundedDateField, OwnedViewSetMixin, TraderWords
from tradeoptions.words import day_text

from . import selectors
from .marketdata import MarketDataError, ProviderAuthError, ProviderThrottled, UnknownSymbol

MAX_SYMBOLS = 50
_TICKER = r"[A-Za-z][A-Za-z0-9]{0,5}(/[A-Za-z])?"  # BRK/B is Tradier's spelling of BRK.B
_OCC = r"[A-Za-z][A-Za-z0-9]{0,5}[0-9]{6}[CPcp][0-9]{8}"
_SYMBOL = f"(?:{_OCC}|{_TICKER})"
TICKER = re.compile(_TICKER)
SYMBOLS = re.compile(f"{_SYMBOL}(,{_SYMBOL}){{0,{MAX_SYMBOLS - 1}}}")
PRICE = {"max_digits": 14, "decimal_places": 4, "allow_null": True}
GREEK = {"max_digits": 14, "decimal_places": 6, "allow_null": True}


class MarketDataUnavailable(APIException):
    status_code = 503
    default_code = "market_data_unavailable"
    default_detail = "Market data is unavailable right now; try again in a moment."


class QuoteSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    kind = serializers.ChoiceField(choices=["underlying", "option"])
    last = serializers.DecimalField(**PRICE)
    bid = serializers.DecimalField(**PRICE)
    ask = serializers.DecimalField(**PRICE)
    prev_close = serializers.DecimalField(**PRICE, required=False, help_text="Underlyings: the previous close.")
    change = serializers.DecimalField(**PRICE, required=False, help_text="Underlyings: last − previous close.")
    change_pct = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True, required=False)
    mid = serializers.DecimalField(**PRICE, required=False)
    mark = serializers.DecimalField(**PRICE, required=False)
    volume = serializers.IntegerField(allow_null=True, required=False)
    open_interest = serializers.IntegerField(allow_null=True, required=False)
    iv = serializers.DecimalField(**GREEK, required=False, help_text="A fraction: 0.25 is 25 %.")
    delta = serializers.DecimalField(**GREEK, required=False)
    underlying_price = serializers.DecimalField(**PRICE, required=False)
    quote_time = serializers.DateTimeField(help_text="The source's own time of the quote.")
    age_seconds = serializers.IntegerField(help_text="Seconds between quote_time and now.")
    source = serializers.CharField(help_text="simulated, orats, replay or tradier.")
    delayed = serializers.BooleanField(help_text="The source is late by design (ORATS delayed, Tradier sandbox).")


class QuotesSerializer(serializers.Serializer):
    quotes = QuoteSerializer(many=True)
    unknown = serializers.ListField(child=serializers.CharField(), help_text="Symbols the source does not know.")


class ExpirationSerializer(serializers.Serializer):
    date = serializers.DateField()
    dte = serializers.IntegerField(help_text="Calendar days from today (New York).")
    kind = serializers.ChoiceField(choices=["weekly", "monthly"],
                                   help_text="monthly: the third Friday (the session before it on a holiday).")


class ExpirationsSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    expirations = ExpirationSerializer(many=True)


class ChainRowSerializer(serializers.Serializer):
    strike = serializers.DecimalField(max_digits=14, decimal_places=4)
    call = QuoteSerializer(allow_null=True)
    put = QuoteSerializer(allow_null=True)


class ChainSerializer(serializers.Serializer):
    ticker = serializers.CharField()
    expiry = serializers.DateField()
    underlying_price = serializers.DecimalField(**PRICE)
    source = serializers.CharField()
    delayed = serializers.BooleanField()
    strikes = ChainRowSerializer(many=True)


@extend_schema_field({"type": "string", "pattern": f"^{_TICKER}$", "example": "SPY"})
class TickerField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not TICKER.fullmatch(value):
            raise ValidationError(f"{value[:20]!r} is not a ticker (a letter, then up to 5 letters or digits).")
        return value.upper()


@extend_schema_field({"type": "string", "pattern": f"^{SYMBOLS.pattern}$", "example": "SPY,SPY261218C00570000"})
class SymbolsField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not SYMBOLS.fullmatch(value):
            raise ValidationError(f"Give up to {MAX_SYMBOLS} tickers (SPY) or option symbols (SPY261218C00570000), "
                                  "separated by commas.")
        return list(dict.fromkeys(value.upper().split(",")))


class QuoteQuery(TraderWords, serializers.Serializer):
    symbols = SymbolsField(help_text="Comma-separated tickers or OCC option symbols.")

    labels = {"symbols": "tickers or option symbols"}


class ExpirationsQuery(TraderWords, serializers.Serializer):
    ticker = TickerField()


class ChainQuery(TraderWords, serializers.Serializer):
    ticker = TickerField()
    expiry = BoundedDateField(help_text="One of the ticker's listed expiries (GET /api/market/expirations).")
    strikes = serializers.IntegerField(min_value=1, max_value=100, required=False,
                                       default=selectors.CHAIN_STRIKES_EACH_SIDE,
                                       help_text="Strikes each side of the money.")

    labels = {"strikes": "number of strikes each side"}


def _query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class MarketView(OwnedViewSetMixin, APIView):
    """Market data has no owner: no tenant transaction is opened (`get` runs stepwise, and reads
    nothing from the database)."""

    stepwise_actions = frozenset({"get"})

    def owned_queryset(self, user):  # pragma: no cover - no rows here
        raise NotImplementedError

    def handle_exception(self, exc):
        if isinstance(exc, UnknownSymbol):
            exc = NotFound(str(exc), code="unknown_ticker")
        elif isinstance(exc, ProviderAuthError):
            exc = MarketDataUnavailable("The market-data source refused our credentials; the operators are told.")
        elif isinstance(exc, MarketDataError):
            retry = exc.retry_after if isinstance(exc, ProviderThrottled) else None
            response = super().handle_exception(MarketDataUnavailable(str(exc)))
            response["Retry-After"] = str(max(1, int(retry or 1) + (1 if retry and retry % 1 else 0)))
            return response
        return super().handle_exception(exc)


_ERRORS = {400: ERROR, 404: ERROR, 503: ERROR}


class QuoteView(MarketView):
    @extend_schema(
        summary="Quotes of tickers and option symbols (cached a few seconds, shared by every user)",
        parameters=[QuoteQuery],
        responses={200: QuotesSerializer, **_ERRORS},
    )
    def get(self, request):
        symbols = _query(QuoteQuery, request)["symbols"]
        quotes, unknown = selectors.market_quotes(symbols=symbols)
        if not quotes:
            raise NotFound(f"Unknown symbol{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
                           code="unknown_ticker")
        return Response(QuotesSerializer({"quotes": quotes, "unknown": unknown}).data)


class ExpirationsView(MarketView):
    @extend_schema(
        summary="The listed expiries of a ticker's options, with days to expiry, weekly or monthly",
        parameters=[ExpirationsQuery],
        responses={200: ExpirationsSerializer, **_ERRORS},
    )
    def get(self, request):
        ticker = _query(ExpirationsQuery, request)["ticker"]
        expirations = selectors.market_expirations(ticker=ticker)
        return Response(ExpirationsSerializer({"ticker": ticker, "expirations": expirations}).data)


class ChainView(MarketView):
    @extend_schema(
        summary="The option chain of one listed expiry around the money: calls and puts by strike",
        parameters=[ChainQuery],
        responses={200: ChainSerializer, **_ERRORS},
    )
    def get(self, request):
        query = _query(ChainQuery, request)
        listed = [row["date"] for row in selectors.market_expirations(ticker=query["ticker"])]
        if query["expiry"] not in listed:
            upcoming = "; ".join(day_text(day) for day in listed[:4])
            raise ValidationError({"expiry": [
                f"{query['ticker']} has no options expiring {day_text(query['expiry'])}. "
                f"Listed: {upcoming}{' …' if len(listed) > 4 else ''}."]})
        chain = selectors.market_chain(ticker=query["ticker"], expiry=query["expiry"], strikes=query["strikes"])
        return Response(ChainSerializer(chain).data)
