"""Scale benchmark (``python -m pipeline bench --only scale``): throughput, speed-up, peak memory, fuzz.

For each batch size (config section ``scale_bench``; 1k and 10k sheets by default) it generates synthetic
200-dpi sheets (not timed; optionally kept in a cache folder), then runs ``read`` (2 workers), ``recognise`` and
``audit`` each as its own ``python -m pipeline`` process, exactly as a user would, recording its wall time and its
peak memory: the peaks of the summed resident memory of its process tree (workers included) and of its largest
process, sampled every ``poll_s``. Fresh processes keep one stage's or one size's memory
out of the next one's figure. At the ``timed_sizes`` the read also runs with 1 worker (the speed-up). The time
for 53k and 500k sheets is projected from each size's measured rate; it then reads the fuzz inputs and kills and
resumes a read. Every figure is measured; nothing is a target.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.config import CURRENT_MODEL, build_settings
from pipeline.engine import parts as pt
from pipeline.engine.fuzz import write_fuzz_inputs
from pipeline.engine.settings import ScaleBenchSettings
from pipeline.vision import settings as st

log = logging.getLogger(__name__)

DPI = 200
SEED = 7
ARCHIVE_SHEETS, NATIONAL_SHEETS = 53_000, 500_000
QUICK = ScaleBenchSettings(sizes=(6, 12), timed_sizes=(6,))
FUZZ_PAGE_LIMIT = 4
KILL_AFTER_PARTS = 2
POLL_S = 0.05
KB_PER_MB = 1024
#: Lines of a failed stage's error output quoted in the exception.
ERROR_TAIL_LINES = 20


def children_of() -> dict[int, list[int]]:
    """``{pid: [child pids]}`` of every process visible in ``/proc`` (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the command name may hold spaces and brackets
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def rss_kb(pid: int) -> int:
    """Resident memory of one process in KB (0 when it has ended)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """Resident memory of ``pid`` and all its descendants in KB: their sum (shared pages count once per process)
    and the largest single process's."""
    tree, todo, sizes = children_of(), [pid], []
    while todo:
        current = todo.pop()
        sizes.append(rss_kb(current))
        todo += tree.get(current, [])
    return sum(sizes), max(sizes)


def run_stage(args: list[str], log_path: Path, poll_s: float) -> dict:
    """Run ``python -m pipeline ARGS`` in a fresh process: wall seconds, peak memory of its process tree and of its
    largest process, both sampled every ``poll_s``, and the largest process's peak in the first and in the second
    half of the run (memory that grows with the sheets done peaks later; a flat stage peaks alike in both).
    (The child's ``ru_maxrss`` is no use here: Linux counts in it this process's memory at the fork.)

    Raises:
        RuntimeError: the stage failed (its error output ends the message).
    """
    start = time.perf_counter()
    samples: list[tuple[float, int, int]] = []  # (seconds, tree KB, largest process KB)
    with log_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            samples.append((time.perf_counter() - start, *tree_rss_kb(proc.pid)))
            time.sleep(poll_s)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-ERROR_TAIL_LINES:])
        raise RuntimeError(f"`python -m pipeline {' '.join(args)}` exited with {proc.returncode}:\n{tail}")
    seconds = time.perf_counter() - start
    halves = [[largest for t, _, largest in samples if (t < seconds / 2) == first] for first in (True, False)]
    return {"seconds": round(seconds, 2), "peak_tree_mb": _mb(max((tree for _, tree, _ in samples), default=0)),
            "peak_process_mb": _mb(max((largest for *_, largest in samples), default=0)),
            "peak_process_first_half_mb": _mb(max(halves[0], default=0)),
            "peak_process_second_half_mb": _mb(max(halves[1], default=0))}


def _mb(kb: int) -> float:
    return round(kb / KB_PER_MB, 1)


def batch_stages(sheets: Path, work: Path, n: int, timed: bool, poll_s: float) -> dict:
    """Read (2 workers; also 1 worker when ``timed``), recognise and audit ``n`` sheets, each in its own process."""
    run, stages = work / "run", {}
    if timed:
        stages["read_1_worker"] = run_stage(["read", str(sheets), "--out", str(work / "run1"), "--workers", "1",
                                             "--dpi", str(DPI)], work / "read1.log", poll_s)
    stages["read_2_workers"] = run_stage(["read", str(sheets), "--out", str(run), "--workers", "2",
                                          "--dpi", str(DPI)], work / "read2.log", poll_s)
    stages["recognise"] = run_stage(["recognise", str(run), "--model", str(CURRENT_MODEL)], work / "recognise.log",
                                    poll_s)
    stages["audit"] = run_stage(["audit", str(run), "--out", str(work / "processed")], work / "audit.log", poll_s)
    total = sum(stages[k]["seconds"] for k in ("read_2_workers", "recognise", "audit"))
    rate = n / total
    result = {"sheets": n, "stages": stages, "total_2_workers_s": round(total, 2), "sheets_per_s": round(rate, 2),
              "projected_hours": {"53k": round(ARCHIVE_SHEETS / rate / 3600, 2),
                                  "500k": round(NATIONAL_SHEETS / rate / 3600, 2)},
              "peak_tree_mb": max(v["peak_tree_mb"] for v in stages.values())}
    if timed:
        result["read_speedup_1_to_2"] = round(stages["read_1_worker"]["seconds"]
                                              / stages["read_2_workers"]["seconds"], 2)
    return result


def synthetic_batch(n: int, folder: Path) -> Path:
    """The sheets of an ``n``-sheet batch in ``folder``, generated unless a complete one is already there."""
    from pipeline.synth import SynthSettings, generate_batch

    sheets = folder / "sheets"
    if not (folder / "truth.csv").is_file() or sum(1 for _ in sheets.glob("*.jpg")) != n:
        generate_batch(SynthSettings(sheets=n, seed=SEED, dpi=DPI, gallery_sheets=1), folder)
    return sheets

def fuzz(work: Path) -> dict:
    """Read the fuzz inputs; a crash is an exception out of the read or an ``error`` row."""
    from pipeline.vision import ReadSettings, read_batch

    inputs = write_fuzz_inputs(work / "fuzz", max_pdf_pages=FUZZ_PAGE_LIMIT)
    try:
        read_batch([work / "fuzz"], work / "fuzz_run", ReadSettings(workers=2, max_pdf_pages=FUZZ_PAGE_LIMIT))
    except Exception as exc:  # measured, not hidden: the whole batch crashed
        return {"inputs": len(inputs), "crashes": len(inputs), "error": f"{type(exc).__name__}: {exc}"}
    manifest = pd.read_csv(work / "fuzz_run" / pt.MANIFEST_FILE)
    return {"inputs": len(inputs), "rows": len(manifest), "crashes": int((manifest["status"] == st.ERROR).sum()),
            "statuses": manifest["status"].value_counts().to_dict()}


def kill_and_resume(sheets: Path, work: Path, n: int) -> dict:
    """SIGKILL a read once some parts exist, resume it, count sheets lost, duplicated and re-read."""
    from pipeline.vision import ReadSettings, read_batch

    run = work / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "read", str(sheets), "--out", str(run),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and len(list((run / pt.PARTS_DIR).glob("*.npz"))) < KILL_AFTER_PARTS:
        time.sleep(POLL_S)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in (run / pt.PARTS_DIR).glob("*.npz")}
    read_batch([sheets], run, ReadSettings(workers=2, dpi=DPI))
    pages = pd.read_csv(run / "pages.csv")
    redone = sum((run / pt.PARTS_DIR / name).stat().st_mtime_ns != t for name, t in before.items())
    return {"sheets": n, "killed_mid_run": killed_mid_run, "parts_at_kill": len(before),
            "sheets_lost": n - pages["sheet_id"].nunique(), "duplicate_rows": int(pages["sheet_id"].duplicated().sum()),
            "finished_sheets_redone": redone}


def run_bench(config: dict, quick: bool) -> dict:
    """Every figure of the scale benchmark (``quick``: tiny batches, a smoke test of the benchmark)."""
    s = QUICK if quick else build_settings(ScaleBenchSettings, "scale_bench", config)
    result: dict = {"dpi": DPI, "sizes": list(s.sizes), "timed_sizes": list(s.timed_sizes),
                    "memory": "peak_tree_mb: summed RSS of the stage's process tree (workers included); "
                              "peak_process_mb: RSS of its largest process, also over the first and the second "
                              f"half of the run; sampled every {s.poll_s} s in a fresh process per stage and size"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = Path(s.batch_cache) if s.batch_cache and not quick else work
        for n in s.sizes:
            sheets = synthetic_batch(n, cache / f"syn{n}")
            (work / f"e2e{n}").mkdir()
            result[f"batch_{n}"] = batch_stages(sheets, work / f"e2e{n}", n, n in s.timed_sizes, s.poll_s)
            log.info("scale %d sheets: %s", n, result[f"batch_{n}"])
        result["fuzz"] = fuzz(work)
        smallest = min(s.sizes)
        result["kill_and_resume"] = kill_and_resume(cache / f"syn{smallest}" / "sheets", work, smallest)
    return result
