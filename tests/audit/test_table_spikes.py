"""The spike test at round shares, the digit tests as weak evidence, and the synthetic tables they are measured on."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.audit.table_forensics import (
    TableForensicsSettings,
    near_round,
    round_bin_probability,
    round_values,
    run_table_forensics,
)
from pipeline.audit.table_synth import clean_table, plant_fraud, random_shape, stations_from_table

S = TableForensicsSettings(mc_draws=20)


@pytest.fixture(scope="module")
def table():
    return clean_table(random_shape(12000, 6, seed=11), seed=12)


def test_round_values_and_bins():
    assert round_values(5).tolist() == [5.0 * k for k in range(1, 20)]
    assert round_values(10).tolist() == [10.0 * k for k in range(1, 10)]
    hit = near_round(np.array([600, 601, 1000, 0, 333, 750]), np.array([1000, 1000, 1000, 1000, 1000, 1000]), 5,
                     0.05)
    assert hit.tolist() == [True, False, False, False, False, True]  # 100% and 0% are not round shares


def test_round_bin_probability_is_the_resampling_limit():
    rng = np.random.default_rng(0)
    total = np.array([150, 480, 1000, 2317, 731])
    p = np.array([0.597, 0.75, 0.649, 0.42, 0.9])
    exact = round_bin_probability(total, p, round_values(5), 0.05)
    draws = rng.binomial(total, p, size=(200_000, total.size))
    mc = near_round(draws, total, 5, 0.05).mean(axis=0)
    assert exact == pytest.approx(mc, abs=0.002)
    assert exact[3] < exact[0]  # a large station far from a round share rarely lands on one


def test_clean_table_has_no_spikes(table):
    spikes = run_table_forensics(stations_from_table(table), S)[0]["tests"]["spikes"]
    nat = spikes["national"]
    assert abs(nat["observed"] - nat["expected"]) < 3 * np.sqrt(nat["expected"])
    assert not nat["alarm"] and not any(r["alarm"] for r in spikes["scopes"]["region"])
    assert len(spikes["histogram"]["turnout"]["observed"]) == 1001
    assert sum(spikes["histogram"]["share"]["observed"]) == spikes["included"]


def test_results_written_to_round_shares_alarm(table):
    altered, hit = plant_fraud(table, "round_shares", 0.03, seed=2, strength=1.0)
    spikes = run_table_forensics(stations_from_table(altered), S)[0]["tests"]["spikes"]
    nat = spikes["national"]
    assert nat["alarm"] and nat["p_holm"] < 1e-6
    # most rewritten stations land on a round turnout and a round share: the excess recovers their number
    assert 0.5 * hit.sum() < nat["excess"] < 1.1 * hit.sum()
    assert spikes["parts"]["turnout"]["excess"] > 0.5 * hit.sum()


def test_spikes_point_at_the_region_rewritten(table):
    region = table["region"].iloc[0]
    altered, _ = plant_fraud(table, "round_shares", 0.2, seed=3, strength=1.0, regions=(region,))
    results, _ = run_table_forensics(stations_from_table(altered), S)
    assert results["alarms"]["spikes"]["region"] == [region]


def test_spike_minimum_effect_holds_back_a_trivial_excess(table):
    altered, _ = plant_fraud(table, "round_shares", 0.02, seed=4, strength=1.0)
    st = stations_from_table(altered)
    loose = run_table_forensics(st, S)[0]["tests"]["spikes"]["national"]
    strict = run_table_forensics(st, TableForensicsSettings(mc_draws=20, spike_min_effect=0.05))[0]
    assert loose["alarm"] and not strict["tests"]["spikes"]["national"]["alarm"]
    assert strict["tests"]["spikes"]["national"]["p_holm"] < 0.05


def test_digit_tests_are_weak_evidence_with_a_minimum_effect(table):
    results, _ = run_table_forensics(stations_from_table(table), S)
    digits = {k: t for k, t in results["tests"].items() if t.get("kind") == "digit"}
    assert len(digits) == 7 and all(t["weak_evidence"] for t in digits.values())
    assert not any(t["national"]["alarm"] for t in digits.values())
    assert digits["digit_second_digit_2bl"]["report_only"]
    heaped = table.copy()
    rng = np.random.default_rng(5)
    pick = rng.random(len(heaped)) < 0.5  # half the stations: the second choice's votes rounded to tens
    moved = heaped.loc[pick, "choice_2"] % 10
    heaped.loc[pick, "choice_2"] -= moved
    heaped.loc[pick, "choice_3"] += moved
    rows = run_table_forensics(stations_from_table(heaped), S)[0]["tests"]
    zero_five = rows["digit_last_digit_0_or_5"]["national"]
    assert zero_five["alarm"] and zero_five["effect"] >= S.digit_min_share_shift
    strict = TableForensicsSettings(mc_draws=20, digit_min_share_shift=0.5, digit_min_cramers_v=0.9,
                                    digit_min_mean_shift=5.0)
    rows = run_table_forensics(stations_from_table(heaped), strict)[0]["tests"]
    assert rows["digit_last_digit_0_or_5"]["national"]["p_holm"] < 1e-6
    assert not any(t["national"]["alarm"] for t in rows.values() if t.get("kind") == "digit")


def test_digit_families_are_their_own(table):
    """The national digit rows form their own Holm family: they do not change the strong tests' adjustment."""
    st = stations_from_table(table)
    with_digits = run_table_forensics(st, S)[0]["tests"]
    bare = stations_from_table(table)
    object.__setattr__(bare, "votes", None)
    without = run_table_forensics(bare, S)[0]["tests"]
    for name in ("integer_percentages", "klimek_corner", "spikes"):
        assert with_digits[name]["national"]["p_holm"] == without[name]["national"]["p_holm"]
    assert not any(t.get("kind") == "digit" for t in without.values())


def test_clean_tables_can_correlate_turnout_and_share():
    from dataclasses import replace

    from scipy import stats

    shape = replace(random_shape(4000, 1, seed=6), rho=0.5)
    t = clean_table(shape, seed=7)
    rho = stats.spearmanr(t["issued"] / t["registered"], t["choice_1"] / (t["valid"] + t["invalid"]))[0]
    assert rho > 0.25
    t0 = clean_table(replace(shape, rho=0.0), seed=7)
    assert abs(stats.spearmanr(t0["issued"] / t0["registered"], t0["choice_1"] / t0["valid"])[0]) < 0.06


def stations_for_memory(n: int, seed: int = 0):
    """``n`` stations made directly (no table): sizes 50-3,000 (some left out of the tests), ten regions."""
    from pipeline.audit.table_forensics import Stations

    rng = np.random.default_rng(seed)
    voters = rng.integers(50, 3000, n).astype(np.int32)
    issued = rng.binomial(voters, 0.6).astype(np.int32)
    lead = rng.binomial(issued, 0.55).astype(np.int64)
    codes = rng.integers(0, 10, n).astype(np.int32)
    return Stations(voters=voters, turnout_count=issued, ballots=issued.copy(), leader=lead,
                    scopes={"region": (codes, [f"region {i}" for i in range(10)])})


def traced_peak(fn, *args) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_pairwise_blocks_add_as_numpy_sums():
    from pipeline.audit.table_forensics import pairwise_blocks, tree_add

    rng = np.random.default_rng(0)
    for n in (1, 7, 129, 8193, 100_003):
        x = rng.random(n) ** 7 * rng.choice([1e-8, 1.0, 1e3], n)
        for limit in (128, 1000, 16_384):
            got = tree_add(pairwise_blocks(n, limit)[0], lambda lo, m, x=x: {"sum": np.sum(x[lo:lo + m])})
            assert got["sum"] == np.sum(x)  # bit for bit, not approximately
    assert pairwise_blocks(0, 128) == []


def test_spike_test_in_blocks_is_bit_identical_and_flat_in_memory(monkeypatch):
    """The spike test in blocks of stations gives the very figures of one block holding every station, and its
    memory does not grow with the stations (it held ~180 bytes per station)."""
    import json

    import pipeline.audit.table_forensics as tf

    st = stations_for_memory(40_000)
    monkeypatch.setattr(tf, "SPIKE_BLOCK", 1_000_000)
    whole = tf.spike_test(st, S)
    monkeypatch.setattr(tf, "SPIKE_BLOCK", 1_000)
    blocks = tf.spike_test(st, S)
    assert json.dumps(blocks, sort_keys=True) == json.dumps(whole, sort_keys=True)
    assert blocks["excluded"] > 0 and blocks["included"] == sum(r["stations"] for r in blocks["scopes"]["region"])
    small = traced_peak(tf.spike_test, stations_for_memory(10_000, seed=1), S)
    large = traced_peak(tf.spike_test, st, S)
    assert large - small < 0.5e6  # 30,000 stations more: under 17 bytes each (the inclusion mask is 1)


def test_integer_test_keeps_fewer_arrays_per_station():
    """The integer test's null keeps per station only the totals, the shares and the scope order (it kept the
    counts too: ~46 bytes per station); the draws' blocks are the same size whatever the table."""
    from pipeline.audit.table_forensics import integer_percentages

    s = TableForensicsSettings(mc_draws=100)
    small = traced_peak(integer_percentages, stations_for_memory(20_000, seed=2), s)
    large = traced_peak(integer_percentages, stations_for_memory(100_000, seed=3), s)
    assert (large - small) / 80_000 < 38


def test_included_positions_map_to_their_stations(monkeypatch):
    from pipeline.audit.table_forensics import _Included

    monkeypatch.setattr(_Included, "CHUNK", 7)
    mask = np.random.default_rng(4).random(100) < 0.4
    mask[:9] = False  # a first chunk with no station included
    kept = _Included(mask)
    where = np.flatnonzero(mask)
    assert kept.size == where.size
    for lo in range(where.size):
        for n in (1, 3, where.size - lo):
            assert kept.indices(lo, n).tolist() == where[lo:lo + n].tolist()
