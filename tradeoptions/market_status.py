"""`/market-status`: what the pages' top bar shows about the market, as JSON.

It lives in the project package because pages (the trades app) may not import monitoring; the
top bar's script fetches this instead. Monitoring provides the status (`tradeoptions.registry`).
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET

from . import registry


@require_GET
@login_required
def market_status(request):
    status = registry.market_status()
    session = status.session
    body = {
        "open": status.is_open,
        "forced": status.forced,
        "trading_day": session.is_trading_day,
        "early_close": session.early_close,
        "session_close": session.close.isoformat() if session.close else None,
        "next_open": status.next_open.isoformat(),
        "next_close": status.next_close.isoformat(),
        "data_source": settings.MARKET_DATA_SOURCE,
        "at": status.at.isoformat(),
    }
    response = JsonResponse(body)
    add_never_cache_headers(response)
    return response
