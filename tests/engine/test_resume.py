"""Never lose work: kill a read mid-way, re-run, and get every sheet exactly once without redoing finished ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.engine import parts as pt
from pipeline.errors import ExitCode
from pipeline.vision import batch, read_batch
from pipeline.vision.batch import UNSAFE_NAME
from pipeline.vision.settings import OK, ReadSettings
from tests.engine.conftest import SHEETS

KILL_AFTER_PARTS = 2
WAIT_S = 120


def part_times(run) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run / pt.PARTS_DIR).glob("*.npz")}


def input_hashes(folder) -> dict[str, str]:
    return {p.name: pt.sha256_file(p) for p in folder.iterdir()}


def kill_mid_read(scans, run) -> dict[str, int]:
    """Start ``read`` in a subprocess, SIGKILL it once some parts exist; returns the parts' mtimes then."""
    cmd = [sys.executable, "-m", "pipeline", "read", str(scans), "--out", str(run), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT_S
    while len(part_times(run)) < KILL_AFTER_PARTS if (run / pt.PARTS_DIR).is_dir() else True:
        assert proc.poll() is None and time.monotonic() < deadline, "read ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return part_times(run)


def test_a_killed_read_resumes_without_redoing_or_duplicating(tmp_path, scans):
    before = input_hashes(scans)
    run = tmp_path / "run"
    survivors = kill_mid_read(scans, run)
    assert KILL_AFTER_PARTS <= len(survivors) < SHEETS and not (run / "pages.csv").exists()
    read_batch([scans], run, ReadSettings(workers=2))
    pages = pd.read_csv(run / "pages.csv")
    assert sorted(pages["sheet_id"]) == sorted(f"s{i}" for i in range(SHEETS)) and (pages["status"] == OK).all()
    after = part_times(run)
    assert all(after[name] == mtime for name, mtime in survivors.items()), "finished sheets were read again"
    assert len(after) == SHEETS
    manifest = pd.read_csv(run / pt.MANIFEST_FILE)
    assert len(manifest) == SHEETS and manifest["sha256"].tolist() == [before[f"s{i}.png"] for i in range(SHEETS)]
    assert input_hashes(scans) == before, "an input file was modified"


def test_the_merge_is_idempotent_and_a_changed_input_is_read_again(tmp_path, scans, page):
    run = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    first = {n: (run / n).read_bytes() for n in ("pages.csv", "marks.csv", "digits.npy")}
    crops = pd.read_parquet(run / "crops.parquet")
    times = part_times(run)
    again = cv2.imencode(".png", page, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()  # same pixels, other bytes
    assert again != (scans / "s0.png").read_bytes()
    (scans / "s0.png").write_bytes(again)
    read_batch([scans], run, ReadSettings(workers=1))
    changed = {n for n, t in part_times(run).items() if t != times[n]}
    assert changed == {pt.part_path(run / pt.PARTS_DIR, scans / "s0.png").name}
    pages = pd.read_csv(run / "pages.csv")
    assert len(pages) == SHEETS and pages["sheet_id"].is_unique
    assert (run / "digits.npy").read_bytes() == first["digits.npy"]
    pd.testing.assert_frame_equal(pd.read_parquet(run / "crops.parquet"), crops)
    assert np.load(run / "digits.npy", allow_pickle=False).shape[0] == (crops["digit_row"] >= 0).sum()


def test_merging_in_small_blocks_writes_the_same_tables(tmp_path, scans, monkeypatch):
    """The merge streams its rows to the tables every ``MERGE_BUFFER_ROWS``: the block size changes no byte."""
    (scans / "broken.png").write_bytes(b"not an image")  # a page row with another status and a reason
    run = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    whole = {n: (run / n).read_bytes() for n in ("pages.csv", "marks.csv", "digits.npy")}
    crops = pd.read_parquet(run / "crops.parquet")
    monkeypatch.setattr(batch, "MERGE_BUFFER_ROWS", 7)
    read_batch([scans], run, ReadSettings(workers=1))  # every part is current: only the merge runs again
    assert {n: (run / n).read_bytes() for n in whole} == whole
    pd.testing.assert_frame_equal(pd.read_parquet(run / "crops.parquet"), crops)
    assert b"broken" in whole["pages.csv"] and len(pd.read_csv(run / "pages.csv")) == SHEETS + 1


def test_a_corrupt_part_is_redone(tmp_path, scans):
    run = read_batch([scans / "s0.png"], tmp_path / "run", ReadSettings(workers=1))
    part = next((run / pt.PARTS_DIR).glob("*.npz"))
    part.write_bytes(b"not a zip")
    read_batch([scans / "s0.png"], run, ReadSettings(workers=1))
    assert pt.read_part(part) is not None
    assert pd.read_csv(run / "pages.csv")["status"].tolist() == [OK]


@pytest.mark.parametrize("name", ["...png", "..png"])
def test_a_name_that_would_escape_the_run_folder_is_refused(tmp_path, scans, name):
    (scans / name).write_bytes((scans / "s0.png").read_bytes())
    run = tmp_path / "out" / "run"
    read_batch([scans / name, scans / "s1.png"], run, ReadSettings(workers=1))
    pages = pd.read_csv(run / "pages.csv")
    assert pages["status"].tolist() == [UNSAFE_NAME, OK]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run"]
    assert not list((run / "fields").glob("*.png")), "field images written outside their sheet's folder"


def test_run_refuses_a_corrupt_model_before_any_work(tmp_path, scans, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    (model / "metadata.json").write_text("{}")
    interim = tmp_path / "interim"
    code = main(["run", str(scans), "--out", str(tmp_path / "out"), "--interim", str(interim), "--model", str(model)])
    assert code == ExitCode.model_error
    assert "model.keras" in capsys.readouterr().err
    assert not interim.exists()
    assert main(["run", str(scans), "--out", str(tmp_path / "out"), "--interim", str(interim), "--model",
                 str(tmp_path / "missing")]) == ExitCode.model_error


def test_a_file_replaced_by_other_bytes_of_the_same_size_and_time_is_read_again(tmp_path, scans):
    """``cp -p`` of other content keeps the size and the time: only the content hash tells."""
    run = read_batch([scans], tmp_path / "run", ReadSettings(workers=1))
    target = scans / "s0.png"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte inside the image data: same size, a broken PNG
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    read_batch([scans], run, ReadSettings(workers=1))
    pages = pd.read_csv(run / "pages.csv").set_index("sheet_id")
    assert pages.loc["s0", "status"] != OK
    manifest = pd.read_csv(run / pt.MANIFEST_FILE).set_index("path")
    assert manifest.loc[str(target), "sha256"] == pt.sha256_file(target)


def test_the_part_file_of_a_name_that_is_not_utf8_is_found(tmp_path):
    name = tmp_path / os.fsdecode(b"\xe9t\xe9.png")
    assert pt.part_path(tmp_path, name) != pt.part_path(tmp_path, tmp_path / "ete.png")
    assert pt.printable(name).endswith("\\xe9t\\xe9.png")
