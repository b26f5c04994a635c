"""Synthetic scanned tally sheets with ground truth (``python -m pipeline synth``, ``make data``).

Public API: :class:`SynthSettings`, :func:`render_sheet` (one sheet in memory, deterministic in
``(seed, index)``), :func:`generate_batch` (the batch folder of docs/DATA.md section 1), :class:`DigitSource`
(MNIST test-split digits) and :func:`pipeline.synth.pen.style_digit` (restyle a digit, e.g. thick felt pen).

Any form template can be filled (``generate_batch(..., template=...)``, ``synth --form``): the acta by its 1988
electoral model, any other template by :func:`render_form_sheet` (:mod:`pipeline.synth.formsheet`: a
reference-image template's reference with its boxes blanked, counts obeying the template's rules, filler marks),
and :func:`score_run` scores a read run of such a batch against its truth (:mod:`pipeline.synth.form_bench`).
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
    "plan_form_sheet": "pipeline.synth.formsheet",
    "render_form_sheet": "pipeline.synth.formsheet",
    "score_run": "pipeline.synth.form_bench",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
