"""The printed tally-sheet form: template data (YAML), typed geometry and a renderer."""

from pipeline.forms.render import render_blank, save_form
from pipeline.forms.template import DEFAULT_TEMPLATE, Field, Rect, Template, load_template

__all__ = ["DEFAULT_TEMPLATE", "Field", "Rect", "Template", "load_template", "render_blank", "save_form"]
