import numpy as np
import pytest

from pipeline.atomic import savez_atomic, write_atomic, write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    assert write_text_atomic(path, "new") == path
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_savez_writes_exactly_the_named_file(tmp_path):
    path = tmp_path / "part.npz"
    savez_atomic(path, {"x": np.arange(3)})
    with np.load(path, allow_pickle=False) as npz:
        assert npz["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["part.npz"]
