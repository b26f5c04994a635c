"""``python -m pipeline bench --only alteration``: the alteration
detector's generalisation figures alone, without the audit bench's pipeline batch and forensics
(:func:`pipeline.audit.bench.run_alteration_bench`)."""

from __future__ import annotations

from pipeline.audit.bench import run_alteration_bench


def run_bench(config: dict, quick: bool) -> dict:
    """The bench stage's entry point (see :mod:`pipeline.bench`)."""
    return run_alteration_bench(config, quick)
