"""``gallery.png``: a contact sheet of clean and altered sheets, with zoomed views of the altered fields.

The sheets shown are re-rendered from ``(seed, index)`` (rendering is deterministic) and passed through the
batch's own encoder, so the gallery shows exactly what was written, compression included, whatever the format.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from pipeline.forms import Template
from pipeline.forms.template import MM_PER_INCH
from pipeline.synth.digits import DigitSource
from pipeline.synth.scan import encode_image
from pipeline.synth.settings import VISIBLE_KINDS, SynthSettings
from pipeline.synth.sheet import SyntheticSheet, render_sheet
from pipeline.synth.styles import TAMPER_STYLES
from pipeline.synth.writer import BESIDE_LIMIT_MM

THUMB_WIDTH = 420
COLUMNS = 4
LABEL_HEIGHT = 44
ZOOM_HEIGHT = 110
ZOOM_PX_PER_MM = ZOOM_HEIGHT / 13.0
ZOOM_MARGIN_MM = 2.0
MAX_ZOOMS = 8
#: Room left of a table-column comb shown in its zoom (a crossout's replacement goes there), in boxes.
LEFT_ROOM_BOXES = 4
GAP = 12
FONT = cv2.FONT_HERSHEY_SIMPLEX
BACKGROUND = (60, 60, 60)
TEXT = (255, 255, 255)


def pick_sheets(truth: pd.DataFrame, n: int) -> list[int]:
    """Indices of up to ``n`` sheets: half clean, half visibly altered (covering as many kinds, then tampering
    styles, as possible)."""
    clean = truth[~truth["altered"] & ~truth["fabricated"] & ~truth["arithmetic_error"]]["index"].tolist()
    altered = truth[truth["altered"]]
    chosen: list[int] = []
    styles = altered["alteration_styles"].fillna("").astype(str).str.split(";") if "alteration_styles" in altered \
        else None
    wanted = [("alteration_kinds", k) for k in VISIBLE_KINDS]
    wanted += [("alteration_styles", s) for s in TAMPER_STYLES] if styles is not None else []
    for column, name in wanted:  # first one sheet per kind and style, then fill in batch order
        has = altered[column].fillna("").astype(str).str.split(";").apply(lambda names, name=name: name in names)
        hits = altered[has & ~altered["index"].isin(chosen)]
        if len(hits) and len(chosen) < n - n // 2:
            chosen.append(int(hits["index"].iloc[0]))
    chosen += [int(i) for i in altered["index"] if i not in chosen][: n - n // 2 - len(chosen)]
    return sorted(clean[: n - len(chosen)] + chosen)


def _as_scanned(sheet: SyntheticSheet, settings: SynthSettings) -> np.ndarray:
    """The sheet as stored (encoded and decoded again), in BGR."""
    data = encode_image(sheet.image, settings.image_format, int(sheet.truth["jpeg_quality"]))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _label(img: np.ndarray, lines: list[str], height: int) -> np.ndarray:
    """``img`` with ``lines`` of white text on a dark band below it."""
    band = np.full((height, img.shape[1], 3), BACKGROUND, np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (6, 18 + 20 * k), FONT, 0.5, TEXT, 1, cv2.LINE_AA)
    return np.vstack([img, band])


def _thumbnail(img: np.ndarray, truth: dict) -> np.ndarray:
    small = cv2.resize(img, (THUMB_WIDTH, round(img.shape[0] * THUMB_WIDTH / img.shape[1])),
                       interpolation=cv2.INTER_AREA)
    kinds = str(truth.get("alteration_styles") or truth["alteration_kinds"] or "clean")
    flags = [k for k in ("upside_down", "grey") if truth[k]]
    turns = int(truth.get("quarter_turns", 0) or 0)
    flags += [f"turned {90 * turns}"] if turns else []
    flags += [str(truth["scan_damage"])] if isinstance(truth.get("scan_damage"), str) else []
    return _label(small, [f"{truth['sheet_id']}  {kinds}", f"{truth['dpi']} dpi  " + " ".join(flags)], LABEL_HEIGHT)


def _zoom(img: np.ndarray, homography: np.ndarray, truth: dict, template: Template, field: str) -> np.ndarray:
    """The field's row, from its first box to the crossout limit (or, for a comb that fills a table column, from
    where a crossout's replacement goes left of it to its last box), warped back to template orientation."""
    f = template.field(field)
    b = f.bounds
    x0, y0 = b.x - ZOOM_MARGIN_MM, b.y - ZOOM_MARGIN_MM
    if f.beside:
        w_mm, h_mm = BESIDE_LIMIT_MM + ZOOM_MARGIN_MM - x0, b.h + 2 * ZOOM_MARGIN_MM
    else:
        x0 = max(0.0, x0 - LEFT_ROOM_BOXES * f.boxes[0].w)
        w_mm, h_mm = b.x + b.w + ZOOM_MARGIN_MM - x0, b.h + 2 * ZOOM_MARGIN_MM
    s = truth["dpi"] / MM_PER_INCH / ZOOM_PX_PER_MM
    zoom_to_template = np.array([[s, 0, x0 * s * ZOOM_PX_PER_MM], [0, s, y0 * s * ZOOM_PX_PER_MM], [0, 0, 1]])
    size = (round(w_mm * ZOOM_PX_PER_MM), round(h_mm * ZOOM_PX_PER_MM))
    crop = cv2.warpPerspective(img, homography @ zoom_to_template, size,
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    t = truth
    kind = t.get(f"{field}_style", t[f"{field}_alteration"])
    return _label(crop, [f"{t['sheet_id']} {field}: {kind}  "
                         f"{t[field]} -> {t[f'{field}_written']}"], LABEL_HEIGHT // 2)


def _pad_right(img: np.ndarray, width: int) -> np.ndarray:
    pad = np.full((img.shape[0], width - img.shape[1], 3), BACKGROUND, np.uint8)
    return np.hstack([img, pad])


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles (same width) laid out in rows of ``columns``, with gaps."""
    h = max(t.shape[0] for t in tiles)
    w = tiles[0].shape[1]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (h + GAP) + GAP, columns * (w + GAP) + GAP, 3), BACKGROUND, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        out[GAP + r * (h + GAP): GAP + r * (h + GAP) + tile.shape[0], GAP + c * (w + GAP): GAP + (c + 1) * w + c * GAP]\
            = tile
    return out


def make_gallery(truth: pd.DataFrame, settings: SynthSettings, digits: DigitSource,
                 template: Template) -> np.ndarray:
    """The contact sheet image (BGR): thumbnails of a few sheets, then zooms of their altered fields."""
    thumbs, zooms = [], []
    for index in pick_sheets(truth, settings.gallery_sheets):
        sheet = render_sheet(index, settings, digits, template)
        row = truth[truth["index"] == index].iloc[0].to_dict()
        img = _as_scanned(sheet, settings)
        thumbs.append(_thumbnail(img, row))
        altered = [f.name for f in template.fields_of_kind("count") if row[f"{f.name}_alteration"] in VISIBLE_KINDS]
        zooms += [_zoom(img, sheet.homography, row, template, f) for f in altered]
    if not thumbs:
        raise ValueError("the batch has no sheet to show")
    gallery = _grid(thumbs, min(COLUMNS, len(thumbs)))
    if zooms:
        widest = max(z.shape[1] for z in zooms[:MAX_ZOOMS])  # fields of other forms may differ in width
        zooms = [_pad_right(z, widest) for z in zooms[:MAX_ZOOMS]]
        strip = _grid(zooms[:MAX_ZOOMS], max(1, gallery.shape[1] // (zooms[0].shape[1] + GAP)))
        width = max(gallery.shape[1], strip.shape[1])
        gallery = np.vstack([_pad_right(gallery, width), _pad_right(strip, width)])
    return gallery
