"""Control relations written as data: linear identities and bounds over named counts, evaluated on whole tables.

A rule is a string such as ``received == issued + cancelled + lost - not_counted``, ``found <= issued`` or
``valid == sum(choices)``. The grammar is deliberately tiny and parsed here by hand (never ``eval``)::

    rule  := expr OP expr            OP: ==  <=  >=
    expr  := ["-"] term (("+" | "-") term)*
    term  := INT ["*"] atom | atom | INT
    atom  := NAME | "sum" "(" NAME ")"

A ``NAME`` is resolved by the caller into one or more columns (a name bound to several columns, such as
``issued`` = early + in the station + outside, stands for their sum; ``sum(group)`` says so explicitly). The same
syntax serves a results table (names are the roles of its mapping file) and a scanned form template (names are
its fields).

:func:`evaluate` works on a whole :class:`pandas.DataFrame` at once and returns, per row, the gap
``left - right`` (in votes: "by N") and whether the rule holds; a row with a missing value in any of the rule's
columns is neither passed nor failed (``evaluable`` is false).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Comparison operators a rule may use.
OPERATORS = ("==", "<=", ">=")
#: One token: a number, a name, an operator or a parenthesis (whitespace between tokens is skipped).
TOKEN_RE = re.compile(r"\s*(?:(?P<int>\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|<=|>=|[-+*()]))")
#: Longest rule text accepted (a guard against pathological input from a mapping file).
MAX_RULE_CHARS = 1000
#: The function name for an explicit group sum.
SUM_FUNCTION = "sum"


class RuleError(ValueError):
    """A rule's text cannot be parsed, or names something the table does not have."""


@dataclass(frozen=True)
class Term:
    """``coefficient * name`` (``name`` None: a constant ``coefficient``)."""

    coefficient: int
    name: str | None = None


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``left - right`` compared with zero by ``op``; ``soft`` rules are warnings, not failures."""

    text: str
    terms: tuple[Term, ...]
    op: str
    soft: bool = False
    label: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The names the rule uses, in order of first use."""
        return tuple(dict.fromkeys(t.name for t in self.terms if t.name is not None))

    @property
    def title(self) -> str:
        """The label if one was given, else the rule's text."""
        return self.label or self.text


def tokenize(text: str) -> list[tuple[str, str]]:
    """``text`` as ``(kind, value)`` tokens, kind one of ``int``, ``name``, ``op``.

    Raises:
        RuleError: a character that belongs to no token, or a text longer than :data:`MAX_RULE_CHARS`.
    """
    if len(text) > MAX_RULE_CHARS:
        raise RuleError(f"rule longer than {MAX_RULE_CHARS} characters")
    tokens, pos = [], 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = TOKEN_RE.match(stripped, pos)
        if m is None or m.end() == pos:
            raise RuleError(f"rule {text!r}: unexpected {stripped[pos:].lstrip()[:1]!r} at character {pos + 1}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive-descent parser over the tokens of one rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise RuleError(f"rule {self.text!r}: ends too early")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        kind, got = self.take()
        if got != value:
            raise RuleError(f"rule {self.text!r}: expected {value!r}, found {got!r}")

    def expression(self) -> list[Term]:
        sign = 1
        if self.peek() == ("op", "-"):
            self.take()
            sign = -1
        terms = [self.term(sign)]
        while self.peek() in (("op", "+"), ("op", "-")):
            sign = 1 if self.take()[1] == "+" else -1
            terms.append(self.term(sign))
        return terms

    def term(self, sign: int) -> Term:
        kind, value = self.take()
        if kind == "int":
            coefficient = int(value)
            nxt = self.peek()
            if nxt == ("op", "*"):
                self.take()
                return Term(sign * coefficient, self.atom(*self.take()))
            if nxt is not None and nxt[0] == "name":
                return Term(sign * coefficient, self.atom(*self.take()))
            return Term(sign * coefficient, None)
        return Term(sign, self.atom(kind, value))

    def atom(self, kind: str, value: str) -> str:
        if kind != "name":
            raise RuleError(f"rule {self.text!r}: expected a name, found {value!r}")
        if value == SUM_FUNCTION and self.peek() == ("op", "("):
            self.take()
            kind, name = self.take()
            if kind != "name":
                raise RuleError(f"rule {self.text!r}: sum() takes a name, found {name!r}")
            self.expect(")")
            return name
        return value


def parse_rule(text: str, soft: bool = False, label: str = "") -> Rule:
    """Parse one rule's text (see the module docstring for the grammar).

    Raises:
        RuleError: the text is not a rule; the message quotes it and says what was expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"a rule must be non-empty text such as 'valid == sum(choices)', not {text!r}")
    parser = _Parser(text)
    left = parser.expression()
    kind, op = parser.take()
    if op not in OPERATORS:
        raise RuleError(f"rule {text!r}: expected one of {', '.join(OPERATORS)}, found {op!r}")
    right = parser.expression()
    if parser.peek() is not None:
        raise RuleError(f"rule {text!r}: unexpected {parser.peek()[1]!r} after the right-hand side")
    terms = tuple(left) + tuple(Term(-t.coefficient, t.name) for t in right)
    if all(t.name is None for t in terms):
        raise RuleError(f"rule {text!r}: names no count")
    return Rule(text=text.strip(), terms=terms, op=op, soft=soft, label=label)


def check_names(rule: Rule, known: Sequence[str] | Mapping[str, object]) -> None:
    """Raise :class:`RuleError` naming every name of ``rule`` that is not in ``known``."""
    unknown = [n for n in rule.names if n not in known]
    if unknown:
        raise RuleError(f"rule {rule.text!r}: unknown name(s) {', '.join(unknown)}; known: {', '.join(known)}")


@dataclass(frozen=True)
class RuleResult:
    """One rule on every row: ``gap`` = left - right (votes; NaN where not evaluable), ``passed`` and
    ``evaluable`` boolean arrays. ``failed`` = evaluable and not passed."""

    rule: Rule
    gap: np.ndarray
    passed: np.ndarray
    evaluable: np.ndarray

    @property
    def failed(self) -> np.ndarray:
        return self.evaluable & ~self.passed

    @property
    def shortfall(self) -> np.ndarray:
        """How far each row is from satisfying the rule (0 where it holds; NaN where not evaluable)."""
        gap = self.gap
        if self.rule.op == "==":
            return np.abs(gap)
        if self.rule.op == "<=":
            return np.where(np.isnan(gap), np.nan, np.maximum(gap, 0))
        return np.where(np.isnan(gap), np.nan, np.maximum(-gap, 0))


def evaluate(rule: Rule, frame: pd.DataFrame, columns: Mapping[str, Sequence[str]] | None = None,
             tolerance: float = 0) -> RuleResult:
    """Evaluate ``rule`` on every row of ``frame``.

    ``columns`` maps each name to the column(s) whose sum it stands for (default: the column of that name).
    ``tolerance`` (votes) is the gap still accepted.

    Raises:
        RuleError: a name with no column in ``frame``.
    """
    n = len(frame)
    total = np.zeros(n, dtype=np.float64)
    for term in rule.terms:
        if term.name is None:
            total += term.coefficient
            continue
        cols = list(columns[term.name]) if columns is not None and term.name in columns else [term.name]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise RuleError(f"rule {rule.text!r}: {term.name} needs column(s) {', '.join(map(str, missing))}")
        values = frame[cols].to_numpy(dtype=np.float64, na_value=np.nan)
        total += term.coefficient * values.sum(axis=1) if cols else 0.0
    evaluable = ~np.isnan(total)
    with np.errstate(invalid="ignore"):
        if rule.op == "==":
            passed = np.abs(total) <= tolerance
        elif rule.op == "<=":
            passed = total <= tolerance
        else:
            passed = total >= -tolerance
    return RuleResult(rule=rule, gap=total, passed=passed & evaluable, evaluable=evaluable)


def evaluate_all(rules: Sequence[Rule], frame: pd.DataFrame, columns: Mapping[str, Sequence[str]] | None = None,
                 tolerance: float = 0) -> list[RuleResult]:
    """:func:`evaluate` for each rule, in order."""
    return [evaluate(r, frame, columns, tolerance) for r in rules]


def parse_expression(text: str) -> tuple[Term, ...]:
    """Parse a linear expression alone (the right grammar of one side of a rule), e.g. ``valid + invalid``.

    Raises:
        RuleError: the text is not such an expression.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"an expression must be non-empty text such as 'valid + invalid', not {text!r}")
    parser = _Parser(text)
    terms = parser.expression()
    if parser.peek() is not None:
        raise RuleError(f"expression {text!r}: unexpected {parser.peek()[1]!r}")
    return tuple(terms)


def expression_names(terms: Sequence[Term]) -> tuple[str, ...]:
    """The names an expression uses, in order of first use."""
    return tuple(dict.fromkeys(t.name for t in terms if t.name is not None))


def expression_values(terms: Sequence[Term], frame: pd.DataFrame,
                      columns: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
    """The value of a linear expression on every row of ``frame`` (float; NaN where a value is missing)."""
    rule = Rule(text="", terms=tuple(terms), op="==")
    return evaluate(rule, frame, columns).gap
