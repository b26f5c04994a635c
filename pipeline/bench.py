"""``python -m pipeline bench``: run every stage's benchmark and merge the figures into ``reports/bench.json``.

Each stage with measurable targets has a ``pipeline.<stage>.bench`` module exposing
``run_bench(config: dict, quick: bool) -> dict``; its result is stored under the stage's key, together with the
machine it ran on. Running one stage (``--only synth``) updates that key and keeps the others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from pipeline import config as cfg
from pipeline.atomic import write_text_atomic

log = logging.getLogger(__name__)

BENCH_STAGES = ("synth", "vision", "model", "audit", "alteration", "report", "scale", "fuzz", "faults", "tables",
                "forms")
BENCH_MODULES = {"scale": "pipeline.engine.bench", "fuzz": "pipeline.engine.fuzz_bench",
                 "faults": "pipeline.engine.faults", "tables": "pipeline.audit.table_bench",
                 "alteration": "pipeline.audit.alteration_bench"}


def machine_info() -> dict:
    """What the figures were measured on."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def merge_into(path: Path, stage: str, result: dict) -> dict:
    """Store ``result`` under ``stage`` in the JSON file at ``path`` (atomically), keeping other stages."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[stage] = result
    data["machine"] = machine_info()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float))
    return data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed and accuracy targets; writes reports/bench.json")
    p.add_argument("--only", choices=BENCH_STAGES, action="append", help="run only these stages (repeatable)")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test of the benchmark itself")
    p.add_argument("--out", type=Path, default=cfg.BENCH_JSON, help="JSON file to update")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace, config: dict) -> int:
    for stage in args.only or BENCH_STAGES:
        module = importlib.import_module(BENCH_MODULES.get(stage, f"pipeline.{stage}.bench"))
        start = time.perf_counter()
        result = module.run_bench(config, quick=args.quick)
        result["bench_seconds"] = round(time.perf_counter() - start, 1)
        merge_into(args.out, stage, result)
        log.info("bench %s: %s", stage, json.dumps(result, default=float)[:500])
    print(f"wrote {args.out}")
    return 0
