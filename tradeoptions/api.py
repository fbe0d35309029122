"""What every app's REST API shares: the sealed base view (whose rows, and the one transaction
policy for API requests), strict field types, query filters, the CSV renderer and the error shape.

It lives in the project package so that each app's `api.py` imports it and none imports
another's.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from django.core.validators import RegexValidator
from django.db import connection, models, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from . import tenancy
from .words import day_text


class OwnedViewSetMixin:
    """The base of every API view: its rows are always the authenticated user's, and its
    transactions follow one policy, written here and nowhere else.

    Rows: sealed. Subclasses narrow `owned_queryset(user)`; they may not replace `get_queryset`.
    Another user's id is simply not in the queryset, so it answers 404, never 403.

    Transactions: an API view is marked with Django's `transaction.non_atomic_requests`, so the
    tenant middleware leaves it alone and the view decides, by action:
    * By default the action runs in one tenant transaction, opened once DRF has authenticated the
      caller (token or session) and scoped to them. An exception that becomes the answer rolls it
      back whole (DRF marks it for rollback), so a failing write leaves nothing half-written; a
      refusal a service *returns* (a REJECTED trade, a conflict in the audit log) commits with it.
    * An action named in `stepwise_actions` runs outside any request transaction: its service
      commits in steps, each in its own tenant block (say, a trade row before its order goes to the
      broker), and the view opens blocks of its own to read. A plain (non-viewset) view names its
      actions by HTTP method: "put", "get", ...
    """

    stepwise_actions: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must narrow owned_queryset(user), not replace get_queryset().")

    @classmethod
    def as_view(cls, *args, **kwargs):
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))

    def dispatch(self, request, *args, **kwargs):
        # Closed when the answer is built (before it is rendered): commits, or rolls back what an
        # error marked for rollback, or what an uncaught exception passing through it was writing.
        with ExitStack() as self._tenant_block:
            self._own_transaction = False
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticates, outside any transaction
        if (getattr(self, "action", None) or request.method.lower()) not in self.stepwise_actions:
            self._tenant_block.enter_context(tenancy.acting_as(request.user.pk))
            self._own_transaction = True

    def handle_exception(self, exc):
        """DRF marks the innermost open transaction for rollback when it turns an exception into an
        answer. Only this view's own transaction may be marked: outside it (a stepwise action, or a
        refusal before it opened) any open transaction belongs to someone else (a test, a caller)."""
        marked = connection.needs_rollback
        response = super().handle_exception(exc)
        if not getattr(self, "_own_transaction", False) and not marked and connection.in_atomic_block:
            connection.set_rollback(False)
        return response

    def perform_content_negotiation(self, request, force=False):
        """An answer that must be rendered although negotiation failed (an unknown `?format=`) is
        an error, and errors are JSON: DRF would take the view's first renderer, CSV for an export."""
        if force:
            try:
                return super().perform_content_negotiation(request)
            except Exception:
                return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors leave as JSON in the API's one error shape, even when CSV or Parquet was asked for
        # (a CSV renderer given the error's dict would write its keys: "typeerrors").
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def owned_queryset(self, user):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user, no rows
            return self.queryset
        return self.owned_queryset(self.request.user)


# --- Fields ------------------------------------------------------------------------------------


class TextField(serializers.CharField):
    """Text that must arrive as a JSON string, as the schema says: DRF's CharField would turn 0 or
    1.5 into "0" or "1.5", and a client sending a number where text belongs has a bug to hear about.
    NUL characters (which PostgreSQL cannot store) are refused, and the schema's pattern says so."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(r"^[^\x00]*$", "Null characters are not allowed."))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class DecimalText(serializers.DecimalField):
    """A decimal sent as a JSON string ("4.20"), as the schema says. A JSON number is a binary float
    on most clients, and money is not sent as one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class FlagField(serializers.BooleanField):
    """true or false, as JSON booleans: DRF's BooleanField also takes 0, 1, "yes", "off"..."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class QueryFilterSerializer(serializers.Serializer):
    """Filters from the query string. DRF reads `?to=` (a left-blank form field) as "not given" and
    would answer unfiltered; a filter given blank is refused instead, so an empty value never widens
    a report by accident (the schema says so: every filter has a minimum length of 1)."""

    def to_internal_value(self, data):
        blank = {name: ["May not be blank: leave the parameter out instead."] for name in self.fields
                 if data.get(name) == ""}
        if blank:
            raise ValidationError(blank)
        return super().to_internal_value(data)


# Dates a client may send: years 2000 to 2099. An option symbol carries its expiry's year in two
# digits, so no contract lies outside them, and every filter stays far from the ends of Python's
# date range (9999-12-31 plus one day is an OverflowError, not a query). The schema says so with
# a pattern on the year; the field says so with a message naming the range.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2099, 12, 31)
YEAR_PATTERN = r"^20[0-9]{2}-"
_OUT_OF_RANGE = f"Must be a date from {day_text(FIRST_DATE)} to {day_text(LAST_DATE)}."


@extend_schema_field({"type": "string", "format": "date", "pattern": YEAR_PATTERN})
class BoundedDateField(serializers.DateField):
    """A date (ISO 8601) from FIRST_DATE to LAST_DATE."""

    default_error_messages = {"out_of_range": _OUT_OF_RANGE}

    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if not FIRST_DATE <= value <= LAST_DATE:
            self.fail("out_of_range")
        return value


@extend_schema_field({"type": "string", "format": "date-time", "pattern": YEAR_PATTERN})
class BoundedDateTimeField(serializers.DateTimeField):
    """A moment (ISO 8601) whose date, as written (in its own offset), is FIRST_DATE to LAST_DATE."""

    default_error_messages = {"out_of_range": _OUT_OF_RANGE}

    def enforce_timezone(self, value: datetime) -> datetime:
        if not FIRST_DATE <= value.date() <= LAST_DATE:
            self.fail("out_of_range")
        return super().enforce_timezone(value)


class DayRangeFilterSerializer(QueryFilterSerializer):
    """`?from=&to=`: New York days, both included (what a day means, the close or another moment,
    is the selector's to say). `from` is a Python keyword: declared as `from_`, exposed as `from`."""

    from_ = BoundedDateField(required=False, error_messages={"invalid": "Give a date as YYYY-MM-DD, e.g. 2026-12-01."},
                             help_text="First New York day, included.")
    to = BoundedDateField(required=False, error_messages={"invalid": "Give a date as YYYY-MM-DD, e.g. 2026-12-01."},
                          help_text="Last New York day, included.")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise ValidationError({"to": ["The end date is before the start date."]})
        return attrs


# --- Trader words ------------------------------------------------------------------------------


class TraderWords:
    """A serializer mixin: DRF's stock field messages ("This field is required.", "Ensure this value
    is greater than or equal to 0.0001.") are said again with the label the trader sees on the
    page ("Give the stop-loss.", "The stop-loss must be above zero."). The field's key stays the
    error's `attr`, for the form to put the message beside its input; a message of our own (a
    field's `error_messages`, a validator's, a service's) is left as written.

    `labels` maps a field name to its label, lower case as it reads mid-sentence; a field without
    one is named by its words ("card_score": "card score")."""

    labels: ClassVar[dict[str, str]] = {}

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except ValidationError as error:
            if not isinstance(error.detail, dict):
                raise
            raise ValidationError({name: self._in_trader_words(name, texts)
                                   for name, texts in error.detail.items()}) from None

    def _in_trader_words(self, name: str, texts):
        field = self.fields.get(name)
        if field is None or not isinstance(texts, list):
            return texts
        label = self.labels.get(name, name.replace("_", " "))
        return [ErrorDetail(reworded, code=text.code) if (reworded := _stock_reworded(field, text, label)) else text
                for text in texts]


def _stock_message(field, code: str) -> str | None:
    """DRF's own message for `code` on `field`'s class (not one the field was given)."""
    return next((str(klass.default_error_messages[code]) for klass in type(field).__mro__
                 if code in getattr(klass, "default_error_messages", {})), None)


def _number_text(value) -> str:
    return f"{Decimal(value).normalize():,f}" if value is not None else ""


_INVALID = ((serializers.BooleanField, "must be true or false"), (serializers.IntegerField, "must be a whole number"),
            (serializers.DecimalField, "must be a number"), (serializers.DateField, "must be a date"),
            (serializers.JSONField, "must be valid JSON"))


def _choices_text(field) -> str | None:
    names = [str(name) for name in field.choices.values()]
    return f"must be {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else None


def _least_text(field) -> str:
    least = Decimal(field.min_value)
    if least == 0:
        return "cannot be negative"
    return "must be above zero" if least < 1 else f"must be at least {_number_text(least)}"


# What the field must be, by DRF's error code: said after "The <label>".
_MUST = {
    "invalid": lambda field: next((words for kind, words in _INVALID if isinstance(field, kind)), "must be text"),
    "invalid_choice": _choices_text,
    "min_value": _least_text,
    "max_value": lambda field: f"must be at most {_number_text(field.max_value)}",
    "max_decimal_places": lambda field: f"takes at most {field.decimal_places} decimals",
    "max_digits": lambda field: "is too large a number",
    "max_whole_digits": lambda field: "is too large a number",
    "max_string_length": lambda field: "is too large a number",
    "max_length": lambda field: f"is at most {field.max_length} characters",
    "min_length": lambda field: f"needs at least {field.min_length} characters",
    "out_of_range": lambda field: f"must be a date from {day_text(FIRST_DATE)} to {day_text(LAST_DATE)}",
}


def _stock_reworded(field, text, label: str) -> str | None:
    """`text` in trader words when it is DRF's stock message for its code; None otherwise."""
    code = getattr(text, "code", None)
    stock = _stock_message(field, code) if code else None
    if stock is None or not re.fullmatch(re.sub(r"\\\{\w+\\\}", ".*", re.escape(stock)), str(text), re.DOTALL):
        return None
    if code in ("required", "null", "blank"):
        return f"Give the {label}."
    must = _MUST[code](field) if code in _MUST else None
    return f"The {label} {must}." if must else None


# --- Rendering and errors ----------------------------------------------------------------------


class CSVRenderer(BaseRenderer):
    """Lets `?format=csv` through content negotiation; the export streams its own body."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ProblemItemSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ProblemType(models.TextChoices):
    VALIDATION_ERROR = "validation_error"
    CLIENT_ERROR = "client_error"
    SERVER_ERROR = "server_error"


class ProblemSerializer(serializers.Serializer):
    """The API's one error shape (drf-standardized-errors)."""

    type = serializers.ChoiceField(choices=ProblemType.choices)
    errors = ProblemItemSerializer(many=True)


ERROR = OpenApiResponse(ProblemSerializer, description="The API's one error shape.")
