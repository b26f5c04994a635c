"""Roles, named rules, station key, forensic levels and leader of a template (pipeline/forms/semantics.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.forms import load_template
from pipeline.forms.template import DEFAULT_TEMPLATE, FormRule, parse_template


def _acta_raw() -> dict:
    return copy.deepcopy(yaml.safe_load(DEFAULT_TEMPLATE.read_text(encoding="utf-8")))


def test_acta_says_what_its_fields_mean():
    t = load_template()
    assert t.role_fields("candidate") == t.parties and len(t.parties) == 8
    assert t.role_field("registered") == "registered_voters" and t.role_field("total") == "total_votes"
    assert t.role_field("issued") is None
    assert t.station_key == ("state", "district", "section", "station", "station_type")
    assert t.forensic_levels == (("district", ("state", "district")),) and t.leader == "pri"
    assert t.rule_bindings()["candidate"] == t.parties


def test_rules_are_named_labelled_and_may_use_roles():
    raw = _acta_raw()
    raw["rules"] = ["total_votes <= registered_voters",
                    {"name": "votes_add_up", "rule": "sum(candidate) + unregistered + null_votes == total_votes",
                     "label": "votes add up", "tolerance": 2}]
    t = parse_template(raw)
    assert t.rules[0] == FormRule("rule_1", "total_votes <= registered_voters")
    assert t.rule("votes_add_up").title == "votes add up" and t.rule("votes_add_up").tolerance == 2


@pytest.mark.parametrize(("key", "value", "message"), [
    ("rules", ["pan + nobody == total_votes"], "rules[0]"),
    ("rules", [{"name": "a", "rule": "pan <= 3"}, {"name": "a", "rule": "pri <= 3"}], "two rules are called 'a'"),
    ("rules", [{"rule": "pan <= 3", "tolerance": -1}], "rules[0].tolerance"),
    ("rules", [{"rule": "pan <= 3", "weight": 1}], "rules[0].weight"),
    ("station_key", ["state", "pan"], "station_key"),
    ("forensic_levels", {"district": ["state", "nowhere"]}, "forensic_levels.district"),
    ("leader", "null_votes", "leader"),
])
def test_bad_semantics_are_refused_naming_the_key(key, value, message):
    raw = _acta_raw()
    raw[key] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_template(raw)


def test_unknown_role_is_refused():
    raw = _acta_raw()
    raw["fields"][5]["role"] = "candidat"
    with pytest.raises(ConfigError, match="unknown role 'candidat'"):
        parse_template(raw)


def test_role_named_like_another_field_is_refused():
    raw = _acta_raw()
    next(f for f in raw["fields"] if f["name"] == "unregistered")["role"] = "invalid"  # invalid: null_votes too
    raw["fields"][5]["name"] = "invalid"
    with pytest.raises(ConfigError, match="also names of other fields"):
        parse_template(raw)


def test_acta_rules_and_id_ranges_are_data():
    t = load_template()
    assert [r.name for r in t.rules] == ["votes_add_up", "ballots_add_up", "total_within_registered",
                                         "count_within_registered"]
    assert t.rule("count_within_registered").text == "each(candidate, other_votes, invalid) <= registered"
    assert t.id_ranges == (("state", 1, 32), ("district", 1, 40))


@pytest.mark.parametrize(("value", "message"), [
    ({"pan": [1, 3]}, "id_ranges.pan"), ({"state": [1, 100]}, "id_ranges.state"), ({"state": "1-32"}, "id_ranges"),
    ({"state": [5, 2]}, "id_ranges.state"), ([1, 32], "id_ranges"),
])
def test_bad_id_ranges_are_refused_naming_the_key(value, message):
    raw = _acta_raw()
    raw["id_ranges"] = value
    with pytest.raises(ConfigError, match=message):
        parse_template(raw)


def test_id_range_without_a_high_bound_runs_to_the_box_limit():
    raw = _acta_raw()
    raw["id_ranges"] = {"section": [10]}
    assert parse_template(raw).id_ranges == (("section", 10, None),)
