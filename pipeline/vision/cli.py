"""``python -m pipeline read SCANS... --out DIR [--form A.yaml [--form B.yaml ...]]``: register scans and cut every
count into MNIST-style digits; with several forms, each page is read with the one that registers best."""

from __future__ import annotations

import argparse
from dataclasses import replace
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
    p.add_argument("--template", "--form", dest="templates", type=str, metavar="TEMPLATE", action="append",
                   help="form template YAML (default: config read.templates or read.template, else the packaged "
                        "acta); e.g. "
                        "pipeline/forms/templates/c1_2014_lampiran.yaml. Give it several times for a batch of "
                        "several forms: each page is read with the template that registers best, named in the "
                        "page_type column of pages.csv (a page two templates fit about as well is "
                        "template_uncertain and not read)")
    p.set_defaults(func=_cmd_read)


def read_templates(given: list[str] | None, settings: ReadSettings) -> tuple[str, ...]:
    """The form templates ``read`` reads with: ``--form`` (repeated) when given, else the config's
    ``read.templates``, else its ``read.template``; none is the packaged acta (as ``python -m pipeline run``)."""
    return tuple(str(f) for f in given or ()) or settings.forms


def _cmd_read(args: argparse.Namespace, config: dict) -> int:
    import pandas as pd

    from pipeline.vision.batch import read_batch  # OpenCV, pandas: loaded only when pages are read

    settings = build_settings(ReadSettings, "read", config, workers=args.workers, dpi=args.dpi)
    forms = read_templates(args.templates, settings)
    settings = replace(settings, template=forms[0] if len(forms) == 1 else None, templates=())
    out = read_batch(args.scans, args.out, settings, engine_from_args(args, config),
                     templates=forms if len(forms) > 1 else ())
    pages = pd.read_csv(out / "pages.csv", keep_default_na=False)
    counts = pages["status"].value_counts()
    print(f"read {len(pages)} page(s) into {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if len(forms) > 1:
        types = pages.loc[pages["page_type"] != "", "page_type"].value_counts()
        print("  page types: " + (", ".join(f"{k} {v}" for k, v in types.items()) or "none"))
    for row in pages[pages["status"] != OK].itertuples():
        print(f"  {row.sheet_id}: {row.status}: {row.reason}")
    return int(ExitCode.ok if (pages["status"] == OK).any() else ExitCode.input_file)
