import numpy as np

from pipeline.audit.bench import clean_counts, fabricate, forensic_section
from pipeline.audit.schema import PARTIES
from pipeline.audit.settings import AuditSettings


def test_clean_counts_add_up():
    t = clean_counts(7, 20, {})
    assert len(t) == 20 and (t[list(PARTIES) + ["unregistered", "null_votes"]].sum(axis=1) == t["total_votes"]).all()


def test_fabricate_changes_only_last_digits_of_invented_stations():
    t = clean_counts(7, 200, {})
    f = fabricate(t, np.random.default_rng(0), 0.5)
    changed = (f[list(PARTIES)] != t[list(PARTIES)]).any(axis=1)
    assert 0.3 < changed.mean() < 0.6
    assert ((f[list(PARTIES)] // 10) == (t[list(PARTIES)] // 10)).all().all()
    assert (f[list(PARTIES) + ["unregistered", "null_votes"]].sum(axis=1) == f["total_votes"]).all()


def test_forensic_section_reports_rates_with_intervals():
    out = forensic_section({}, 2, 60, AuditSettings())
    for key in ("clean_false_alarm", "clean_false_alarm_uniform_reference", "fabricated_alarm"):
        assert out[key]["batches"] == 2 and len(out[key]["ci"]) == 2


def test_excess_p_value_is_small_only_when_alarms_clearly_exceed_the_level():
    from pipeline.audit.bench import excess_p_value

    assert excess_p_value(22, 400, 0.05) > 0.3  # 5.5% in 400 batches: within Monte-Carlo error of 5%
    assert excess_p_value(40, 400, 0.05) < 0.001  # 10%: the level is exceeded
    assert excess_p_value(0, 0, 0.05) == 1.0
