"""Digit forensics over the batch and per district: the tests election observers run on reported counts.

Each test compares a digit statistic with what honest counts produce: last digits (chi-square, mean 4.5, share
ending in 0 or 5), the second-digit Benford law 2BL (chi-square, mean 4.187; Mebane), the Beber-Scacco pair tests
on the last two digits (repeated and adjacent digits) and the Klimek fingerprint (correlation of turnout with the
winner's share, plus the 2-D histogram). Tests with too few counts are skipped, p-values are adjusted for the
number of tests (Holm by default) and every result carries an effect size: a deviation is a statistical
irregularity to look into, not proof of fraud.

Two corrections keep honest counts from raising alarms (both measured in ``pipeline.audit.bench``):

* Last digits of small counts are not uniform: a count's distribution falls off over tens of votes, so within a
  decade low last digits are more common (a PMS count of 20-29 ends in 0 more often than in 9). With
  ``digit_reference = "smooth"`` the expected last-digit distribution is computed from the counts' own decade
  histogram (exponential within a decade, rate from the neighbouring decades), which keeps that smooth trend and
  still exposes heaping on chosen digits; ``"uniform"`` is the textbook reference.
* Turnout and the winner's share both vary between districts, so across districts they correlate by
  construction; the Klimek correlation is taken on values centred on their district's median.

The 2BL tests are reported but, by default, raise no alarm (``report_only_tests``): vote counts spanning one or
two orders of magnitude do not follow 2BL even when honest.

Digit tests are weak evidence: Deckert, Myagkov & Ordeshook (2011, Political Analysis 19(3)) showed that 2BL
both misses fraud and flags honest counts, and Mebane (2013) found last-digit and 2BL tests implausible as fraud
detectors on Russian data. So an alarm needs two things: the adjusted p-value below ``alpha`` **and** an effect
at least :data:`MIN_EFFECT` (with 350,000 digits a last-digit-mean shift of 0.024 has p < 0.01 and means nothing).

The form says what is tested (:class:`pipeline.audit.schema.FormSchema`): the choices are its candidate fields
(or ``forensic_fields``), the scopes its ``forensic_levels``, the Klimek "winner" its leader (the setting
``ruling_party``, else the template's ``leader``, else the choice with most votes) and turnout its votes cast over
its registered voters. A test that needs a role the form lacks is skipped with the reason, never run on nothing.

Families: p-values are adjusted per level, not over every scope at once: the batch's tests form one family, and
each scope level (e.g. every district) forms its own, so adding district scopes does not silence batch findings.

The Klimek rank correlation of turnout with the winner's share is reported only (:data:`ALWAYS_REPORT_ONLY`):
turnout and the winner's share correlate within districts for honest reasons (urban and rural stations differ in
both), so a zero-correlation null alarms on clean elections (issue 16: 73 of 85 Russian regions); its false-alarm
rate on clean simulated tables is measured by ``python -m pipeline bench --only tables`` (``klimek_rank``). The
2-D histogram and the corner share stay; the table audit tests the corner against a model of the bulk
(:mod:`pipeline.audit.table_forensics`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.audit.schema import OK_STATUS, FormSchema
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table_forensics import holm

DIGITS = np.arange(10)
#: Second-digit distribution of Benford's law: P(d) = sum_k log10(1 + 1 / (10 k + d)), k = 1..9 (mean 4.187).
BENFORD_2BL = np.array([sum(math.log10(1 + 1 / (10 * k + d)) for k in range(1, 10)) for d in DIGITS])
UNIFORM = np.full(10, 0.1)
#: Beber & Scacco (2012): with uniform last two digits, 10% of pairs repeat (11, 22, ...) and 20% are adjacent
#: (differ by one, 0 and 9 counting as adjacent), so 70% are neither.
P_REPEATED_PAIR = 0.1
P_ADJACENT_PAIR = 0.2
ROUND_DIGITS = (0, 5)
#: Smallest count whose last two digits are both "noise" digits (the tens digit of a 2-digit count is its
#: leading digit, which follows Benford rather than a uniform law).
MIN_PAIR_VALUE = 100
KLIMEK_TEST = "klimek_turnout_winner"
#: Cap on the neighbouring-decade contrast of :func:`smooth_last_digit_counts` (a decade with an empty neighbour
#: would otherwise get an infinitely steep curve).
MAX_DECADE_RATIO = 0.95
#: Smallest effect that may raise an alarm, per test (a p-value alone alarms on trivial shifts in large samples).
#: Cramer's V 0.033 is Cohen's (1988) "small" effect w = 0.1 spread over ten digit cells (V = w / sqrt(9)); a mean
#: digit 0.1 away from its expectation (four times the 0.024 shift issue 16 saw alarm on 350,000 digits); shares
#: one percentage point away from their expected 10% / 20%. The Klimek correlation never alarms.
MIN_EFFECT = {"last_digit_uniform": 0.033, "last_digit_mean": 0.1, "last_digit_0_or_5": 0.01,
              "second_digit_2bl": 0.033, "second_digit_2bl_mean": 0.1, "pair_repeated_digits": 0.01,
              "pair_adjacent_digits": 0.01, KLIMEK_TEST: 0.0}
#: Tests that never alarm whatever the settings say (see the module docstring).
ALWAYS_REPORT_ONLY = (KLIMEK_TEST,)
#: Digit tests run on every choice's counts (:func:`digit_tests`), in order; the Klimek test is :data:`KLIMEK_TEST`.
DIGIT_TESTS = ("last_digit_uniform", "last_digit_mean", "last_digit_0_or_5", "second_digit_2bl",
               "second_digit_2bl_mean", "pair_repeated_digits", "pair_adjacent_digits")
#: How the report labels digit tests (see the module docstring).
WEAK_EVIDENCE = ("weak evidence: digit tests flag honest counts and miss fraud (Deckert, Myagkov & Ordeshook "
                 "2011; Mebane 2013 found them implausible on Russian data); an alarm needs a minimum effect too")
INTERPRETATION = ("a deviation is a statistical irregularity worth a closer look, not proof of fraud; honest "
                  "counts from a few stations, or misread digits, can deviate too")


@dataclass(frozen=True)
class DigitTest:
    """One test in one scope. ``skipped`` says why a test was not run (then the numbers are ``None``)."""

    scope: str
    test: str
    n: int
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    effect: str = ""
    observed: list | None = None
    expected: list | None = None
    reference: str = ""
    skipped: str | None = None
    level: str = "batch"


def last_digits(values: np.ndarray, minimum: int) -> np.ndarray:
    """Last digit of every count >= ``minimum``."""
    return values[values >= minimum] % 10


def second_digits(values: np.ndarray, minimum: int) -> np.ndarray:
    """Second digit (from the left) of every count >= max(``minimum``, 10)."""
    v = values[values >= max(minimum, 10)]
    return (v // 10 ** (np.floor(np.log10(v)).astype(int) - 1)) % 10


def smooth_last_digit_counts(values: np.ndarray, minimum: int) -> np.ndarray:
    """Expected last-digit counts of the ``values >= minimum`` of one field if their distribution is smooth.

    Each decade's count is spread over its ten values along an exponential curve exp(b d) whose rate ``b`` comes
    from the neighbouring decades' counts (counts below ``minimum`` included): for an exponential density,
    (N[k+1] - N[k-1]) / (N[k+1] + N[k-1]) = tanh(10 b) exactly, and the ratio stays finite when a neighbour is
    empty. Exponential, not linear, because the tail of a small party's counts falls by a large factor within one
    decade. The reference keeps the distribution's trend but no preference for particular digits.
    """
    v = values[values >= 0]
    expected = np.zeros(10)
    if not (v >= minimum).any():
        return expected
    first, last = minimum // 10, int(v.max()) // 10
    per_decade = np.bincount(v // 10, minlength=last + 2).astype(float)
    for k in range(first, last + 1):
        n = per_decade[k] - (k == first) * v[(v // 10 == k) & (v < minimum)].size
        if n <= 0:
            continue
        below, above = (per_decade[k - 1] if k else 0.0), per_decade[k + 1]
        ratio = np.clip((above - below) / max(above + below, 1.0), -MAX_DECADE_RATIO, MAX_DECADE_RATIO)
        curve = np.exp(np.arctanh(ratio) / 10.0 * (DIGITS - 4.5))
        curve[: minimum - 10 * k if k == first else 0] = 0.0
        expected += curve / curve.sum() * n
    return expected


def last_digit_reference(fields: list[np.ndarray], minimum: int, mode: str) -> np.ndarray:
    """Expected last-digit probabilities of the pooled ``fields`` (each field's counts smoothed on its own)."""
    if mode == "uniform":
        return UNIFORM
    total = sum(smooth_last_digit_counts(v, minimum) for v in fields)
    return total / total.sum() if total.sum() else UNIFORM


def _cramers_v(chi2: float, n: int, k: int = 10) -> float:
    return math.sqrt(chi2 / (n * (k - 1)))


def digit_chisquare(scope: str, test: str, digits: np.ndarray, expected: np.ndarray, min_n: int,
                    reference: str) -> DigitTest:
    """Chi-square goodness of fit of a digit distribution to ``expected`` probabilities; effect Cramer's V."""
    n = len(digits)
    if n < min_n:
        return DigitTest(scope, test, n, skipped=f"only {n} digits (< {min_n})")
    observed = np.bincount(digits, minlength=10)
    chi2, p = stats.chisquare(observed, expected * n)
    return DigitTest(scope, test, n, float(chi2), float(p), _cramers_v(float(chi2), n), "Cramer's V",
                     observed.tolist(), (expected * n).round(2).tolist(), reference)


def digit_mean(scope: str, test: str, digits: np.ndarray, expected: np.ndarray, min_n: int,
               reference: str) -> DigitTest:
    """z-test of the mean digit against the mean of ``expected`` (variance from the same distribution)."""
    n = len(digits)
    if n < min_n:
        return DigitTest(scope, test, n, skipped=f"only {n} digits (< {min_n})")
    mu = float(DIGITS @ expected)
    sd = math.sqrt(float((DIGITS - mu) ** 2 @ expected))
    mean = float(digits.mean())
    z = (mean - mu) / (sd / math.sqrt(n))
    return DigitTest(scope, test, n, z, float(2 * stats.norm.sf(abs(z))), mean - mu,
                     "mean digit minus its expected mean", [mean], [mu], reference)


def share_test(scope: str, test: str, hits: np.ndarray, p0: float, min_n: int, reference: str) -> DigitTest:
    """Exact binomial test of the share of ``hits`` against ``p0``; effect size share - p0."""
    n = len(hits)
    if n < min_n:
        return DigitTest(scope, test, n, skipped=f"only {n} counts (< {min_n})")
    k = int(hits.sum())
    p = stats.binomtest(k, n, p0).pvalue
    return DigitTest(scope, test, n, k / n, float(p), k / n - p0, "share minus its expected share", [k / n],
                     [p0], reference)


def pair_hits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every count >= :data:`MIN_PAIR_VALUE`: are its last two digits repeated? adjacent (0 and 9 too)?"""
    v = values[values >= MIN_PAIR_VALUE]
    last, tens = v % 10, (v // 10) % 10
    gap = np.abs(last - tens)
    return last == tens, (gap == 1) | (gap == 9)


def klimek_test(scope: str, turnout: np.ndarray, winner_share: np.ndarray, min_n: int) -> DigitTest:
    """Spearman correlation of (district-centred) turnout with the winner's share (Klimek et al. 2012)."""
    ok = np.isfinite(turnout) & np.isfinite(winner_share)
    n = int(ok.sum())
    if n < min_n:
        return DigitTest(scope, KLIMEK_TEST, n, skipped=f"only {n} stations (< {min_n})")
    rho, p = stats.spearmanr(turnout[ok], winner_share[ok])
    if not np.isfinite(rho):
        return DigitTest(scope, KLIMEK_TEST, n, skipped="turnout or winner share does not vary")
    return DigitTest(scope, KLIMEK_TEST, n, float(rho), float(p), float(rho), "Spearman rho", reference="0")


def scope_tests(scope: str, group: pd.DataFrame, s: AuditSettings, level: str = "batch",
                centre_key: tuple[str, ...] = (), fields: tuple[str, ...] = (),
                skipped: dict[str, str] | None = None) -> list[DigitTest]:
    """Every test on one scope's sheets (``group`` has a ``winner_share`` column): the digit tests on the counts
    of ``fields``, the Klimek correlation centred on ``centre_key``. ``skipped`` maps a test (or
    :data:`DIGIT_TESTS`' group, key ``digits``) to why it cannot run on this form; such a test is reported
    skipped with that reason."""
    skipped = skipped or {}
    if "digits" in skipped:
        tests = [DigitTest(scope, name, 0, skipped=skipped["digits"]) for name in DIGIT_TESTS]
    else:
        tests = digit_tests(scope, [group[f].dropna().astype(int).to_numpy() for f in fields], s)
    if KLIMEK_TEST in skipped:
        tests.append(DigitTest(scope, KLIMEK_TEST, 0, skipped=skipped[KLIMEK_TEST]))
    else:
        tests.append(klimek_test(scope, district_centred(group, "turnout", centre_key),
                                 district_centred(group, "winner_share", centre_key), s.min_klimek_stations))
    return [replace(t, level=level) for t in tests]


def digit_tests(scope: str, per_field: list[np.ndarray], s) -> list[DigitTest]:
    """The digit tests of one scope on its counts, one array per field (``s``: any settings object with
    ``min_last_digit_value``, ``min_second_digit_value``, ``digit_reference`` and ``min_observations``)."""
    counts = np.concatenate(per_field) if per_field else np.array([], int)
    last = last_digits(counts, s.min_last_digit_value)
    ref = last_digit_reference(per_field, s.min_last_digit_value, s.digit_reference)
    second = second_digits(counts, s.min_second_digit_value)
    repeated, adjacent = pair_hits(counts)
    n, r = s.min_observations, s.digit_reference
    return [digit_chisquare(scope, "last_digit_uniform", last, ref, n, r),
            digit_mean(scope, "last_digit_mean", last, ref, n, r),
            share_test(scope, "last_digit_0_or_5", np.isin(last, ROUND_DIGITS), float(ref[list(ROUND_DIGITS)].sum()),
                       n, r),
            digit_chisquare(scope, "second_digit_2bl", second, BENFORD_2BL, n, "2BL"),
            digit_mean(scope, "second_digit_2bl_mean", second, BENFORD_2BL, n, "2BL"),
            share_test(scope, "pair_repeated_digits", repeated, P_REPEATED_PAIR, n, "Beber-Scacco"),
            share_test(scope, "pair_adjacent_digits", adjacent, P_ADJACENT_PAIR, n, "Beber-Scacco")]


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values: ``holm`` (family-wise) or ``bh``/``by`` (false discovery rate, scipy)."""
    if len(p) == 0:
        return p
    return holm(p) if method == "holm" else stats.false_discovery_control(p, method=method)


def winner_of(table: pd.DataFrame, choices: tuple[str, ...]) -> str:
    """The choice with the most votes in ``table`` (the Klimek 'winner' when the form names no leader)."""
    return str(table[list(choices)].sum().idxmax())


def winner_share(table: pd.DataFrame, winner: str | None, cast: tuple[str, ...]) -> pd.Series:
    """Per station, the winner's votes over the votes cast (the sum of ``cast``; NaN where it is missing or zero,
    or there is no winner or no votes cast)."""
    if winner is None or not cast:
        return pd.Series(np.nan, index=table.index, dtype=float)
    total = table[cast[0]].astype(float) if len(cast) == 1 else \
        table[list(cast)].astype(float).sum(axis=1, min_count=len(cast))
    return table[winner].astype(float) / total.where(total > 0)


def skipped_tests(schema: FormSchema, fields: tuple[str, ...], winner: str | None) -> dict[str, str]:
    """The tests this form cannot run, each with the reason (the role it lacks)."""
    out = {}
    if not fields:
        out["digits"] = f"form '{schema.name}' has no candidate fields (role candidate) to test"
    if schema.registered is None:
        out[KLIMEK_TEST] = f"form '{schema.name}' has no registered voters (role registered): no turnout"
    elif winner is None:
        out[KLIMEK_TEST] = f"form '{schema.name}' has no candidate fields (role candidate): no winner's share"
    elif not schema.votes_cast:
        out[KLIMEK_TEST] = (f"form '{schema.name}' has no votes cast (roles total, valid + invalid, or "
                            "candidate): no winner's share")
    return out


def district_centred(table: pd.DataFrame, column: str, key: tuple[str, ...] = ()) -> np.ndarray:
    """``column`` minus its district's median (NaN where the district is unknown); ``key``: the district's id
    columns (numbers or text)."""
    keys = [table[k] for k in key if k in table]
    x = table[column].astype(float)
    if not keys:
        return (x - x.median()).to_numpy(dtype=float)
    return (x - x.groupby(keys).transform("median")).to_numpy(dtype=float)


def id_text(value) -> str:
    """A station-id part as text: whole numbers without a trailing ``.0`` (ids read as floats), text stripped."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def scopes(table: pd.DataFrame, levels=()) -> list[tuple[str, str, pd.DataFrame]]:
    """``(level, scope name, rows)``: the whole batch (level ``batch``), then for each ``(level, key columns)`` of
    ``levels`` one scope per distinct key among the rows whose key is complete. Ids may be numbers or text (a
    region's name, a commission's code): they are only compared and printed, never cast."""
    out = [("batch", "batch", table)]
    for level, key in levels:
        key = [k for k in key if k in table]
        if not key:
            continue
        ids = table.dropna(subset=key)
        for values, group in ids.groupby(key, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            out.append((level, f"{level} {'-'.join(id_text(v) for v in values)}", group))
    return out


def klimek_histogram(turnout: np.ndarray, share: np.ndarray, s: AuditSettings) -> dict:
    """2-D histogram of turnout (rows) against the winner's share (columns), and the share in the top corner."""
    ok = np.isfinite(turnout) & np.isfinite(share)
    t, w = np.clip(turnout[ok], 0, 1), np.clip(share[ok], 0, 1)
    hist, _, _ = np.histogram2d(t, w, bins=s.klimek_bins, range=[[0, 1], [0, 1]])
    corner = float(np.mean((t >= s.klimek_corner) & (w >= s.klimek_corner))) if ok.any() else None
    return {"bins": s.klimek_bins, "histogram": hist.astype(int).tolist(), "n": int(ok.sum()),
            "corner": s.klimek_corner, "corner_share": corner,
            "corner_note": f"share of stations with turnout and winner share both >= {s.klimek_corner}"}


def adjust_and_alarm(results: list[DigitTest], s: AuditSettings, min_effect: dict | None = None) -> list[dict]:
    """Result rows with ``p_adjusted``, ``min_effect`` and ``alarm``. One family per level (the batch, then each
    scope level) and, within it, report-only tests apart (they never alarm). An alarm needs the adjusted p-value
    below ``alpha`` and ``|effect|`` at least the test's minimum effect (``min_effect``, default
    :data:`MIN_EFFECT`)."""
    minimum = {**MIN_EFFECT, **(min_effect or {})}
    report_only = set(s.report_only_tests) | set(ALWAYS_REPORT_ONLY)
    rows = [asdict(r) | {"p_adjusted": None, "alarm": False, "report_only": r.test in report_only,
                         "min_effect": minimum.get(r.test, 0.0)} for r in results]
    for level in dict.fromkeys(r["level"] for r in rows):
        for only in (False, True):
            family = [i for i, r in enumerate(rows)
                      if r["p_value"] is not None and r["report_only"] == only and r["level"] == level]
            for i, p in zip(family, adjust(np.array([rows[i]["p_value"] for i in family]), s.correction),
                            strict=True):
                big = abs(rows[i]["effect_size"] or 0.0) >= rows[i]["min_effect"]
                rows[i].update(p_adjusted=float(p), alarm=bool(p < s.alpha) and big and not only)
    return rows


def run_forensics(table: pd.DataFrame, s: AuditSettings, schema: FormSchema, levels=None,
                  min_effect: dict | None = None) -> dict:
    """Every test in every scope, with adjusted p-values and alarms, plus the Klimek histogram of the batch.

    ``schema``: the run's form (choices, turnout, leader; module docstring). ``levels``: the scope levels, each
    ``(name, id columns)`` (default: the form's ``forensic_levels``); ids may be numbers or text. ``min_effect``:
    per-test minimum effects overriding :data:`MIN_EFFECT`. ``table`` has the form's counts and a ``turnout``
    column (:func:`pipeline.audit.table.turnout`).
    """
    levels = schema.levels if levels is None else levels
    fields = tuple(s.forensic_fields) if s.forensic_fields is not None else schema.candidates
    usable = table[table["status"] == OK_STATUS] if "status" in table else table
    winner = schema.leader_of(s.ruling_party)
    if winner is None and schema.candidates:
        winner = winner_of(usable, schema.candidates) if len(usable) else schema.candidates[0]
    skipped = skipped_tests(schema, fields, winner)
    usable = usable.assign(winner_share=winner_share(usable, winner, schema.votes_cast))
    centre = tuple(levels[-1][1]) if levels else ()
    rows = adjust_and_alarm([r for level, name, group in scopes(usable, levels)
                             for r in scope_tests(name, group, s, level, centre, fields, skipped)], s, min_effect)
    alarms = [r for r in rows if r["alarm"]]
    tested = [r for r in rows if r["p_value"] is not None]
    klimek = ({"skipped": skipped[KLIMEK_TEST]} if KLIMEK_TEST in skipped else
              klimek_histogram(usable["turnout"].to_numpy(float), usable["winner_share"].to_numpy(float), s))
    return {"alpha": s.alpha, "correction": s.correction, "families": "one per level (batch, then each scope level)",
            "min_effect": {**MIN_EFFECT, **(min_effect or {})}, "weak_evidence": WEAK_EVIDENCE,
            "fields": list(fields), "winner": winner,
            "digit_reference": s.digit_reference, "report_only_tests": list(s.report_only_tests),
            "interpretation": INTERPRETATION, "tests": rows, "klimek": {"winner": winner, **klimek},
            "summary": {"n_tests": len(tested), "n_skipped": len(rows) - len(tested), "n_alarms": len(alarms),
                        "alarms": [{k: a[k] for k in ("scope", "test", "effect_size", "effect", "p_adjusted")}
                                   for a in alarms]}}
