"""Synthetic scanned tally sheets with ground truth (``python -m pipeline synth``, ``make data``).

Public API: :class:`SynthSettings`, :func:`render_sheet` (one sheet in memory, deterministic in
``(seed, index)``), :func:`generate_batch` (the batch folder of docs/DATA.md section 1), :class:`DigitSource`
(MNIST test-split digits) and :func:`pipeline.synth.pen.style_digit` (restyle a digit, e.g. thick felt pen).
"""

from __future__ import annotations

import importlib

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


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562), so that importing the package (as every
    ``python -m pipeline`` call does through its command modules) loads no heavy library."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
