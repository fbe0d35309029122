"""Tradier trades are priced off real quotes: simulated or replayed quotes next to a real broker
are refused when DEBUG is off, unless explicitly allowed."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from monitoring.checks import real_quotes_with_a_real_broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def production_like(settings):
    settings.DEBUG = False
    settings.ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER = False
    settings.ALLOW_TRADIER_SANDBOX = True
    settings.ALLOW_LIVE_TRADING = False
    settings.MARKET_DATA_SOURCE = "simulated"
    return settings


def _ids(settings) -> list[str]:
    return [message.id for message in real_quotes_with_a_real_broker(None)]


def test_simulated_quotes_with_the_tradier_sandbox_on_are_refused_with_a_clear_message(production_like):
    (error,) = real_quotes_with_a_real_broker(None)
    assert error.id == "monitoring.E001"
    assert "MARKET_DATA_SOURCE=simulated" in error.msg and "Tradier sandbox" in error.msg
    assert "ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER" in error.hint


def test_replayed_quotes_with_live_trading_are_refused(production_like):
    production_like.MARKET_DATA_SOURCE, production_like.ALLOW_TRADIER_SANDBOX = "replay", False
    production_like.ALLOW_LIVE_TRADING = True
    (error,) = real_quotes_with_a_real_broker(None)
    assert "Tradier live" in error.msg and "sandbox" not in error.msg


@pytest.mark.parametrize("change", [
    {"MARKET_DATA_SOURCE": "tradier"}, {"MARKET_DATA_SOURCE": "orats"},
    {"ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER": True}, {"ALLOW_TRADIER_SANDBOX": False}, {"DEBUG": True},
])
def test_real_quotes_a_paper_only_server_an_explicit_allowance_or_debug_pass(production_like, change):
    for name, value in change.items():
        setattr(production_like, name, value)
    assert _ids(production_like) == []


def test_production_refuses_to_migrate_on_simulated_quotes():
    """Not only `check --deploy`: every command that runs the checks (migrate, the deploy's first
    step) stops, saying why."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "tradeoptions.settings.production", "DJANGO_READ_DOT_ENV": "false",
        "SECRET_KEY": secrets.token_urlsafe(60), "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "trade.example.com", "MARKET_DATA_SOURCE": "simulated",
    }
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "monitoring.E001" in done.stderr and "MARKET_DATA_SOURCE=simulated" in done.stderr
    env["ALLOW_SIMULATED_QUOTES_WITH_REAL_BROKER"] = "true"
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "monitoring.E001" not in done.stdout + done.stderr
