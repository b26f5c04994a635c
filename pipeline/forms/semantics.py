"""What a form's fields mean to the audit: roles, arithmetic rules, the station's identity, forensic scopes and the
leading choice, parsed from a template's YAML for both kinds of template and validated with errors naming the key.

The keys (all optional; docs/DATA.md and the README's "bring your own form" section show them in use)::

    fields:
      - {name: pan, kind: count, role: candidate, ...}     # role: one of FIELD_ROLES
    rules:                                                  # the form's arithmetic, as data
      - "pair_1 + pair_2 == valid"                          # a bare rule: named rule_1, rule_2 ...
      - {name: votes_add_up, rule: "sum(candidate) + null_votes == total_votes",
         label: "party votes + null = total votes", soft: false, tolerance: 0}
    station_key: [state, district, section, station]        # fields that identify one station
    forensic_levels: {district: [state, district]}          # scopes the forensics test, each with its key fields
    leader: pri                                             # the ruling party / incumbent (default: largest)
    id_ranges: {state: [1, 32], district: [1, 40]}          # [low, high] of id fields (high: box limit if left out)

Rules are parsed by the one rule engine, :mod:`pipeline.audit.rules`, and may name a numeric field or a role the
form uses (the role stands for the sum of its fields: :meth:`pipeline.forms.template.Template.rule_bindings`).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from pipeline.errors import ConfigError
from pipeline.forms.template import FIELD_ROLES, MAX_NAME_CHARS, Field, FormRule

#: Keys of a rule written as a mapping.
RULE_KEYS = frozenset({"name", "rule", "label", "soft", "tolerance"})
#: Name given to the i-th (1-based) rule written as bare text.
BARE_RULE_NAME = "rule_{}"
#: Smallest value of an id field that ``id_ranges`` does not bound (ids number stations, states, districts from 1).
DEFAULT_ID_LOW = 1


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"form template {where}: {message}")


@lru_cache(maxsize=1)
def rule_engine() -> ModuleType:
    """The one rule engine, :mod:`pipeline.audit.rules` (pure Python on numpy and pandas).

    Importing it the usual way first imports the whole ``pipeline.audit`` package (the alteration detector and
    TensorFlow: seconds); reading a template needs only the parser, so the module is loaded on its own unless the
    package is already loaded.
    """
    name = "pipeline.audit.rules"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "audit" / "rules.py"
    spec = importlib.util.spec_from_file_location("pipeline_forms_rule_engine", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _is_name(value: object) -> bool:
    return isinstance(value, str) and value.isidentifier() and len(value) <= MAX_NAME_CHARS


def check_role(role: object, where: str) -> str | None:
    """A field's ``role``, checked against :data:`FIELD_ROLES` (None when the field has none)."""
    if role is None:
        return None
    if role not in FIELD_ROLES:
        raise _fail(f"{where}.role", f"unknown role {role!r}; known: {', '.join(FIELD_ROLES)}")
    return role


def rule_bindings(fields: Sequence[Field]) -> dict[str, tuple[str, ...]]:
    """Names a rule may use: every numeric field, and every role the fields use (standing for its fields)."""
    bindings = {f.name: (f.name,) for f in fields if f.is_numeric}
    for f in fields:
        if f.role is not None and f.role not in bindings:
            bindings[f.role] = tuple(g.name for g in fields if g.role == f.role)
    return bindings


def _rule_spec(spec: object, index: int) -> dict:
    """A rule's YAML entry as a mapping with at least ``rule`` (a bare text becomes ``{rule: text}``)."""
    where = f"rules[{index}]"
    if isinstance(spec, str):
        return {"rule": spec, "name": BARE_RULE_NAME.format(index + 1)}
    if not isinstance(spec, dict):
        raise _fail(where, f"expected a rule such as 'a + b == total' or a mapping with 'rule', got {spec!r}")
    unknown = sorted(set(spec) - RULE_KEYS)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key; a rule may have {sorted(RULE_KEYS)}")
    if not isinstance(spec.get("rule"), str):
        raise _fail(f"{where}.rule", f"expected the rule's text such as 'a + b == total', got {spec.get('rule')!r}")
    return {"name": BARE_RULE_NAME.format(index + 1), **spec}


def parse_rules(raw: object, fields: Sequence[Field]) -> tuple[FormRule, ...]:
    """The template's ``rules``, each parsed by the rule engine and its names checked against the fields and roles.

    Raises:
        ConfigError: a rule does not parse, names an unknown field or role, two rules share a name, or a key has a
            bad value; the message names ``rules[i]`` and the key.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("rules", f"expected a list of rules such as 'a + b == total', got {raw!r}")
    engine = rule_engine()
    names = list(rule_bindings(fields))
    rules: list[FormRule] = []
    for i, entry in enumerate(raw):
        spec, where = _rule_spec(entry, i), f"rules[{i}]"
        try:
            engine.check_names(engine.parse_rule(spec["rule"]), names)
        except engine.RuleError as exc:
            raise _fail(where, str(exc)) from exc
        if not _is_name(spec["name"]):
            raise _fail(f"{where}.name", f"expected a name made of letters, digits and _, got {spec['name']!r}")
        if any(r.name == spec["name"] for r in rules):
            raise _fail(f"{where}.name", f"two rules are called '{spec['name']}'")
        if not isinstance(spec.get("label", ""), str) or not isinstance(spec.get("soft", False), bool):
            raise _fail(where, "'label' must be text and 'soft' true or false")
        tolerance = spec.get("tolerance")
        if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0):
            raise _fail(f"{where}.tolerance", f"expected a whole number of votes >= 0, got {tolerance!r}")
        rules.append(FormRule(name=spec["name"], text=spec["rule"].strip(), label=spec.get("label", ""),
                              soft=spec.get("soft", False), tolerance=tolerance))
    return tuple(rules)


def _field_list(value: object, where: str, known: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of field names drawn from ``known``, checked."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"expected a non-empty list of field names, got {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}; fields: {', '.join(known)}")
    return tuple(value)


def parse_station_key(raw: object, fields: Sequence[Field]) -> tuple[str, ...]:
    """``station_key``: the fields that identify a station (default: every id and choice field, in form order)."""
    ids = [f.name for f in fields if f.kind in ("id", "choice")]
    if raw is None:
        return tuple(ids)
    return _field_list(raw, "station_key", ids)


def parse_forensic_levels(raw: object, fields: Sequence[Field]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``forensic_levels``: a mapping from each scope's name to the id fields that key it (default: none)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail("forensic_levels", f"expected a mapping such as {{district: [state, district]}}, got {raw!r}")
    ids = [f.name for f in fields if f.kind in ("id", "choice")]
    levels = []
    for name, keys in raw.items():
        if not _is_name(name):
            raise _fail("forensic_levels", f"expected level names made of letters, digits and _, got {name!r}")
        levels.append((name, _field_list(keys, f"forensic_levels.{name}", ids)))
    return tuple(levels)


def parse_leader(raw: object, fields: Sequence[Field]) -> str | None:
    """``leader``: the candidate field of the ruling party or incumbent (default None: the largest in the batch)."""
    if raw is None:
        return None
    candidates = [f.name for f in fields if f.role == "candidate" or f.party]
    if raw not in candidates:
        raise _fail("leader", f"expected one of the candidate fields {', '.join(candidates) or '(none)'}, "
                              f"got {raw!r}")
    return raw


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_id_ranges(raw: object, fields: Sequence[Field]) -> tuple[tuple[str, int, int | None], ...]:
    """``id_ranges``: ``{field: [low, high]}`` for id fields (``[low]`` or ``high`` null: up to the box limit);
    returned as ``(field, low, high)`` in form order (default: none, every id from :data:`DEFAULT_ID_LOW` to its
    box limit).

    Raises:
        ConfigError: not a mapping, a name that is no id field, or bounds that are not whole numbers with
            low <= high <= the largest number the field's boxes hold; the message names ``id_ranges.<field>``.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _fail("id_ranges", f"expected a mapping such as {{state: [1, 32]}}, got {raw!r}")
    ids = {f.name: f for f in fields if f.kind == "id"}
    for name, bounds in raw.items():
        where = f"id_ranges.{name}"
        if name not in ids:
            raise _fail(where, f"not an id field; id fields: {', '.join(ids) or '(none)'}")
        if not isinstance(bounds, list) or len(bounds) not in (1, 2) or not _whole(bounds[0]) \
                or (len(bounds) == 2 and bounds[1] is not None and not _whole(bounds[1])):
            raise _fail(where, f"expected [low, high] in whole numbers (high may be left out), got {bounds!r}")
        high = bounds[1] if len(bounds) == 2 else None
        if high is not None and not bounds[0] <= high <= ids[name].max_value:
            raise _fail(where, f"expected {bounds[0]} <= high <= {ids[name].max_value} (the boxes' limit), "
                               f"got {high}")
    return tuple((f.name, raw[f.name][0], raw[f.name][1] if len(raw[f.name]) == 2 else None)
                 for f in fields if f.name in raw)


def parse_semantics(raw: dict, fields: Sequence[Field]) -> dict:
    """The :class:`~pipeline.forms.template.Template` keyword arguments for what the fields mean (module
    docstring), validated. A role may share its name with a field only when that field is the role's one field
    (``valid`` with role ``valid``), so a name in a rule always means one set of fields."""
    roles = {f.role for f in fields if f.role}
    clash = sorted(r for r in roles
                   if any(f.name == r for f in fields) and [f.name for f in fields if f.role == r] != [r])
    if clash:
        raise _fail("fields", f"role(s) {', '.join(clash)} are also names of other fields; rename the field(s)")
    return {"rules": parse_rules(raw.get("rules"), fields),
            "station_key": parse_station_key(raw.get("station_key"), fields),
            "forensic_levels": parse_forensic_levels(raw.get("forensic_levels"), fields),
            "leader": parse_leader(raw.get("leader"), fields),
            "id_ranges": parse_id_ranges(raw.get("id_ranges"), fields)}
