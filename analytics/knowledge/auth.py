"""Who is calling: an API token, the same knox token the REST API takes, turned into its user.

Knox's table is not under row-level security, so this runs outside any tenant context; it never
needs (nor gets) the system context.
"""

from django.contrib.auth.models import AbstractBaseUser
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


class InvalidToken(Exception):
    """No token, an unknown, expired or revoked one, or one whose user is inactive."""


def user_for_token(token: str) -> tuple[AbstractBaseUser, str]:
    """The active user `token` belongs to, and the token's key (knox's short prefix of it: names
    the token in logs and sessions, cannot authenticate). Exactly the REST API's check: knox's."""
    if not token:
        raise InvalidToken("No API token given.")
    try:
        user, auth_token = TokenAuthentication().authenticate_credentials(token.encode())
    except AuthenticationFailed as error:
        raise InvalidToken(str(error.detail)) from None
    return user, auth_token.token_key
