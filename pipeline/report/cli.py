"""Sub-command of the report stage: ``python -m pipeline report PROCESSED --out reports``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import config as cfg
from pipeline.config import build_settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser("report", help="write the static HTML report of an audited batch")
    p.add_argument("processed", type=Path, help="audit output folder (data/processed/<run>)")
    p.add_argument("--out", type=Path, default=cfg.REPORTS_DIR, help="report folder (default: reports/)")
    p.add_argument("--rundir", type=Path, help="run folder of read/recognise (default: found from the audit tables, "
                                               "else data/interim/<run>)")
    p.add_argument("--truth", type=Path, help="truth.csv of a synthetic batch (default: data/synthetic/<run>/truth.csv "
                                              "when it covers every sheet)")
    p.add_argument("--models", type=Path, default=cfg.MODELS_DIR, help="models folder for the model page")
    p.add_argument("--link-scans", action="store_true", help="link to the scans in the run folder instead of copying")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace, config: dict) -> int:
    from pipeline.report.build import ReportSettings, build_report

    settings = build_settings(ReportSettings, "report", config, copy_scans=False if args.link_scans else None)
    index = build_report(args.processed, args.out, args.rundir, truth=args.truth, models_dir=args.models,
                         settings=settings)
    print(f"report: {index}")
    return 0
