"""One synthetic scanned sheet, drawn from ``(seed, index)`` alone.

Independent random streams (content, pen, scan, decorations, and for the wide generator tampering style and
scan damage) are spawned from ``SeedSequence([seed, index])``: a sheet is the same whichever process renders it
and whatever else is in the batch, and changing, say, the scan settings leaves the counts and alterations
unchanged. The streams of the wide generator come after the classic four, so ``style_set: classic`` sheets are
the same as before it existed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError
from pipeline.forms import Template, load_template
from pipeline.synth.canvas import Canvas
from pipeline.synth.damage import Damage, apply_damage, quarter_turn, sample_damage
from pipeline.synth.decor import decorate
from pipeline.synth.digits import DigitSource
from pipeline.synth.electoral import LEFT_OVER, RECEIVED, REGISTERED, TOTAL, sample_station
from pipeline.synth.pen import PenStyle, Writer, colour_writer, ink_name, sample_ink, sample_wide_writer, sample_writer
from pipeline.synth.scan import ScanParams, sample_scan, scanned_page
from pipeline.synth.settings import SynthSettings
from pipeline.synth.styles import PEN_COLOURS
from pipeline.synth.tamper import SheetContent, StylePicker, plan_content
from pipeline.synth.writer import BoxRecord, Pens, WriteContext, write_count, write_plain, write_tick

STREAMS = ("content", "pen", "scan", "decor", "style", "damage")
NEW_PEN_STROKE = (0.9, 1.3)
NEW_PEN_SLANT_SD = 4.0
#: ``other_pen_over``: the contrasting pen's stroke scale, thick for a thin writer and thin for a thick one, its
#: pressure (a tamperer wants the new number read), and the writer's stroke that tells thin from thick.
CONTRAST_THICK = (1.3, 1.8)
CONTRAST_THIN = (0.6, 0.75)
CONTRAST_PRESSURE = (0.85, 1.0)
THICK_WRITER = 1.0
#: ``field_weight``: pressure factor per field; ``field_pen``: how many consecutive count fields the second
#: honest pen writes.
FIELD_PRESSURE = (0.8, 1.1)
FIELD_PEN_BLOCK = (2, 6)


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
    rngs = sheet_rngs(settings.seed, index)
    rng = rngs["content"]
    station = sample_station(rng, index, settings, template.parties)
    counts = tuple(f.name for f in template.fields_of_kind("count"))
    return plan_content(rng, station, settings, template.parties, counts,
                        StylePicker.for_settings(settings, rngs["style"]))


@dataclass(frozen=True)
class SheetPens:
    """The pens of one sheet: the sheet's :class:`Pens`, the pens of each count field (honest pen changes
    between fields), and what truth.csv says about them."""

    pens: Pens
    fields: dict[str, Pens]
    record: dict


def _classic_pens(rng: np.random.Generator, settings: SynthSettings) -> Pens:
    """The sheet's writer and, with chance ``new_pen_rate``, a different pen and hand for the alterations."""
    honest = sample_writer(rng, settings)
    if rng.random() >= settings.new_pen_rate:
        return Pens(honest, honest)
    style = dataclasses.replace(honest.style, slant_deg=honest.style.slant_deg + float(rng.normal(0, NEW_PEN_SLANT_SD)),
                                stroke_scale=honest.style.stroke_scale * float(rng.uniform(*NEW_PEN_STROKE)))
    ink = sample_ink(rng, settings.blue_ink_rate)
    return Pens(honest, Writer(style, ink, honest.digit_height, honest.pressure, ink_name(ink)))


def _other(rng: np.random.Generator, colours: list[str], colour: str) -> str:
    """A colour of ``colours`` other than ``colour`` (``colour`` itself when there is no other)."""
    others = [c for c in colours if c != colour]
    return others[int(rng.integers(len(others)))] if others else colour


def _variant(rng: np.random.Generator, writer: Writer, colour: str, stroke: float, pressure: float = 1.0) -> Writer:
    """``writer``'s hand with another pen: colour ``colour``, strokes times ``stroke``, pressure times
    ``pressure`` (the same ink when the colour is the same)."""
    style: PenStyle = dataclasses.replace(writer.style, stroke_scale=max(0.3, writer.style.stroke_scale * stroke))
    low, high = (min(1.0, p * pressure) for p in writer.pressure)
    if colour == writer.colour:
        return dataclasses.replace(writer, style=style, pressure=(low, high))
    return colour_writer(rng, colour, style, writer.digit_height, (low, high))


def _contrast(rng: np.random.Generator, honest: Writer, colours: list[str]) -> Writer:
    """The clearly different pen of ``other_pen_over``: another colour (pencil only when nothing else is left),
    the other end of the stroke widths, and firm pressure."""
    inks = [c for c in colours if c != "pencil"] or colours
    colour = _other(rng, inks, honest.colour)
    stroke = CONTRAST_THIN if honest.style.stroke_scale >= THICK_WRITER else CONTRAST_THICK
    style = dataclasses.replace(honest.style, stroke_scale=float(rng.uniform(*stroke)))
    return colour_writer(rng, colour, style, honest.digit_height, CONTRAST_PRESSURE)


def _field_pens(rng: np.random.Generator, settings: SynthSettings, pens: Pens, colours: list[str],
                counts: tuple[str, ...], variation: str) -> tuple[dict[str, Pens], list[str]]:
    """Each count field's pens under an honest ``variation``, and the fields written with a second pen:
    ``field_weight`` gives every field its own stroke weight and pressure, ``field_pen`` writes a block of
    consecutive fields with another colour and weight; ``none`` keeps the sheet's pens everywhere."""
    honest = pens.honest
    if variation == "field_weight":
        return {f: dataclasses.replace(pens, honest=_variant(rng, honest, honest.colour,
                                                             float(rng.uniform(*settings.field_weight_spread)),
                                                             float(rng.uniform(*FIELD_PRESSURE))))
                for f in counts}, []
    if variation != "field_pen":
        return {f: pens for f in counts}, []
    n = int(rng.integers(FIELD_PEN_BLOCK[0], min(FIELD_PEN_BLOCK[1], len(counts)) + 1))
    start = int(rng.integers(0, len(counts) - n + 1))
    second = list(counts[start:start + n])
    spread = float(rng.uniform(*settings.field_weight_spread))
    pen = dataclasses.replace(pens, honest=_variant(rng, honest, _other(rng, colours, honest.colour), spread))
    return {f: pen if f in second else pens for f in counts}, second


def _wide_pens(rng: np.random.Generator, settings: SynthSettings, counts: tuple[str, ...]) -> SheetPens:
    """Pens of the wide generator from the active writer styles: the sheet's colour and hand, a new pen for
    the alterations (``new_pen_rate``), the contrasting pen of ``other_pen_over``, and honest per-field changes
    (``field_pen_rate``: ``field_weight`` or ``field_pen``)."""
    active = settings.styles()
    colours = [c for c in PEN_COLOURS if c in active and c in settings.pen_colours]
    hands = [h for h in ("hand_usual", "hand_unusual") if h in active]
    hand = hands[int(rng.integers(len(hands)))]
    honest = sample_wide_writer(rng, settings, colours, unusual=hand == "hand_unusual")
    altering = honest
    if rng.random() < settings.new_pen_rate:
        altering = _variant(rng, honest, _other(rng, colours, honest.colour), float(rng.uniform(*NEW_PEN_STROKE)))
        altering = dataclasses.replace(altering, style=dataclasses.replace(
            altering.style, slant_deg=altering.style.slant_deg + float(rng.normal(0, NEW_PEN_SLANT_SD))))
    contrast = _contrast(rng, honest, colours)
    pens = Pens(honest, altering, contrast)
    variations = [v for v in ("field_weight", "field_pen") if v in active]
    variation = "none"
    if rng.random() < settings.field_pen_rate and variations:
        variation = variations[int(rng.integers(len(variations)))]
    fields, second = _field_pens(rng, settings, pens, colours, counts, variation)
    record = {"honest_pen_variation": variation, "honest_pen_fields": ";".join(second), "hand": hand}
    return SheetPens(pens, fields, record)


def sheet_pens(rng: np.random.Generator, settings: SynthSettings, counts: tuple[str, ...]) -> SheetPens:
    """The sheet's pens: today's two (``classic``) or the wide generator's."""
    if settings.style_set != "classic":
        return _wide_pens(rng, settings, counts)
    pens = _classic_pens(rng, settings)
    return SheetPens(pens, {f: pens for f in counts}, {"honest_pen_variation": "none", "honest_pen_fields": "",
                                                      "hand": "classic"})


def pen_record(pens: SheetPens) -> dict:
    """truth.csv columns of the sheet's pens."""
    honest, altering = pens.pens.honest, pens.pens.altering
    return {"pen_colour": honest.colour, "altering_pen_colour": altering.colour,
            "pen_stroke_scale": round(honest.style.stroke_scale, 3), "pen_slant_deg": round(honest.style.slant_deg, 2),
            **pens.record}


def _write_form(canvas: Canvas, template: Template, content: SheetContent, ctx: WriteContext,
                field_pens: dict[str, Pens]) -> list[BoxRecord]:
    """Ids, station type, counts (as planned, each with its field's pens) and representative ticks; returns
    the boxes written."""
    station, records = content.station, []
    for f in template.fields_of_kind("id"):
        records += write_plain(canvas, f, station.ids[f.name], "none", ctx)
    choice = template.field("station_type")
    write_tick(canvas, choice.boxes[choice.options.index(station.station_type)], ctx.pens.honest, ctx.rng)
    for f in template.fields_of_kind("count"):
        pens = field_pens.get(f.name, ctx.pens)
        records += write_count(canvas, f, content.fields[f.name],
                               ctx if pens is ctx.pens else dataclasses.replace(ctx, pens=pens))
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
        row.update({name: plan.honest, f"{name}_written": plan.written, f"{name}_alteration": plan.kind,
                    f"{name}_style": plan.style})
    row.update({f.name: station.reps[f.party_of] for f in template.fields_of_kind("tick")})
    row.update({"altered": content.altered, "fabricated": content.fabricated,
                "alteration_kinds": ";".join(content.kinds), "alteration_styles": ";".join(content.styles),
                "arithmetic_error": content.arithmetic_error_field is not None,
                "arithmetic_error_field": content.arithmetic_error_field or "",
                "totals_adjusted": content.totals_adjusted, "opposition_present": station.opposition_present})
    row.update(scan.record())
    row.update(extras)
    row["homography"] = json.dumps([float(v) for v in hom.ravel()])  # full precision: perspective terms are ~1e-6
    return row


def is_acta(template: Template) -> bool:
    """Whether the acta generator (the 1988 electoral model: parties, totals, station type, representatives) draws
    ``template``: a millimetre form with the acta's party counts, totals and station type. Any other template is
    drawn by :func:`pipeline.synth.formsheet.render_form_sheet`."""
    names = {f.name for f in template.fields}
    return (not template.uses_reference and bool(template.parties)
            and {"station_type", TOTAL, RECEIVED, LEFT_OVER, REGISTERED} <= names)


def render_sheet(index: int, settings: SynthSettings, digits: DigitSource,
                 template: Template | None = None) -> SyntheticSheet:
    """Draw sheet ``index`` of the batch ``settings`` describes (deterministic in ``settings.seed`` and index);
    a template other than the acta (:func:`is_acta`) is drawn by :func:`pipeline.synth.formsheet.render_form_sheet`."""
    template = template or load_template()
    if not is_acta(template):
        from pipeline.synth.formsheet import render_form_sheet  # imports this module

        return render_form_sheet(index, settings, digits, template)
    rngs = sheet_rngs(settings.seed, index)
    content = plan_sheet(index, settings, template)
    scan = _damaged_scan(sample_scan(rngs["scan"], settings), damage := sample_damage(rngs["damage"], settings))
    image, hom = scanned_page(template, scan, settings.keep_fiducials, rngs["scan"], settings.paper_texture)
    canvas = Canvas(image, hom, scan.dpi, scan.blur_sigma)
    pens = sheet_pens(rngs["pen"], settings, tuple(content.fields))
    ctx = WriteContext(digits, rngs["pen"], pens.pens, settings.position_jitter)
    records = _write_form(canvas, template, content, ctx, pens.fields)
    district = content.station.ids["district"]
    marks = decorate(canvas, rngs["decor"], template, settings, pens.pens.honest.line_width_mm, f"DISTRITO {district}")
    image = apply_damage(canvas.image, damage, rngs["damage"], scan.dpi, scan.background) if damage.styles \
        else canvas.image
    image, hom = quarter_turn(image, hom, damage.quarter_turns)
    sid = sheet_id(index)
    extras = {**marks, "new_pen": pens.pens.altering is not pens.pens.honest, "style_set": settings.style_set,
              **damage.record(), **pen_record(pens)}
    truth = truth_row(index, template, content, scan, hom, extras)
    boxes = [{"sheet_id": sid, **vars(r)} for r in records]
    return SyntheticSheet(sid, image, truth, boxes, hom)


def _damaged_scan(scan: ScanParams, damage: Damage) -> ScanParams:
    """The scan parameters with the damage's perspective (largest corner shift) and photocopy (greyscale)."""
    if damage.corner_shift is not None:
        scan = dataclasses.replace(scan, corner_shift=damage.corner_shift,
                                   perspective=float(np.abs(damage.corner_shift).max()))
    return dataclasses.replace(scan, grey=True) if damage.photocopy else scan
