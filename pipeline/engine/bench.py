"""Scale benchmark (``python -m pipeline bench --only scale``): end-to-end throughput, speed-up, memory, fuzz.

Generates N synthetic 200-dpi sheets (generation is not timed), then times read (1 and 2 workers), recognise
and audit on them, projects the time for 53k and 500k sheets from the measured rate, records the peak RSS of
this process and of its children after each batch size, reads the fuzz inputs, and kills and resumes a read.
Every figure is measured; nothing is a target.
"""

from __future__ import annotations

import logging
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.config import CURRENT_MODEL
from pipeline.engine import parts as pt
from pipeline.engine.fuzz import write_fuzz_inputs
from pipeline.vision import settings as st

log = logging.getLogger(__name__)

DPI = 200
SEED = 7
ARCHIVE_SHEETS, NATIONAL_SHEETS = 53_000, 500_000
FULL_SIZES, QUICK_SIZES = (200, 1000), (6, 12)
FUZZ_PAGE_LIMIT = 4
KILL_AFTER_PARTS = 2
POLL_S = 0.05


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest finished child, in MB (Linux reports KB)."""
    return {"self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def _timed(step) -> float:
    start = time.perf_counter()
    step()
    return round(time.perf_counter() - start, 2)


def end_to_end(sheets: Path, work: Path, n: int) -> dict:
    """Time read with 1 and 2 workers, then recognise and audit, on ``n`` sheets."""
    from pipeline.audit.audit import run_audit
    from pipeline.audit.settings import AuditSettings
    from pipeline.model.recognise import recognise_run
    from pipeline.model.settings import RecogniseSettings
    from pipeline.vision import ReadSettings, read_batch

    read1 = _timed(lambda: read_batch([sheets], work / "run1", ReadSettings(workers=1, dpi=DPI)))
    read2 = _timed(lambda: read_batch([sheets], work / "run2", ReadSettings(workers=2, dpi=DPI)))
    recog = _timed(lambda: recognise_run(work / "run2", CURRENT_MODEL, RecogniseSettings()))
    audit = _timed(lambda: run_audit(work / "run2", work / "processed", AuditSettings(), None))
    total = read2 + recog + audit
    rate = n / total
    return {"sheets": n, "seconds": {"read_1_worker": read1, "read_2_workers": read2, "recognise": recog,
                                     "audit": audit, "total_2_workers": round(total, 2)},
            "sheets_per_s": round(rate, 2), "read_speedup_1_to_2": round(read1 / read2, 2),
            "projected_hours": {"53k": round(ARCHIVE_SHEETS / rate / 3600, 2),
                                "500k": round(NATIONAL_SHEETS / rate / 3600, 2)},
            "peak_rss": peak_rss_mb()}


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
    from pipeline.synth import SynthSettings, generate_batch

    sizes = QUICK_SIZES if quick else FULL_SIZES
    result: dict = {"dpi": DPI, "note": "10k sheets not run: about 30 min on this 2-core machine" if not quick
                    else "quick: tiny batches"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in sizes:
            batch = generate_batch(SynthSettings(sheets=n, seed=SEED, dpi=DPI, gallery_sheets=1), work / f"syn{n}")
            result[f"batch_{n}"] = end_to_end(batch / "sheets", work / f"e2e{n}", n)
        result["fuzz"] = fuzz(work)
        result["kill_and_resume"] = kill_and_resume(work / f"syn{sizes[-1]}" / "sheets", work, sizes[-1])
    return result
