"""Honest statistics: what a figure can and cannot say with the trades behind it.

Pure functions over figures the metrics module has already computed (no ORM, no frames): the
Wilson interval of a win rate, the minimum history before a Sharpe or Sortino ratio is shown,
when a calibration curve really falls, why expectancy in dollars and in R can disagree, and how
the exit replay's best bracket compares with the trades as they were closed.
"""

from __future__ import annotations

import math
from decimal import Decimal

Z_95 = 1.959963984540054  # two-sided 95 %
MIN_TRADING_DAYS = 20  # about a month of sessions before a daily ratio is annualised
MIN_BUCKET_TRADES = 10  # fewer trades than this in a score bucket say nothing about it


def wilson_interval(wins: int, trades: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a win rate (95 % by default), rounded to 4 places; None
    without trades. Unlike the normal approximation it stays inside [0, 1] and is honest for a
    handful of trades (3 wins of 3 is 0.44 to 1, not 1 to 1)."""
    if trades <= 0:
        return None
    p = wins / trades
    z2 = z * z
    centre = (p + z2 / (2 * trades)) / (1 + z2 / trades)
    half = z * math.sqrt(p * (1 - p) / trades + z2 / (4 * trades * trades)) / (1 + z2 / trades)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def with_win_rate_interval(row: dict) -> dict:
    """A metrics row (`wins`, `trades`) with `win_rate_ci`: [low, high] or None."""
    interval = wilson_interval(row["wins"], row["trades"])
    return {**row, "win_rate_ci": list(interval) if interval else None}


def gated_risk_adjusted(result: dict, minimum: int = MIN_TRADING_DAYS) -> dict:
    """Sharpe and Sortino only from `minimum` trading days on: annualising (× √252) the spread of
    a few days' P&L gives a large, meaningless number. Below it both are null and `needs_days`
    says how many more sessions it takes."""
    needs = max(0, minimum - result["days"])
    if not needs:
        return {**result, "needs_days": 0, "note": None}
    return {**result, "sharpe": None, "sortino": None, "needs_days": needs,
            "note": f"Needs {needs} more trading day{'s' if needs != 1 else ''} "
                    f"({result['days']} of {minimum}) before Sharpe and Sortino mean anything."}


def expectancy_disagreement(*, expectancy: str | None, expectancy_r: float | None, trades: int,
                            r_trades: int) -> str | None:
    """One sentence saying why expectancy in dollars and in R point different ways; None when
    they agree (or one of them is missing or zero). Dollars weigh each trade by its size, R by
    the risk it was planned with, and R leaves out trades without a stop below the entry."""
    if expectancy is None or expectancy_r is None:
        return None
    dollars = Decimal(expectancy)
    if dollars == 0 or expectancy_r == 0 or (dollars > 0) == (expectancy_r > 0):
        return None
    left_out = trades - r_trades
    tail = (f"; R also leaves out {left_out} of the {trades} trades, which had no stop below the entry"
            if left_out else "")
    if dollars > 0:
        return ("Positive in dollars but negative in R: a few trades that risked more dollars won, while most "
                f"trades lost a larger share of the risk they planned{tail}.")
    return ("Negative in dollars but positive in R: the losses came on the trades that risked the most dollars, "
            f"so they outweigh the wins that earned more than their planned risk{tail}.")


def calibration_verdict(buckets: list[dict], minimum: int = MIN_BUCKET_TRADES) -> dict:
    """Can the data say a higher score does worse? Each bucket gets `enough` (at least `minimum`
    trades) and its Wilson interval; the score is flagged `non_monotonic` only when some bucket
    with enough trades has a win rate whose whole interval lies above that of a higher-score
    bucket with enough trades: a fall the noise cannot explain. Otherwise `too_few_trades` (fewer
    than two buckets with enough trades) or `consistent` (no fall outside the intervals)."""
    rows = [{**with_win_rate_interval(bucket), "enough": bucket["trades"] >= minimum} for bucket in buckets]
    supported = [row for row in rows if row["enough"]]
    if len(supported) < 2:
        thin = sum(not row["enough"] for row in rows)
        return {"buckets": rows, "verdict": "too_few_trades",
                "reason": f"Too few trades: {thin} of {len(rows)} bucket(s) have fewer than {minimum} trades, "
                          "so a rise or fall is not told from chance." if rows else "No trade has this score."}
    for i, low in enumerate(supported):
        for high in supported[i + 1:]:
            if low["win_rate_ci"][0] > high["win_rate_ci"][1]:
                return {"buckets": rows, "verdict": "non_monotonic",
                        "reason": f"Bucket D{high['bucket']} wins less than the lower-score bucket D{low['bucket']}, "
                                  "beyond the 95 % intervals of both."}
    return {"buckets": rows, "verdict": "consistent",
            "reason": "No fall in win rate beyond the 95 % intervals between buckets with enough trades."}


def replay_comparison(*, best_cents: int, own_cents: int, actual_cents: int) -> dict:
    """The exit replay's best grid bracket set against the trades' own brackets replayed on the
    same recorded path (`own_cents`: same marks, same exit rule, before commissions): the one
    like-for-like comparison. `actual_cents`, the booked P&L, differs from the replay when a
    fill was away from the recorded mark, a bracket was moved, or a trade was closed by hand."""
    if best_cents >= own_cents:
        verdict = "grid_better" if best_cents > own_cents else "same"
    else:
        verdict = "own_better"
    sentences = {
        "grid_better": "On the same recorded path, the best grid bracket would have made more than your own brackets.",
        "same": "On the same recorded path, the best grid bracket does as well as your own brackets.",
        "own_better": "Your own brackets (and closes) did better than every bracket on the grid, "
                      "compared on the same recorded path.",
    }
    return {"verdict": verdict, "sentence": sentences[verdict], "gap_to_booked_cents": actual_cents - own_cents}


def policy_verdict(*, policy_cents: int, own_cents: int) -> dict:
    """One exit policy replayed against the trades' own brackets replayed on the same recorded
    paths, net of commissions: `better`, `same` or `worse`, and a sentence in a trader's words."""
    gap = policy_cents - own_cents
    dollars = f"${abs(Decimal(gap).scaleb(-2)):,.2f}"
    if gap > 0:
        return {"verdict": "better", "sentence": f"Would have made {dollars} more than your own brackets."}
    if gap < 0:
        return {"verdict": "worse", "sentence": f"Would have made {dollars} less than your own brackets."}
    return {"verdict": "same", "sentence": "Would have done exactly as your own brackets did."}


def best_policy_sentence(*, label: str | None, best_cents: int | None, own_cents: int) -> str:
    """The strategy's verdict: the policy that would have done best, or that none beat the brackets."""
    if label is None or best_cents is None or best_cents <= own_cents:
        return ("None of these exit policies would have beaten your own brackets on the same recorded paths, "
                "after commissions.")
    gap = f"${Decimal(best_cents - own_cents).scaleb(-2):,.2f}"
    return f"On the same recorded paths, {label} would have made {gap} more than your own brackets, after commissions."
