"""The fault bench's reporting: exit statuses, error lines, stages, output comparison, verdicts (not the bench)."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd

from pipeline.engine import faults as fb

TQDM = "read:  40%|####      | 4/10 [00:01<00:02,  2.1file/s]\rread:  50%|#####     | 5/10 [00:02<00:02]\r"
LOG = ("12:00:01 INFO pipeline.run: stage read ...\n" + TQDM + "\n12:00:09 INFO pipeline.run: stage read done in 8 s\n"
       "12:00:09 INFO pipeline.run: stage recognise ...\n")
TRACE = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    boom()\n"
         "OSError: [Errno 28] No space left on device\n")


def test_exit_status_reads_a_signal_as_the_shell_does():
    assert fb.exit_status(-9) == fb.EXIT_KILLED == 137
    assert fb.exit_status(-15) == fb.EXIT_TERMINATED == 143
    assert fb.exit_status(7) == 7


def test_message_line_is_the_last_error_line_between_progress_bars():
    assert fb.message_line(LOG + "error: /x/run: another run (process 5) is writing this folder\n" + TQDM) == \
        "error: /x/run: another run (process 5) is writing this folder"
    assert fb.message_line(LOG) is None


def test_tracebacks_are_counted_and_named():
    assert fb.tracebacks(LOG) == 0 and fb.exceptions(LOG) == []
    assert fb.tracebacks(TRACE * 3) == 3
    assert fb.exceptions(TRACE * 3) == ["OSError: [Errno 28] No space left on device"]


def test_current_stage_follows_the_run_log():
    assert fb.current_stage("") is None
    assert fb.current_stage(LOG) == "recognise"
    assert fb.current_stage(LOG + "stage recognise done in 1 s\n") is None
    assert fb.current_stage(LOG + "stage recognise done in 1 s\nstage audit ...\n") == "audit"


def write_outputs(dirs: fb.RunDirs, sheets: list[str], cpu_s: float = 0.1) -> None:
    """Small stand-ins of the five compared outputs, for ``sheets``."""
    dirs.run.mkdir(parents=True)
    dirs.out.mkdir(parents=True)
    pages = pd.DataFrame({"sheet_id": sheets, "status": "ok", "reason": "", "cpu_s": cpu_s})
    pages.to_csv(dirs.run / "pages.csv", index=False)
    pd.DataFrame({"sheet_id": sheets, "digit_row": range(len(sheets))}).to_parquet(dirs.run / "crops.parquet")
    pd.DataFrame({"sheet_id": sheets, "value": 7.0}).to_parquet(dirs.run / "fields.parquet")
    pages.assign(total=3).to_csv(dirs.out / "sheets.csv", index=False)
    pd.DataFrame({"sheet_id": sheets[:1], "rule": "votes_add_up"}).to_csv(dirs.out / "flags.csv", index=False)


def test_outputs_equal_but_for_timings_are_identical(tmp_path):
    reference, other = fb.RunDirs.under(tmp_path / "a"), fb.RunDirs.under(tmp_path / "b")
    write_outputs(reference, ["s1", "s2"])
    write_outputs(other, ["s1", "s2"], cpu_s=9.9)
    check = fb.final_check({"s1", "s2"}, reference, other)
    assert check == {"sheets_lost": 0, "duplicate_rows": 0, "worker_died_rows": 0, "identical": True, "differs": {}}


def test_a_changed_value_a_lost_sheet_and_a_duplicate_row_are_reported(tmp_path):
    reference, other = fb.RunDirs.under(tmp_path / "a"), fb.RunDirs.under(tmp_path / "b")
    write_outputs(reference, ["s1", "s2", "s3"])
    write_outputs(other, ["s1", "s1", "s2"])
    pd.DataFrame({"sheet_id": ["s1", "s1", "s2"], "value": [7.0, 7.0, 8.0]}).to_parquet(other.run / "fields.parquet")
    (other.out / "flags.csv").unlink()
    check = fb.final_check({"s1", "s2", "s3"}, reference, other)
    assert check["sheets_lost"] == 1 and check["duplicate_rows"] == 2 and not check["identical"]
    assert check["differs"]["flags.csv"] == "missing"
    assert check["differs"]["fields.parquet"] == "2 row(s) differ in sheet_id, value"
    assert set(check["differs"]) == {"pages.csv", "crops.parquet", "fields.parquet", "sheets.csv", "flags.csv"}


def test_a_run_that_wrote_nothing_lost_every_sheet(tmp_path):
    reference = fb.RunDirs.under(tmp_path / "a")
    write_outputs(reference, ["s1", "s2"])
    check = fb.final_check({"s1", "s2"}, reference, fb.RunDirs.under(tmp_path / "none"))
    assert check["sheets_lost"] == 2 and len(check["differs"]) == len(fb.COMPARED)


def held_result(**changes) -> dict:
    """A fault result that held, with ``changes``."""
    return {"exit_code": fb.EXIT_KILLED, "children_left": [], "sheets_lost": 0, "duplicate_rows": 0,
            "identical": True, "resume_exit_code": 0, "message": None, "tracebacks": 0} | changes


FAULT = {f.name: f for f in fb.FAULTS}


def test_a_fault_holds_only_when_every_check_passes():
    kill = FAULT["kill_in_read"]
    assert fb.fault_held(kill, held_result())
    for bad in ({"sheets_lost": 1}, {"duplicate_rows": 2}, {"identical": False}, {"exit_code": 1},
                {"children_left": ["worker"]}, {"resume_exit_code": 7}):
        assert not fb.fault_held(kill, held_result(**bad)), bad
    disk = FAULT["full_disk"]
    assert fb.fault_held(disk, held_result(exit_code=7, message="error: /x: No space left on device; ..."))
    assert not fb.fault_held(disk, held_result(exit_code=7, message=None))
    assert not fb.fault_held(disk, held_result(exit_code=7, message="error: (no path): No space left on device"))
    assert not fb.fault_held(disk, held_result(exit_code=7, message="error: x", tracebacks=1))
    assert not fb.fault_held(disk, {"measured": False, "why": "mount: not permitted"})


def test_a_concurrent_run_holds_when_the_second_is_refused_while_the_first_runs():
    concurrent = FAULT["concurrent_run"]
    second = {"exit_code": 7, "message": "error: /x/run: another run ...", "ended_while_first_ran": True}
    assert fb.fault_held(concurrent, held_result(exit_code=0, second_run=second))
    assert not fb.fault_held(concurrent, held_result(exit_code=0, second_run=second | {"exit_code": 0}))
    assert not fb.fault_held(concurrent, held_result(exit_code=0, second_run=second | {"ended_while_first_ran": False}))


def test_summary_counts_faults_held_and_sheets_lost():
    results = {"kill_in_read": held_result(), "kill_in_audit": held_result(sheets_lost=2, identical=False),
               "full_disk": {"measured": False, "why": "no tmpfs"}}
    summary = fb.summarise(results)
    assert summary == {"faults": 3, "held": 1, "not_held": ["full_disk", "kill_in_audit"], "sheets_lost": 2,
                       "duplicate_rows": 0, "identical": 1, "not_measured": ["full_disk"]}


def test_a_child_that_outlives_its_run_is_reported_and_stopped():
    sleeper = subprocess.Popen(["sleep", "30"])
    ended = subprocess.Popen(["true"])
    ended.wait()
    try:
        seen = {sleeper.pid: (fb.proc_stat(sleeper.pid)[2], "worker"), ended.pid: (0, "process")}
        start = time.monotonic()
        assert fb.left_behind(seen, grace_s=0.2) == ["worker"]
        assert time.monotonic() - start < 5
        assert sleeper.wait(timeout=5) == -9
    finally:
        sleeper.kill()


def test_the_tree_below_a_process_is_found():
    tree = {1: [10, 11], 10: [20], 20: [30], 11: []}
    assert sorted(fb.descendants(1, tree)) == [10, 11, 20, 30]
    assert fb.descendants(30, tree) == []


def test_folder_size_counts_every_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1" * 2000)
    (tmp_path / "y").write_bytes(b"2")
    assert fb.folder_kb(tmp_path) == 3


def test_a_watched_run_gives_its_status_its_error_line_and_its_resume(tmp_path):
    dirs = fb.RunDirs.under(tmp_path)
    failing = [sys.executable, "-c", "import sys; print('error: /x: disk full', file=sys.stderr); sys.exit(7)"]
    first = fb.outcome(fb.watch(failing, dirs, tmp_path, "run"))
    assert first == {"exit_code": 7, "message": "error: /x: disk full", "tracebacks": 0, "exceptions": [],
                     "children_left": []}
    both = fb.resumed([sys.executable, "-c", "raise SystemExit(0)"], dirs, tmp_path, first)
    assert both["exit_code"] == 7 and both["resume_exit_code"] == 0 and both["resume_message"] is None
    assert both["children_left"] == [] and "resume_children_left" not in both
