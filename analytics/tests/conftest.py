import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient


@pytest.fixture
def api_as():
    def client_for(user):
        client = APIClient()
        _, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    return client_for


def _refuse(constant):
    raise AssertionError(f"{constant} in JSON")


@pytest.fixture
def strict_json():
    """The body parsed so that NaN or Infinity fail the test."""
    import json

    return lambda response: json.loads(response.content, parse_constant=_refuse)
