"""Benchmark of the report stage: build time and page sizes for a large batch.

A random audit output of ``n`` sheets (tables only, following docs/DATA.md section 4; no scans, so the figure
is the report's own cost, not file copying) is written to a temporary folder and reported. Measured: build
seconds, seconds per sheet, the largest HTML/JS file and the size of the table data. Run with
``python -m pipeline.report.bench [--sheets N]`` (or through ``python -m pipeline bench`` once ``report`` is one
of its stages).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.forms import load_template
from pipeline.report.build import ReportSettings, build_report

FULL_SHEETS = 50_000
QUICK_SHEETS = 2_000
SEED = 0
FLAG_RATE = 0.2
RULES = ("votes_add_up", "ballots_add_up", "alteration", "low_confidence", "page_not_read")
SEVERITIES = ("info", "low", "medium", "high")
VERDICTS = ("inconsistent", "needs_review", "altered", "suspicious")


def random_sheets(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` sheets with ids, every count and its confidence, ticks, status and scores."""
    template = load_template()
    table = {"sheet_id": [f"acta-{i:06d}" for i in range(n)], "status": rng.choice(["ok"] * 30 + ["unreadable"], n),
             "state": rng.integers(1, 33, n), "district": rng.integers(1, 41, n), "section": rng.integers(1, 9999, n),
             "station": rng.integers(1, 99, n)}
    for f in template.fields_of_kind("count"):
        table[f.name] = rng.integers(0, 400, n)
        table[f"{f.name}_conf"] = rng.beta(20, 1, n)
    for party in template.parties:
        table[f"rep_{party}"] = rng.integers(0, 2, n)
    table["alteration_score"] = rng.random(n)
    table["suspicion"] = rng.random(n)
    return pd.DataFrame(table)


def random_flags(sheets: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """About :data:`FLAG_RATE` flags per sheet, with reasons and JSON evidence."""
    ids = rng.choice(sheets["sheet_id"], int(len(sheets) * FLAG_RATE))
    return pd.DataFrame({"sheet_id": ids, "fields": "total_votes;pri", "rule": rng.choice(RULES, len(ids)),
                         "severity": rng.choice(SEVERITIES, len(ids)), "verdict": rng.choice(VERDICTS, len(ids)),
                         "reason": "parties add up to 301 but the total says 310",
                         "evidence": json.dumps({"sum_of_parties": 301, "total_votes": 310})})


def write_audit(folder: Path, n: int, seed: int = SEED) -> Path:
    """A random audit output folder of ``n`` sheets; returns it."""
    rng = np.random.default_rng(seed)
    sheets = random_sheets(n, rng)
    flags = random_flags(sheets, rng)
    sheets["n_flags"] = sheets["sheet_id"].map(flags["sheet_id"].value_counts()).fillna(0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    sheets.to_parquet(folder / "sheets.parquet")
    flags.to_parquet(folder / "flags.parquet")
    return folder


def measure(n: int) -> dict:
    """Build the report of ``n`` random sheets and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        processed = write_audit(Path(tmp) / "processed" / "bench", n)
        out = Path(tmp) / "report"
        start = time.perf_counter()
        build_report(processed, out, models_dir=Path(tmp) / "models", settings=ReportSettings())
        seconds = time.perf_counter() - start
        pages = [p for p in out.rglob("*") if p.suffix in (".html", ".js")]
        largest = max(pages, key=lambda p: p.stat().st_size)
        data_bytes = sum(p.stat().st_size for p in (out / "data").glob("sheets-*.js"))
        return {"sheets": n, "seconds": round(seconds, 1), "ms_per_sheet": round(1000 * seconds / n, 2),
                "largest_page": str(largest.relative_to(out)), "largest_page_bytes": largest.stat().st_size,
                "index_bytes": (out / "index.html").stat().st_size, "table_data_bytes": data_bytes,
                "table_chunks": len(list((out / "data").glob("sheets-*.js")))}


def run_bench(config: dict, quick: bool) -> dict:
    """Entry point of ``python -m pipeline bench``: the report of 50,000 sheets (2,000 with ``quick``)."""
    return measure(QUICK_SHEETS if quick else FULL_SHEETS)


def main(argv: list[str] | None = None) -> None:
    """Command line: measure one size and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sheets", type=int, default=QUICK_SHEETS)
    print(json.dumps(measure(parser.parse_args(argv).sheets), indent=2))


if __name__ == "__main__":
    main()
