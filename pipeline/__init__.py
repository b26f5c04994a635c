"""tally-audit: read handwritten vote counts off scanned tally sheets and flag altered or inconsistent ones.

Stages (one subpackage each), connected only through documented files:
``forms`` (the printed template) -> ``synth`` (synthetic scans with ground truth) -> ``vision`` (register the
page, cut digits) -> ``model`` (recognise digits) -> ``audit`` (table and flags) -> ``report`` (HTML).
"""

__version__ = "0.1.0"
