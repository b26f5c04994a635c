"""The report checks the form's rules with the tolerance the audit used (its ``settings.json``, docs/DATA.md
section 4): a rule the audit passed within ``audit.rule_tolerance`` is listed as holding, one it failed is not."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pipeline.audit.audit import run_audit
from pipeline.audit.outputs import SETTINGS_FILE
from pipeline.errors import InputFileError
from pipeline.forms.template import parse_template
from pipeline.report import ReportSettings, build_report, triage
from pipeline.report.formview import form_view
from pipeline.report.inputs import audit_rule_tolerance
from tests.audit.test_form_audit import NO_DETECTOR, write_form_run
from tests.audit.test_mixed_audit import PAIR_SHEETS, PAIRS
from tests.report.test_mixed_report import details


def report_of(tmp_path, tolerance: int) -> dict:
    """The pairs run (``janggal``'s rule is 1 vote off) audited with ``rule_tolerance`` and its report, every
    sheet in the view page's data; returns the sheets' records."""
    rundir = write_form_run(tmp_path / "run", PAIRS, PAIR_SHEETS)
    processed = tmp_path / f"audit-{tolerance}"
    run_audit(rundir, processed, replace(NO_DETECTOR, rule_tolerance=tolerance))
    assert json.loads((processed / SETTINGS_FILE).read_text())["rule_tolerance"] == tolerance
    out = tmp_path / f"report-{tolerance}"
    build_report(processed, out, rundir, models_dir=tmp_path / "no-models",
                 settings=ReportSettings(static_pages=0, workers=1))
    return details(out)


def test_a_rule_the_audit_passes_within_its_tolerance_is_shown_holding(tmp_path):
    janggal = report_of(tmp_path, 1)["janggal"]
    assert janggal["verdict"] == "ok" and janggal["flags"] == []
    assert janggal["passed"] == ["189 + 159 = 348 ≈ 347 = valid (all valid) (within the audit's rule tolerance of 1)"]


def test_without_the_tolerance_the_same_rule_fails(tmp_path):
    records = report_of(tmp_path, 0)
    janggal = records["janggal"]
    assert janggal["passed"] == [] and [f["rule"] for f in janggal["flags"]] == ["rule_1"]
    assert records["good"]["passed"] == ["190 + 159 = 349 = valid (all valid)"]


def test_a_rules_own_tolerance_beats_the_audits():
    toy = parse_template({**PAIRS, "rules": [{"rule": "pair_1 + pair_2 == valid", "tolerance": 0}]})
    row = {"pair_1": 189, "pair_2": 159, "valid": 347}
    assert triage.passed_checks(row, set(), form_view(toy, rule_tolerance=5)) == []
    loose = parse_template({**PAIRS, "rules": [{"rule": "pair_1 + pair_2 == valid", "tolerance": 2}]})
    assert triage.passed_checks(row, set(), form_view(loose, rule_tolerance=0)) == [
        "189 + 159 = 348 ≈ 347 = valid (all valid) (within the rule's tolerance of 2)"]


def test_the_audits_tolerance_is_read_from_its_settings(tmp_path):
    assert audit_rule_tolerance(tmp_path) == 0  # an audit folder written before settings.json
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"rule_tolerance": 3, "alpha": 0.05}))
    assert audit_rule_tolerance(tmp_path) == 3
    for bad in ('{"rule_tolerance": -1}', '{"rule_tolerance": "2"}', "not json"):
        (tmp_path / SETTINGS_FILE).write_text(bad)
        with pytest.raises(InputFileError, match=SETTINGS_FILE):
            audit_rule_tolerance(tmp_path)
