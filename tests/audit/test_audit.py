"""The audit orchestrator: rules on one chunk, tallies that add up across chunks, and a streamed run that holds
a chunk at a time and leaves nothing half-written."""

import pandas as pd
import pytest

import pipeline.audit.audit as audit_module
from pipeline.audit.alteration import RULE
from pipeline.audit.audit import (
    add_tallies,
    flag_tally,
    run_audit,
    sheet_flags,
    summary_columns,
)
from pipeline.audit.flags import Flag
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import FIELDS_COLUMNS, build_sheet_table
from pipeline.engine.stream import check_parquet_columns
from pipeline.errors import InputFileError
from tests.audit.conftest import ACTA, clean_values

NO_DETECTOR = AuditSettings(alteration_model=None)


def test_sheet_flags_keep_the_table_order_and_read_candidates_from_the_chunk(run_factory, tmp_path):
    # c adds up; a, d and b are off by 1, 2 and 3 votes; d has no readings at all
    sheets = {sid: {"values": clean_values(pan=40 + i)} for i, sid in enumerate(("c", "a", "d", "b"))}
    sheets["a"]["alternatives"] = {"pan": [[41, 0.55], [40, 0.45]]}
    sheets["a"]["confidence"] = {"pan": 0.55}
    rundir = run_factory(sheets)
    fields = pd.read_parquet(rundir / "fields.parquet")
    fields = fields[fields["sheet_id"] != "d"]
    pages, marks = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str}), pd.read_csv(rundir / "marks.csv")
    table = build_sheet_table(pages, fields, marks, rundir, tmp_path, ACTA, AuditSettings())
    flags = sheet_flags(table, fields, rundir, tmp_path, ACTA, AuditSettings())
    order = list(dict.fromkeys(f.sheet_id for f in flags))
    assert order == ["a", "d", "b"]
    by_sheet = {f.sheet_id: f for f in flags}
    assert by_sheet["a"].verdict == "needs_review"  # the runner-up reading 40 makes the sheet add up
    assert by_sheet["b"].verdict == "inconsistent"


def flag(sid, verdict="suspicious", severity="medium", rule="turnout"):
    return Flag(sid, (), rule, severity, verdict, "because", {})


def test_tallies_of_disjoint_flag_sets_add_up_to_the_tally_of_all():
    flags = [flag("a", "needs_review", "low"), flag("a", "inconsistent", "high"), flag("b"),
             flag("b", "altered", "high", rule=RULE)]
    index = pd.Index(["a", "b", "c"])
    whole = flag_tally(flags, index)
    split = add_tallies(flag_tally(flags[:2], index), flag_tally(flags[2:]))
    pd.testing.assert_frame_equal(split, whole)
    table = pd.DataFrame({"alteration_score": [0.2, 0.9, None]}, index=index)
    out = summary_columns(table, whole)
    assert list(out["n_flags"]) == [2, 2, 0] and list(out["verdict"]) == ["inconsistent", "altered", "ok"]
    # noisy-OR of the alteration score and the other flags' weights (low 0.1, high 0.6, medium 0.3)
    assert out["suspicion"].tolist() == pytest.approx([1 - 0.8 * 0.9 * 0.4, 1 - 0.1 * 0.7, 0.0])


@pytest.fixture
def batch(run_factory):
    sheets = {f"s{i}": {"values": clean_values(section=i, pan=40 + i % 3)} for i in range(7)}
    return run_factory(sheets, statuses={"s3": "not_a_form"})


def test_the_audit_holds_one_chunk_of_sheets_at_a_time(batch, tmp_path, monkeypatch):
    seen = []
    real = audit_module.build_sheet_table
    monkeypatch.setattr(audit_module, "build_sheet_table", lambda pages, *a: seen.append(len(pages)) or real(pages, *a))
    streamed = run_audit(batch, tmp_path / "two", NO_DETECTOR, stream_sheets=2)
    assert seen == [2, 2, 2, 1]
    whole = run_audit(batch, tmp_path / "all", NO_DETECTOR, stream_sheets=100)
    pd.testing.assert_frame_equal(streamed.sheets, whole.sheets)
    assert streamed.flags == whole.flags and streamed.n_flags == len(whole.flags) > 0
    assert list(whole.sheets.index) == [f"s{i}" for i in range(7)]  # the order of pages.csv
    assert whole.verdicts == whole.sheets["verdict"].value_counts().to_dict()


def test_flags_read_back_as_the_records_written(batch, tmp_path):
    result = run_audit(batch, tmp_path / "out", NO_DETECTOR)
    frame = pd.read_csv(result.paths["flags_csv"], dtype=str, keep_default_na=False)
    assert [(f.sheet_id, ";".join(f.fields), f.rule, f.reason) for f in result.flags] == list(
        frame[["sheet_id", "fields", "rule", "reason"]].itertuples(index=False, name=None))
    assert any(f.fields for f in result.flags) and all(isinstance(f.evidence, dict) for f in result.flags)


def test_a_failed_audit_leaves_no_output_and_no_temporary_file(batch, tmp_path, monkeypatch):
    def fail(*_):
        raise RuntimeError("cross-sheet rules failed")
    monkeypatch.setattr(audit_module, "cross_sheet_flags", fail)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        run_audit(batch, out, NO_DETECTOR, stream_sheets=2)
    assert list(out.iterdir()) == []


def test_check_parquet_columns_names_what_is_missing(tmp_path):
    pd.DataFrame({"sheet_id": ["a"], "field": ["pan"]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(InputFileError, match="missing column.*text"):
        check_parquet_columns(tmp_path / "f.parquet", FIELDS_COLUMNS)
    with pytest.raises(InputFileError, match="not found"):
        check_parquet_columns(tmp_path / "none.parquet", FIELDS_COLUMNS)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputFileError, match="cannot read"):
        check_parquet_columns(tmp_path / "bad.parquet", FIELDS_COLUMNS)
    assert check_parquet_columns(tmp_path / "f.parquet", ("sheet_id",)) == tmp_path / "f.parquet"


def test_a_run_with_no_sheet_gives_empty_tables_with_every_column(batch, tmp_path):
    for name in ("pages.csv", "marks.csv"):
        pd.read_csv(batch / name).head(0).to_csv(batch / name, index=False)
    pd.read_parquet(batch / "fields.parquet").head(0).to_parquet(batch / "fields.parquet")
    result = run_audit(batch, tmp_path / "out", NO_DETECTOR)
    assert result.n_sheets == result.n_flags == 0 and result.sheets.empty and result.flags == []
    assert {"pan", "pan_conf", "status", "verdict", "suspicion"} <= set(result.sheets.columns)


def test_sheet_ids_a_spreadsheet_would_run_are_neutralised_in_the_csv_files(run_factory, tmp_path):
    run = run_factory({"=1+2": {"values": clean_values()}, "@SUM(1+1)": {"values": clean_values(pan=41)}})
    result = run_audit(run, tmp_path / "out", NO_DETECTOR)
    for name in ("sheets.csv", "flags.csv"):
        ids = pd.read_csv(tmp_path / "out" / name)["sheet_id"].astype(str)
        assert len(ids) and not ids.str.startswith(("=", "@", "+", "-")).any(), name
    assert set(result.sheets.index) == {"=1+2", "@SUM(1+1)"}, "the Parquet tables keep the ids as they are"


def test_an_audit_removes_what_a_killed_audit_left_behind(batch, tmp_path):
    out = tmp_path / "out"
    (out / ".audit-x1y2" / "sub").mkdir(parents=True)
    (out / ".audit-x1y2" / "sheets.parquet").write_bytes(b"half")
    (out / ".flags.csv.999999.tmp").write_text("half a table")
    (out / "notes.txt").write_text("the user's")
    run_audit(batch, out, NO_DETECTOR)
    assert not list(out.glob(".audit-*")) and not list(out.glob(".*.tmp"))
    assert (out / "notes.txt").is_file()
