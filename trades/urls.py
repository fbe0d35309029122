from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import api, api_channels, api_spreads, views

router = DefaultRouter(trailing_slash=False)
router.register("trades", api.TradeViewSet, basename="trade")
router.register("notification-channels", api_channels.NotificationChannelViewSet, basename="notification-channel")
router.register("push-subscriptions", api_channels.PushSubscriptionViewSet, basename="push-subscription")

urlpatterns = [
    path("", views.home, name="home"),
    # The service worker sits at the root so that its scope is the whole site; the manifest beside it.
    path("sw.js", views.service_worker, name="service-worker"),
    path("manifest.webmanifest", views.web_app_manifest, name="web-app-manifest"),
    path("settings/", views.account_settings, name="settings"),
    path("settings/paper", views.back_to_paper, name="settings-paper"),
    path("api/settings", api.AccountSettingsView.as_view(), name="api-settings"),
    path("api/settings/webhook-secret", api.WebhookSecretView.as_view(), name="api-webhook-secret"),
    path("api/account/summary", api.AccountSummaryView.as_view(), name="api-account-summary"),
    path("api/broker-status", api.BrokerStatusView.as_view(), name="api-broker-status"),
    path("api/spreads/preview", api_spreads.SpreadPreviewView.as_view(), name="api-spread-preview"),
    path("api/", include(router.urls)),
]
