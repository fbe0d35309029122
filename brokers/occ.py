"""OCC option symbols as Tradier and ORATS write them: ROOT + YYMMDD + C|P + strike×1000 (8 digits).

The root is not padded (`SPY260116C00570000`, `SPXW…`, `BRKB…`). Strikes are exact Decimals, so
`226.67` becomes `00226670` without float rounding.
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

# A root is a letter then up to five letters or digits: adjusted roots after corporate actions carry
# a digit (`AAPL1`). The tail is always 15 characters, so the root is everything before it.
_PATTERN = re.compile(r"^(?P<root>[A-Z][A-Z0-9]{0,5})(?P<date>\d{6})(?P<kind>[CP])(?P<strike>\d{8})$")
_ROOT = re.compile(r"^[A-Z][A-Z0-9]{0,5}$")
STRIKE_SCALE = Decimal(1000)
CENT = Decimal("0.01")
MAX_STRIKE = Decimal("99999.999")

# Option roots that trade on another underlying's ticker (weeklies and PM-settled index roots).
# Adjusted roots (`AAPL1`) are deliberately not mapped: their deliverable differs, so the standard
# chain's prices would be wrong for them.
ROOT_UNDERLYINGS = {"SPXW": "SPX", "SPXPM": "SPX", "RUTW": "RUT", "NDXP": "NDX", "VIXW": "VIX", "XSPW": "XSP"}


class InvalidOptionSymbol(ValueError):
    """The text or the parts do not make a valid OCC option symbol; the message says why."""


@dataclass(frozen=True)
class OptionContract:
    root: str
    expiry: date
    option_type: str  # "CALL" or "PUT"
    strike: Decimal

    @property
    def symbol(self) -> str:
        return build_symbol(self.root, self.expiry, self.option_type, self.strike)


def build_symbol(root: str, expiry: date, option_type: str, strike: Decimal | str | int) -> str:
    if not _ROOT.fullmatch(root or ""):
        raise InvalidOptionSymbol(f"Ticker {root!r} must be a capital letter then up to 5 capital letters or digits.")
    if option_type not in ("CALL", "PUT"):
        raise InvalidOptionSymbol(f"Option type {option_type!r} must be CALL or PUT.")
    try:
        strike = Decimal(str(strike))
    except InvalidOperation:
        raise InvalidOptionSymbol(f"Strike {strike!r} is not a number.") from None
    if not strike.is_finite():
        raise InvalidOptionSymbol(f"Strike {strike} is not a finite number.")
    scaled = strike * STRIKE_SCALE
    if strike <= 0 or strike > MAX_STRIKE or scaled != scaled.to_integral_value():
        raise InvalidOptionSymbol(f"Strike {strike} must be positive, below 100000, in steps of 0.001.")
    return f"{root}{expiry:%y%m%d}{option_type[0]}{int(scaled):08d}"


def parse_symbol(symbol: str) -> OptionContract:
    match = _PATTERN.fullmatch(symbol or "")  # fullmatch: `$` alone would accept a trailing newline
    if not match:
        raise InvalidOptionSymbol(f"{symbol!r} is not an OCC option symbol like SPY260116C00570000.")
    text = match["date"]
    try:
        expiry = date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        raise InvalidOptionSymbol(f"{symbol!r} has an impossible expiry date {text}.") from None
    strike = Decimal(int(match["strike"])) / STRIKE_SCALE
    if strike <= 0:
        raise InvalidOptionSymbol(f"{symbol!r} has a zero strike.")
    option_type = "CALL" if match["kind"] == "C" else "PUT"
    return OptionContract(root=match["root"], expiry=expiry, option_type=option_type, strike=strike)


def exercise_value(option_type: str, strike: Decimal, underlying: Decimal) -> Decimal:
    """What one share of the contract is worth exercised against `underlying`, exactly (0 out of
    the money): the payoff a spread's expiry math is built from, where a breakeven may fall
    between cents."""
    value = underlying - strike if option_type == "CALL" else strike - underlying
    return max(value, Decimal(0))


def intrinsic_value(option_type: str, strike: Decimal, underlying: Decimal) -> Decimal:
    """The exercise value to the cent: what an option held to expiry settles at."""
    return exercise_value(option_type, strike, underlying).quantize(CENT)


def underlying_of_root(root: str) -> str:
    """The ticker an option root trades on: SPX for SPXW, the root itself for most."""
    return ROOT_UNDERLYINGS.get(root, root)
