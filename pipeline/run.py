"""``python -m pipeline run``: the whole pipeline on a folder of scans (placeholder until integration)."""


def register(sub) -> None:
    """Add the ``run`` sub-command."""
