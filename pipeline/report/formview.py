"""What the report knows about the form a run was read with: every name, label, role, rule and the station's
identity come from its template (:mod:`pipeline.forms`), never from one particular form.

:func:`report_template` finds the template (the run folder's ``template.yaml``, else the audit folder's, else the
packaged acta); :func:`form_view` turns it into plain data for the pure functions of :mod:`pipeline.report.triage`:
the one name each field has in the report (its printed label), the form's rules split into their two sides, the
fields each rule name stands for (a role such as ``candidate`` stands for all its fields), and the fields of the
roles the report draws with (votes cast, registered voters, the candidates).

Rules are written out with the sheet's own numbers (:func:`holding_text`: ``78 + 12 = 90 = valid (jumlah seluruh
suara sah)``) and a failed one in words (:func:`failure_text`), from the rule's terms alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from pipeline.forms import Field, Template, load_template
from pipeline.forms.semantics import rule_engine
from pipeline.forms.template import RUN_TEMPLATE_FILE, FormRule

#: How each comparison of the rule grammar is written for a reader.
OP_SYMBOLS = {"==": "=", "<=": "≤", ">=": "≥"}
#: The multiplication sign between a coefficient and a value (``2 × 45``).
TIMES = "×"
#: Role fields the fingerprint's votes cast are taken from: the total line, else the valid and invalid votes.
VOTES_CAST_ROLES = (("total",), ("valid", "invalid"))
REGISTERED_ROLE = "registered"
CANDIDATE_ROLE = "candidate"


@dataclass(frozen=True)
class RuleView(FormRule):
    """One rule of the form as the report shows it: the form's rule (name, text, label, soft, tolerance) with
    ``left`` and ``right``, the terms of each side (:class:`pipeline.audit.rules.Term`: coefficient and name, or a
    constant), and ``op`` one of :data:`OP_SYMBOLS`."""

    op: str = "=="
    left: tuple = ()
    right: tuple = ()


@dataclass(frozen=True)
class FormView:
    """The form as plain data (:func:`form_view`). ``names``: the one name each field has in the report;
    ``labels``: the printed label of each field that has one; ``bindings``: the fields each name of a rule stands
    for; ``roles``: the fields of each role, in form order; ``rule_tolerance``: the gap (votes) a rule that states
    no ``tolerance`` of its own still accepts, the audit's setting ``audit.rule_tolerance`` (recorded in its
    ``settings.json``), so that the report and the audit call the same rules holding."""

    name: str = ""
    names: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[RuleView, ...] = ()
    bindings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    station_key: tuple[str, ...] = ()
    leader: str | None = None
    rule_tolerance: int = 0

    def tolerance(self, rule: FormRule) -> int:
        """The gap ``rule`` accepts: its own ``tolerance``, else the audit's :attr:`rule_tolerance` (as
        :func:`pipeline.audit.arithmetic` checks it)."""
        return self.rule_tolerance if rule.tolerance is None else int(rule.tolerance)

    def tolerance_words(self, rule: FormRule) -> str:
        """Where the gap :meth:`tolerance` accepts comes from, for a rule that holds only within it."""
        if rule.tolerance is None:
            return f"within the audit's rule tolerance of {self.rule_tolerance}"
        return f"within the rule's tolerance of {rule.tolerance}"

    def rule(self, name: str) -> RuleView | None:
        """The rule called ``name`` (``None`` when the form has none of that name)."""
        return next((r for r in self.rules if r.name == name), None)

    def role_fields(self, role: str) -> tuple[str, ...]:
        """The fields with ``role``, in form order (empty when none)."""
        return tuple(self.roles.get(role, ()))

    @property
    def candidates(self) -> tuple[str, ...]:
        """The fields counting one party's or candidate's votes."""
        return self.role_fields(CANDIDATE_ROLE)


def report_template(*folders: Path | None) -> Template:
    """The template the report describes the run with: the ``template.yaml`` of the first of ``folders`` that has
    one (the run folder, where the reader records any form but the packaged acta; then the audit folder), else the
    packaged acta.

    Raises:
        ConfigError: a recorded template cannot be read (the message names the file).
    """
    from pipeline.forms import run_template

    for folder in folders:
        if folder is not None and (Path(folder) / RUN_TEMPLATE_FILE).is_file():
            return run_template(Path(folder))
    return load_template()


@dataclass(frozen=True)
class RunForms:
    """The forms of a run as the report draws them: every template by name (the first is the default: the form of
    a sheet of no page type, as the audit treats it) with its :class:`FormView`, and, on a run read with several
    templates (``mixed``), each read page's template name by ``sheet_id`` (:func:`pipeline.forms.runs.page_templates`).
    A run of one form has one template and no page types: the report is then what it always was."""

    templates: Mapping[str, Template]
    views: Mapping[str, FormView]
    page_types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, templates: Mapping[str, Template], page_types: Mapping[str, str] | None = None,
           rule_tolerance: int = 0) -> RunForms:
        """The forms of ``templates`` (by name, the default first) and the sheets' ``page_types``; every form's
        rules checked with the audit's ``rule_tolerance`` (:attr:`FormView.rule_tolerance`)."""
        return cls(dict(templates), {name: form_view(t, rule_tolerance) for name, t in templates.items()},
                   dict(page_types or {}))

    @property
    def mixed(self) -> bool:
        """Whether the run was read with several templates."""
        return len(self.templates) > 1

    @property
    def default(self) -> str:
        """The name of the first template (the only one of a run of one form)."""
        return next(iter(self.templates))

    def type_of(self, sheet_id) -> str:
        """The template name a sheet was read with (the default for a sheet of no page type)."""
        name = self.page_types.get(str(sheet_id), "")
        return name if name in self.templates else self.default

    def template(self, sheet_id) -> Template:
        """The :class:`Template` of a sheet (:meth:`type_of`)."""
        return self.templates[self.type_of(sheet_id)]

    def form(self, sheet_id) -> FormView:
        """The :class:`FormView` of a sheet (:meth:`type_of`)."""
        return self.views[self.type_of(sheet_id)]

    @property
    def first(self) -> FormView:
        """The default form's view."""
        return self.views[self.default]


def run_forms(rundir: Path | None, processed: Path | None = None, rule_tolerance: int = 0) -> RunForms:
    """The forms of the run the report describes: a run folder read with several templates
    (``templates/<name>.yaml``) gives each of them and every read page's template
    (:func:`pipeline.forms.runs.run_templates`, :func:`~pipeline.forms.runs.page_templates`); any other run its
    one template (:func:`report_template`). ``rule_tolerance``: the audit's (:attr:`FormView.rule_tolerance`).

    Raises:
        ConfigError: a recorded template cannot be read, or ``pages.csv`` names a template the run did not record.
        InputFileError: a run of several templates has no readable ``pages.csv``.
    """
    from pipeline.forms.runs import page_templates, recorded_files, run_templates

    if rundir is not None and len(recorded_files(Path(rundir))) > 1:
        templates = run_templates(Path(rundir))
        if len(templates) > 1:
            return RunForms.of(templates, page_templates(Path(rundir)), rule_tolerance)
    template = report_template(rundir, processed)
    return RunForms.of({template.name: template}, rule_tolerance=rule_tolerance)


def field_name(f: Field) -> str:
    """The one name a field has everywhere in the report: its printed label (``VOTACION TOTAL``, ``jumlah
    seluruh suara sah``), a party representative's tick as ``PAN representative``, and a field the form gives no
    label its name in words (``pair 1``)."""
    label = f.label if f.label and f.label != f.name else f.name.replace("_", " ")
    return f"{label} representative" if f.kind == "tick" and f.party_of else label


def display_names(template: Template) -> dict[str, str]:
    """:func:`field_name` of every field of ``template``."""
    return {f.name: field_name(f) for f in template.fields}


def rule_view(name: str, text: str, label: str = "", soft: bool = False, tolerance: int | None = None) -> RuleView:
    """A rule's text parsed by the one rule engine (:mod:`pipeline.audit.rules`) into its two sides as written.

    Raises:
        RuleError: the text is not a rule (a :class:`ValueError`).
    """
    parsed = rule_engine().parse_rule(text)
    left, right = parsed.sides
    return RuleView(name=name, text=text.strip(), label=label, op=parsed.op, left=tuple(left), right=tuple(right),
                    soft=soft, tolerance=tolerance)


def form_view(template: Template, rule_tolerance: int = 0) -> FormView:
    """The report's view of ``template`` (module docstring); its rules that state no tolerance accept a gap of
    ``rule_tolerance`` votes (the audit's setting)."""
    roles: dict[str, tuple[str, ...]] = {}
    for f in template.fields:
        if f.role is not None:
            roles[f.role] = (*roles.get(f.role, ()), f.name)
    return FormView(name=template.name, names=display_names(template),
                    labels={f.name: f.label for f in template.fields if f.label and f.label != f.name},
                    rules=tuple(rule_view(r.name, r.text, r.label, r.soft, r.tolerance) for r in template.rules),
                    bindings=template.rule_bindings(), roles=roles, station_key=tuple(template.station_key),
                    leader=template.leader, rule_tolerance=int(rule_tolerance))


@lru_cache(maxsize=1)
def default_form() -> FormView:
    """The report's view of the packaged template (the acta): the form of a run folder that records none, and of
    the pure functions called without a form."""
    return form_view(load_template())


def count_value(value) -> int | None:
    """A cell as a whole number (``None`` for a missing, unreadable or non-numeric one)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else int(number)


def term_fields(term, bindings: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The fields a term stands for: a name's fields, an ``each(...)`` group's members (none for a constant)."""
    return tuple(dict.fromkeys(f for name in term.names for f in bindings.get(name, (name,))))


def each_members(rule: RuleView, bindings: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The fields an ``each(...)`` rule is checked for one by one (empty for a rule without ``each``)."""
    return tuple(f for t in (*rule.left, *rule.right) if t.group for f in term_fields(t, bindings))


def member_rule(rule: RuleView, member: str) -> RuleView:
    """The check of an ``each(...)`` rule for one ``member`` field: the group term replaced by that field (same
    name, text and label)."""
    term_type = rule_engine().Term

    def side(terms: tuple) -> tuple:
        return tuple(term_type(t.coefficient, member) if t.group else t for t in terms)

    return replace(rule, left=side(rule.left), right=side(rule.right))


def checks(rule: RuleView, bindings: Mapping[str, Sequence[str]]) -> list[tuple[str | None, RuleView]]:
    """The checks a rule stands for, as ``(member, rule)``: ``[(None, rule)]``, or one per member of its
    ``each(...)`` group."""
    members = each_members(rule, bindings)
    return [(m, member_rule(rule, m)) for m in members] if members else [(None, rule)]


def expanded(terms: Sequence, values: Mapping[str, object],
             bindings: Mapping[str, Sequence[str]]) -> list[tuple[int, int]] | None:
    """One side of a rule (without ``each``) as ``[(coefficient, value)]``, one pair per field (a role's fields
    one by one) or constant; ``None`` when a field has no value."""
    pairs = []
    for term in terms:
        if term.is_constant:
            pairs.append((1, term.coefficient))
            continue
        for name in term_fields(term, bindings):
            value = count_value(values.get(name))
            if value is None:
                return None
            pairs.append((term.coefficient, value))
    return pairs


def total(pairs: Sequence[tuple[int, int]]) -> int:
    """The value of an :func:`expanded` side."""
    return sum(c * v for c, v in pairs)


def pairs_text(pairs: Sequence[tuple[int, int]]) -> str:
    """An expanded side written out: ``78 + 12 - 3 + 2 × 5``."""
    text = ""
    for i, (coefficient, value) in enumerate(pairs):
        shown = f"{abs(coefficient)} {TIMES} {value}" if abs(coefficient) != 1 else str(value)
        if i == 0:
            text = f"-{shown}" if coefficient < 0 else shown
        else:
            text += f" {'-' if coefficient < 0 else '+'} {shown}"
    return text


def term_name(term, form: FormView) -> str:
    """A term named for a reader: a field (or a role the form gives one field) by the field's name with its printed
    label (``valid (jumlah seluruh suara sah)``), a role of several fields by its name, a constant by its value, a
    coefficient in front (``2 × ...``)."""
    if term.is_constant:
        return str(term.coefficient)
    if term.group:
        return f"each of {', '.join(term.group)}"
    fields = term_fields(term, form.bindings)
    field = fields[0] if len(fields) == 1 else term.name  # a role of one field is that field
    label = form.labels.get(field)
    name = f"{field} ({label})" if label else field
    return name if abs(term.coefficient) == 1 else f"{abs(term.coefficient)} {TIMES} {name}"


def side_names(terms: Sequence, form: FormView) -> str | None:
    """The names of a side of one term (``None`` for a side of several, whose numbers are written out)."""
    return term_name(terms[0], form) if len(terms) == 1 and terms[0].coefficient > 0 else None


def _chain(parts: Sequence[str | None]) -> str:
    return " = ".join(p for p in parts if p)


def _gap(rule: RuleView, values: Mapping[str, object], form: FormView) -> tuple[list, list, int] | None:
    """The two expanded sides of a rule without ``each`` and their gap, left minus right (``None`` when a value
    is missing)."""
    left, right = expanded(rule.left, values, form.bindings), expanded(rule.right, values, form.bindings)
    if left is None or right is None:
        return None
    return left, right, total(left) - total(right)


def _holds(rule: RuleView, gap: int, tolerance: int) -> bool:
    return bool(rule_engine().holds(rule.op, gap, tolerance))


def _holding_one(rule: RuleView, values: Mapping[str, object], form: FormView) -> str | None:
    """:func:`holding_text` of a rule without ``each``."""
    sides = _gap(rule, values, form)
    if sides is None or not _holds(rule, sides[2], form.tolerance(rule)):
        return None
    left, right, gap = sides
    terms_l, terms_r = rule.left, rule.right
    if rule.op == "==" and len(right) > 1 and len(left) == 1:  # the single named line on the right
        (terms_l, left), (terms_r, right) = (terms_r, right), (terms_l, left)
    lhs = [side_names(terms_l, form), pairs_text(left) if len(left) > 1 else None, str(total(left))]
    rhs = [str(total(right)), pairs_text(right) if len(right) > 1 else None, side_names(terms_r, form)]
    strict = _holds(rule, gap, 0)
    if rule.op == "==" and strict:
        return _chain([*lhs, *rhs[1:]])
    op = "≈" if rule.op == "==" else OP_SYMBOLS[rule.op]
    text = f"{_chain(lhs)} {op} {_chain(rhs)}"
    return text if strict else f"{text} ({form.tolerance_words(rule)})"


def _holding_each(rule: RuleView, values: Mapping[str, object], form: FormView) -> str | None:
    """:func:`holding_text` of an ``each(...)`` rule: every member's check must hold. A group alone on its side
    is written once (``each of 78, 200, 24 ≤ 450 = registered_voters (...)``), else every check in turn."""
    members = checks(rule, form.bindings)
    texts = [_holding_one(r, values, form) for _, r in members]
    if any(t is None for t in texts):
        return None
    group_left = any(t.group for t in rule.left)
    group_side, other = (rule.left, rule.right) if group_left else (rule.right, rule.left)
    if len(group_side) != 1 or group_side[0].coefficient != 1:
        return "; ".join(texts)
    each = "each of " + ", ".join(str(count_value(values.get(m))) for m, _ in members)
    pairs = expanded(other, values, form.bindings) or []
    named = [side_names(other, form), pairs_text(pairs) if len(pairs) > 1 else None, str(total(pairs))]
    other_text = _chain(named[::-1] if group_left else named)
    strict = all(_holds(r, _gap(r, values, form)[2], 0) for _, r in members)
    op = "≈" if rule.op == "==" and not strict else OP_SYMBOLS[rule.op]
    text = f"{each} {op} {other_text}" if group_left else f"{other_text} {op} {each}"
    return text if strict else f"{text} ({form.tolerance_words(rule)})"


def holding_text(rule: RuleView, values: Mapping[str, object], form: FormView) -> str | None:
    """A rule that holds on ``values`` written out with them, e.g. ``78 + 12 = 90 = valid (jumlah seluruh suara
    sah)`` or ``total (VOTACION TOTAL) = 302 ≤ 450 = registered (...)``: a side of one term is named, a side of
    several numbers is written out; an identity that holds only within the rule's tolerance says so. ``None`` when
    a value is missing or the rule does not hold."""
    if each_members(rule, form.bindings):
        return _holding_each(rule, values, form)
    return _holding_one(rule, values, form)


def failing_check(rule: RuleView, values: Mapping[str, object], form: FormView,
                  hint: Sequence[str] = ()) -> tuple[str | None, RuleView]:
    """The check of ``rule`` a flag is about: the rule itself, or for an ``each(...)`` rule the member named in
    ``hint`` (the flag's fields), else the first member that fails on ``values``, else the first member."""
    members = checks(rule, form.bindings)
    if members[0][0] is None:
        return members[0]
    named = [(m, r) for m, r in members if m in hint]
    failing = [(m, r) for m, r in members
               if (g := _gap(r, values, form)) is not None and not _holds(r, g[2], form.tolerance(r))]
    return (named or failing or members)[0]


def failure_text(rule: RuleView, values: Mapping[str, object], form: FormView, hint: Sequence[str] = ()) -> str:
    """A failed rule in words with the two sides' values, e.g. ``the rule pair_1 + pair_2 == valid does not hold:
    95 against 90 (5 off)`` (a rule with a label is called by it); an ``each(...)`` rule names the field it fails
    for (:func:`failing_check`, ``hint``: the flag's fields); without every value, only that it does not hold."""
    member, check = failing_check(rule, values, form, hint)
    title = rule.label or f"the rule {rule.text}"  # a sentence never starts with a field's name, changed in case
    head = f"{title} does not hold" + (f" for {form.names.get(member, member)}" if member else "")
    sides = _gap(check, values, form)
    if sides is None:
        return head
    lhs, rhs = total(sides[0]), total(sides[1])
    if rule.op == "==":
        return f"{head}: {lhs:,} against {rhs:,} ({abs(lhs - rhs):,} off)"
    words = "more than" if rule.op == "<=" else "less than"
    return f"{head}: {lhs:,} is {words} {rhs:,} (by {abs(lhs - rhs):,})"


def result_field(rule: RuleView, form: FormView) -> str | None:
    """The field an identity compares a sum with (the side that is one field: ``valid`` in ``pair_1 + pair_2 ==
    valid``), right side first; ``None`` for a bound, an ``each(...)`` rule, or when neither side is one field."""
    if rule.op != "==" or each_members(rule, form.bindings):
        return None
    for side in (rule.right, rule.left):
        fields = [f for t in side for f in term_fields(t, form.bindings)]
        if len(side) == 1 and len(fields) == 1:
            return fields[0]
    return None


def votes_cast_fields(form: FormView) -> tuple[str, ...]:
    """The fields whose sum is the votes cast: the ``total`` line, else ``valid`` + ``invalid`` (empty when the
    form has neither)."""
    for roles in VOTES_CAST_ROLES:
        fields = [form.role_fields(r) for r in roles]
        if all(len(f) == 1 for f in fields):
            return tuple(f[0] for f in fields)
    return ()


def registered_field(form: FormView) -> str | None:
    """The field of the registered voters (``None`` when the form has none, or several)."""
    fields = form.role_fields(REGISTERED_ROLE)
    return fields[0] if len(fields) == 1 else None


def fingerprint_inputs(form: FormView) -> tuple[tuple[str, ...], str | None, str]:
    """What the election fingerprint (turnout x the leader's share) is drawn from: ``(votes cast fields,
    registered voters field, "")``, or with the third part saying in words which role the form lacks."""
    votes, registered = votes_cast_fields(form), registered_field(form)
    if registered is None:
        return votes, None, (f"the form has no (single) field with role {REGISTERED_ROLE}, so there is no turnout "
                             f"to plot")
    if not votes:
        return votes, registered, ("the form has no field with role total, nor fields with roles valid and invalid, "
                                   "so the votes cast are unknown")
    return votes, registered, ""
