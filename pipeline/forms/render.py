"""Render the blank printed form as a greyscale image (and PNG/PDF files).

Drawing uses OpenCV primitives so the same code serves the CLI (a printable blank) and the synthetic
generator (the paper the digits are written on).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import ConfigError
from pipeline.forms.template import MM_PER_INCH, Field, Rect, Template

INK = 0
PAPER = 255
FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Cap height of FONT at fontScale 1, in pixels; used to turn a text size in mm into a font scale.
FONT_CAP_PX = 22.0
LABEL_SIZE_MM = 3.2
SMALL_SIZE_MM = 2.4


def _px(mm: float, dpi: float) -> int:
    return round(mm * dpi / MM_PER_INCH)


def _thickness(mm: float, dpi: float) -> int:
    return max(1, _px(mm, dpi))


def draw_text(img: np.ndarray, text: str, x_mm: float, y_mm: float, size_mm: float, dpi: float) -> None:
    """Draw ``text`` with its baseline-left corner at ``(x_mm, y_mm)`` and cap height ``size_mm``."""
    scale = _px(size_mm, dpi) / FONT_CAP_PX
    cv2.putText(img, text, (_px(x_mm, dpi), _px(y_mm, dpi)), FONT, scale, INK,
                _thickness(size_mm * 0.09, dpi), cv2.LINE_AA)


def draw_rect(img: np.ndarray, r: Rect, dpi: float, line_mm: float, fill: bool = False) -> None:
    """Draw (or fill) rectangle ``r``."""
    x0, y0, x1, y1 = r.to_px(dpi)
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), INK, -1 if fill else _thickness(line_mm, dpi))


def _draw_field(img: np.ndarray, f: Field, dpi: float, line_mm: float) -> None:
    for box in f.boxes:
        draw_rect(img, box, dpi, line_mm)
    b = f.bounds
    if f.kind == "id":
        draw_text(img, f.label, b.x, b.y - 1.5, SMALL_SIZE_MM, dpi)
    elif f.kind == "count":
        draw_text(img, f.label, 16, b.y + b.h / 2 + LABEL_SIZE_MM / 2, LABEL_SIZE_MM, dpi)
    elif f.kind == "choice":
        draw_text(img, f.label, b.x, b.y - 3.0, SMALL_SIZE_MM, dpi)
        for box, option in zip(f.boxes, f.options, strict=True):
            draw_text(img, option, box.x + box.w + 0.8, box.y + box.h - 1.0, SMALL_SIZE_MM, dpi)
    elif f.kind == "tick":
        draw_text(img, "SI", b.x + b.w + 1.5, b.y + b.h - 1.0, SMALL_SIZE_MM, dpi)


def read_reference_image(template: Template, mode: int = cv2.IMREAD_GRAYSCALE) -> np.ndarray:
    """A reference-image template's reference scan as OpenCV reads it with ``mode`` (grey by default).

    Raises:
        ConfigError: the reference image is not found (the message names every place looked in) or unreadable.
    """
    if template.reference is None:
        raise ConfigError(f"template '{template.name}': reference image '{template.raw.get('reference')}' not "
                          f"found; looked in: {', '.join(template.reference_places)}")
    image = cv2.imread(str(template.reference), mode)
    if image is None:
        raise ConfigError(f"template '{template.name}': cannot read the reference image {template.reference}")
    return image


def reference_page(template: Template, dpi: float) -> np.ndarray:
    """A reference-image template's page: its reference scan, in grey, resized to the template at ``dpi``.

    Raises:
        ConfigError: the reference image is not found (the message names every place looked in) or unreadable.
    """
    return cv2.resize(read_reference_image(template), template.size_px(dpi), interpolation=cv2.INTER_AREA)


def render_blank(template: Template, dpi: float = 200) -> np.ndarray:
    """The empty printed form at ``dpi`` as a uint8 greyscale image (white paper, black print); for a
    reference-image template, its reference scan (:func:`reference_page`)."""
    if template.uses_reference:
        return reference_page(template, dpi)
    width, height = template.size_px(dpi)
    img = np.full((height, width), PAPER, np.uint8)
    raw, line = template.raw, template.raw.get("line_width", 0.35)
    draw_rect(img, template.frame, dpi, template.frame_line_mm)
    for fid in template.fiducials:
        draw_rect(img, fid, dpi, line, fill=True)
    draw_rect(img, template.orientation_mark, dpi, line, fill=True)
    draw_text(img, raw.get("title", ""), 30, 24, 4.0, dpi)
    draw_text(img, raw.get("subtitle", ""), 22, 31, 2.6, dpi)
    for t in raw.get("texts", []):
        draw_text(img, t["text"], t["x"], t["y"], t.get("size", LABEL_SIZE_MM), dpi)
    for ln in raw.get("lines", []):
        cv2.line(img, (_px(ln["x0"], dpi), _px(ln["y0"], dpi)), (_px(ln["x1"], dpi), _px(ln["y1"], dpi)),
                 INK, _thickness(line, dpi))
    for f in template.fields:
        _draw_field(img, f, dpi, line)
    return img


def save_form(img: np.ndarray, out: Path, dpi: float) -> Path:
    """Write ``img`` as PNG (or any OpenCV format) or, for ``.pdf``, as a one-page PDF at ``dpi``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".pdf":
        from PIL import Image  # Pillow ships with matplotlib; only needed for PDF output

        Image.fromarray(img).save(out, "PDF", resolution=float(dpi))
    elif not cv2.imwrite(str(out), img):
        raise ValueError(f"{out}: OpenCV cannot write this image format")
    return out
