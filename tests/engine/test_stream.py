"""Streaming helpers: chunks of whole sheets from a Parquet table, and a sink that writes it back in pieces."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.engine.stream import ParquetSink, empty_frame, parquet_sheet_chunks, sheet_chunks
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
