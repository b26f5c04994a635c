"""The digit tests of ``forensics.json`` as one card per test, in plain words.

Each card says what the test checks (one sentence), where it comes from, how much to trust it, and for the whole
batch the expected and observed values, the effect size and the verdict in words; the per-district results are
listed behind it, alarms first. Pure functions on the parsed JSON (no files, no HTML).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Scope of the whole-batch result (the others are the scopes of the form's forensic levels, such as districts).
BATCH_SCOPE = "batch"
#: What a scope is called when the forensics do not name its level (an older ``forensics.json``).
UNNAMED_LEVEL = "scope"
#: What digit tests can and cannot show, said once on the page.
TRUST_NOTE = ("Digit tests are weak evidence: honest counts from few stations, or misread digits, can deviate, and "
              "careful fraud need not. An alarm says where to look, not that fraud happened; no alarm is not proof "
              "of honest counts.")


@dataclass(frozen=True)
class DigitTestInfo:
    """How one digit test is explained: its name in words, what it checks, its source."""

    title: str
    checks: str
    source: str


#: Every test the audit runs, in the order the page shows them.
TESTS = {
    "last_digit_0_or_5": DigitTestInfo(
        "Counts ending in 0 or 5",
        "Whether more counts end in 0 or 5 than honest counting gives: people who make numbers up favour round ones.",
        "Beber & Scacco (2012), Political Analysis 20(2)"),
    "last_digit_uniform": DigitTestInfo(
        "Last digits",
        "Whether the last digits of the party counts are spread as honest counts of the same size spread them.",
        "Beber & Scacco (2012), Political Analysis 20(2)"),
    "last_digit_mean": DigitTestInfo(
        "Mean last digit",
        "Whether the average last digit is where honest counts of the same size put it.",
        "Beber & Scacco (2012); Mebane (2006)"),
    "pair_repeated_digits": DigitTestInfo(
        "Repeated last two digits",
        "Whether too few counts end in a repeated pair (11, 22, ...): people inventing numbers avoid repeats.",
        "Beber & Scacco (2012), Political Analysis 20(2)"),
    "pair_adjacent_digits": DigitTestInfo(
        "Adjacent last two digits",
        "Whether too many counts end in neighbouring digits (12, 34, ...), a habit of invented numbers.",
        "Beber & Scacco (2012), Political Analysis 20(2)"),
    "second_digit_2bl": DigitTestInfo(
        "Second digits (Benford)",
        "Whether the second digits of the counts follow Benford's second-digit law.",
        "Mebane (2006), Election Forensics: Vote Counts and Benford's Law"),
    "second_digit_2bl_mean": DigitTestInfo(
        "Mean second digit (Benford)",
        "Whether the average second digit is near Benford's 4.19.",
        "Mebane (2006), Election Forensics: Vote Counts and Benford's Law"),
    "klimek_turnout_winner": DigitTestInfo(
        "Turnout and the winner's share",
        "Whether the winner's share rises with turnout across stations, the pattern ballot stuffing leaves.",
        "Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109(41)"),
}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _value_text(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def compared(test: dict) -> tuple[str, str]:
    """``(expected, observed)`` as short text: a single value as itself, a digit distribution as its length."""
    exp, obs = test.get("expected"), test.get("observed")
    if isinstance(exp, list) and isinstance(obs, list) and len(exp) == len(obs) == 1:
        e, o = _number(exp[0]), _number(obs[0])
        if e is not None and o is not None:
            return _value_text(e), _value_text(o)
    if isinstance(exp, list) and isinstance(obs, list) and len(exp) == len(obs) > 1:
        return f"the {len(exp)} digits in honest proportions", "see the table of digits"
    if test.get("test") == "klimek_turnout_winner":
        return "no link (rho near 0)", f"rho {_value_text(_number(test.get('effect_size')) or 0.0)}"
    return "–", "–"


def digit_rows(test: dict) -> list[tuple[int, float, float]]:
    """``[(digit, expected, observed)]`` of a digit-distribution test (empty for other tests)."""
    exp, obs = test.get("expected"), test.get("observed")
    if not (isinstance(exp, list) and isinstance(obs, list) and len(exp) == len(obs) > 1):
        return []
    first = 1 if len(exp) == 9 else 0
    return [(first + i, float(e), float(o)) for i, (e, o) in enumerate(zip(exp, obs, strict=True))]


def verdict_words(test: dict, alpha: float) -> tuple[str, str]:
    """``(css class, sentence)``: the result in words."""
    if test.get("skipped"):
        return "skipped", f"Not run: {test['skipped']}."
    p = _number(test.get("p_adjusted"))
    p = _number(test.get("p_value")) if p is None else p
    p_text = "adjusted p unknown" if p is None else "adjusted p < 0.001" if p < 0.001 else f"adjusted p = {p:.3f}"
    if test.get("report_only"):
        return "report-only", (f"Shown for reference only ({p_text}): this test is known to misfire on "
                               "counts like these, so it never raises an alarm.")
    if test.get("alarm"):
        return "alarm", (f"Alarm: a deviation this large would be rare in honest counts ({p_text}, "
                         f"below {alpha}). Look at the sheets; it is not proof.")
    return "no-alarm", (f"No alarm: the digits are consistent with honest counts at this sample size ("
                        f"{p_text}).")


def effect_text(test: dict) -> str:
    """The effect size with what it measures, e.g. ``0.101 (Cramer's V)``."""
    size = _number(test.get("effect_size"))
    if size is None:
        return "–"
    name = str(test.get("effect") or "")
    return f"{size:.3f}" + (f" ({name})" if name else "")


def result_view(test: dict, alpha: float) -> dict:
    """One scope's result of one test, ready to show."""
    css, words = verdict_words(test, alpha)
    expected, observed = compared(test)
    return {"scope": str(test.get("scope", "")), "n": test.get("n"), "css": css, "words": words,
            "expected": expected, "observed": observed, "effect": effect_text(test), "alarm": bool(test.get("alarm")),
            "skipped": bool(test.get("skipped")), "digits": digit_rows(test)}


def forensic_cards(forensics: dict | list) -> list[dict]:
    """One card per test: its explanation, the batch result, and the results of the scopes of the form's forensic
    level (``level``: its name, e.g. district; alarms first, then the ones that ran, then the skipped ones); tests
    the page does not know are explained by their code name."""
    records = forensics.get("tests", []) if isinstance(forensics, dict) else forensics
    alpha = _number(forensics.get("alpha")) if isinstance(forensics, dict) else None
    alpha = 0.05 if alpha is None else alpha
    tests = [r for r in records if isinstance(r, dict) and r.get("test")]
    names = list(dict.fromkeys([*(t for t in TESTS if any(r["test"] == t for r in tests)),
                                *(r["test"] for r in tests)]))
    cards = []
    for name in names:
        info = TESTS.get(name, DigitTestInfo(name.replace("_", " "), "", ""))
        results = [result_view(r, alpha) for r in tests if r["test"] == name]
        batch = next((r for r in results if r["scope"] == BATCH_SCOPE), None)
        scopes = sorted((r for r in results if r["scope"] != BATCH_SCOPE),
                        key=lambda r: (not r["alarm"], r["skipped"], r["scope"]))
        levels = [str(r["level"]) for r in tests if r["test"] == name and r.get("scope") != BATCH_SCOPE
                  and r.get("level")]
        cards.append({"test": name, "title": info.title, "checks": info.checks, "source": info.source,
                      "batch": batch, "scopes": scopes, "level": (levels or [UNNAMED_LEVEL])[0].replace("_", " "),
                      "n_alarms": sum(r["alarm"] for r in scopes),
                      "n_skipped": sum(r["skipped"] for r in scopes)})
    return sorted(cards, key=lambda c: not ((c["batch"] or {}).get("alarm") or c["n_alarms"]))
