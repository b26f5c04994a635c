"""Report stage: a static, self-contained HTML report of an audited batch (docs/DATA.md section 5).

Public API: :func:`build_report` and :class:`ReportSettings`. They are imported on first use, so registering
the ``report`` command (which every ``python -m pipeline`` call does) does not import matplotlib or jinja2.
"""

from __future__ import annotations

__all__ = ["ReportSettings", "build_report"]


def __getattr__(name: str):
    if name in __all__:
        from pipeline.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'pipeline.report' has no attribute {name!r}")
