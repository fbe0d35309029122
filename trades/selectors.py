"""Reads of the trades app. Always scoped to the user passed in (row-level security backs it up)."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from .models import PaperTrade


def trade_list(*, user: AbstractBaseUser, status: str | None = None) -> QuerySet[PaperTrade]:
    trades = PaperTrade.objects.filter(owner=user)
    if status:
        trades = trades.filter(status=status)
    return trades


def trade_get(*, user: AbstractBaseUser, trade_id: int) -> PaperTrade:
    """Raises PaperTrade.DoesNotExist for another user's trade, exactly as for a missing one."""
    return trade_list(user=user).get(pk=trade_id)
