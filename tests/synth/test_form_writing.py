"""Writing in the boxes of a form other than the acta (issue 15, the certificate bench): in short, wide boxes (the
2014 certificate's, 6.4 x 8.6 mm, in table rows that share their walls) digits and filler marks stay clear of the
rows above and below; in tall, narrow boxes (the Lampiran's) the writing is what it was."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.forms.template import Rect
from pipeline.synth import formsheet, writer
from pipeline.synth.filler import X_SIZE, x_strokes
from pipeline.synth.formsheet import WALL_CLEARANCE_MM, WRITING_ASPECT, WRITING_FILL, FormWriteContext
from pipeline.synth.pen import PenStyle, Writer
from pipeline.synth.writer import Pens, WriteContext

#: A box of the certificate's section I and one of the Lampiran's JUMLAH column (mm, printed walls included).
SHORT = Rect(120.0, 64.5, 8.6, 6.4)
TALL = Rect(120.0, 64.5, 5.5, 11.0)


@pytest.fixture
def aims(monkeypatch):
    """``aims(ctx_class, box, jitter, digit_height)``: the (centre, height) of 300 digits written in ``box``, the
    drawing itself left out."""
    def run(cls, box: Rect, jitter: float, digit_height: float) -> list[tuple[tuple[float, float], float]]:
        seen = []

        def fake(canvas, digits, rng, pen, d, centre, height, **ink):
            seen.append((centre, height))
            return 0
        monkeypatch.setattr(formsheet, "draw_digit", fake)
        monkeypatch.setattr(writer, "draw_digit", fake)
        pen = Writer(PenStyle(), (0.0, 0.0, 0.0), digit_height, (0.8, 0.9))
        ctx = cls(None, np.random.default_rng(7), Pens(pen, pen), jitter, WRITING_ASPECT)
        for d in range(300):
            ctx.digit(None, pen, d % 10, box)
        return seen
    return run


def test_digits_in_a_short_box_stay_clear_of_its_walls(aims):
    """Sized to WRITING_FILL of the box's height, and aimed so that their ink keeps WALL_CLEARANCE_MM from the
    top and bottom walls however large the jitter; across the box they go where the acta's writer aims."""
    digit_height = 0.85
    ours, acta = aims(FormWriteContext, SHORT, 0.2, digit_height), aims(WriteContext, SHORT, 0.2, digit_height)
    height = SHORT.h * WRITING_FILL
    mid = SHORT.y + SHORT.h / 2
    room = (SHORT.h - digit_height * height) / 2 - WALL_CLEARANCE_MM
    assert all(h == pytest.approx(height) for _, h in ours)
    assert all(abs(cy - mid) <= room + 1e-9 for (_, cy), _ in ours)
    assert [cx for (cx, _), _ in ours] == [cx for (cx, _), _ in acta]
    assert any(abs(cy - mid) > room for (_, cy), _ in acta)  # the jitter alone would cross the walls


def test_digits_in_a_tall_box_are_written_as_before(aims):
    """Where a box is tall enough (the Lampiran's), neither the size nor the aim changes (its sheets are
    byte-identical to those made before the limits)."""
    assert aims(FormWriteContext, TALL, 0.07, 0.85) == aims(WriteContext, TALL, 0.07, 0.85)


def test_an_x_in_a_wide_box_is_sized_by_its_height():
    """An X is as wide as X_SIZE of the box's width, or of its height where the box is wider than tall: a small
    cross in a short, wide box, not one from wall to wall."""
    rng = np.random.default_rng(3)
    w, h = 34.0, 22.0
    widths = []
    for _ in range(300):
        pts = np.vstack(x_strokes(rng, w, h))
        widths.append(pts[:, 0].max() - pts[:, 0].min())
    assert np.median(widths) < np.mean(X_SIZE) * h * 1.2
    assert np.percentile(widths, 95) < 0.9 * h < X_SIZE[1] * w
