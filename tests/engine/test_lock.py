"""One run per output folder: a second run gets a clear error, a dead run's lock is taken over."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.cli import main
from pipeline.engine.lock import LOCK_FILE, folder_lock, lock_owner
from pipeline.errors import ExitCode, OutputError

HOLD = ("import sys, time\nfrom pipeline.engine.lock import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)\n")


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another live process holds; yields the folder and that process."""
    folder = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_folder(held):
    folder, proc = held
    with pytest.raises(OutputError, match=f"{folder}.*another run \\(process {proc.pid}\\)"):
        with folder_lock(folder):
            pass


def test_the_cli_refuses_a_locked_folder_with_its_exit_code(held, tmp_path, capsys):
    folder, _ = held
    (tmp_path / "s.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["read", str(tmp_path / "s.png"), "--out", str(folder)]) == ExitCode.output_error
    assert "another run" in capsys.readouterr().err
    assert not (folder / "pages.csv").exists()


def test_the_lock_of_a_killed_run_is_taken_over(held):
    folder, proc = held
    proc.kill()
    proc.wait()
    assert lock_owner(folder) == proc.pid  # the file is still there: kill -9 leaves it
    with folder_lock(folder):
        assert lock_owner(folder) != proc.pid
    assert not (folder / LOCK_FILE).exists()


def test_a_stale_lock_file_with_a_dead_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / LOCK_FILE).write_text(f"{dead.pid}\n")
    with folder_lock(folder):
        assert lock_owner(folder) is not None and lock_owner(folder) != dead.pid


def test_a_process_may_take_its_own_lock_again(tmp_path):
    with folder_lock(tmp_path / "out"), folder_lock(tmp_path / "out"):
        assert (tmp_path / "out" / LOCK_FILE).exists()
    assert not (tmp_path / "out" / LOCK_FILE).exists()


def test_a_folder_that_cannot_be_written_is_an_output_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if (folder / "probe").touch() is None:  # root writes anyway: nothing to check then
            pytest.skip("running as root: a read-only folder is writable")
    except PermissionError:
        with pytest.raises(OutputError, match="cannot lock the output folder"):
            with folder_lock(folder):
                pass
    finally:
        folder.chmod(0o700)
