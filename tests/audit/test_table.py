import os

import pandas as pd
import pytest

from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import (
    FIELDS_COLUMNS,
    NO_PAGE_STATUS,
    build_sheet_table,
    parse_alternatives,
    pivot_marks,
    read_table,
    sheet_reading,
)
from pipeline.errors import InputFileError
from tests.audit.conftest import ACTA, clean_values, field_rows, mark_rows


def tables(rundir):
    return (pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str}), pd.read_parquet(rundir / "fields.parquet"),
            pd.read_csv(rundir / "marks.csv", dtype={"sheet_id": str}))


def test_blank_counts_are_zero_but_blank_ids_missing(run_factory, tmp_path):
    rundir = run_factory({"a": {"values": clean_values(prt=None, section=None)}})
    pages, fields, marks = tables(rundir)
    table = build_sheet_table(pages, fields, marks, rundir, tmp_path, ACTA, AuditSettings())
    assert table.loc["a", "prt"] == 0 and pd.isna(table.loc["a", "section"])
    strict = build_sheet_table(pages, fields, marks, rundir, tmp_path, ACTA, AuditSettings(empty_counts_as_zero=False))
    assert pd.isna(strict.loc["a", "prt"])
    assert table.loc["a", "turnout"] == pytest.approx(220 / 500)


def test_unreadable_count_stays_missing_even_when_blanks_count_as_zero(run_factory, tmp_path):
    rundir = run_factory({"a": {"values": clean_values(pan=None), "texts": {"pan": "4?"}}})
    table = build_sheet_table(*tables(rundir), rundir, tmp_path, ACTA, AuditSettings())
    assert pd.isna(table.loc["a", "pan"]) and table.loc["a", "pan_text"] == "4?"


def test_sheet_missing_from_pages_and_page_without_fields(run_factory, tmp_path):
    rundir = run_factory({"a": {"values": clean_values()}, "b": {"values": None}})
    pages, fields, marks = tables(rundir)
    extra = pd.DataFrame(field_rows("c", clean_values()))
    table = build_sheet_table(pages, pd.concat([fields, extra]), marks, rundir, tmp_path, ACTA, AuditSettings())
    assert table.loc["c", "status"] == NO_PAGE_STATUS
    assert table.loc["b", "status"] == "ok" and pd.isna(table.loc["b", "pri"])
    assert list(table.index) == ["a", "b", "c"]


def test_ticks_and_station_type():
    marks = pd.DataFrame(mark_rows("a", {"pri": 1, "pan": 1}, "C") + mark_rows("b", {"pri": 1}, None))
    marks.loc[(marks.sheet_id == "b") & (marks.option.isin(["B", "E"])), "ticked"] = True  # two boxes ticked
    out = pivot_marks(marks.astype({"ticked": str}), ACTA)
    assert out.loc["a", "station_type"] == "C" and pd.isna(out.loc["b", "station_type"])
    assert out.loc["a", "rep_pan"] == 1 and out.loc["b", "rep_pan"] == 0


def test_alternatives_parsing_is_forgiving():
    assert parse_alternatives('[[120, 0.6], [126, 0.3]]') == [(120, 0.6), (126, 0.3)]
    assert parse_alternatives(None) == [] and parse_alternatives("not json") == []
    assert parse_alternatives('[[null, 0.5], [7, 0.4]]') == [(7, 0.4)]


def test_missing_columns_name_the_file(tmp_path):
    path = tmp_path / "fields.csv"
    pd.DataFrame({"sheet_id": ["a"], "field": ["pan"]}).to_csv(path, index=False)
    with pytest.raises(InputFileError, match="fields.csv: missing column"):
        read_table(path, FIELDS_COLUMNS)
    (tmp_path / "bad.parquet").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="bad.parquet: cannot read"):
        read_table(tmp_path / "bad.parquet", ("sheet_id",))


@pytest.mark.parametrize("out_under", ["report", "run0/fields/a", "run0/fields/a/sub"])
def test_sheet_reading_lists_the_field_images_relative_to_the_output(run_factory, tmp_path, out_under):
    rundir = run_factory({"a": {"values": clean_values()}, "b": {"values": clean_values()}}, images={"a": False})
    out = tmp_path / out_under
    table = build_sheet_table(*tables(rundir), rundir, out, ACTA, AuditSettings())
    images = sheet_reading(table.loc["a"], {}, rundir, out, ACTA).images
    folder = rundir / "fields" / "a"
    assert images == {f: os.path.relpath(folder / f"{f}.png", out) for f in sorted(images)}
    assert len(images) == len(list(folder.glob("*.png"))) > 0
    assert sheet_reading(table.loc["b"], {}, rundir, out, ACTA).images == {}
