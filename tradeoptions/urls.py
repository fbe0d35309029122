from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from trades.api import AccountSettingsView, BrokerStatusView, TradeViewSet, WebhookSecretView
from trades.views import account_settings, back_to_paper, home

from .auth import TokenDetailView, TokenListView, TokenLoginView, TokenRevokeAllView, TokenRevokeView
from .market_status import market_status

router = DefaultRouter(trailing_slash=False)
router.register("trades", TradeViewSet, basename="trade")

urlpatterns = [
    path("", home, name="home"),
    path("settings/", account_settings, name="settings"),
    path("settings/paper", back_to_paper, name="settings-paper"),
    path("market-status", market_status, name="market-status"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/auth/token", TokenLoginView.as_view(), name="api-token"),
    path("api/auth/token/revoke", TokenRevokeView.as_view(), name="api-token-revoke"),
    path("api/auth/token/revoke-all", TokenRevokeAllView.as_view(), name="api-token-revoke-all"),
    path("api/auth/tokens", TokenListView.as_view(), name="api-tokens"),
    path("api/auth/tokens/<str:token_key>", TokenDetailView.as_view(), name="api-token-detail"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/settings", AccountSettingsView.as_view(), name="api-settings"),
    path("api/settings/webhook-secret", WebhookSecretView.as_view(), name="api-webhook-secret"),
    path("api/broker-status", BrokerStatusView.as_view(), name="api-broker-status"),
    path("api/analytics/", include("analytics.urls")),
    path("api/", include(router.urls)),
]

handler404 = "tradeoptions.errors.not_found"
handler500 = "tradeoptions.outages.server_error"  # PostgreSQL or Redis down: 503, not 500
