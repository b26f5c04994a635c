"""One synthetic scanned sheet, drawn from ``(seed, index)`` alone.

Four independent random streams (content, pen, scan, decorations) are spawned from
``SeedSequence([seed, index])``: a sheet is the same whichever process renders it and whatever else is in the
batch, and changing, say, the scan settings leaves the counts and alterations unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError
from pipeline.forms import Template, load_template
from pipeline.synth.canvas import Canvas
from pipeline.synth.decor import decorate
from pipeline.synth.digits import DigitSource
from pipeline.synth.electoral import sample_station
from pipeline.synth.pen import Writer, sample_ink, sample_writer
from pipeline.synth.scan import ScanParams, sample_scan, scanned_page
from pipeline.synth.settings import SynthSettings
from pipeline.synth.tamper import SheetContent, plan_content
from pipeline.synth.writer import BoxRecord, Pens, WriteContext, write_count, write_plain, write_tick

STREAMS = ("content", "pen", "scan", "decor")
NEW_PEN_STROKE = (0.9, 1.3)
NEW_PEN_SLANT_SD = 4.0


@dataclass(frozen=True)
class SyntheticSheet:
    """A rendered sheet: the scan (uint8 grey or BGR), its truth.csv row and boxes.csv rows, and the homography
    from template pixels at the scan's dpi to scan pixels."""

    sheet_id: str
    image: np.ndarray
    truth: dict
    boxes: list[dict]
    homography: np.ndarray


def sheet_id(index: int) -> str:
    """The file-safe id of sheet ``index``."""
    return f"s{index:06d}"


def sheet_rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    """The sheet's independent random streams, by name."""
    children = np.random.SeedSequence([seed, index]).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}


def _check_template(settings: SynthSettings, template: Template) -> None:
    if len(settings.party_shares) != len(template.parties):
        raise ConfigError(f"synth setting 'party_shares' has {len(settings.party_shares)} values; template "
                          f"'{template.name}' has {len(template.parties)} parties {template.parties}")


def plan_sheet(index: int, settings: SynthSettings, template: Template | None = None) -> SheetContent:
    """What sheet ``index`` says (counts, alterations, ids), without drawing it: cheap, for rates and tests."""
    template = template or load_template()
    _check_template(settings, template)
    rng = sheet_rngs(settings.seed, index)["content"]
    station = sample_station(rng, index, settings, template.parties)
    counts = tuple(f.name for f in template.fields_of_kind("count"))
    return plan_content(rng, station, settings, template.parties, counts)


def _pens(rng: np.random.Generator, settings: SynthSettings) -> Pens:
    """The sheet's writer and, with chance ``new_pen_rate``, a different pen and hand for the alterations."""
    honest = sample_writer(rng, settings)
    if rng.random() >= settings.new_pen_rate:
        return Pens(honest, honest)
    style = dataclasses.replace(honest.style, slant_deg=honest.style.slant_deg + float(rng.normal(0, NEW_PEN_SLANT_SD)),
                                stroke_scale=honest.style.stroke_scale * float(rng.uniform(*NEW_PEN_STROKE)))
    return Pens(honest, Writer(style, sample_ink(rng, settings.blue_ink_rate), honest.digit_height, honest.pressure))


def _write_form(canvas: Canvas, template: Template, content: SheetContent, ctx: WriteContext) -> list[BoxRecord]:
    """Ids, station type, counts (as planned) and representative ticks; returns the boxes written."""
    station, records = content.station, []
    for f in template.fields_of_kind("id"):
        records += write_plain(canvas, f, station.ids[f.name], "none", ctx)
    choice = template.field("station_type")
    write_tick(canvas, choice.boxes[choice.options.index(station.station_type)], ctx.pens.honest, ctx.rng)
    for f in template.fields_of_kind("count"):
        records += write_count(canvas, f, content.fields[f.name], ctx)
    for f in template.fields_of_kind("tick"):
        if station.reps[f.party_of]:
            write_tick(canvas, f.boxes[0], ctx.pens.honest, ctx.rng)
    return records


def truth_row(index: int, template: Template, content: SheetContent, scan: ScanParams, hom: np.ndarray,
              extras: dict) -> dict:
    """The truth.csv row of sheet ``index`` (docs/DATA.md section 1); the batch writer fills in ``file``."""
    station = content.station
    row = {"sheet_id": sheet_id(index), "index": index, "file": "", "page": 1, **station.ids,
           "station_type": station.station_type}
    for name, plan in content.fields.items():
        row.update({name: plan.honest, f"{name}_written": plan.written, f"{name}_alteration": plan.kind})
    row.update({f.name: station.reps[f.party_of] for f in template.fields_of_kind("tick")})
    row.update({"altered": content.altered, "fabricated": content.fabricated,
                "alteration_kinds": ";".join(content.kinds),
                "arithmetic_error": content.arithmetic_error_field is not None,
                "arithmetic_error_field": content.arithmetic_error_field or "",
                "totals_adjusted": content.totals_adjusted, "opposition_present": station.opposition_present})
    row.update(scan.record())
    row.update(extras)
    row["homography"] = json.dumps([float(v) for v in hom.ravel()])  # full precision: perspective terms are ~1e-6
    return row


def render_sheet(index: int, settings: SynthSettings, digits: DigitSource,
                 template: Template | None = None) -> SyntheticSheet:
    """Draw sheet ``index`` of the batch ``settings`` describes (deterministic in ``settings.seed`` and index)."""
    template = template or load_template()
    rngs = sheet_rngs(settings.seed, index)
    content = plan_sheet(index, settings, template)
    scan = sample_scan(rngs["scan"], settings)
    image, hom = scanned_page(template, scan, settings.keep_fiducials, rngs["scan"], settings.paper_texture)
    canvas = Canvas(image, hom, scan.dpi, scan.blur_sigma)
    pens = _pens(rngs["pen"], settings)
    records = _write_form(canvas, template, content, WriteContext(digits, rngs["pen"], pens, settings.position_jitter))
    district = content.station.ids["district"]
    marks = decorate(canvas, rngs["decor"], template, settings, pens.honest.line_width_mm, f"DISTRITO {district}")
    sid = sheet_id(index)
    truth = truth_row(index, template, content, scan, hom, {**marks, "new_pen": pens.altering is not pens.honest})
    boxes = [{"sheet_id": sid, **vars(r)} for r in records]
    return SyntheticSheet(sid, canvas.image, truth, boxes, hom)
