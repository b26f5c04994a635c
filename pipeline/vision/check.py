"""``python -m pipeline template check TEMPLATE SCAN... --out DIR``: does a template fit these scans?

Each scan is read with the template; for each page an overlay PNG shows the registered page with every field's
boxes where the reader cut them (after snapping onto the printed walls), each box coloured by its decision
(green a digit, blue empty, magenta a filler mark, red ambiguous) and the field's name, under a header line with
the registration score. ``check.csv`` lists every page with its status, score, line agreement and reason, so a
page that does not register says why.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from pipeline.forms.template import Template
from pipeline.vision import settings as st
from pipeline.vision.loading import discover_scans, load_pages
from pipeline.vision.page import PageRead, read_page
from pipeline.vision.settings import ReadSettings

#: Box colours (BGR) by decision, and for the field names and header.
COLOURS = {st.BOX_DIGIT: (0, 160, 0), st.BOX_EMPTY: (200, 80, 0), st.BOX_AMBIGUOUS: (0, 0, 220)}
FILLER_COLOUR, TEXT_COLOUR = (200, 0, 200), (0, 0, 200)
#: Height (px) of the header band written above the page.
HEADER_PX = 40
CHECK_COLUMNS = ["sheet_id", "source", "status", "registration_score", "line_agreement", "flipped", "reason",
                 "overlay"]


def overlay(read: PageRead) -> np.ndarray:
    """The registered page in colour with the field boxes, their decisions and names, under a header line."""
    page = cv2.cvtColor(read.registered, cv2.COLOR_GRAY2BGR)
    named: set[str] = set()
    for c in read.crops:
        if c.box < 0:
            continue
        colour = FILLER_COLOUR if c.filler else COLOURS.get(c.box_status, TEXT_COLOUR)
        cv2.rectangle(page, (c.box_x0, c.box_y0), (c.box_x1 - 1, c.box_y1 - 1), colour, 2)
        if c.field not in named:
            named.add(c.field)
            cv2.putText(page, c.field, (c.box_x0, max(12, c.box_y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        TEXT_COLOUR, 2)
    header = np.full((HEADER_PX, page.shape[1], 3), 255, np.uint8)
    text = (f"{read.sheet_id}: score {read.score:.2f}, line agreement {read.line_agreement:.2f}"
            f"{', turned 180' if read.flipped else ''}")
    cv2.putText(header, text, (8, HEADER_PX - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, TEXT_COLOUR, 2)
    return np.vstack([header, page])


def check_template(template: Template, scans: list[Path | str], out: Path,
                   settings: ReadSettings | None = None) -> list[dict]:
    """Read every page of ``scans`` with ``template``, write an overlay per registered page and ``check.csv`` into
    ``out``, and return the rows of ``check.csv``."""
    settings = settings or ReadSettings()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in discover_scans(scans):
        for scan in load_pages(path, settings):
            row = {"sheet_id": scan.sheet_id, "source": scan.source, "status": scan.status,
                   "registration_score": 0.0, "line_agreement": 0.0, "flipped": False, "reason": scan.reason,
                   "overlay": ""}
            if scan.image is not None:
                read = read_page(scan.image, scan.sheet_id, settings, template)
                row.update(status=read.status, registration_score=read.score, line_agreement=read.line_agreement,
                           flipped=read.flipped, reason=read.reason)
                if read.status == st.OK:
                    name = f"{scan.sheet_id}.png"
                    cv2.imwrite(str(out / name), overlay(read))
                    row["overlay"] = name
            rows.append(row)
    with (out / "check.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CHECK_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows
