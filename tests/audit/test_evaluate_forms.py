"""The ground-truth evaluation of an audit of a form other than the acta (issue 15): the shipped Lampiran
template's fields, roles and rule, on small hand-built tables (no models, no reference image needed)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.audit import evaluate as ev
from pipeline.audit.schema import FormSchema
from pipeline.audit.settings import AuditSettings
from pipeline.forms import load_template

LAMPIRAN = Path(__file__).resolve().parents[2] / "pipeline" / "forms" / "templates" / "c1_2014_lampiran.yaml"
SCHEMA = FormSchema.of(load_template(LAMPIRAN))
NO_DETECTOR = AuditSettings(alteration_model=None)


def written(sheet: int) -> dict[str, int]:
    """Counts that obey the form's rules, different on each sheet."""
    values = dict(zip(SCHEMA.candidates, (100 + sheet, 50 + sheet), strict=True))
    valid = "valid" if "valid" in SCHEMA.roles else None
    return values | {SCHEMA.roles[valid][0]: sum(values.values())} | {f: sheet for f in SCHEMA.roles["invalid"]}


def truth_rows(values: dict[str, dict], altered: dict[str, str], fabricated: tuple[str, ...] = ()) -> pd.DataFrame:
    """truth.csv rows of the form: counts written as ``values``; ``altered`` maps a sheet to the field altered."""
    rows = []
    for sid, v in values.items():
        row = {"sheet_id": sid, "altered": sid in altered, "fabricated": sid in fabricated}
        for f in SCHEMA.count_fields:
            row |= {f: v[f], f"{f}_written": v[f], f"{f}_alteration": "overwrite" if altered.get(sid) == f else "none"}
        rows.append(row)
    return pd.DataFrame(rows)


def audit_sheets(read: dict[str, dict], scores: dict[str, float], threshold: float = 0.5) -> pd.DataFrame:
    """The audit's sheet table: values read, status ok, the detector's score and call."""
    table = pd.DataFrame.from_dict(read, orient="index")
    table.index.name = "sheet_id"
    table["status"] = "ok"
    table["alteration_score"] = pd.Series(scores)
    table["altered"] = table["alteration_score"] >= threshold
    return table.astype({f: "Int64" for f in SCHEMA.count_fields})


def test_the_lampiran_schema_is_not_the_actas():
    assert SCHEMA.name == "c1_2014_lampiran" and not SCHEMA.id_fields and len(SCHEMA.count_fields) == 4


def test_truth_eval_of_another_form_gives_detector_false_alarms_and_what_the_arithmetic_catches():
    values = {f"s{i}": written(i) for i in range(1, 6)}
    first = SCHEMA.candidates[0]
    paper = {s: dict(v) for s, v in values.items()}
    paper["s4"][first] += 7  # altered on paper: the sum no longer holds
    truth = truth_rows(paper, {"s4": first, "s5": first}, fabricated=("s3",))
    scores = {"s1": 0.9, "s2": 0.1, "s3": 0.8, "s4": 0.7, "s5": 0.2}
    out = ev.truth_eval(audit_sheets(paper, scores), {"s4": "inconsistent", "s5": "needs_review"}, truth, SCHEMA,
                        NO_DETECTOR, ev.review_marks(pd.DataFrame(columns=["sheet_id", "field", "needs_review"]),
                                                     SCHEMA))
    alteration = out["alteration"]
    assert alteration["n_altered"] == 2 and alteration["recall"] == 0.5
    assert alteration["precision"] == pytest.approx(1 / 3)  # s1, s3 (fabricated), s4 called altered
    assert alteration["n_clean"] == 2 and alteration["clean_false_alarm_rate"] == 0.5  # s1 of s1, s2
    assert alteration["fabricated_only_flagged"] == 1.0
    altered = out["arithmetic"]["altered"]
    assert altered == {"n": 2, "flagged_rate": 1.0, "inconsistent_rate": 0.5}
    assert out["arithmetic"]["clean"]["false_inconsistent_rate"] == 0.0
    assert out["fields"]["untampered_exact"] == 1.0 and out["fields"]["silent_wrong"] == 0.0
    h = ev.headline(out)
    assert h["detector_false_alarms"] == 0.5 and h["altered_inconsistent_by_arithmetic"] == 0.5
    assert h["altered_roc_auc"] == pytest.approx(alteration["roc_auc"]) and h["alteration_skipped"] is None


def test_evaluate_run_of_another_form_gives_the_reason_the_audit_recorded_for_no_detector(tmp_path):
    values = {f"s{i}": written(i) for i in range(1, 4)}
    truth_rows(values, {"s2": SCHEMA.candidates[1]}).to_csv(tmp_path / "truth.csv", index=False)
    run, audit = tmp_path / "run", tmp_path / "audit"
    run.mkdir()
    audit.mkdir()
    shutil.copy(LAMPIRAN, run / "template.yaml")
    read = {s: dict(v) for s, v in values.items()}
    read["s3"][SCHEMA.candidates[0]] += 1  # misread, not marked for review
    audit_sheets(read, {s: float("nan") for s in read}).reset_index().to_parquet(audit / "sheets.parquet")
    pd.DataFrame(columns=["sheet_id", "fields", "rule", "severity", "verdict", "reason", "evidence"]
                 ).astype("string").to_parquet(audit / "flags.parquet")
    pd.DataFrame({"sheet_id": ["s1"], "field": ["valid"], "needs_review": [True]}).to_parquet(run / "fields.parquet")
    reason = "the visible-alteration detector was trained on 'acta1988' sheets, not 'c1_2014_lampiran'"
    (audit / "cantu.json").write_text(json.dumps({ev.ALTERATION_SKIPPED_KEY: reason}))
    out = ev.evaluate_run(run, audit, tmp_path / "truth.csv", NO_DETECTOR)
    assert out["alteration"] == {"skipped": reason}
    assert out["fields"]["n_fields"] == 12 and out["fields"]["n_silent_wrong"] == 1
    assert out["arithmetic"]["altered"]["n"] == 1 and out["arithmetic"]["altered"]["flagged_rate"] == 0.0
    assert ev.headline(out)["alteration_skipped"] == reason
    (audit / "cantu.json").unlink()
    assert "skipped" in ev.evaluate_run(run, audit, tmp_path / "truth.csv", NO_DETECTOR)["alteration"]


def test_a_truth_file_without_the_forms_columns_is_refused(tmp_path):
    from pipeline.errors import InputFileError

    pd.DataFrame({"sheet_id": ["s1"], "altered": [False], "pan_written": [3]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputFileError):
        ev.read_truth(tmp_path / "t.csv", SCHEMA)
