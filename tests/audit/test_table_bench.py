"""The tables bench's helpers and the fraud it plants for the digit tests (no timing, no memory assertion here:
those are measured by ``python -m pipeline bench --only tables`` in child processes)."""

from __future__ import annotations

import numpy as np

from pipeline.audit.table_bench import (
    CORRELATED_RHO,
    MEMORY_UNIT,
    MIXTURE,
    bench_tests,
    false_alarms,
    memory_growth,
    power,
)
from pipeline.audit.table_forensics import TableForensicsSettings
from pipeline.audit.table_synth import FABRICATED_STEP, clean_table, plant_fraud, random_shape


def test_memory_growth_per_100k_stations():
    rows = [{"stations": 10_000, "peak_rss_mb": 250}, {"stations": 100_000, "peak_rss_mb": 300},
            {"stations": 500_000, "peak_rss_mb": 380}, {"stations": 1_000_000, "error": "killed"}]
    out = memory_growth(rows)
    assert out["peak_rss_mb"] == {"10000": 250, "100000": 300, "500000": 380}
    assert out["growth_mb_per_100k_stations"] == round(80 / 400_000 * MEMORY_UNIT, 1) == 20.0
    assert memory_growth(rows[:1])["growth_mb_per_100k_stations"] is None


def test_fabricated_counts_are_round_and_keep_every_relation():
    table = clean_table(random_shape(2000, 4, seed=3), seed=4)
    altered, hit = plant_fraud(table, "fabricated", 0.3, seed=1, strength=1.0)
    votes = altered.filter(regex="^choice_")
    assert 0.2 < hit.mean() < 0.4
    assert (votes[hit] % FABRICATED_STEP == 0).to_numpy().mean() > 0.95
    assert (votes[~hit] % FABRICATED_STEP == 0).to_numpy().mean() < 0.3
    assert (altered["valid"] == votes.sum(axis=1)).all()
    assert (altered["received"] == altered["issued"] + altered["cancelled"]).all()
    assert (altered["valid"] + altered["invalid"] == altered["found"]).all()
    assert (altered["issued"] <= altered["registered"]).all() and (altered.drop(columns="region") >= 0).all().all()
    assert np.array_equal(altered[~hit].to_numpy(), table[~hit].to_numpy())


def test_child_peak_memory_is_its_own_not_its_parents():
    """A child started by a parent holding much memory reports its own peak (``ru_maxrss`` carried the parent's
    resident set across ``exec``: the bench's 500,000-station row read 432-451 MB where the audit alone peaks at
    ~350 MB)."""
    import subprocess
    import sys

    from pipeline import config as cfg

    held = np.ones(200 * 2**20 // 8)  # 200 MB touched in this process
    code = ("import resource; from pipeline.audit.table_bench import peak_rss_mb; "
            "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=cfg.PROJ_ROOT).stdout.split()
    own, inherited = float(out[0]), float(out[1])
    assert held.sum() > 0
    assert own < 250 < inherited  # its own imports (~160 MB) vs this process's 200 MB more, as the bench read before


def test_false_alarms_and_power_cover_every_test_and_the_correlated_tables():
    """Every test runs on the honestly correlated clean tables and the honest mixtures too (``<test>_rho_<rho>``,
    ``<test>_mix_<weight>_<shift>``), the tail tests included, and the power section lists them (a small run: one
    table of each)."""
    shape, s = random_shape(600, 3, seed=1), TableForensicsSettings(mc_draws=10, digit_mc_draws=0)
    rates = false_alarms(shape, 1, 300, s)["tests"]
    for name in ("stuffing_tail", "switching_tail", "klimek_corner", "klimek_rank"):
        assert {name, f"{name}_rho_{CORRELATED_RHO}", f"{name}_mix_{MIXTURE[0]}_{MIXTURE[1]}"} <= set(rates)
    found = power(shape, 1, 300, s)
    assert {"stuffing_tail", "switching_tail"} <= set(found["stuffing"]["national_alarm_rate_at_5pct_of_stations"])


def test_bench_measures_the_report_only_tail_tests_as_if_their_alarm_were_on():
    """The tail tests raise no alarm by default; the bench re-applies the Holm families with ``shift_alarm`` on for
    them, so their power shows (stuffing in 5% of the stations), while the other tests keep their default rows."""
    shape, s = random_shape(3000, 6, seed=11), TableForensicsSettings(mc_draws=20, digit_mc_draws=0)
    table, _ = plant_fraud(clean_table(shape, seed=12), "stuffing", 0.05, seed=3, strength=0.5)
    from pipeline.audit.table_forensics import run_table_forensics
    from pipeline.audit.table_synth import stations_from_table

    st = stations_from_table(table)
    default = run_table_forensics(st, s)[0]["tests"]
    got = bench_tests(st, s)
    assert not default["stuffing_tail"]["national"]["alarm"] and got["stuffing_tail"]["national"]["alarm"]
    assert got["klimek_corner"] == default["klimek_corner"]
