"""``python -m pipeline read SCANS... --out DIR``: register scans and cut every count into MNIST-style digits."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import build_settings
from pipeline.engine.settings import add_engine_arguments, engine_from_args
from pipeline.errors import ExitCode
from pipeline.vision.settings import OK, ReadSettings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``read`` sub-command."""
    p = sub.add_parser("read", help="register scanned tally sheets and cut their digits (docs/DATA.md section 2)")
    p.add_argument("scans", nargs="+", type=Path, metavar="SCANS",
                   help="scan files or folders (searched recursively for png jpg jpeg tif tiff bmp pdf)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write, e.g. data/interim/<run>")
    add_engine_arguments(p)
    p.add_argument("--dpi", type=float, help="reading resolution in dpi (default 200)")
    p.add_argument("--template", "--form", dest="template", type=str, metavar="TEMPLATE",
                   help="form template YAML (default: the packaged acta); e.g. "
                        "pipeline/forms/templates/c1_2014_lampiran.yaml")
    p.set_defaults(func=_cmd_read)


def _cmd_read(args: argparse.Namespace, config: dict) -> int:
    import pandas as pd

    from pipeline.vision.batch import read_batch  # OpenCV, pandas: loaded only when pages are read

    settings = build_settings(ReadSettings, "read", config, workers=args.workers, dpi=args.dpi,
                              template=args.template)
    out = read_batch(args.scans, args.out, settings, engine_from_args(args, config))
    pages = pd.read_csv(out / "pages.csv")
    counts = pages["status"].value_counts()
    print(f"read {len(pages)} page(s) into {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for row in pages[pages["status"] != OK].itertuples():
        print(f"  {row.sheet_id}: {row.status}: {row.reason}")
    return int(ExitCode.ok if (pages["status"] == OK).any() else ExitCode.input_file)
