"""Packages whose public names are imported on first use (PEP 562).

Every ``python -m pipeline`` call imports each stage package through its command module; importing a package must
therefore load no heavy library (TensorFlow, OpenCV, pandas). A package lists its public names with the module
defining each and sets ``__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_getattr(package: str, exports: dict[str, str], namespace: dict) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``exports[name]``'s module when ``name`` is first asked for, and keeps
    the value in ``namespace`` (the package's globals) so later look-ups are plain."""
    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    return __getattr__
