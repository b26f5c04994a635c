"""One synthetic sheet of any template that is not the 1988 acta, drawn from ``(seed, index)`` alone.

A reference-image template's paper is its reference scan with the boxes blanked (:mod:`pipeline.synth.reference`);
a millimetre template's is its rendered blank. On it go, with the acta generator's own parts: MNIST **test** digits
in the count and id boxes (:mod:`pipeline.synth.writer`, the writer and per-field pens of
:mod:`pipeline.synth.sheet`; sized and aimed to stay inside boxes that are short for their width,
:class:`FormWriteContext`), filler marks in unused leading boxes (:mod:`pipeline.synth.filler`), ticks and choices,
the same tampering kinds and styles (:mod:`pipeline.synth.tamper`; a crossout's replacement goes left of a comb
that fills a table column), coffee stains and folds (:mod:`pipeline.synth.decor`; no stamps or signatures: a
reference scan already carries the sheet's own), and the same scan and scan damage (:mod:`pipeline.synth.scan`,
:mod:`pipeline.synth.damage`). What the sheet says comes from :mod:`pipeline.synth.formplan`.

The random streams are the acta's (``SeedSequence([seed, index])``, :func:`pipeline.synth.sheet.sheet_rngs`). The
truth row has the acta's columns where they apply (docs/DATA.md section 1), and per count field ``F_filler`` (the
mark in its unused leading boxes: ``x``, ``dash``, ``zero``, or empty) and ``F_filler_boxes`` (how many boxes hold
it); per sheet ``template``, ``filler_habit`` and ``rules_failed`` (the template's rules that fail on the written
numbers, blank counts as 0, ``;``-joined). ``boxes.csv`` rows get a ``filler`` column: the mark drawn in the box
(it may lie under an alteration). A leading ``0`` is a digit (``digit`` 0). A zero written as filler marks in
every box has ``F_written`` 0 and no digit: the one case where the digits of ``boxes.csv`` do not spell it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from pipeline.forms import Template
from pipeline.forms.template import Rect
from pipeline.synth.canvas import Canvas
from pipeline.synth.damage import apply_damage, quarter_turn, sample_damage
from pipeline.synth.decor import draw_fold, draw_stain
from pipeline.synth.digits import DigitSource
from pipeline.synth.filler import draw_filler
from pipeline.synth.formplan import FormContent, RuleSystem, plan_form, rule_system
from pipeline.synth.pen import Writer
from pipeline.synth.reference import scanned_reference_page
from pipeline.synth.scan import ScanParams, sample_scan, scanned_page
from pipeline.synth.settings import VISIBLE_KINDS, SynthSettings
from pipeline.synth.sheet import SyntheticSheet, _damaged_scan, pen_record, sheet_id, sheet_pens, sheet_rngs
from pipeline.synth.tamper import StylePicker
from pipeline.synth.writer import (
    Pens,
    WriteContext,
    _record,
    box_centre,
    draw_digit,
    write_count,
    write_plain,
    write_tick,
)

#: Most stains and folds per sheet (as on the acta).
MAX_MARKS = 2
#: Writing (digits and filler marks) is at most this many times as tall as a box is wide: in the tall, narrow
#: boxes of a table column people write no taller than in square-ish ones (the Lampiran's digits fill about half
#: their box's height).
WRITING_ASPECT = 1.1
#: ... and at most this fraction of a box's height: a box's rectangle holds its printed walls, and in the short,
#: wide boxes of a table whose rows share their walls (the 2014 certificate's, 6.4 x 8.6 mm) people keep their
#: writing clear of the rules above and below (its real digits are about two thirds of the row's height). Binds
#: only in boxes less than WRITING_ASPECT / WRITING_FILL times as tall as wide (not the Lampiran's).
WRITING_FILL = 0.85
#: A digit's ink is kept at least this far (mm) inside its box's top and bottom edges (about a printed wall's
#: half-width and a hair of paper): the placement jitter moves a digit about its box but not across a wall into
#: the row above or below, where the reader would take it for part of that row's digit. Binds only where a box
#: has little room around its digit (the certificate's, not the Lampiran's).
WALL_CLEARANCE_MM = 0.5

#: Rule systems already solved in this process, by template name and rules.
_SYSTEMS: dict[tuple[str, tuple[str, ...]], RuleSystem] = {}


def template_rules(template: Template) -> RuleSystem:
    """The template's rules solved for drawing (:func:`pipeline.synth.formplan.rule_system`), once per process."""
    key = (template.name, template.rules)
    if key not in _SYSTEMS:
        _SYSTEMS[key] = rule_system(template)
    return _SYSTEMS[key]


def plan_form_sheet(index: int, settings: SynthSettings, template: Template) -> FormContent:
    """What sheet ``index`` of a batch of ``template`` says, without drawing it (cheap, for rates and tests)."""
    rngs = sheet_rngs(settings.seed, index)
    return plan_form(rngs["content"], settings, template, template_rules(template),
                     StylePicker.for_settings(settings, rngs["style"]))


class FormWriteContext(WriteContext):
    """The acta's :class:`pipeline.synth.writer.WriteContext` with writing kept inside short boxes: sized to at
    most ``WRITING_FILL`` of the box's height, and every digit aimed (the same jittered aim, drawn from the same
    random stream) no closer to the top or bottom edge than ``WALL_CLEARANCE_MM`` leaves for its ink."""

    def height(self, box: Rect) -> float:
        return min(super().height(box), box.h * WRITING_FILL)

    def digit(self, canvas: Canvas, writer: Writer, d: int, box: Rect, **ink: float) -> int:
        cx, cy = box_centre(self.rng, box, self.jitter)
        height = self.height(box)
        room = max(0.0, (box.h - writer.digit_height * height) / 2 - WALL_CLEARANCE_MM)
        mid = box.y + box.h / 2
        return draw_digit(canvas, self.digits, self.rng, writer, d, (cx, min(max(cy, mid - room), mid + room)),
                          height, **ink)


def form_page(template: Template, scan: ScanParams, settings: SynthSettings,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The scanned empty form and the homography from template pixels at the scan's dpi to it."""
    if template.uses_reference:
        return scanned_reference_page(template, scan, rng, settings.paper_texture)
    keep = settings.keep_fiducials and bool(template.fiducials)
    return scanned_page(template, scan, keep, rng, settings.paper_texture)


def writing_area(box: Rect, ctx: WriteContext) -> Rect:
    """The part of ``box`` a filler mark is drawn in: as wide as the box, as tall as a digit's writing there,
    centred."""
    h = ctx.height(box)
    return Rect(box.x, box.y + (box.h - h) / 2, box.w, h)


def write_filled_count(canvas: Canvas, field, plan, mark: str, all_filler: bool, ctx: WriteContext) -> list[dict]:
    """One count field as planned, with the filler ``mark`` in the boxes left of the number first written (or in
    every box for a zero written as filler marks); returns its boxes.csv rows (with ``filler``)."""
    if all_filler:
        for box in field.boxes:
            draw_filler(canvas, mark, writing_area(box, ctx), ctx.pens.honest, ctx.rng)
        return [{**vars(_record(field, i, None, -1, plan.kind)), "filler": mark} for i in range(len(field.boxes))]
    shown = plan.original if plan.kind in VISIBLE_KINDS else plan.written
    lead = len(field.boxes) - len(str(shown)) if mark and shown is not None else 0
    zeros = {}
    for i in range(lead):
        if mark == "zero":
            zeros[i] = ctx.digit(canvas, ctx.pens.honest, 0, field.boxes[i])
        else:
            draw_filler(canvas, mark, writing_area(field.boxes[i], ctx), ctx.pens.honest, ctx.rng)
    rows = [{**vars(r), "filler": ""} for r in write_count(canvas, field, plan, ctx)]
    for r in rows:
        i = r["box"]
        if r["position"] != "box" or i >= lead:
            continue
        r["filler"] = mark
        if mark != "zero":
            continue
        if r["digit"] < 0 and not r["altered"]:
            r["digit"], r["mnist_index"] = 0, zeros[i]
        elif r["old_digit"] < 0:
            r["old_digit"], r["old_mnist_index"] = 0, zeros[i]
    return rows


def _write_form(canvas: Canvas, template: Template, content: FormContent, ctx: WriteContext,
                field_pens: dict[str, Pens]) -> list[dict]:
    """Ids, choices, counts (with their filler marks and each with its field's pens) and ticks; returns the
    boxes.csv rows of the numeric boxes."""
    rows = []
    for f in template.fields_of_kind("id"):
        rows += [{**vars(r), "filler": ""} for r in write_plain(canvas, f, content.ids[f.name], "none", ctx)]
    for f in template.fields_of_kind("choice"):
        if f.name in content.choices:
            write_tick(canvas, f.boxes[f.options.index(content.choices[f.name])], ctx.pens.honest, ctx.rng)
    for f in template.fields_of_kind("count"):
        pens = field_pens.get(f.name, ctx.pens)
        fctx = ctx if pens is ctx.pens else dataclasses.replace(ctx, pens=pens)
        rows += write_filled_count(canvas, f, content.fields[f.name], content.filler[f.name],
                                   f.name in content.all_filler, fctx)
    for f in template.fields_of_kind("tick"):
        if content.ticks.get(f.name):
            write_tick(canvas, f.boxes[0], ctx.pens.honest, ctx.rng)
    return rows


def _decorate(canvas: Canvas, rng: np.random.Generator, template: Template, settings: SynthSettings) -> dict:
    """Coffee stains and folds as the settings' rates say (no stamps or signatures); how many of each."""
    page = (template.width_mm, template.height_mm)
    counts = {"signatures": 0, "stamps": 0, "stains": 0, "folds": 0}
    for key, rate, draw in (("stains", settings.stain_rate, draw_stain), ("folds", settings.fold_rate, draw_fold)):
        while rng.random() < rate and counts[key] < MAX_MARKS:
            draw(canvas, rng, page)
            counts[key] += 1
    return counts


def written_numbers(content: FormContent) -> dict[str, int]:
    """What a perfect reader returns for every count (blank counts as 0)."""
    return {name: plan.written or 0 for name, plan in content.fields.items()}


def form_truth_row(index: int, template: Template, content: FormContent, rows: list[dict], scan: ScanParams,
                   hom: np.ndarray, extras: dict) -> dict:
    """The truth.csv row of sheet ``index`` (module docstring); the batch writer fills in ``file``."""
    row = {"sheet_id": sheet_id(index), "index": index, "file": "", "page": 1, "template": template.name,
           **content.ids, **content.choices}
    filled = {}
    for r in rows:
        if r["filler"] and r["position"] == "box":
            filled[r["field"]] = filled.get(r["field"], 0) + 1
    for name, plan in content.fields.items():
        row.update({name: plan.honest, f"{name}_written": plan.written, f"{name}_alteration": plan.kind,
                    f"{name}_style": plan.style, f"{name}_filler": content.filler[name],
                    f"{name}_filler_boxes": filled.get(name, 0)})
    row.update(content.ticks)
    failed = template_rules(template).holds(written_numbers(content))
    row.update({"altered": content.altered, "fabricated": content.fabricated,
                "alteration_kinds": ";".join(content.kinds), "alteration_styles": ";".join(content.styles),
                "arithmetic_error": content.arithmetic_error_field is not None,
                "arithmetic_error_field": content.arithmetic_error_field or "",
                "totals_adjusted": content.totals_adjusted, "opposition_present": False,
                "filler_habit": content.filler_habit, "rules_failed": ";".join(failed)})
    row.update(scan.record())
    row.update(extras)
    row["homography"] = json.dumps([float(v) for v in hom.ravel()])
    return row


def render_form_sheet(index: int, settings: SynthSettings, digits: DigitSource,
                      template: Template) -> SyntheticSheet:
    """Draw sheet ``index`` of a batch of ``template`` (deterministic in ``settings.seed`` and index)."""
    rngs = sheet_rngs(settings.seed, index)
    content = plan_form_sheet(index, settings, template)
    damage = sample_damage(rngs["damage"], settings)
    scan = _damaged_scan(sample_scan(rngs["scan"], settings), damage)
    image, hom = form_page(template, scan, settings, rngs["scan"])
    canvas = Canvas(image, hom, scan.dpi, scan.blur_sigma)
    pens = sheet_pens(rngs["pen"], settings, tuple(content.fields))
    ctx = FormWriteContext(digits, rngs["pen"], pens.pens, settings.position_jitter, WRITING_ASPECT)
    rows = _write_form(canvas, template, content, ctx, pens.fields)
    marks = _decorate(canvas, rngs["decor"], template, settings)
    image = apply_damage(canvas.image, damage, rngs["damage"], scan.dpi, scan.background) if damage.styles \
        else canvas.image
    image, hom = quarter_turn(image, hom, damage.quarter_turns)
    sid = sheet_id(index)
    extras = {**marks, "new_pen": pens.pens.altering is not pens.pens.honest, "style_set": settings.style_set,
              **damage.record(), **pen_record(pens)}
    truth = form_truth_row(index, template, content, rows, scan, hom, extras)
    return SyntheticSheet(sid, image, truth, [{"sheet_id": sid, **r} for r in rows], hom)
