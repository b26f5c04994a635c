"""Per-sheet arithmetic rules and the read-uncertainty search that separates OCR doubt from real inconsistency.

A sheet's counts must satisfy its form's rules, written as data in the template (the acta: party votes +
unregistered + null = total; ballots received = total + left over; nothing above the registered voters; see
:class:`pipeline.audit.schema.FormSchema`), and its ids must lie in their ranges with the station key's choices
ticked once (``ids_well_formed``). Each rule is evaluated on the sheet's values by the one rule engine's
comparison (:func:`pipeline.audit.rules.holds`). When a rule fails, the recogniser may have misread a digit:
:func:`find_fix` searches the alternative readings of the fields of the failing rules (and of rules sharing a
field with them; each digit's top-2 and its other labels, from ``fields.parquet``) for one that makes every rule
hold and is at least ``min_fix_ratio`` times as likely as the reading it replaces. Found: the flag is
``needs_review`` and names the reading. Not found, the failure is ``inconsistent`` only if every field of the rule
was read right with at least ``min_read_probability`` (product of calibrated confidences); else a misread the
alternatives do not cover could still explain it, and the flag is ``needs_review`` naming the doubtful fields and
their confidence. The wording is the scanned sheet's (readings, misreads): these are OCR readings.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass

from pipeline.audit.flags import Flag
from pipeline.audit.rules import holds, shortfall
from pipeline.audit.schema import ID_RULE, ID_RULE_LABEL, UNREADABLE_RULE, FormSchema, SheetRule, Side, spell
from pipeline.audit.settings import AuditSettings

Values = dict[str, int | None]
#: Floor of a reading's own probability (:func:`read_probability`), the smallest positive float.
SMALLEST_PROBABILITY = sys.float_info.min
#: A side of a failed rule with at most this many terms is spelled with its values (``a + b = 3 + 4 = 7``); a
#: longer one gives only its sum (``PAN+PRI+...+null votes = 220``).
MAX_SPELLED_TERMS = 3


@dataclass(frozen=True)
class SheetReading:
    """What the reader and recogniser produced for one sheet, as the rules need it.

    ``values`` maps every numeric field to its value (``None``: unreadable or missing), ``candidates`` to its
    alternative readings ``[(value, probability), ...]`` best first, ``images`` to the field image's path relative
    to the audit output folder; ``choices`` maps each choice field to its one ticked option (``None``: none or
    several ticked).
    """

    sheet_id: str
    values: dict
    texts: dict
    confidences: dict
    candidates: dict
    choices: dict
    images: dict


@dataclass(frozen=True)
class Check:
    """Outcome of one rule on one set of values: ``ok`` is ``None`` when a field it needs is missing.

    ``rule_text`` and ``rule_label`` are the form rule's text and title; a ``soft`` rule is a warning.
    """

    rule: str
    fields: tuple[str, ...]
    ok: bool | None
    reason: str
    discrepancy: int | None = None
    evidence: dict | None = None
    rule_text: str = ""
    rule_label: str = ""
    soft: bool = False


@dataclass(frozen=True)
class Fix:
    """Alternative readings that make every rule hold: ``changes[field] = (as_read, alternative, probability)``;
    ``ratio`` is how likely they are relative to the readings they replace."""

    changes: dict
    probability: float
    ratio: float

    def describe(self, schema: FormSchema) -> str:
        """E.g. ``reading PAN as 137 instead of 131 (p=0.31)``."""
        parts = [f"{schema.display_name(f)} as {new} instead of {_shown(old)} (p={p:.2f})"
                 for f, (old, new, p) in self.changes.items()]
        return "reading " + " and ".join(parts)

    def as_evidence(self) -> dict:
        """The changes as JSON-able evidence: ``{field: {read, alternative, probability}}``."""
        return {f: {"read": old, "alternative": new, "probability": p} for f, (old, new, p) in self.changes.items()}


def _shown(value: int | None) -> str:
    return "unreadable" if value is None else str(value)


def _missing(values: Values, fields: tuple[str, ...], schema: FormSchema) -> tuple[str, ...]:
    """The numeric ``fields`` with no value (choice fields are ticks, never 'missing' here)."""
    return tuple(f for f in fields if f in schema.max_value and values.get(f) is None)


def side_value(side: Side, values: Values) -> int:
    """The value of one side of a rule on a sheet's values (every field present)."""
    return sum(c * (1 if f is None else values[f]) for c, f in side)


def _single(side: Side) -> bool:
    """True when the side is one field, as written (no coefficient)."""
    return len(side) == 1 and side[0] == (1, side[0][1]) and side[0][1] is not None


def side_words(side: Side, values: Values, schema: FormSchema) -> str:
    """One side of a failed rule with its value: ``total votes = 229``, ``a + b = 3 + 4 = 7``, or for a long
    side ``PAN+PRI+...+null votes = 220``."""
    total = side_value(side, values)
    if len(side) > MAX_SPELLED_TERMS:
        return f"{spell(side, schema.display, compact=True)} = {total}"
    if len(side) == 1:
        return f"{spell(side, schema.display)} = {total}"
    shown = {f: str(values[f]) for _, f in side if f is not None}
    return f"{spell(side, schema.display)} = {spell(side, shown)} = {total}"


def failure_words(rule: SheetRule, values: Values, schema: FormSchema) -> str:
    """What a failed rule found, in words: ``total votes + ballots left over = 289 + 186 = 475 but ballots
    received says 474``; ``PRI = 620 is more than the 500 registered voters``."""
    left, right = rule.left, rule.right
    if rule.op == "==":
        big, small = (left, right) if len(left) >= len(right) else (right, left)
        other = (f"{spell(small, schema.display)} says {side_value(small, values)}" if _single(small)
                 else side_words(small, values, schema))
        return f"{side_words(big, values, schema)} but {other}"
    comparison = "more" if rule.op == "<=" else "less"
    other = (f"the {side_value(right, values)} {spell(right, schema.display)}" if _single(right)
             else side_words(right, values, schema))
    return f"{side_words(left, values, schema)} is {comparison} than {other}"


def rule_check(rule: SheetRule, values: Values, schema: FormSchema, s: AuditSettings) -> Check:
    """One rule on one sheet's values: holds within its tolerance (the rule's own, else ``rule_tolerance``)?"""
    fields = rule.fields
    common = {"rule_text": rule.text, "rule_label": rule.label, "soft": rule.soft}
    if _missing(values, fields, schema):
        return Check(rule.name, fields, None, rule.description, **common)
    left, right = side_value(rule.left, values), side_value(rule.right, values)
    gap = left - right
    tolerance = s.rule_tolerance if rule.tolerance is None else rule.tolerance
    ok = bool(holds(rule.op, gap, tolerance))
    reason = rule.description if ok else failure_words(rule, values, schema)
    return Check(rule.name, fields, ok, reason, int(shortfall(rule.op, gap)),
                 {"left": left, "right": right, "gap": gap}, **common)


def ids_well_formed(values: Values, choices: dict, schema: FormSchema) -> Check | None:
    """Every id field within its range (template ``id_ranges``) and every choice of the station key ticked once;
    ``None`` when the form has neither."""
    ids = tuple(r.field for r in schema.id_ranges)
    fields = ids + schema.key_choices
    if not fields:
        return None
    common = {"rule_text": schema.id_rule_text, "rule_label": ID_RULE_LABEL}
    if _missing(values, ids, schema):
        return Check(ID_RULE, fields, None, ID_RULE_LABEL, **common)
    problems = [f"{schema.display_name(r.field)} {values[r.field]} is not between {r.low} and "
                f"{'the box limit' if r.high is None else r.high}" for r in schema.id_ranges
                if not r.holds(values[r.field])]
    problems += [f"{schema.display_name(c)} is not one ticked option of {'/'.join(schema.choices[c])}"
                 for c in schema.key_choices if choices.get(c) not in schema.choices[c]]
    evidence = {"ids": {f: values[f] for f in ids}, "choices": {c: choices.get(c) for c in schema.key_choices}}
    return Check(ID_RULE, fields, not problems, "; ".join(problems) or "ids ok", evidence=evidence, **common)


def all_checks(values: Values, choices: dict, schema: FormSchema, s: AuditSettings) -> list[Check]:
    """Every rule of the form on one sheet's values, in the template's order, then the id check."""
    checks = [rule_check(r, values, schema, s) for r in schema.rules]
    ids = ids_well_formed(values, choices, schema)
    return checks + ([ids] if ids is not None else [])


def _hard_failure(checks: list[Check]) -> bool:
    """True when a rule that is not soft fails."""
    return any(c.ok is False and not c.soft for c in checks)


def breaks_a_rule(values: Values, choices: dict, schema: FormSchema, s: AuditSettings) -> bool:
    """Whether ``values`` break a rule that is not soft: ``_hard_failure(all_checks(...))`` without building the
    checks, stopping at the first failure (the misread search asks this for every candidate reading)."""
    for rule in schema.rules:
        if rule.soft or any(values.get(f) is None for f in rule.fields if f in schema.max_value):
            continue
        tolerance = s.rule_tolerance if rule.tolerance is None else rule.tolerance
        if not holds(rule.op, side_value(rule.left, values) - side_value(rule.right, values), tolerance):
            return True
    ids = ids_well_formed(values, choices, schema)
    return ids is not None and ids.ok is False


def read_probability(reading: SheetReading, field: str) -> float:
    """Probability of the value as read: its own entry among the candidates, else the field's confidence, else 1
    (an unreadable field has no reading to compare an alternative with). Never 0: a probability that underflowed
    becomes the smallest positive float, so every alternative counts as far likelier."""
    read = reading.values.get(field)
    if read is None:
        return 1.0
    own = [p for v, p in reading.candidates.get(field, []) if v == read]
    conf = reading.confidences.get(field)
    return max(float(own[0]), SMALLEST_PROBABILITY) if own else float(conf) if conf else 1.0


def _options(reading: SheetReading, field: str, s: AuditSettings) -> list[tuple[int, float, float]]:
    """Alternative values of ``field`` other than the one read: ``(value, probability, likelihood ratio to the
    reading)``, each at least ``min_fix_ratio`` as likely as the reading."""
    read, p_read = reading.values.get(field), read_probability(reading, field)
    return [(int(v), float(p), float(p) / p_read) for v, p in reading.candidates.get(field, [])
            if v is not None and v != read and p / p_read >= s.min_fix_ratio]


def find_fix(reading: SheetReading, checks: list[Check], schema: FormSchema, s: AuditSettings) -> Fix | None:
    """Most likely set of alternative readings (at most ``max_changed_fields`` fields) under which no rule fails
    (soft rules aside).

    Only fields of a failed rule, of a rule sharing a field with one (a misread total breaks both sums), or
    unreadable ones that some rule uses are changed. The alternatives' likelihood relative to the readings they
    replace (product of the probability ratios) must reach ``min_fix_ratio``: a reading the recogniser found 100
    times less likely than what it read does not explain an inconsistency away. ``None``: no such reading.
    """
    failed_fields = {f for c in checks if c.ok is False for f in c.fields}
    targets = {f for c in checks if failed_fields & set(c.fields) for f in c.fields}
    used = {f for c in checks for f in c.fields}
    targets |= set(_missing(reading.values, schema.numeric_fields, schema)) & used
    options = {f: _options(reading, f, s) for f in schema.numeric_fields if f in targets}
    options = {f: o for f, o in options.items() if o}
    best: Fix | None = None
    for k in range(1, s.max_changed_fields + 1):
        for fields in itertools.combinations(options, k):
            for choice in itertools.product(*(options[f] for f in fields)):
                ratio = math.prod(r for _, _, r in choice)
                if ratio < s.min_fix_ratio or (best and ratio <= best.ratio):
                    continue
                values = {**reading.values, **{f: v for f, (v, _, _) in zip(fields, choice, strict=True)}}
                if not breaks_a_rule(values, reading.choices, schema, s):
                    changes = {f: (reading.values.get(f), v, p) for f, (v, p, _) in zip(fields, choice, strict=True)}
                    best = Fix(changes, math.prod(p for _, p, _ in choice), ratio)
    return best


def read_right_probability(reading: SheetReading, fields: tuple[str, ...]) -> float:
    """Probability that every numeric field of ``fields`` (those the reading has values for) was read right: the
    product of their calibrated confidences (itself the product over their digits). A field with no confidence
    (blank) counts as certain."""
    return math.prod(float(reading.confidences.get(f) or 1.0) for f in fields if f in reading.values)


def misread_reach(reading: SheetReading, field: str, schema: FormSchema) -> int:
    """The largest change a misread of ``field`` can make: ``10**(n + 1) - 1`` for ``n`` digits read, within
    the field's largest value. Besides misreading its digits, the reader may have missed one of them altogether
    (a faint or light digit, one cut off with a box line): on sheets in styles kept out of tuning, most clean
    sheets called ``inconsistent`` had a leading digit lost from a doubtful field (86 read as 6)."""
    digits = len(reading.texts.get(field) or "") + 1
    return min(10 ** digits - 1, schema.max_value.get(field, 10 ** digits - 1))


def doubtful_fields(reading: SheetReading, check: Check, schema: FormSchema, s: AuditSettings) -> tuple[str, ...]:
    """The least confidently read fields of ``check`` that keep the chance of an all-right reading below
    ``min_read_probability`` (removed one by one, least confident first, until the rest reach it), provided
    misreads of their digits could together account for the rule's discrepancy. Empty when the failure stands
    as ``inconsistent``: the fields were read confidently enough, or the doubtful ones are too short to explain it
    (:func:`misread_reach`: a single digit read, even with one more missed, cannot hide 150 votes)."""
    numeric = sorted((f for f in check.fields if f in schema.max_value),
                     key=lambda f: float(reading.confidences.get(f) or 1.0))
    doubtful: list[str] = []
    while numeric and read_right_probability(reading, tuple(numeric)) < s.min_read_probability:
        doubtful.append(numeric.pop(0))
    reach = sum(misread_reach(reading, f, schema) for f in doubtful)
    return tuple(doubtful) if check.discrepancy is None or reach >= check.discrepancy else ()


def _evidence(reading: SheetReading, check: Check, fix: Fix | None, schema: FormSchema) -> dict:
    """A failed rule's evidence: the rule (text and label), the values compared and, per field, the value, text,
    confidence, label and image as read, with any fix (docs/DATA.md section 4)."""
    numeric = [f for f in check.fields if f in schema.max_value]
    return {**(check.evidence or {}),
            "rule_text": check.rule_text, "rule_label": check.rule_label,
            "labels": {f: schema.labels.get(f, f) for f in check.fields},
            "values": {f: reading.values.get(f) for f in numeric},
            "text": {f: reading.texts.get(f) for f in numeric},
            "confidence": {f: reading.confidences.get(f) for f in numeric},
            "images": {f: reading.images[f] for f in numeric if f in reading.images},
            "fix": None if fix is None else fix.as_evidence(),
            "fix_probability": None if fix is None else fix.probability,
            "fix_likelihood_ratio": None if fix is None else fix.ratio,
            "read_right_probability": read_right_probability(reading, check.fields)}


def _doubt_reason(reading: SheetReading, check: Check, doubtful: tuple[str, ...], schema: FormSchema,
                  s: AuditSettings) -> str:
    """E.g. ``...; the digits of total votes (62%) were read with low confidence (...), so a misread could explain
    this: check the scan``."""
    shown = " and ".join(f"{schema.display_name(f)} ({float(reading.confidences.get(f) or 1.0):.0%})"
                         for f in doubtful)
    return (f"{check.reason}; the digits of {shown} were read with low confidence (all of this rule's fields read "
            f"right: {read_right_probability(reading, check.fields):.0%}, below {s.min_read_probability:.0%}), "
            "so a misread could explain this: check the scan")


def _failure_flag(reading: SheetReading, check: Check, fix: Fix | None, schema: FormSchema,
                  s: AuditSettings) -> Flag:
    """A ``needs_review`` flag when ``fix`` explains the failure or the rule's fields were read with too little
    confidence for the failure to stand, else an ``inconsistent`` one (``suspicious``, low, for a soft rule).

    A rule over ids alone (no count field) is the exception: ids add or remove no vote, so without a fix it still
    only asks for a look.
    """
    doubtful = doubtful_fields(reading, check, schema, s)
    if fix is not None:
        verdict, severity = "needs_review", "low"
        reason = f"{check.reason}; {fix.describe(schema)} would make every rule hold, so check the scan"
    elif not set(check.fields) & set(schema.count_fields):
        verdict, severity = "needs_review", "medium"
        reason = f"{check.reason}; ids carry no votes, so check the ids on the scan"
    elif doubtful:
        verdict, severity = "needs_review", "medium"
        reason = _doubt_reason(reading, check, doubtful, schema, s)
    else:
        big = check.discrepancy is not None and check.discrepancy >= s.major_discrepancy
        verdict, severity = ("suspicious", "low") if check.soft else ("inconsistent", "high" if big else "medium")
        reason = (f"{check.reason}; the fields of this rule were read with "
                  f"{read_right_probability(reading, check.fields):.0%} confidence and no alternative reading of "
                  f"the digits at least 1/{1 / s.min_fix_ratio:.0f} as likely as the one made makes the sheet "
                  "consistent" + ("; the form calls this rule soft: a warning, not a failure" if check.soft else ""))
    return Flag(reading.sheet_id, check.fields, check.rule, severity, verdict, reason,
                _evidence(reading, check, fix, schema))


def _unreadable_flag(reading: SheetReading, unknown: list[Check], fix: Fix | None, schema: FormSchema) -> Flag:
    """One ``needs_review`` flag naming the unreadable fields and the rules that could not be checked."""
    missing = sorted({f for c in unknown for f in _missing(reading.values, c.fields, schema)},
                     key=schema.numeric_fields.index)
    shown = ", ".join(f"{schema.display_name(f)} (read '{reading.texts.get(f) or ''}')" for f in missing)
    rules = "; ".join(dict.fromkeys(c.reason for c in unknown))
    reason = f"cannot check {rules}: unreadable {shown}"
    if fix is not None:
        reason += f"; {fix.describe(schema)} would be consistent"
    evidence = {"rules": sorted({c.rule for c in unknown}),
                "text": {f: reading.texts.get(f) for f in missing},
                "confidence": {f: reading.confidences.get(f) for f in missing},
                "candidates": {f: reading.candidates.get(f, []) for f in missing},
                "images": {f: reading.images[f] for f in missing if f in reading.images},
                "fix": None if fix is None else fix.as_evidence()}
    return Flag(reading.sheet_id, tuple(missing), UNREADABLE_RULE, "low", "needs_review", reason, evidence)


def arithmetic_flags(reading: SheetReading, schema: FormSchema, s: AuditSettings) -> list[Flag]:
    """Flags for every rule the sheet breaks (``needs_review`` or ``inconsistent``) or cannot be checked on."""
    checks = all_checks(reading.values, reading.choices, schema, s)
    failed = [c for c in checks if c.ok is False]
    unknown = [c for c in checks if c.ok is None]
    if not failed and not unknown:
        return []
    fix = find_fix(reading, checks, schema, s)
    flags = [_failure_flag(reading, c, fix, schema, s) for c in failed]
    return flags + ([_unreadable_flag(reading, unknown, fix, schema)] if unknown else [])


def counts_consistent(values: Values, choices: dict, schema: FormSchema, s: AuditSettings) -> bool | None:
    """Whether a set of counts obeys every rule that is not soft (``None`` if some rule cannot be checked); used on
    ground truth."""
    checks = all_checks(values, choices, schema, s)
    if _hard_failure(checks):
        return False
    return None if any(c.ok is None for c in checks) else True
