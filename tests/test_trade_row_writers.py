"""Only trades writes the trade row: no production module of monitoring or analytics writes
`trades_papertrade`, by raw SQL or through the `PaperTrade` model.

monitoring and analytics may read trades.models freely (`.importlinter` says why), so the import
contracts cannot see a write. This scans their source instead (tests and migrations excluded):
they measure — marks, forensic targets — and hand the figures to a `trades.services` function
(`marks_record`, `targets_record`, `trade_transition`, ...), the one home of every change to a trade.

What counts as a write, statically: SQL text that updates, inserts into or deletes from the
table; and a write method (`update`, `save`, `bulk_update`, ...) called on an expression that
starts at `PaperTrade`, or on a name that the same function (or an enclosing one) binds from
such an expression or declares as one (`trade: PaperTrade`). It is a tripwire for the usual
forms, not a proof (a trade reached through another model, `snapshot.trade.save()`, passes); the
second test shows that each form it knows trips it.
"""

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings

APPS = ("monitoring", "analytics")
MODEL = "PaperTrade"
SQL_WRITE = re.compile(r"\b(UPDATE|INSERT\s+INTO|DELETE\s+FROM|MERGE\s+INTO)\s+\"?trades_papertrade\b", re.IGNORECASE)
WRITE_METHODS = {"update", "bulk_update", "bulk_create", "create", "get_or_create", "update_or_create", "delete",
                 "save", "save_base"}
# Calls that hand their first argument's rows on unchanged: `list(PaperTrade.objects.filter(...))`.
PASS_THROUGH = {"list", "tuple", "sorted", "reversed", "iter", "next", "set"}


def _root(node: ast.AST) -> str | None:
    """The name a chain of rows starts from: `PaperTrade` for `PaperTrade.objects.filter(...)[0]`.

    Through method calls, indexing, `.objects` and `list(...)`-like wrappers only: a plain
    attribute (`trade.owner_id`, `leg.fill`) is a value, not more trade rows."""
    while True:
        if isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Attribute) and node.attr == "objects":
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PASS_THROUGH:
            node = node.args[0] if node.args else node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _mentions_model(annotation: ast.AST | None) -> bool:
    """`trade: PaperTrade`, `trades: list[PaperTrade]`, `trades: "QuerySet[PaperTrade]"`."""
    return annotation is not None and any(
        (isinstance(node, ast.Name) and node.id == MODEL)
        or (isinstance(node, ast.Constant) and MODEL in str(node.value)) for node in ast.walk(annotation))


def _names(target: ast.AST) -> set[str]:
    """The names a target binds (`a`, `a, *b`), not the objects it stores into (`self.x`, `d[k]`)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, ast.Starred):
        return _names(target.value)
    if isinstance(target, ast.Tuple | ast.List):
        return set().union(*(_names(element) for element in target.elts))
    return set()


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _in_scope(scope: ast.AST):
    """The nodes of one scope: a function's own body and parameters, not its nested functions'."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, FUNCTIONS):
            pending += ast.iter_child_nodes(node)


def _trade_names(scope: ast.AST, outer: frozenset[str]) -> frozenset[str]:
    """Names in `scope` that hold trade rows or querysets of them, besides those of the enclosing
    scopes (to a fixed point: `held = trades.filter(...)` after `trades = PaperTrade.objects.all()`)."""
    nodes = list(_in_scope(scope))
    names = set(outer)
    for node in nodes:
        if isinstance(node, ast.arg | ast.AnnAssign) and _mentions_model(node.annotation):
            names |= {node.arg} if isinstance(node, ast.arg) else _names(node.target)
    while True:
        found = set(names)
        for node in nodes:
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                if _root(node.value) in names:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    found |= set().union(*(_names(target) for target in targets))
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension) and _root(node.iter) in names:
                found |= _names(node.target)
        if found == names:
            return frozenset(names)
        names = found


def _writes_in(scope: ast.AST, outer: frozenset[str]):
    names = _trade_names(scope, outer)
    for node in _in_scope(scope):
        if isinstance(node, FUNCTIONS):
            yield from _writes_in(node, names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_WRITE.search(node.value):
            yield node.lineno, f"raw SQL: {SQL_WRITE.search(node.value).group(0)}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITE_METHODS
              and _root(node.func.value) in names):
            yield node.lineno, f"{ast.unparse(node.func)}(...) on {_root(node.func.value)}"


def writes(source: str) -> list[tuple[int, str]]:
    """(line, what) for every write of the trade row in `source`."""
    return sorted(set(_writes_in(ast.parse(source), frozenset({MODEL}))))


def _production_modules():
    base = Path(settings.BASE_DIR)
    for app in APPS:
        for path in sorted((base / app).rglob("*.py")):
            parts = path.relative_to(base).parts
            if "tests" not in parts and "migrations" not in parts:
                yield path.relative_to(base)


def test_monitoring_and_analytics_never_write_the_trade_row():
    base = Path(settings.BASE_DIR)
    modules = list(_production_modules())
    assert any(str(path) == "monitoring/services.py" for path in modules)  # the scan sees the monitor
    breaches = [f"{path}:{line}: {what}" for path in modules for line, what in writes((base / path).read_text())]
    assert not breaches, ("only trades writes trades_papertrade; call a trades.services function instead:\n"
                          + "\n".join(breaches))


@pytest.mark.parametrize("source", [
    'cursor.execute("UPDATE trades_papertrade SET current_price = 1")',
    'cursor.execute("""\n    update  trades_papertrade AS t SET x = 1""")',
    'cursor.execute("INSERT INTO trades_papertrade (id) VALUES (1)")',
    "PaperTrade.objects.filter(id__in=ids).update(target_pnl_1h=None)",
    "PaperTrade.objects.bulk_update(trades, ['current_price'])",
    "PaperTrade.objects.create(ticker='SPY')",
    "trades = PaperTrade.objects.filter(status='OPEN')\nheld = trades.exclude(qty=0)\nheld.update(qty=1)",
    "trade = PaperTrade.objects.get(pk=1)\ntrade.save(update_fields=['current_price'])",
    "for trade in list(PaperTrade.objects.all()):\n    trade.delete()",
    "def mark(trade: PaperTrade):\n    trade.save()",
    "def mark(trades: 'QuerySet[PaperTrade]'):\n    trades.update(current_price=1)",
])
def test_each_form_of_a_write_is_caught(source):
    assert writes(source)


@pytest.mark.parametrize("source", [
    "changes = close_outcome(trade, price=p, at=at, reason=r)\nchanges.update(broker_fill_price=p)",
    "PriceSnapshot.objects.filter(trade_id=1).update(mark_price=1)",
    "ids = list(PaperTrade.objects.values_list('id', flat=True))\nmarks_record(marks=rows, at=at)",
    'cursor.execute("SELECT * FROM trades_papertrade")',
])
def test_reads_and_other_tables_are_not_writes(source):
    assert writes(source) == []
