"""The API's OpenAPI document (/api/schema/) and its Swagger UI page (/api/docs/).

Both need a login (a session or an API token) unless API_DOCS_PUBLIC opens them: the document
lists every route, field and limit of the API, which is a map worth not handing to anyone who
asks. The page is served from our own static files (drf-spectacular-sidecar, pinned), so it
works offline and under the same Content-Security-Policy as every other page: no CDN, no inline
script. Its one script, `static/js/api_docs.js`, reads its settings from a JSON script tag.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import BasePermission


class DocsAccess(BasePermission):
    """Signed in, or the docs are public (API_DOCS_PUBLIC, read on each request)."""

    def has_permission(self, request, view) -> bool:
        return bool(settings.API_DOCS_PUBLIC or (request.user and request.user.is_authenticated))


class SchemaView(SpectacularAPIView):
    """The OpenAPI document; without a login, the API's 401 in its one error shape."""

    permission_classes = [DocsAccess]


class DocsPage(SpectacularSwaggerView):
    """Swagger UI from the vendored files; without a login, the login page (then back here)."""

    permission_classes = [DocsAccess]
    template_name = "api/docs.html"
    url_name = "api-schema"

    def handle_exception(self, exc):
        if isinstance(exc, (NotAuthenticated, AuthenticationFailed)):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)

    @extend_schema(exclude=True)  # a page, not an operation of the API
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        # What the page's script needs, as data (a JSON script tag), never as inline code.
        response.data["config"] = {
            "schemaUrl": response.data["schema_url"],
            "csrfHeader": response.data["csrf_header_name"],
            "settings": spectacular_settings.SWAGGER_UI_SETTINGS,
        }
        # drf-spectacular opens the opener policy for OAuth pop-ups; this page has none, so it
        # keeps the site's own (same-origin, set by SecurityMiddleware).
        del response.headers["Cross-Origin-Opener-Policy"]
        return response
