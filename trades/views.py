"""Server-rendered pages of the trades app. They render a shell with the few facts the scripts
need (as a `json_script` tag); every number on them comes from the API, fetched by the scripts."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from brokers.models import BrokerMode

from . import services
from .models import CloseReason, OptionType


def _page_context(request) -> dict:
    account = services.account_settings_for(user=request.user)
    return {
        "account": account,
        "is_live": account.broker_mode == BrokerMode.TRADIER_LIVE,
        "page_config": {
            "username": request.user.get_username(),
            "broker_mode": account.broker_mode,
            "auto_refresh": account.auto_refresh,
            "refresh_seconds": 15,
            "urls": {
                "trades": "/api/trades",
                "validate": reverse("trade-validate"),
                "history": "/api/trades/history",
                "export": "/api/trades/export",
                "settings": "/api/settings",
                "performance": "/api/analytics/performance",
                "calibration": "/api/analytics/calibration",
                "exit_replay": "/api/analytics/exit-replay",
                "market_status": reverse("market-status"),
                "settings_page": reverse("settings"),
                "token": reverse("api-token"),
                "token_revoke": reverse("api-token-revoke"),
                "token_revoke_all": reverse("api-token-revoke-all"),
                "tokens": reverse("api-tokens"),
            },
        },
    }


@login_required
def home(request):
    """The portfolio: open positions, trade history, performance, and a new-trade form."""
    context = _page_context(request)
    context.update({"option_types": OptionType.choices, "close_reasons": CloseReason.choices})
    return render(request, "trades/portfolio.html", context)


@login_required
def account_settings(request):
    """Broker mode, account id, write-only broker tokens, limits and API tokens."""
    context = _page_context(request)
    context["broker_modes"] = BrokerMode.choices
    return render(request, "trades/settings.html", context)
