"""What the audit knows about a form: :class:`FormSchema`, a small typed record built from the run's template.

The template (``template.yaml`` in the run folder, else the packaged acta: :func:`pipeline.forms.run_template`) is
the single source of truth for field names, what they count (roles), the arithmetic rules, the station's identity,
the forensic scopes and the leading choice. The audit builds one :class:`FormSchema` per run
(:meth:`FormSchema.of`) and passes it down, so no audit code names a field of a particular form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from pipeline.audit import rules as engine
from pipeline.errors import ConfigError
from pipeline.forms.semantics import DEFAULT_ID_LOW
from pipeline.forms.template import Template, load_template

#: ``pages.csv`` status of a page the reader read (docs/DATA.md section 2); every other status means no reading.
OK_STATUS = "ok"
#: Kinds of visible alteration in a synthetic batch's ground truth (``F_alteration``); ``fabricated`` leaves no trace.
VISIBLE_KINDS = ("overwrite", "erase", "fluid", "crossout")
#: Verdicts and severities a flag may carry (docs/DATA.md section 4).
VERDICTS = ("inconsistent", "needs_review", "altered", "suspicious")
SEVERITIES = ("info", "low", "medium", "high")
#: Roles whose counts together make every vote cast: the choices, votes for no listed choice, invalid votes.
VOTE_PART_ROLES = ("candidate", "other_votes", "invalid")
#: Name of the built-in check that ids lie in their ranges and the station key's choices are ticked once.
ID_RULE = "ids_well_formed"
ID_RULE_LABEL = "ids are well-formed"
#: Name of the flag for rules that could not be checked because a field was unreadable.
UNREADABLE_RULE = "unreadable"

Side = tuple[tuple[int, str | None], ...]


@dataclass(frozen=True)
class SheetRule:
    """One check of a sheet: a form rule (:class:`pipeline.forms.template.FormRule`) with its names bound to
    fields, or one member of an ``each(...)`` rule (``member``; same name, text and label).

    ``left`` and ``right`` are the two sides as written, each ``((coefficient, field), ...)`` (``field`` None: a
    constant); a role stands for each of its fields. ``description`` says the check in words (the rule's label,
    or for one member of ``each`` the check spelled with field names).
    """

    name: str
    text: str
    label: str
    op: str
    left: Side
    right: Side
    soft: bool = False
    tolerance: int | None = None
    member: str | None = None
    description: str = ""

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The fields the check uses, in order of first use."""
        return tuple(dict.fromkeys(f for _, f in self.left + self.right if f is not None))


@dataclass(frozen=True)
class IdRange:
    """An id field's allowed values: from ``low`` up to ``high`` (None: whatever the boxes hold)."""

    field: str
    low: int
    high: int | None

    def holds(self, value: int) -> bool:
        """Whether ``value`` lies in the range."""
        return self.low <= value and (self.high is None or value <= self.high)

    @property
    def text(self) -> str:
        """The range as a rule: ``1 <= state <= 32``, ``section >= 1``."""
        return f"{self.low} <= {self.field} <= {self.high}" if self.high is not None else \
            f"{self.field} >= {self.low}"


@dataclass(frozen=True)
class FormSchema:
    """The fields, roles, rules and scopes of one form, as the audit needs them (built by :meth:`of`).

    ``choices`` maps each choice field to its options; ``key_choices`` are those of the station key (each must be
    ticked exactly once). ``party_of`` maps a representative tick to its candidate field. ``votes_cast`` are the
    fields whose sum is the votes cast (turnout's numerator and the base of a candidate's share): the ``total``
    field, else ``valid`` + ``invalid``, else the candidates; empty when the form has none of them.
    """

    name: str
    id_fields: tuple[str, ...]
    count_fields: tuple[str, ...]
    tick_fields: tuple[str, ...]
    choices: dict[str, tuple[str, ...]]
    key_choices: tuple[str, ...]
    labels: dict[str, str]
    display: dict[str, str]
    max_value: dict[str, int]
    roles: dict[str, tuple[str, ...]]
    party_of: dict[str, str]
    station_key: tuple[str, ...]
    levels: tuple[tuple[str, tuple[str, ...]], ...]
    leader: str | None
    rules: tuple[SheetRule, ...]
    id_ranges: tuple[IdRange, ...]

    @classmethod
    def of(cls, template: Template) -> FormSchema:
        """The schema of ``template`` (its rules parsed by :mod:`pipeline.audit.rules` and bound to fields).

        Raises:
            ConfigError: a rule names something the template does not have (a template that loaded was checked).
        """
        numeric = [f for f in template.fields if f.is_numeric]
        display = {f.name: field_display(f.name, f.label) for f in template.fields}
        roles: dict[str, tuple[str, ...]] = {}
        for f in template.fields:
            if f.role is not None:
                roles.setdefault(f.role, ())
                roles[f.role] += (f.name,)
        candidates = roles.get("candidate", ())
        return cls(
            name=template.name,
            id_fields=tuple(f.name for f in template.fields_of_kind("id")),
            count_fields=tuple(f.name for f in template.fields_of_kind("count")),
            tick_fields=tuple(f.name for f in template.fields_of_kind("tick")),
            choices={f.name: f.options for f in template.fields_of_kind("choice")},
            key_choices=tuple(k for k in template.station_key if template.field(k).kind == "choice"),
            labels={f.name: f.label for f in template.fields}, display=display,
            max_value={f.name: f.max_value for f in numeric}, roles=roles,
            party_of={f.name: f.party_of for f in template.fields_of_kind("tick") if f.party_of in candidates},
            station_key=template.station_key, levels=template.forensic_levels, leader=template.leader,
            rules=bind_rules(template, display), id_ranges=id_ranges(template))

    @cached_property
    def numeric_fields(self) -> tuple[str, ...]:
        """Ids, then counts, in form order (the columns of the sheet table's readings)."""
        return self.id_fields + self.count_fields

    @cached_property
    def id_rule_text(self) -> str:
        """The id check as rules: ``1 <= state <= 32; ...; station_type ticked once``."""
        return "; ".join([r.text for r in self.id_ranges] + [f"{c} ticked once" for c in self.key_choices])

    @property
    def candidates(self) -> tuple[str, ...]:
        """The choices' count fields (role ``candidate``), in form order: the forensics' choices."""
        return self.roles.get("candidate", ())

    @property
    def vote_parts(self) -> tuple[str, ...]:
        """The count fields of every vote cast (roles :data:`VOTE_PART_ROLES`), in form order."""
        return tuple(f for f in self.count_fields if any(f in self.roles.get(r, ()) for r in VOTE_PART_ROLES))

    @property
    def registered(self) -> str | None:
        """The registered-voters field (None when the form has none: no turnout)."""
        fields = self.roles.get("registered", ())
        return fields[0] if len(fields) == 1 else None

    @property
    def votes_cast(self) -> tuple[str, ...]:
        """The fields summed as the votes cast (class docstring)."""
        if len(self.roles.get("total", ())) == 1:
            return self.roles["total"]
        if self.roles.get("valid") and self.roles.get("invalid"):
            return self.roles["valid"] + self.roles["invalid"]
        return self.candidates

    @property
    def first_level(self) -> tuple[str, tuple[str, ...]] | None:
        """The first forensic level ``(name, key fields)``: the scope of the cross-sheet outlier check."""
        return self.levels[0] if self.levels else None

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Every rule a per-sheet arithmetic flag may carry: the form's rules, the id check and ``unreadable``."""
        return (*dict.fromkeys(r.name for r in self.rules), ID_RULE, UNREADABLE_RULE)

    def display_name(self, field: str) -> str:
        """A field's short name in reasons (:func:`field_display`)."""
        return self.display.get(field) or field.replace("_", " ")

    def names(self, fields: tuple[str, ...] | list[str], joiner: str = " + ") -> str:
        """The display names of ``fields`` joined by ``joiner``."""
        return joiner.join(self.display_name(f) for f in fields)

    def leader_of(self, ruling_party: str | None) -> str | None:
        """The leading choice: the setting ``ruling_party`` if given, else the template's ``leader``."""
        return ruling_party or self.leader

    def check_settings(self, forensic_fields: tuple[str, ...] | None, ruling_party: str | None) -> None:
        """Check the audit settings that name fields against this form.

        Raises:
            ConfigError: ``audit.forensic_fields`` names a field that is not a count of this form, or
                ``audit.ruling_party`` one that is not a candidate; the message names the key and the form.
        """
        unknown = sorted(set(forensic_fields or ()) - set(self.count_fields))
        if unknown:
            raise ConfigError(f"audit.forensic_fields: {unknown} are not count fields of form '{self.name}'; "
                              f"known: {list(self.count_fields)}")
        if ruling_party is not None and ruling_party not in self.candidates:
            raise ConfigError(f"audit.ruling_party must be one of the candidate fields of form '{self.name}' "
                              f"{list(self.candidates)}, not '{ruling_party}'")


def field_display(name: str, label: str) -> str:
    """A field's short name in reasons: its label when the label is the name in other letters (an abbreviation
    such as ``PAN``), otherwise the name with spaces (``total votes``, ``pair 1``)."""
    if label and label.lower() == name.lower():
        return label
    return name.replace("_", " ")


def _bind_side(terms, bindings: dict[str, tuple[str, ...]]) -> Side:
    """One side's terms with each name replaced by its fields (a role: each of its fields, same coefficient)."""
    return tuple((t.coefficient, f) if t.name is not None else (t.coefficient, None)
                 for t in terms for f in (bindings.get(t.name, (t.name,)) if t.name is not None else (None,)))


def spell(side: Side, words: dict[str, str], compact: bool = False) -> str:
    """A side in words, each field by ``words[field]`` (its display name, or its value): ``PAN + PRI``,
    ``2*valid - 3``; ``compact`` leaves out the spaces around the signs (``PAN+PRI+PPS``)."""
    plus, minus = ("+", "-") if compact else (" + ", " - ")
    parts = []
    for i, (c, f) in enumerate(side):
        word = str(abs(c)) if f is None else (words.get(f, f) if abs(c) == 1 else f"{abs(c)}*{words.get(f, f)}")
        parts.append((("-" if c < 0 else "") if i == 0 else (minus if c < 0 else plus)) + word)
    return "".join(parts) or "0"


#: How an operator reads in words.
OP_WORDS = {"==": "=", "<=": "<=", ">=": ">="}


def bind_rules(template: Template, display: dict[str, str]) -> tuple[SheetRule, ...]:
    """The template's rules as :class:`SheetRule` checks, in order; an ``each(...)`` rule gives one check per
    member field, in the order of its names and, within a role, of the form."""
    bindings = template.rule_bindings()
    out = []
    for form_rule in template.rules:
        try:
            parsed = engine.parse_rule(form_rule.text)
            engine.check_names(parsed, bindings)
        except engine.RuleError as exc:
            raise ConfigError(f"form template '{template.name}' rule {form_rule.name}: {exc}") from exc
        for member, rule in engine.expand(parsed, bindings):
            left, right = (_bind_side(side, bindings) for side in rule.sides)
            spelled = f"{spell(left, display)} {OP_WORDS[rule.op]} {spell(right, display)}"
            out.append(SheetRule(name=form_rule.name, text=form_rule.text, label=form_rule.title, op=rule.op,
                                 left=left, right=right, soft=form_rule.soft, tolerance=form_rule.tolerance,
                                 member=member,
                                 description=spelled if member is not None or not form_rule.label
                                 else form_rule.label))
    return tuple(out)


def id_ranges(template: Template) -> tuple[IdRange, ...]:
    """Every id field's range, in form order: ``id_ranges`` of the template, else from :data:`DEFAULT_ID_LOW` up
    to whatever the boxes hold."""
    stated = {name: (low, high) for name, low, high in template.id_ranges}
    return tuple(IdRange(f.name, *stated.get(f.name, (DEFAULT_ID_LOW, None))) for f in template.fields_of_kind("id"))


@lru_cache(maxsize=1)
def acta_schema() -> FormSchema:
    """The schema of the packaged acta (the synthetic generator's form, for benchmarks and tests)."""
    return FormSchema.of(load_template())


def conf_field(field: str) -> str:
    """Column holding the recogniser's confidence in ``field`` (``pan_conf``)."""
    return f"{field}_conf"


def text_field(field: str) -> str:
    """Column holding the text as read, with ``?`` for unreadable digits (``pan_text``)."""
    return f"{field}_text"
