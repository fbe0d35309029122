"""Which request, task and trade a log line belongs to.

Three context variables (request id, Celery task id, trade id) are filled in where they become
known and copied onto every log record by `LogContextFilter`, so a line can be traced back to
the HTTP request or the task that wrote it, and to the trade it was about, without each call
site repeating them. Context variables (not thread-locals) so that threads and async code each
see their own.

Production writes one JSON object per line, locally a readable line; settings (LOGGING) pick
one with LOG_FORMAT. Broker tokens are never passed to a logger (tests/test_token_secrecy.py),
and nothing here adds request headers, query strings or bodies to a record.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

from celery.signals import task_postrun, task_prerun

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
current_task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
current_trade_id: ContextVar[int | None] = ContextVar("trade_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and plain, so it cannot forge log lines or headers.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class LogContextFilter(logging.Filter):
    """Stamps each record with the current request, task and trade ids (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        record.task_id = current_task_id.get()
        record.trade_id = current_trade_id.get()
        return True


_STAMP = LogContextFilter()


class ContextTextFormatter(logging.Formatter):
    """The readable local format: `[req=… task=… trade=…] ` with only the ids that are known, so a
    line from a shell or a startup message carries no row of Nones."""

    def format(self, record: logging.LogRecord) -> str:
        known = [f"{label}={getattr(record, name, None)}" for label, name in
                 (("req", "request_id"), ("task", "task_id"), ("trade", "trade_id"))
                 if getattr(record, name, None) is not None]
        record.context = f"[{' '.join(known)}] " if known else ""
        return super().format(record)


def stamp_every_record() -> None:
    """Stamp the ids when a record is made, not only when our handler formats it, so every handler
    (a test's capture, an error tracker) sees them too. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "stamps_log_context", False):
        return

    def stamped(*args, **kwargs):
        record = factory(*args, **kwargs)
        _STAMP.filter(record)
        return record

    stamped.stamps_log_context = True
    logging.setLogRecordFactory(stamped)


@contextmanager
def about_trade(trade: int | None):
    """Log lines written inside the block name this trade (nests: the innermost wins)."""
    token = current_trade_id.set(None if trade is None else int(trade))
    try:
        yield
    finally:
        current_trade_id.reset(token)


def incoming_request_id(value: str | None) -> str:
    """The caller's X-Request-ID when it is acceptable, else a new one."""
    if value and _ACCEPTABLE_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID (a proxy's or a client's) or makes one, puts it in the log
    context for the request, and returns it in the response, so a user's report can be matched
    with our logs. Also writes the access line (method, path without its query, status, time):
    through our logging, so it is JSON in production and carries the request id, which
    gunicorn's own access log could do neither of."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = rid
        token = current_request_id.set(rid)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            _access(request, response.status_code, started)
        finally:
            current_request_id.reset(token)
        return response


access_logger = logging.getLogger("tradeoptions.access")


def _access(request, status: int, started: float) -> None:
    if request.path == "/healthz" and status == 200:
        return  # the probes' steady heartbeat is not news; a failing probe is logged
    elapsed = round((time.monotonic() - started) * 1000, 1)
    access_logger.info("%s %s %s %sms", request.method, request.path, status, elapsed,
                       extra={"method": request.method, "path": request.path, "status": status,
                              "duration_ms": elapsed})


_task_tokens: dict[str, object] = {}


@task_prerun.connect
def _task_started(task_id=None, **kwargs):
    """Celery's signals: every line a task writes carries its id (worker and eager runs alike)."""
    _task_tokens[task_id] = current_task_id.set(task_id)


@task_postrun.connect
def _task_finished(task_id=None, **kwargs):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        current_task_id.reset(token)
