"""Digit tests as cards: what each checks, the verdict in words, districts behind it with alarms first."""

from __future__ import annotations

from pipeline.report import forensics_cards as fc

BATCH = {"scope": "batch", "test": "last_digit_mean", "n": 120, "expected": [4.5], "observed": [3.9],
         "effect_size": -0.6, "effect": "mean digit minus its expected mean", "p_value": 0.001, "p_adjusted": 0.004,
         "alarm": True, "report_only": False, "skipped": None}


def district(scope: str, alarm: bool = False, skipped: str | None = None) -> dict:
    return {**BATCH, "scope": scope, "alarm": alarm, "skipped": skipped, "p_adjusted": 0.01 if alarm else 0.5}


def test_a_card_explains_the_test_and_says_the_verdict_in_words():
    [card] = fc.forensic_cards({"alpha": 0.05, "tests": [BATCH]})
    assert card["title"] == "Mean last digit" and card["checks"].startswith("Whether the average last digit")
    assert card["source"].startswith("Beber & Scacco (2012)")
    batch = card["batch"]
    assert (batch["expected"], batch["observed"], batch["css"]) == ("4.5", "3.9", "alarm")
    assert batch["words"].startswith("Alarm: a deviation this large would be rare in honest counts (adjusted p = "
                                     "0.004, below 0.05)")
    assert batch["effect"] == "-0.600 (mean digit minus its expected mean)"


def test_districts_list_alarms_first_then_tests_that_ran_then_skipped_ones():
    tests = [BATCH, district("district 1-1", skipped="only 3 stations (< 25)"), district("district 1-2"),
             district("district 1-3", alarm=True)]
    [card] = fc.forensic_cards({"tests": tests})
    assert [r["scope"] for r in card["scopes"]] == ["district 1-3", "district 1-2", "district 1-1"]
    assert (card["n_alarms"], card["n_skipped"]) == (1, 1)
    assert card["scopes"][2]["words"] == "Not run: only 3 stations (< 25)."


def test_no_alarm_and_report_only_are_worded_as_such_and_cards_with_alarms_come_first():
    quiet = {**BATCH, "test": "last_digit_uniform", "alarm": False, "p_adjusted": 0.81, "expected": [6.0] * 10,
             "observed": [6] * 10}
    reference = {**BATCH, "test": "second_digit_2bl_mean", "alarm": False, "report_only": True}
    cards = fc.forensic_cards({"tests": [quiet, reference, BATCH]})
    assert [c["test"] for c in cards] == ["last_digit_mean", "last_digit_uniform", "second_digit_2bl_mean"]
    assert cards[1]["batch"]["words"].startswith("No alarm: the digits are consistent with honest counts")
    assert cards[1]["batch"]["digits"][0] == (0, 6.0, 6.0) and len(cards[1]["batch"]["digits"]) == 10
    assert cards[2]["batch"]["words"].startswith("Shown for reference only")


def test_an_unknown_test_still_gets_a_card_by_its_code_name():
    [card] = fc.forensic_cards([{**BATCH, "test": "new_test"}])
    assert card["title"] == "new test" and card["batch"]["css"] == "alarm"


def test_scopes_are_called_by_the_forms_forensic_level():
    """The level comes from the forensics (the form's ``forensic_levels``), never assumed to be a district."""
    tests = [BATCH, {**district("kabupaten 3"), "level": "kabupaten"}]
    assert fc.forensic_cards({"tests": tests})[0]["level"] == "kabupaten"
    assert fc.forensic_cards({"tests": [BATCH, district("x 1")]})[0]["level"] == fc.UNNAMED_LEVEL
