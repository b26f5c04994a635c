"""``python -m pipeline form``: render a printable blank form."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.forms.render import render_blank, save_form
from pipeline.forms.template import DEFAULT_TEMPLATE, load_template


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("form", help="render the blank tally-sheet form as PNG or PDF")
    p.add_argument("--out", type=Path, required=True, help="output file (.png, .jpg or .pdf)")
    p.add_argument("--dpi", type=float, default=300, help="resolution (default 300)")
    p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="form template YAML")
    p.set_defaults(func=_cmd_form)


def _cmd_form(args: argparse.Namespace, config: dict) -> int:
    out = save_form(render_blank(load_template(args.template), args.dpi), args.out, args.dpi)
    print(f"wrote {out}")
    return 0
