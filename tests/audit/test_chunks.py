"""Reading a run folder chunk by chunk: every chunk holds all the rows of the same sheets, in pages.csv order."""

import pandas as pd
import pytest

from pipeline.audit import chunks
from pipeline.audit.chunks import page_order, run_chunks
from pipeline.audit.table import FIELDS_COLUMNS, MARKS_COLUMNS
from pipeline.errors import InputFileError
from tests.audit.conftest import clean_values

IDS = ("c", "a", "e", "d", "b")


@pytest.fixture
def rundir(run_factory):
    return run_factory({sid: {"values": clean_values(section=i + 1)} for i, sid in enumerate(IDS)},
                       statuses={"e": "not_a_form"})


def read_all(rundir, chunk_sheets):
    order = page_order(rundir / "pages.csv", chunk_sheets)
    return order, list(run_chunks(rundir, order, FIELDS_COLUMNS, MARKS_COLUMNS))


def sheets_of(frame):
    return list(dict.fromkeys(frame["sheet_id"].astype(str)))


@pytest.mark.parametrize("block_rows", [1, 7, 20_000])
@pytest.mark.parametrize("chunk_sheets", [1, 2, 100])
def test_chunks_cut_every_table_at_the_same_sheets(rundir, monkeypatch, block_rows, chunk_sheets):
    monkeypatch.setattr(chunks, "BLOCK_ROWS", block_rows)  # a sheet's rows span several blocks
    order, parts = read_all(rundir, chunk_sheets)
    assert order.n_read == 4 and order.n_chunks == len(parts) == -(-len(IDS) // chunk_sheets)
    assert [s for p in parts for s in sheets_of(p.pages)] == list(IDS)
    for part in parts:
        assert len(part.pages) <= chunk_sheets
        assert set(sheets_of(part.fields)) == set(sheets_of(part.marks)) == set(sheets_of(part.pages)) - {"e"}
    whole = pd.read_parquet(rundir / "fields.parquet", columns=list(FIELDS_COLUMNS))
    assert sum(len(p.fields) for p in parts) == len(whole)


def test_a_repeated_page_row_is_dropped_and_sheets_without_a_page_row_come_last(rundir):
    pages = pd.read_csv(rundir / "pages.csv", dtype={"sheet_id": str})
    pd.concat([pages[pages.sheet_id != "b"], pages[pages.sheet_id == "a"]]).to_csv(rundir / "pages.csv", index=False)
    order, parts = read_all(rundir, 2)
    assert [s for p in parts for s in sheets_of(p.pages)] == ["c", "a", "e", "d"]
    assert sheets_of(parts[-1].fields) == ["b"] and parts[-1].pages.empty and len(parts) == order.n_chunks + 1


def test_a_table_in_another_sheet_order_is_refused_with_the_file_named(rundir):
    marks = pd.read_csv(rundir / "marks.csv", dtype={"sheet_id": str})
    marks.iloc[::-1].to_csv(rundir / "marks.csv", index=False)
    with pytest.raises(InputFileError, match=r"marks\.csv: the rows of sheet .* come after"):
        read_all(rundir, 1)
    assert len(read_all(rundir, 100)[1]) == 1  # within one chunk the order does not matter


def test_an_empty_run_still_gives_one_chunk_with_every_column(rundir):
    for name in ("pages.csv", "marks.csv"):
        pd.read_csv(rundir / name).head(0).to_csv(rundir / name, index=False)
    pd.read_parquet(rundir / "fields.parquet").head(0).to_parquet(rundir / "fields.parquet")
    order, parts = read_all(rundir, 10)
    assert order.n_chunks == 0 and len(parts) == 1
    assert {"sheet_id", "status"} <= set(parts[0].pages.columns)
    assert list(parts[0].fields.columns) == list(FIELDS_COLUMNS)


def test_missing_column_or_corrupt_table_names_the_file(rundir):
    pd.read_csv(rundir / "pages.csv").drop(columns="status").to_csv(rundir / "pages.csv", index=False)
    with pytest.raises(InputFileError, match=r"pages\.csv: missing column\(s\) status"):
        page_order(rundir / "pages.csv", 10)
    (rundir / "pages.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x00")
    with pytest.raises(InputFileError, match=r"pages\.csv"):
        page_order(rundir / "pages.csv", 10)
