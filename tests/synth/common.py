"""Settings and helpers shared by the synth tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from pipeline.forms.template import MM_PER_INCH
from pipeline.synth.scan import placement

#: Low resolution and one process keep rendering fast; every alteration kind is likely in a few sheets.
FAST = {"dpi": 100, "workers": 1, "gallery_sheets": 4}
TAMPERED = {"altered_rate_absent": 1.0, "altered_rate_present": 1.0, "fabricated_rate": 0.5,
            "arithmetic_error_rate": 0.3, "max_altered_fields": 3}


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fiducials_inside(params, template) -> bool:
    """Whether every corner of every fiducial lands inside the scan that ``params`` place the page on."""
    hom, (w, h) = placement(params, template, keep_fiducials=True)
    s = params.dpi / MM_PER_INCH
    corners = np.array([[[(r.x + dx) * s, (r.y + dy) * s] for r in template.fiducials
                         for dx, dy in ((0, 0), (r.w, 0), (r.w, r.h), (0, r.h))]])
    pts = cv2.perspectiveTransform(corners, hom)[0]
    return bool((pts >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all())
