"""Scanner simulation: page placement (rotation, perspective, shift, crop, upside-down), paper and lighting,
blur, sensor noise and compression.

Everything full-resolution is done with a handful of OpenCV calls; random fields are drawn at 1/4 or 1/16
resolution and upscaled, which is both fast and what real lighting and paper mottling look like.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.forms import Template, render_blank
from pipeline.forms.template import MM_PER_INCH
from pipeline.synth.settings import SynthSettings

#: Fiducials are kept at least this far inside the image edge.
FIDUCIAL_MARGIN_MM = 1.0
LIGHT_GRID = 16
TEXTURE_GRID = 4
TEXTURE_BLUR = 3.0
#: Standard deviation of uniform 0-255 noise, to scale it to a requested sigma.
UNIFORM_SD = 255 / np.sqrt(12)
PAPER_TINT = ((0.90, 0.98), (0.0, 0.03))  # blue-channel level; green and red each up to +3 % warmer
DARK_BACKGROUND = (25, 80)
LIGHT_BACKGROUND = (215, 250)
PNG_COMPRESSION = 3
#: ``blur_sigma`` settings are pixels at this resolution (optical blur is fixed in millimetres).
BLUR_REFERENCE_DPI = 200


@dataclass(frozen=True)
class ScanParams:
    """How one sheet was scanned (recorded in truth.csv); ``blur_sigma`` is in pixels of this scan."""

    dpi: int
    grey: bool
    upside_down: bool
    rotation_deg: float
    perspective: float
    translate_x_mm: float
    translate_y_mm: float
    crop_mm: float
    background: int
    lighting: float
    paper_tint: tuple[float, float, float]
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    corner_shift: tuple[float, ...]

    def record(self) -> dict:
        """The truth.csv columns describing this scan."""
        return {"dpi": self.dpi, "grey": self.grey, "upside_down": self.upside_down,
                "rotation_deg": round(self.rotation_deg, 3), "perspective": round(self.perspective, 5),
                "translate_x_mm": round(self.translate_x_mm, 2), "translate_y_mm": round(self.translate_y_mm, 2),
                "crop_mm": round(self.crop_mm, 2), "lighting": round(self.lighting, 3),
                "blur_sigma": round(self.blur_sigma, 3), "noise_sigma": round(self.noise_sigma, 2),
                "jpeg_quality": self.jpeg_quality}


def sample_scan(rng: np.random.Generator, settings: SynthSettings) -> ScanParams:
    """Draw one sheet's scan parameters from the settings' ranges."""
    resolutions = settings.resolutions()
    corner = rng.uniform(-settings.perspective, settings.perspective, 8)
    blue = rng.uniform(*PAPER_TINT[0])
    green = min(1.0, blue + rng.uniform(*PAPER_TINT[1]))
    dark = rng.random() < settings.dark_background_rate
    dpi = int(resolutions[rng.integers(len(resolutions))])
    return ScanParams(
        dpi=dpi, grey=bool(rng.random() < settings.grey_rate),
        upside_down=bool(rng.random() < settings.upside_down_rate),
        rotation_deg=float(rng.uniform(-settings.rotation_deg, settings.rotation_deg)),
        perspective=float(np.abs(corner).max(initial=0.0)),
        translate_x_mm=float(rng.uniform(-settings.translate_mm, settings.translate_mm)),
        translate_y_mm=float(rng.uniform(-settings.translate_mm, settings.translate_mm)),
        crop_mm=float(rng.uniform(*settings.crop_mm)),
        background=int(rng.integers(*(DARK_BACKGROUND if dark else LIGHT_BACKGROUND))),
        lighting=float(rng.uniform(0, settings.lighting)),
        paper_tint=(float(blue), float(green), float(min(1.0, green + rng.uniform(*PAPER_TINT[1])))),
        blur_sigma=float(rng.uniform(*settings.blur_sigma)) * dpi / BLUR_REFERENCE_DPI,
        noise_sigma=float(rng.uniform(*settings.noise_sigma)),
        jpeg_quality=int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1)),
        corner_shift=tuple(float(c) for c in corner))


def _fit_fiducials(h: np.ndarray, template: Template, dpi: float, size: tuple[int, int]) -> np.ndarray:
    """Compose ``h`` with the smallest shrink and shift that keeps every fiducial inside the image."""
    s = dpi / MM_PER_INCH
    corners = np.array([[[(r.x + dx) * s, (r.y + dy) * s] for r in template.fiducials
                         for dx, dy in ((0, 0), (r.w, 0), (r.w, r.h), (0, r.h))]], np.float64)
    pts = cv2.perspectiveTransform(corners, h)[0]
    margin = FIDUCIAL_MARGIN_MM * s
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    room = np.array(size, float) - 2 * margin
    if (lo >= margin).all() and (hi <= margin + room).all():
        return h
    k = min(1.0, *(room / (hi - lo)))
    centre = (lo + hi) / 2
    new_lo, new_hi = centre - k * (hi - lo) / 2, centre + k * (hi - lo) / 2
    shift = np.maximum(0, margin - new_lo) - np.maximum(0, new_hi - (margin + room))
    t = centre + shift
    fix = np.array([[k, 0, t[0] - k * centre[0]], [0, k, t[1] - k * centre[1]], [0, 0, 1]])
    return fix @ h


def placement(params: ScanParams, template: Template, keep_fiducials: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Homography from template pixels (at the scan dpi) to scan pixels, and the scan size ``(w, h)``."""
    s = params.dpi / MM_PER_INCH
    w, h = template.size_px(params.dpi)
    crop = params.crop_mm * s
    size = (round(w - 2 * crop), round(h - 2 * crop))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), params.rotation_deg, 1.0)
    dst = src @ rot[:, :2].T + rot[:, 2]
    dst += np.array([params.translate_x_mm * s - crop, params.translate_y_mm * s - crop])
    dst += np.reshape(params.corner_shift, (4, 2)) * np.hypot(w, h)
    if params.upside_down:
        dst = np.roll(dst, 2, axis=0)  # template corner i lands where corner i+2 would: a 180 degree turn
    hom = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    return (_fit_fiducials(hom, template, params.dpi, size) if keep_fiducials else hom), size


#: Blank forms already rendered in this process, by (template name, dpi).
_BLANKS: dict[tuple[str, int], np.ndarray] = {}


def blank_form(template: Template, dpi: int) -> np.ndarray:
    """The printed form at ``dpi``, rendered once per process and resolution (read-only)."""
    key = (template.name, dpi)
    if key not in _BLANKS:
        img = render_blank(template, dpi)
        img.setflags(write=False)
        _BLANKS[key] = img
    return _BLANKS[key]


def _lighting(rng: np.random.Generator, shape: tuple[int, int], strength: float) -> np.ndarray:
    """Low-resolution light level (float32, 1 - strength .. 1): a gradient, a vignette and soft blobs."""
    yy, xx = np.mgrid[0:1:complex(shape[0]), 0:1:complex(shape[1])].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(angle) * xx + np.sin(angle) * yy
    vignette = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
    blobs = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), max(shape) / 8)
    parts = [(p - p.min()) / max(float(np.ptp(p)), 1e-6) for p in (gradient, vignette, blobs)]
    shade = sum(wt * p for wt, p in zip(rng.dirichlet((2, 1, 1)), parts, strict=True))
    return 1 - strength * shade


def _paper_field(rng: np.random.Generator, size: tuple[int, int], lighting: float, texture: float) -> np.ndarray:
    """Full-size uint8 multiplier (255 = unchanged): uneven lighting times paper mottling."""
    w, h = size
    small = (max(2, h // TEXTURE_GRID), max(2, w // TEXTURE_GRID))
    light = cv2.resize(_lighting(rng, (max(2, h // LIGHT_GRID), max(2, w // LIGHT_GRID)), lighting),
                       small[::-1], interpolation=cv2.INTER_LINEAR)
    mottle = cv2.GaussianBlur(rng.standard_normal(small, dtype=np.float32), (0, 0), TEXTURE_BLUR)
    field = light * (1 + texture * mottle / max(float(mottle.std()), 1e-6)) * 255
    return cv2.resize(np.clip(field, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)


def _tint(page: np.ndarray, params: ScanParams) -> np.ndarray:
    """Paper colour: greyscale scans keep one channel; colour scans scale each channel by the paper tint."""
    if params.grey:
        return cv2.multiply(page, float(np.mean(params.paper_tint)))
    levels = np.arange(256)
    return cv2.merge([cv2.LUT(page, np.clip(levels * c + 0.5, 0, 255).astype(np.uint8)) for c in params.paper_tint])


def scanned_page(template: Template, params: ScanParams, keep_fiducials: bool, rng: np.random.Generator,
                 texture: float) -> tuple[np.ndarray, np.ndarray]:
    """The blank paper as the scanner sees it - placed, lit, textured, blurred, noisy, tinted - and the
    homography from template pixels to it.

    Lighting, blur and noise are applied once, to the single-channel page: ink is laid on later as a
    multiplicative layer (blurred alike, see :class:`~pipeline.synth.canvas.Canvas`), which gives the same
    picture as lighting the finished sheet, at a third of the cost.
    """
    hom, size = placement(params, template, keep_fiducials)
    page = cv2.warpPerspective(blank_form(template, params.dpi), hom, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=params.background)
    page = cv2.multiply(page, _paper_field(rng, size, params.lighting, texture), scale=1 / 255)
    if params.blur_sigma > 0:
        page = cv2.GaussianBlur(page, (0, 0), params.blur_sigma)
    gain = params.noise_sigma / UNIFORM_SD
    page = cv2.addWeighted(page, 1.0, rng.integers(0, 256, page.shape, dtype=np.uint8), gain, -128 * gain)
    return _tint(page, params), hom


def encode_image(image: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    """The scan as file bytes: PNG for ``png``, JPEG (at the scan's quality) for ``jpg`` and PDF pages."""
    ext, params = ((".png", [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION]) if image_format == "png"
                   else (".jpg", [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]))
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {ext}")
    return buf.tobytes()
