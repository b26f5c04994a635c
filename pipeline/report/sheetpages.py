"""One page per sheet: the registered scan with every field box overlaid, the reads, the flags and their crops.

The overlay is absolutely-positioned HTML boxes placed in percent of the page, taken from the template's
millimetre geometry, so it lines up with the registered scan at any resolution and any screen width. Scans
are copied at a reduced width, and only for the sheets that get a page of their own (the overlay does not care
about the resolution; the other sheets' scans are linked in place, so a 50,000-sheet report stays small); the
flagged fields' images keep their full resolution and are inlined as grey JPEG ``data:`` URIs, in the page or in a
few pack files, never one file each. Image sizes are checked from the file header before anything is decoded.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import pandas as pd
from PIL import Image

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import InputFileError
from pipeline.forms import Field, Rect, Template
from pipeline.report import triage
from pipeline.report.formview import FormView, field_name
from pipeline.report.tables import evidence_view, json_safe, parse_json_cell, severity_rank

log = logging.getLogger(__name__)

SCAN_SUFFIXES = (".jpg", ".png")
FILES_DIR = "files"


@dataclass(frozen=True)
class Confidence:
    """Thresholds that turn a calibrated confidence into a colour class."""

    high: float
    low: float

    def css_class(self, value) -> str:
        """``conf-high`` / ``conf-mid`` / ``conf-low``, or ``conf-none`` for an empty or unread field."""
        value = json_safe(value)
        if value is None:
            return "conf-none"
        return "conf-high" if value >= self.high else "conf-mid" if value >= self.low else "conf-low"


def percent_box(rect: Rect, template: Template) -> dict[str, float]:
    """``rect`` as CSS percentages of the page (left, top, width, height)."""
    return {"left": 100 * rect.x / template.width_mm, "top": 100 * rect.y / template.height_mm,
            "width": 100 * rect.w / template.width_mm, "height": 100 * rect.h / template.height_mm}


def records_by_sheet(df: pd.DataFrame | None) -> dict[str, list[dict]]:
    """Rows of a per-sheet table bucketed by ``sheet_id`` in one pass (sheet pages look them up by id)."""
    buckets: dict[str, list[dict]] = {}
    if df is None or "sheet_id" not in df.columns:
        return buckets
    for record in df.to_dict("records"):
        buckets.setdefault(str(record["sheet_id"]), []).append(record)
    return buckets


def alternatives_text(cell, read=None, min_probability: float = triage.MIN_ALTERNATIVE_PROBABILITY) -> str:
    """``alternatives`` (JSON list of ``[value, probability]``) as ``"123 (0.80), 128 (0.15)"``: those below
    ``min_probability`` and the value ``read`` itself left out."""
    pairs = triage.alternatives_shown(parse_json_cell(cell), min_probability, read)
    return ", ".join(f"{v} ({p:.2f})" for v, p in pairs)


def numeric_overlay(f: Field, read: dict | None, row: dict, flagged: set[str], template: Template,
                    conf: Confidence, names: dict[str, str] | None = None) -> dict:
    """Overlay and table entry of one handwritten field: box, text read, value, confidence and its colour."""
    read = read or {}
    value = json_safe(read.get("value", row.get(f.name)))
    confidence = json_safe(read.get("confidence", row.get(f"{f.name}_conf")))
    text = read.get("text")
    text = str(value) if text is None and value is not None else (text or "")
    return {"name": f.name, "label": (names or {}).get(f.name, f.label), "kind": f.kind,
            "box": percent_box(f.bounds, template),
            "text": text, "value": value, "confidence": confidence, "conf_class": conf.css_class(confidence),
            "needs_review": bool(json_safe(read.get("needs_review")) or False),
            "alternatives": alternatives_text(read.get("alternatives"), value), "flagged": f.name in flagged}


def tick_overlay(f: Field, row: dict, template: Template) -> list[dict]:
    """Overlay of a tick or choice field: one box per option, marked when the audit table says it is ticked."""
    if f.kind == "tick":
        ticked = json_safe(row.get(f.name))
        return [{"name": f.name, "label": field_name(f), "box": percent_box(f.boxes[0], template),
                 "on": bool(ticked), "known": ticked is not None}]
    chosen = json_safe(row.get(f.name))
    return [{"name": f"{f.name}={opt}", "label": f"{field_name(f)} {opt}",
             "box": percent_box(b, template), "on": chosen == opt, "known": chosen is not None}
            for b, opt in zip(f.boxes, f.options, strict=True)]


def mark_entry(f: Field, row: dict, names: dict[str, str] | None = None) -> dict:
    """Crop entry of a flagged tick or choice field: what the audit table says was marked."""
    value = json_safe(row.get(f.name))
    text = "" if value is None else ("yes" if value is True or value == 1 else "no") if f.kind == "tick" else str(value)
    return {"name": f.name, "label": (names or {}).get(f.name, f.label), "kind": f.kind, "text": text,
            "confidence": None, "conf_class": ""}


def up_to_date(dst: Path, src: Path) -> bool:
    """Whether ``dst`` exists and is no older than ``src`` (a rebuild then keeps it)."""
    try:
        return dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime
    except OSError:
        return False


def scan_source(rundir: Path | None, sheet_id: str) -> Path | None:
    """The registered page image of a sheet in the run folder, if any."""
    if rundir is None:
        return None
    for suffix in SCAN_SUFFIXES:
        path = rundir / "registered" / f"{sheet_id}{suffix}"
        if path.is_file():
            return path
    return None


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header; refuses images above :data:`MAX_IMAGE_PIXELS`."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from exc
    if width * height > MAX_IMAGE_PIXELS:
        raise InputFileError(f"{path}: {width}x{height} pixels is more than the {MAX_IMAGE_PIXELS} allowed")
    return width, height


def shrink_copy(src: Path, dst_stem: Path, max_width: int, quality: int) -> Path:
    """Copy ``src`` beside ``dst_stem``: as is when it is at most ``max_width`` wide, else resized to that width
    and saved as JPEG; returns the file written. A copy from an earlier build that is up to date is kept."""
    for kept in (dst_stem.with_suffix(src.suffix), dst_stem.with_suffix(".jpg")):
        if up_to_date(kept, src):
            return kept
    width, height = image_size(src)
    dst_stem.parent.mkdir(parents=True, exist_ok=True)
    if width <= max_width:
        dst = dst_stem.with_suffix(src.suffix)
        shutil.copyfile(src, dst)
        return dst
    img = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputFileError(f"{src}: OpenCV cannot decode it")
    small = cv2.resize(img, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)
    dst = dst_stem.with_suffix(".jpg")
    if not cv2.imwrite(str(dst), small, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise InputFileError(f"{dst}: could not write the scan copy")
    return dst


def place_scan(src: Path | None, out: Path, slug: str, copy: bool, max_width: int, quality: int) -> str | None:
    """Put the scan next to the sheet pages (or link to it in place); the ``src`` for the sheet page, ``None``
    when there is no scan or it cannot be read (logged: one bad image must not stop the report)."""
    if src is None:
        return None
    if not copy:
        return Path(os.path.relpath(src.resolve(), (out / "sheets").resolve())).as_posix()
    try:
        dst = shrink_copy(src, out / "sheets" / FILES_DIR / slug, max_width, quality)
    except InputFileError as exc:
        log.warning("%s", exc)
        return None
    return f"{FILES_DIR}/{dst.name}"


def crop_source(rundir: Path | None, sheet_id: str, field: str) -> Path | None:
    """The registered image of one field of a sheet in the run folder, if any."""
    path = None if rundir is None else rundir / "fields" / sheet_id / f"{field}.png"
    return path if path is not None and path.is_file() else None


def crop_data_uri(src: Path, quality: int = 85) -> str | None:
    """A field image as a ``data:image/jpeg;base64,...`` URI: full resolution, grey, JPEG at ``quality`` (a third
    of the PNG's size, still sharp); ``None`` (logged) when it cannot be read."""
    try:
        image_size(src)
        img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise InputFileError(f"{src}: OpenCV cannot decode it")
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise InputFileError(f"{src}: could not encode the crop")
    except InputFileError as exc:
        log.warning("%s", exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def inline_crops(rundir: Path | None, sheet_id: str, field_names: list[str], quality: int = 85) -> dict[str, str]:
    """``{field: data URI}`` of the registered images of ``field_names`` that exist and can be read."""
    crops = {}
    for name in field_names:
        src = crop_source(rundir, sheet_id, name)
        uri = crop_data_uri(src, quality) if src is not None else None
        if uri:
            crops[name] = uri
    return crops


def rule_items(flag: dict, form: FormView | None) -> list[tuple[str, str]]:
    """The form rule a flag checked, for its evidence table: ``[("rule", label), ("rule text", text)]`` (the text
    alone when the form gives no label; none for a flag about no rule of the form)."""
    rule = triage.flag_rule(flag, form)
    if rule is None:
        return []
    return [("rule", rule.label), ("rule text", rule.text)] if rule.label else [("rule", rule.text)]


def flag_entries(sheet_flags: list[dict], row: dict, names: dict[str, str], conf_high: float,
                 form: FormView | None = None) -> list[dict]:
    """A sheet's flags, gravest first (ranking tier, then severity), each with the fields that caused it
    (:func:`triage.cause_fields`), a plain-language reason, the audit's own wording, the form's rule it checked
    (label and text, from the run's template ``form``) and only the evidence about those fields."""
    altered = {f for flag in sheet_flags if flag.get("rule") == triage.ALTERATION_RULE
               for f in triage.flag_fields(flag)}
    entries = []
    for flag in sheet_flags:
        causes = triage.cause_fields(flag, row, altered, conf_high, form)
        evidence = evidence_view(flag.get("evidence"), causes or None, names)
        evidence["items"] = [*rule_items(flag, form), *evidence["items"]]
        entries.append({"rule": flag["rule"], "severity": flag["severity"], "verdict": flag["verdict"],
                        "verdict_label": triage.VERDICT_LABELS.get(str(flag["verdict"]), str(flag["verdict"])),
                        "plain": triage.capitalised(triage.plain_reason(flag, causes, names, form, row)),
                        "reason": flag["reason"], "causes": causes,
                        "cause_names": [names.get(f, f) for f in causes],
                        "tier": triage.flag_tier(str(flag["verdict"]), str(flag["severity"])),
                        "evidence": evidence})
    return sorted(entries, key=lambda e: (e["tier"], -severity_rank(e["severity"])))
