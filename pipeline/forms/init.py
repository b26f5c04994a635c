"""``python -m pipeline template init REFERENCE --out my_form.yaml``: a first template found on a reference scan.

Steps (OpenCV; every length is in millimetres, turned into pixels with the reference's resolution, given or
guessed from its size as an A4 page):

1. **Ink**: an adaptive threshold (mean of a ``INK_WINDOW_MM`` window, ``INK_OFFSET`` grey levels darker), so a
   tinted watermark or uneven lighting stays paper.
2. **Rules**: the long horizontal and vertical strokes, kept by a morphological opening with a line ``RULE_MM``
   long (text, handwriting and dotted leader lines do not survive it), joined and thickened by one pixel.
3. **Cells**: the connected regions of paper the rules enclose (4-connected, not touching the image's edge) that
   are box-sized (``BOX_MM`` on each side, height / width in ``BOX_ASPECT``) and fill at least ``CELL_FILL`` of
   their bounding rectangle (text or a digit inside a box only takes a little of it). A table cell, a comb's box
   and a free-standing box are all such regions.
4. **Fields**: cells on one row (tops and heights within ``ROW_TOLERANCE`` of the box height) of similar width
   (``WIDTH_RATIO``), each within ``GAP_RATIO`` of a box width of the next, make one field, left to right; a group
   of fewer than ``min_boxes`` cells (a table's number column, a title box) is not a field. A group whose boxes
   share their walls and have equal widths is written as a ``comb`` with ``split``; any other as ``boxes``.
   Rectangles include the printed walls (half the gap between neighbouring cells, or ``WALL_PX``, around each).
   A row is cut where the table's header cells above it change (:func:`split_at_columns`: men / women / total
   combs side by side under three column headers become three fields).

The template is written in the reference-image format (:mod:`pipeline.forms.reference`) with placeholder names
``field_01``, ``field_02`` ... (top to bottom, then left to right), kind ``count``, and an overlay PNG that draws
every field with its number, so the user can rename them, delete what is not a field, and run ``template check``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline.errors import ConfigError, InputFileError
from pipeline.forms.reference import DPI_RANGE, MAX_BOXES, split_comb
from pipeline.forms.template import A4_MM, GEOMETRY_REFERENCE, MM_PER_INCH, REGISTER_FEATURES, Template

#: Adaptive threshold: window (mm) and how much darker than the window's mean ink is (grey levels).
INK_WINDOW_MM, INK_OFFSET = 4.0, 15
#: Shortest printed rule kept (mm): shorter than any box side, longer than a handwritten stroke is straight.
RULE_MM = 4.0
#: Sides of a box (mm) and its height / width.
BOX_MM = (3.0, 30.0)
BOX_ASPECT = (0.5, 4.0)
#: Least share of its bounding rectangle a cell's paper covers.
CELL_FILL = 0.6
#: Cells on one row: tops and heights within this share of the box height; widths within this ratio; gaps between
#: neighbours at most this share of a box width.
ROW_TOLERANCE, WIDTH_RATIO, GAP_RATIO = 0.25, 1.35, 0.6
#: Neighbouring cells share a wall when their gap is at most this many pixels (the rule and its thickening).
SHARED_WALL_PX = 8
#: Equal widths, for a comb: widths within this share of their mean.
COMB_WIDTH_SPREAD = 0.12
#: Half a printed wall (pixels) added around a box without a neighbour to measure it from.
WALL_PX = 2.0
#: Fewest boxes a field has by default.
MIN_BOXES = 2
#: Filler marks written into a new template (users of comb forms often fill unused leading boxes).
DEFAULT_FILLER_MARKS = ["x", "dash", "zero"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FoundField:
    """One field found: its boxes ``[x0, y0, x1, y1]`` in reference pixels (printed walls included), left to right,
    and whether they form a comb (shared walls, equal widths)."""

    boxes: tuple[Box, ...]
    comb: bool

    @property
    def rect(self) -> Box:
        """The rectangle around every box."""
        return (min(b[0] for b in self.boxes), min(b[1] for b in self.boxes),
                max(b[2] for b in self.boxes), max(b[3] for b in self.boxes))


def guess_dpi(shape: tuple[int, ...]) -> float:
    """The resolution of a page image of ``shape`` if it is an A4 page."""
    return round(max(shape[:2]) / (max(A4_MM) / MM_PER_INCH), 1)


def rules_mask(grey: np.ndarray, dpi: float) -> np.ndarray:
    """255 on the printed rules (long horizontal and vertical strokes) of ``grey``, thickened by one pixel."""
    px = dpi / MM_PER_INCH
    window = max(3, round(INK_WINDOW_MM * px)) | 1
    ink = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, window, INK_OFFSET)
    length = max(5, round(RULE_MM * px))
    hor = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1)))
    ver = cv2.morphologyEx(ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, length)))
    return cv2.dilate(cv2.bitwise_or(hor, ver), np.ones((3, 3), np.uint8))


def find_cells(grey: np.ndarray, dpi: float, rules: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
    """Box-sized regions of paper enclosed by printed rules (``rules``: :func:`rules_mask`, computed when not
    given), as ``(x, y, w, h)`` of the paper inside the walls."""
    px = dpi / MM_PER_INCH
    rules = rules_mask(grey, dpi) if rules is None else rules
    n, _, stats, _ = cv2.connectedComponentsWithStats(cv2.bitwise_not(rules), connectivity=4)
    height, width = grey.shape[:2]
    lo, hi = BOX_MM[0] * px, BOX_MM[1] * px
    cells = []
    for x, y, w, h, area in stats[1:].tolist():
        if x == 0 or y == 0 or x + w >= width or y + h >= height:
            continue  # the paper around the form
        if not (lo <= w <= hi and lo <= h <= hi and BOX_ASPECT[0] <= h / w <= BOX_ASPECT[1]):
            continue
        if area >= CELL_FILL * w * h:
            cells.append((x, y, w, h))
    return cells


def _same_row(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether cell ``b`` continues the row of cell ``a`` to its right."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    tol = ROW_TOLERANCE * max(ah, bh)
    gap = bx - (ax + aw)
    return (abs(ay - by) <= tol and abs(ah - bh) <= tol and max(aw, bw) <= WIDTH_RATIO * min(aw, bw)
            and -0.2 * min(aw, bw) <= gap <= GAP_RATIO * min(aw, bw))


def group_cells(cells: list[tuple[int, int, int, int]], min_boxes: int = MIN_BOXES) -> list[list]:
    """Cells chained left to right into rows (:func:`_same_row`), each row at most ``MAX_BOXES`` long; rows of
    fewer than ``min_boxes`` cells are dropped. Ordered top to bottom, then left to right."""
    left = sorted(cells, key=lambda c: (c[0], c[1]))
    used: set[int] = set()
    groups = []
    for i, cell in enumerate(left):
        if i in used:
            continue
        chain, used_now = [cell], {i}
        while True:
            nxt = next((j for j, c in enumerate(left) if j not in used and j not in used_now
                        and _same_row(chain[-1], c)), None)
            if nxt is None:
                break
            chain.append(left[nxt])
            used_now.add(nxt)
        used |= used_now
        groups += [chain[k:k + MAX_BOXES] for k in range(0, len(chain), MAX_BOXES)]
    groups = [g for g in groups if len(g) >= min_boxes]
    row_height = np.median([c[3] for g in groups for c in g]) if groups else 1.0
    return sorted(groups, key=lambda g: (round(g[0][1] / (row_height / 2)), g[0][0]))


@dataclass(frozen=True)
class Paper:
    """The regions of paper the rules enclose: a label image (4-connected, label 0 the rules) and each label's
    ``(x, y, w, h, area)``."""

    labels: np.ndarray
    stats: np.ndarray

    @classmethod
    def of(cls, rules: np.ndarray) -> Paper:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.bitwise_not(rules), connectivity=4)
        return cls(labels, stats)

    def touches_edge(self, label: int) -> bool:
        x, y, w, h, _ = self.stats[label].tolist()
        return x == 0 or y == 0 or x + w >= self.labels.shape[1] or y + h >= self.labels.shape[0]


def header_above(paper: Paper, cell: tuple[int, int, int, int], span: tuple[int, int]) -> int:
    """The label of the header cell above ``cell`` (a box of a row spanning ``span`` in x), or 0 when there is none.

    Walks up from the box through the paper regions above it: regions that are boxes of about its size (rows of
    combs stacked in a table) and regions spanning the whole row (a merged row such as "A. DATA PEMILIH", the
    header of a single comb) are passed; the first region narrower than the row but wider than a box is the
    header cell of the box's column; the page around the tables (a region touching the image's edge) or the top
    of the image ends the walk with none.
    """
    x, y, w, h = cell
    col = x + w // 2
    row = y - 1
    tol = max(2, w // 4)
    while row >= 0:
        label = int(paper.labels[row, col])
        if label == 0:  # a rule: step over it
            row -= 1
            continue
        if paper.touches_edge(label):
            return 0
        lx, ly, lw, lh, _ = paper.stats[label].tolist()
        if lx <= span[0] + tol and lx + lw >= span[1] - tol:
            pass  # spans the whole row: a merged row or the comb's own header
        elif not (lw <= WIDTH_RATIO * w and lh <= 2 * h):
            return label  # the header cell of this box's column
        row = ly - 1
    return 0


def split_at_columns(group: list[tuple[int, int, int, int]], paper: Paper) -> list[list]:
    """A row of cells cut where the header cells above it change (:func:`header_above`): a table whose columns
    each hold a comb (men / women / total) gives one row of cells per line, and each column's header tells the
    combs apart. Boxes with no header above stay together."""
    if len(group) < 2:
        return [group]
    span = (group[0][0], group[-1][0] + group[-1][2])
    heads = [header_above(paper, c, span) for c in group]
    parts, start = [], 0
    for k in range(1, len(group)):
        if heads[k] != heads[k - 1]:
            parts.append(group[start:k])
            start = k
    return parts + [group[start:]]


def _field(cells: list[tuple[int, int, int, int]]) -> FoundField:
    """One group of cells as a field: rectangles grown over their walls; a comb when the walls are shared and the
    widths equal."""
    gaps = [b[0] - (a[0] + a[2]) for a, b in zip(cells, cells[1:], strict=False)]
    shared = bool(gaps) and all(g <= SHARED_WALL_PX for g in gaps)
    pad = max(WALL_PX, float(np.median(gaps)) / 2) if shared else WALL_PX
    boxes = tuple((x - pad, y - pad, x + w + pad, y + h + pad) for x, y, w, h in cells)
    widths = np.array([c[2] for c in cells], float)
    comb = shared and float(widths.max() - widths.min()) <= COMB_WIDTH_SPREAD * float(widths.mean())
    if comb:  # one rectangle split evenly, as the template will read it
        x0, y0 = boxes[0][0], min(b[1] for b in boxes)
        x1, y1 = boxes[-1][2], max(b[3] for b in boxes)
        boxes = tuple(split_comb((x0, y0, x1, y1), len(cells)))
    return FoundField(boxes, comb)


def find_fields(grey: np.ndarray, dpi: float, min_boxes: int = MIN_BOXES) -> list[FoundField]:
    """The fields of a reference image (module docstring), boxes clipped to the image."""
    height, width = grey.shape[:2]
    rules = rules_mask(grey, dpi)
    paper = Paper.of(rules)
    groups = [part for group in group_cells(find_cells(grey, dpi, rules), min_boxes)
              for part in split_at_columns(group, paper) if len(part) >= min_boxes]
    out = []
    for group in groups:
        f = _field(group)
        clipped = tuple((max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))
                        for x0, y0, x1, y1 in f.boxes)
        out.append(FoundField(clipped, f.comb))
    return out


def _num(v: float) -> int | float:
    """A coordinate as written: whole pixels when whole, else one decimal."""
    r = round(v, 1)
    return int(r) if r == int(r) else r


def field_spec(name: str, f: FoundField) -> dict:
    """The template mapping of one found field."""
    spec: dict = {"name": name, "kind": "count"}
    if f.comb:
        spec |= {"comb": [_num(v) for v in f.rect], "split": len(f.boxes)}
    else:
        spec["boxes"] = [[_num(v) for v in b] for b in f.boxes]
    return spec


def template_raw(fields: list[FoundField], reference: Path, out: Path, size: tuple[int, int], dpi: float,
                 name: str) -> dict:
    """The template mapping: the reference named relative to the template's folder (``reference_search``)."""
    raw: dict = {"name": name, "geometry": GEOMETRY_REFERENCE, "reference": reference.name}
    ref_dir, out_dir = reference.resolve().parent, out.resolve().parent
    if ref_dir != out_dir:
        try:
            raw["reference_search"] = [os.path.relpath(ref_dir, out_dir)]
        except ValueError:  # another drive
            raw["reference_search"] = [str(ref_dir)]
    raw |= {"reference_size": list(size), "reference_dpi": dpi, "registration": REGISTER_FEATURES,
            "filler_marks": list(DEFAULT_FILLER_MARKS),
            "fields": [field_spec(f"field_{i + 1:02d}", f) for i, f in enumerate(fields)], "rules": []}
    return raw


HEADER = """# Made by `python -m pipeline template init` from {reference}: {n_fields} field(s), {n_boxes} box(es).
# Next: rename the fields (field_01 ... in {overlay}), set each one's kind (count, id, tick, choice) and role
# (candidate, valid, invalid, ...), delete what is not a field, add the form's rules (e.g. "a + b == total"),
# then `python -m pipeline template check {out} SCANS... --out check/`.
"""


def dump_template(raw: dict) -> str:
    """The template as YAML, one field per line."""
    head = {k: v for k, v in raw.items() if k not in ("fields", "rules")}
    text = yaml.safe_dump(head, sort_keys=False, default_flow_style=None, allow_unicode=True)
    lines = ["fields:"] + [f"  - {yaml.safe_dump(f, sort_keys=False, default_flow_style=True, width=10**6).strip()}"
                           for f in raw["fields"]]
    return text + "\n".join(lines) + "\nrules: []\n"


def draw_overlay(grey: np.ndarray, fields: list[FoundField]) -> np.ndarray:
    """The reference in grey with every field's boxes drawn and its number written beside it."""
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    scale = max(0.4, min(grey.shape[:2]) / 1600)
    for i, f in enumerate(fields):
        for x0, y0, x1, y1 in f.boxes:
            cv2.rectangle(img, (round(x0), round(y0)), (round(x1), round(y1)), (0, 170, 0), 2)
        x0, y0, _, _ = f.rect
        label = str(i + 1)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        org = (max(0, round(x0) - tw - 4), max(th + 2, round(y0) + th + 2))
        cv2.rectangle(img, (org[0] - 2, org[1] - th - 2), (org[0] + tw + 2, org[1] + 3), (255, 255, 255), -1)
        cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 220), 2, cv2.LINE_AA)
    return img


@dataclass(frozen=True)
class InitResult:
    """What ``template init`` wrote."""

    template: Path
    overlay: Path
    fields: list[FoundField]
    dpi: float

    def __str__(self) -> str:
        n_boxes = sum(len(f.boxes) for f in self.fields)
        return (f"found {len(self.fields)} field(s), {n_boxes} box(es) at {self.dpi:g} dpi; wrote {self.template} "
                f"and {self.overlay}")


def init_template(reference: Path, out: Path, dpi: float | None = None, name: str | None = None,
                  overlay: Path | None = None, min_boxes: int = MIN_BOXES) -> InitResult:
    """Find the fields of ``reference`` and write a template (``out``) and its overlay (default: ``out`` with
    ``_overlay.png``).

    Raises:
        InputFileError: the reference cannot be read.
        ConfigError: ``dpi`` is out of range, or no field was found.
    """
    grey = cv2.imread(str(reference), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise InputFileError(f"{reference}: cannot read the reference image")
    dpi = float(dpi) if dpi else guess_dpi(grey.shape)
    if not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise ConfigError(f"reference dpi {dpi:g} is outside {DPI_RANGE[0]:g}-{DPI_RANGE[1]:g}; give --dpi")
    fields = find_fields(grey, dpi, min_boxes)
    if not fields:
        raise ConfigError(f"{reference}: no row of {min_boxes} or more boxes found; is it a form with boxes "
                          f"(try --dpi with the scan's real resolution)?")
    out = Path(out)
    overlay = Path(overlay) if overlay else out.with_name(f"{out.stem}_overlay.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay.parent.mkdir(parents=True, exist_ok=True)
    raw = template_raw(fields, Path(reference), out, (grey.shape[1], grey.shape[0]), dpi,
                       name or out.stem.replace("-", "_"))
    header = HEADER.format(reference=Path(reference).name, n_fields=len(fields),
                           n_boxes=sum(len(f.boxes) for f in fields), overlay=overlay.name, out=out)
    out.write_text(header + dump_template(raw), encoding="utf-8")
    if not cv2.imwrite(str(overlay), draw_overlay(grey, fields)):
        raise InputFileError(f"{overlay}: cannot write the overlay")
    return InitResult(out, overlay, fields, dpi)


def template_px_boxes(template: Template) -> list[Box]:
    """Every box of a reference-image template in reference pixels."""
    scale = template.reference_dpi / MM_PER_INCH
    return [(b.x * scale, b.y * scale, (b.x + b.w) * scale, (b.y + b.h) * scale) for f in template.fields
            for b in f.boxes]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


#: A found box matches a template box when their intersection over union is at least this.
MATCH_IOU = 0.5


def compare_boxes(found: list[Box], truth: list[Box]) -> dict:
    """Found / missed / spurious boxes against a template's (one-to-one, best overlap first, ``MATCH_IOU``), and
    the mean overlap of the matched ones."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t, overlaps = set(), set(), []
    for score, i, j in pairs:
        if score < MATCH_IOU:
            break
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        overlaps.append(score)
    return {"template_boxes": len(truth), "found_boxes": len(found), "found": len(used_t),
            "missed": len(truth) - len(used_t), "spurious": len(found) - len(used_f),
            "mean_iou": round(float(np.mean(overlaps)), 3) if overlaps else None}
