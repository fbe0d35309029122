"""Server-rendered pages of the trades app."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors, services
from .models import ACTIVE_STATUSES


@login_required
def home(request):
    trades = selectors.trade_list(user=request.user)
    return render(
        request,
        "trades/home.html",
        {
            "account": services.account_settings_for(user=request.user),
            "active_trades": trades.filter(status__in=ACTIVE_STATUSES)[:100],
            "recent_closed": trades.exclude(status__in=ACTIVE_STATUSES)[:20],
        },
    )
