"""API tokens for scripts and scanners: issued with a username/password, stored hashed by knox."""

from knox.views import LoginView
from rest_framework.authentication import BasicAuthentication, SessionAuthentication


class TokenLoginView(LoginView):
    """POST with HTTP Basic (or a session) to get a token; the token is shown only this once."""

    authentication_classes = [BasicAuthentication, SessionAuthentication]
