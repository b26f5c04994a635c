"""The stuffing-tail and switching-tail tests (pipeline.audit.table_shift): quiet on clean tables, correlated or
not, alarming on moderate stuffing and switching, order-free, and shown in the table report."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import yaml

from pipeline.audit.table_audit import TableAuditSettings, run_table_audit
from pipeline.audit.table_forensics import Stations, TableForensicsSettings, run_table_forensics
from pipeline.audit.table_shift import SHIFT_TESTS, projection, robust_z, shift_tests, tail_row
from pipeline.audit.table_synth import SYNTH_MAPPING, clean_table, plant_fraud, random_shape, stations_from_table

S = TableForensicsSettings(mc_draws=20, digit_mc_draws=0)
#: Fraud as the issue measures it: half the non-voters stuffed, or half the other choices' votes switched, in 5%
#: of the stations.
RATE, STRENGTH = 0.05, 0.5
SHAPE = random_shape(3000, 6, seed=11)


@pytest.fixture(scope="module")
def clean():
    return clean_table(SHAPE, seed=12)


def tails(table) -> dict:
    results, _ = run_table_forensics(stations_from_table(table), S)
    return {name: results["tests"][name] for name in SHIFT_TESTS} | {"alarms": results["alarms"]}


def quiet(test: dict) -> bool:
    return not test["national"]["alarm"] and not any(r["alarm"] for rows in test["scopes"].values() for r in rows)


def test_robust_z_and_projection():
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert z[2] == 0 and z[-1] > 50  # the outlier moves neither the centre nor the spread
    rng = np.random.default_rng(0)
    y_t, y_s = rng.standard_normal(2001), rng.standard_normal(2001)
    assert np.allclose(projection(y_t, y_s, 90), robust_z(y_s))
    assert np.median(projection(y_t, y_s, 30)) == pytest.approx(0, abs=1e-12)


def test_tail_row_is_a_one_sided_sign_test():
    row = tail_row("r", 30, 10, 1000, 0)
    assert row["excess"] == 20 and row["effect"] == 0.02 and row["expected"] == 10
    assert row["p"] == pytest.approx(0.00111, abs=1e-5)  # P(Bin(40, 1/2) >= 30)
    assert tail_row("r", 10, 30, 1000, 0)["p"] > 0.99
    assert tail_row("r", 0, 0, 1000, 0)["p"] == 1.0
    assert np.isnan(tail_row("r", 0, 0, 0, 5)["p"])


def test_clean_tables_are_quiet_correlated_or_not(clean):
    for table in (clean, clean_table(replace(SHAPE, rho=0.5), seed=12)):
        got = tails(table)
        for name in SHIFT_TESTS:
            assert quiet(got[name]), name
            nat = got[name]["national"]
            assert abs(nat["effect"]) < S.shift_min_effect and nat["stations"] > 2500


@pytest.mark.parametrize(("kind", "test"), [("stuffing", "stuffing_tail"), ("switching", "switching_tail")])
def test_moderate_fraud_in_5pct_of_stations_alarms(clean, kind, test):
    altered, hit = plant_fraud(clean, kind, RATE, seed=3, strength=STRENGTH)
    nat = tails(altered)[test]["national"]
    assert nat["alarm"] and nat["p_holm"] < 1e-4
    # the excess counts stations pushed out beyond the threshold: most of those planted, never many more
    assert 0.3 * hit.sum() < nat["excess"] < 1.2 * hit.sum()


def test_switching_does_not_look_like_stuffing(clean):
    altered, _ = plant_fraud(clean, "switching", RATE, seed=3, strength=STRENGTH)
    assert quiet(tails(altered)["stuffing_tail"])


def test_the_region_stuffed_is_found(clean):
    """10% of one region's stations (at 30% the region's median moves with them and the test loses it: a limit)."""
    region = clean["region"].iloc[0]
    altered, _ = plant_fraud(clean, "stuffing", 0.1, seed=4, strength=STRENGTH, regions=(region,))
    assert tails(altered)["alarms"]["stuffing_tail"]["region"] == [region]


def test_minimum_effect_holds_back_a_small_excess(clean):
    altered, _ = plant_fraud(clean, "stuffing", RATE, seed=3, strength=STRENGTH)
    st = stations_from_table(altered)
    strict = run_table_forensics(st, replace(S, shift_min_effect=0.2))[0]["tests"]["stuffing_tail"]["national"]
    assert not strict["alarm"] and strict["p_holm"] < 0.05


def test_results_do_not_depend_on_station_order(clean):
    altered, _ = plant_fraud(clean, "stuffing", RATE, seed=3, strength=STRENGTH)
    st = stations_from_table(altered)
    order = np.random.default_rng(5).permutation(len(st))
    codes, names = st.scopes["region"]
    shuffled = Stations(voters=st.voters[order], turnout_count=st.turnout_count[order], ballots=st.ballots[order],
                        leader=st.leader[order], scopes={"region": (codes[order], names)})
    assert shift_tests(st, S) == shift_tests(shuffled, S)


def test_small_stations_and_small_scopes_are_not_tested():
    table = clean_table(random_shape(400, 2, seed=1), seed=2)
    table.loc[:9, "region"] = "tiny region"
    st = stations_from_table(table)
    small = st.voters < S.shift_min_registered
    got = {t["test"]: t for t in shift_tests(st, S)}["stuffing_tail"]
    tiny = next(r for r in got["scopes"]["region"] if r["scope"] == "tiny region")
    assert tiny["stations"] == 0 and np.isnan(tiny["p"])
    assert got["national"]["stations"] == int((~small).sum()) - tiny["unmodelled_stations"]


def test_audit_and_report_show_the_tail_tests(tmp_path, clean):
    altered, _ = plant_fraud(clean, "stuffing", RATE, seed=3, strength=STRENGTH)
    altered.to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(SYNTH_MAPPING), encoding="utf-8")
    run_table_audit(tmp_path / "table.csv", tmp_path / "map.yaml", tmp_path / "audit",
                    TableAuditSettings(forensics=S))
    summary = json.loads((tmp_path / "audit" / "forensics.json").read_text(encoding="utf-8"))
    assert summary["alarms"]["stuffing_tail"]["national"]
    flags = (tmp_path / "audit" / "flags.csv").read_text(encoding="utf-8")
    assert "stuffing_tail" in flags
    from pipeline.report.table_report import build_table_report

    html = build_table_report(tmp_path / "audit", tmp_path / "report").read_text(encoding="utf-8")
    assert "Stuffing tail" in html and "Switching tail" in html and "Stations pushed out:" in html
    assert (tmp_path / "report" / "figures" / "table_tails.png").is_file()
