"""audit-table on small tables made here: mapping checks, bad input, outputs, wording, synthetic tables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.audit.table_audit import TableAuditSettings, run_table_audit
from pipeline.audit.table_forensics import (
    DIGIT_TESTS,
    TableForensicsSettings,
    holm,
    near_integer,
    run_table_forensics,
)
from pipeline.audit.table_mapping import load_mapping, resolve_mapping
from pipeline.audit.table_synth import (
    FRAUD_KINDS,
    SYNTH_MAPPING,
    clean_table,
    plant_fraud,
    random_shape,
    stations_from_table,
)
from pipeline.cli import main
from pipeline.errors import ConfigError, InputFileError

FAST = TableAuditSettings(chunk_rows=150, forensics=TableForensicsSettings(mc_draws=50))
ROOT = Path(__file__).resolve().parents[2]
ELECTIONS = Path(os.environ.get("ELECTIONS_DIR", ROOT.parent / "shared" / "data" / "elections"))


@pytest.fixture
def table():
    return clean_table(random_shape(600, 4, seed=3), seed=4)


@pytest.fixture
def mapping_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(SYNTH_MAPPING), encoding="utf-8")
    return path


def write(tmp_path, frame, name="results.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_synthetic_table_balances_and_fraud_keeps_it(table):
    for kind in FRAUD_KINDS:
        altered, hit = plant_fraud(table, kind, 0.3, seed=1, strength=0.6)
        assert hit.any()
        assert (altered["received"] == altered["issued"] + altered["cancelled"]).all()
        assert (altered["valid"] == altered.filter(like="choice_").sum(axis=1)).all()
        assert (altered["valid"] + altered["invalid"] == altered["found"]).all()
        assert (altered.drop(columns="region") >= 0).all().all()
    with pytest.raises(ValueError):
        plant_fraud(table, "magic", 0.1, seed=1)


@pytest.mark.parametrize("name", ["results.csv", "results.csv.gz", "results.csv.zip", "results.parquet"])
def test_clean_table_audits_without_arithmetic_flags(tmp_path, table, mapping_file, name):
    path = write(tmp_path, table, name)
    result = run_table_audit(path, mapping_file, tmp_path / "out", FAST)
    assert result.rows == len(table)
    assert result.statuses == {"ok": len(table)}
    out = tmp_path / "out"
    for f in ("stations.csv", "stations.parquet", "flags.csv", "excluded.csv", "forensics.json"):
        assert (out / f).is_file()
    stations = pd.read_parquet(out / "stations.parquet")
    assert len(stations) == len(table) and (stations["gap_valid_sum"] == 0).all()
    summary = json.loads((out / "forensics.json").read_text())
    assert summary["leader"] == "choice_1"
    assert set(summary["tests"]) == {"integer_percentages", "klimek_corner", "full_turnout", "spikes",
                                     "stuffing_tail", "switching_tail", *(f"digit_{t}" for t in DIGIT_TESTS)}


def test_failed_identity_is_worded_for_published_numbers(tmp_path, table, mapping_file):
    table.loc[3, "valid"] += 7
    table.loc[4, ["found", "valid", "choice_1"]] += 2  # two ballots more in the boxes than were issued
    path = write(tmp_path, table)
    run_table_audit(path, mapping_file, tmp_path / "out", FAST)
    flags = pd.read_csv(tmp_path / "out" / "flags.csv")
    mine = flags[flags["row"] == 4]
    assert set(mine["rule"]) == {"boxes_balance", "valid_sum"}
    assert mine["reason"].str.contains("the published numbers do not add up \\(by 7\\)").all()
    assert not flags["reason"].str.contains("read|confidence|alternative", case=False).any()
    stations = pd.read_csv(tmp_path / "out" / "stations.csv")
    assert stations.loc[3, "status"] == "inconsistent"
    soft = flags[flags["row"] == 5]
    assert soft["verdict"].tolist() == ["warning"] and "found <= issued" in soft["reason"].iloc[0]


def test_bad_rows_get_a_status_and_a_reason(tmp_path, table, mapping_file):
    frame = table.astype({"valid": object, "registered": object})
    frame.loc[0, "valid"] = "abc"
    frame.loc[1, "registered"] = -5
    frame.loc[2, "valid"] = ""
    frame.loc[3, "valid"] = "1.5"
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)  # a duplicate station id
    path = write(tmp_path, frame)
    run_table_audit(path, mapping_file, tmp_path / "out", FAST)
    excluded = pd.read_csv(tmp_path / "out" / "excluded.csv")
    by_row = excluded.set_index("row")
    assert by_row.loc[1, "status"] == "bad_value" and "text where a count is due 'abc'" in by_row.loc[1, "reason"]
    assert "negative count" in by_row.loc[2, "reason"] and "empty" in by_row.loc[3, "reason"]
    assert "not a whole number" in by_row.loc[4, "reason"]
    assert by_row.loc[len(frame), "status"] == "duplicate_id" and "already seen at row 11" in \
        by_row.loc[len(frame), "reason"]
    summary = json.loads((tmp_path / "out" / "forensics.json").read_text())
    assert summary["excluded"]["rows"] == 5


def test_exclusions_are_counted_with_reasons(tmp_path, table):
    mapping = dict(SYNTH_MAPPING, exclude={"ids": [{"level": "region", "pattern": "01$", "reason": "abroad"}],
                                           "min_registered": 100})
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    table.loc[0, "registered"] = 50
    table.loc[0, "region"] = "region 02"
    run_table_audit(write(tmp_path, table), path, tmp_path / "out", FAST)
    summary = json.loads((tmp_path / "out" / "forensics.json").read_text())
    by_reason = summary["excluded"]["by_reason"]
    assert by_reason["abroad"] == int((table["region"] == "region 01").sum())
    assert by_reason["fewer than 100 registered voters"] == 1


def test_formula_cells_are_neutralised(tmp_path, table, mapping_file):
    table["region"] = table["region"].astype(object)
    table.loc[0, "region"] = "=HYPERLINK(\"http://x\")"
    run_table_audit(write(tmp_path, table), mapping_file, tmp_path / "out", FAST)
    text = (tmp_path / "out" / "stations.csv").read_text(encoding="utf-8")
    assert "\"'=HYPERLINK" in text


def test_mapping_errors_name_key_and_suggest_columns(tmp_path, table):
    columns = list(table.columns)
    bad = dict(SYNTH_MAPPING, roles=dict(SYNTH_MAPPING["roles"], valid="vaild"))
    with pytest.raises(ConfigError, match=r"roles\.valid: no column 'vaild'.*close: 'valid'"):
        resolve_mapping(bad, columns)
    with pytest.raises(ConfigError, match=r"roles\.issued: .* matches 2 columns"):
        resolve_mapping(dict(SYNTH_MAPPING, roles=dict(SYNTH_MAPPING["roles"], issued={"match": "^(issued|found)"})),
                        columns)
    with pytest.raises(ConfigError, match=r"rules\[0\].*unknown name"):
        resolve_mapping(dict(SYNTH_MAPPING, rules=["valid == sum(choicez)"]), columns)
    with pytest.raises(ConfigError, match="already bound"):
        resolve_mapping(dict(SYNTH_MAPPING, roles=dict(SYNTH_MAPPING["roles"], found="issued")), columns)
    path = tmp_path / "m.yaml"
    path.write_text("ids: [a]\nroles: {registred: x}\nchoices: [b]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown role.*registred"):
        load_mapping(path)


@pytest.mark.parametrize("content,match", [("", "empty"), ("a,b\n", "no station rows")])
def test_empty_inputs_are_clear_errors(tmp_path, mapping_file, content, match):
    path = tmp_path / "r.csv"
    path.write_text(content, encoding="utf-8")
    if content:
        with pytest.raises(ConfigError, match="no column"):  # header without the mapping's columns
            run_table_audit(path, mapping_file, tmp_path / "out", FAST)
    else:
        with pytest.raises(InputFileError, match=match):
            run_table_audit(path, mapping_file, tmp_path / "out", FAST)


def test_header_only_table(tmp_path, table, mapping_file):
    path = write(tmp_path, table.iloc[:0])
    with pytest.raises(InputFileError, match="no station rows"):
        run_table_audit(path, mapping_file, tmp_path / "out", FAST)


def test_cli_exit_codes_and_no_traceback(tmp_path, table, mapping_file, capsys):
    path = write(tmp_path, table)
    assert main(["audit-table", str(path), "--map", str(mapping_file), "--out", str(tmp_path / "o"),
                 "--draws", "20"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["audit-table", str(tmp_path / "nope.csv"), "--map", str(mapping_file), "--out",
                 str(tmp_path / "o")]) == 3
    broken = tmp_path / "bad.yaml"
    broken.write_text("ids: [region, uik]\nroles: {registered: regstered, valid: valid}\nchoices: [choice_1]\n")
    assert main(["audit-table", str(path), "--map", str(broken), "--out", str(tmp_path / "o")]) == 6
    err = capsys.readouterr().err
    assert "roles.registered" in err and "'registered'" in err and "Traceback" not in err


def test_holm_and_near_integer():
    assert np.allclose(holm(np.array([0.01, 0.04, np.nan, 0.03])), [0.03, 0.06, np.nan, 0.06], equal_nan=True)
    assert near_integer(np.array([500, 503, 1000]), np.array([1000, 1000, 1000]), 0.05, 99).tolist() == \
        [True, False, False]


def test_forensics_alarm_on_rounding_not_on_clean():
    s = TableForensicsSettings(mc_draws=100)
    clean = clean_table(random_shape(3000, 6, seed=11), seed=12)
    results, _ = run_table_forensics(stations_from_table(clean), s)
    assert not results["tests"]["integer_percentages"]["national"]["alarm"]
    rounded, _ = plant_fraud(clean, "rounding", 0.1, seed=2)
    results, _ = run_table_forensics(stations_from_table(rounded), s)
    assert results["tests"]["integer_percentages"]["national"]["alarm"]
    extreme, _ = plant_fraud(clean, "extreme", 0.05, seed=2, strength=0.97,
                             regions=("region 01",))
    results, _ = run_table_forensics(stations_from_table(extreme), s)
    corner = results["tests"]["klimek_corner"]
    assert "region 01" in results["alarms"]["klimek_corner"]["region"]
    assert corner["national"]["observed"] > corner["national"]["interval"][1]


@pytest.mark.slow
@pytest.mark.skipif(not (ELECTIONS / "ru2012.csv.zip").is_file(), reason="../shared/data/elections absent")
def test_real_2012_table_balances_and_shows_the_published_fingerprint(tmp_path):
    s = TableAuditSettings(forensics=TableForensicsSettings(mc_draws=200))
    result = run_table_audit(ELECTIONS / "ru2012.csv.zip", ROOT / "mappings" / "ru2012.yaml", tmp_path, s)
    assert result.statuses.get("inconsistent", 0) == 0
    summary = json.loads((tmp_path / "forensics.json").read_text())
    integer = summary["tests"]["integer_percentages"]
    assert 900 < integer["national"]["excess"] < 1600 and integer["national"]["z"] > 7
    top = sorted(integer["scopes"]["region"], key=lambda r: -r["excess"])[:3]
    assert {r["scope"] for r in top} == {"Республика Татарстан (Татарстан)", "Республика Башкортостан",
                                        "Республика Дагестан"}


@pytest.mark.slow
@pytest.mark.skipif(not (ELECTIONS / "ru2016.csv.zip").is_file(), reason="../shared/data/elections absent")
def test_real_2016_mapping_resolves_and_balances(tmp_path):
    s = TableAuditSettings(forensics=TableForensicsSettings(mc_draws=20))
    result = run_table_audit(ELECTIONS / "ru2016.csv.zip", ROOT / "mappings" / "ru2016.yaml", tmp_path, s)
    assert result.statuses.get("inconsistent", 0) == 0


def test_html_report_escapes_and_links_the_files(tmp_path, table, mapping_file):
    from pipeline.report.table_report import build_table_report

    table["region"] = table["region"].astype(object)
    table.loc[table["region"] == "region 01", "region"] = "<script>alert(1)</script>"
    table.loc[0, "valid"] += 3
    run_table_audit(write(tmp_path, table), mapping_file, tmp_path / "audit", FAST)
    page = build_table_report(tmp_path / "audit", tmp_path / "report")
    html = page.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "the published numbers do not add up (by 3)" in html
    for name in ("data/stations.csv", "data/flags.csv", "figures/table_integers.png", "figures/table_fingerprint.png",
                 "figures/table_spikes.png", "figures/table_regions.png", "static/report.css"):
        assert (tmp_path / "report" / name).is_file()
    # the spike card (what it checks, expected vs observed, a verdict) and the digit tests marked weak evidence
    assert 'id="spikes"' in html and "every multiple of 5%" in html and "either (the test)" in html
    assert "No spike beyond chance" in html or "Spikes found" in html
    assert "Digit tests (weak evidence)" in html and "Deckert, Myagkov &amp; Ordeshook 2011" in html
    assert 'id="region-fingerprints"' in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_spike_card_says_found_on_round_shares(tmp_path, mapping_file):
    from pipeline.report.table_report import build_table_report

    table = clean_table(random_shape(3000, 4, seed=8), seed=9)
    altered, _ = plant_fraud(table, "round_shares", 0.1, seed=1, strength=1.0)
    run_table_audit(write(tmp_path, altered), mapping_file, tmp_path / "audit", FAST)
    html = build_table_report(tmp_path / "audit", tmp_path / "report").read_text(encoding="utf-8")
    assert "Spikes found:" in html and "No spike beyond chance" not in html


@pytest.mark.parametrize("name", ["ru2012", "ru2016"])
def test_shipped_mappings_parse(name):
    data = load_mapping(ROOT / "mappings" / f"{name}.yaml")
    assert {"registered", "issued", "valid", "invalid", "lost", "not_counted"} <= set(data["roles"])
    assert len(data["rules"]) == 4


def test_scope_without_a_bulk_is_not_tested():
    table = clean_table(random_shape(1500, 3, seed=5), seed=6)
    high = table["region"] == "region 01"  # every station of one region at ~99% turnout and share
    table.loc[high, "issued"] = (table.loc[high, "registered"] * 0.99).round().astype(int)
    table.loc[high, "invalid"] = 0
    table.loc[high, "valid"] = table.loc[high, "issued"]
    table.loc[high, "choice_1"] = (table.loc[high, "valid"] * 0.99).round().astype(int)
    results, _ = run_table_forensics(stations_from_table(table), TableForensicsSettings(mc_draws=20))
    corner = results["tests"]["klimek_corner"]
    row = next(r for r in corner["scopes"]["region"] if r["scope"] == "region 01")
    assert row["tested"] is False and row["unmodelled_stations"] == int(high.sum())
    assert corner["fits"]["region 01"]["modelled"] is False
    assert corner["national"]["unmodelled_stations"] == int(high.sum())


def test_settings_from_config_file_and_flags(tmp_path, table, mapping_file):
    config = tmp_path / "c.yaml"
    config.write_text("table_forensics: {integer_min_effect: 0.01, mc_draws: 30}\ntable_audit: {chunk_rows: 500}\n")
    out = tmp_path / "o"
    assert main(["--config", str(config), "audit-table", str(write(tmp_path, table)), "--map", str(mapping_file),
                 "--out", str(out), "--seed", "3"]) == 0
    settings = json.loads((out / "forensics.json").read_text())["settings"]
    assert settings["integer_min_effect"] == 0.01 and settings["mc_draws"] == 30 and settings["seed"] == 3
    config.write_text("table_forensics: {alpha: 2}\n")
    assert main(["--config", str(config), "audit-table", str(write(tmp_path, table)), "--map", str(mapping_file),
                 "--out", str(out)]) == 6


def test_bench_helpers():
    from pipeline.audit.table_bench import clopper_pearson

    low, high = clopper_pearson(10, 200)
    assert low < 0.05 < high and clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
