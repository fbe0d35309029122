"""REST API of the trades app: translate HTTP to selectors/services and back, nothing more."""

from rest_framework import mixins, serializers, viewsets

from tradeoptions import tenancy

from . import selectors
from .models import PaperTrade


class OwnedViewSetMixin:
    """The one place API querysets come from: always the authenticated user's rows.

    Sealed: subclasses narrow `owned_queryset(user)`; they may not replace `get_queryset`.
    Another user's id is simply not in the queryset, so it answers 404, never 403.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must narrow owned_queryset(user), not replace get_queryset().")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # DRF has authenticated the request (token or session): scope the transaction to it.
        tenancy.scope_transaction_to(request.user.pk)

    def owned_queryset(self, user):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user, no rows
            return self.queryset
        return self.owned_queryset(self.request.user)


class TradeSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaperTrade
        fields = [
            "id", "ticker", "option_type", "strike", "expiry", "option_symbol", "qty",
            "entry_price", "entry_date", "sl_price", "tp_price", "status", "close_reason",
            "close_price", "close_date", "current_price", "current_bid", "current_ask",
            "last_updated", "unrealized_pnl", "realized_pnl", "realized_pnl_pct", "strategy",
            "broker_mode", "version", "created_at",
        ]
        read_only_fields = fields


class TradeViewSet(OwnedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The signed-in trader's trades, newest first; `?status=OPEN` narrows by state."""

    serializer_class = TradeSerializer
    queryset = PaperTrade.objects.none()  # the model, for the schema; rows come from owned_queryset

    def owned_queryset(self, user):
        return selectors.trade_list(user=user, status=self.request.query_params.get("status"))
