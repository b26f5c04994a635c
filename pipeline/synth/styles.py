"""Named styles of the wide generator and their split into a ``train`` and a ``heldout`` group.

Every way a sheet can vary beyond today's generator has a style name in one of three families: how the digits
were tampered with (each tampering style belongs to one visible alteration kind), who wrote the sheet (pen colour,
hand ranges, honest pen changes between fields) and how it was scanned (damage). ``style_set`` picks the group a
batch draws from:

- ``classic``: today's generator (the four classic tampering styles, blue/black pens, no extra scan damage);
- ``train``: only the :data:`TRAIN` styles;
- ``heldout``: only the :data:`HELDOUT` styles, disjoint from ``train``, so the benches can measure on tampering,
  writers and scan damage that training and tuning never saw;
- ``all``: both groups.

``exclude_styles`` removes named styles from the chosen group (leave-one-style-out evaluation).
"""

from __future__ import annotations

STYLE_SETS = ("classic", "train", "heldout", "all")

#: Tampering style -> the visible alteration kind it realises (``F_alteration`` stays one of the four kinds).
TAMPER_STYLES = {
    "trace": "overwrite",             # classic: new digit traced boldly over the old, only stroke-adding changes
    "digit_over_digit": "overwrite",  # any digit written over any other in the same box (2 over 1, 0 over 7)
    "retrace": "overwrite",           # stroke-adding change, the new digit double- or triple-struck
    "other_pen_over": "overwrite",    # any digit over any other, in a contrasting pen colour and weight
    "erase": "erase",                 # classic: rubbed out, faint remains and a smudge, new digit on top
    "fluid": "fluid",                 # classic: near-white rounded patch, new digits on top
    "fluid_odd": "fluid",             # other whites (cream, bluish, grey) and shapes (ellipse, brush, tape)
    "strike": "crossout",             # classic: lines or a zigzag through the number, replacement beside
    "scribble": "crossout",           # dense looping scribble over the number, replacement beside
    "hatching": "crossout",           # parallel (or crossed) diagonal hatching, replacement beside
}
#: The style each kind is drawn in by the classic generator.
CLASSIC_TAMPER = {"overwrite": "trace", "erase": "erase", "fluid": "fluid", "crossout": "strike"}
#: Overwrite styles that can put any digit over any other (the rest only add strokes: 1 -> 7, 3 -> 8, ...).
ANY_DIGIT_STYLES = frozenset({"digit_over_digit", "other_pen_over"})
CROSSOUT_STYLES = frozenset(s for s, k in TAMPER_STYLES.items() if k == "crossout")

#: Pen colours (also the writer-style names of the colours).
PEN_COLOURS = ("black", "blue", "dark_blue", "red", "green", "pencil")
#: Writer styles besides the colours: the usual hand (the settings' ``stroke_scale``/``slant_deg``/``pressure``
#: ranges) or an unusual one (the ``wide_*`` ranges outside them); honest pen changes between fields.
HAND_STYLES = ("hand_usual", "hand_unusual")
FIELD_PEN_STYLES = ("field_weight", "field_pen")
WRITER_STYLES = (*PEN_COLOURS, *HAND_STYLES, *FIELD_PEN_STYLES)

#: Scan damage styles (light/heavy bleed share ``bleed_rate``; tilt/strong_perspective have their own rates).
DAMAGE_STYLES = ("light_bleed", "heavy_bleed", "banding", "shadow", "curl", "photocopy", "faded", "tilt",
                 "strong_perspective")

ALL_STYLES = frozenset(TAMPER_STYLES) | frozenset(WRITER_STYLES) | frozenset(DAMAGE_STYLES)

TRAIN = frozenset({
    "trace", "digit_over_digit", "retrace", "erase", "fluid", "strike",
    "black", "blue", "red", "hand_usual", "field_weight",
    "light_bleed", "photocopy", "faded", "tilt",
})
HELDOUT = frozenset({
    "other_pen_over", "fluid_odd", "scribble", "hatching",
    "dark_blue", "green", "pencil", "hand_unusual", "field_pen",
    "heavy_bleed", "banding", "shadow", "curl", "strong_perspective",
})
CLASSIC = frozenset(CLASSIC_TAMPER.values())
GROUPS = {"classic": CLASSIC, "train": TRAIN, "heldout": HELDOUT, "all": TRAIN | HELDOUT}


def active_styles(style_set: str, exclude: tuple[str, ...] = ()) -> frozenset[str]:
    """The styles a batch may draw from: the ``style_set`` group without ``exclude``."""
    return GROUPS[style_set] - frozenset(exclude)


def kinds_with_styles(active: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Visible alteration kind -> its active tampering styles (in :data:`TAMPER_STYLES` order); kinds without
    an active style are left out."""
    out: dict[str, list[str]] = {}
    for style, kind in TAMPER_STYLES.items():
        if style in active:
            out.setdefault(kind, []).append(style)
    return {k: tuple(v) for k, v in out.items()}
