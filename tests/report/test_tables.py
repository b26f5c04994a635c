"""The pure summaries behind the pages: ranking, slugs, crosstabs, Cantú and truth views, digit pairs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.report import tables


@pytest.mark.parametrize("sheet_id", ["s001", "acta-12_b.v2", 'odd <b>&"id"</b>', "../etc/passwd", ".hidden", "é"])
def test_slug_is_safe_and_distinct(sheet_id):
    slug = tables.sheet_slug(sheet_id)
    assert tables.SLUG_UNSAFE.search(slug) is None and not slug.startswith(".")
    assert (slug == sheet_id) == (tables.SLUG_UNSAFE.search(sheet_id) is None and not sheet_id.startswith("."))


def test_slugs_of_ids_that_sanitise_alike_differ():
    assert tables.sheet_slug("a b") != tables.sheet_slug("a_b") != tables.sheet_slug("a?b")


def sheets_and_flags():
    sheets = pd.DataFrame({"sheet_id": ["a", "b", "c", "d"], "status": ["ok", "ok", "ok", "unreadable"],
                           "suspicion": [0.2, 0.9, 0.2, None], "n_flags": [0, 2, 1, 1],
                           "pan_conf": [0.9, 0.5, 0.99, None], "pri_conf": [0.8, 0.7, 0.6, None]})
    flags = pd.DataFrame({"sheet_id": ["b", "b", "c", "d"], "rule": ["sum", "alteration", "sum", "page"],
                          "severity": ["medium", "high", "low", "medium"],
                          "verdict": ["inconsistent", "altered", "needs_review", "needs_review"]})
    return sheets, flags


def test_rank_orders_by_tier_then_severity_then_score_and_never_puts_an_unflagged_sheet_first():
    ranked = tables.rank_sheets(*sheets_and_flags())
    assert ranked["sheet_id"].tolist() == ["b", "d", "c", "a"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4] and ranked["tier"].tolist() == [1, 3, 3, 5]
    b = ranked.iloc[0]
    assert (b["severity"], b["rules"], b["min_conf"], b["verdict"]) == ("high", "alteration;sum", 0.5, "altered")
    a = ranked.iloc[3]
    assert (a["severity"], a["rules"], a["verdict"], a["reason"]) == ("", "", "ok", "")
    assert ranked["reading"].tolist() == ["read", "unreadable", "read", "read"]


def test_sheet_verdicts_are_one_per_sheet_in_the_audit_order():
    sheets, flags = sheets_and_flags()
    assert tables.sheet_verdicts(sheets, flags).tolist() == ["ok", "altered", "needs_review", "needs_review"]
    assert tables.verdict_counts(tables.rank_sheets(sheets, flags)) == {"altered": 1, "needs_review": 2, "ok": 1}


def test_flags_by_rule_counts_severities_and_sheets():
    _, flags = sheets_and_flags()
    table = tables.flags_by_rule(flags)
    assert list(table.columns) == ["low", "medium", "high", "total", "sheets"]
    assert table.loc["sum"].tolist() == [1, 1, 0, 2, 2]
    assert table.index[0] == "sum"
    assert tables.verdict_counts(flags) == {"needs_review": 2, "altered": 1, "inconsistent": 1}


def test_status_counts_shares_add_up():
    sheets, _ = sheets_and_flags()
    counts = tables.status_counts(sheets)
    assert counts[0] == {"reading": "read", "n": 3, "pct": 75.0}
    assert sum(c["pct"] for c in counts) == pytest.approx(100)


def test_table_rows_are_json_with_nulls_for_missing():
    ranked = tables.rank_sheets(*sheets_and_flags())
    rows = tables.table_rows(ranked, ["sheet_id", "suspicion", "min_conf"])
    text = json.dumps(rows, allow_nan=False)
    assert json.loads(text)[1] == ["d", None, None, "d"]


def test_evidence_view_puts_per_field_mappings_side_by_side():
    view = tables.evidence_view(json.dumps({
        "sum": 217, "alternatives": [[31, 0.4]], "note": "x", "fix": None, "values": {"pan": 31, "pri": 186},
        "confidence": {"pan": 0.4}, "images": {"pan": "../fields/s/pan.png"}}))
    assert view["items"] == [("sum", 217), ("alternatives", "[[31, 0.4]]"), ("note", "x")]
    assert view["columns"] == ["values", "confidence"]
    assert view["rows"] == [("pan", [31, 0.4]), ("pri", [186, None])]
    only_pri = tables.evidence_view(json.dumps({"scores": {"pan": 1.2e-05, "pri": 0.91234}, "empty": {}}), ["pri"],
                                    {"pri": "PRI"})
    assert only_pri == {"items": [], "columns": ["scores"], "rows": [("PRI", [0.912])]}
    assert tables.evidence_view("not json")["items"] == [("evidence", "not json")]
    assert tables.evidence_view("{}") == {"items": [], "columns": [], "rows": []}


def test_evidence_view_puts_an_identity_and_a_proposed_reading_in_words():
    outlier = tables.evidence_view(json.dumps({
        "district": {"district": 4, "state": 31}, "district_median": {"share_pfcrn": 0.0924},
        "robust_z": {"share_pfcrn": 5.516}, "value": {"share_pfcrn": 0.1739}}), ["pfcrn"])
    assert outlier["items"] == [("district", "district 4, state 31")]
    assert outlier["columns"] == ["district_median", "robust_z", "value"]
    assert outlier["rows"] == [("share_pfcrn", [0.0924, 5.52, 0.174])]
    fix = tables.evidence_view(json.dumps({"confidence": {"pfcrn": 0.56}, "difference": -6,
                                           "fix": {"pfcrn": {"alternative": 20, "probability": 0.4245, "read": 26}}}))
    assert fix["rows"] == [("pfcrn", [0.56, "26 -> 20 (probability 0.42)"])]


def test_cantu_view_reads_the_audit_format():
    cantu = {"level": 0.9, "ruling_party": "pri",
             "detected": {"present": {"n": 10, "altered": 1, "rate": 0.1, "ci": [0.02, 0.4]},
                          "absent": {"n": 5, "altered": 3, "rate": 0.6, "ci": [0.2, 0.9]},
                          "difference": 0.5, "ci": [0.1, 0.8], "fisher_p": 0.01, "method": "Wilson"},
             "true": {"present": {"n": 0, "altered": 0, "rate": None, "ci": [None, None]},
                      "difference": None, "ci": [None, None], "skipped": "needs both groups"}}
    view = tables.cantu_view(cantu)
    detected, true = view["comparisons"]
    assert view["level"] == 0.9 and view["ruling_party"] == "pri"
    assert [g["label"] for g in detected["groups"]] == ["opposition present", "opposition absent"]
    assert detected["groups"][1] == {"label": "opposition absent", "rate": 0.6, "ci": [0.2, 0.9], "n": 5,
                                     "altered": 3}
    assert (detected["difference"], detected["difference_ci"]) == (0.5, [0.1, 0.8])
    assert ("fisher p", 0.01) in detected["rest"]
    assert true["skipped"] == "needs both groups" and true["groups"][0]["ci"] is None


def test_truth_summary_picks_headlines_and_flattens():
    summary = tables.truth_summary({"alteration": {"recall": 0.8, "per_kind_recall": {"erase": {"n": 3}}},
                                    "reading": {"all_fields": 0.97, "per_field": {"pan": 0.99}}})
    assert summary["recall"] == 0.8 and summary["fields_right"] == 0.97
    assert summary["per_field"] == {"pan": 0.99}
    assert summary["details"]["alteration.per_kind_recall.erase.n"] == 3
    assert tables.truth_summary({}) is None


def test_digit_pairs_join_reads_to_written_digits():
    digits = pd.DataFrame({"sheet_id": ["a", "a", "a"], "field": ["pan"] * 3, "box": [0, 1, 2], "slot": [0, 0, 1],
                           "label": [1, 7, 3], "confidence": [0.9, 0.8, 0.7]})
    boxes = pd.DataFrame({"sheet_id": ["a", "a", "a"], "field": ["pan"] * 3, "box": [0, 1, 2],
                          "digit": [1, 2, -1]})
    pairs = tables.digit_pairs(digits, boxes)
    assert pairs[["truth", "label"]].values.tolist() == [[1, 1], [2, 7]]


def test_detector_view_headlines_styles_and_no_absolute_paths():
    flat = {"threshold": 0.41, "metrics.cv.precision": 0.93, "metrics.cv.recall": 0.97, "metrics.cv.roc_auc": 0.99,
            "metrics.cv.per_style.overwrite.field_recall": 0.9, "metrics.cv.per_style.overwrite.sheet_recall": 0.95,
            "metrics.cv.per_style.overwrite.n_fields": 40, "batch": "/tmp/abc/alteration-train", "seed": 1001}
    view = tables.detector_view(flat)
    assert view["headline"] == [("threshold", 0.41), ("precision", 0.93), ("recall", 0.97), ("ROC AUC", 0.99)]
    assert view["per_style"] == [{"style": "overwrite", "field_recall": 0.9, "sheet_recall": 0.95, "n": 40}]
    assert ("batch", "/tmp/abc/alteration-train") not in view["all"] and ("seed", 1001) in view["all"]
    assert "without any trace" in view["blind_spot"]
