"""Float arrays to the Decimals a quote carries, identical to the one-float-at-a-time conversions.

The scalar conversions go through the float's shortest repr (`Decimal(repr(x))`, `Decimal(str(x))`)
and then round in decimal. A whole array can skip that: the repr and the float differ by under half
an ulp, and scaling by the tick or by 10**6 in floats adds another half ulp, so unless the scaled
value lies within a relative 1e-9 of a rounding boundary (an integer for floor and ceiling, a half
for half-even) the float rounding lands on the same integer as the decimal one. The few values that
close to a boundary (prices like 0.29, exact on the grid in decimal but not in binary) go through
the scalar conversion itself, so the result is identical for every element, not just nearly always.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np

# Relative distance from a rounding boundary under which the float result is not trusted: the
# float error is about 3e-16 relative, so this leaves a million-fold margin.
MARGIN = 1e-9
LARGEST = 2.0**50  # beyond this the scaled float's spacing nears the margin; never reached by quotes


def _near(distance: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    return distance < MARGIN * np.maximum(np.abs(scaled), 1.0)


def floor_ceiling_or_half_even(scaled: np.ndarray, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """(integers, unsure): `scaled` rounded by `rounding` ("floor", "ceiling" or "half_even"), and
    where a scaled value sits so near a boundary (or is not finite or too large) that only the
    decimal conversion can say."""
    with np.errstate(invalid="ignore"):
        unsure = ~np.isfinite(scaled) | (np.abs(scaled) > LARGEST)
        safe = np.where(unsure, 0.0, scaled)
        below = np.floor(safe)
        if rounding == "half_even":
            unsure |= _near(np.abs(safe - below - 0.5), safe)
            return np.rint(safe).astype(np.int64), unsure
        unsure |= _near(np.minimum(safe - below, below + 1.0 - safe), safe) & (safe != 0.0)
        whole = below if rounding == "floor" else np.ceil(safe)
        return whole.astype(np.int64), unsure


def quantized(values: np.ndarray, places: int, reference: Callable[[float], Decimal | None]) -> list[Decimal | None]:
    """`reference(value)` for each value, where `reference` is `Decimal(str(value)).quantize(10**-places,
    ROUND_HALF_EVEN)` (None for a non-finite value), as `base.greek` does for places=6."""
    values = np.asarray(values, dtype=np.float64)
    integers, unsure = floor_ceiling_or_half_even(values * float(10**places), "half_even")
    negative = np.signbit(values)
    exponent = -places
    minus_zero = Decimal((1, (0,), exponent))
    plus_zero = Decimal((0, (0,), exponent))
    result: list[Decimal | None] = []
    for value, integer, doubtful, sign in zip(values.tolist(), integers.tolist(), unsure.tolist(),
                                              negative.tolist(), strict=True):
        if doubtful:
            result.append(reference(value))
        elif integer:
            result.append(Decimal(integer).scaleb(exponent))
        else:  # quantize keeps the sign of a value that rounds to zero: -1e-9 becomes -0.000000
            result.append(minus_zero if sign else plus_zero)
    return result
