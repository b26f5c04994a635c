"""The printed tally-sheet form: template data (YAML), typed geometry and a renderer."""

from __future__ import annotations

import importlib

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "render_blank": "pipeline.forms.render",
    "save_form": "pipeline.forms.render",
    "DEFAULT_TEMPLATE": "pipeline.forms.template",
    "Field": "pipeline.forms.template",
    "Rect": "pipeline.forms.template",
    "Template": "pipeline.forms.template",
    "load_template": "pipeline.forms.template",
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
