"""The data-driven rule engine: parsing (no eval), vectorised evaluation, gaps and bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.audit.rules import (
    RuleError,
    Term,
    check_names,
    evaluate,
    expand,
    expression_values,
    holds,
    parse_expression,
    parse_rule,
    shortfall,
)


def test_parse_identity_with_coefficients_and_group():
    rule = parse_rule("received == issued + 2*cancelled + 3 lost - not_counted + sum(choices) - 5")
    assert rule.op == "=="
    assert rule.names == ("received", "issued", "cancelled", "lost", "not_counted", "choices")
    assert Term(-2, "cancelled") in rule.terms and Term(-3, "lost") in rule.terms
    assert Term(1, "not_counted") in rule.terms and Term(5, None) in rule.terms


@pytest.mark.parametrize("text", ["", "a ==", "a = b", "a == b ==", "__import__('os') == 1", "a == b; c",
                                  "a * b == c", "sum(1) == a", "1 == 2", "a == b )", "a.b == c"])
def test_bad_rules_are_refused(text):
    with pytest.raises(RuleError):
        parse_rule(text)


def test_evaluate_gap_pass_and_missing():
    frame = pd.DataFrame({"received": [10, 10, 10, None], "issued": [7, 6, 9, 1], "cancelled": [3, 3, 3, 1]})
    result = evaluate(parse_rule("received == issued + cancelled"), frame)
    assert result.gap[:3].tolist() == [0, 1, -2]
    assert result.passed.tolist() == [True, False, False, False]
    assert result.evaluable.tolist() == [True, True, True, False]
    assert result.failed.tolist() == [False, True, True, False]
    assert result.shortfall[:3].tolist() == [0, 1, 2]


def test_bounds_and_tolerance():
    frame = pd.DataFrame({"found": [5, 6, 8], "issued": [6, 6, 6]})
    le = evaluate(parse_rule("found <= issued", soft=True), frame)
    assert le.passed.tolist() == [True, True, False] and le.rule.soft
    assert le.shortfall.tolist() == [0, 0, 2]
    assert evaluate(parse_rule("issued >= found"), frame).passed.tolist() == [True, True, False]
    assert evaluate(parse_rule("found <= issued"), frame, tolerance=2).passed.all()


def test_names_map_to_summed_columns():
    frame = pd.DataFrame({"early": [1, 2], "station": [5, 5], "a": [3, 3], "b": [3, 4]})
    columns = {"issued": ["early", "station"], "choices": ["a", "b"]}
    result = evaluate(parse_rule("issued == sum(choices)"), frame, columns)
    assert result.passed.tolist() == [True, True]
    assert expression_values(parse_expression("issued - 2 a"), frame, columns).tolist() == [0, 1]
    with pytest.raises(RuleError, match="needs column"):
        evaluate(parse_rule("valid == issued"), frame, columns)


def test_check_names_lists_unknown():
    with pytest.raises(RuleError, match="unknown name.*valdi"):
        check_names(parse_rule("valdi == sum(choices)"), ["valid", "choices"])


def test_vectorised_on_many_rows():
    n = 100_000
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, n)
    frame = pd.DataFrame({"a": a, "b": a.copy()})
    frame.loc[5, "b"] += 3
    result = evaluate(parse_rule("a == b"), frame)
    assert result.failed.sum() == 1 and result.gap[5] == -3


def test_each_makes_one_check_per_member_with_the_rules_text():
    rule = parse_rule("each(candidate, invalid) <= registered")
    assert rule.names == ("candidate", "invalid", "registered") and rule.each_term.group == ("candidate", "invalid")
    columns = {"candidate": ("a", "b"), "invalid": ("n",), "registered": ("reg",)}
    checks = expand(rule, columns)
    assert [member for member, _ in checks] == ["a", "b", "n"]
    assert all(r.text == rule.text and r.each_term is None for _, r in checks)
    frame = pd.DataFrame({"a": [5, 50], "b": [1, 1], "n": [0, 0], "reg": [10, 10]})
    assert [evaluate(r, frame, columns).failed.tolist() for _, r in checks] == [[False, True], [False, False],
                                                                               [False, False]]
    assert expand(parse_rule("a == b")) == ((None, parse_rule("a == b")),)
    whole = evaluate(rule, frame.assign(b=[1, 30]), columns)  # row 2: a over by 40, b by 20: a is the worst
    assert whole.passed.tolist() == [True, False] and whole.gap.tolist() == [-5, 40]
    assert not evaluate(rule, frame.assign(n=[None, 0]), columns).evaluable[0]


@pytest.mark.parametrize("text", ["each(a) + each(b) == c", "each() == a", "each(1) == a", "sum(a, b) == c"])
def test_bad_each_is_refused(text):
    with pytest.raises(RuleError):
        parse_rule(text)


def test_sides_keep_what_was_written_and_scalars_compare_like_tables():
    rule = parse_rule("received == total + 2*left_over - 3")
    left, right = rule.sides
    assert left == (Term(1, "received"),) and right == (Term(1, "total"), Term(2, "left_over"), Term(-3, None))
    assert holds("==", 1, 1) and not holds("==", -2, 1) and holds("<=", -5) and not holds(">=", -1)
    assert shortfall("<=", 3) == 3 and shortfall(">=", 3) == 0 and shortfall("==", -4) == 4
