"""map_items: every item once, failures as results, fork-safe pools, Ray optional."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine import EngineSettings, map_items, process_context
from pipeline.engine.pool import WORKER_DIED, chunked
from pipeline.errors import ConfigError, OutputError

HANG_TIMEOUT_S = 180


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


@pytest.mark.parametrize("workers,chunksize", [(1, 1), (2, 1), (2, 3)])
def test_every_item_once_and_a_failure_is_a_result(workers, chunksize):
    results = list(map_items(square_or_fail, range(10), EngineSettings(workers=workers, chunksize=chunksize)))
    assert sorted(r.item for r in results) == list(range(10))
    by_item = {r.item: r for r in results}
    assert by_item[3].value is None and "three is bad" in by_item[3].error
    assert all(by_item[i].value == i * i and by_item[i].error is None for i in range(10) if i != 3)


def full_disk_at_five(x: int) -> int:
    if x == 5:
        raise OSError(errno.ENOSPC, "No space left on device", f"/out/part{x}.npz")
    return x


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_stops_the_batch_with_one_error_naming_the_path(workers):
    with pytest.raises(OutputError, match="/out/part5.npz: No space left on device; the disk is full"):
        list(map_items(full_disk_at_five, range(10), EngineSettings(workers=workers)))


def killed_at_four(x: int) -> int:
    """Item 4 kills its worker as the system's out-of-memory killer would."""
    if x == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


@pytest.mark.parametrize("chunksize", [1, 3])
def test_a_killed_worker_costs_its_item_only(chunksize):
    results = list(map_items(killed_at_four, range(12), EngineSettings(workers=2, chunksize=chunksize)))
    assert sorted(r.item for r in results) == list(range(12))
    by_item = {r.item: r for r in results}
    assert by_item[4].died and WORKER_DIED in by_item[4].error
    assert all(by_item[i].value == i * i and not by_item[i].died for i in range(12) if i != 4)


def own_pid(_: int) -> int:
    return os.getpid()


def allocate_gb(gigabytes: int) -> int:
    return int(np.ones(gigabytes * 2**30, np.uint8).sum())


def test_one_item_of_a_pooled_batch_never_runs_in_this_process():
    """A resume with one file left caps the pool at one worker: it is still a pool, not this process."""
    [result] = map_items(own_pid, [0], EngineSettings(workers=2), n_items=1)
    assert result.error is None and result.value != os.getpid()


def test_a_worker_over_its_memory_limit_fails_its_item_only():
    settings = EngineSettings(workers=2, worker_memory_mb=1500)
    results = {r.item: r for r in map_items(allocate_gb, [3, 0], settings)}
    assert "MemoryError" in results[3].error and not results[3].died
    assert results[0].value == 0 and results[0].error is None


def test_items_are_read_lazily_in_bounded_chunks():
    consumed = []

    def items():
        for i in range(100):
            consumed.append(i)
            yield i

    stream = map_items(square_or_fail, items(), EngineSettings(workers=2, chunksize=2, in_flight_per_worker=1))
    next(stream)
    assert len(consumed) <= 2 * 2 * 1 + 2, "the engine read far ahead of the workers"
    assert len(list(stream)) == 99
    assert [len(c) for c in chunked(range(5), 2)] == [2, 2, 1]


def test_pools_never_fork_the_calling_process():
    assert process_context().get_start_method() == "forkserver"


def test_missing_ray_is_a_clear_error_before_any_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match="install the 'ray' extra"):
        map_items(square_or_fail, range(3), EngineSettings(engine="ray"))


def test_bad_engine_settings_are_config_errors():
    with pytest.raises(ConfigError):
        EngineSettings(engine="spark")
    with pytest.raises(ConfigError):
        EngineSettings(chunksize=0)


def test_reading_with_two_workers_after_tensorflow_and_a_thread_does_not_hang(tmp_path, scans):
    """Regression: a ``fork`` pool started after TensorFlow (or any thread holding a lock) could hang forever."""
    script = textwrap.dedent(f"""
        import threading, time
        import tensorflow as tf
        from pipeline.vision import read_batch, ReadSettings
        if __name__ == "__main__":
            float(tf.reduce_sum(tf.ones((256, 256)) @ tf.ones((256, 256))))  # start TensorFlow's thread pools
            lock = threading.Lock()
            threading.Thread(target=lambda: (lock.acquire(), time.sleep(600)), daemon=True).start()
            scans = sorted(__import__("pathlib").Path({str(scans)!r}).glob("*.png"))[:2]
            read_batch(scans, {str(tmp_path / "run")!r}, ReadSettings(workers=2))
            print("done")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "done" in done.stdout


def test_ray_runs_the_same_items_on_a_local_instance():
    ray = pytest.importorskip("ray")
    try:
        results = list(map_items(square_or_fail, range(6), EngineSettings(engine="ray", workers=2, chunksize=2)))
    finally:
        ray.shutdown()
    assert sorted(r.item for r in results) == list(range(6))
    assert {r.item: r.value for r in results if r.error is None} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_with_workers(tmp_path: Path, scans: Path) -> tuple[subprocess.Popen, set[int]]:
    """A ``read`` of ``scans`` on 2 workers, once its fork server and workers run, with its child processes."""
    cmd = [sys.executable, "-m", "pipeline", "read", str(scans), "--out", str(tmp_path / "run"), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG_TIMEOUT_S
    while len(descendants(proc.pid)) < 3:  # the fork server and two workers at least
        assert proc.poll() is None and time.monotonic() < deadline, "read ended before its workers started"
        time.sleep(0.05)
    return proc, descendants(proc.pid)


def test_sigterm_stops_every_child_process(tmp_path, scans):
    proc, children = read_with_workers(tmp_path, scans)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_TIMEOUT_S) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "child processes outlived the run"


def test_kill_9_of_the_batch_leaves_no_worker_behind(tmp_path, scans):
    """A batch killed outright (kill -9, the out-of-memory killer) runs no handler: its workers must notice alone."""
    proc, children = read_with_workers(tmp_path, scans)
    proc.kill()
    proc.wait(timeout=HANG_TIMEOUT_S)
    deadline = time.monotonic() + HANG_TIMEOUT_S
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "child processes outlived the killed run"
