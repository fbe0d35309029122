"""The import contracts in `.importlinter` hold, and they would catch a breach.

`lint-imports` runs here as it does from the command line; the contracts are then checked again
on the real import graph with one forbidden import added, to show that each one bites.
"""

import pkgutil
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import grimp
import pytest
from django.conf import settings
from importlinter.api import read_configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.independence import IndependenceContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.protected import ProtectedContract

import trades
import trades.services

CONFIG = Path(settings.BASE_DIR) / ".importlinter"
KINDS = {"forbidden": ForbiddenContract, "independence": IndependenceContract, "layers": LayersContract,
         "protected": ProtectedContract}
PUBLIC_TRADES_MODULES = {"trades.services", "trades.selectors", "trades.models", "trades.serializers"}


@pytest.fixture(scope="module")
def configuration():
    return read_configuration(str(CONFIG))


@pytest.fixture(scope="module")
def graph(configuration):
    return grimp.build_graph(*configuration["session_options"]["root_packages"], cache_dir=None)


def _contract(configuration, key: str):
    [options] = [options for options in configuration["contracts_options"] if options["id"] == key]
    return KINDS[options["type"]](name=options["name"], session_options=configuration["session_options"],
                                  contract_options=options)


def _kept(configuration, key: str, graph) -> bool:
    return _contract(configuration, key).check(deepcopy(graph), verbose=False).kept


def test_lint_imports_keeps_every_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(CONFIG), "--no-cache"], cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("key", "importer", "imported"), [
    ("layers", "trades.services.opening", "monitoring.clock"),  # trades may not reach up to monitoring
    ("layers", "brokers.paper", "trades.models"),
    ("layers", "monitoring.sync", "analytics.selectors"),
    ("project-package", "tradeoptions.health", "monitoring.heartbeats"),
    ("project-package", "tradeoptions.urls", "trades.views"),
    ("trades-front-door", "analytics.api", "trades.api"),
    ("trades-front-door", "monitoring.sync", "trades.services.orders"),
    ("trades-front-door", "monitoring.admin", "trades.admin"),
    ("brokers-independent", "brokers.paper", "brokers.tradier"),
    ("marketdata-independent", "monitoring.marketdata.simulated", "monitoring.marketdata.orats"),
])
def test_each_contract_catches_a_forbidden_import(configuration, graph, key, importer, imported):
    assert _kept(configuration, key, graph)
    breached = deepcopy(graph)
    breached.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    assert not _kept(configuration, key, breached)


def test_every_private_module_of_trades_is_protected(configuration):
    """A module added to trades is private unless named public here and in `.importlinter`."""
    [options] = [options for options in configuration["contracts_options"] if options["id"] == "trades-front-door"]
    protected = set(options["protected_modules"])
    modules = {f"trades.{info.name}" for info in pkgutil.iter_modules(trades.__path__)}
    services = {f"trades.services.{info.name}" for info in pkgutil.iter_modules(trades.services.__path__)}
    assert PUBLIC_TRADES_MODULES <= modules | {"trades.services"}
    assert "trades.services.*" in protected and services  # every submodule of the services package
    assert modules - PUBLIC_TRADES_MODULES - {"trades.services"} == protected - {"trades.services.*"}
