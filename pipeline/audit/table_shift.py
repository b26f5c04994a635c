"""Stations pushed out of the bulk along the stuffing or the switching direction: the tail-excess tests.

Klimek, Yegorov, Hanel & Thurner (2012, PNAS 109(41)) model an honest scope's stations as one blob in the plane of
logit turnout and logit leader share (a 2-D normal in their fraud model), and fraud as moving a share of the
stations out of it: **ballot stuffing** raises a station's turnout and, with every added ballot for the leader, its
leader share too (Shpilkin's picture: the leader gains while the other choices' votes stay flat); **vote
switching** raises the leader share and leaves the turnout where it was. Mebane's "positive empirical" models and
finite mixtures read the same picture as an honest bulk plus a displaced component.

This test does not fit the bulk's shape; it uses only what such models share: the honest bulk is centrally
symmetric (a 2-D normal, correlated or not, or any elliptical law). Then the stations' projections on any direction
are symmetric about their median, and as many stations lie more than ``c`` spreads out on the far side as on the
near side. Fraud that moves a few percent of the stations by a few spreads one way fills one tail only. So, in each
scope of the finest forensic level (each region):

1. every station's logit turnout and logit leader share (half-count correction) are centred on the scope's medians
   and scaled by its robust spreads (median absolute deviation x :data:`MAD_TO_SD`);
2. the pair is projected on a direction at ``angle`` degrees from the turnout axis (``stuffing_angle_deg``, 30:
   turnout up and share up; ``switching_angle_deg``, 90: share up), and the projection centred and scaled again
   (its own median and robust spread, so an honest correlation of turnout and share changes nothing);
3. stations beyond ``+shift_tail_sd`` are the **tail**, those beyond ``-shift_tail_sd`` its **mirror**.

A scope (and the whole table) adds up the tail and mirror counts of its stations. Effect: (tail - mirror) / the
stations tested, an estimate of the share of stations pushed out along the direction (a lower bound on the share
tampered with: stations moved less than ``c`` spreads are not counted). p-value: the one-sided sign test, tail ~
Bin(tail + mirror, 1/2) under symmetry (``scipy.stats.binom``). Alarm: Holm p < alpha and effect >=
``shift_min_effect``, in the families of :func:`pipeline.audit.table_forensics.apply_families`.

**Reported only by default** (``shift_alarm`` of :class:`pipeline.audit.table_forensics.TableForensicsSettings`,
off): the counts, effect and raw one-sided p-value are reported, but the tests raise no alarm, stay out of the
Holm families and the national findings, unless ``shift_alarm`` is on. The reason is measured: an honest scope made
of two blobs (towns with a lower turnout and leader share, fewer villages with higher ones) is not symmetric, and
its villages fill the stuffing tail exactly as stuffed stations do. On clean 4,000-station tables shaped like 2012
(40 per cell, :class:`pipeline.audit.table_synth.TableShape` ``mix_weight`` / ``mix_shift``), with the alarm on,
the stuffing tail alarmed nationally in 31/40 tables with 10% of each region's stations 1.5 spreads out along the
stuffing direction, 34/40 with 20%, 31/40 with 30% (1-4/40 at 1 spread, 0/40 at 0.5); on full-size (95,029
stations) mixtures of 10% at 1.5 spreads in every table and in 5-11 of 83 regions. No guard tells the two apart:
a second blob d spreads out along this direction and stuffed stations moved d spreads are the same picture
station by station (the villages' other choices' votes per registered voter change little, as under stuffing,
which is what the 30-degree direction is: on 2012-shaped tables a second blob 1.5 spreads out has turnout 7 points
higher and 2% fewer other votes per registered voter; a blob along a slightly different angle has more); and
along the direction, an honest 10% of stations 2 spreads out gives the same excess beyond 2 spreads (+2.9% of the
stations) as 5% moved 2.7 spreads, about what stuffing at strength 0.5 does (+2.9%), with no more of a shoulder
between 1 and 2 spreads (-0.3% vs -1.1%): a guard on the tail's shape would have to allow that. On the 2012 and
2016 tables the stuffing tail would alarm in 73 and 71 of 83-85 regions; which of the two it sees there, the test
cannot say.

Measured with the alarm on (issue 16, the bench's :func:`pipeline.audit.table_bench.false_alarms` and
:func:`pipeline.audit.table_bench.power` on 4,000-station tables shaped like 2012; figures in the README): no more
national or regional alarms on clean single-blob tables, independent or honestly correlated (rho 0.3), than the
level allows; every table with stuffing (or switching) at strength 0.5 in 5% of the stations alarms nationally.

Limits:

* the honest two-blob scope above (hence report-only by default);
* the centre and spread are the scope's medians, so when a large share of a scope's stations is displaced (30% of
  a region in the bench; Tatarstan, Dagestan or Chechnya in 2012, where most stations sit near 100%) they move with
  the fraud and the scope shows no excess: the test finds fraud in a minority of a scope's stations, the corner
  and integer tests the rest;
* small stations (fewer than ``shift_min_registered`` registered) are left out because the logit of a count over a
  few voters is noisy and skewed; stations whose scope has fewer than ``min_bulk_stations`` tested stations are not
  standardised (no bulk to measure) and are counted as ``unmodelled_stations``.

Memory: one byte per station per direction (the sign of its tail) and the scope's own arrays while it is
standardised. Every figure is an integer count or comes from medians, so nothing depends on the order or the
chunking of the table.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from pipeline.audit.table_forensics import Stations, TableForensicsSettings

#: The median absolute deviation times this is the standard deviation of a normal law (robust spread).
MAD_TO_SD = 1.482602218505602
#: The smallest spread a scope's standardisation divides by (logit units): a scope whose stations all report the
#: same share has no spread to scale by.
MIN_SPREAD = 1e-6
#: The tests: name -> the setting that holds its direction (degrees from the turnout axis).
SHIFT_TESTS = {"stuffing_tail": "stuffing_angle_deg", "switching_tail": "switching_angle_deg"}
#: Projections kept in the histogram for the report's plot: from -HIST_LIMIT to +HIST_LIMIT spreads, bins of
#: HIST_STEP spreads (values beyond go to the end bins).
HIST_LIMIT, HIST_STEP = 6.0, 0.25


def logits(st: Stations, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logit turnout and logit leader share of the stations ``idx`` (counts capped at their totals; half-count
    correction, finite at 0% and 100%)."""
    n = st.voters[idx].astype(float)
    b = st.ballots[idx].astype(float)
    t = np.minimum(st.turnout_count[idx], st.voters[idx]).astype(float)
    lead = np.minimum(st.leader[idx], st.ballots[idx]).astype(float)
    return np.log((t + 0.5) / (n - t + 0.5)), np.log((lead + 0.5) / (b - lead + 0.5))


def robust_z(values: np.ndarray) -> np.ndarray:
    """``values`` centred on their median and divided by their robust spread (MAD x :data:`MAD_TO_SD`)."""
    centred = values - np.median(values)
    return centred / max(MAD_TO_SD * float(np.median(np.abs(centred))), MIN_SPREAD)


def projection(y_turnout: np.ndarray, y_share: np.ndarray, angle_deg: float) -> np.ndarray:
    """The stations' standardised position along the direction ``angle_deg`` (0: turnout up, 90: share up), itself
    standardised (:func:`robust_z`)."""
    a = math.radians(angle_deg)
    return robust_z(math.cos(a) * robust_z(y_turnout) + math.sin(a) * robust_z(y_share))


def scope_projections(st: Stations, s: TableForensicsSettings) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each station's projection on each test's direction (NaN where not tested), standardised within its scope of
    the finest forensic level (the whole table without levels); and the mask of the stations standardised."""
    include = (st.voters >= s.shift_min_registered) & (st.ballots > 0)
    if st.scopes:
        codes, names = st.scopes[list(st.scopes)[-1]]
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        groups = [order[bounds[j]:bounds[j + 1]] for j in range(len(names))]
    else:
        groups = [np.arange(len(st))]
    out = {name: np.full(len(st), np.nan, dtype=np.float32) for name in SHIFT_TESTS}
    tested = np.zeros(len(st), bool)
    for group in groups:
        idx = group[include[group]]
        if idx.size < s.min_bulk_stations:
            continue
        y_t, y_s = logits(st, idx)
        for name, setting in SHIFT_TESTS.items():
            out[name][idx] = projection(y_t, y_s, getattr(s, setting))
        tested[idx] = True
    return out, tested


def tail_row(scope: str, tail: int, mirror: int, tested: int, unmodelled: int) -> dict:
    """One scope's result: stations in the tail and in its mirror, excess, effect (excess / tested) and the
    one-sided sign test's p-value (NaN when nothing was tested)."""
    row = {"scope": scope, "stations": tested, "unmodelled_stations": unmodelled, "observed": tail,
           "expected": float(mirror), "mirror": mirror, "excess": float(tail - mirror)}
    if tested == 0:
        return {**row, "effect": math.nan, "p": math.nan}
    p = float(stats.binom.sf(tail - 1, tail + mirror, 0.5)) if tail + mirror else 1.0
    return {**row, "effect": (tail - mirror) / tested, "p": p}


def tail_test(name: str, z: np.ndarray, tested: np.ndarray, ok: np.ndarray, st: Stations,
              s: TableForensicsSettings) -> dict:
    """One tail-excess test from the stations' projections ``z``: national, per scope of each level, and the
    histogram of the projections. ``ok``: the stations that could be tested (large enough, with ballots)."""
    c = s.shift_tail_sd
    sign = np.where(z > c, 1, np.where(z < -c, -1, 0)).astype(np.int8)
    up, down = sign == 1, sign == -1
    unmodelled = ok & ~tested
    national = tail_row("all", int(up.sum()), int(down.sum()), int(tested.sum()), int(unmodelled.sum()))
    scopes = {}
    for level, (codes, names) in st.scopes.items():
        counts = [np.bincount(codes, weights=w, minlength=len(names)).astype(np.int64)
                  for w in (up, down, tested, unmodelled)]
        scopes[level] = [tail_row(names[j], *(int(k[j]) for k in counts)) for j in range(len(names))]
    edges = np.arange(-HIST_LIMIT, HIST_LIMIT + HIST_STEP / 2, HIST_STEP)
    hist = np.histogram(np.clip(z[tested], -HIST_LIMIT, HIST_LIMIT), bins=edges)[0]
    return {"test": name, "angle_deg": getattr(s, SHIFT_TESTS[name]), "tail_sd": c,
            "min_registered": s.shift_min_registered, "national": national, "scopes": scopes,
            "histogram": {"edges_sd": edges.tolist(), "stations": hist.astype(int).tolist()}}


def shift_tests(st: Stations, s: TableForensicsSettings) -> list[dict]:
    """The stuffing-tail and switching-tail tests (module docstring), without Holm (done with the other tests)."""
    z, tested = scope_projections(st, s)
    ok = (st.voters >= s.shift_min_registered) & (st.ballots > 0)
    return [tail_test(name, z[name], tested, ok, st, s) for name in SHIFT_TESTS]
