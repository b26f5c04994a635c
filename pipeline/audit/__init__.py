"""audit stage: the sheet table, flags for altered and inconsistent counts, digit forensics, the Cantu comparison.

``run_audit(rundir, out, settings, truth=None)`` is the Python API of ``python -m pipeline audit``; the visible
alteration detector is trained by ``python -m pipeline train-alteration``. See docs/DATA.md section 4.
``python -m pipeline audit-table`` audits a published results table instead (:mod:`pipeline.audit.table_audit`).

The names below are imported on first use (PEP 562), so that ``import pipeline.audit`` and the results-table
modules do not load OpenCV or tqdm, which only the scanned-sheet audit needs.
"""

from __future__ import annotations

from pipeline.lazy import lazy_getattr

#: Public name -> the module defining it.
_EXPORTS = {
    "AuditResult": "pipeline.audit.audit",
    "run_audit": "pipeline.audit.audit",
    "Flag": "pipeline.audit.flags",
    "AlterationSettings": "pipeline.audit.settings",
    "AuditSettings": "pipeline.audit.settings",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
