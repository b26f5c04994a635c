import numpy as np
import pandas as pd
import pytest

from pipeline.audit.forensics import (
    BENFORD_2BL,
    holm,
    last_digit_reference,
    pair_hits,
    run_forensics,
    second_digits,
    smooth_last_digit_counts,
)
from pipeline.audit.settings import AuditSettings
from tests.audit.conftest import ACTA, PARTIES

S = AuditSettings()


def batch(rng, n=400, districts=4, heaping=0.0):
    """Sheets with broad, smooth party counts; ``heaping`` of them rounded to a multiple of 5 (invented)."""
    rows = []
    for i in range(n):
        registered = int(rng.integers(300, 900))
        total = int(rng.binomial(registered, rng.uniform(0.4, 0.8)))
        votes = rng.multinomial(total, rng.dirichlet(np.full(len(PARTIES), 2.0)))
        if rng.random() < heaping:
            votes = (np.round(votes / 5) * 5).astype(int)
        rows.append({"state": 1, "district": 1 + i % districts, "status": "ok", "registered_voters": registered,
                     **dict(zip(PARTIES, votes, strict=True)), "total_votes": int(votes.sum())})
    t = pd.DataFrame(rows)
    t["turnout"] = t["total_votes"] / t["registered_voters"]
    return t


def alarms(result):
    return {(a["scope"], a["test"]) for a in result["summary"]["alarms"]}


def test_benford_2bl_mean_is_4187():
    assert BENFORD_2BL.sum() == pytest.approx(1)
    assert np.arange(10) @ BENFORD_2BL == pytest.approx(4.187, abs=1e-3)


def test_digit_extraction():
    assert second_digits(np.array([5, 10, 12, 99, 100, 123, 987]), 10).tolist() == [0, 2, 9, 0, 2, 8]
    repeated, adjacent = pair_hits(np.array([11, 111, 123, 190, 459]))
    assert repeated.tolist() == [True, False, False, False] and adjacent.tolist() == [False, True, True, False]


def test_honest_counts_raise_no_alarm():
    """Each level is one family at 5%, so a clean batch alarms somewhere in at most ~10% of batches (two levels):
    over 20 clean batches, at most 4 alarm anywhere and at most 2 in the batch scope."""
    results = [run_forensics(batch(np.random.default_rng(seed)), S, ACTA) for seed in range(1, 21)]
    assert all(r["summary"]["n_tests"] > 10 for r in results)
    assert sum(bool(alarms(r)) for r in results) <= 4
    assert sum(any(scope == "batch" for scope, _ in alarms(r)) for r in results) <= 2


def test_counts_heaped_on_round_numbers_alarm():
    result = run_forensics(batch(np.random.default_rng(2), heaping=0.3), S, ACTA)
    assert ("batch", "last_digit_0_or_5") in alarms(result)
    row = next(r for r in result["tests"] if r["scope"] == "batch" and r["test"] == "last_digit_0_or_5")
    assert row["effect_size"] > 0.1 and row["p_adjusted"] < 0.05


def test_small_counts_skipped():
    t = batch(np.random.default_rng(3), n=5)
    rows = run_forensics(t, S, ACTA)["tests"]
    assert all(r["skipped"] for r in rows if r["test"].startswith("last_digit"))


def test_smooth_reference_keeps_small_counts_honest():
    # Poisson counts around 18: low last digits are more common above 20 than high ones, honestly
    rng = np.random.default_rng(4)
    values = rng.poisson(18, 20000)
    observed = np.bincount(values[values >= 20] % 10, minlength=10)
    smooth = last_digit_reference([values], 20, "smooth") * observed.sum()
    uniform = last_digit_reference([values], 20, "uniform") * observed.sum()
    assert np.abs(observed - smooth).max() < np.abs(observed - uniform).max() / 3
    assert smooth_last_digit_counts(values, 20).sum() == pytest.approx((values >= 20).sum())


def test_klimek_correlation_within_districts():
    rng = np.random.default_rng(5)
    t = batch(rng)
    stuffed = rng.random(len(t)) < 0.3  # ballot stuffing: added votes all go to the winner
    extra = (stuffed * t["registered_voters"] * 0.3).astype(int)
    winner = t[list(PARTIES)].sum().idxmax()
    t[winner] += extra
    t["total_votes"] += extra
    t["turnout"] = t["total_votes"] / t["registered_voters"]
    result = run_forensics(t, AuditSettings(ruling_party=winner), ACTA)  # the stuffing favours the largest
    assert result["winner"] == winner
    row = next(r for r in result["tests"] if r["scope"] == "batch" and r["test"] == "klimek_turnout_winner")
    # the correlation is found, but it is reported only: honest elections correlate too (issue 16)
    assert row["statistic"] > 0.1 and row["p_value"] < 1e-3 and row["report_only"] and not row["alarm"]
    assert result["klimek"]["n"] == len(t) and len(result["klimek"]["histogram"]) == S.klimek_bins


def test_report_only_tests_never_alarm():
    result = run_forensics(batch(np.random.default_rng(6), heaping=0.3), S, ACTA)
    report_only = [r for r in result["tests"] if r["report_only"]]
    assert report_only and not any(r["alarm"] for r in report_only)


def test_holm_adjustment():
    assert holm(np.array([0.01, 0.04, 0.03, 0.5])).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_text_station_ids_at_any_level():
    """Region and commission names as ids (issue 16: ``scopes()`` cast ids to int and crashed)."""
    t = batch(np.random.default_rng(7), heaping=0.3)
    t["state"] = np.where(t.index % 2, "Республика Татарстан", "Москва")
    t["district"] = "ТИК " + t["district"].astype(str)
    result = run_forensics(t, S, ACTA)
    scopes = {r["scope"] for r in result["tests"]}
    assert "district Москва-ТИК 1" in scopes and "district Республика Татарстан-ТИК 2" in scopes
    levels = (("region", ("state",)), ("commission", ("state", "district")), ("station", ("registered_voters",)))
    rows = run_forensics(t, S, ACTA, levels=levels)["tests"]
    assert {r["level"] for r in rows} == {"batch", "region", "commission", "station"}
    assert "region Москва" in {r["scope"] for r in rows}
    # numeric ids read as floats keep their old names
    t2 = batch(np.random.default_rng(8))
    t2["state"], t2["district"] = 1.0, t2["district"].astype(float)
    assert "district 1-2" in {r["scope"] for r in run_forensics(t2, S, ACTA)["tests"]}


def test_families_are_per_level():
    """Adding scopes does not change the batch's adjusted p-values (one family per level)."""
    t = batch(np.random.default_rng(9), n=800, heaping=0.1)
    few = run_forensics(t, S, ACTA, levels=())["tests"]
    many = run_forensics(t, S, ACTA, levels=(("district", ("state", "district")), ("station", ("registered_voters",))))
    # (the Klimek correlation is centred on the finest level, so it differs by design; it never alarms)
    batch_few = {r["test"]: r["p_adjusted"] for r in few if r["scope"] == "batch" and "klimek" not in r["test"]}
    batch_many = {r["test"]: r["p_adjusted"] for r in many["tests"]
                  if r["scope"] == "batch" and "klimek" not in r["test"]}
    assert len(batch_few) >= 6
    assert batch_few == batch_many


def test_alarm_needs_minimum_effect():
    """A tiny but significant shift does not alarm: a huge sample of counts with a slight preference for 0."""
    rng = np.random.default_rng(10)
    n = 40000
    t = batch(rng, n=n, districts=1)
    for party in PARTIES:  # move a few counts (about 1 in 60) onto a multiple of ten
        nudge = rng.random(n) < 1 / 60
        t.loc[nudge, party] = (t.loc[nudge, party] // 10) * 10
    rows = {r["test"]: r for r in run_forensics(t, S, ACTA, levels=())["tests"]}
    for name in ("last_digit_uniform", "last_digit_mean"):
        row = rows[name]
        assert row["p_adjusted"] < 1e-6 and 0 < abs(row["effect_size"]) < row["min_effect"] and not row["alarm"]
    strict = run_forensics(t, S, ACTA, levels=(), min_effect={"last_digit_uniform": 0.0})["tests"]
    assert next(r for r in strict if r["test"] == "last_digit_uniform")["alarm"]
