"""Streaming helpers: chunks of whole sheets from a Parquet table, a sink that writes it back in pieces, and
``.npy`` files written and read by blocks of rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.engine.stream import (
    PAD_ROWS,
    CsvSink,
    NpyWriter,
    ParquetSink,
    empty_frame,
    npy_layout,
    parquet_sheet_chunks,
    read_npy_rows,
    sheet_chunks,
)
from pipeline.errors import InputFileError


def rows(*sheets: tuple[str, int]) -> pd.DataFrame:
    """A table with ``n`` rows for each ``(sheet_id, n)``, numbered in order."""
    ids = [sid for sid, n in sheets for _ in range(n)]
    return pd.DataFrame({"sheet_id": ids, "i": range(len(ids))})


def test_chunks_hold_whole_sheets_even_when_a_sheet_spans_blocks():
    table = rows(("a", 3), ("b", 4), ("c", 1), ("d", 2))
    blocks = [table.iloc[0:2], table.iloc[2:5], table.iloc[5:5], table.iloc[5:10]]
    chunks = list(sheet_chunks(blocks, max_sheets=2))
    assert [list(pd.unique(c["sheet_id"])) for c in chunks] == [["a", "b"], ["c", "d"]]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), table)


def test_a_sheet_that_comes_back_later_is_refused():
    with pytest.raises(InputFileError, match="'a'.*not contiguous"):
        list(sheet_chunks([rows(("a", 1), ("b", 1), ("a", 1))], max_sheets=1))


def test_parquet_chunks_and_sink_give_back_the_same_table(tmp_path):
    table = rows(("a", 3), ("b", 2), ("c", 2)).assign(x=pd.array([1, None, 3, 4, 5, 6, 7], "Int64"))
    table.to_parquet(tmp_path / "t.parquet", index=False)
    sink = ParquetSink(tmp_path / "copy.parquet")
    for chunk in parquet_sheet_chunks(tmp_path / "t.parquet", max_sheets=1):
        assert chunk["sheet_id"].nunique() == 1
        sink.write(chunk)
    assert not (tmp_path / "copy.parquet").exists()  # nothing visible before the commit
    sink.commit()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "copy.parquet"), table)
    assert list(empty_frame(tmp_path / "t.parquet").columns) == ["sheet_id", "i", "x"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("rows_per_group", [1, 3, 100])
def test_parquet_sink_gathers_small_frames_into_row_groups(tmp_path, rows_per_group):
    table = rows(("a", 3), ("b", 2), ("c", 2), ("d", 1))
    row_bytes = pa.Table.from_pandas(table.head(1), preserve_index=False).nbytes  # fixed-width columns
    sink = ParquetSink(tmp_path / "t.parquet", row_group_bytes=rows_per_group * row_bytes)
    for sid in "abcd":
        sink.write(table[table["sheet_id"] == sid])
    sink.commit()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)
    sizes = [pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(i).num_rows
             for i in range(pq.ParquetFile(tmp_path / "t.parquet").num_row_groups)]
    assert sizes == {1: [3, 2, 2, 1], 3: [3, 4, 1], 100: [8]}[rows_per_group]

def test_csv_sink_appends_with_one_header_and_the_first_columns_and_shows_nothing_before_commit(tmp_path):
    sink = CsvSink(tmp_path / "t.csv")
    sink.write(pd.DataFrame({"a": [1], "b": ["x"]}))
    sink.write(pd.DataFrame({"b": ["y", "z"], "a": [2, 3]}))
    assert not (tmp_path / "t.csv").exists()
    sink.commit()
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,x\n2,y\n3,z\n"
    failed = CsvSink(tmp_path / "u.csv")
    with pytest.raises(ValueError, match="nothing was written"):
        failed.commit()
    failed.write(pd.DataFrame({"a": [1]}))
    failed.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def digits(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("n", [0, 1, 37])
def test_npy_writer_writes_what_np_save_writes(tmp_path, n):
    array = digits(n)
    np.save(tmp_path / "saved.npy", array)
    writer = NpyWriter(tmp_path / "streamed.npy", array.shape, np.uint8)
    for block in np.array_split(array, 3):
        writer.write(block)
    writer.close()
    assert (tmp_path / "streamed.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    assert npy_layout(tmp_path / "streamed.npy")[:2] == (array.shape, np.dtype(np.uint8))


def test_npy_writer_fills_unwritten_rows_with_zeros_and_refuses_extra_rows(tmp_path):
    n = PAD_ROWS + 5  # more than one block of padding
    writer = NpyWriter(tmp_path / "d.npy", (n, 2), np.uint8)
    writer.write(np.ones((3, 2)))
    with pytest.raises(ValueError, match="cannot write"):
        writer.write(np.ones((n, 2)))
    with pytest.raises(ValueError, match="cannot write"):
        writer.write(np.ones((1, 3)))
    writer.close()
    expected = np.zeros((n, 2), np.uint8)
    expected[:3] = 1
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), expected)


@pytest.mark.parametrize("rows", [[], [4], [0, 1, 2, 3], [0, 2, 3, 9, 36], list(range(5, 37))])
def test_read_npy_rows_equals_indexing_the_array(tmp_path, rows):
    array = digits(37)
    np.save(tmp_path / "d.npy", array)
    got = read_npy_rows(tmp_path / "d.npy", np.array(rows, dtype=np.int64))
    np.testing.assert_array_equal(got, array[rows])
    assert got.shape == (len(rows), 28, 28) and got.dtype == np.uint8


@pytest.mark.parametrize("rows", [[3, 2], [1, 1], [-1], [37]])
def test_read_npy_rows_refuses_rows_out_of_order_or_outside(tmp_path, rows):
    np.save(tmp_path / "d.npy", digits(37))
    with pytest.raises(ValueError, match="ascending and inside"):
        read_npy_rows(tmp_path / "d.npy", np.array(rows))


def test_read_npy_rows_refuses_a_truncated_file(tmp_path):
    np.save(tmp_path / "d.npy", digits(10))
    data = (tmp_path / "d.npy").read_bytes()
    (tmp_path / "d.npy").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="file ends"):
        read_npy_rows(tmp_path / "d.npy", np.arange(10))


def test_npy_layout_refuses_fortran_order(tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 4))))
    with pytest.raises(ValueError, match="C-ordered"):
        npy_layout(tmp_path / "f.npy")


def test_csv_for_people_neutralises_cells_a_spreadsheet_would_run(tmp_path):
    from pipeline.engine.stream import FORMULA_STARTS, csv_text

    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "=1+2", "@SUM(1+1)", "+1", "-1+2", "\tx", "\rx", "plain", ""]
    frame = pd.DataFrame({"sheet_id": hostile, "n": range(len(hostile)), "delta": [-3.5] * len(hostile)})
    sink = CsvSink(tmp_path / "people.csv", for_people=True)
    sink.write(frame)
    sink.commit()
    for text in ((tmp_path / "people.csv").read_bytes().decode(), csv_text(frame)):
        back = pd.read_csv(io.StringIO(text), keep_default_na=False)
        assert not back["sheet_id"].astype(str).str.startswith(FORMULA_STARTS).any()
        assert back["sheet_id"].tolist()[:2] == ["'=HYPERLINK(\"http://x\",\"y\")", "'=1+2"]
        assert back["sheet_id"].tolist()[-2:] == ["plain", ""]
        assert (back["delta"] == -3.5).all(), "numbers are not formulas"
    machine = CsvSink(tmp_path / "run.csv")
    machine.write(frame)
    machine.commit()
    assert pd.read_csv(tmp_path / "run.csv", keep_default_na=False)["sheet_id"].tolist()[1] == "=1+2"
