"""Control relations written as data: linear identities and bounds over named counts, evaluated on whole tables.

A rule is a string such as ``received == issued + cancelled + lost - not_counted``, ``found <= issued`` or
``valid == sum(choices)``. The grammar is deliberately tiny and parsed here by hand (never ``eval``)::

    rule  := expr OP expr            OP: ==  <=  >=
    expr  := ["-"] term (("+" | "-") term)*
    term  := INT ["*"] atom | atom | INT
    atom  := NAME | "sum" "(" NAME ")" | "each" "(" NAME ("," NAME)* ")"

A ``NAME`` is resolved by the caller into one or more columns (a name bound to several columns, such as
``issued`` = early + in the station + outside, stands for their sum; ``sum(group)`` says so explicitly). The same
syntax serves a results table (names are the roles of its mapping file) and a scanned form template (names are
its fields).

``each(group, ...)`` (at most once per rule) makes the rule one check per member column of the groups, in order:
``each(candidate, invalid) <= registered`` is ``pan <= registered``, ``pri <= registered`` ... ``null_votes <=
registered``. :func:`expand` makes those checks; :func:`evaluate` on a whole table passes a row when every one
holds.

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
TOKEN_RE = re.compile(r"\s*(?:(?P<int>\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|<=|>=|[-+*(),]))")
#: Longest rule text accepted (a guard against pathological input from a mapping file).
MAX_RULE_CHARS = 1000
#: The function name for an explicit group sum.
SUM_FUNCTION = "sum"
#: The function name of a group whose members are checked one by one (:func:`expand`).
EACH_FUNCTION = "each"


class RuleError(ValueError):
    """A rule's text cannot be parsed, or names something the table does not have."""


@dataclass(frozen=True)
class Term:
    """``coefficient * name`` (``name`` None: a constant ``coefficient``, unless ``group`` is set).

    ``group``: the names of an ``each(...)`` term (``name`` None): one member column at a time (:func:`expand`).
    """

    coefficient: int
    name: str | None = None
    group: tuple[str, ...] = ()

    @property
    def is_constant(self) -> bool:
        """True for a number alone (no name, no group)."""
        return self.name is None and not self.group

    @property
    def names(self) -> tuple[str, ...]:
        """The names the term uses: its name, or its group's names."""
        return self.group if self.group else (() if self.name is None else (self.name,))


@dataclass(frozen=True)
class Rule:
    """A parsed rule: ``left - right`` compared with zero by ``op``; ``soft`` rules are warnings, not failures."""

    text: str
    terms: tuple[Term, ...]
    op: str
    soft: bool = False
    label: str = ""
    #: ``terms[:split]`` came from the left-hand side (None: not recorded, e.g. a rule built by hand).
    split: int | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The names the rule uses, in order of first use."""
        return tuple(dict.fromkeys(n for t in self.terms for n in t.names))

    @property
    def sides(self) -> tuple[tuple[Term, ...], tuple[Term, ...]]:
        """The left- and right-hand sides as written (right-hand coefficients back to their written sign); all
        terms on the left when the split was not recorded."""
        split = len(self.terms) if self.split is None else self.split
        return self.terms[:split], tuple(negated(t) for t in self.terms[split:])

    @property
    def each_term(self) -> Term | None:
        """The rule's ``each(...)`` term, if it has one."""
        return next((t for t in self.terms if t.group), None)

    @property
    def title(self) -> str:
        """The label if one was given, else the rule's text."""
        return self.label or self.text


def negated(term: Term) -> Term:
    """``term`` with its coefficient's sign flipped."""
    return Term(-term.coefficient, term.name, term.group)


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
                return self.named(sign * coefficient, *self.take())
            if nxt is not None and nxt[0] == "name":
                return self.named(sign * coefficient, *self.take())
            return Term(sign * coefficient, None)
        return self.named(sign, kind, value)

    def named(self, coefficient: int, kind: str, value: str) -> Term:
        """The term ``coefficient * atom``, the atom starting with the token ``(kind, value)``."""
        if kind == "name" and value == EACH_FUNCTION and self.peek() == ("op", "("):
            return Term(coefficient, None, self.group())
        return Term(coefficient, self.atom(kind, value))

    def group(self) -> tuple[str, ...]:
        """The names of ``each(a, b, ...)`` after ``each``."""
        self.expect("(")
        names = [self.name_in(EACH_FUNCTION)]
        while self.peek() == ("op", ","):
            self.take()
            names.append(self.name_in(EACH_FUNCTION))
        self.expect(")")
        return tuple(names)

    def name_in(self, function: str) -> str:
        kind, name = self.take()
        if kind != "name":
            raise RuleError(f"rule {self.text!r}: {function}() takes a name, found {name!r}")
        return name

    def atom(self, kind: str, value: str) -> str:
        if kind != "name":
            raise RuleError(f"rule {self.text!r}: expected a name, found {value!r}")
        if value == SUM_FUNCTION and self.peek() == ("op", "("):
            self.take()
            name = self.name_in(SUM_FUNCTION)
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
    terms = tuple(left) + tuple(negated(t) for t in right)
    if all(t.is_constant for t in terms):
        raise RuleError(f"rule {text!r}: names no count")
    if sum(bool(t.group) for t in terms) > 1:
        raise RuleError(f"rule {text!r}: {EACH_FUNCTION}() may appear once in a rule")
    return Rule(text=text.strip(), terms=terms, op=op, soft=soft, label=label, split=len(left))


def members(rule: Rule, columns: Mapping[str, Sequence[str]] | None = None) -> tuple[str, ...]:
    """The member columns of the rule's ``each(...)`` term, in order (each name's columns, default the name
    itself); empty when the rule has no such term."""
    term = rule.each_term
    if term is None:
        return ()
    bound = columns or {}
    return tuple(dict.fromkeys(c for name in term.group for c in bound.get(name, (name,))))


def expand(rule: Rule, columns: Mapping[str, Sequence[str]] | None = None) -> tuple[tuple[str | None, Rule], ...]:
    """The checks a rule stands for, as ``(member, rule)``: ``(None, rule)`` for a rule without ``each(...)``;
    otherwise one rule per member column (:func:`members`), the ``each`` term replaced by that column (same text,
    label and split, so every check keeps the rule's name and wording)."""
    term = rule.each_term
    if term is None:
        return ((None, rule),)
    return tuple((column, Rule(text=rule.text, soft=rule.soft, label=rule.label, op=rule.op, split=rule.split,
                               terms=tuple(Term(t.coefficient, column) if t is term else t for t in rule.terms)))
                 for column in members(rule, columns))


def _compare(op: str, gap, tolerance: float):
    if op == "==":
        return abs(gap) <= tolerance
    if op == "<=":
        return gap <= tolerance
    return gap >= -tolerance


def holds(op: str, gap: np.ndarray | float, tolerance: float = 0) -> np.ndarray | bool:
    """Whether a rule with operator ``op`` holds for the gap ``left - right`` within ``tolerance`` votes (NaN
    gaps: False). The one comparison shared by whole tables (:func:`evaluate`, arrays) and single sheets (numbers,
    compared in plain Python: the misread search calls this thousands of times per sheet)."""
    if isinstance(gap, np.ndarray):
        with np.errstate(invalid="ignore"):
            return _compare(op, gap, tolerance)
    return _compare(op, gap, tolerance)


def shortfall(op: str, gap: np.ndarray | float) -> np.ndarray | float:
    """How far a gap ``left - right`` is from satisfying a rule with operator ``op`` (0 where it holds within no
    tolerance; NaN stays NaN)."""
    if not isinstance(gap, np.ndarray):
        return abs(gap) if op == "==" else max(gap if op == "<=" else -gap, 0)
    if op == "==":
        return np.abs(gap)
    if op == "<=":
        return np.where(np.isnan(gap), np.nan, np.maximum(gap, 0))
    return np.where(np.isnan(gap), np.nan, np.maximum(-gap, 0))


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
        return shortfall(self.rule.op, self.gap)


def evaluate(rule: Rule, frame: pd.DataFrame, columns: Mapping[str, Sequence[str]] | None = None,
             tolerance: float = 0) -> RuleResult:
    """Evaluate ``rule`` on every row of ``frame``.

    ``columns`` maps each name to the column(s) whose sum it stands for (default: the column of that name).
    ``tolerance`` (votes) is the gap still accepted.

    A rule with ``each(...)`` holds on a row when every member's check holds (:func:`expand`); its gap is that of
    the member furthest from holding, and a row missing any member's value is not evaluable.

    Raises:
        RuleError: a name with no column in ``frame``, or an ``each(...)`` group with no column.
    """
    if rule.each_term is not None:
        return _evaluate_each(rule, frame, columns, tolerance)
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
    passed = holds(rule.op, total, tolerance)
    return RuleResult(rule=rule, gap=total, passed=passed & evaluable, evaluable=evaluable)


def _evaluate_each(rule: Rule, frame: pd.DataFrame, columns: Mapping[str, Sequence[str]] | None,
                   tolerance: float) -> RuleResult:
    """:func:`evaluate` of an ``each(...)`` rule: every member's check, combined row by row."""
    parts = [evaluate(member_rule, frame, columns, tolerance) for _, member_rule in expand(rule, columns)]
    if not parts:
        raise RuleError(f"rule {rule.text!r}: {EACH_FUNCTION}() names no column")
    short = np.vstack([p.shortfall for p in parts])
    worst = np.argmax(np.where(np.isnan(short), -np.inf, short), axis=0)
    evaluable = np.logical_and.reduce([p.evaluable for p in parts])
    gap = np.where(evaluable, np.vstack([p.gap for p in parts])[worst, np.arange(len(frame))], np.nan)
    return RuleResult(rule=rule, gap=gap, passed=np.logical_and.reduce([p.passed for p in parts]) & evaluable,
                      evaluable=evaluable)


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
