"""The form bench's audit figures (issue 15): :func:`pipeline.synth.form_bench.audit_figures` on the audit's
ground-truth evaluation of a small synthetic batch of a made-up form (no models needed), what it refuses, the
acta's figures copied next to them, and, where the digit model and the Lampiran reference are present, the whole
chain on a couple of sheets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline import config as cfg
from pipeline.audit import evaluate
from pipeline.audit.arithmetic import counts_consistent
from pipeline.audit.schema import FormSchema
from pipeline.audit.settings import AuditSettings
from pipeline.forms import load_template
from pipeline.synth import SynthSettings, generate_batch
from pipeline.synth.bench import ACTA_FIGURES, acta_reference
from pipeline.synth.form_bench import NO_DETECTOR, audit_figures, run_form_bench
from tests.synth.common import TAMPERED
from tests.synth.test_forms import FORM_FAST, LAMPIRAN, form, template  # noqa: F401 (the made-up form's fixtures)

NO_MODEL = AuditSettings(alteration_model=None)


@pytest.fixture(scope="module")
def batch(tmp_path_factory, digits, template) -> Path:  # noqa: F811 (the fixture imported above)
    """Ten sheets of the made-up form: some altered, some with a slip in the sums, most clean."""
    settings = SynthSettings(sheets=10, seed=42, **FORM_FAST, **{**TAMPERED, "altered_rate_absent": 0.2,
                                                                 "altered_rate_present": 0.2, "fabricated_rate": 0.0,
                                                                 "arithmetic_error_rate": 0.2})
    return generate_batch(settings, tmp_path_factory.mktemp("formbench") / "batch", digits, template)


@pytest.fixture(scope="module")
def schema(template) -> FormSchema:  # noqa: F811
    return FormSchema.of(template)


@pytest.fixture(scope="module")
def truth(batch, schema) -> pd.DataFrame:
    return evaluate.read_truth(batch / "truth.csv", schema)


def perfect_audit(truth: pd.DataFrame, schema: FormSchema) -> tuple[pd.DataFrame, dict[str, str]]:
    """The audit a perfect reader and detector would give: every count as written, each altered sheet and only
    those scored altered, the sheets whose written counts break a rule called inconsistent."""
    sheets = evaluate.written_values(truth, schema, NO_MODEL)
    altered = truth.set_index("sheet_id")["altered"].astype(bool)
    sheets = sheets.assign(status="ok", alteration_score=altered.astype(float), altered=altered,
                           opposition_present=pd.NA)
    verdicts = {sid: "inconsistent" for sid, row in sheets.iterrows()
                if not counts_consistent({f: int(row[f]) for f in schema.count_fields}, {}, schema, NO_MODEL)}
    return sheets, verdicts


def evaluated(sheets, verdicts, truth, schema, review=True) -> dict:
    marks = pd.DataFrame({"sheet_id": pd.Series(dtype=str), "field": pd.Series(dtype=str),
                          "needs_review": pd.Series(dtype=bool)})
    return evaluate.truth_eval(sheets, verdicts, truth, schema, NO_MODEL,
                               evaluate.review_marks(marks, schema) if review else None)


def test_the_batch_has_altered_and_clean_sheets(truth):
    assert 0 < truth["altered"].sum() < len(truth) - 2


def test_a_perfect_audit_scores_perfectly(truth, schema):
    figures = audit_figures(evaluated(*perfect_audit(truth, schema), truth, schema), target_recall=0.95)
    assert figures["n_read_ok"] == len(truth) and figures["n_fields"] == len(truth) * len(schema.count_fields)
    assert figures["untampered_exact"] == 1.0 and figures["silent_wrong"] == 0.0
    assert figures["false_inconsistent"]["rate"] == 0.0 and figures["false_inconsistent"]["n_clean_consistent"] > 0
    alteration = figures["alteration"]
    assert alteration["n_altered"] == int(truth["altered"].sum())
    assert alteration["precision"] == alteration["recall"] == alteration["roc_auc"] == 1.0
    assert alteration["false_alarms"] == 0.0 and alteration["n_clean"] > 0
    assert figures["altered_by_arithmetic"]["n_altered"] == alteration["n_altered"]
    assert all(t["meets_target"] for t in figures["targets"].values())


def test_a_misread_a_false_alarm_and_a_false_inconsistent_count_against_the_form(truth, schema):
    sheets, verdicts = perfect_audit(truth, schema)
    fabricated = truth.set_index("sheet_id")["fabricated"]
    clean = [sid for sid in sheets.index if not (sheets.at[sid, "altered"] or fabricated[sid] or sid in verdicts)]
    field = schema.count_fields[0]
    sheets.at[clean[0], field] = int(sheets.at[clean[0], field]) + 1  # misread, nothing marks it
    sheets.at[clean[0], "altered"], sheets.at[clean[0], "alteration_score"] = True, 1.0
    verdicts[clean[0]] = "inconsistent"
    figures = audit_figures(evaluated(sheets, verdicts, truth, schema), target_recall=0.95)
    n_fields = len(truth) * len(schema.count_fields)
    assert figures["n_silent_wrong"] == 1 and figures["silent_wrong"] == pytest.approx(round(1 / n_fields, 4))
    assert figures["untampered_exact"] < 1.0 and not figures["targets"]["silent_wrong"]["meets_target"]
    n_clean = figures["alteration"]["n_clean"]
    assert figures["alteration"]["false_alarms"] == pytest.approx(round(1 / n_clean, 4))
    assert figures["alteration"]["precision"] < 1.0 and figures["alteration"]["recall"] == 1.0
    assert figures["false_inconsistent"]["rate"] > 0


def test_an_audit_without_a_detector_for_the_form_says_so(truth, schema):
    sheets, verdicts = perfect_audit(truth, schema)
    ev = evaluate.truth_eval(sheets.assign(alteration_score=float("nan"), altered=False), verdicts, truth, schema,
                             NO_MODEL, evaluate.review_marks(pd.DataFrame(columns=["sheet_id", "field",
                                                                                   "needs_review"]), schema),
                             alteration_skipped="trained on 'acta1988' sheets, not 'test_form'")
    figures = audit_figures(ev)
    assert figures["alteration"] == {"skipped": NO_DETECTOR, "reason": "trained on 'acta1988' sheets, not 'test_form'"}
    assert figures["altered_by_arithmetic"]["n_altered"] == int(truth["altered"].sum()) and "targets" not in figures


def test_wrong_input_is_refused(truth, schema):
    ev = evaluated(*perfect_audit(truth, schema), truth, schema)
    with pytest.raises(ValueError, match="not a truth_eval"):
        audit_figures({k: v for k, v in ev.items() if k != "arithmetic"})
    with pytest.raises(ValueError, match="review marks"):
        audit_figures(evaluated(*perfect_audit(truth, schema), truth, schema, review=False))
    broken = json.loads(json.dumps(ev))
    broken["fields"]["untampered_exact"] = 1.5
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        audit_figures(broken)


def test_the_actas_figures_are_copied_from_the_audit_stage(tmp_path):
    group = {"seed": 2024, "style_set": "classic", "sheets": 10, "n_read_ok": 10, "alteration": {"roc_auc": 0.9},
             "targets": {k: {"value": 0.5} for k in ACTA_FIGURES}}
    (tmp_path / "bench.json").write_text(json.dumps({"audit": {"pipeline": {"classic": group}}}))
    out = acta_reference(tmp_path / "bench.json")
    assert out["classic"]["seed"] == 2024 and out["classic"]["altered_recall"] == 0.5
    assert out["classic"]["altered_roc_auc"] == 0.9 and "audit stage" in out["source"]
    assert "skipped" in acta_reference(tmp_path / "absent.json")


@pytest.mark.skipif(not cfg.CURRENT_MODEL.exists() or load_template(LAMPIRAN).reference is None,
                    reason="needs the digit model (models/current) and the Lampiran reference image")
def test_quick_form_bench_reads_and_audits_a_couple_of_lampiran_sheets(tmp_path):
    out = run_form_bench(LAMPIRAN, 2, (("classic", 4101),), dpi=100, workers=0, work=tmp_path,
                         detectors={"none": None})
    score = out["classic"]
    assert score["seed"] == 4101 and score["sheets"] == 2 and score["registration"]["n"] == 2
    audit = score["audit"]["none"]
    assert audit["alteration"]["skipped"] == NO_DETECTOR and audit["n_fields"] == 2 * 4
    assert 0.0 <= audit["untampered_exact"] <= 1.0 and audit["detector_folder"] is None
