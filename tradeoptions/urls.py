from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, reverse_lazy

from .api_docs import DocsPage, SchemaView
from .auth import (
    PasswordChangePage,
    TokenDetailView,
    TokenListView,
    TokenLoginView,
    TokenRevokeAllView,
    TokenRevokeView,
    sign_out_everywhere_page,
)
from .market_status import market_status

# The project package imports no app: each app's routes are included by name.
urlpatterns = [
    path("market-status", market_status, name="market-status"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", PasswordChangePage.as_view(success_url=reverse_lazy("password-changed")),
         name="password-change"),
    path("account/password/changed/", auth_views.PasswordChangeDoneView.as_view(), name="password-changed"),
    path("account/sign-out-everywhere", sign_out_everywhere_page, name="sign-out-everywhere"),
    path("admin/", admin.site.urls),
    path("api/auth/token", TokenLoginView.as_view(), name="api-token"),
    path("api/auth/token/revoke", TokenRevokeView.as_view(), name="api-token-revoke"),
    path("api/auth/token/revoke-all", TokenRevokeAllView.as_view(), name="api-token-revoke-all"),
    path("api/auth/tokens", TokenListView.as_view(), name="api-tokens"),
    path("api/auth/tokens/<str:token_key>", TokenDetailView.as_view(), name="api-token-detail"),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),  # login unless API_DOCS_PUBLIC
    path("api/docs/", DocsPage.as_view(), name="api-docs"),  # the same; vendored Swagger UI
    path("api/analytics/", include("analytics.urls")),
    path("api/market/", include("monitoring.urls")),  # quotes, expirations, chains
    path("", include("trades.urls")),  # the pages, /api/settings and /api/trades
]

handler404 = "tradeoptions.errors.not_found"
handler500 = "tradeoptions.outages.server_error"  # PostgreSQL or Redis down: 503, not 500
