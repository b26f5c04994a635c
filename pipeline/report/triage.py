"""What an observer should look at first, and why: one verdict per sheet, the ranking rule, plain reasons.

Pure functions on plain dicts and tables (no files, no HTML), shared by the index page, the sheet pages, the CSV
exports and ``python -m pipeline summary``, so that every count and every order in the report comes from one
definition:

* **A sheet's verdict** is the verdict of its gravest flag in :data:`VERDICT_ORDER` (the audit's own order),
  ``ok`` when it has none. Counts of verdicts count sheets, never flags.
* **The ranking** puts sheets in :data:`TIERS` first (severity before any score), then by the worst severity of
  the flags that place it in its tier, then by the audit's suspicion score, then by sheet id. A sheet with no flag
  is always in the last tier, so it never ranks above a flagged one.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from pipeline.report.formview import (
    FormView,
    RuleView,
    count_value,
    default_form,
    failure_text,
    holding_text,
    registered_field,
    result_field,
    rule_view,
    votes_cast_fields,
)

#: The audit's order of gravity of flag verdicts (``pipeline.audit.audit.VERDICT_ORDER``); a sheet takes the first
#: verdict of this order among its flags.
VERDICT_ORDER = ("altered", "inconsistent", "suspicious", "needs_review")
CLEAN_VERDICT = "ok"
#: Plain words for each verdict (chips, filter options, titles).
VERDICT_LABELS = {"altered": "visibly altered", "inconsistent": "does not add up", "suspicious": "suspicious",
                  "needs_review": "check the reading", CLEAN_VERDICT: "no finding"}
#: The reader's page status in words: the report calls it the "reading" so a title never says "ok altered".
READING_LABELS = {"ok": "read", "not_a_form": "not a tally sheet"}
SEVERITIES = ("info", "low", "medium", "high")
#: Ranking tiers, most urgent first: (number, short name, what puts a sheet there).
TIERS = (
    (1, "altered or does not add up",
     "a number visibly altered, or a sum that fails where no likely misreading of the digits explains the gap"),
    (2, "impossible or repeated numbers",
     "turnout at or above the registered voters, a station or a set of counts that appears twice"),
    (3, "check the reading", "a rule fails or cannot be checked, but a misread digit could explain it"),
    (4, "statistical outlier", "a count unusual for its district: weak evidence on its own"),
    (5, "no finding", "every check passed"),
)
TIER_NAMES = {n: name for n, name, _ in TIERS}
UNFLAGGED_TIER = 5
#: Scores are shown rounded down to this many decimals, so 0.9996 reads 0.999 and never "1.000".
SCORE_DECIMALS = 3
#: The audit's flag for counts that could not be read, so the form's rules could not be checked on them.
UNREADABLE_RULE = "unreadable"
#: An evidence key only the audit's failed-rule flags carry (the form's rules are data: a flag whose rule the
#: template does not name, from an older audit or another form, is still recognised by its evidence).
RULE_EVIDENCE_KEY = "read_right_probability"
#: Evidence keys of the rule a flag checked (the audit writes them beside the values).
RULE_TEXT_KEY, RULE_LABEL_KEY = "rule_text", "rule_label"
ALTERATION_RULE = "visible_alteration"
TURNOUT_RULE = "turnout"
#: Rules about the whole station, not one field: no crop explains them (a rule over the fields that identify the
#: station, such as the ids being well formed, is one too: :func:`is_station_rule`).
NO_FIELD_RULES = ("duplicate_station", "identical_counts", "page_not_read")
#: At most this many fields (and crops) are named for one flag.
MAX_CAUSE_FIELDS = 4
#: Alternative readings below this probability are not shown.
MIN_ALTERNATIVE_PROBABILITY = 0.05


def severity_rank(severity) -> int:
    """Order of a severity (``info`` 0 ... ``high`` 3); unknown ones sort below ``info``."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def severity_name(rank) -> str:
    """The severity of order ``rank`` (:func:`severity_rank`'s inverse; ``""`` for none)."""
    try:
        rank = int(rank)
    except (TypeError, ValueError):
        return ""
    return SEVERITIES[rank] if 0 <= rank < len(SEVERITIES) else ""


def sheet_verdict(verdicts) -> str:
    """One sheet's verdict from its flags' verdicts: the first of :data:`VERDICT_ORDER` present, else ``ok``."""
    present = set(verdicts)
    return next((v for v in VERDICT_ORDER if v in present), CLEAN_VERDICT)


def verdict_counts(verdicts: pd.Series) -> dict[str, int]:
    """Sheets per verdict (one verdict per sheet), in :data:`VERDICT_ORDER` then ``ok``; absent verdicts left out."""
    counts = verdicts.astype(str).value_counts()
    return {v: int(counts[v]) for v in (*VERDICT_ORDER, CLEAN_VERDICT) if v in counts.index}


def reading_label(status) -> str:
    """The reader's page status in words (``ok`` -> ``read``)."""
    text = "" if status is None or (isinstance(status, float) and math.isnan(status)) else str(status)
    return READING_LABELS.get(text, text.replace("_", " ") or "unknown")


def flag_tier(verdict: str, severity: str) -> int:
    """The ranking tier (:data:`TIERS`) one flag puts its sheet in."""
    if verdict in ("altered", "inconsistent"):
        return 1
    if verdict == "suspicious":
        return 2 if severity_rank(severity) >= severity_rank("medium") else 4
    if verdict == "needs_review":
        return 3
    return 4


def score_text(value) -> str:
    """A suspicion score rounded down to :data:`SCORE_DECIMALS` decimals (``–`` when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scale = 10 ** SCORE_DECIMALS
    return f"{math.floor(float(value) * scale) / scale:.{SCORE_DECIMALS}f}"


def evidence_of(flag: dict) -> dict:
    """A flag's evidence as a dict (``{}`` when it is missing or not a JSON object)."""
    data = flag.get("evidence")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    return data if isinstance(data, dict) else {}


def flag_fields(flag: dict) -> list[str]:
    """A flag's ``fields`` cell as a list of field names."""
    value = flag.get("fields")
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [f for f in str(value or "").split(";") if f and f != "nan" and f != "<NA>"]


def _conf(row: dict, field: str) -> float | None:
    value = row.get(f"{field}_conf")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def flag_rule(flag: dict, form: FormView | None) -> RuleView | None:
    """The form rule a flag checked: the template's rule of that name, else the rule text its evidence records
    (``rule_text``, ``rule_label``); ``None`` for a flag about no rule of the form."""
    name = str(flag.get("rule"))
    found = (form or default_form()).rule(name)
    if found is not None:
        return found
    ev = evidence_of(flag)
    text = ev.get(RULE_TEXT_KEY)
    if not isinstance(text, str):
        return None
    label = ev.get(RULE_LABEL_KEY)
    try:
        return rule_view(name, text, label if isinstance(label, str) else "")
    except ValueError:  # RuleError: a text the engine does not parse is shown as the audit wrote it
        return None


def is_station_rule(flag: dict, form: FormView | None) -> bool:
    """A check of the station's identity (the ids well formed): a flag, other than an unreadable or altered field,
    whose every field identifies the station (``station_key``)."""
    fields, key = flag_fields(flag), (form or default_form()).station_key
    return bool(str(flag.get("rule")) not in (UNREADABLE_RULE, ALTERATION_RULE) and key and fields
                and set(fields) <= set(key))


def is_arithmetic(flag: dict, form: FormView | None) -> bool:
    """A flag of a failed or uncheckable form rule (a sum or a bound over the counts), whose causes are the
    doubtful or altered fields."""
    rule = str(flag.get("rule"))
    return (rule == UNREADABLE_RULE or flag_rule(flag, form) is not None
            or RULE_EVIDENCE_KEY in evidence_of(flag))


def cause_fields(flag: dict, row: dict, altered: set[str], conf_high: float, form: FormView | None = None) -> list[str]:
    """The fields that caused ``flag``: for a form rule those whose reading is doubtful (below ``conf_high``,
    unreadable, or changed by the audit's alternative reading) or altered, in that order and least confident
    first, else (every field read confidently) the field the sum is compared to (:func:`formview.result_field`);
    for an alteration the altered fields; none for station-level rules. At most :data:`MAX_CAUSE_FIELDS`."""
    rule, fields = str(flag.get("rule")), flag_fields(flag)
    if rule in NO_FIELD_RULES or is_station_rule(flag, form):
        return []
    if is_arithmetic(flag, form):
        fix = evidence_of(flag).get("fix")
        fixed = set(fix) if isinstance(fix, dict) else set()
        doubtful = [f for f in fields if f in fixed or f in altered or rule == UNREADABLE_RULE
                    or (_conf(row, f) is not None and _conf(row, f) < conf_high)]
        # the fields the audit's alternative reading changes first, then altered ones, then the least sure
        doubtful.sort(key=lambda f: (f not in fixed, f not in altered, _conf(row, f) or 0.0))
        if not doubtful:
            checked = flag_rule(flag, form)
            result = (result_field(checked, form or default_form()) if checked is not None else None) or \
                (fields[0] if fields else None)
            doubtful = [result] if result else []
        return doubtful[:MAX_CAUSE_FIELDS]
    return fields[:MAX_CAUSE_FIELDS]


def names_list(fields: list[str], names: dict[str, str]) -> str:
    """``"PAN, PRI and total votes"``."""
    shown = [names.get(f, f.replace("_", " ")) for f in fields]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1] if shown else ""


def _num(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:.2f}"


def rule_values(flag: dict, row: dict | None) -> dict:
    """The values a flag's rule was checked on: the sheet's row, overridden by the evidence's ``values`` (what the
    audit read)."""
    values = evidence_of(flag).get("values")
    return {**(row or {}), **(values if isinstance(values, dict) else {})}


def _arithmetic_reason(flag: dict, causes: list[str], names: dict[str, str], form: FormView,
                       row: dict | None) -> str:
    """Plain words for a failed rule of the form (its label or text, and its two sides' values)."""
    rule, verdict, ev = str(flag.get("rule")), str(flag.get("verdict")), evidence_of(flag)
    if rule == UNREADABLE_RULE:
        return f"{names_list(causes, names) or 'some numbers'} could not be read, so the sums cannot be checked"
    checked = flag_rule(flag, form)
    head = failure_text(checked, rule_values(flag, row), form, flag_fields(flag)) if checked is not None else \
        "a sum on the sheet does not hold"
    if verdict == "inconsistent":
        return f"{head}, and no likely misreading of the digits explains it"
    fix = ev.get("fix")
    if isinstance(fix, dict) and fix:
        changes = " and ".join(f"{names.get(f, f)} as {c.get('alternative')} instead of {c.get('read', '?')}"
                               for f, c in fix.items() if isinstance(c, dict))
        return f"{head}; reading {changes} would make it add up: compare with the scan"
    return f"{head}; {names_list(causes, names)} may be misread: compare with the scan" if causes else head


def turnout_reason(flag: dict, form: FormView, row: dict | None) -> str:
    """``turnout 125%: 500 votes for 400 registered voters``, the votes cast and the registered voters taken
    from the form's roles (the evidence's values of those fields, else the sheet's)."""
    ev = evidence_of(flag)
    values = {**(row or {}), **ev}
    head = f"turnout {float(ev['turnout']):.0%}"
    cast = [count_value(values.get(f)) for f in votes_cast_fields(form)]
    registered = count_value(values.get(registered_field(form) or ""))
    if not cast or None in cast or registered is None:
        return head
    return f"{head}: {_num(sum(cast))} votes for {_num(registered)} registered voters"


def plain_reason(flag: dict, causes: list[str], names: dict[str, str], form: FormView | None = None,
                 row: dict | None = None) -> str:
    """One line in plain words saying what a flag found (the audit's own wording stays on the sheet page); a
    form rule is named by its label or text from the template (``form``), with the sheet's numbers (``row``)."""
    rule, form = str(flag.get("rule")), form or default_form()
    if rule == ALTERATION_RULE:
        return (f"{names_list(causes, names) or 'a number'} "
                f"look{'s' if len(causes) == 1 else ''} altered: overwritten, erased, covered or crossed out")
    if rule == TURNOUT_RULE and "turnout" in evidence_of(flag):
        return turnout_reason(flag, form, row)
    if rule == "duplicate_station":
        return "the same station appears on another sheet"
    if rule == "identical_counts":
        return "exactly the same vote counts as another station"
    if rule == "district_outlier":
        return f"{names_list(causes, names) or 'a count'} unusual for its district (statistical, weak evidence)"
    if rule == "page_not_read":
        return "the page could not be read: look at the scan"
    if is_station_rule(flag, form):
        return "the station ids look wrong: check them on the scan"
    if is_arithmetic(flag, form):
        return _arithmetic_reason(flag, causes, names, form, row)
    return str(flag.get("reason") or rule).split(";")[0]


def capitalised(text: str) -> str:
    """``text`` with its first letter upper-case."""
    return text[:1].upper() + text[1:]


def top_flag(sheet_flags: list[dict]) -> dict | None:
    """The flag that places a sheet in its tier: lowest tier, then highest severity, then first listed."""
    if not sheet_flags:
        return None
    return min(sheet_flags, key=lambda f: (flag_tier(str(f.get("verdict")), str(f.get("severity"))),
                                           -severity_rank(f.get("severity"))))


def sheet_triage(row: dict, sheet_flags: list[dict], names: dict[str, str], conf_high: float,
                 form: FormView | None = None) -> dict:
    """Where one sheet ranks and why: ``verdict``, ``tier``, ``tier_severity`` (the top flag's severity rank),
    ``reason`` (one line: the top flag in words, plus how many other findings) and ``key_field`` (the field whose
    crop shows it, ``""`` when none does). ``form``: the run's form, for its rules and the station's identity."""
    top = top_flag(sheet_flags)
    verdict = sheet_verdict(str(f.get("verdict")) for f in sheet_flags)
    if top is None:
        return {"verdict": verdict, "tier": UNFLAGGED_TIER, "tier_severity": -1, "reason": "", "key_field": ""}
    altered = {f for flag in sheet_flags if flag.get("rule") == ALTERATION_RULE for f in flag_fields(flag)}
    causes = cause_fields(top, row, altered, conf_high, form)
    others = len(sheet_flags) - 1
    reason = capitalised(plain_reason(top, causes, names, form, row))
    if others:
        reason += f" (+{others} other finding{'s' if others > 1 else ''})"
    return {"verdict": verdict, "tier": flag_tier(str(top.get("verdict")), str(top.get("severity"))),
            "tier_severity": severity_rank(top.get("severity")), "reason": reason,
            "key_field": causes[0] if causes else ""}


def rank_basis(tier: int, severity: str, score) -> str:
    """What puts a sheet where it is in the ranking, without its position (which moves whenever another sheet
    does): the part of :func:`rank_reason` that a sheet's own data decides."""
    if tier == UNFLAGGED_TIER:
        return (f"no check flagged this sheet, so it comes after every flagged sheet (order among unflagged sheets: "
                f"score {score_text(score)}).")
    return (f"group {tier} of {len(TIERS)} ({TIER_NAMES[tier]}); within the group by the severity of its gravest "
            f"finding ({severity}), then by score {score_text(score)}.")


def rank_prefix(rank: int, total: int) -> str:
    """``"Ranked 3 of 5: "``, the position part of :func:`rank_reason`."""
    return f"Ranked {rank:,} of {total:,}: "


def rank_reason(rank: int, total: int, tier: int, severity: str, score) -> str:
    """Why a sheet ranks where it does, in one sentence."""
    return rank_prefix(rank, total) + rank_basis(tier, severity, score)


def alternatives_shown(pairs, min_probability: float = MIN_ALTERNATIVE_PROBABILITY,
                       read=None) -> list[tuple[object, float]]:
    """Alternative readings ``[(value, probability)]`` at or above ``min_probability``, most likely first; the
    value ``read`` itself is not an alternative."""
    if not isinstance(pairs, list):
        return []
    kept = [(p[0], float(p[1])) for p in pairs if isinstance(p, list | tuple) and len(p) == 2
            and isinstance(p[1], int | float) and not isinstance(p[1], bool) and p[1] >= min_probability
            and (read is None or str(p[0]) != str(read))]
    return sorted(kept, key=lambda vp: -vp[1])


def passed_checks(row: dict, failed_rules: set[str], form: FormView) -> list[str]:
    """The form's rules that hold on the sheet, each written out with its numbers (``78 + 12 = 90 = valid
    (jumlah seluruh suara sah)``, :func:`formview.holding_text`), in the form's order; rules that raised a flag,
    or whose numbers are missing, are left out."""
    shown = (holding_text(rule, row, form) for rule in form.rules if rule.name not in failed_rules)
    return [text for text in shown if text]
