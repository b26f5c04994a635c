"""``python -m pipeline form``: render a printable blank form; ``python -m pipeline template init``: a first template
found on a reference scan (:mod:`pipeline.forms.init`); ``python -m pipeline template check``: see whether a
template fits some scans (:mod:`pipeline.vision.check`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.forms.template import DEFAULT_TEMPLATE, load_template


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("form", help="render the blank tally-sheet form as PNG or PDF")
    p.add_argument("--out", type=Path, required=True, help="output file (.png, .jpg or .pdf)")
    p.add_argument("--dpi", type=float, default=300, help="resolution (default 300)")
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="form template YAML")
    p.set_defaults(func=_cmd_form)
    t = sub.add_parser("template", help="work with form templates (make one from a reference scan, check one)")
    actions = t.add_subparsers(dest="action", required=True)
    i = actions.add_parser("init", help="find the boxes and combs on a reference scan and write a first template")
    i.add_argument("reference", type=Path, help="a clean scan of the form (blank or filled)")
    i.add_argument("--out", type=Path, required=True, help="template YAML to write")
    i.add_argument("--dpi", type=float, help="the scan's resolution (default: guessed from its size as A4)")
    i.add_argument("--name", help="the template's name (default: the file name of --out)")
    i.add_argument("--overlay", type=Path, help="overlay PNG with every field numbered (default: OUT_overlay.png)")
    i.add_argument("--min-boxes", type=int, default=2, help="fewest boxes in a row that make a field (default 2)")
    i.set_defaults(func=_cmd_template_init)
    c = actions.add_parser("check", help="register scans with a template and draw its boxes over each page")
    c.add_argument("template", type=Path, help="form template YAML")
    c.add_argument("scans", nargs="+", type=Path, metavar="SCANS", help="scan files or folders")
    c.add_argument("--out", type=Path, required=True, help="folder for the overlays and check.csv")
    c.add_argument("--dpi", type=float, help="reading resolution in dpi (default 200)")
    c.set_defaults(func=_cmd_template_check)


def _cmd_form(args: argparse.Namespace, config: dict) -> int:
    from pipeline.forms.render import render_blank, save_form  # OpenCV: loaded only when a form is drawn

    out = save_form(render_blank(load_template(args.template), args.dpi), args.out, args.dpi)
    print(f"wrote {out}")
    return 0


def _cmd_template_init(args: argparse.Namespace, config: dict) -> int:
    from pipeline.forms.init import init_template  # OpenCV: loaded only when a template is made

    print(init_template(args.reference, args.out, args.dpi, args.name, args.overlay, args.min_boxes))
    return 0


def _cmd_template_check(args: argparse.Namespace, config: dict) -> int:
    from pipeline.config import build_settings
    from pipeline.errors import ExitCode
    from pipeline.vision.check import check_template
    from pipeline.vision.settings import OK, ReadSettings

    settings = build_settings(ReadSettings, "read", config, workers=1, dpi=args.dpi, template=str(args.template))
    rows = check_template(load_template(args.template), args.scans, args.out, settings)
    for row in rows:
        score = f"score {row['registration_score']:.2f}" if row["status"] == OK else row["reason"]
        print(f"{row['sheet_id']}: {row['status']}: {score}")
    print(f"wrote {len(rows)} page(s) to {args.out / 'check.csv'}")
    return int(ExitCode.ok if any(r["status"] == OK for r in rows) else ExitCode.input_file)
