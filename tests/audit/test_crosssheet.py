import numpy as np
import pandas as pd

from pipeline.audit.crosssheet import (
    district_outlier_flags,
    duplicate_station_flags,
    identical_count_flags,
    robust_z,
    turnout_flags,
)
from pipeline.audit.settings import AuditSettings
from tests.audit.conftest import ACTA, clean_values

S = AuditSettings()


def table(rows: dict[str, dict]) -> pd.DataFrame:
    t = pd.DataFrame.from_dict(rows, orient="index")
    t.index.name = "sheet_id"
    t["station_type"] = t.get("station_type", "B")
    t["turnout"] = t["total_votes"] / t["registered_voters"]
    return t


def test_duplicate_station_ids_flag_both_sheets():
    t = table({"a": clean_values(), "b": clean_values(pri=121), "c": clean_values(section=346)})
    flags = duplicate_station_flags(t, ACTA)
    assert sorted(f.sheet_id for f in flags) == ["a", "b"]
    assert flags[0].evidence["other_sheets"] == ["b"] and flags[0].verdict == "suspicious"


def test_missing_ids_are_not_duplicates():
    t = table({"a": clean_values(section=None), "b": clean_values(section=None)})
    assert duplicate_station_flags(t, ACTA) == []


def test_identical_count_vectors_across_stations():
    t = table({"a": clean_values(), "b": clean_values(section=999), "c": clean_values(section=7, pri=99)})
    flags = identical_count_flags(t, ACTA, S)
    assert sorted(f.sheet_id for f in flags) == ["a", "b"]
    assert "PRI 120" in flags[0].reason


def test_identical_tiny_vectors_are_not_flagged():
    tiny = {f: 0 for f in ("pan", "pri", "pps", "parm", "pfcrn", "pms", "pdm", "prt", "unregistered",
                           "null_votes")} | {"pri": 3}
    t = table({"a": clean_values(**tiny), "b": clean_values(section=999, **tiny)})
    assert identical_count_flags(t, ACTA, S) == []


def test_turnout_of_100_percent_or_more():
    t = table({"a": clean_values(), "b": clean_values(registered_voters=220),
               "c": clean_values(registered_voters=200)})
    flags = {f.sheet_id: f for f in turnout_flags(t, ACTA, S)}
    assert set(flags) == {"b", "c"}
    assert flags["b"].severity == "medium" and flags["c"].severity == "high"
    assert "turnout 110%" in flags["c"].reason


def test_district_outlier_found_and_homogeneous_district_clean():
    rng = np.random.default_rng(0)
    rows = {}
    for i in range(12):
        pri = int(rng.integers(110, 130))
        rows[f"s{i}"] = clean_values(section=i + 1, pri=pri, total_votes=100 + pri)
    assert district_outlier_flags(table(rows), ACTA, S) == []
    rows["s0"] = clean_values(section=1, pri=400, total_votes=500, registered_voters=600, ballots_received=600)
    flags = district_outlier_flags(table(rows), ACTA, S)
    assert [f.sheet_id for f in flags] == ["s0"]
    assert "PRI share" in flags[0].reason and flags[0].evidence["robust_z"]


def test_tiny_parties_are_not_outliers():
    rng = np.random.default_rng(1)
    rows = {}
    for i in range(12):
        prt = int(rng.integers(0, 6))
        rows[f"s{i}"] = clean_values(section=i + 1, prt=prt, total_votes=220 + prt)
    rows["s0"] = clean_values(section=1, prt=20, total_votes=240)  # 8% for a party at ~1%: a few votes, not fraud
    assert any("PRT" in f.reason for f in district_outlier_flags(table(rows), ACTA, AuditSettings(min_outlier_share=0)))
    assert all("PRT" not in f.reason for f in district_outlier_flags(table(rows), ACTA, S))


def test_small_districts_are_skipped():
    rows = {f"s{i}": clean_values(section=i + 1, pri=100 + 50 * i) for i in range(4)}
    assert district_outlier_flags(table(rows), ACTA, S) == []


def test_robust_z_with_no_spread_is_nan():
    assert robust_z(pd.Series([5.0] * 10)).isna().all()
