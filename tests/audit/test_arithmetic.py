import pytest

from pipeline.audit.arithmetic import (
    Check,
    SheetReading,
    all_checks,
    arithmetic_flags,
    counts_consistent,
    doubtful_fields,
    find_fix,
    misread_reach,
    read_probability,
    read_right_probability,
)
from pipeline.audit.settings import AuditSettings
from tests.audit.conftest import ACTA, clean_values

S = AuditSettings()


def reading(values, candidates=None, station_type="B", confidences=None):
    return SheetReading("s1", values, {f: None if v is None else str(v) for f, v in values.items()},
                        confidences or {}, candidates or {}, {"station_type": station_type}, {})


def test_clean_sheet_has_no_flags():
    assert arithmetic_flags(reading(clean_values()), ACTA, S) == []


def test_all_zero_sheet_is_consistent():
    zeros = {f: 0 for f in clean_values()} | {"state": 9, "district": 1, "section": 1, "station": 1,
                                              "registered_voters": 300, "ballots_received": 300,
                                              "ballots_left_over": 300}
    assert arithmetic_flags(reading(zeros), ACTA, S) == []


def test_sum_mismatch_read_with_confidence_is_inconsistent_with_numbers_in_reason():
    v = clean_values(total_votes=229)  # parts add up to 220
    flags = arithmetic_flags(reading(v), ACTA, S)
    by_rule = {f.rule: f for f in flags}
    assert by_rule["votes_add_up"].verdict == "inconsistent"
    assert "PAN+PRI+PPS+PARM+PFCRN+PMS+PDM+PRT+unregistered+null votes = 220 but total votes says 229" in \
        by_rule["votes_add_up"].reason
    evidence = by_rule["votes_add_up"].evidence
    assert (evidence["left"], evidence["right"], evidence["gap"]) == (220, 229, -9)
    assert evidence["rule_text"] == "sum(candidate) + other_votes + invalid == total"
    assert evidence["rule_label"] == "party votes + unregistered + null = total votes"
    assert by_rule["ballots_add_up"].verdict == "inconsistent"  # 229 + 285 != 505


def test_likely_alternative_reading_makes_it_needs_review():
    v = clean_values(pri=126)  # true 120 misread as 126: votes no longer add up
    cands = {"pri": [(126, 0.55), (120, 0.40), (726, 0.03)]}
    flags = arithmetic_flags(reading(v, cands), ACTA, S)
    assert [f.verdict for f in flags] == ["needs_review"]
    assert "PRI as 120 instead of 126 (p=0.40)" in flags[0].reason
    assert flags[0].evidence["fix"] == {"pri": {"read": 126, "alternative": 120, "probability": 0.40}}


def test_unlikely_alternative_does_not_explain_away_a_real_inconsistency():
    v = clean_values(pri=126)
    cands = {"pri": [(126, 0.97), (120, 0.0001)]}  # 1/9700 as likely: below min_fix_ratio
    flags = arithmetic_flags(reading(v, cands, confidences={"pri": 0.97}), ACTA, S)
    assert {f.verdict for f in flags} == {"inconsistent"}
    assert "read with 97% confidence" in flags[0].reason


def test_confident_failure_without_alternatives_stays_inconsistent():
    v = clean_values(total_votes=229)
    confident = {f: 0.99 for f in v}  # 11 fields of the sum at 0.99: 90% all read right, above 80%
    flags = arithmetic_flags(reading(v, confidences=confident), ACTA, S)
    assert {f.verdict for f in flags} == {"inconsistent"}
    assert flags[0].evidence["read_right_probability"] == pytest.approx(0.99 ** 11)


def test_low_confidence_failure_without_a_fix_needs_review_and_says_why():
    # the true PRI digit is not among the alternatives, but PRI was read with 62% confidence
    v = clean_values(pri=126)
    confidences = {f: 0.999 for f in v} | {"pri": 0.62}
    flags = arithmetic_flags(reading(v, {"pri": [(126, 0.62), (128, 0.3)]}, confidences=confidences), ACTA, S)
    assert [(f.rule, f.verdict) for f in flags] == [("votes_add_up", "needs_review")]
    assert "the digits of PRI (62%) were read with low confidence" in flags[0].reason
    assert "a misread could explain this" in flags[0].reason


def test_a_reading_whose_own_probability_underflowed_to_zero_still_gets_its_alternatives_weighed():
    v = clean_values(pri=126)
    flags = arithmetic_flags(reading(v, {"pri": [(126, 0.0), (120, 1e-300)]}), ACTA, S)
    assert [(f.rule, f.verdict) for f in flags] == [("votes_add_up", "needs_review")]
    assert read_probability(reading(v, {"pri": [(126, 0.0)]}), "pri") > 0

def test_doubtful_fields_are_the_least_confident_until_the_rest_is_trusted():
    v = clean_values()
    r = reading(v, confidences={"pan": 0.9, "pri": 0.7, "total_votes": 0.85})
    fields = ("pan", "pri", "total_votes")
    check = Check("votes_add_up", fields, False, "", discrepancy=9)
    assert read_right_probability(r, fields) == pytest.approx(0.9 * 0.7 * 0.85)
    assert doubtful_fields(r, check, ACTA, S) == ("pri", "total_votes")  # 0.9 alone reaches min_read_probability
    assert doubtful_fields(r, Check("votes_add_up", ("pan",), False, "", discrepancy=9), ACTA, S) == ()
    assert doubtful_fields(r, check, ACTA, AuditSettings(min_read_probability=0.5)) == ()


def test_a_doubtful_field_too_short_to_hide_the_discrepancy_does_not_excuse_it():
    v = clean_values(pms=6, total_votes=370)  # PMS (one digit) read with 60% confidence; the sum is off by 149
    flags = arithmetic_flags(reading(v, confidences={"pms": 0.6}), ACTA, S)
    assert flags[0].rule == "votes_add_up" and flags[0].verdict == "inconsistent"
    assert misread_reach(reading(v), "pms", ACTA) == 99 and misread_reach(reading(v), "pri", ACTA) == 999


def test_a_doubtful_field_may_have_lost_a_digit():
    v = clean_values(pms=6, total_votes=270)  # off by 49: PMS might be 46 or 56 with its first digit missed
    flags = arithmetic_flags(reading(v, confidences={"pms": 0.6}), ACTA, S)
    assert flags[0].rule == "votes_add_up" and flags[0].verdict == "needs_review"


def test_fix_must_make_all_failed_rules_hold_jointly():
    # total misread: fixing it repairs the sum but the alternative would break the ballots balance
    v = clean_values(total_votes=280)
    v["ballots_left_over"] = 505 - 280  # ballots balance holds for the misread total
    cands = {"total_votes": [(280, 0.5), (220, 0.45)]}
    assert find_fix(reading(v, cands), all_checks(v, {"station_type": "B"}, ACTA, S), ACTA, S) is None
    # with the left-over count also uncertain, a two-field reading fixes everything
    cands["ballots_left_over"] = [(225, 0.6), (285, 0.35)]
    fix = find_fix(reading(v, cands), all_checks(v, {"station_type": "B"}, ACTA, S), ACTA, S)
    assert fix is not None and set(fix.changes) == {"total_votes", "ballots_left_over"}
    assert fix.probability == pytest.approx(0.45 * 0.35)
    assert fix.ratio == pytest.approx(0.45 / 0.5 * 0.35 / 0.6)


def test_tolerances_are_settings():
    v = clean_values(total_votes=221, ballots_left_over=284)
    assert {f.rule for f in arithmetic_flags(reading(v), ACTA, S)} == {"votes_add_up"}
    assert arithmetic_flags(reading(v), ACTA, AuditSettings(rule_tolerance=1)) == []


@pytest.mark.parametrize("field, rule", [("total_votes", "total_within_registered"),
                                         ("pri", "count_within_registered")])
def test_counts_above_registered_voters(field, rule):
    v = clean_values(registered_voters=100)
    flags = [f for f in arithmetic_flags(reading(v), ACTA, S) if f.rule == rule]
    assert any(field in f.fields for f in flags)
    assert all(f.verdict == "inconsistent" for f in flags)


def test_ids_must_be_well_formed():
    flags = arithmetic_flags(reading(clean_values(state=38)), ACTA, S)
    assert [f.rule for f in flags] == ["ids_well_formed"]
    assert "state 38 is not between 1 and 32" in flags[0].reason
    assert (flags[0].verdict, flags[0].severity) == ("needs_review", "medium")  # ids carry no votes
    flags = arithmetic_flags(reading(clean_values(), station_type=None), ACTA, S)
    assert "station type" in flags[0].reason


def test_unreadable_field_gives_one_needs_review_flag_naming_it():
    v = clean_values(pan=None)
    r = SheetReading("s1", v, {"pan": "4?"}, {"pan": 0.3}, {}, {"station_type": "B"}, {})
    flags = arithmetic_flags(r, ACTA, S)
    assert [(f.rule, f.verdict) for f in flags] == [("unreadable", "needs_review")]
    assert "PAN (read '4?')" in flags[0].reason


def test_unreadable_field_resolved_by_its_alternatives():
    v = clean_values(pan=None)
    r = SheetReading("s1", v, {"pan": "4?"}, {"pan": 0.3}, {"pan": [(48, 0.5), (40, 0.45)]},
                     {"station_type": "B"}, {})
    flags = arithmetic_flags(r, ACTA, S)
    assert "PAN as 40 instead of unreadable" in flags[0].reason


def test_counts_consistent_on_ground_truth():
    b = {"station_type": "B"}
    assert counts_consistent(clean_values(), b, ACTA, S) is True
    assert counts_consistent(clean_values(total_votes=1), b, ACTA, S) is False
    assert counts_consistent(clean_values(pan=None), b, ACTA, S) is None
