"""The mapping file of a published results table: which columns are ids, counts and choices, and its rules.

A mapping is YAML (see ``mappings/ru2012.yaml`` and docs/DATA.md, "Results tables")::

    name: Russia 2012 presidential election
    ids: [region, tik, uik]            # station id levels, coarsest first; the levels before the last are scopes
    roles:                              # a column name, {match: REGEX}, or a list of them (summed)
      registered: {match: "^Число избирателей"}
      issued: [{match: "досрочно"}, {match: "выданных в помещении"}, {match: "выданных вне помещения"}]
      valid: {match: "^Число действительных"}
    choices: {match: "^[0-9]+\\. "}    # or an explicit list of columns
    leader: null                        # a choice column; default: the largest nationally
    turnout: {numerator: issued, denominator: registered}
    share_base: valid + invalid         # the leader's share is leader / share_base
    exclude:
      ids: [{level: region, pattern: "за пределами", reason: "stations abroad"}]
      min_registered: 1
    rules:
      - {name: ballots_balance, rule: "received == issued + cancelled + lost - not_counted"}
      - {name: found_le_issued, rule: "found <= issued", soft: true}

The file is checked in two steps before any row is read: :func:`load_mapping` checks its syntax and types,
:func:`resolve_mapping` checks it against the table's header. Every error names the key (``roles.valid``) and the
column, and suggests the closest column names.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.audit.rules import (
    Rule,
    RuleError,
    Term,
    check_names,
    expression_names,
    parse_expression,
    parse_rule,
)
from pipeline.errors import ConfigError

#: Roles a mapping may bind, with what they mean (others are refused, so a typo does not pass silently).
KNOWN_ROLES = {
    "registered": "registered voters",
    "received": "ballots received by the station",
    "issued": "ballots issued to voters (a list is summed: early, in the station, outside)",
    "cancelled": "unused ballots cancelled",
    "found": "ballots found in the boxes (a list is summed)",
    "valid": "valid ballots",
    "invalid": "invalid ballots",
    "lost": "ballots lost",
    "not_counted": "ballots not counted on receipt",
    "total": "total votes (where the form has such a line)",
    "left_over": "ballots left over",
}
#: Roles every mapping must bind.
REQUIRED_ROLES = ("registered", "valid")
#: Top-level keys of a mapping file.
TOP_KEYS = ("name", "ids", "forensic_levels", "roles", "choices", "leader", "turnout", "share_base", "exclude",
            "rules")
#: The group name of the choices in rules (``sum(choices)``).
CHOICES_GROUP = "choices"
#: Default smallest number of registered voters for a station to be audited (0: keep every station).
DEFAULT_MIN_REGISTERED = 1
#: How many close column names an error suggests.
SUGGESTIONS = 3


@dataclass(frozen=True)
class IdExclusion:
    """Rows whose id at ``level`` matches ``pattern`` (a regular expression, searched) are excluded for ``reason``."""

    level: str
    pattern: str
    reason: str


@dataclass(frozen=True)
class TableMapping:
    """A mapping resolved against a table's header: every name is a real column."""

    name: str
    id_levels: tuple[str, ...]
    forensic_levels: tuple[str, ...]
    roles: dict[str, tuple[str, ...]]
    choices: tuple[str, ...]
    leader: str | None
    turnout_numerator: tuple[Term, ...]
    turnout_denominator: tuple[Term, ...]
    share_base: tuple[Term, ...]
    id_exclusions: tuple[IdExclusion, ...]
    min_registered: int
    rules: tuple[Rule, ...]
    rule_names: tuple[str, ...]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every name rules and expressions may use, with its columns (roles and ``choices``)."""
        return {**self.roles, CHOICES_GROUP: self.choices}

    @property
    def count_columns(self) -> tuple[str, ...]:
        """Every column holding a count, each once, in table order of first mention."""
        cols = [c for cols in self.roles.values() for c in cols] + list(self.choices)
        return tuple(dict.fromkeys(cols))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the audit reads."""
        return tuple(dict.fromkeys(list(self.id_levels) + list(self.count_columns)))


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def suggest(name: str, columns: Sequence[str]) -> str:
    """``"; close: 'a', 'b'"`` for the columns most like ``name`` (difflib), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in columns], n=SUGGESTIONS, cutoff=0.4)
    if not close:
        lowered = str(name).lower()
        close = [c for c in columns if lowered and lowered in str(c).lower()][:SUGGESTIONS]
    return f"; close: {', '.join(repr(c) for c in close)}" if close else ""


def load_mapping(path: Path) -> dict[str, Any]:
    """The mapping file at ``path`` as a dict, after checking its keys and the types of their values.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or a key is unknown or of the wrong type.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (a mapping is UTF-8 YAML)") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read mapping file ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = [str(k) for k in data if k not in TOP_KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(TOP_KEYS)}")
    for key in ("ids", "roles", "choices"):
        if key not in data:
            raise ConfigError(f"{path}: '{key}' is missing (see mappings/ru2012.yaml for an example)")
    where = str(path)
    if not isinstance(data["ids"], list) or not data["ids"]:
        raise _fail(f"{where}: ids", "must be a non-empty list of id columns, coarsest first (e.g. [region, uik])")
    if not isinstance(data["roles"], dict):
        raise _fail(f"{where}: roles", "must map role names to columns")
    unknown_roles = [str(r) for r in data["roles"] if r not in KNOWN_ROLES]
    if unknown_roles:
        raise _fail(f"{where}: roles", f"unknown role(s) {', '.join(unknown_roles)}; known: "
                    + ", ".join(KNOWN_ROLES))
    missing = [r for r in REQUIRED_ROLES if r not in data["roles"]]
    if missing:
        raise _fail(f"{where}: roles", f"missing required role(s) {', '.join(missing)}")
    return data


def _check_regex(pattern: Any, where: str) -> re.Pattern:
    if not isinstance(pattern, str) or not pattern:
        raise _fail(where, f"a pattern must be non-empty text, not {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _fail(where, f"bad regular expression {pattern!r} ({exc})") from exc


def resolve_column(spec: Any, columns: Sequence[str], where: str) -> str:
    """The one column ``spec`` names: an exact column name, or ``{match: REGEX}`` matching exactly one column.

    Raises:
        ConfigError: no such column (with the closest names), or a pattern matching none or several.
    """
    if isinstance(spec, dict):
        if set(spec) != {"match"}:
            raise _fail(where, f"expected a column name or {{match: REGEX}}, not {spec!r}")
        regex = _check_regex(spec["match"], f"{where}.match")
        hits = [c for c in columns if regex.search(str(c))]
        if not hits:
            raise _fail(where, f"no column matches {spec['match']!r}{suggest(spec['match'], columns)}")
        if len(hits) > 1:
            raise _fail(where, f"{spec['match']!r} matches {len(hits)} columns ("
                        + ", ".join(repr(h) for h in hits[:5]) + "); make the pattern narrower")
        return hits[0]
    if not isinstance(spec, str):
        raise _fail(where, f"expected a column name or {{match: REGEX}}, not {spec!r}")
    if spec not in columns:
        raise _fail(where, f"no column {spec!r} in the table{suggest(spec, columns)}")
    return spec


def resolve_columns(spec: Any, columns: Sequence[str], where: str) -> tuple[str, ...]:
    """The columns of a role: one spec, or a list of specs (summed)."""
    if isinstance(spec, list):
        if not spec:
            raise _fail(where, "an empty list names no column")
        cols = tuple(resolve_column(s, columns, f"{where}[{i}]") for i, s in enumerate(spec))
        if len(set(cols)) != len(cols):
            raise _fail(where, "names the same column twice")
        return cols
    return (resolve_column(spec, columns, where),)


def resolve_choices(spec: Any, columns: Sequence[str], where: str) -> tuple[str, ...]:
    """The choice columns: an explicit list, or ``{match: REGEX}`` (every matching column, in table order)."""
    if isinstance(spec, dict):
        if set(spec) != {"match"}:
            raise _fail(where, f"expected a list of columns or {{match: REGEX}}, not {spec!r}")
        regex = _check_regex(spec["match"], f"{where}.match")
        hits = tuple(c for c in columns if regex.search(str(c)))
        if not hits:
            raise _fail(where, f"no column matches {spec['match']!r}{suggest(spec['match'], columns)}")
        return hits
    if isinstance(spec, list):
        return resolve_columns(spec, columns, where)
    raise _fail(where, f"expected a list of columns or {{match: REGEX}}, not {spec!r}")


def _expression(text: Any, default: str, names: dict, where: str) -> tuple[Term, ...]:
    try:
        terms = parse_expression(default if text is None else text)
    except RuleError as exc:
        raise _fail(where, str(exc)) from exc
    unknown = [n for n in expression_names(terms) if n not in names]
    if unknown:
        raise _fail(where, f"unknown name(s) {', '.join(unknown)}; the roles bound are {', '.join(names)}")
    return terms


def _rules(specs: Any, names: dict, where: str) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    if specs is None:
        return (), ()
    if not isinstance(specs, list):
        raise _fail(where, "must be a list of rules")
    rules, labels = [], []
    for i, spec in enumerate(specs):
        at = f"{where}[{i}]"
        if isinstance(spec, str):
            spec = {"rule": spec}
        if not isinstance(spec, dict) or "rule" not in spec or set(spec) - {"rule", "soft", "name", "label"}:
            raise _fail(at, "expected a rule text or {rule: TEXT, name: NAME, soft: true|false, label: TEXT}")
        soft = spec.get("soft", False)
        if not isinstance(soft, bool):
            raise _fail(f"{at}.soft", f"must be true or false, not {soft!r}")
        name = spec.get("name", f"r{i + 1}")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _fail(f"{at}.name", f"must be a short identifier such as ballots_balance, not {name!r}")
        if name in labels:
            raise _fail(f"{at}.name", f"{name!r} is used twice")
        try:
            rule = parse_rule(spec["rule"], soft=soft, label=str(spec.get("label", "")))
            check_names(rule, names)
        except RuleError as exc:
            raise _fail(at, str(exc)) from exc
        rules.append(rule)
        labels.append(name)
    return tuple(rules), tuple(labels)


def _exclusions(spec: Any, id_levels: Sequence[str], level_names: Sequence[str],
                where: str) -> tuple[tuple[IdExclusion, ...], int]:
    if spec is None:
        return (), DEFAULT_MIN_REGISTERED
    if not isinstance(spec, dict) or set(spec) - {"ids", "min_registered"}:
        raise _fail(where, "expected {ids: [{level, pattern, reason}], min_registered: N}")
    min_registered = spec.get("min_registered", DEFAULT_MIN_REGISTERED)
    if not isinstance(min_registered, int) or isinstance(min_registered, bool) or min_registered < 0:
        raise _fail(f"{where}.min_registered", f"must be a whole number >= 0, not {min_registered!r}")
    items = spec.get("ids") or []
    if not isinstance(items, list):
        raise _fail(f"{where}.ids", "must be a list of {level, pattern, reason}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}.ids[{i}]"
        if not isinstance(item, dict) or set(item) != {"level", "pattern", "reason"}:
            raise _fail(at, "expected {level: ID_LEVEL, pattern: REGEX, reason: TEXT}")
        if item["level"] not in level_names:
            raise _fail(f"{at}.level", f"{item['level']!r} is not an id level; the levels are "
                        + ", ".join(map(str, level_names)))
        _check_regex(item["pattern"], f"{at}.pattern")
        if not isinstance(item["reason"], str) or not item["reason"].strip():
            raise _fail(f"{at}.reason", "must be non-empty text (it is written next to every excluded row)")
        level = id_levels[list(level_names).index(item["level"])]
        out.append(IdExclusion(level=level, pattern=item["pattern"], reason=item["reason"].strip()))
    return tuple(out), min_registered


def resolve_mapping(data: dict[str, Any], columns: Sequence[str], source: str = "mapping") -> TableMapping:
    """Check the mapping ``data`` (from :func:`load_mapping`) against the table's header ``columns``.

    Raises:
        ConfigError: naming the key and the column for every problem found first.
    """
    columns = [str(c) for c in columns]
    id_specs = data["ids"]
    id_levels = tuple(resolve_column(s, columns, f"{source}: ids[{i}]") for i, s in enumerate(id_specs))
    if len(set(id_levels)) != len(id_levels):
        raise _fail(f"{source}: ids", "names the same column twice")
    level_names = tuple(s if isinstance(s, str) else c for s, c in zip(id_specs, id_levels, strict=True))
    roles = {str(r): resolve_columns(spec, columns, f"{source}: roles.{r}") for r, spec in data["roles"].items()}
    choices = resolve_choices(data["choices"], columns, f"{source}: choices")
    used: dict[str, str] = {}
    for key, cols in [*((f"roles.{r}", c) for r, c in roles.items()), ("choices", choices),
                      *((f"ids[{i}]", (c,)) for i, c in enumerate(id_levels))]:
        for col in cols:
            if col in used:
                raise _fail(f"{source}: {key}", f"column {col!r} is already bound by {used[col]}")
            used[col] = key
    levels = data.get("forensic_levels")
    if levels is None:
        forensic = id_levels[:1] if len(id_levels) > 1 else ()
    else:
        if not isinstance(levels, list) or any(lv not in level_names[:-1] for lv in levels):
            raise _fail(f"{source}: forensic_levels", "must list id levels other than the last ("
                        + ", ".join(map(str, level_names[:-1])) + ")")
        forensic = tuple(id_levels[list(level_names).index(lv)] for lv in levels)
    leader = data.get("leader")
    if leader is not None:
        leader = resolve_column(leader, list(choices), f"{source}: leader (one of the choices)")
    names = {**roles, CHOICES_GROUP: choices}
    turnout = data.get("turnout") or {}
    if not isinstance(turnout, dict) or set(turnout) - {"numerator", "denominator"}:
        raise _fail(f"{source}: turnout", "expected {numerator: EXPRESSION, denominator: EXPRESSION}")
    default_numerator = "issued" if "issued" in roles else ("valid + invalid" if "invalid" in roles else "valid")
    numerator = _expression(turnout.get("numerator"), default_numerator, names, f"{source}: turnout.numerator")
    denominator = _expression(turnout.get("denominator"), "registered", names, f"{source}: turnout.denominator")
    base = _expression(data.get("share_base"), "valid + invalid" if "invalid" in roles else "valid", names,
                       f"{source}: share_base")
    exclusions, min_registered = _exclusions(data.get("exclude"), id_levels, level_names, f"{source}: exclude")
    rules, rule_names = _rules(data.get("rules"), names, f"{source}: rules")
    name = data.get("name") or source
    return TableMapping(name=str(name), id_levels=id_levels, forensic_levels=forensic, roles=roles, choices=choices,
                        leader=leader, turnout_numerator=numerator, turnout_denominator=denominator,
                        share_base=base, id_exclusions=exclusions, min_registered=min_registered, rules=rules,
                        rule_names=rule_names, source=source)
