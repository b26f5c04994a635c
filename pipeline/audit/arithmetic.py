"""Per-sheet arithmetic rules and the read-uncertainty search that separates OCR doubt from real inconsistency.

A sheet's counts must satisfy the acta's identities (party votes + unregistered + null = total; ballots received
= total + left over; nothing above the registered voters; well-formed ids). When a rule fails, the recogniser may
have misread a digit: :func:`find_fix` searches the alternative readings of the uncertain fields (each digit's
top-2 and its other labels, from ``fields.parquet``) for one that makes every rule hold and is at least
``min_fix_ratio`` times as likely as the reading it replaces. Found: the flag is ``needs_review`` and names the
reading. Not found, the failure is ``inconsistent`` only if every field of the rule was read right with at least
``min_read_probability`` (product of calibrated confidences); else a misread the alternatives do not cover could
still explain it, and the flag is ``needs_review`` naming the doubtful fields and their confidence.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass

from pipeline.audit.flags import Flag
from pipeline.audit.schema import MAX_VALUE, NUMERIC_FIELDS, STATION_TYPES, VOTE_PARTS, display_name
from pipeline.audit.settings import AuditSettings

Values = dict[str, int | None]
ID_RULE = "ids_well_formed"
#: Floor of a reading's own probability (:func:`read_probability`), the smallest positive float.
SMALLEST_PROBABILITY = sys.float_info.min


@dataclass(frozen=True)
class SheetReading:
    """What the reader and recogniser produced for one sheet, as the rules need it.

    ``values`` maps every numeric field to its value (``None``: unreadable or missing), ``candidates`` to its
    alternative readings ``[(value, probability), ...]`` best first, ``images`` to the field image's path relative
    to the audit output folder.
    """

    sheet_id: str
    values: dict
    texts: dict
    confidences: dict
    candidates: dict
    station_type: str | None
    images: dict


@dataclass(frozen=True)
class Check:
    """Outcome of one rule on one set of values: ``ok`` is ``None`` when a field it needs is missing."""

    rule: str
    fields: tuple[str, ...]
    ok: bool | None
    reason: str
    discrepancy: int | None = None
    evidence: dict | None = None


@dataclass(frozen=True)
class Fix:
    """Alternative readings that make every rule hold: ``changes[field] = (as_read, alternative, probability)``;
    ``ratio`` is how likely they are relative to the readings they replace."""

    changes: dict
    probability: float
    ratio: float

    def describe(self) -> str:
        """E.g. ``reading PAN as 137 instead of 131 (p=0.31)``."""
        parts = [f"{display_name(f)} as {new} instead of {_shown(old)} (p={p:.2f})"
                 for f, (old, new, p) in self.changes.items()]
        return "reading " + " and ".join(parts)

    def as_evidence(self) -> dict:
        """The changes as JSON-able evidence: ``{field: {read, alternative, probability}}``."""
        return {f: {"read": old, "alternative": new, "probability": p} for f, (old, new, p) in self.changes.items()}


def _shown(value: int | None) -> str:
    return "unreadable" if value is None else str(value)


def _missing(values: Values, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The numeric ``fields`` with no value (the station type is a tick, never 'missing' here)."""
    return tuple(f for f in fields if f in NUMERIC_FIELDS and values.get(f) is None)


def votes_add_up(values: Values, s: AuditSettings) -> Check:
    """Party votes + unregistered + null must equal the total votes (within ``sum_tolerance``)."""
    fields = VOTE_PARTS + ("total_votes",)
    if _missing(values, fields):
        return Check("votes_add_up", fields, None, "party votes + unregistered + null = total votes")
    parts = sum(values[f] for f in VOTE_PARTS)
    total = values["total_votes"]
    names = "+".join(display_name(f) for f in VOTE_PARTS)
    return Check("votes_add_up", fields, abs(parts - total) <= s.sum_tolerance,
                 f"{names} = {parts} but total votes says {total}", abs(parts - total),
                 {"sum_of_parts": parts, "total_votes": total, "difference": total - parts})


def ballots_add_up(values: Values, s: AuditSettings) -> Check:
    """Ballots received must equal total votes + ballots left over (within ``ballots_tolerance``)."""
    fields = ("ballots_received", "total_votes", "ballots_left_over")
    if _missing(values, fields):
        return Check("ballots_add_up", fields, None, "ballots received = total votes + ballots left over")
    used = values["total_votes"] + values["ballots_left_over"]
    received = values["ballots_received"]
    return Check("ballots_add_up", fields, abs(used - received) <= s.ballots_tolerance,
                 f"total votes + ballots left over = {values['total_votes']} + {values['ballots_left_over']} = "
                 f"{used} but ballots received says {received}", abs(used - received),
                 {"used_plus_left_over": used, "ballots_received": received, "difference": received - used})


def within_registered(values: Values, field: str, s: AuditSettings) -> Check:
    """``field`` must not exceed the registered voters (``registered_tolerance`` allowed)."""
    rule = "total_within_registered" if field == "total_votes" else "count_within_registered"
    fields = (field, "registered_voters")
    if _missing(values, fields):
        return Check(rule, fields, None, f"{display_name(field)} <= registered voters")
    count, registered = values[field], values["registered_voters"]
    excess = count - registered
    return Check(rule, fields, excess <= s.registered_tolerance,
                 f"{display_name(field)} = {count} is more than the {registered} registered voters", max(excess, 0),
                 {"count": count, "registered_voters": registered, "excess": excess})


def ids_well_formed(values: Values, station_type: str | None, s: AuditSettings) -> Check:
    """State, district, section and station must be positive numbers in range and the station type ticked once."""
    fields = ("state", "district", "section", "station")
    if _missing(values, fields):
        return Check(ID_RULE, fields + ("station_type",), None, "ids are well-formed")
    limits = {"state": s.max_state, "district": s.max_district}
    problems = [f"{f} {values[f]} is not between 1 and {limits.get(f, 'the box limit')}"
                for f in fields if not 1 <= values[f] <= limits.get(f, math.inf)]
    if station_type not in STATION_TYPES:
        problems.append(f"station type is not one ticked option of {'/'.join(STATION_TYPES)}")
    return Check(ID_RULE, fields + ("station_type",), not problems, "; ".join(problems) or "ids ok",
                 evidence={"ids": {f: values[f] for f in fields}, "station_type": station_type})


def all_checks(values: Values, station_type: str | None, s: AuditSettings) -> list[Check]:
    """Every arithmetic and id rule on one sheet's values."""
    checks = [votes_add_up(values, s), ballots_add_up(values, s), within_registered(values, "total_votes", s)]
    checks += [within_registered(values, f, s) for f in VOTE_PARTS]
    return checks + [ids_well_formed(values, station_type, s)]


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


def find_fix(reading: SheetReading, checks: list[Check], s: AuditSettings) -> Fix | None:
    """Most likely set of alternative readings (at most ``max_changed_fields`` fields) under which no rule fails.

    Only fields of a failed rule, of a rule sharing a field with one (a misread total breaks both sums), or
    unreadable ones are changed. The alternatives' likelihood relative to the readings they replace (product of
    the probability ratios) must reach ``min_fix_ratio``: a reading the recogniser found 100 times less likely than
    what it read does not explain an inconsistency away. ``None``: no such reading.
    """
    failed_fields = {f for c in checks if c.ok is False for f in c.fields}
    targets = {f for c in checks if failed_fields & set(c.fields) for f in c.fields}
    targets |= set(_missing(reading.values, NUMERIC_FIELDS))
    options = {f: _options(reading, f, s) for f in NUMERIC_FIELDS if f in targets}
    options = {f: o for f, o in options.items() if o}
    best: Fix | None = None
    for k in range(1, s.max_changed_fields + 1):
        for fields in itertools.combinations(options, k):
            for choice in itertools.product(*(options[f] for f in fields)):
                ratio = math.prod(r for _, _, r in choice)
                if ratio < s.min_fix_ratio or (best and ratio <= best.ratio):
                    continue
                values = {**reading.values, **{f: v for f, (v, _, _) in zip(fields, choice, strict=True)}}
                if not any(c.ok is False for c in all_checks(values, reading.station_type, s)):
                    changes = {f: (reading.values.get(f), v, p) for f, (v, p, _) in zip(fields, choice, strict=True)}
                    best = Fix(changes, math.prod(p for _, p, _ in choice), ratio)
    return best


def read_right_probability(reading: SheetReading, fields: tuple[str, ...]) -> float:
    """Probability that every numeric field of ``fields`` was read right: the product of their calibrated
    confidences (itself the product over their digits). A field with no confidence (blank) counts as certain."""
    return math.prod(float(reading.confidences.get(f) or 1.0) for f in fields if f in NUMERIC_FIELDS)


def misread_reach(reading: SheetReading, field: str) -> int:
    """The largest change a misread of ``field`` can make: ``10**(n + 1) - 1`` for ``n`` digits read, within
    the field's largest value. Besides misreading its digits, the reader may have missed one of them altogether
    (a faint or light digit, one cut off with a box line): on sheets in styles kept out of tuning, most clean
    sheets called ``inconsistent`` had a leading digit lost from a doubtful field (86 read as 6)."""
    digits = len(reading.texts.get(field) or "") + 1
    return min(10 ** digits - 1, MAX_VALUE.get(field, 10 ** digits - 1))


def doubtful_fields(reading: SheetReading, check: Check, s: AuditSettings) -> tuple[str, ...]:
    """The least confidently read fields of ``check`` that keep the chance of an all-right reading below
    ``min_read_probability`` (removed one by one, least confident first, until the rest reach it), provided
    misreads of their digits could together account for the rule's discrepancy. Empty when the failure stands
    as ``inconsistent``: the fields were read confidently enough, or the doubtful ones are too short to explain it
    (:func:`misread_reach`: a single digit read, even with one more missed, cannot hide 150 votes)."""
    numeric = sorted((f for f in check.fields if f in NUMERIC_FIELDS),
                     key=lambda f: float(reading.confidences.get(f) or 1.0))
    doubtful: list[str] = []
    while numeric and read_right_probability(reading, tuple(numeric)) < s.min_read_probability:
        doubtful.append(numeric.pop(0))
    reach = sum(misread_reach(reading, f) for f in doubtful)
    return tuple(doubtful) if check.discrepancy is None or reach >= check.discrepancy else ()


def _evidence(reading: SheetReading, check: Check, fix: Fix | None) -> dict:
    numeric = [f for f in check.fields if f in NUMERIC_FIELDS]
    return {**(check.evidence or {}),
            "values": {f: reading.values.get(f) for f in numeric},
            "text": {f: reading.texts.get(f) for f in numeric},
            "confidence": {f: reading.confidences.get(f) for f in numeric},
            "images": {f: reading.images[f] for f in numeric if f in reading.images},
            "fix": None if fix is None else fix.as_evidence(),
            "fix_probability": None if fix is None else fix.probability,
            "fix_likelihood_ratio": None if fix is None else fix.ratio,
            "read_right_probability": read_right_probability(reading, check.fields)}


def _doubt_reason(reading: SheetReading, check: Check, doubtful: tuple[str, ...], s: AuditSettings) -> str:
    """E.g. ``...; the digits of total votes (62%) were read with low confidence (...), so a misread could explain
    this: check the scan``."""
    shown = " and ".join(f"{display_name(f)} ({float(reading.confidences.get(f) or 1.0):.0%})" for f in doubtful)
    return (f"{check.reason}; the digits of {shown} were read with low confidence (all of this rule's fields read "
            f"right: {read_right_probability(reading, check.fields):.0%}, below {s.min_read_probability:.0%}), "
            "so a misread could explain this: check the scan")


def _failure_flag(reading: SheetReading, check: Check, fix: Fix | None, s: AuditSettings) -> Flag:
    """A ``needs_review`` flag when ``fix`` explains the failure or the rule's fields were read with too little
    confidence for the failure to stand, else an ``inconsistent`` one.

    Malformed ids are the exception: they add or remove no vote, so without a fix they still only ask for a look.
    """
    doubtful = doubtful_fields(reading, check, s)
    if fix is not None:
        verdict, severity = "needs_review", "low"
        reason = f"{check.reason}; {fix.describe()} would make every rule hold, so check the scan"
    elif check.rule == ID_RULE:
        verdict, severity = "needs_review", "medium"
        reason = f"{check.reason}; ids carry no votes, so check the ids on the scan"
    elif doubtful:
        verdict, severity = "needs_review", "medium"
        reason = _doubt_reason(reading, check, doubtful, s)
    else:
        verdict = "inconsistent"
        big = check.discrepancy is not None and check.discrepancy >= s.major_discrepancy
        severity = "high" if big else "medium"
        reason = (f"{check.reason}; the fields of this rule were read with "
                  f"{read_right_probability(reading, check.fields):.0%} confidence and no alternative reading of "
                  f"the digits at least 1/{1 / s.min_fix_ratio:.0f} as likely as the one made makes the sheet "
                  "consistent")
    return Flag(reading.sheet_id, check.fields, check.rule, severity, verdict, reason, _evidence(reading, check, fix))


def _unreadable_flag(reading: SheetReading, unknown: list[Check], fix: Fix | None) -> Flag:
    """One ``needs_review`` flag naming the unreadable fields and the rules that could not be checked."""
    missing = sorted({f for c in unknown for f in _missing(reading.values, c.fields)}, key=NUMERIC_FIELDS.index)
    shown = ", ".join(f"{display_name(f)} (read '{reading.texts.get(f) or ''}')" for f in missing)
    rules = "; ".join(dict.fromkeys(c.reason for c in unknown))
    reason = f"cannot check {rules}: unreadable {shown}"
    if fix is not None:
        reason += f"; {fix.describe()} would be consistent"
    evidence = {"rules": sorted({c.rule for c in unknown}),
                "text": {f: reading.texts.get(f) for f in missing},
                "confidence": {f: reading.confidences.get(f) for f in missing},
                "candidates": {f: reading.candidates.get(f, []) for f in missing},
                "images": {f: reading.images[f] for f in missing if f in reading.images},
                "fix": None if fix is None else fix.as_evidence()}
    return Flag(reading.sheet_id, tuple(missing), "unreadable", "low", "needs_review", reason, evidence)


def arithmetic_flags(reading: SheetReading, s: AuditSettings) -> list[Flag]:
    """Flags for every rule the sheet breaks (``needs_review`` or ``inconsistent``) or cannot be checked on."""
    checks = all_checks(reading.values, reading.station_type, s)
    failed = [c for c in checks if c.ok is False]
    unknown = [c for c in checks if c.ok is None]
    if not failed and not unknown:
        return []
    fix = find_fix(reading, checks, s)
    flags = [_failure_flag(reading, c, fix, s) for c in failed]
    return flags + ([_unreadable_flag(reading, unknown, fix)] if unknown else [])


def counts_consistent(values: Values, station_type: str | None, s: AuditSettings) -> bool | None:
    """Whether a set of counts obeys every rule (``None`` if some rule cannot be checked); used on ground truth."""
    checks = all_checks(values, station_type, s)
    if any(c.ok is False for c in checks):
        return False
    return None if any(c.ok is None for c in checks) else True

