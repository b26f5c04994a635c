"""The printed tally-sheet form: template data (YAML), typed geometry and a renderer."""

from __future__ import annotations

from pipeline.lazy import lazy_getattr

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "render_blank": "pipeline.forms.render",
    "save_form": "pipeline.forms.render",
    "DEFAULT_TEMPLATE": "pipeline.forms.template",
    "Field": "pipeline.forms.template",
    "Rect": "pipeline.forms.template",
    "Template": "pipeline.forms.template",
    "load_template": "pipeline.forms.template",
    "run_template": "pipeline.forms.template",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
