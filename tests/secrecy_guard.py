"""A pytest plugin guarding the whole test run: no broker token, plain or encrypted, in any
response, page, log line or error report that any test produces.

Every token the run creates is known to it: each one is encrypted by the vault (`brokers.crypto`)
or handed to a Tradier client, so both are watched, and the plaintext and its Fernet ciphertext are
remembered. Every response Django produces (test client, WSGI, live server; streamed bodies too)
and every log record (with its traceback) is searched for them as it passes. A test that leaks
fails at its teardown, naming where the token appeared; a leak outside any test fails the run.

Cheap by design: a substring search per response and per log record, over a handful of tokens.
Log records are seen at the level their logger lets through (INFO, or what a test sets).
"""

import logging

import pytest

# A token worth watching looks like one: long, letters and digits. The fuzzer stores made-up tokens
# too ("validation_error", "x"), which would be found by chance in any answer.
MIN_SECRET_LENGTH = 12
WEBHOOK_SECRET_PREFIX = "whsec_"

_secrets: set[str] = set()
_leaks: list[str] = []


def remember(*values: str) -> None:
    for value in values:
        if (isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and any(c.isdigit() for c in value)
                and any(c.isalpha() for c in value)):
            _secrets.add(value)


def _scan(text: str, where: str) -> None:
    for secret in _secrets:
        if secret in text:
            _leaks.append(f"{where}: {'ciphertext' if secret.startswith('gAAAA') else 'token'} {secret[:6]}…")


def _scan_bytes(content: bytes, where: str) -> None:
    if _secrets:
        _scan(content.decode("utf-8", "replace"), where)


def _watch_log_records() -> None:
    """At `Logger.handle`, which every record that passes its logger's level goes through once,
    whatever handlers a test or a logging configuration installs or removes."""
    handle = logging.Logger.handle

    def watched_handle(self, record):
        if _secrets:
            text = record.getMessage()
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            _scan(text, f"log record of {record.name}")
        return handle(self, record)

    logging.Logger.handle = watched_handle


def _watch_vault() -> None:
    from brokers import crypto

    def watched(operation):
        def run(value: str) -> str:
            result = operation(value)
            # A webhook signing secret is shown to its owner once, by design (POST
            # /api/settings/webhook-secret); its own tests prove it is shown nowhere else.
            if not any(str(v).startswith(WEBHOOK_SECRET_PREFIX) for v in (value, result)):
                remember(value, result)
            return result

        run.__wrapped__ = operation
        return run

    crypto.encrypt = watched(crypto.encrypt)
    crypto.decrypt = watched(crypto.decrypt)
    crypto.rotate = watched(crypto.rotate)


def _watch_tradier_clients() -> None:
    from brokers.tradier import TradierClient

    init = TradierClient.__init__

    def watched_init(self, *args, token: str, **kwargs):
        remember(token)
        init(self, *args, token=token, **kwargs)

    TradierClient.__init__ = watched_init


def _watch_responses() -> None:
    from django.core.handlers.base import BaseHandler

    get_response = BaseHandler.get_response

    def watched_get_response(self, request):
        response = get_response(self, request)
        where = f"response to {request.method} {request.path}"
        if getattr(response, "streaming", False):
            response.streaming_content = _watched_stream(response.streaming_content, where)
        else:
            _scan_bytes(response.content, where)
        for header, value in response.items():
            _scan(value, f"{where}, header {header}")
        return response

    BaseHandler.get_response = watched_get_response


def _watched_stream(chunks, where):
    for chunk in chunks:
        _scan_bytes(chunk if isinstance(chunk, bytes) else str(chunk).encode(), where)
        yield chunk


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    _watch_vault()
    _watch_tradier_clients()
    _watch_responses()
    _watch_log_records()


@pytest.fixture(autouse=True)
def _no_broker_token_leaks():
    _leaks.clear()
    yield
    if _leaks:
        leaks, _leaks[:] = sorted(set(_leaks)), []
        pytest.fail("A broker token leaked:\n" + "\n".join(leaks), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    if _leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nA broker token leaked outside any test:\n" + "\n".join(sorted(set(_leaks))))
