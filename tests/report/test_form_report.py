"""The report takes field names, labels, roles, rules and the station's identity from the run's template, never
from the acta: a small form whose fields and rules differ from the acta's (issue 15, point 6), and the shipped
Lampiran template."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml

from pipeline.forms import load_template
from pipeline.forms.template import RUN_TEMPLATE_FILE, parse_template
from pipeline.report import figures, tables, triage
from pipeline.report.formview import (
    default_form,
    fingerprint_inputs,
    form_view,
    holding_text,
    report_template,
)
from pipeline.report.sheetpages import flag_entries
from tests.report.conftest import DPI, draw_sheet, write_models

LAMPIRAN = Path(__file__).resolve().parents[2] / "pipeline" / "forms" / "templates" / "c1_2014_lampiran.yaml"
#: A form unlike the acta: one id, two candidates, valid and spoilt ballots, and the voters on the list as a plain
#: count (no role: so there is no turnout to plot); rules named and labelled in its own words.
TOY = {
    "name": "toy_form", "page": {"width": 210, "height": 297},
    "frame": {"x": 8, "y": 8, "width": 194, "height": 281, "line": 0.6}, "fiducials": {"size": 7, "inset": 3},
    "orientation_mark": {"x": 20, "y": 11, "size": 3.5}, "line_width": 0.35,
    "digit_box": {"width": 7.0, "height": 9.0, "gap": 1.5}, "tick_box": {"width": 6.0, "height": 6.0, "gap": 6.0},
    "fields": [
        {"name": "booth", "label": "TPS No.", "kind": "id", "x": 30, "y": 40, "boxes": 3},
        {"name": "cand_a", "label": "Candidate A", "kind": "count", "role": "candidate", "x": 92, "y": 70,
         "boxes": 3},
        {"name": "cand_b", "label": "Candidate B", "kind": "count", "role": "candidate", "x": 92, "y": 90,
         "boxes": 3},
        {"name": "good", "label": "Valid ballots", "kind": "count", "role": "valid", "x": 92, "y": 110, "boxes": 3},
        {"name": "spoilt", "label": "Spoilt ballots", "kind": "count", "role": "invalid", "x": 92, "y": 130,
         "boxes": 3},
        {"name": "voters", "label": "Voters on the list", "kind": "count", "x": 92, "y": 150, "boxes": 3},
    ],
    "rules": [{"name": "valid_sum", "rule": "sum(candidate) == good", "label": "A + B = valid ballots"},
              {"name": "cast_within_list", "rule": "good + spoilt <= voters"}],
    "station_key": ["booth"], "leader": "cand_b",
}
#: Sheets of the toy batch: (sheet_id, counts); t2's candidates add up to 95, its valid ballots say 90.
TOY_SHEETS = [("t1", {"booth": 7, "cand_a": 78, "cand_b": 12, "good": 90, "spoilt": 3, "voters": 120}),
              ("t2", {"booth": 8, "cand_a": 83, "cand_b": 12, "good": 90, "spoilt": 4, "voters": 130})]
TOY_FLAG = {"sheet_id": "t2", "fields": "cand_a;cand_b;good", "rule": "valid_sum", "severity": "high",
            "verdict": "inconsistent", "reason": "cand_a + cand_b = 95 but good says 90",
            "evidence": json.dumps({"values": {"cand_a": 83, "cand_b": 12, "good": 90},
                                    "confidence": {"cand_a": 0.99, "cand_b": 0.99, "good": 0.99},
                                    "fix": None, "read_right_probability": 0.97,
                                    "rule_text": "sum(candidate) == good", "rule_label": "A + B = valid ballots"})}
#: Names of the acta's fields and rules that must not reach a report of another form.
ACTA_WORDS = ("total_votes", "registered_voters", "ballots_", "null_votes", "unregistered", "station_type",
              "VOTACION", "ENTIDAD", "votes_add_up", "station type")


@pytest.fixture(scope="module")
def toy():
    return parse_template(TOY)


def test_the_form_view_names_fields_by_their_labels_and_reads_the_rules(toy):
    form = form_view(toy)
    assert form.names == {"booth": "TPS No.", "cand_a": "Candidate A", "cand_b": "Candidate B",
                          "good": "Valid ballots", "spoilt": "Spoilt ballots", "voters": "Voters on the list"}
    assert [(r.name, r.title, r.op) for r in form.rules] == [
        ("valid_sum", "A + B = valid ballots", "=="), ("cast_within_list", "good + spoilt <= voters", "<=")]
    assert form.candidates == ("cand_a", "cand_b") and form.station_key == ("booth",) and form.leader == "cand_b"


def test_every_rule_that_holds_is_written_out_with_the_sheets_numbers(toy):
    row = TOY_SHEETS[0][1]
    assert triage.passed_checks(row, set(), form_view(toy)) == [
        "candidate = 78 + 12 = 90 = good (Valid ballots)", "90 + 3 = 93 ≤ 120 = voters (Voters on the list)"]
    assert triage.passed_checks(row, {"valid_sum"}, form_view(toy)) == [
        "90 + 3 = 93 ≤ 120 = voters (Voters on the list)"]
    assert triage.passed_checks({**row, "good": None}, set(), form_view(toy)) == []
    assert triage.passed_checks({**row, "good": 91}, set(), form_view(toy)) == [
        "91 + 3 = 94 ≤ 120 = voters (Voters on the list)"]


def test_the_lampiran_rule_is_written_out_with_its_own_labels():
    lampiran = form_view(load_template(LAMPIRAN))
    (rule,) = lampiran.rules
    values = {"pair_1": 78, "pair_2": 12, "valid": 90}
    assert holding_text(rule, values, lampiran) == "78 + 12 = 90 = valid (jumlah seluruh suara sah)"
    flag = {"rule": rule.name, "verdict": "inconsistent", "fields": "pair_1;pair_2;valid",
            "evidence": json.dumps({"values": {**values, "pair_2": 17}, "read_right_probability": 0.99})}
    assert triage.capitalised(triage.plain_reason(flag, ["valid"], dict(lampiran.names), lampiran)) == (
        "The rule pair_1 + pair_2 == valid does not hold: 95 against 90 (5 off), and no likely misreading of the "
        "digits explains it")
    assert lampiran.names["invalid"] == "jumlah seluruh suara tidak sah"


def test_a_failed_rule_is_worded_from_the_template_and_points_at_the_line_it_is_compared_with(toy):
    form, flag = form_view(toy), dict(TOY_FLAG)
    row = {**TOY_SHEETS[1][1], **{f"{f}_conf": 0.99 for f in TOY_SHEETS[1][1]}}
    causes = triage.cause_fields(flag, row, set(), 0.9, form)
    assert causes == ["good"]
    assert triage.plain_reason(flag, causes, dict(form.names), form, row) == (
        "A + B = valid ballots does not hold: 95 against 90 (5 off), and no likely misreading of the digits "
        "explains it")
    doubtful = {**row, "cand_a_conf": 0.4}
    assert triage.sheet_triage(doubtful, [{**flag, "verdict": "needs_review"}], dict(form.names), 0.9, form)[
        "reason"] == ("A + B = valid ballots does not hold: 95 against 90 (5 off); Candidate A may be misread: "
                      "compare with the scan")


def test_a_rule_the_template_lacks_is_named_from_the_audits_evidence(toy):
    other = form_view(parse_template({**TOY, "rules": []}))
    assert triage.plain_reason(TOY_FLAG, ["good"], dict(other.names), other, {}).startswith(
        "A + B = valid ballots does not hold: 95 against 90 (5 off)")


def test_evidence_tables_show_the_rule_and_the_fields_labels(toy):
    form = form_view(toy)
    row = {**TOY_SHEETS[1][1], "cand_a_conf": 0.4}
    (entry,) = flag_entries([{**TOY_FLAG, "verdict": "needs_review"}], row, dict(form.names), 0.9, form)
    assert entry["evidence"]["items"][:2] == [("rule", "A + B = valid ballots"),
                                              ("rule text", "sum(candidate) == good")]
    assert [r[0] for r in entry["evidence"]["rows"]] == ["Candidate A"] and entry["cause_names"] == ["Candidate A"]


def test_the_index_table_takes_the_station_key_and_the_count_column_from_the_form(toy):
    assert tables.index_columns(form_view(toy)) == (*tables.INDEX_HEAD, "booth", "good", *tables.INDEX_TAIL)
    assert tables.index_columns(default_form()) == (*tables.INDEX_HEAD, "district", "section", "station",
                                                    "total_votes", *tables.INDEX_TAIL)


def test_the_fingerprint_needs_the_registered_voters_and_says_so():
    lampiran = form_view(load_template(LAMPIRAN))
    votes, registered, missing = fingerprint_inputs(lampiran)
    assert votes == ("valid", "invalid") and registered is None and "role registered" in missing
    assert fingerprint_inputs(default_form()) == (("total_votes",), "registered_voters", "")
    sheets = pd.DataFrame({"a": [40, 60], "good": [90, 80], "bad": [10, 20], "list": [200, 100]})
    fig = figures.fingerprint_figure(sheets, "a", ("good", "bad"), "list", {"a": "Candidate A"})
    assert fig.axes[0].get_title() == "Turnout vs Candidate A share (n=2)"


def write_toy_batch(root: Path, template) -> tuple[Path, Path]:
    """A run folder recording the toy template and a hand-made audit folder of :data:`TOY_SHEETS` (the audit's
    tables as docs/DATA.md section 4 describes them, with the toy form's columns only)."""
    rundir, processed = root / "interim" / "toy", root / "processed" / "toy"
    (rundir / "registered").mkdir(parents=True)
    processed.mkdir(parents=True)
    (rundir / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(TOY), encoding="utf-8")
    pages, reads, rows = [], [], []
    for sid, values in TOY_SHEETS:
        img = draw_sheet(template, values)
        cv2.imwrite(str(rundir / "registered" / f"{sid}.jpg"), img)
        (rundir / "fields" / sid).mkdir(parents=True)
        for f in template.fields:
            x0, y0, x1, y1 = f.bounds.to_px(DPI)
            cv2.imwrite(str(rundir / "fields" / sid / f"{f.name}.png"), img[y0:y1, x0:x1])
            reads.append({"sheet_id": sid, "field": f.name, "text": str(values[f.name]), "value": values[f.name],
                          "confidence": 0.99, "needs_review": False,
                          "alternatives": json.dumps([[values[f.name], 0.99]])})
        pages.append({"sheet_id": sid, "source": f"{sid}.jpg", "page": 1, "status": "ok", "reason": "",
                      "registration_score": 0.9})
        rows.append({"sheet_id": sid, **values, **{f"{f}_conf": 0.99 for f in values}, "status": "ok",
                     "suspicion": 0.9 if sid == "t2" else 0.1, "n_flags": int(sid == "t2"),
                     "evidence_dir": os.path.relpath(rundir / "fields" / sid, processed)})
    pd.DataFrame(pages).to_csv(rundir / "pages.csv", index=False)
    pd.DataFrame(reads).astype({"value": "Int64"}).to_parquet(rundir / "fields.parquet")
    pd.DataFrame(rows).to_parquet(processed / "sheets.parquet")
    pd.DataFrame([TOY_FLAG]).to_parquet(processed / "flags.parquet")
    (processed / "forensics.json").write_text(json.dumps({"winner": "cand_a", "tests": []}))
    return rundir, processed


@pytest.fixture(scope="module")
def toy_report(toy, tmp_path_factory) -> Path:
    from pipeline.report import ReportSettings, build_report

    root = tmp_path_factory.mktemp("toy")
    rundir, processed = write_toy_batch(root, toy)
    write_models(root / "models")
    out = root / "report"
    build_report(processed, out, rundir, models_dir=root / "models", settings=ReportSettings(static_pages=1))
    return out


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_report_of_another_form_uses_its_template_never_the_actas(toy_report):
    pages = {p.relative_to(toy_report).as_posix(): read(p) for p in toy_report.rglob("*")
             if p.suffix in (".html", ".js", ".csv") and p.parent.name != "static"}
    leaks = {name: [w for w in ACTA_WORDS if w in text] for name, text in pages.items()}
    assert not {k: v for k, v in leaks.items() if v}, leaks
    page = pages["sheets/t2.html"]
    assert "<dt>TPS No.</dt><dd>8</dd>" in page and "<td>Candidate A</td>" in page
    assert "A + B = valid ballots does not hold: 95 against 90 (5 off)" in page
    assert "<th>rule</th><td>A + B = valid ballots</td>" in page
    assert "<th>rule text</th><td>sum(candidate) == good</td>" in page
    assert "90 + 4 = 94 ≤ 130 = voters (Voters on the list)" in page


def test_a_clean_sheet_of_another_form_lists_its_rules_that_hold(toy_report):
    data = "".join(read(p) for p in (toy_report / "data").glob("detail-*.js"))
    record = json.loads(data[data.index(",") + 1:data.rindex(")")])["t1"]
    assert record["passed"] == ["candidate = 78 + 12 = 90 = good (Valid ballots)",
                                "90 + 3 = 93 ≤ 120 = voters (Voters on the list)"]
    assert record["meta"][0] == ["TPS No.", "7"]


def test_the_index_and_forensics_pages_show_the_forms_columns_rules_and_missing_roles(toy_report):
    index = read(toy_report / "index.html")
    columns = json.loads(html.unescape(re.search(r'data-columns="([^"]+)"', index).group(1)))
    assert [(c["key"], c["label"]) for c in columns if c["key"] in ("booth", "good")] == [
        ("booth", "TPS No."), ("good", "Valid ballots")]
    assert next(c for c in columns if c["key"] == "booth")["plain"] is True
    assert 'id="form-rules"' in index and "<code>sum(candidate) == good</code>" in index
    assert "<td>A + B = valid ballots</td>" in index and "<code>good + spoilt &lt;= voters</code>" in index
    forensics = read(toy_report / "forensics.html")
    assert 'id="fingerprint-note"' in forensics and "no (single) field with role registered" in forensics
    assert "figures/fingerprint.png" not in forensics


def test_the_report_reads_the_template_the_run_was_read_with(tmp_path, toy):
    assert report_template(tmp_path, None).name == load_template().name
    (tmp_path / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(TOY), encoding="utf-8")
    assert report_template(None, tmp_path).name == "toy_form"


def test_an_unreadable_id_is_named_not_taken_for_a_malformed_station(toy):
    form = form_view(toy)
    unreadable = {"rule": "unreadable", "fields": "booth", "verdict": "needs_review", "severity": "low",
                  "evidence": "{}"}
    assert triage.cause_fields(unreadable, {}, set(), 0.9, form) == ["booth"]
    assert triage.plain_reason(unreadable, ["booth"], dict(form.names), form) == (
        "TPS No. could not be read, so the sums cannot be checked")
    ids = {**unreadable, "rule": "ids_well_formed", "verdict": "needs_review"}
    assert triage.cause_fields(ids, {}, set(), 0.9, form) == []
    assert triage.plain_reason(ids, [], dict(form.names), form) == "the station ids look wrong: check them on the scan"


def test_the_fingerprint_party_is_a_candidate_of_the_form(toy):
    from pipeline.report.build import ReportSettings, fingerprint_party

    form, settings = form_view(toy), ReportSettings()
    sheets = pd.DataFrame({"cand_a": [78, 83], "cand_b": [12, 12]})
    assert fingerprint_party({"winner": "cand_a"}, settings, form, sheets) == "cand_a"
    assert fingerprint_party({"winner": "pri"}, settings, form, sheets) == "cand_b"  # not this form's: the leader
    leaderless = form_view(parse_template({**TOY, "leader": None}))
    assert fingerprint_party({}, settings, leaderless, sheets) == "cand_a"  # the most votes
    assert fingerprint_party({}, ReportSettings(fingerprint_party="cand_b"), leaderless, sheets) == "cand_b"


def test_the_first_screen_says_why_a_forms_sheets_were_not_scored_for_alteration():
    from pipeline.report.build import alteration_off

    assert alteration_off({"alteration_skipped": "trained on 'acta1988'", "detected": {"skipped": "no ticks"}}) == \
        "trained on 'acta1988'"
    assert alteration_off({"detected": {"skipped": "off"}}) == "off"
    assert alteration_off({"by_page_type": {"a": {"alteration_skipped": "other form"}, "b": {"detected": {}}}}) == \
        "a: other form"
    assert alteration_off({"by_page_type": {"b": {"detected": {}}}}) is None
