import json

import numpy as np
import pandas as pd
import pytest

from pipeline.audit import AuditSettings, run_audit
from pipeline.audit.alteration import Detector, fit_detector, save_detector
from pipeline.audit.features import field_features
from pipeline.audit.settings import AlterationSettings
from pipeline.cli import main
from pipeline.errors import ExitCode
from tests.audit.conftest import clean_values, field_image


def truth_rows(sheets: dict[str, dict], altered: set[str], opposition: dict[str, int]) -> pd.DataFrame:
    rows = []
    for sid, spec in sheets.items():
        v = spec["values"]
        row = {"sheet_id": sid, "file": f"{sid}.png", "state": v["state"], "district": v["district"],
               "section": v["section"], "station": v["station"], "station_type": "B", "altered": sid in altered,
               "fabricated": False, "alteration_kinds": "crossout" if sid in altered else "",
               "opposition_present": opposition[sid]}
        for f in ("pan", "pri", "pps", "parm", "pfcrn", "pms", "pdm", "prt", "unregistered", "null_votes",
                  "total_votes", "ballots_received", "ballots_left_over", "registered_voters"):
            row[f], row[f"{f}_written"] = v[f], v[f]
            row[f"{f}_alteration"] = "crossout" if sid in altered and f == "pri" else "none"
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = np.vstack([field_features(field_image(rng, i >= 20)) for i in range(40)])
    d = fit_detector(x, np.arange(40) >= 20, AlterationSettings(hidden_units=(8,), max_iter=300))
    folder = tmp_path_factory.mktemp("alteration")
    save_detector(Detector(d.mean, d.scale, d.weights, d.biases, 0.5, {}), folder)
    return folder


@pytest.fixture
def batch(run_factory, tmp_path):
    sheets = {
        "s1": {"values": clean_values(section=1), "reps": {"pri": 1, "pan": 1}},
        "s2": {"values": clean_values(section=2, pan=41, total_votes=221, ballots_left_over=284), "reps": {"pri": 1}},
        "s3": {"values": clean_values(section=3, pan=43, total_votes=232), "reps": {"pri": 1}},  # real slip
        "s4": {"values": clean_values(section=4, pri=126), "reps": {"pri": 1, "pms": 1},
               "alternatives": {"pri": [[126, 0.6], [120, 0.35]]}, "confidence": {"pri": 0.6}},
        "s5": {"values": None},
    }
    rundir = run_factory(sheets, statuses={"s5": "not_a_form"},
                         images={"s1": False, "s2": True, "s3": False, "s4": False})
    truth_sheets = {k: v for k, v in sheets.items() if v["values"]}
    truth_sheets["s4"] = {"values": clean_values(section=4)}
    truth = truth_rows(truth_sheets, {"s2"}, {"s1": 1, "s2": 0, "s3": 0, "s4": 1})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    return rundir, tmp_path / "truth.csv"


def test_cli_writes_every_file(batch, tmp_path, detector_dir):
    rundir, truth = batch
    out = tmp_path / "processed"
    code = main(["audit", str(rundir), "--out", str(out), "--truth", str(truth),
                 "--alteration-model", str(detector_dir)])
    assert code == 0
    for name in ("sheets.parquet", "sheets.csv", "flags.parquet", "flags.csv", "forensics.json", "cantu.json",
                 "truth_eval.json"):
        assert (out / name).is_file(), name
    sheets = pd.read_parquet(out / "sheets.parquet").set_index("sheet_id")
    for col in ("pri", "pri_conf", "rep_pan", "status", "alteration_score", "suspicion", "n_flags", "evidence_dir",
                "station_type", "opposition_present"):
        assert col in sheets, col
    assert sheets.loc["s5", "status"] == "not_a_form" and sheets.loc["s1", "evidence_dir"] == "../run0/fields/s1"
    assert sheets.loc["s1", "verdict"] == "ok" and sheets.loc["s2", "verdict"] == "altered"
    assert sheets.loc["s3", "verdict"] == "inconsistent" and sheets.loc["s4", "verdict"] == "needs_review"
    assert sheets["suspicion"].idxmax() in ("s2", "s3")
    flags = pd.read_csv(out / "flags.csv")
    assert set(flags.columns) == {"sheet_id", "fields", "rule", "severity", "verdict", "reason", "evidence"}
    assert "page_not_read" in set(flags[flags.sheet_id == "s5"].rule)
    evaluation = json.loads((out / "truth_eval.json").read_text())
    assert evaluation["alteration"]["recall"] == 1.0 and evaluation["alteration"]["precision"] == 1.0
    assert evaluation["arithmetic"]["inconsistent_read_correctly"] == {"n": 1, "flagged_rate": 1.0,
                                                                       "inconsistent_rate": 1.0}
    assert evaluation["arithmetic"]["clean"]["false_inconsistent_rate"] == 0.0
    assert evaluation["reading"]["counts"] < 1.0  # s4's PRI was misread
    cantu = json.loads((out / "cantu.json").read_text())
    assert cantu["true"]["absent"] == {"n": 2, "altered": 1, "rate": 0.5, "ci": pytest.approx([0.0945, 0.9055],
                                                                                             abs=1e-3)}


def test_missing_input_is_an_input_file_error(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == ExitCode.input_file
    assert "pages.csv: not found" in capsys.readouterr().err


def test_api_without_detector_leaves_scores_empty(batch, tmp_path):
    rundir, _ = batch
    result = run_audit(rundir, tmp_path / "p", AuditSettings(alteration_model=None))
    assert result.sheets["alteration_score"].isna().all()
    assert "--no-alteration" in result.cantu["detected"]["skipped"] and result.truth_eval is None


def test_a_missing_detector_is_a_model_error_unless_the_check_is_off(batch, tmp_path, capsys):
    rundir, _ = batch
    common = ["audit", str(rundir), "--alteration-model", str(tmp_path / "none")]
    assert main([*common, "--out", str(tmp_path / "a")]) == ExitCode.model_error
    assert "train-alteration" in capsys.readouterr().err and not (tmp_path / "a" / "sheets.csv").exists()
    assert main([*common, "--out", str(tmp_path / "b"), "--no-alteration"]) == ExitCode.ok
    assert pd.read_parquet(tmp_path / "b" / "sheets.parquet")["alteration_score"].isna().all()


def test_audit_in_chunks_of_one_sheet_gives_the_same_result(run_factory, detector_dir, tmp_path):
    """Alteration scores and candidate readings built a sheet at a time: same sheet table, same flags.

    Scores agree to float rounding only: the detector's matrix product may round the last bit differently for a
    different number of rows."""
    sheets = {"a": {"values": clean_values()}, "b": {"values": clean_values(pri=126)},
              "c": {"values": clean_values(station=2)}, "d": {"values": None}}
    rundir = run_factory(sheets, statuses={"d": "not_a_form"}, images={"a": False, "b": True, "c": False})
    settings = AuditSettings(alteration_model=str(detector_dir))
    whole = run_audit(rundir, tmp_path / "whole", settings, stream_sheets=100)
    chunked = run_audit(rundir, tmp_path / "chunked", settings, stream_sheets=1)
    pd.testing.assert_frame_equal(chunked.sheets, whole.sheets, check_exact=False, rtol=1e-12)
    def summary(flags):
        return [(f.sheet_id, f.fields, f.rule, f.severity, f.verdict) for f in flags]
    assert summary(chunked.flags) == summary(whole.flags) and len(whole.flags) > 0


def test_cli_streams_by_the_engine_setting_and_gives_the_same_flags(batch, tmp_path, detector_dir, monkeypatch):
    import pipeline.audit.audit as audit_module

    rundir, truth = batch
    config = tmp_path / "one_sheet_at_a_time.yaml"
    config.write_text("engine: {stream_sheets: 1}\n")
    common = ["--alteration-model", str(detector_dir)]
    assert main(["audit", str(rundir), "--out", str(tmp_path / "whole"), *common]) == 0
    chunks = []
    real = audit_module.run_audit
    monkeypatch.setattr(audit_module, "run_audit", lambda *a, **k: chunks.append(k["stream_sheets"]) or real(*a, **k))
    assert main(["--config", str(config), "audit", str(rundir), "--out", str(tmp_path / "streamed"), *common]) == 0
    assert chunks == [1]
    whole, streamed = (pd.read_csv(tmp_path / name / "flags.csv") for name in ("whole", "streamed"))
    pd.testing.assert_frame_equal(whole, streamed)
