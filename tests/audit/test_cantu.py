import math

import pandas as pd
import pytest

from pipeline.audit.cantu import compare, newcombe, wilson


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), Stat Med 17:873, table II example (56/70 vs 48/80): 0.0524 to 0.3339
    d, lo, hi = newcombe(56, 70, 48, 80, 0.95)
    assert d == pytest.approx(0.2)
    assert (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    lo, hi = wilson(0, 10, 0.95)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(math.isnan(x) for x in wilson(0, 0, 0.95))


def test_compare_reports_rates_difference_and_unknowns():
    altered = pd.Series([True] * 9 + [False] * 11 + [True] * 2 + [False] * 18 + [True])
    opposition = pd.Series([0] * 20 + [1] * 20 + [pd.NA], dtype="Int8")
    out = compare(altered, opposition, 0.95)
    assert out["absent"]["rate"] == pytest.approx(0.45) and out["present"]["rate"] == pytest.approx(0.1)
    assert out["difference"] == pytest.approx(0.35)
    assert out["ci"][0] < 0.35 < out["ci"][1] and out["ci"][0] > 0
    assert out["n_unknown"] == 1 and out["fisher_p"] < 0.05


def test_compare_without_one_group_is_skipped():
    out = compare(pd.Series([True, False]), pd.Series([1, 1], dtype="Int8"), 0.95)
    assert out["difference"] is None and "skipped" in out
