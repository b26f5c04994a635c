"""The audit orchestrator's streaming steps give the flags a whole-table pass would, in the table's order."""

import pandas as pd
import pytest

from pipeline.audit.audit import sheet_flags
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import FIELDS_COLUMNS, build_sheet_table
from pipeline.engine.stream import check_parquet_columns
from pipeline.errors import InputFileError
from tests.audit.conftest import clean_values


def test_sheet_flags_stream_the_candidates_but_keep_the_table_order(run_factory, tmp_path):
    # c adds up; a, d and b are off by 1, 2 and 3 votes; the rows are in the file in the order c, a, d, b
    sheets = {sid: {"values": clean_values(pan=40 + i)} for i, sid in enumerate(("c", "a", "d", "b"))}
    rundir = run_factory(sheets)
    fields = pd.read_parquet(rundir / "fields.parquet")
    fields[fields["sheet_id"] != "d"].to_parquet(rundir / "fields.parquet", index=False)  # d: no readings at all
    pages, marks = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str}), pd.read_csv(rundir / "marks.csv")
    table = build_sheet_table(pages, fields, marks, rundir, tmp_path, AuditSettings())
    runs = [sheet_flags(table, rundir / "fields.parquet", rundir, tmp_path, AuditSettings(), chunk)
            for chunk in (1, 2, 100)]
    assert runs[0] == runs[1] == runs[2]
    order = [f.sheet_id for f in runs[0]]
    assert set(order) == {"a", "b", "d"} and order == sorted(order)


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
