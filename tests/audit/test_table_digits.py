"""The table audit's last-digit tests: a scope's smooth reference steadied by the national slopes, and the
Monte-Carlo p-value of the uniformity test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.audit.forensics import last_digit_reference
from pipeline.audit.table_forensics import (
    Stations,
    TableForensicsSettings,
    apply_families,
    chisquare_mc_p,
    decade_ratios,
    digit_results,
    scope_reference,
)
from pipeline.audit.table_synth import clean_table, plant_fraud, random_shape, stations_from_table
from pipeline.errors import ConfigError

MINIMUM = 30


def national_ratios(seed: int = 2) -> list[np.ndarray]:
    st = stations_from_table(clean_table(random_shape(6000, 5, seed=1), seed=seed))
    return [decade_ratios(st.votes[:, j])[1] for j in range(st.votes.shape[1])]


def lopsided(copies: int) -> np.ndarray:
    """Counts whose decade 30-39 (three counts per copy, ending in 1, 4, 8) has a crowded decade below (20-29, not
    tested: under the minimum) and an empty one above: a smooth reference of their own falls steeply."""
    return np.repeat(np.array([20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 34, 38]), copies)


def reference_of(values: np.ndarray, ratios: list[np.ndarray], prior: float) -> np.ndarray:
    empty = np.array([], np.int64)
    return scope_reference([values, *([empty] * (len(ratios) - 1))], ratios, MINIMUM, prior)


def test_prior_zero_is_the_scopes_own_smooth_reference():
    ratios = national_ratios()
    for values in (lopsided(1), lopsided(40), np.arange(0, 400, 7)):
        assert np.allclose(reference_of(values, ratios, 0.0), last_digit_reference([values], MINIMUM, "smooth"),
                           rtol=0, atol=1e-12)


def test_a_sparse_scope_leans_on_the_national_slopes_and_a_dense_one_on_its_own():
    ratios = national_ratios()
    own, steadied = reference_of(lopsided(1), ratios, 0.0), reference_of(lopsided(1), ratios, 20.0)
    national = reference_of(lopsided(1), ratios, 1e9)
    assert own[0] / own[9] > 4  # nine counts below, none above: a steep fall within 30-39
    assert steadied[0] / steadied[9] < 2 and np.abs(steadied - national).max() < np.abs(own - national).max() / 2
    dense_own, dense = reference_of(lopsided(100), ratios, 0.0), reference_of(lopsided(100), ratios, 20.0)
    assert np.abs(dense - dense_own).max() < 0.01 * dense_own.max()


def test_pooled_slopes_reproduce_the_smooth_reference_on_the_whole_table():
    st = stations_from_table(clean_table(random_shape(5000, 10, seed=1), seed=2))
    columns = [st.votes[:, j] for j in range(st.votes.shape[1])]
    ratios = [decade_ratios(c)[1] for c in columns]
    for minimum in (20, 25, 100):
        for prior in (0.0, 20.0, 1e9):  # the whole table's own slopes are the national ones
            assert np.allclose(scope_reference(columns, ratios, minimum, prior),
                               last_digit_reference(columns, minimum, "smooth"), rtol=0, atol=1e-12)
    assert np.allclose(scope_reference([c[:0] for c in columns], ratios, 20, 20.0), 0.1)  # no count: uniform


def test_decade_ratios_contrast_the_neighbours():
    per_decade, ratio = decade_ratios(np.array([5, 23, 27, 31, 38, 44, 150]))
    assert per_decade[:6].tolist() == [1, 0, 2, 2, 1, 0] and ratio.size == 16
    assert ratio[0] == 0 and ratio[1] == (2 - 1) / 3 and ratio[3] == (1 - 2) / 3 and ratio[15] == 0


def test_monte_carlo_p_value_is_valid_where_the_chi_square_law_is_not():
    rng = np.random.default_rng(5)
    probabilities = np.full(10, 0.1)
    p = np.array([chisquare_mc_p(rng.multinomial(50, probabilities), probabilities, 1000, rng) for _ in range(600)])
    assert 0.02 < np.mean(p <= 0.05) < 0.08  # 30 expected of 600
    assert p.min() >= 1 / 1001
    observed = np.array([1100, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 900])
    asymptotic = stats.chisquare(observed, probabilities * observed.sum()).pvalue
    assert chisquare_mc_p(observed, probabilities, 20_000, rng) == pytest.approx(asymptotic, rel=0.2)


def uniformity_rows(st: Stations, s: TableForensicsSettings) -> list[dict]:
    results = digit_results(st, s)
    apply_families(results, s)
    uniform = next(r for r in results if r["test"] == "digit_last_digit_uniform")
    return [uniform["national"], *uniform["scopes"]["region"]]


def test_uniformity_rows_say_which_p_value_they_carry():
    table = clean_table(random_shape(6000, 5, seed=1), seed=2)
    altered, _ = plant_fraud(table, "fabricated", 0.3, seed=1, strength=1.0)
    st = stations_from_table(altered)
    s = TableForensicsSettings()
    rows = uniformity_rows(st, s)
    simulated = [r for r in rows if r["p_method"].startswith("Monte Carlo")]
    assert simulated and all(r["p_asymptotic"] < s.alpha and r["p"] >= 1 / (s.digit_mc_draws + 1)
                             for r in simulated)
    assert all("p_asymptotic" not in r and (r["skipped"] or r["p"] >= s.alpha)
               for r in rows if r["p_method"] == "chi-square")
    off = uniformity_rows(st, TableForensicsSettings(digit_mc_draws=0))
    assert all(r["p_method"] == "chi-square" for r in off)
    assert [r["p"] for r in off] == [r.get("p_asymptotic", r["p"]) for r in rows]
    assert rows[0]["alarm"]  # counts made up in 30% of the stations: the national test sees it


@pytest.mark.parametrize("bad", [{"digit_scope_prior": -1.0}, {"digit_scope_prior": math.inf},
                                 {"digit_mc_draws": 10}, {"digit_mc_draws": True}])
def test_digit_settings_are_checked(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TableForensicsSettings(**bad)
