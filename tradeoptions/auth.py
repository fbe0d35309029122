"""API tokens for scripts and scanners: issued with a username/password, stored hashed by knox.

Knox's own views revoke only the token a request is made with. The settings page signs in with a
session, so it lists and revokes the caller's tokens by their `token_key`: knox's short prefix of
a token, enough to tell tokens apart and useless to authenticate with. The digest never leaves
the server, and the token itself is shown once, when it is issued.

Knox's table is not under row-level security: every read and write here filters on the user
explicitly, and another user's key is simply not found (404).

A token lives `REST_KNOX["TOKEN_TTL"]` (`API_TOKEN_TTL_DAYS`, 30 days) unless made with another
expiry. A new password ends every token of the user, whichever way it was set (the settings page,
the admin, `manage.py changepassword`): `TokensEndWithThePassword`. "Sign out everywhere" ends the
tokens and every other session.
"""

from django import forms
from django.contrib.auth import SESSION_KEY, authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Q, QuerySet
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from knox import views as knox_views
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .parsers import NestingLimitedJSONParser

TOKEN_RESPONSE = inline_serializer(
    "IssuedToken", {"token": serializers.CharField(), "expiry": serializers.DateTimeField(allow_null=True)}
)


# --- selector and service -----------------------------------------------------------------------


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[AuthToken]:
    """The user's tokens that still authenticate, newest first."""
    alive = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return AuthToken.objects.filter(alive, user=user).order_by("-created", "token_key")


def api_token_revoke(*, user: AbstractBaseUser, token_key: str) -> bool:
    """Revoke the user's token with this key (all of them, in the unlikely case two share it).
    False if the user has none: another user's key is not theirs to know about."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    return deleted > 0


def api_token_revoke_all(*, user: AbstractBaseUser) -> int:
    """Revoke every token of the user (the settings page's "sign out every API token", made with the
    session: knox's own logoutall needs one of the tokens). How many were revoked."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted


def sessions_end_others(*, user: AbstractBaseUser, keep: str | None) -> int:
    """End every live session of the user but `keep` (the one asking). How many ended.

    Sessions are stored by key, not by user, so this reads each live session once: a handful per
    trader here. (Sessions also end on their own when the password changes: Django checks each
    against a hash of the password.)
    """
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.session_key != keep and session.get_decoded().get(SESSION_KEY) == str(user.pk):
            session.delete()
            ended += 1
    return ended


@transaction.atomic
def sign_out_everywhere(*, user: AbstractBaseUser, keep_session: str | None) -> tuple[int, int]:
    """Every API token of the user, and every session but the one asking: (tokens, sessions) ended."""
    return api_token_revoke_all(user=user), sessions_end_others(user=user, keep=keep_session)


class TokensEndWithThePassword:
    """A new password ends every API token of the user.

    Listed in AUTH_PASSWORD_VALIDATORS for its `password_changed` hook, which Django calls after
    every password change that goes through `set_password` and `save` (the settings page's form,
    the admin's, `changepassword`): the one place all of them pass. Validating it leaves to the
    others. A password written any other way (a raw UPDATE) is not seen.
    """

    def validate(self, password, user=None):
        return None

    def password_changed(self, password, user=None):
        if user is not None and user.pk is not None:
            api_token_revoke_all(user=user)

    def get_help_text(self):
        return "A new password signs out every API token you hold."


# --- views ----------------------------------------------------------------------------------------


class TokenLoginView(knox_views.LoginView):
    """POST with HTTP Basic (or a session) to get a token; the token is shown only this once."""

    authentication_classes = [BasicAuthentication, SessionAuthentication]
    # The credentials come in the Authorization header; the body is ignored, whatever its type (curl
    # and HTTP libraries send form bodies by default). django-axes reads it for a username when a login
    # fails: the API's JSON-only parsing would answer 415 there instead of counting the failure.
    parser_classes = [NestingLimitedJSONParser, FormParser, MultiPartParser]

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


class ApiTokenSerializer(serializers.ModelSerializer):
    token_key = serializers.CharField(read_only=True, help_text="The token's first characters: names it, "
                                                                "cannot authenticate.")

    class Meta:
        model = AuthToken
        fields = ["token_key", "created", "expiry"]
        read_only_fields = fields


class TokenListView(APIView):
    """The caller's API tokens (with a session or a token); DELETE revokes them all."""

    @extend_schema(summary="List my API tokens (never the tokens themselves)",
                   responses={200: ApiTokenSerializer(many=True)})
    def get(self, request):
        return Response(ApiTokenSerializer(api_token_list(user=request.user), many=True).data)

    @extend_schema(operation_id="auth_tokens_revoke_all",
                   summary="Revoke every one of my API tokens (a session needs its CSRF token)",
                   request=None,
                   responses={200: inline_serializer("RevokedTokens", {"revoked": serializers.IntegerField()})})
    def delete(self, request):
        return Response({"revoked": api_token_revoke_all(user=request.user)})


class TokenDetailView(APIView):
    """One of the caller's API tokens, by its key."""

    @extend_schema(summary="Revoke one of my API tokens by its token_key",
                   responses={204: OpenApiResponse(description="Token revoked."),
                              404: OpenApiResponse(description="No token of yours has this key.")})
    def delete(self, request, token_key: str):
        if not api_token_revoke(user=request.user, token_key=token_key):
            raise NotFound("No token of yours has this key.")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- pages -----------------------------------------------------------------------------------------


@login_required
@require_POST
def sign_out_everywhere_page(request):
    """The settings page's "Sign out everywhere": every API token and every other session end;
    this browser stays signed in."""
    tokens, sessions = sign_out_everywhere(user=request.user, keep_session=request.session.session_key)
    return render(request, "registration/signed_out_everywhere.html", {"tokens": tokens, "sessions": sessions})


class GuardedPasswordChangeForm(PasswordChangeForm):
    """Django's form, with the current password checked through `authenticate`: a wrong one counts
    as a failed sign-in and meets the same lock (tradeoptions/lockout.py), so a borrowed session
    cannot be used to guess the password without limit."""

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        if authenticate(self.request, username=self.user.get_username(), password=old_password) is None:
            raise forms.ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password


class PasswordChangePage(auth_views.PasswordChangeView):
    """Keeps this session signed in; the others end (Django checks each against the password),
    and so does every API token (TokensEndWithThePassword)."""

    form_class = GuardedPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}
