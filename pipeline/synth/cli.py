"""``python -m pipeline synth``: write a batch of synthetic scanned tally sheets with their ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline import config as cfg
from pipeline.config import build_settings
from pipeline.forms.template import load_template
from pipeline.synth.settings import IMAGE_FORMATS, SynthSettings
from pipeline.synth.styles import STYLE_SETS


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command (other settings come from the ``synth`` section of ``--config``)."""
    p = sub.add_parser("synth", help="generate synthetic scanned tally sheets with ground truth",
                       description="Write N synthetic scans, truth.csv, boxes.csv, manifest.json and gallery.png "
                                   "(see docs/DATA.md). Every other setting: the 'synth' section of --config. "
                                   "--form fills any template, e.g. python -m pipeline synth --form "
                                   "pipeline/forms/templates/c1_2014_lampiran.yaml --sheets 100 --dpi 100 --out "
                                   "data/synthetic/lampiran")
    p.add_argument("--sheets", type=int, help="number of sheets (default 300)")
    p.add_argument("--seed", type=int, help="random seed; the same seed gives byte-identical files (default 1)")
    p.add_argument("--out", type=Path, default=cfg.SYNTHETIC_DIR / "default",
                   help="output folder (default data/synthetic/default)")
    p.add_argument("--dpi", type=int, help="scan resolution (default 200)")
    p.add_argument("--format", dest="image_format", choices=IMAGE_FORMATS,
                   help="jpg (default), png, or pdf (one multi-page sheets.pdf)")
    p.add_argument("--workers", type=int, help="worker processes (default 0 = every core)")
    p.add_argument("--style-set", dest="style_set", choices=STYLE_SETS,
                   help="styles to draw from: classic (default, today's generator), train, heldout or all")
    p.add_argument("--form", "--template", dest="template", type=Path, metavar="TEMPLATE",
                   help="form template YAML to fill (default: the packaged acta); e.g. "
                        "pipeline/forms/templates/c1_2014_lampiran.yaml: its reference image with the boxes "
                        "blanked, counts that obey its rules, filler marks in unused leading boxes; the batch "
                        "gets template.yaml to read it with (read BATCH/sheets --form BATCH/template.yaml)")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace, config: dict) -> int:
    from pipeline.synth.batch import generate_batch  # OpenCV, pandas: loaded only when sheets are made

    settings = build_settings(SynthSettings, "synth", config, sheets=args.sheets, seed=args.seed, dpi=args.dpi,
                              image_format=args.image_format, workers=args.workers, style_set=args.style_set)
    template = load_template(args.template) if args.template else None
    out = generate_batch(settings, args.out, template=template)
    print(f"wrote {settings.sheets} sheets to {out}")
    return 0
