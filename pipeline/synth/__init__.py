"""Synthetic scanned tally sheets with ground truth (``python -m pipeline synth``, ``make data``).

Public API: :class:`SynthSettings`, :func:`render_sheet` (one sheet in memory, deterministic in
``(seed, index)``), :func:`generate_batch` (the batch folder of docs/DATA.md section 1), :class:`DigitSource`
(MNIST test-split digits) and :func:`pipeline.synth.pen.style_digit` (restyle a digit, e.g. thick felt pen).
"""

from __future__ import annotations

from pipeline.lazy import lazy_getattr

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "generate_batch": "pipeline.synth.batch",
    "DigitSource": "pipeline.synth.digits",
    "PenStyle": "pipeline.synth.pen",
    "style_digit": "pipeline.synth.pen",
    "SynthSettings": "pipeline.synth.settings",
    "SyntheticSheet": "pipeline.synth.sheet",
    "plan_sheet": "pipeline.synth.sheet",
    "render_sheet": "pipeline.synth.sheet",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
