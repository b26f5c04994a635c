"""From per-digit reads to per-field numbers (pure pandas/NumPy, no Keras).

Rules (docs/DATA.md section 3):

* A field's digits are its non-empty crops in reading order: boxes left to right (``box``, then ``slot`` for a box
  split in two). Empty boxes contribute nothing, so leading empty boxes are just a shorter number.
* Crops with ``box < 0`` were written beside the boxes (``-1, -2, ...`` from left to right): a crossed-out count
  and its replacement. When a field has any, the replacement is the value read and the boxes' reading is kept
  as ``struck_text``.
* A box ``ambiguous`` because a strike-through seemed to cross it (``struck`` in the crops) in a field with
  nothing written beside the boxes is read as the digit the recogniser sees there, and the field needs review.
  Why: on sheets in styles kept out of tuning, four in five fields with boxes taken for struck held no
  cross-out (large digits filling their box, a slanted 1 running corner to corner, nothing beside) and came
  out NA; read this way, four in five of them are right (362 of 454 fields, 600 sheets), while 98 of 101
  cross-outs kept their replacement beside the boxes (:func:`is_struck`).
* An ``ambiguous`` crop shows as ``?`` in ``text``; the value is the best complete reading only when that reading
  is at least as probable as the reject threshold, else NA.
* ``alternatives`` are the most probable complete readings over every label of every digit, each with its
  calibrated probability (``p0`` ... ``p9`` of ``digits_read``): on scanned sheets the true digit of a misread is
  often not even the second choice.
* ``confidence`` is the field's joint probability, the product of its digits' calibrated confidences. A field
  needs review when any digit is below the digit threshold, **or** its joint probability is below the field
  threshold (``recognise.min_field_confidence``; by default the digit threshold): three digits that each just
  pass can still make a field that is wrong more often than a digit may be (:func:`needs_review`). A field with an
  empty box between written ones needs review too: the hole is a digit the reader missed (:func:`has_gap`).
* A field the form says is always written (its ids: :attr:`pipeline.forms.template.Field.always_written`) that
  is read with no digit at all needs review: a blank id is a loss, not a reading (:func:`review_unwritten`).
* **Filler marks** (the ``filler`` column of the crops: an X or dash the reader found in an unused leading box and
  turned into an ``empty`` box, :mod:`pipeline.vision.filler`). Boxes that hold one contribute nothing, like empty
  boxes, so X-X-7 reads 7. A field whose **every** box holds a filler mark (X-X-X, dash-dash-dash) is the
  writer's way of writing zero: it reads ``value`` 0 with ``text`` ``"0"``, no digits, confidence 1 and no review.
  A field with filler marks, no digit and some box left blank (X-X-blank) reads NA and needs review: the writer
  said "no digit" for some boxes and nothing for the rest (:func:`filler_field`). ``n_filler`` counts the field's
  filler boxes. Crops without a ``filler`` column (runs of the acta, older runs) have no filler marks. A filler
  mark in a box the reader first took for struck through (``struck``: an X spans its box like a strike) sends its
  field to review: a struck digit can look like an X.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

#: ``box_status`` values of crops.parquet (docs/DATA.md section 2).
BOX_EMPTY, BOX_DIGIT, BOX_AMBIGUOUS = "empty", "digit", "ambiguous"
UNREADABLE = "?"
#: Column types of fields.parquet (fixed, so an empty table has the same schema as a full one).
FIELD_DTYPES = {"sheet_id": "string", "field": "string", "text": "string", "value": "Int64", "confidence": "float64",
                "n_digits": "int64", "min_digit_confidence": "float64", "needs_review": "bool",
                "alternatives": "string", "replaced": "bool", "struck_text": "string", "n_crops": "int64",
                "n_filler": "int64"}
#: Number of labels a digit can take, and the digits_read columns of their calibrated probabilities.
N_LABELS = 10
LABEL_PROB_COLUMNS = tuple(f"p{label}" for label in range(N_LABELS))
#: The columns of digits_read that a field's reading depends on.
CROP_COLUMNS = ["sheet_id", "field", "box", "slot", "box_status", "label", "confidence", "label2", "confidence2",
                *LABEL_PROB_COLUMNS, "filler", "struck"]
#: What an all-filler field (every box an X or a dash) reads: the writer's zero.
FILLER_ZERO = 0
#: Decimal places kept for probabilities in the alternatives JSON.
PROB_DECIMALS = 6


@dataclass(frozen=True)
class DigitRead:
    """One non-empty crop of a field, in reading order, with its calibrated top-2 and the calibrated probability
    of every label (``probs``, empty when the crop has no image)."""

    label: int | None
    confidence: float
    label2: int | None
    confidence2: float
    ambiguous: bool
    probs: tuple[float, ...] = ()

    @property
    def char(self) -> str:
        """What the crop contributes to ``text``."""
        return UNREADABLE if self.ambiguous or self.label is None else str(self.label)


@dataclass(frozen=True)
class FieldRead:
    """One row of ``fields.parquet``."""

    sheet_id: str
    field: str
    text: str
    value: int | None
    confidence: float
    n_digits: int
    min_digit_confidence: float
    needs_review: bool
    alternatives: str
    replaced: bool
    struck_text: str
    n_crops: int
    n_filler: int = 0


def digit_reads(rows: list, read_struck: bool = False) -> list[DigitRead]:
    """The non-empty crops of ``rows`` (one field's crop records, already in reading order) as :class:`DigitRead`;
    ``read_struck``: a box ambiguous for a strike-through (:func:`is_struck`) counts as the digit read in it."""
    return [DigitRead(_int_or_none(r.label), _float_or(r.confidence, 0.0), _int_or_none(r.label2),
                      _float_or(r.confidence2, 0.0),
                      r.box_status == BOX_AMBIGUOUS and not (read_struck and is_struck(r)), _probs(r))
            for r in rows if r.box_status != BOX_EMPTY]


def taken_for_struck(row) -> bool:
    """Whether the reader took a crop record's box for struck through (the ``struck`` column of the crops; runs
    without it have none)."""
    return bool(getattr(row, "struck", False))


def is_struck(row) -> bool:
    """Whether a crop record is a box the reader found ambiguous because a strike-through seemed to cross it, with
    a digit read in it."""
    return row.box_status == BOX_AMBIGUOUS and taken_for_struck(row) and not pd.isna(row.label)


def _probs(row) -> tuple[float, ...]:
    """The calibrated probability of every label of a crop record; empty when it has no image."""
    probs = tuple(getattr(row, name) for name in LABEL_PROB_COLUMNS)
    return () if any(pd.isna(p) for p in probs) else tuple(float(p) for p in probs)


def _int_or_none(value) -> int | None:
    return None if pd.isna(value) else int(value)


def _float_or(value, default: float) -> float:
    return default if pd.isna(value) else float(value)


def reading_order(rows: list) -> tuple[list, list]:
    """Split one field's crop records into ``(boxes, beside)``, each sorted left to right.

    Boxes sort by ``(box, slot)``; beside crops are numbered -1, -2, ... from the left, so they sort by
    ``(-box, slot)``. Python's sort is stable, so equal keys keep the reader's order.
    """
    boxes = sorted((r for r in rows if r.box >= 0), key=lambda r: (r.box, r.slot))
    beside = sorted((r for r in rows if r.box < 0), key=lambda r: (-r.box, r.slot))
    return boxes, beside


def label_options(d: DigitRead) -> list[tuple[int, float]]:
    """Every label ``d`` may show with its calibrated probability, most likely first (none without an image).

    On scanned sheets the true digit of a misread is often outside the top 2 (17-40% of the misreads at 95-98%
    confidence on two 300-sheet batches), so every label stays a candidate with what the recogniser gives it.
    Labels with probability 0 are left out.
    """
    return sorted(((label, p) for label, p in enumerate(d.probs) if p > 0), key=lambda lp: -lp[1])


def alternatives(digits: list[DigitRead], n: int) -> list[tuple[int, float]]:
    """The ``n`` most probable complete readings from each digit's :func:`label_options`, best first.

    A beam of width ``n`` is exact here: every partial reading is extended by the same choices, so the order of
    partial readings is never reversed by later digits. A digit with no label (no image) leaves no reading.
    """
    if not digits or any(d.label is None for d in digits):
        return []
    beam: list[tuple[str, float]] = [("", 1.0)]
    for d in digits:
        options = label_options(d)
        beam = sorted(((text + str(lab), p * q) for text, p in beam for lab, q in options),
                      key=lambda tp: -tp[1])[:n]
    return [(int(text), prob) for text, prob in beam]


def field_value(digits: list[DigitRead], alts: list[tuple[int, float]], threshold: float) -> int | None:
    """The number read: the digits themselves, or for an ambiguous field the best reading if it is clear enough."""
    if not digits:
        return None
    if not any(d.ambiguous for d in digits):
        return int("".join(d.char for d in digits))
    return alts[0][0] if alts and alts[0][1] >= threshold else None


def has_gap(boxes: list) -> bool:
    """Whether an empty box lies between two written boxes (``boxes``: one field's box crop records in reading
    order). Nobody writes a number with a hole in it; the hole is a digit the reader did not see (faint pencil,
    an erasure), so the number read is short and would otherwise look confident."""
    written = [i for i, r in enumerate(boxes) if r.box_status != BOX_EMPTY]
    return bool(written) and any(r.box_status == BOX_EMPTY for r in boxes[written[0]:written[-1] + 1])


def is_filler(row) -> bool:
    """Whether a crop record is a box the reader found a filler mark in (an ``empty`` box with ``filler`` set)."""
    filler = getattr(row, "filler", "")
    return row.box_status == BOX_EMPTY and isinstance(filler, str) and bool(filler)


def filler_field(boxes: list) -> str:
    """What the filler marks of a field's box records (in reading order, no written digit among them) say:
    ``"zero"`` when every box holds one (the writer's 0), ``"partial"`` when some do and the others are blank,
    ``""`` when there is none."""
    marked = [is_filler(r) for r in boxes]
    if not any(marked):
        return ""
    return "zero" if all(marked) else "partial"


def needs_review(n_crops: int, digits: list[DigitRead], value: int | None, threshold: float,
                 field_threshold: float, gap: bool = False) -> bool:
    """Whether a field goes to review: no crops at all, an ambiguous digit, a digit below ``threshold``, digits
    but no value, a joint probability (product of the digits' confidences) below ``field_threshold``, or an empty
    box between written ones (``gap``)."""
    confs = np.array([d.confidence for d in digits])
    return (n_crops == 0 or gap or any(d.ambiguous for d in digits) or bool((confs < threshold).any())
            or (bool(digits) and value is None) or float(confs.prod()) < field_threshold)


def read_field(sheet_id: str, field: str, rows: list, threshold: float, n_alternatives: int,
               field_threshold: float | None = None) -> FieldRead:
    """Turn one field's crop records (any order) into its :class:`FieldRead`; ``field_threshold`` (default:
    ``threshold``) is the lowest joint probability a field may have without review."""
    boxes, beside = reading_order(rows)
    beside_digits = digit_reads(beside)
    replaced = bool(beside_digits)
    digits = beside_digits if replaced else digit_reads(boxes, read_struck=True)
    n_filler = sum(is_filler(r) for r in boxes)
    confs = np.array([d.confidence for d in digits])
    alts = alternatives(digits, n_alternatives)
    value = field_value(digits, alts, threshold)
    text = "".join(d.char for d in digits)
    joint_threshold = threshold if field_threshold is None else field_threshold
    review = needs_review(len(rows), digits, value, threshold, joint_threshold, gap=not replaced and has_gap(boxes))
    struck_filler = any(is_filler(r) and taken_for_struck(r) for r in boxes)
    review = review or struck_filler or (not replaced and any(is_struck(r) for r in boxes))
    fillers = "" if digits else filler_field(boxes)
    if fillers == "zero":  # X-X-X: the writer's zero
        value, text, alts, review = FILLER_ZERO, str(FILLER_ZERO), [(FILLER_ZERO, 1.0)], struck_filler
    elif fillers == "partial":  # X-X-blank: a digit may be missing
        review = True
    return FieldRead(
        sheet_id=sheet_id, field=field, text=text, value=value,
        confidence=float(confs.prod()), n_digits=len(digits),
        min_digit_confidence=float(confs.min()) if len(confs) else float("nan"), needs_review=review,
        alternatives=json.dumps([[v, round(p, PROB_DECIMALS)] for v, p in alts]), replaced=replaced,
        struck_text="".join(d.char for d in digit_reads(boxes)) if replaced else "", n_crops=len(rows),
        n_filler=n_filler)


def review_unwritten(fields: pd.DataFrame, required: Sequence[str] | Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """``fields`` with every field that must be written (``required``: the form's ids, :attr:`Field.always_written`;
    or each sheet's own, by ``sheet_id``) but was read with no digit and no value marked for review.

    Why: a blank id is not a reading but a loss (a toner band or a faint pen made the reader see empty boxes), and
    a blank read with confidence 1 would otherwise pass as right. A field whose boxes all hold filler marks reads
    0 and is left alone.
    """
    if isinstance(required, Mapping):
        must = pd.Series([f in required.get(s, ()) for s, f in zip(fields["sheet_id"], fields["field"], strict=True)],
                         index=fields.index, dtype=bool)
    else:
        must = fields["field"].isin(list(required))
    blank = must & (fields["n_digits"] == 0) & fields["value"].isna()
    return fields.assign(needs_review=fields["needs_review"] | blank)


def build_fields(digits_read: pd.DataFrame, field_names: list[str], threshold: float,
                 n_alternatives: int, field_threshold: float | None = None) -> pd.DataFrame:
    """``fields.parquet``: one row per sheet x numeric field (template fields first, then any others seen);
    ``threshold`` is the digit threshold, ``field_threshold`` the field's (default: the same)."""
    names = list(field_names) + sorted(set(digits_read["field"]) - set(field_names))
    if "filler" not in digits_read.columns:  # runs without filler marks (the acta, older runs)
        digits_read = digits_read.assign(filler="")
    if "struck" not in digits_read.columns:  # runs read before strikes were told apart from other ambiguity
        digits_read = digits_read.assign(struck=False)
    # Plain named tuples grouped once: per-field pandas indexing costs ~10 ms a field, i.e. minutes a batch.
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for crop in digits_read[CROP_COLUMNS].itertuples(index=False, name="Crop"):
        groups[(crop.sheet_id, crop.field)].append(crop)
    reads = [read_field(sheet, name, groups.get((sheet, name), []), threshold, n_alternatives, field_threshold)
             for sheet in pd.unique(digits_read["sheet_id"]) for name in names]
    table = pd.DataFrame([asdict(r) for r in reads], columns=[f for f in FieldRead.__dataclass_fields__])
    return table.astype(FIELD_DTYPES)
