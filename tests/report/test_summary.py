"""``python -m pipeline summary``: the one-screen summary of an audited batch."""

from __future__ import annotations

import json
import shutil

from pipeline.cli import main
from pipeline.errors import ExitCode
from pipeline.run import RUN_FILE, summary_text


def test_summary_counts_statuses_verdicts_rules_and_points_to_the_report(batch, built_report):
    text = summary_text(batch.processed, built_report)
    assert "sheets           5  (read 4, not a tally sheet 1)" in text
    assert "flagged sheets   4 (visibly altered 1, suspicious 1, check the reading 2)" in text
    assert "votes_add_up: 1 (high 1)" in text and "flags            5" in text
    assert f"report           {built_report / 'index.html'}" in text
    assert "time per stage   report" in text and "read, recognise, audit not timed" in text
    assert len(text.splitlines()) <= 24


def test_summary_uses_the_run_record_when_there_is_one(batch, tmp_path):
    processed = tmp_path / "p"
    shutil.copytree(batch.processed, processed)
    (processed / RUN_FILE).write_text(json.dumps({"report": "somewhere/index.html", "seconds": {
        "read": 12.5, "recognise": 1.25, "audit": 0.5, "report": 2.0}}))
    text = summary_text(processed, tmp_path / "no-report")
    assert "read 12.5 s · recognise 1.2 s · audit 0.5 s · report 2.0 s" in text
    assert "not timed" not in text and "somewhere/index.html" in text


def test_summary_without_a_report_says_so(batch, tmp_path):
    assert "not built" in summary_text(batch.processed, tmp_path / "none")


def test_summary_cli_exit_codes(batch, tmp_path, capsys):
    assert main(["summary", str(batch.processed), "--reports", str(tmp_path)]) == 0
    assert "tally-audit summary of" in capsys.readouterr().out
    assert main(["summary", str(tmp_path / "missing")]) == ExitCode.input_file
    assert "audit output folder not found" in capsys.readouterr().err
