"""The content plan: electoral model, arithmetic, alterations and their rates (no rendering)."""

import numpy as np
import pytest

from pipeline.synth import SynthSettings, plan_sheet
from pipeline.synth.electoral import DISTRICTS_PER_STATE_1988, state_and_district
from pipeline.synth.tamper import OVERWRITES_TO, overwrite_value
from pipeline.synth.writer import number_slots

PARTIES = ("pan", "pri", "pps", "parm", "pfcrn", "pms", "pdm", "prt")
N_RATE_SHEETS = 3000


def arithmetic_holds(v: dict) -> bool:
    """The acta's identities on a mapping of counts (blank = 0)."""
    v = {k: x or 0 for k, x in v.items()}
    return (sum(v[p] for p in PARTIES) + v["unregistered"] + v["null_votes"] == v["total_votes"]
            and v["ballots_received"] - v["total_votes"] == v["ballots_left_over"])


@pytest.fixture(scope="module")
def plans():
    settings = SynthSettings()
    return [plan_sheet(i, settings) for i in range(1, N_RATE_SHEETS + 1)]


def written(plan) -> dict:
    return {name: f.written for name, f in plan.fields.items()}


def test_honest_counts_always_obey_the_acta(plans):
    lo, hi = SynthSettings().registered_voters
    for p in plans:
        honest = {name: f.honest for name, f in p.fields.items()}
        assert arithmetic_holds(honest)
        assert honest["total_votes"] <= honest["registered_voters"] <= honest["ballots_received"]
        assert lo <= honest["registered_voters"] <= hi


def test_clean_sheets_are_written_as_counted(plans):
    clean = [p for p in plans if not p.kinds and p.arithmetic_error_field is None]
    assert len(clean) > N_RATE_SHEETS / 2
    for p in clean:
        assert arithmetic_holds(written(p))
        assert all(f.written in (f.honest, None) and (f.written is not None or f.honest == 0)
                   for f in p.fields.values())


def test_arithmetic_errors_break_a_total_without_being_alterations(plans):
    slips = [p for p in plans if p.arithmetic_error_field and not p.kinds]
    assert slips
    for p in slips:
        f = p.fields[p.arithmetic_error_field]
        assert f.kind == "none" and f.written != f.honest and 1 <= abs(f.written - f.honest) <= 20
        assert not arithmetic_holds(written(p))


def test_alterations_shift_votes_toward_pri(plans):
    changed = [(name, f) for p in plans for name, f in p.fields.items() if f.kind not in ("none",)]
    assert {f.kind for _, f in changed} == {"overwrite", "erase", "fluid", "crossout", "fabricated"}
    for name, f in changed:
        before = f.original if f.kind != "fabricated" else None
        if name == "pri" and before is not None:
            assert f.written > before
        elif name in PARTIES and name != "pri" and before is not None:
            assert f.written < before
        if f.kind != "fabricated":
            assert f.written != f.original


def test_unadjusted_alterations_break_the_arithmetic_and_adjusted_ones_keep_it(plans):
    altered = [p for p in plans if p.kinds and p.arithmetic_error_field is None]
    adjusted = [p for p in altered if p.totals_adjusted and p.fields["ballots_left_over"].kind != "none"]
    unadjusted = [p for p in altered if not p.totals_adjusted]
    assert adjusted and unadjusted
    assert sum(arithmetic_holds(written(p)) for p in unadjusted) < 0.1 * len(unadjusted)
    assert sum(arithmetic_holds(written(p)) for p in adjusted) > 0.9 * len(adjusted)


def test_rates_follow_the_settings(plans):
    s = SynthSettings()
    present = np.array([p.station.opposition_present for p in plans])
    altered = np.array([p.altered for p in plans])
    assert abs(altered[~present].mean() - s.altered_rate_absent) < 0.05
    assert abs(altered[present].mean() - s.altered_rate_present) < 0.04
    assert 0.25 < altered.mean() < 0.40  # "about a third" of sheets
    assert abs(np.mean([p.arithmetic_error_field is not None for p in plans]) - s.arithmetic_error_rate) < 0.012
    assert abs(np.mean([p.fabricated for p in plans]) - s.fabricated_rate) < 0.02
    assert np.mean([p.station.reps["pri"] for p in plans]) > 0.94


def test_ids_are_plausible_and_sections_unique(plans):
    ids = [p.station.ids for p in plans]
    for i in ids:
        assert 1 <= i["state"] <= 32 and 1 <= i["district"] <= DISTRICTS_PER_STATE_1988[i["state"] - 1]
        assert 1 <= i["section"] <= 9999 and 1 <= i["station"] <= 99
    assert len({i["section"] for i in ids}) == len(ids)
    assert len({(i["state"], i["district"]) for i in ids}) == SynthSettings().districts


def test_pri_leads_in_most_districts(plans):
    shares = np.array([[p.fields[k].honest for k in PARTIES] for p in plans], float)
    assert (shares.argmax(axis=1) == PARTIES.index("pri")).mean() > 0.6


def test_plan_is_deterministic_and_depends_on_the_seed():
    a, b = plan_sheet(5, SynthSettings(seed=3)), plan_sheet(5, SynthSettings(seed=3))
    assert a == b and plan_sheet(5, SynthSettings(seed=4)) != a


def test_state_and_district_numbering():
    assert state_and_district(0) == (1, 1)
    assert state_and_district(1) == (1, 2) and state_and_district(2) == (2, 1)
    assert state_and_district(299) == (32, 5)


@pytest.mark.parametrize("old,target,expected", [(123, 180, 183), (95, 40, 85), (8, 3, None), (12, 30, 18),
                                                 (888, 999, None), (7, 150, 149), (7, 104, 107)])
def test_overwrite_reaches_only_what_added_strokes_can_make(old, target, expected):
    assert overwrite_value(old, target, 3) == expected


def test_overwritten_numbers_differ_digit_by_digit_only_by_reachable_digits(plans):
    for p in plans:
        for f in p.fields.values():
            if f.kind == "overwrite":
                for o, n in zip(number_slots(f.original, 3), number_slots(f.written, 3), strict=True):
                    assert o == n or o is None or n in OVERWRITES_TO[o]


def test_number_slots_right_align_without_leading_zeros():
    assert number_slots(7, 3) == [None, None, 7]
    assert number_slots(0, 3) == [None, None, 0]
    assert number_slots(None, 2) == [None, None]
    assert number_slots(305, 3) == [3, 0, 5]
    with pytest.raises(ValueError):
        number_slots(1000, 3)


def test_districts_of_a_batch_never_share_ids():
    from pipeline.synth.electoral import district_profile
    from pipeline.synth.settings import SynthSettings

    settings = SynthSettings()
    ids = {(d.state, d.district) for d in (district_profile(7, k, settings) for k in range(40))}
    assert len(ids) == 40
