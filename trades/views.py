"""Server-rendered pages of the trades app. They render a shell with the few facts the scripts
need (as a `json_script` tag); every number on them comes from the API, fetched by the scripts."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from brokers.models import BrokerMode
from tradeoptions import csp

from . import selectors, services
from .models import CloseReason, OptionType


def _page_context(request) -> dict:
    account = services.account_settings_for(user=request.user)
    return {
        "account": account,
        "is_live": account.broker_mode == BrokerMode.TRADIER_LIVE,
        # Trades placed live stay live after a switch back to paper: the banner keeps saying so.
        "live_trades_open": selectors.live_trades_open_count(user=request.user),
        "page_config": {
            "username": request.user.get_username(),
            "broker_mode": account.broker_mode,
            "auto_refresh": account.auto_refresh,
            "browser_notifications": account.browser_notifications,
            "icon": static("favicon.svg"),
            "push_public_key": services.push_public_key(),
            "refresh_seconds": 15,
            "strategy_presets": account.strategy_presets,
            "urls": {
                "quote": reverse("market-quote"),
                "expirations": reverse("market-expirations"),
                "chain": reverse("market-chain"),
                "trades": "/api/trades",
                "validate": reverse("trade-validate"),
                "spread_preview": reverse("api-spread-preview"),
                "account_summary": reverse("api-account-summary"),
                "history": "/api/trades/history",
                "export": "/api/trades/export",
                "settings": "/api/settings",
                "notification_channels": reverse("notification-channel-list"),
                "push_subscriptions": reverse("push-subscription-list"),
                "service_worker": reverse("service-worker"),
                "performance": "/api/analytics/performance",
                "calibration": "/api/analytics/calibration",
                "exit_replay": "/api/analytics/exit-replay",
                "exit_policy_replay": "/api/analytics/exit-policy-replay",
                "market_status": reverse("market-status"),
                "broker_status": reverse("api-broker-status"),
                "settings_page": reverse("settings"),
                "token": reverse("api-token"),
                "token_revoke": reverse("api-token-revoke"),
                "token_revoke_all": reverse("api-token-revoke-all"),
                "tokens": reverse("api-tokens"),
                "webhook_secret": reverse("api-webhook-secret"),
            },
        },
    }


@login_required
def home(request):
    """The portfolio: open positions, trade history, performance, and a new-trade form."""
    context = _page_context(request)
    context.update({"option_types": OptionType.choices, "close_reasons": CloseReason.choices,
                    "oversold_trades": selectors.trades_oversold(user=request.user)})
    return render(request, "trades/portfolio.html", context)


@login_required
def account_settings(request):
    """Broker mode, account id, write-only broker tokens, limits, notifications and API tokens."""
    context = _page_context(request)
    context["broker_modes"] = BrokerMode.choices
    context["channel_events"] = [(event.value, event.label) for event in services.CHOOSABLE_EVENTS]
    return render(request, "trades/settings.html", context)


@login_required
@require_POST
def back_to_paper(request):
    """One click from live trading back to the local paper broker. Going back to safety needs no
    typed confirmation (going live does); trades already placed live stay managed at Tradier live."""
    services.account_settings_update(user=request.user, changes={"broker_mode": BrokerMode.LOCAL_PAPER})
    return redirect("settings")


THEME_COLOR = "#0f1419"


@require_GET
def service_worker(request):
    """The service worker, served from the site's root so that its scope is every page: it shows a
    push as a notification and a tap on it opens (or focuses) the Portfolio. Public (it holds no
    one's data, and a browser checks it for updates signed in or not); never cached long, so a new
    version reaches the devices. Its own CSP is the pages' (a worker runs under its script's)."""
    worker_config = {"ICON": static("icons/icon-192.png"), "BADGE": static("favicon.svg"), "PORTFOLIO": reverse("home")}
    body = render_to_string("trades/sw.js", {"worker_config": json.dumps(worker_config)})  # our own URLs, as JSON
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = "/"
    response[csp.ContentSecurityPolicyMiddleware.HEADER] = csp.POLICY
    return response


@require_GET
def web_app_manifest(request):
    """What makes the site installable (a home-screen app on a phone, which Web Push on iOS needs)."""
    icons = [{"src": static(f"icons/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
              "purpose": "any maskable"} for size in (192, 512)]
    manifest = {"name": "tradeoptions", "short_name": "tradeoptions", "id": reverse("home"),
                "start_url": reverse("home"), "scope": "/", "display": "standalone",
                "background_color": THEME_COLOR, "theme_color": THEME_COLOR,
                "icons": [*icons, {"src": static("favicon.svg"), "sizes": "any", "type": "image/svg+xml"}]}
    return JsonResponse(manifest, content_type="application/manifest+json")
