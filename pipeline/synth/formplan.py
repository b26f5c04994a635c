"""What a synthetic sheet of any template says: counts that obey the template's own rules, the filler marks in
unused leading boxes, honest slips and alterations. (The 1988 acta has its own electoral model:
:mod:`pipeline.synth.electoral` and :mod:`pipeline.synth.tamper`.)

**Counts.** The template's ``rules`` (:mod:`pipeline.audit.rules`; a role stands for the sum of its fields) are
parsed; the identities (``==``) form a linear system over the count fields, which is reduced once per template
(exact fractions) so that each identity *determines* one field from the others. A field is preferred as
determined when its role is a total or remainder (:data:`TOTAL_ROLES`) or its name says ``total``, then the later
in the template (totals follow their parts). Each sheet then draws a polling station (registered voters
``registered_voters``, ballots received up to ``extra_ballots`` more, turnout around ``turnout_mean``, invalid
votes around ``null_share_mean``, votes for no listed choice around ``unregistered_share_mean``, candidate shares
from a flat Dirichlet) and gives every *free* field its value by role (``candidate``: its votes; ``valid``,
``invalid``, ``registered``, ``received``, ``left_over``, ``other_votes``; ``total``/``found``/``issued``: the
voters; ``cancelled``/``lost``/``not_counted``: 0-``SMALL_COUNT``; no role: uniform up to the station's size
shared among the free fields of its identities), derives the determined ones, and draws again (with a smaller
station after every ``SHRINK_EVERY`` tries) while a value is not a whole number, is negative, exceeds its boxes,
or a bound (``<=``, ``>=``) fails. Fields without a role get plausible sums but no electoral model (on the 2014
certificate page, voters of each list may exceed its registered voters: no rule says otherwise).

**Tampering** (the same kinds, styles and rates as the acta; a form without representatives' ticks uses
``altered_rate_absent``): 1 to ``max_altered_fields`` of the candidate counts (every free count when the form has
no candidate) are inflated or deflated; with ``adjust_totals_rate`` the determined fields are derived again from
the new values, so the rules still hold; otherwise they break. ``fabricated_rate`` changes counts cleanly. An
honest addition mistake (``arithmetic_error_rate``) puts a determined field off by 1-20. A zero is left blank
with ``zero_blank_rate``.

**Filler marks.** Each sheet's writer has one habit for the unused leading boxes, drawn from the template's
``filler_marks`` (``x``, ``dash``, ``zero``), or leaves them blank (``FILLER_BLANK_RATE``). With ``x`` or
``dash`` a zero count is written as filler marks in every box (X-X-X) with chance ``ALL_FILLER_ZERO_RATE``, as
the reader reads it (0); otherwise as filler marks and a final 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from pipeline.audit.rules import parse_rule
from pipeline.errors import ConfigError
from pipeline.forms.template import Template
from pipeline.synth.electoral import TURNOUT_LIMITS
from pipeline.synth.settings import SynthSettings
from pipeline.synth.tamper import (
    ARITHMETIC_SLIP,
    INFLATE_RATE,
    AlterationSummary,
    FieldPlan,
    StylePicker,
    _deflate,
    _inflate,
    _realise,
)

#: Tries at drawing a station whose counts satisfy the rules and fit the boxes; every SHRINK_EVERY failed tries
#: the station shrinks by SHRINK.
MAX_TRIES = 200
SHRINK_EVERY, SHRINK = 10, 0.8
#: Dirichlet concentration per candidate (1: flat, any split between candidates as likely).
CANDIDATE_CONCENTRATION = 1.0
#: Roles (:data:`pipeline.forms.template.FIELD_ROLES`) of the fields whose values the station gives directly
#: (others are drawn uniformly), and the roles preferred as determined by an identity (totals and remainders).
CANDIDATE_ROLES = ("candidate",)
VOTER_ROLES = ("total", "found", "issued")
SMALL_ROLES = ("cancelled", "lost", "not_counted")
TOTAL_ROLES = ("valid", "total", "left_over", "found", "issued", "received")
#: Ballots lost, cancelled or not counted at a station: up to this many.
SMALL_COUNT = 5
#: Filler habits: chance that a writer leaves unused leading boxes blank although the form has filler marks, and
#: that a zero is written as filler marks in every box (X-X-X) by a writer whose habit is ``x`` or ``dash``.
FILLER_BLANK_RATE = 0.1
ALL_FILLER_ZERO_RATE = 0.5
STROKE_FILLERS = ("x", "dash")


def _is_total(name: str, role: str | None) -> bool:
    return "total" in name.lower() or role in TOTAL_ROLES


@dataclass(frozen=True)
class LinearRule:
    """A rule over count fields: ``sum(coefs[f] * f) + const`` compared with 0 by ``op`` (roles expanded)."""

    text: str
    coefs: dict[str, int]
    const: int
    op: str

    def holds(self, values: dict[str, int]) -> bool:
        gap = self.const + sum(c * values[f] for f, c in self.coefs.items())
        return gap == 0 if self.op == "==" else gap <= 0 if self.op == "<=" else gap >= 0


def linear_rules(template: Template) -> tuple[LinearRule, ...]:
    """The template's rules parsed by :mod:`pipeline.audit.rules`, every role replaced by its fields (summed).

    Raises:
        ConfigError: a rule names something that is not a count field or a role of count fields.
    """
    counts = {f.name for f in template.fields_of_kind("count")}
    bindings = template.rule_bindings() if hasattr(template, "rule_bindings") else {n: (n,) for n in counts}
    out = []
    for entry in template.rules:
        text = getattr(entry, "text", entry)
        rule = parse_rule(text)
        coefs: dict[str, int] = {}
        const = 0
        for t in rule.terms:
            if t.name is None:
                const += t.coefficient
                continue
            names = bindings.get(t.name, ())
            if not names or not set(names) <= counts:
                raise ConfigError(f"template '{template.name}': rule {text!r} names {t.name!r}, which is not a "
                                  f"count field or a role of count fields; synthetic sheets satisfy rules over "
                                  f"counts only")
            for n in names:
                coefs[n] = coefs.get(n, 0) + t.coefficient
        out.append(LinearRule(rule.text, {n: c for n, c in coefs.items() if c}, const, rule.op))
    return tuple(out)


@dataclass(frozen=True)
class RuleSystem:
    """A template's rules solved for drawing: ``determined`` fields as ``constant + sum(coef * free field)``, the
    ``free`` count fields, and every rule (the inequalities are checked after derivation)."""

    counts: tuple[str, ...]
    free: tuple[str, ...]
    determined: dict[str, tuple[Fraction, dict[str, Fraction]]]
    rules: tuple[LinearRule, ...]
    #: Free fields per identity they appear in (for the uniform draw of fields without a known role).
    peers: dict[str, int] = field(default_factory=dict)

    def derive(self, free: dict[str, int]) -> dict[str, Fraction]:
        """The determined fields' values from the free ones."""
        return {name: const + sum((c * free[f] for f, c in coefs.items()), Fraction(0))
                for name, (const, coefs) in self.determined.items()}

    def holds(self, values: dict[str, int]) -> list[str]:
        """Texts of the rules that fail on ``values`` (every field of a rule must be in ``values``)."""
        return [rule.text for rule in self.rules if not rule.holds(values)]


def rule_system(template: Template) -> RuleSystem:
    """Parse ``template.rules`` and reduce its identities (module docstring).

    Raises:
        ConfigError: a rule names something other than count fields, or the identities contradict each other.
    """
    rules = linear_rules(template)
    counts = tuple(f.name for f in template.fields_of_kind("count"))
    order = {name: i for i, name in enumerate(counts)}
    roles = {f.name: f.role for f in template.fields}
    # Preferred pivots first: totals, then later fields.
    columns = sorted(counts, key=lambda n: (not _is_total(n, roles[n]), -order[n]))
    identities = [r for r in rules if r.op == "=="]
    rows = [([Fraction(r.coefs.get(c, 0)) for c in columns], Fraction(r.const)) for r in identities]
    pivots: list[tuple[int, int]] = []  # (row, column)
    r = 0
    for c in range(len(columns)):
        k = next((i for i in range(r, len(rows)) if rows[i][0][c] != 0), None)
        if k is None:
            continue
        rows[r], rows[k] = rows[k], rows[r]
        coefs, const = rows[r]
        rows[r] = ([v / coefs[c] for v in coefs], const / coefs[c])
        for i in range(len(rows)):
            if i != r and rows[i][0][c] != 0:
                factor = rows[i][0][c]
                rows[i] = ([a - factor * b for a, b in zip(rows[i][0], rows[r][0], strict=True)],
                           rows[i][1] - factor * rows[r][1])
        pivots.append((r, c))
        r += 1
    if any(const != 0 for _, const in rows[r:]):
        raise ConfigError(f"template '{template.name}': its rules contradict each other; no counts satisfy all of "
                          f"{[x.text for x in rules]}")
    pivot_columns = {c for _, c in pivots}
    free = tuple(n for n in counts if columns.index(n) not in pivot_columns)
    determined = {}
    for row, c in pivots:
        coefs, const = rows[row]
        determined[columns[c]] = (-const, {columns[j]: -coefs[j] for j in range(len(columns))
                                           if j != c and coefs[j] != 0})
    peers: dict[str, int] = {}
    for rule in identities:
        n_free = sum(1 for name in rule.coefs if name in free)
        for name in rule.coefs:
            peers[name] = max(peers.get(name, 1), n_free)
    return RuleSystem(counts, free, determined, rules, peers)


@dataclass(frozen=True)
class Station:
    """One polling station of a form without an electoral model of its own: its size, ballots and votes."""

    registered: int
    received: int
    voters: int
    valid: int
    invalid: int
    other: int
    candidates: dict[str, int]


def draw_station(rng: np.random.Generator, settings: SynthSettings, candidates: tuple[str, ...],
                 shrink: float = 1.0) -> Station:
    """A station: registered voters, ballots received (up to ``extra_ballots`` more), turnout, invalid votes and
    votes for no listed choice from the settings, the rest split among ``candidates`` by a flat Dirichlet draw;
    ``shrink`` scales its size down."""
    low, high = settings.registered_voters
    registered = max(1, round(float(rng.uniform(low, high)) * shrink))
    received = registered + int(rng.integers(0, settings.extra_ballots + 1))
    turnout = float(np.clip(rng.normal(settings.turnout_mean, settings.turnout_sd), *TURNOUT_LIMITS))
    voters = int(rng.binomial(registered, turnout))
    invalid = int(rng.binomial(voters, min(0.5, float(rng.beta(2, 2 / max(settings.null_share_mean, 1e-3) - 2)))))
    other = int(rng.binomial(voters - invalid, settings.unregistered_share_mean))
    valid = voters - invalid - other
    shares = rng.dirichlet(np.full(len(candidates), CANDIDATE_CONCENTRATION)) if candidates else np.zeros(0)
    votes = rng.multinomial(valid, shares) if candidates else np.zeros(0, int)
    return Station(registered, received, voters, valid, invalid, other,
                   dict(zip(candidates, (int(v) for v in votes), strict=True)))


def _by_role(rng: np.random.Generator, name: str, role: str | None, station: Station, cap: int, peers: int) -> int:
    """A free field's value at ``station``, by its role (uniform up to the station's size shared among ``peers``
    free fields, and ``cap``, for a field without a known role)."""
    if name in station.candidates:
        return station.candidates[name]
    direct = {"invalid": station.invalid, "valid": station.valid, "registered": station.registered,
              "received": station.received, "left_over": station.received - station.voters,
              "other_votes": station.other, "candidate": 0}
    direct.update(dict.fromkeys(VOTER_ROLES, station.voters))
    if role in direct:
        return direct[role]
    if role in SMALL_ROLES:
        return int(rng.integers(0, SMALL_COUNT + 1))
    if _is_total(name, role):
        return station.voters
    return int(rng.integers(0, max(1, min(cap, station.registered // max(1, peers))) + 1))


def candidate_fields(template: Template) -> tuple[str, ...]:
    """Count fields that hold a candidate's (or party's) votes."""
    return tuple(f.name for f in template.fields_of_kind("count") if f.role in CANDIDATE_ROLES or f.party)


def honest_counts(rng: np.random.Generator, settings: SynthSettings, template: Template,
                  system: RuleSystem) -> dict[str, int]:
    """Every count field's honest value: the rules hold and each value fits its boxes (module docstring).

    Raises:
        ConfigError: no draw in ``MAX_TRIES`` satisfies the rules within the boxes.
    """
    fields = {f.name: f for f in template.fields_of_kind("count")}
    candidates = tuple(n for n in candidate_fields(template) if n in system.free)
    for attempt in range(MAX_TRIES):
        station = draw_station(rng, settings, candidates, SHRINK ** (attempt // SHRINK_EVERY))
        values = {n: _by_role(rng, n, fields[n].role, station, fields[n].max_value, system.peers.get(n, 1))
                  for n in system.free}
        derived = system.derive(values)
        if not all(v.denominator == 1 and 0 <= v <= fields[n].max_value for n, v in derived.items()):
            continue
        values.update({n: int(v) for n, v in derived.items()})
        if all(0 <= values[n] <= fields[n].max_value for n in values) and not system.holds(values):
            return {n: values[n] for n in system.counts}
    raise ConfigError(f"template '{template.name}': no counts satisfying {list(template.rules)} fit the boxes in "
                      f"{MAX_TRIES} draws")


@dataclass(frozen=True)
class FormContent(AlterationSummary):
    """What one sheet of a template says: the count fields' plans, the ids, ticks and choices, the writer's
    filler habit (``x``, ``dash``, ``zero`` or ``""`` for blank) and, per count field, the mark in its unused
    leading boxes (``filler``) and whether it is a zero written as filler marks in every box (``all_filler``)."""

    fields: dict[str, FieldPlan]
    arithmetic_error_field: str | None
    totals_adjusted: bool
    ids: dict[str, int]
    ticks: dict[str, int]
    choices: dict[str, str]
    filler_habit: str
    filler: dict[str, str]
    all_filler: frozenset[str]


def _targets(template: Template, system: RuleSystem, exclude: frozenset[str]) -> list[str]:
    """The counts a tamperer changes: the candidates (every free count when the form names none)."""
    candidates = candidate_fields(template)
    return [n for n in candidates or system.free if n not in exclude]


def _tamper(rng: np.random.Generator, values: dict[str, int], template: Template, system: RuleSystem,
            settings: SynthSettings, exclude: frozenset[str], picker: StylePicker | None) -> dict[str, tuple]:
    """Changed fields with their new number, kind and style (``fabricated`` without a ``picker``)."""
    fields = {f.name: f for f in template.fields_of_kind("count")}

    def realise(name: str, v: int, exact: bool) -> tuple[int, str, str]:
        if picker is None:
            return v, "fabricated", "fabricated"
        return _realise(rng, values[name], v, settings, exact, picker, len(fields[name].boxes))

    targets = _targets(template, system, exclude)
    if not targets:
        return {}
    n = int(rng.integers(1, min(settings.max_altered_fields, len(targets)) + 1))
    chosen = [targets[i] for i in sorted(rng.choice(len(targets), size=n, replace=False))]
    changes = {}
    for name in chosen:
        old = values[name]
        inflate = old == 0 or rng.random() < INFLATE_RATE
        new = _inflate(rng, old, fields[name].max_value) if inflate else _deflate(rng, old)
        if new != old:
            changes[name] = realise(name, new, exact=False)
    if changes and rng.random() < settings.adjust_totals_rate:
        new_values = {**values, **{f: v for f, (v, _, _) in changes.items()}}
        derived = system.derive({f: new_values[f] for f in system.free})
        fits = all(v.denominator == 1 and 0 <= v <= fields[f].max_value for f, v in derived.items())
        if fits and not set(changes) & set(derived):
            changes.update({f: realise(f, int(v), exact=True) for f, v in derived.items()
                            if int(v) != values[f] and f not in exclude})
    return {f: c for f, c in changes.items() if c[1] != "none"}


def _slip(rng: np.random.Generator, values: dict[str, int], template: Template,
          system: RuleSystem) -> tuple[str | None, int]:
    """An honest addition mistake in a determined field: off by 1-20, kept within its boxes."""
    if not system.determined:
        return None, 0
    names = list(system.determined)
    name = names[int(rng.integers(len(names)))]
    cap = template.field(name).max_value
    delta = int(rng.integers(1, ARITHMETIC_SLIP + 1)) * (1 if rng.random() < 0.5 else -1)
    value = values[name] + delta
    return name, value if 0 <= value <= cap else max(0, min(cap, values[name] - delta))


def _ids(rng: np.random.Generator, template: Template) -> dict[str, int]:
    """A number for every id field: within the template's ``id_ranges`` where it gives one, else one that fills
    all the field's boxes."""
    ranges = {name: (low, high) for name, low, high in getattr(template, "id_ranges", ())}
    out = {}
    for f in template.fields_of_kind("id"):
        low, high = ranges.get(f.name, (None, None))
        low = 10 ** (len(f.boxes) - 1) if low is None else int(low)
        high = f.max_value if high is None else min(int(high), f.max_value)
        out[f.name] = int(rng.integers(low, max(low, high) + 1))
    return out


def plan_form(rng: np.random.Generator, settings: SynthSettings, template: Template, system: RuleSystem,
              picker: StylePicker) -> FormContent:
    """Decide everything one sheet of ``template`` says (module docstring)."""
    honest = honest_counts(rng, settings, template, system)
    counts = system.counts
    original = dict(honest)
    error_field = None
    if rng.random() < settings.arithmetic_error_rate:
        error_field, value = _slip(rng, original, template, system)
        if error_field is not None:
            original[error_field] = value
    final, kinds = dict(original), dict.fromkeys(counts, "none")
    styles = dict(kinds)
    if rng.random() < settings.fabricated_rate:
        for f, (v, kind, style) in _tamper(rng, final, template, system, settings, frozenset(), None).items():
            final[f], original[f], kinds[f], styles[f] = v, v, kind, style
    if rng.random() < settings.altered_rate_absent:
        touched = frozenset(f for f, k in kinds.items() if k != "none")
        for f, (v, kind, style) in _tamper(rng, final, template, system, settings, touched, picker).items():
            final[f], kinds[f], styles[f] = v, kind, style
    blank = {f: final[f] == 0 and kinds[f] in ("none", "fabricated") and rng.random() < settings.zero_blank_rate
             for f in counts}
    plans = {f: FieldPlan(f, honest[f], original[f], None if blank[f] else final[f], kinds[f], styles[f])
             for f in counts}
    habit = ""
    if template.filler_marks and rng.random() >= FILLER_BLANK_RATE:
        habit = template.filler_marks[int(rng.integers(len(template.filler_marks)))]
    all_filler = frozenset(f for f in counts if habit in STROKE_FILLERS and plans[f].written == 0
                           and kinds[f] in ("none", "fabricated") and rng.random() < ALL_FILLER_ZERO_RATE)
    filler = {f: habit if plans[f].written is not None else "" for f in counts}
    ticks = {f.name: int(rng.random() < 0.5) for f in template.fields_of_kind("tick")}
    choices = {f.name: f.options[int(rng.integers(len(f.options)))] for f in template.fields_of_kind("choice")
               if f.options}
    adjusted = any(kinds[f] != "none" for f in system.determined)
    return FormContent(plans, error_field, adjusted, _ids(rng, template), ticks, choices, habit, filler, all_filler)
