"""Synthetic scanned tally sheets with ground truth (``python -m pipeline synth``, ``make data``).

Public API: :class:`SynthSettings`, :func:`render_sheet` (one sheet in memory, deterministic in
``(seed, index)``), :func:`generate_batch` (the batch folder of docs/DATA.md section 1), :class:`DigitSource`
(MNIST test-split digits) and :func:`pipeline.synth.pen.style_digit` (restyle a digit, e.g. thick felt pen).
"""

from pipeline.synth.batch import generate_batch
from pipeline.synth.digits import DigitSource
from pipeline.synth.pen import PenStyle, style_digit
from pipeline.synth.settings import SynthSettings
from pipeline.synth.sheet import SyntheticSheet, plan_sheet, render_sheet

__all__ = ["DigitSource", "PenStyle", "SynthSettings", "SyntheticSheet", "generate_batch", "plan_sheet",
           "render_sheet", "style_digit"]
