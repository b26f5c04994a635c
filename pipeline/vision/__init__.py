"""The reader: register scanned tally sheets onto the form and cut every count into MNIST-normalised digits.

Public API: :func:`read_page` (one page in memory -> :class:`PageRead`), :func:`read_batch` (files and folders
-> the run folder of docs/DATA.md section 2, in a process pool), :class:`ReadSettings` (config section
``read``) and :func:`to_mnist` (MNIST-style normalisation of one digit). Nothing here imports TensorFlow.

How a page is read:

1. Loading (``loading``): PNG/JPEG/TIFF/BMP pages and PDF pages (PDFium, rendered at the reading dpi); the pixel
   count is checked from the header before decoding (in PDFs, every embedded image's too). Bad files become
   ``pages.csv`` rows: ``empty_file``, ``unreadable``, ``too_large``, ``no_pages``, ``page_limit``,
   ``duplicate_id``, ``not_a_file``, ``unsafe_name``, ``worker_died``, ``error``.
2. Registration (``register``): the four corner squares and the orientation mark give a homography onto the
   template at the reading dpi; sideways and upside-down scans are turned back (``rotation_fixed_deg``,
   ``flipped``). Score = fiducials found / 4 x share of printed frame and box lines found where the template
   has them; below ``min_registration_score``, or without three corner squares, the page is ``not_a_form``.
3. Fields (``fields``, ``lines``, ``segment``): ink against the local paper white (hysteresis thresholds), paper
   folds and printed box lines removed with the strokes that cross them restored, then per box ``empty``,
   ``digit`` (a clean split of two digits gives slots 0 and 1) or ``ambiguous`` (see ``segment`` for the rules).
4. Crossed-out counts: ink that spans the boxes it crosses from edge to edge (a line or zigzag through the
   number) marks those boxes ``ambiguous``, and then the digits written right of the boxes (up to
   ``beside_right_mm``, where the replacement goes) are cut as crops with ``box`` = -1, -2, ... from left to
   right. Read such a field as the ``box < 0`` digits in order. Ink beside unstruck boxes is not read. The struck
   boxes are marked ``struck`` in the crops; with nothing written beside them (most are large digits filling their
   box), the recogniser reads them for review, except in a count with no room beside its boxes.
5. Normalisation (``normalise``): MNIST's recipe (20 px box, centre of mass at 14, white on black) with its
   grey-level statistics.

Scripts that call :func:`read_batch` with more than one worker need the usual ``if __name__ == "__main__":``
guard: workers are started by a fork server, which imports the main module.
"""

from __future__ import annotations

from pipeline.lazy import lazy_getattr

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "read_batch": "pipeline.vision.batch",
    "to_mnist": "pipeline.vision.normalise",
    "DigitCrop": "pipeline.vision.page",
    "Mark": "pipeline.vision.page",
    "PageRead": "pipeline.vision.page",
    "read_page": "pipeline.vision.page",
    "ReadSettings": "pipeline.vision.settings",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
