"""Fuzz bench (``python -m pipeline bench --only fuzz``): the hostile-input corpus, and the memory it costs.

It writes the inputs of :mod:`pipeline.engine.fuzz` (mutated PNG/JPEG/PDF bytes, decompression bombs, awkward
pages, names that are not UTF-8, links to nothing or to ``/dev/zero``, a page id that is another file's name)
into one folder and reads it with ``python -m pipeline read`` (2 workers), in a fresh process, with each pool
worker's address space capped by ``engine.worker_memory_mb`` (:data:`DEFAULT_WORKER_MEMORY_MB` when the config
sets none). It reports the inputs tried, the manifest rows, the crashes (``error`` rows, or a read that did not
end with exit 0 or 3), the inputs lost (no manifest row), the sheets merged (one sheet id on two pages that were
read), the files that killed their worker, and the memory of every pool worker.

Memory per worker comes from the kernel's high-water marks in ``/proc/<pid>/status``, read every
:data:`POLL_S` s while the read runs: ``VmHWM`` (peak resident memory) and ``VmPeak`` (peak address space, the
figure the cap bounds). ``resource.getrusage(RUSAGE_CHILDREN)`` cannot give them: the workers are children of the
multiprocessing fork server, not of the process that starts the read, so their ``ru_maxrss`` never reaches it, and
what does is the largest process of the tree, the main one included.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.config import build_settings
from pipeline.engine import parts as pt
from pipeline.engine.bench import children_of
from pipeline.engine.faults import descendants, exceptions, exit_status, proc_stat, role, tracebacks
from pipeline.engine.fuzz import write_fuzz_inputs
from pipeline.engine.pool import WORKER_DIED
from pipeline.engine.settings import EngineSettings
from pipeline.vision import settings as st

log = logging.getLogger(__name__)

WORKERS = 2
PAGE_LIMIT = 4
SEED = 0
#: Cap on each worker's address space when ``engine.worker_memory_mb`` is 0 (no cap): a reader worker maps some
#: 850 MB before it reads anything, and a 200-dpi page needs a few hundred more.
DEFAULT_WORKER_MEMORY_MB = 1536
POLL_S = 0.05
RUN_TIMEOUT_S = 300
#: Exit statuses of a read that ended normally: some page read, or none (every input bad).
READ_ENDED = (0, 3)
KB_PER_MB = 1024
#: ``/proc/<pid>/status`` keys of the peak resident memory and the peak address space.
PEAK_RSS, PEAK_VM = "VmHWM", "VmPeak"


def peaks_kb(pid: int) -> dict[str, int]:
    """``{VmHWM: KB, VmPeak: KB}`` of a live process (empty when it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    values = {line.split(":")[0]: line.split()[1] for line in lines if line.startswith((PEAK_RSS, PEAK_VM))}
    return {k: int(v) for k, v in values.items()}


def fuzz_counts(inputs: list[str], manifest: pd.DataFrame, pages: pd.DataFrame, exit_code: int) -> dict:
    """The corpus figures from the read's ``manifest.csv`` and ``pages.csv``: inputs tried, rows, crashes (``error``
    rows, plus every input when the read itself did not end normally), inputs lost (no manifest row), sheets
    merged (a sheet id on more than one page that was not refused as ``duplicate_id``), files that killed their
    worker, and the statuses of the files and of the pages."""
    crashed = exit_code not in READ_ENDED
    lost = sorted(set(inputs) - set(manifest["path"])) if not crashed else sorted(inputs)
    kept = pages[pages["status"] != st.DUPLICATE_ID]
    return {"inputs": len(inputs), "manifest_rows": len(manifest), "pages_rows": len(pages),
            "crashes": len(inputs) if crashed else int((manifest["status"] == st.ERROR).sum()),
            "inputs_lost": len(lost), "lost": lost,
            "sheets_merged": int(kept["sheet_id"].duplicated().sum()),
            "worker_died": int((manifest["status"] == WORKER_DIED).sum()),
            "statuses": counts(manifest["status"]), "page_statuses": counts(pages["status"])}


def counts(column: pd.Series) -> dict[str, int]:
    """``{value: rows}`` of a status column, most common first."""
    return {str(k): int(v) for k, v in column.value_counts().items()}


def worker_memory(samples: dict[tuple[int, int], dict], limit_mb: int) -> dict:
    """Per-worker peaks from the last ``/proc`` reading of each process (``{(pid, start): {"role", VmHWM,
    VmPeak}}``), against the cap ``limit_mb``; the main process's peak for comparison."""
    workers = [s for s in samples.values() if s["role"] == "worker" and PEAK_VM in s]
    rss = sorted(round(s[PEAK_RSS] / KB_PER_MB, 1) for s in workers)
    vm = [round(s[PEAK_VM] / KB_PER_MB, 1) for s in workers]
    main = [s for s in samples.values() if s["role"] == "main" and PEAK_RSS in s]
    return {"worker_memory_mb": limit_mb, "workers_seen": len(workers), "peak_rss_mb_per_worker": rss,
            "peak_rss_mb_max": max(rss, default=0.0), "peak_address_space_mb_max": max(vm, default=0.0),
            "within_limit": bool(workers) and (not limit_mb or max(vm) <= limit_mb),
            "main_peak_rss_mb": round(main[0][PEAK_RSS] / KB_PER_MB, 1) if main else None}


def sample(pid: int, samples: dict[tuple[int, int], dict]) -> None:
    """Read the peaks of ``pid`` and every process below it into ``samples``, keyed by (pid, start time), so that
    a reused pid never inherits another process's figures."""
    tree = children_of()
    for p in [pid, *descendants(pid, tree)]:
        stat = proc_stat(p)
        if stat is not None:
            entry = samples.setdefault((p, stat[2]), {"role": "main" if p == pid else role(p, stat[1])})
            entry.update(peaks_kb(p))


def read_corpus(folder: Path, run: Path, config: Path, log_path: Path) -> tuple[int, str, dict[tuple[int, int], dict]]:
    """``python -m pipeline read`` of ``folder`` into ``run`` in a fresh process, sampled every :data:`POLL_S` s:
    its exit status, its error output and each process's peaks.

    Raises:
        RuntimeError: the read took longer than :data:`RUN_TIMEOUT_S`.
    """
    samples: dict[tuple[int, int], dict] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with log_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config), "read", str(folder),
                                 "--out", str(run), "--workers", str(WORKERS)], stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            sample(proc.pid, samples)
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"fuzz bench: the read ran past {RUN_TIMEOUT_S} s")
            time.sleep(POLL_S)
    return exit_status(proc.returncode), log_path.read_text(errors="replace"), samples


def measure_fuzz(work: Path, limit_mb: int, seed: int = SEED) -> dict:
    """Write the corpus under ``work``, read it with workers capped at ``limit_mb``, and report (see the module)."""
    inputs = write_fuzz_inputs(work / "fuzz", seed=seed, max_pdf_pages=PAGE_LIMIT)
    config = work / "fuzz.yaml"
    config.write_text(f"engine: {{worker_memory_mb: {limit_mb}}}\nread: {{max_pdf_pages: {PAGE_LIMIT}}}\n",
                      encoding="utf-8")
    start = time.perf_counter()
    code, text, samples = read_corpus(work / "fuzz", work / "run", config, work / "read.log")
    seconds = round(time.perf_counter() - start, 1)
    manifest_path, pages_path = work / "run" / pt.MANIFEST_FILE, work / "run" / "pages.csv"
    manifest = pd.read_csv(manifest_path, keep_default_na=False) if manifest_path.is_file() else \
        pd.DataFrame(columns=pt.MANIFEST_COLUMNS)
    pages = pd.read_csv(pages_path, keep_default_na=False) if pages_path.is_file() else \
        pd.DataFrame(columns=["sheet_id", "status"])
    return {"seed": seed, "workers": WORKERS, "max_pdf_pages": PAGE_LIMIT, "exit_code": code, "seconds": seconds,
            "tracebacks": tracebacks(text), "exceptions": exceptions(text),
            **fuzz_counts([pt.printable(p) for p in inputs], manifest, pages, code),
            "memory": worker_memory(samples, limit_mb)}


def run_bench(config: dict, quick: bool) -> dict:
    """The fuzz figures (``quick`` changes nothing: the corpus is small already)."""
    limit = build_settings(EngineSettings, "engine", config).worker_memory_mb or DEFAULT_WORKER_MEMORY_MB
    with tempfile.TemporaryDirectory() as tmp:
        result = measure_fuzz(Path(tmp), limit)
    log.info("fuzz: %d inputs, %d crashes, %d lost, %d merged, worker peak %s MB", result["inputs"],
             result["crashes"], result["inputs_lost"], result["sheets_merged"], result["memory"]["peak_rss_mb_max"])
    return result
