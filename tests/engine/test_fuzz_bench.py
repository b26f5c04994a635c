"""The fuzz bench's reporting: corpus counts and memory per worker (not the bench itself)."""

from __future__ import annotations

import os

import pandas as pd

from pipeline.engine import fuzz_bench as fz
from pipeline.engine.pool import WORKER_DIED
from pipeline.vision import settings as st

INPUTS = ["/f/a.png", "/f/b.pdf", "/f/collide.pdf", "/f/collide-p2.png", "/f/bomb.pdf"]


def manifest(statuses: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"path": list(statuses), "status": list(statuses.values())})


def pages(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sheet_id", "status"])


def test_a_clean_corpus_has_no_crash_no_loss_and_no_merge():
    files = manifest({INPUTS[0]: st.OK, INPUTS[1]: st.UNREADABLE, INPUTS[2]: st.OK, INPUTS[3]: st.OK,
                      INPUTS[4]: st.TOO_LARGE})
    rows = pages([("a", st.OK), ("b", st.UNREADABLE), ("collide", st.OK), ("collide-p2", st.OK),
                  ("collide-p2", st.DUPLICATE_ID), ("bomb", st.TOO_LARGE)])
    counts = fz.fuzz_counts(INPUTS, files, rows, exit_code=0)
    assert counts | {"statuses": None, "page_statuses": None} == {
        "inputs": 5, "manifest_rows": 5, "pages_rows": 6, "crashes": 0, "inputs_lost": 0, "lost": [],
        "sheets_merged": 0, "worker_died": 0, "statuses": None, "page_statuses": None}
    assert counts["statuses"] == {st.OK: 3, st.UNREADABLE: 1, st.TOO_LARGE: 1}
    assert counts["page_statuses"][st.DUPLICATE_ID] == 1


def test_errors_lost_inputs_merges_and_dead_workers_are_counted():
    files = manifest({INPUTS[0]: st.ERROR, INPUTS[1]: WORKER_DIED, INPUTS[2]: st.OK, INPUTS[3]: st.OK})
    rows = pages([("a", st.ERROR), ("b", WORKER_DIED), ("collide-p2", st.OK), ("collide-p2", st.OK)])
    counts = fz.fuzz_counts(INPUTS, files, rows, exit_code=0)
    assert counts["crashes"] == 1 and counts["worker_died"] == 1
    assert counts["inputs_lost"] == 1 and counts["lost"] == ["/f/bomb.pdf"]
    assert counts["sheets_merged"] == 1


def test_a_read_that_crashed_lost_every_input():
    empty = manifest({})
    counts = fz.fuzz_counts(INPUTS, empty, pages([]), exit_code=1)
    assert counts["crashes"] == counts["inputs_lost"] == len(INPUTS)


def test_memory_per_worker_is_checked_against_the_cap():
    mb = fz.KB_PER_MB
    samples = {(1, 0): {"role": "main", fz.PEAK_RSS: 300 * mb, fz.PEAK_VM: 2000 * mb},
               (2, 0): {"role": "forkserver", fz.PEAK_RSS: 200 * mb, fz.PEAK_VM: 900 * mb},
               (3, 0): {"role": "worker", fz.PEAK_RSS: 250 * mb, fz.PEAK_VM: 1000 * mb},
               (4, 0): {"role": "worker", fz.PEAK_RSS: 180 * mb, fz.PEAK_VM: 1100 * mb},
               (5, 0): {"role": "worker"}}  # gone before it was read
    memory = fz.worker_memory(samples, limit_mb=1536)
    assert memory == {"worker_memory_mb": 1536, "workers_seen": 2, "peak_rss_mb_per_worker": [180.0, 250.0],
                      "peak_rss_mb_max": 250.0, "peak_address_space_mb_max": 1100.0, "within_limit": True,
                      "main_peak_rss_mb": 300.0}
    assert not fz.worker_memory(samples, limit_mb=1050)["within_limit"]
    assert fz.worker_memory(samples, limit_mb=0)["within_limit"]  # no cap
    assert not fz.worker_memory({}, limit_mb=1536)["within_limit"]  # no worker measured: nothing is shown


def test_this_process_is_sampled_with_its_peaks():
    peaks = fz.peaks_kb(os.getpid())
    assert peaks[fz.PEAK_VM] >= peaks[fz.PEAK_RSS] > 0
    samples: dict = {}
    fz.sample(os.getpid(), samples)
    mine = [s for (pid, _), s in samples.items() if pid == os.getpid()]
    assert mine and mine[0]["role"] == "main" and mine[0][fz.PEAK_RSS] > 0
