import pytest


def _refuse(constant):
    raise AssertionError(f"{constant} in JSON")


@pytest.fixture
def strict_json():
    """The body parsed so that NaN or Infinity fail the test."""
    import json

    return lambda response: json.loads(response.content, parse_constant=_refuse)
