"""What gets written on a sheet: honest mistakes and alterations, decided before anything is drawn.

The plan is pure data, so rates and invariants can be tested on thousands of sheets without rendering one.
Alterations shift votes toward the ruling party (PRI inflated, opposition deflated). A visible alteration
(overwrite, erase, correction fluid, crossout) is more likely where no opposition representative watched the
count; a fabricated one changes the number cleanly. Either way the totals are usually left as they were, so the
arithmetic breaks, but sometimes (``adjust_totals_rate``) the tamperer fixes them too.

Each visible alteration also has a *style* (:mod:`pipeline.synth.styles`): how it was drawn. The classic
generator uses one style per kind and draws nothing extra; the wide one draws the style from its own random
stream, so switching ``style_set`` never changes which stations are tampered with.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pipeline.synth.electoral import LEFT_OVER, RECEIVED, RULING_PARTY, TOTAL, Station
from pipeline.synth.settings import ALTERATION_KINDS, VISIBLE_KINDS, SynthSettings
from pipeline.synth.styles import ANY_DIGIT_STYLES, CLASSIC_TAMPER, TAMPER_STYLES, kinds_with_styles

MAX_COUNT = 999
#: Chance that an alteration inflates the ruling party (otherwise it only deflates the opposition).
INFLATE_RATE = 0.75
INFLATE_FRACTION = (0.10, 0.60)
MIN_GAIN = 5
#: A deflated opposition count keeps at most this fraction of its votes.
KEEP_FRACTION_MAX = 0.6
ARITHMETIC_SLIP = 20
ARITHMETIC_FIELDS = (TOTAL, LEFT_OVER)
#: Digits a pen can turn each digit into by adding strokes (1 -> 7, 3 -> 8, ...): an overwrite can only do
#: these, so an overwritten number stays readable as the new one. An empty box can take any digit.
OVERWRITES_TO = {0: (8, 9), 1: (4, 7, 9), 2: (8,), 3: (8, 9), 4: (9,), 5: (6, 8, 9), 6: (8,), 7: (9,), 8: (),
                 9: (8,)}
#: Writing any digit over any other (the new one stays readable only because it is written last and darker).
ANY_DIGIT = {d: tuple(x for x in range(10) if x != d) for d in range(10)}


@dataclass(frozen=True)
class StylePicker:
    """Which tampering styles a batch may use, and the random stream that picks among them (None: classic)."""

    kinds: dict[str, tuple[str, ...]]
    rng: np.random.Generator | None = None

    @classmethod
    def classic(cls) -> StylePicker:
        """Today's generator: one style per kind, no random draw."""
        return cls({k: (s,) for k, s in CLASSIC_TAMPER.items()})

    @classmethod
    def for_settings(cls, settings: SynthSettings, rng: np.random.Generator) -> StylePicker:
        """The settings' active tampering styles (classic for ``style_set: classic`` without exclusions)."""
        if settings.style_set == "classic" and not settings.exclude_styles:
            return cls.classic()
        return cls(kinds_with_styles(settings.styles()), rng)

    def style(self, kind: str) -> str:
        """A style of ``kind`` (uniform among the active ones)."""
        options = self.kinds[kind]
        return options[0] if self.rng is None or len(options) == 1 else options[int(self.rng.integers(len(options)))]


@dataclass(frozen=True)
class FieldPlan:
    """One count field: ``honest`` count, ``original`` number first written, ``written`` final visible number.

    ``written`` is ``None`` for a blank field (a zero left empty). For a visible alteration ``original`` is the
    number still (partly) visible under it; for ``fabricated`` the change left no trace.
    """

    name: str
    honest: int
    original: int
    written: int | None
    kind: str = "none"
    style: str = "none"


class AlterationSummary:
    """Sheet-level summaries of the planned count fields (``self.fields``: name -> :class:`FieldPlan`), shared by
    the acta's :class:`SheetContent` and the plans of other templates (:mod:`pipeline.synth.formplan`)."""

    fields: dict[str, FieldPlan]

    @property
    def kinds(self) -> tuple[str, ...]:
        """Alteration kinds present, in canonical order."""
        present = {p.kind for p in self.fields.values()}
        return tuple(k for k in ALTERATION_KINDS if k != "none" and k in present)

    @property
    def styles(self) -> tuple[str, ...]:
        """Tampering styles of the visible alterations present, in :data:`TAMPER_STYLES` order."""
        present = {p.style for p in self.fields.values()}
        return tuple(s for s in TAMPER_STYLES if s in present)

    @property
    def altered(self) -> bool:
        """Any visible alteration on the sheet."""
        return any(k in VISIBLE_KINDS for k in self.kinds)

    @property
    def fabricated(self) -> bool:
        """Any count changed without a visible trace."""
        return "fabricated" in self.kinds


@dataclass(frozen=True)
class SheetContent(AlterationSummary):
    """Everything a perfect reader and an auditor could know about one sheet."""

    station: Station
    fields: dict[str, FieldPlan]
    arithmetic_error_field: str | None
    totals_adjusted: bool


def arithmetic_slip(rng: np.random.Generator, values: dict[str, int]) -> tuple[str, int]:
    """An honest addition mistake: total votes or ballots left over off by 1-20, kept within 0-999."""
    name = ARITHMETIC_FIELDS[int(rng.integers(len(ARITHMETIC_FIELDS)))]
    delta = int(rng.integers(1, ARITHMETIC_SLIP + 1)) * (1 if rng.random() < 0.5 else -1)
    value = values[name] + delta
    return name, value if 0 <= value <= MAX_COUNT else values[name] - delta


def _inflate(rng: np.random.Generator, value: int, cap: int = MAX_COUNT) -> int:
    gain = max(MIN_GAIN, round(value * rng.uniform(*INFLATE_FRACTION)))
    return min(cap, value + gain)


def _deflate(rng: np.random.Generator, value: int) -> int:
    new = int(value * rng.uniform(0, KEEP_FRACTION_MAX))
    return new if new != value else value - 1


def shift_toward_ruling(rng: np.random.Generator, values: dict[str, int], parties: tuple[str, ...],
                        max_fields: int, exclude: frozenset[str]) -> dict[str, int]:
    """New values for 1..``max_fields`` party counts: PRI inflated and/or the strongest opposition deflated."""
    opposition = [p for p in parties if p != RULING_PARTY and p not in exclude and values[p] > 0]
    can_inflate = RULING_PARTY not in exclude and values[RULING_PARTY] < MAX_COUNT
    inflate = can_inflate and (not opposition or rng.random() < INFLATE_RATE)
    changes = {RULING_PARTY: _inflate(rng, values[RULING_PARTY])} if inflate else {}
    if opposition:
        low, high = (0, max_fields - 1) if inflate else (1, max_fields)
        weights = np.asarray([values[p] for p in opposition], float)
        n = min(int(rng.integers(low, high + 1)), len(opposition))
        for i in rng.choice(len(opposition), size=n, replace=False, p=weights / weights.sum()):
            changes[opposition[i]] = _deflate(rng, values[opposition[i]])
    return changes


def adjust_totals(values: dict[str, int], changes: dict[str, int], exclude: frozenset[str]) -> dict[str, int]:
    """Total votes and ballots left over rewritten to match ``changes``, where they stay within 0-999."""
    delta = sum(new - values[f] for f, new in changes.items())
    total = values[TOTAL] + delta
    if delta == 0 or {TOTAL, LEFT_OVER} & exclude or not 0 <= total <= MAX_COUNT:
        return {}
    left_over = values[RECEIVED] - total
    return {TOTAL: total, LEFT_OVER: left_over} if left_over >= 0 else {TOTAL: total}


def overwrite_value(old: int, target: int, n_boxes: int,
                    reach: dict[int, tuple[int, ...]] = OVERWRITES_TO) -> int | None:
    """The number nearest ``target`` that overwriting digits of ``old`` can make (moving the same way as
    ``target``), or None when no overwrite moves it that way; ``reach`` says what each digit can become."""
    text = str(old).rjust(n_boxes)
    options = [[c, *map(str, range(10))] if c == " " else [c, *map(str, reach[int(c)])] for c in text]
    texts = ("".join(digits).lstrip() for digits in itertools.product(*options))
    # filled boxes stay contiguous and a number does not start with 0
    values = {int(t) for t in texts if " " not in t and not (len(t) > 1 and t[0] == "0")} - {old}
    candidates = [v for v in values if (v > old) == (target > old)]
    return min(candidates, key=lambda v: (abs(v - target), v)) if candidates else None


def _visible_kind(rng: np.random.Generator, settings: SynthSettings, picker: StylePicker,
                  allow_overwrite: bool = True) -> str | None:
    """A visible kind by ``alteration_weights``, among kinds with an active style (None if none is left)."""
    allowed = [(k != "overwrite" or allow_overwrite) and k in picker.kinds for k in VISIBLE_KINDS]
    weights = np.asarray(settings.alteration_weights, float) * allowed
    if weights.sum() <= 0:
        weights = np.asarray(allowed, float)
        if weights.sum() <= 0:
            return None
    return VISIBLE_KINDS[int(rng.choice(len(VISIBLE_KINDS), p=weights / weights.sum()))]


def _realise(rng: np.random.Generator, old: int, target: int, settings: SynthSettings, exact: bool,
             picker: StylePicker, n_boxes: int = len(str(MAX_COUNT))) -> tuple[int, str, str]:
    """How a visible change from ``old`` toward ``target`` is made: resulting number, kind and style. An
    overwrite reaches the nearest number its style's digits allow in ``n_boxes`` boxes; where that will not do
    (``exact`` totals) another kind is used (or, with no other kind active, the change is dropped)."""
    kind = _visible_kind(rng, settings, picker)
    if kind == "overwrite":
        style = picker.style(kind)
        value = overwrite_value(old, target, n_boxes, ANY_DIGIT if style in ANY_DIGIT_STYLES
                                else OVERWRITES_TO)
        if value is not None and (value == target or not exact):
            return value, kind, style
        kind = _visible_kind(rng, settings, picker, allow_overwrite=False)
        if kind is None:
            return old, "none", "none"
    return target, kind, picker.style(kind)


def _tamper(rng: np.random.Generator, values: dict[str, int], parties: tuple[str, ...], settings: SynthSettings,
            exclude: frozenset[str], picker: StylePicker | None) -> dict[str, tuple[int, str, str]]:
    """Changed fields with their new number, alteration kind and style (``fabricated`` without a ``picker``)."""
    def realise(f: str, v: int, exact: bool) -> tuple[int, str, str]:
        return _realise(rng, values[f], v, settings, exact, picker) if picker else (v, "fabricated", "fabricated")

    targets = shift_toward_ruling(rng, values, parties, settings.max_altered_fields, exclude)
    changes = {f: realise(f, v, exact=False) for f, v in targets.items()}
    if changes and rng.random() < settings.adjust_totals_rate:
        totals = adjust_totals(values, {f: v for f, (v, _, _) in changes.items()}, exclude)
        changes.update({f: realise(f, v, exact=True) for f, v in totals.items()})
    return {f: c for f, c in changes.items() if c[1] != "none"}


def plan_content(rng: np.random.Generator, station: Station, settings: SynthSettings,
                 parties: tuple[str, ...], count_fields: tuple[str, ...],
                 picker: StylePicker | None = None) -> SheetContent:
    """Decide every count field's original and final written number, alteration kind and style for one sheet
    (``picker``: the tampering styles to use, classic when None)."""
    picker = picker or StylePicker.classic()
    original = {f: station.counts[f] for f in count_fields}
    error_field = None
    if rng.random() < settings.arithmetic_error_rate:
        error_field, original[error_field] = arithmetic_slip(rng, original)
    final, kinds = dict(original), dict.fromkeys(count_fields, "none")
    styles = dict(kinds)
    if rng.random() < settings.fabricated_rate:
        for f, (v, kind, style) in _tamper(rng, final, parties, settings, frozenset(), None).items():
            final[f], original[f], kinds[f], styles[f] = v, v, kind, style  # no trace: the new number is all
    rate = settings.altered_rate_present if station.opposition_present else settings.altered_rate_absent
    if rng.random() < rate:
        touched = frozenset(f for f, k in kinds.items() if k != "none")
        for f, (v, kind, style) in _tamper(rng, final, parties, settings, touched, picker).items():
            final[f], kinds[f], styles[f] = v, kind, style
    blank = {f: final[f] == 0 and kinds[f] in ("none", "fabricated") and rng.random() < settings.zero_blank_rate
             for f in count_fields}
    fields = {f: FieldPlan(f, station.counts[f], original[f], None if blank[f] else final[f], kinds[f], styles[f])
              for f in count_fields}
    adjusted = any(kinds[f] != "none" for f in ARITHMETIC_FIELDS)
    return SheetContent(station, fields, error_field, adjusted)
