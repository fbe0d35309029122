"""API tokens for scripts and scanners: issued with a username/password, stored hashed by knox."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox import views as knox_views
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication

TOKEN_RESPONSE = inline_serializer(
    "IssuedToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField(allow_null=True)}
)


class TokenLoginView(knox_views.LoginView):
    """POST with HTTP Basic (or a session) to get a token; the token is shown only this once."""

    authentication_classes = [BasicAuthentication, SessionAuthentication]

    @extend_schema(request=None, responses={200: TOKEN_RESPONSE})
    def post(self, request, format=None):
        return super().post(request, format)


class TokenRevokeView(knox_views.LogoutView):
    """Revoke the token this request was made with."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Token revoked.")})
    def post(self, request, format=None):
        return super().post(request, format)


class TokenRevokeAllView(knox_views.LogoutAllView):
    """Revoke every token of the caller (e.g. after a laptop was lost)."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="All tokens revoked.")})
    def post(self, request, format=None):
        return super().post(request, format)
