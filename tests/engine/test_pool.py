"""map_items: every item once, failures as results, fork-safe pools, Ray optional."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pipeline.engine import EngineSettings, map_items, process_context
from pipeline.engine.pool import chunked
from pipeline.errors import ConfigError

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
