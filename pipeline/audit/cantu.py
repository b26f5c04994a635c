"""The Cantu (2019) comparison: how much more often sheets were altered where the opposition had no representative.

Rates get Wilson score intervals; their difference (absent minus present) gets Newcombe's hybrid score interval
(Newcombe 1998, method 10), which behaves well for small groups and rates near 0 or 1. Fisher's exact test gives
a p-value for "no difference".
"""

from __future__ import annotations

import math

import pandas as pd
from scipy import stats

METHOD = "Wilson score intervals per group; Newcombe hybrid score interval for the difference; Fisher exact test"


def wilson(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``(nan, nan)`` when ``n`` is 0)."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def newcombe(k1: int, n1: int, k2: int, n2: int, level: float) -> tuple[float, float, float]:
    """Difference ``k1/n1 - k2/n2`` with Newcombe's hybrid score interval built from the two Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, level), wilson(k2, n2, level)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def group_rate(altered: pd.Series, level: float) -> dict:
    """Count, altered count, rate and Wilson interval of one group of sheets."""
    n, k = int(altered.size), int(altered.sum())
    lo, hi = wilson(k, n, level)
    return {"n": n, "altered": k, "rate": k / n if n else None, "ci": [lo, hi]}


def compare(altered: pd.Series, opposition: pd.Series, level: float) -> dict:
    """Alteration rate with the opposition present vs absent, and the difference absent - present with its CI.

    ``altered`` (bool) and ``opposition`` (1 present, 0 absent, NA unknown) are indexed by sheet_id; sheets
    with an unknown ``altered`` or ``opposition`` are counted in ``n_unknown`` and left out.
    """
    df = pd.DataFrame({"altered": altered, "opposition": opposition}).dropna()
    df = df.astype({"altered": bool, "opposition": int})
    present, absent = df[df["opposition"] == 1]["altered"], df[df["opposition"] == 0]["altered"]
    out = {"present": group_rate(present, level), "absent": group_rate(absent, level),
           "n_unknown": int(len(altered) - len(df)), "level": level, "method": METHOD}
    if present.empty or absent.empty:
        return {**out, "difference": None, "ci": [None, None], "fisher_p": None,
                "skipped": "needs sheets both with and without an opposition representative"}
    d, lo, hi = newcombe(int(absent.sum()), absent.size, int(present.sum()), present.size, level)
    table = [[int(absent.sum()), int(absent.size - absent.sum())], [int(present.sum()),
                                                                    int(present.size - present.sum())]]
    return {**out, "difference": d, "ci": [lo, hi], "fisher_p": float(stats.fisher_exact(table).pvalue),
            "difference_meaning": "alteration rate where the opposition was absent minus where it was present"}
