"""The issue 13 figures of the ground-truth evaluation, on small hand-built tables."""

import numpy as np
import pandas as pd
import pytest

from pipeline.audit import evaluate as ev
from pipeline.audit.settings import AuditSettings
from tests.audit.conftest import ACTA, clean_values

COUNT_FIELDS, ID_FIELDS, NUMERIC_FIELDS = ACTA.count_fields, ACTA.id_fields, ACTA.numeric_fields

SHEETS = ["s1", "s2", "s3"]


def frame(value, index=SHEETS) -> pd.DataFrame:
    """A sheet-by-field table of one value everywhere."""
    return pd.DataFrame(value, index=pd.Index(index, name="sheet_id"), columns=list(NUMERIC_FIELDS))


def truth_rows(values: dict[str, dict], alterations: dict[str, dict] | None = None, **columns) -> pd.DataFrame:
    """truth.csv rows: every numeric field written as ``values[sheet]``; ``F_alteration`` none unless given in
    ``alterations``; other columns (``pen_colour`` ...) as ``{column: {sheet: value}}``."""
    rows = []
    for sid, v in values.items():
        row = {"sheet_id": sid, "altered": False, "opposition_present": True, "fabricated": False,
               "station_type": "B"}
        row |= {f: v[f] for f in ID_FIELDS}
        for f in COUNT_FIELDS:
            row |= {f: v[f], f"{f}_written": v[f], f"{f}_alteration": (alterations or {}).get(sid, {}).get(f, "none")}
        row |= {c: by_sheet.get(sid, "") for c, by_sheet in columns.items()}
        rows.append(row)
    truth = pd.DataFrame(rows)
    truth["sheet_id"] = truth["sheet_id"].astype("string")
    return truth


def test_split_labels_gives_none_for_empty_and_splits_lists():
    labels = ev.split_labels(pd.Series(["banding;curl", "", None, " shadow "], index=list("abcd")))
    assert labels.tolist() == [["banding", "curl"], ["none"], ["none"], ["shadow"]]


def test_untampered_fields_counts_ids_as_untampered_and_fabricated_as_tampered():
    truth = truth_rows({s: clean_values() for s in SHEETS},
                       {"s1": {"pan": "overwrite"}, "s2": {"pri": "fabricated", "pps": ""}})
    u = ev.untampered_fields(truth, pd.Index(SHEETS), list(NUMERIC_FIELDS))
    assert u[list(ID_FIELDS)].all().all()
    assert not u.at["s1", "pan"] and not u.at["s2", "pri"] and u.at["s2", "pps"] and u.loc["s3"].all()
    assert int((~u).to_numpy().sum()) == 2


def test_review_marks_pivots_needs_review_and_leaves_missing_rows_unmarked():
    fields = pd.DataFrame({"sheet_id": ["s1", "s1", "s2"], "field": ["pan", "pri", "pan"],
                           "needs_review": [True, False, False]})
    marks = ev.review_marks(fields, ACTA)
    assert list(marks.columns) == list(NUMERIC_FIELDS)
    assert marks.at["s1", "pan"] and not marks.at["s1", "pri"] and not marks.at["s2", "pan"]
    assert int(marks.to_numpy().sum()) == 1


def test_an_unreadable_value_is_marked_for_review_even_if_the_recogniser_did_not_mark_it():
    read = frame(1).astype("Int64")
    read.at["s2", "pan"] = pd.NA
    review = frame(False).drop(index="s3")  # s3 has no recogniser rows at all
    review.at["s1", "pri"] = True
    marked = ev.marked_for_review(read, review)
    assert marked.at["s1", "pri"] and marked.at["s2", "pan"]
    assert int(marked.to_numpy().sum()) == 2


def test_field_figures_count_untampered_exact_and_silent_wrong_over_all_fields():
    right, untampered, marked = frame(True), frame(True), frame(False)
    right.loc["s1", ["pan", "pri"]] = False  # two wrong untampered fields, one of them marked
    marked.at["s1", "pri"] = True
    right.at["s2", "pps"], untampered.at["s2", "pps"] = False, False  # a tampered field read wrong, not marked
    out = ev.field_figures(right, untampered, marked)
    n = 3 * len(NUMERIC_FIELDS)
    assert out["n_fields"] == n and out["n_untampered"] == n - 1
    assert out["untampered_exact"] == pytest.approx((n - 3) / (n - 1))
    assert out["n_silent_wrong"] == 2 and out["silent_wrong"] == pytest.approx(2 / n)
    assert out["untampered_silent_wrong"] == pytest.approx(1 / (n - 1))
    assert ev.field_figures(right, untampered, None)["silent_wrong"] is None


def test_field_breakdown_counts_a_sheet_under_each_of_its_labels():
    right, untampered = frame(True), frame(True)
    right.loc["s3"] = False  # every field of s3 wrong
    labels = pd.Series([["banding"], ["banding", "curl"], ["curl"]], index=SHEETS, dtype="object")
    out = ev.field_breakdown(right, untampered, frame(False), labels)
    assert set(out) == {"banding", "curl"}
    assert out["banding"]["n_sheets"] == 2 and out["banding"]["untampered_exact"] == 1.0
    assert out["curl"]["n_sheets"] == 2 and out["curl"]["untampered_exact"] == 0.5
    assert out["curl"]["silent_wrong"] == 0.5 and out["banding"]["silent_wrong"] == 0.0


def test_per_style_recall_splits_sheets_by_tampering_style():
    styles = pd.Series(["scribble", "scribble;fluid_odd", "fluid_odd", "", "hatching"], index=list("abcde"))
    pred = pd.Series([True, False, False, True, True], index=list("abcde"))
    out = ev.per_style_recall(styles, pred)
    assert set(out) == {"scribble", "fluid_odd", "hatching"}
    assert out["scribble"] == {"n": 2, "recall": 0.5}
    assert out["fluid_odd"] == {"n": 2, "recall": 0.0} and out["hatching"] == {"n": 1, "recall": 1.0}


def audit_sheets(values: dict[str, dict], altered: dict[str, bool]) -> pd.DataFrame:
    """The audit's sheet table for ``values`` (what was read), every page read, alteration as given."""
    table = pd.DataFrame([{**v, "status": "ok", "opposition_present": 1, "alteration_score": float(altered[s]),
                           "altered": altered[s]} for s, v in values.items()],
                         index=pd.Index(list(values), name="sheet_id"))
    for f in NUMERIC_FIELDS:
        table[f] = table[f].astype("Int64")
    table["opposition_present"] = table["opposition_present"].astype("Int8")
    return table


def test_truth_eval_reports_field_figures_per_pen_colour_and_style_recall():
    written = {s: clean_values() for s in ("s1", "s2", "s3", "s4")}
    truth = truth_rows(written, {"s4": {"pan": "overwrite"}},
                       pen_colour={"s1": "pencil", "s2": "pencil", "s3": "dark_blue", "s4": "dark_blue"},
                       scan_damage={"s2": "curl"}, alteration_styles={"s4": "other_pen_over"})
    truth.loc[truth["sheet_id"] == "s4", "altered"] = True
    read = {s: dict(v) for s, v in written.items()}
    read["s1"]["pri"] = 121  # a pencil misread that nothing marks: clean sheet now fails its sum
    read["s2"]["pps"] = None  # a pencil field the audit could not read
    sheets = audit_sheets(read, {"s1": False, "s2": False, "s3": False, "s4": True})
    review = ev.review_marks(pd.DataFrame({"sheet_id": ["s1"], "field": ["pan"], "needs_review": [True]}), ACTA)
    out = ev.truth_eval(sheets, {"s1": "inconsistent"}, truth, ACTA, AuditSettings(alteration_model=None), review)
    n = 4 * len(NUMERIC_FIELDS)
    fields = out["fields"]
    assert fields["n_untampered"] == n - 1 and fields["untampered_exact"] == pytest.approx((n - 3) / (n - 1))
    assert fields["n_silent_wrong"] == 1 and fields["silent_wrong"] == pytest.approx(1 / n)
    assert fields["per_pen_colour"]["pencil"]["n_silent_wrong"] == 1
    assert fields["per_pen_colour"]["dark_blue"]["untampered_exact"] == 1.0
    assert set(fields["per_scan_damage"]) == {"curl", "none"}
    assert out["alteration"]["per_style_recall"] == {"other_pen_over": {"n": 1, "recall": 1.0}}
    assert out["arithmetic"]["clean"]["false_inconsistent_rate"] == pytest.approx(1 / 4)  # s1 of 4 written clean
    h = ev.headline(out)
    assert h["silent_wrong"] == fields["silent_wrong"] and h["altered_recall"] == 1.0
    without = ev.truth_eval(sheets, {}, truth, ACTA, AuditSettings(alteration_model=None))["fields"]
    assert without["silent_wrong"] is None and without["untampered_exact"] == fields["untampered_exact"]


def test_evaluate_run_reads_the_files_of_an_existing_audit(tmp_path):
    written = {s: clean_values() for s in ("s1", "s2")}
    truth = truth_rows(written, pen_colour={"s1": "black", "s2": "blue"})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    read = {s: dict(v) for s, v in written.items()}
    read["s2"]["pan"] = 41
    audit = tmp_path / "audit"
    audit.mkdir()
    audit_sheets(read, {"s1": False, "s2": False}).reset_index().to_parquet(audit / "sheets.parquet")
    pd.DataFrame(columns=["sheet_id", "fields", "rule", "severity", "verdict", "reason", "evidence"]
                 ).astype("string").to_parquet(audit / "flags.parquet")
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"sheet_id": ["s2"], "field": ["pan"], "needs_review": [True]}).to_parquet(run / "fields.parquet")
    out = ev.evaluate_run(run, audit, tmp_path / "truth.csv", AuditSettings(alteration_model=None))
    assert out["fields"]["n_silent_wrong"] == 0 and out["fields"]["per_pen_colour"]["blue"]["all_exact"] < 1
    assert np.isclose(out["fields"]["untampered_exact"], 1 - 1 / (2 * len(NUMERIC_FIELDS)))
