"""One verdict per sheet, the ranking tiers, plain reasons, the fields behind a flag and the checks that pass."""

from __future__ import annotations

import json

import pytest

from pipeline.report import triage
from pipeline.report.formview import default_form

NAMES = {"pan": "PAN", "pri": "PRI", "total_votes": "total votes", "ballots_received": "ballots received",
         "registered_voters": "registered voters"}
SUM_FIELDS = "pan;pri;total_votes"


def flag(rule: str, verdict: str, severity: str = "medium", fields: str = SUM_FIELDS, **evidence) -> dict:
    return {"rule": rule, "verdict": verdict, "severity": severity, "fields": fields, "reason": "audit words",
            "evidence": json.dumps(evidence)}


@pytest.mark.parametrize(("verdicts", "expected"), [
    ([], "ok"), (["needs_review", "suspicious"], "suspicious"), (["needs_review", "altered", "inconsistent"],
                                                                 "altered"), (["inconsistent"], "inconsistent")])
def test_a_sheet_has_one_verdict_its_gravest_flags(verdicts, expected):
    assert triage.sheet_verdict(verdicts) == expected


@pytest.mark.parametrize(("verdict", "severity", "tier"), [
    ("altered", "medium", 1), ("inconsistent", "high", 1), ("suspicious", "high", 2), ("suspicious", "medium", 2),
    ("needs_review", "high", 3), ("suspicious", "low", 4)])
def test_confident_failures_and_alterations_outrank_statistical_outliers(verdict, severity, tier):
    assert triage.flag_tier(verdict, severity) == tier


def test_sum_rule_names_only_the_doubtful_or_altered_fields():
    row = {"pan_conf": 0.99, "pri_conf": 0.62, "total_votes_conf": 0.99}
    doubtful = flag("votes_add_up", "needs_review", sum_of_parts=217, total_votes=271, difference=54)
    assert triage.cause_fields(doubtful, row, set(), 0.9) == ["pri"]
    assert triage.cause_fields(doubtful, {**row, "pri_conf": 0.99}, {"pan"}, 0.9) == ["pan"]
    confident = flag("votes_add_up", "inconsistent", sum_of_parts=217, total_votes=271, difference=54)
    assert triage.cause_fields(confident, {**row, "pri_conf": 0.99}, set(), 0.9) == ["total_votes"]
    fixed = flag("ballots_add_up", "needs_review", fields="ballots_received;total_votes",
                 fix={"total_votes": {"read": 1, "alternative": 7, "probability": 0.3}})
    assert triage.cause_fields(fixed, {}, set(), 0.9) == ["total_votes"]
    several = flag("votes_add_up", "needs_review", fix={"total_votes": {"read": 1, "alternative": 7}})
    assert triage.cause_fields(several, {"pan_conf": 0.5, "pri_conf": 0.3, "total_votes_conf": 0.8}, set(), 0.9) == [
        "total_votes", "pri", "pan"]
    assert triage.cause_fields(flag("duplicate_station", "suspicious", fields="state;district"), {}, set(), 0.9) == []


def test_reasons_are_plain_words():
    """A form rule is named by the template's label and worded with the values the audit read (the acta here:
    the default form)."""
    read = {**{p: 0 for p in default_form().candidates}, "pan": 78, "pri": 139, "unregistered": 0, "null_votes": 0,
            "total_votes": 271}
    confident = flag("votes_add_up", "inconsistent", values=read)
    assert triage.plain_reason(confident, ["total_votes"], NAMES) == (
        "party votes + unregistered + null = total votes does not hold: 217 against 271 (54 off), and no likely "
        "misreading of the digits explains it")
    fixed = flag("votes_add_up", "needs_review", values={**read, "total_votes": 211},
                 fix={"pdm": {"read": 6, "alternative": 0, "probability": 0.3}})
    assert triage.plain_reason(fixed, ["pdm"], {"pdm": "PDM"}) == (
        "party votes + unregistered + null = total votes does not hold: 217 against 211 (6 off); reading PDM as 0 "
        "instead of 6 would make it add up: compare with the scan")
    assert triage.plain_reason(flag("visible_alteration", "altered"), ["pan", "pri"], NAMES) == (
        "PAN and PRI look altered: overwritten, erased, covered or crossed out")
    turnout = flag("turnout", "suspicious", "high", turnout=1.25, total_votes=500, registered_voters=400)
    assert triage.plain_reason(turnout, [], NAMES) == "turnout 125%: 500 votes for 400 registered voters"


def test_sheet_triage_reason_counts_the_other_findings():
    flags = [flag("district_outlier", "suspicious", "low", fields="pan"),
             flag("visible_alteration", "altered", fields="pri")]
    got = triage.sheet_triage({}, flags, NAMES, 0.9)
    assert got == {"verdict": "altered", "tier": 1, "tier_severity": 2, "key_field": "pri",
                   "reason": "PRI looks altered: overwritten, erased, covered or crossed out (+1 other finding)"}
    assert triage.sheet_triage({}, [], NAMES, 0.9)["tier"] == triage.UNFLAGGED_TIER


@pytest.mark.parametrize(("value", "text"), [(0.9996, "0.999"), (1.0, "1.000"), (0.5, "0.500"), (None, "–"),
                                             (float("nan"), "–")])
def test_scores_are_rounded_down_so_near_certain_never_reads_one(value, text):
    assert triage.score_text(value) == text


def test_alternatives_below_the_threshold_are_hidden():
    assert triage.alternatives_shown([[31, 0.02], [37, 0.7], [38, 0.1], "junk"]) == [(37, 0.7), (38, 0.1)]


def test_passed_checks_are_written_out_and_failed_rules_left_out():
    row = {"pan": 78, "pri": 200, "unregistered": 0, "null_votes": 24, "total_votes": 302, "ballots_received": 400,
           "ballots_left_over": 98, "registered_voters": 450}
    acta = default_form()
    row.update({p: 0 for p in acta.candidates if p not in row})
    assert triage.passed_checks(row, set(), acta) == [
        "78 + 200 + 0 + 0 + 0 + 0 + 0 + 0 + 0 + 24 = 302 = total_votes (VOTACION TOTAL)",
        "302 + 98 = 400 = ballots_received (BOLETAS RECIBIDAS)",
        "total_votes (VOTACION TOTAL) = 302 ≤ 450 = registered_voters (CIUDADANOS EN LISTA NOMINAL)",
        "each of 78, 200, 0, 0, 0, 0, 0, 0, 0, 24 ≤ 450 = registered_voters (CIUDADANOS EN LISTA NOMINAL)"]
    assert len(triage.passed_checks(row, {"votes_add_up"}, acta)) == 3
    assert triage.passed_checks({**row, "pan": None}, set(), acta)[0].startswith("302 + 98 = 400")


def test_rank_reason_says_group_severity_and_score():
    assert triage.rank_reason(3, 10, 1, "high", 0.97) == (
        "Ranked 3 of 10: group 1 of 5 (altered or does not add up); within the group by the severity of its "
        "gravest finding (high), then by score 0.970.")
