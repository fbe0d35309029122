"""Post-processing of the OpenAPI schema, so that it describes what the API accepts exactly.

drf-spectacular writes a decimal's pattern as `^-?\\d{0,N}(?:\\.\\d{0,M})?$`, which matches "" and
"-": values DRF refuses. The schema fuzzer (tests/test_api_fuzzing.py) rightly calls that a
schema-valid request rejected; the pattern is tightened to require a digit.

For a text field that may be blank and has a pattern, drf-spectacular writes
`oneOf: [{pattern}, {maxLength: 0}]`; when the pattern itself accepts "" (ours, which only refuses
NUL, does), "" matches both branches and `oneOf` fails on a valid answer. The second branch is
dropped then.

Links (OpenAPI's own way to say "the id in this answer is the id of that operation") tell clients,
and the fuzzer's stateful phase, how a trade that was just opened is read, adjusted and closed.
"""

import re

_LOOSE_DECIMAL = re.compile(r"^\^-\?\\d\{0,(\d+)\}\(\?:\\\.\\d\{0,(\d+)\}\)\?\$$")


def _strict(pattern: str) -> str:
    match = _LOOSE_DECIMAL.match(pattern)
    if not match:
        return pattern
    whole, fraction = match.groups()
    return rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{fraction}}})?|\.\d{{1,{fraction}}})$"


def _blank_is_already_allowed(node: dict) -> bool:
    branches = node.get("oneOf")
    if not (isinstance(branches, list) and len(branches) == 2):
        return False
    text, blank = branches
    pattern = text.get("pattern") if isinstance(text, dict) else None
    return (blank == {"type": "string", "maxLength": 0} and isinstance(pattern, str)
            and re.fullmatch(pattern, "") is not None)


def _walk(node) -> None:
    if isinstance(node, dict):
        if node.get("format") == "decimal" and isinstance(node.get("pattern"), str):
            node["pattern"] = _strict(node["pattern"])
        if _blank_is_already_allowed(node):
            node.update(node.pop("oneOf")[0])
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)


def strict_decimal_patterns(result, generator, request, public):
    _walk(result)
    return result


_TRADE_ID = {"id": "$response.body#/id"}
_OPENED_TRADE_LINKS = {
    "ReadTrade": {"operationId": "trades_retrieve", "parameters": _TRADE_ID},
    "TradeSnapshots": {"operationId": "trades_snapshots_list", "parameters": _TRADE_ID},
    "AdjustTrade": {"operationId": "trades_adjust_create", "parameters": _TRADE_ID,
                    "requestBody": {"version": "$response.body#/version", "new_tp": "9.00"}},
    "CloseTrade": {"operationId": "trades_close_create", "parameters": _TRADE_ID,
                   "requestBody": {"version": "$response.body#/version"}},
}


def trade_links(result, generator, request, public):
    """After an open (201), an adjust or a close (200): the trade's own operations, at its version."""
    paths = result.get("paths", {})
    for path, method, status in (("/api/trades", "post", "201"), ("/api/trades/{id}/adjust", "post", "200"),
                                 ("/api/trades/{id}/close", "post", "200")):
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is not None:
            response["links"] = _OPENED_TRADE_LINKS
    return result
