"""The stuffing-tail and switching-tail tests (pipeline.audit.table_shift): reported only by default (an honest
mixture of towns and villages fills the stuffing tail as stuffing does); with their alarm on (``shift_alarm``)
quiet on clean tables, correlated or not, alarming on moderate stuffing and switching; order-free, and shown in
the table report."""

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

#: The default settings (the tail tests reported only), and with the tail tests' alarm on (``S``: what the
#: alarm-rate tests below measure).
DEFAULT = TableForensicsSettings(mc_draws=20, digit_mc_draws=0)
S = replace(DEFAULT, shift_alarm=True)
#: Fraud as the issue measures it: half the non-voters stuffed, or half the other choices' votes switched, in 5%
#: of the stations.
RATE, STRENGTH = 0.05, 0.5
SHAPE = random_shape(3000, 6, seed=11)


@pytest.fixture(scope="module")
def clean():
    return clean_table(SHAPE, seed=12)


def tails(table, s: TableForensicsSettings = S) -> dict:
    results, _ = run_table_forensics(stations_from_table(table), s)
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


def test_reported_only_by_default_even_on_planted_stuffing(clean):
    """By default the tail tests raise no alarm and stay out of the national Holm family, but still report their
    counts, effect and raw p-value."""
    altered, hit = plant_fraud(clean, "stuffing", RATE, seed=3, strength=STRENGTH)
    results, _ = run_table_forensics(stations_from_table(altered), DEFAULT)
    on, _ = run_table_forensics(stations_from_table(altered), S)
    for name in SHIFT_TESTS:
        test = results["tests"][name]
        assert test["report_only"] and quiet(test) and np.isnan(test["national"]["p_holm"])
        assert results["alarms"][name] == {"national": False, "region": []}
    nat = results["tests"]["stuffing_tail"]["national"]
    assert nat["p"] < 1e-6 and 0.3 * hit.sum() < nat["excess"] == on["tests"]["stuffing_tail"]["national"]["excess"]
    # out of the national family: the other tests' national Holm p-values are adjusted over fewer tests
    assert results["tests"]["klimek_corner"]["national"]["p_holm"] <= on["tests"]["klimek_corner"]["national"]["p_holm"]


def test_mixture_tables_draw_a_second_honest_component():
    """``mix_weight`` = 0 leaves the clean tables as they were; a mixture moves about that share of each region's
    stations up in turnout and leader share."""
    shape = random_shape(4000, 2, seed=21)
    base = clean_table(shape, seed=22)
    assert base.equals(clean_table(replace(shape, mix_weight=0.0, mix_shift=3.0), seed=22))
    mixed = clean_table(replace(shape, mix_weight=0.3, mix_shift=2.0), seed=22)
    st0, st1 = stations_from_table(base), stations_from_table(mixed)
    assert st1.turnout_count.sum() > 1.03 * st0.turnout_count.sum()
    assert (st1.leader / st1.ballots).mean() > (st0.leader / st0.ballots).mean() + 0.01


def test_honest_mixture_fills_the_stuffing_tail_so_it_does_not_alarm_by_default():
    """Towns and villages: 20% of every region's stations drawn from an honest second component 2 spreads up along
    the stuffing direction. With the alarm on, the stuffing tail alarms on this clean table (the limit that made
    the tests report-only); by default nothing alarms, and the other strong tests stay quiet."""
    shape = replace(random_shape(3000, 6, seed=11), mix_weight=0.2, mix_shift=2.0)
    table = clean_table(shape, seed=13)
    assert tails(table)["stuffing_tail"]["national"]["alarm"]
    results, _ = run_table_forensics(stations_from_table(table), DEFAULT)
    for name in (*SHIFT_TESTS, "klimek_corner", "integer_percentages", "spikes"):
        assert quiet(results["tests"][name]), name


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


@pytest.mark.parametrize("alarm_on", [False, True])
def test_audit_and_report_show_the_tail_tests(tmp_path, clean, alarm_on):
    altered, _ = plant_fraud(clean, "stuffing", RATE, seed=3, strength=STRENGTH)
    altered.to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(SYNTH_MAPPING), encoding="utf-8")
    run_table_audit(tmp_path / "table.csv", tmp_path / "map.yaml", tmp_path / "audit",
                    TableAuditSettings(forensics=S if alarm_on else DEFAULT))
    summary = json.loads((tmp_path / "audit" / "forensics.json").read_text(encoding="utf-8"))
    assert summary["alarms"]["stuffing_tail"]["national"] is alarm_on
    flags = (tmp_path / "audit" / "flags.csv").read_text(encoding="utf-8")
    assert ("stuffing_tail" in flags) is alarm_on
    from pipeline.report.table_report import build_table_report

    html = build_table_report(tmp_path / "audit", tmp_path / "report").read_text(encoding="utf-8")
    assert "Stuffing tail" in html and "Switching tail" in html
    assert ("Stations pushed out:" in html) is alarm_on and ("Reported only, no alarm" in html) is not alarm_on
    assert (tmp_path / "report" / "figures" / "table_tails.png").is_file()
