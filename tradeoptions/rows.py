"""Model instances read in bulk without the database driver's per-value loaders.

The pure-Python loaders psycopg runs for each value (a timestamp, a numeric, a JSON document) cost
microseconds apiece: the monitor's order sync reads some ten thousand trades of eighty-odd columns
every cycle, and spent most of its read in them. `instances_of` asks PostgreSQL for the same rows
as one JSON document instead (parsed in C), converts each value the way its field would have been
loaded, and builds the instances with `Model.from_db`, as a queryset does: the same instances,
equal field by field (tests/test_rows.py holds it to that).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import connections
from django.db.models import JSONField, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init


def _timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)  # the connection's time zone is UTC (settings)


# How a field's value comes out of `json_build_array`, by the field's internal type: as is (text,
# numbers, booleans, JSON documents), or from the text PostgreSQL wrote. Numerics are cast to text
# in the query, so that no float ever carries them.
_AS_IS = None
_LOADS = {
    "AutoField": _AS_IS, "BigAutoField": _AS_IS, "ForeignKey": _AS_IS, "OneToOneField": _AS_IS,
    "IntegerField": _AS_IS, "BigIntegerField": _AS_IS, "SmallIntegerField": _AS_IS,
    "PositiveIntegerField": _AS_IS, "PositiveSmallIntegerField": _AS_IS, "PositiveBigIntegerField": _AS_IS,
    "CharField": _AS_IS, "TextField": _AS_IS, "BooleanField": _AS_IS, "JSONField": _AS_IS,
    "DecimalField": Decimal, "DateTimeField": _timestamp, "DateField": date.fromisoformat,
}


def _converts_itself(field) -> bool:
    """A field class with a loader of its own (an encrypted text, say) reports a plain internal
    type, but its values must go through that loader: refused rather than loaded raw."""
    loader = getattr(type(field), "from_db_value", None)
    return loader is not None and loader is not getattr(JSONField, "from_db_value", None)


def instances_of(queryset: QuerySet, *, order_by: str = "id") -> list[Model]:
    """`list(queryset.order_by(order_by))`, read as one JSON document. Only plain querysets of one
    model (no select_related, annotations or deferred fields); a field type this module does not
    know how to load is refused, never guessed."""
    model = queryset.model
    fields = model._meta.concrete_fields
    unknown = {field.get_internal_type() for field in fields} - set(_LOADS)
    unknown |= {type(field).__name__ for field in fields if _converts_itself(field)}
    if unknown:
        raise TypeError(f"instances_of cannot load {model.__name__}'s {', '.join(sorted(unknown))}")
    if any(field.get_internal_type() == "JSONField" and field.decoder is not None for field in fields):
        raise TypeError(f"instances_of does not apply {model.__name__}'s custom JSON decoders")
    inner, params = queryset.order_by().values_list(*(field.attname for field in fields)).query.sql_with_params()
    columns = ", ".join(f'"row"."{field.column}"::text' if field.get_internal_type() == "DecimalField"
                        else f'"row"."{field.column}"' for field in fields)
    order = model._meta.get_field(order_by).column
    sql = (f'SELECT coalesce(json_agg(json_build_array({columns}) ORDER BY "row"."{order}"), \'[]\')::text '
           f'FROM ({inner}) AS "row"')
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = json.loads(cursor.fetchone()[0])
    loads = [(index, _LOADS[field.get_internal_type()]) for index, field in enumerate(fields)
             if _LOADS[field.get_internal_type()] is not _AS_IS]
    names = [field.attname for field in fields]
    for values in rows:
        for index, load in loads:
            if values[index] is not None:
                values[index] = load(values[index])
    return _build(model, queryset.db, names, rows)


def _build(model: type[Model], db: str, names: list[str], rows: list[list]) -> list[Model]:
    """`Model.from_db` for each row. For a model that overrides neither it nor `__init__` and that no
    init signal listens to, what `__init__` leaves for positional values of every concrete field is
    exactly those values in the instance's `__dict__` and a fresh `ModelState` (its fields are
    Django's plain attributes, no property of the model's own): that is written directly, a tenth of
    the cost. Any other model goes through `from_db`."""
    plain = (model.__init__ is Model.__init__ and model.from_db.__func__ is Model.from_db.__func__
             and not pre_init.has_listeners(model) and not post_init.has_listeners(model)
             and all(type(getattr(model, name)) in (DeferredAttribute, ForeignKeyDeferredAttribute) for name in names))
    if not plain:
        return [model.from_db(db, names, values) for values in rows]
    instances = []
    for values in rows:
        instance = model.__new__(model)
        state = ModelState()
        state.adding, state.db = False, db
        instance.__dict__.update(zip(names, values, strict=True), _state=state)
        instances.append(instance)
    return instances
