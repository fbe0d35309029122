"""When PostgreSQL or Redis is down: a 503 that names what is missing, not a 500.

An outage is not a bug in the request: the client should retry in a moment, and a load balancer
or the UI should say "unavailable", not "error". Two doors lead here. Inside a DRF view the
API's exception handler turns the driver's error into a 503 in the one error shape; anywhere
else (the tenant transaction opened by middleware, sessions, pages) Django's 500 handler finds
the error that is being handled and answers 503 instead. `/healthz` reports the same outage on
its own (tradeoptions/health.py).
"""

import sys

import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views.defaults import server_error as django_server_error
from django_redis.exceptions import ConnectionInterrupted
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework.exceptions import APIException, ParseError

RETRY_AFTER = "5"  # seconds: a restart or a failover is usually over by then
DATABASE_DOWN = ("database_unavailable", "The database is unavailable right now; try again in a moment.")
REDIS_DOWN = ("cache_unavailable", "The cache and task queue (Redis) are unavailable right now; try again in a moment.")


class ServiceUnavailable(APIException):
    status_code = 503
    default_code = "service_unavailable"
    default_detail = "A service this request needs is unavailable right now; try again in a moment."


def outage_of(error: BaseException | None) -> tuple[str, str] | None:
    """(code, message) when `error` means PostgreSQL or Redis cannot be reached, else None."""
    if isinstance(error, OperationalError | InterfaceError):
        return DATABASE_DOWN
    if isinstance(error, redis.ConnectionError | redis.TimeoutError | ConnectionInterrupted):  # the last: via the cache
        return REDIS_DOWN
    return None


class OutageAwareExceptionHandler(ExceptionHandler):
    """drf-standardized-errors' handler, with outages answered 503 instead of 500."""

    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if outage := outage_of(exc):
            code, message = outage
            return ServiceUnavailable(message, code=code)
        if isinstance(exc, RequestDataTooBig):  # DRF reads JSON through request.body, which checks the size
            return ParseError(f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
        return super().convert_known_exceptions(exc)

    def get_response(self, exc, data):
        response = super().get_response(exc, data)
        if isinstance(exc, ServiceUnavailable):
            response["Retry-After"] = RETRY_AFTER
        return response


def server_error(request, *args, **kwargs):
    """handler500: Django calls it while the uncaught error is being handled, so it can be seen."""
    outage = outage_of(sys.exc_info()[1])
    if outage is None:
        return django_server_error(request, *args, **kwargs)
    code, message = outage
    if request.path.startswith("/api/"):
        response = JsonResponse({"type": "server_error", "errors": [{"code": code, "detail": message, "attr": None}]},
                                status=503)
    else:
        response = HttpResponse(f"<!DOCTYPE html><title>Unavailable</title><h1>Unavailable</h1><p>{message}</p>",
                                status=503)
    response["Retry-After"] = RETRY_AFTER
    return response
