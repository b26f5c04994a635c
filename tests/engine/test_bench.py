"""The scale benchmark's measuring helpers: memory of a process tree, and a stage run in its own process."""

from __future__ import annotations

import os

import pytest

from pipeline.engine.bench import run_stage, tree_rss_kb
from pipeline.engine.settings import ScaleBenchSettings
from pipeline.errors import ConfigError


def test_tree_memory_counts_this_process():
    total, largest = tree_rss_kb(os.getpid())
    assert total >= largest > 0


def test_a_stage_runs_in_its_own_process_and_its_failure_is_reported(tmp_path):
    done = run_stage(["--version"], tmp_path / "ok.log", poll_s=0.01)
    assert done["seconds"] > 0 and done["peak_tree_mb"] >= done["peak_process_mb"] > 0
    assert max(done["peak_process_first_half_mb"], done["peak_process_second_half_mb"]) == done["peak_process_mb"]
    with pytest.raises(RuntimeError, match="exited with"):
        run_stage(["recognise", str(tmp_path / "missing")], tmp_path / "bad.log", poll_s=0.01)


def test_timed_sizes_must_be_measured_sizes():
    with pytest.raises(ConfigError):
        ScaleBenchSettings(sizes=(10,), timed_sizes=(20,))
