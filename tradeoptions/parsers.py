"""How the API reads requests: JSON bodies of bounded nesting, and `?format=` that it offers.

Kept apart from `tradeoptions.api` on purpose: DRF imports these classes by name from the
settings (DEFAULT_PARSER_CLASSES, DEFAULT_CONTENT_NEGOTIATION_CLASS) while its own views module is
being imported, so this module imports nothing that imports DRF's views.
"""

from django.http import Http404
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32  # objects and arrays inside one another; a trade's context needs four or five


def json_depth(value, *, limit: int) -> int:
    """How deeply objects and arrays nest in `value` (a scalar: 0, `[]`: 1), counted without
    recursion; the count stops once it passes `limit`."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            break
        pending.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class NestingLimitedJSONParser(JSONParser):
    """DRF's JSON parser, refusing a body nested deeper than MAX_JSON_DEPTH with a 400.

    Python's decoder recurses once per level: a few hundred kilobytes of `[` raise RecursionError
    (a 500 without this), and a body just under the interpreter's limit would raise it later,
    wherever the data is walked again (validation, json.dumps, the database driver)."""

    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep) from None
        if json_depth(data, limit=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise ParseError(too_deep)
        return data


class StrictContentNegotiation(DefaultContentNegotiation):
    """`?format=` that the view does not offer is a 400 naming the formats it does: DRF answers 404,
    which says the resource is missing when only a parameter is wrong. A format suffix in the path
    (`/api/trades/7.xml`) is part of the path, and a path that names nothing stays a 404."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            if format_suffix:
                raise
            offered = ", ".join(renderer.format for renderer in renderers)
            raise ValidationError({"format": [f"Must be one of: {offered}."]}) from None
