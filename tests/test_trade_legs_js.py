"""static/js/trade_legs.js words a spread's close: run its pure functions under node, as the page runs them."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parent.parent / "static" / "js" / "trade_legs.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _words(function: str, trade: dict) -> str:
    script = (f"import {{ {function} }} from {json.dumps(MODULE.as_uri())};\n"
              f"console.log({function}({json.dumps(trade)}));")
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _spread(direction: str, close_price: str) -> dict:
    return {"strategy_type": "calendar" if direction == "debit" else "vertical", "net_direction": direction,
            "close_price": close_price}


@pytest.mark.parametrize(("direction", "close_price", "words", "toast"), [
    ("debit", "2.10", "sold for 2.10", "at 2.10"),
    ("debit", "-5.00", "closed at a net cost of 5.00", "at a net cost of 5.00"),
    ("credit", "0.40", "bought back for 0.40", "at 0.40"),
    ("credit", "-0.30", "bought back for a credit of 0.30", "for a net credit of 0.30"),
])
def test_a_spread_s_close_is_said_in_words_never_with_a_minus_sign(direction, close_price, words, toast):
    """A calendar whose front leg settled and whose back then sold for less than the settlement
    cost closes below zero: a net cost to close, not "sold for -5.00"."""
    trade = _spread(direction, close_price)
    assert _words("closeWords", trade) == words
    assert _words("closedAt", trade) == toast


def test_a_single_option_closes_at_its_price():
    assert _words("closedAt", {"strategy_type": "single", "close_price": "1.25"}) == "at 1.25"
