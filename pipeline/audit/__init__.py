"""audit stage: the sheet table, flags for altered and inconsistent counts, digit forensics, the Cantu comparison.

``run_audit(rundir, out, settings, truth=None)`` is the Python API of ``python -m pipeline audit``; the visible
alteration detector is trained by ``python -m pipeline train-alteration``. See docs/DATA.md section 4.
"""

from pipeline.audit.audit import AuditResult, run_audit
from pipeline.audit.flags import Flag
from pipeline.audit.settings import AlterationSettings, AuditSettings

__all__ = ["AlterationSettings", "AuditResult", "AuditSettings", "Flag", "run_audit"]
