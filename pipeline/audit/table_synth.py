"""Synthetic per-station results tables: clean ones shaped like a real table, and ones with planted fraud.

A clean table draws, for each station of a given size and region, a turnout and a leader share from its region's
logit-normal spread, then the counts binomially: ballots issued ~ Bin(registered, turnout), invalid ~ Bin(issued,
``invalid_rate``), leader ~ Bin(valid, share), the other choices share the rest. Every control relation of
:data:`SYNTH_MAPPING` holds. The shape (sizes, regions, regional spreads) comes from :func:`shape_from_stations`
(fitted on a real table's bulk, as the forensics fit it) or :func:`random_shape` (no data needed: for tests).

Fraud is planted by :func:`plant_fraud` in a chosen share of stations, optionally only in chosen regions:

* ``stuffing``: a share ``strength`` of the registered voters who did not vote are added as ballots for the leader;
* ``switching``: a share ``strength`` of every other choice's votes is moved to the leader;
* ``extreme``: stuffing then switching, both at ``strength`` (Klimek et al.'s extreme fraud: it fills the corner
  of high turnout and high leader share);
* ``rounding``: the leader's share and the turnout are rewritten up to the next integer percentage (Kobak et
  al. 2016's fingerprint), the ballots added going to the leader;
* ``round_shares``: the same, up to the next multiple of 5% (the coarse round shares of Rozenas 2017);
* ``fabricated``: the counts are made up rather than counted: each choice's votes are rewritten, with
  probability ``strength``, to the nearest multiple of :data:`FABRICATED_STEP` (people inventing numbers favour
  round ones; Beber & Scacco 2012), the valid ballots (and ballots issued and found) following their new sum. This
  is what the digit tests look for; it moves turnout and shares by a few votes only.

A clean table may also have turnout and leader share correlated across stations within a region (``rho`` of
:class:`TableShape`: urban and rural stations differ in both, honestly); the Klimek rank-correlation test alarms
on such tables, which the tables bench measures.

A clean table may also be an **honest mixture** (``mix_weight``, ``mix_shift``, ``mix_angle_deg`` of
:class:`TableShape`): in every region a share ``mix_weight`` of the stations (drawn at random, seeded with the
table) comes from a second honest component whose logit turnout and logit leader share are shifted by
``mix_shift`` of the region's own spreads along a direction ``mix_angle_deg`` degrees from the turnout axis (30 by
default: the stuffing direction of :mod:`pipeline.audit.table_shift`), with the same spreads as the bulk. This is
the common honest picture of a region of towns (most stations: lower turnout, lower leader share) and villages
(fewer stations: higher turnout, higher leader share). It is not symmetric: a test that reads asymmetry as fraud
sees its villages as displaced stations, which the tables bench measures (``<test>_mix_<weight>_<shift>``).

The altered table still balances: fraud that leaves the arithmetic intact is what the forensics are for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special

from pipeline.audit.table_forensics import Stations, bulk_fit

#: Fraud kinds :func:`plant_fraud` knows.
FRAUD_KINDS = ("stuffing", "switching", "extreme", "rounding", "round_shares", "fabricated")
#: ``fabricated`` counts end in a multiple of this (0 or 5).
FABRICATED_STEP = 5
#: The percentage step each rounding kind rewrites results to.
ROUND_STEP = {"rounding": 1.0, "round_shares": 5.0}
#: Spare ballots a station receives beyond its registered voters (so that cancelled ballots stay >= 0).
SPARE_BALLOTS = 0.05
#: The mapping of a synthetic table (for :func:`pipeline.audit.table_mapping.resolve_mapping`).
SYNTH_MAPPING = {
    "name": "synthetic results table",
    "ids": ["region", "uik"],
    "roles": {"registered": "registered", "received": "received", "issued": "issued", "cancelled": "cancelled",
              "found": "found", "invalid": "invalid", "valid": "valid"},
    "choices": {"match": "^choice_"},
    "rules": [{"name": "ballots_balance", "rule": "received == issued + cancelled"},
              {"name": "boxes_balance", "rule": "valid + invalid == found"},
              {"name": "valid_sum", "rule": "valid == sum(choices)"},
              {"name": "found_le_issued", "rule": "found <= issued", "soft": True}],
}


@dataclass(frozen=True)
class TableShape:
    """Station sizes and region codes, and each region's logit-normal (mu, sigma) of turnout and leader share."""

    registered: np.ndarray
    region: np.ndarray
    region_names: tuple[str, ...]
    turnout: np.ndarray
    share: np.ndarray
    invalid_rate: float = 0.015
    choices: int = 4
    #: Correlation of the logit turnout and logit leader share across the stations of a region (0: independent).
    rho: float = 0.0
    #: Honest mixture: the share of each region's stations drawn from a second honest component (0: none) ...
    mix_weight: float = 0.0
    #: ... shifted by this many of the region's logit spreads (``turnout[:, 1]``, ``share[:, 1]``) ...
    mix_shift: float = 1.0
    #: ... along this direction, degrees from the turnout axis (30: turnout and share up, as ballot stuffing).
    mix_angle_deg: float = 30.0


def random_shape(stations: int, regions: int, seed: int = 0, choices: int = 4) -> TableShape:
    """A plausible shape without data: sizes log-normal (median ~1,500, a tail of small stations), regional
    turnout around 55-70% and leader share around 45-65%."""
    rng = np.random.default_rng(seed)
    registered = np.maximum(20, np.rint(rng.lognormal(np.log(1500), 0.6, stations))).astype(np.int64)
    region = rng.integers(0, regions, stations)
    turnout = np.column_stack([rng.uniform(0.2, 0.85, regions), rng.uniform(0.25, 0.45, regions)])
    share = np.column_stack([rng.uniform(-0.2, 0.6, regions), rng.uniform(0.3, 0.55, regions)])
    names = tuple(f"region {i + 1:02d}" for i in range(regions))
    return TableShape(registered, region, names, turnout, share, choices=choices)


def shape_from_stations(st: Stations, level: str, bulk_max: float = 0.8, min_bulk: int = 20,
                        choices: int = 4) -> TableShape:
    """The shape of a real table: its station sizes and regions (``level``), and each region's spreads fitted on
    its bulk of stations (as :func:`pipeline.audit.table_forensics.bulk_fit` fits them)."""
    codes, names = st.scopes[level]
    ok = (st.voters > 0) & (st.ballots > 0)
    nat_t = bulk_fit(np.minimum(st.turnout_count, st.voters)[ok], st.voters[ok], bulk_max, min_bulk, None)
    nat_s = bulk_fit(np.minimum(st.leader, st.ballots)[ok], st.ballots[ok], bulk_max, min_bulk, None)
    turnout, share = [], []
    for j in range(len(names)):
        sel = ok & (codes == j)
        turnout.append(bulk_fit(np.minimum(st.turnout_count, st.voters)[sel], st.voters[sel], bulk_max, min_bulk,
                                nat_t) if sel.any() else nat_t)
        share.append(bulk_fit(np.minimum(st.leader, st.ballots)[sel], st.ballots[sel], bulk_max, min_bulk, nat_s)
                     if sel.any() else nat_s)
    return TableShape(st.voters[ok].astype(np.int64), codes[ok], tuple(names), np.array(turnout), np.array(share),
                      choices=choices)


def subsample_shape(shape: TableShape, stations: int, seed: int) -> TableShape:
    """``shape`` with ``stations`` stations drawn at random (without replacement when possible)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(shape.registered.size, stations, replace=stations > shape.registered.size)
    return replace(shape, registered=shape.registered[pick], region=shape.region[pick])


def clean_table(shape: TableShape, seed: int) -> pd.DataFrame:
    """A clean results table of ``shape`` (columns of :data:`SYNTH_MAPPING`; ``choice_1`` is the leader)."""
    rng = np.random.default_rng(seed)
    n = shape.registered
    mu_t, sd_t = shape.turnout[shape.region, 0], shape.turnout[shape.region, 1]
    mu_s, sd_s = shape.share[shape.region, 0], shape.share[shape.region, 1]
    z_t = rng.standard_normal(n.size)
    z_s = shape.rho * z_t + np.sqrt(1 - shape.rho ** 2) * rng.standard_normal(n.size)
    if shape.mix_weight > 0:  # drawn only then: tables without a mixture are the same as before it existed
        second = rng.random(n.size) < shape.mix_weight
        a = math.radians(shape.mix_angle_deg)
        z_t = z_t + np.where(second, shape.mix_shift * math.cos(a), 0.0)
        z_s = z_s + np.where(second, shape.mix_shift * math.sin(a), 0.0)
    p_turnout = special.expit(mu_t + sd_t * z_t)
    p_share = special.expit(mu_s + sd_s * z_s)
    issued = rng.binomial(n, p_turnout)
    invalid = rng.binomial(issued, shape.invalid_rate)
    valid = issued - invalid
    leader = rng.binomial(valid, p_share)
    others = _split(valid - leader, shape.choices - 1, rng)
    received = n + np.ceil(SPARE_BALLOTS * n).astype(np.int64)
    table = pd.DataFrame({
        "region": np.asarray(shape.region_names, dtype=object)[shape.region],
        "uik": np.arange(1, n.size + 1), "registered": n, "received": received, "issued": issued,
        "cancelled": received - issued, "found": issued, "invalid": invalid, "valid": valid, "choice_1": leader})
    for k in range(others.shape[1]):
        table[f"choice_{k + 2}"] = others[:, k]
    return table


def _split(votes: np.ndarray, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``votes`` split among ``parts`` choices with Dirichlet weights per station (rows sum to ``votes``)."""
    if parts <= 0:
        return np.zeros((votes.size, 0), dtype=np.int64)
    weights = rng.dirichlet(np.linspace(3.0, 1.0, parts), size=votes.size)
    out = np.zeros((votes.size, parts), dtype=np.int64)
    left = votes.copy()
    remaining = np.ones(votes.size)
    for k in range(parts - 1):
        p = np.clip(weights[:, k] / np.maximum(remaining, 1e-12), 0, 1)
        out[:, k] = rng.binomial(left, p)
        left -= out[:, k]
        remaining -= weights[:, k]
    out[:, -1] = left
    return out


def plant_fraud(table: pd.DataFrame, kind: str, rate: float, seed: int, strength: float = 0.5,
                regions: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy of ``table`` with ``kind`` fraud in a share ``rate`` of its stations (of ``regions`` only, if
    given); also the boolean mask of the stations altered.

    Raises:
        ValueError: an unknown kind, or a rate or strength outside [0, 1].
    """
    if kind not in FRAUD_KINDS:
        raise ValueError(f"unknown fraud kind {kind!r}; known: {', '.join(FRAUD_KINDS)}")
    if not (0 <= rate <= 1 and 0 <= strength <= 1):
        raise ValueError("rate and strength must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    out = table.copy()
    eligible = np.ones(len(out), bool) if regions is None else out["region"].isin(regions).to_numpy()
    hit = eligible & (rng.random(len(out)) < rate)
    others = [c for c in out.columns if c.startswith("choice_") and c != "choice_1"]
    if kind in ("stuffing", "extreme"):
        added = np.rint(strength * (out["registered"] - out["issued"]).to_numpy()).astype(np.int64)
        _add_ballots(out, np.where(hit, np.maximum(added, 0), 0))
    if kind in ("switching", "extreme"):
        for c in others:
            moved = np.where(hit, rng.binomial(out[c].to_numpy(), strength), 0)
            out[c] -= moved
            out["choice_1"] += moved
    if kind in ROUND_STEP:
        _round_to_integers(out, hit, others, ROUND_STEP[kind])
    if kind == "fabricated":
        _fabricate_counts(out, hit, rng, strength)
    return out, hit


def _fabricate_counts(table: pd.DataFrame, hit: np.ndarray, rng: np.random.Generator, strength: float) -> None:
    """Rewrite, in the stations ``hit``, each choice's votes with probability ``strength`` to the nearest multiple
    of :data:`FABRICATED_STEP`; the valid ballots, ballots issued and found follow the new sum (cancelled ballots
    the other way), so every relation still holds. A station whose spare ballots cannot cover the change is left
    as it was."""
    choices = [c for c in table.columns if c.startswith("choice_")]
    votes = table[choices].to_numpy(np.int64)
    rounded = FABRICATED_STEP * np.rint(votes / FABRICATED_STEP).astype(np.int64)
    rewrite = hit[:, None] & (rng.random(votes.shape) < strength)
    new = np.where(rewrite, rounded, votes)
    change = new.sum(axis=1) - votes.sum(axis=1)
    fits = (change <= table["cancelled"].to_numpy()) & (table["registered"].to_numpy() >= table["issued"] + change)
    new[~fits] = votes[~fits]
    change = np.where(fits, change, 0)
    table[choices] = new
    for col in ("issued", "found", "valid"):
        table[col] += change
    table["cancelled"] -= change


def _add_ballots(table: pd.DataFrame, added: np.ndarray) -> None:
    """Add ``added`` ballots per station, all valid and all for the leader, keeping every relation."""
    for col in ("issued", "found", "valid", "choice_1"):
        table[col] += added
    table["cancelled"] -= added


def _round_to_integers(table: pd.DataFrame, hit: np.ndarray, others: list[str], step: float = 1.0) -> None:
    """Rewrite the stations ``hit``: turnout up to the next multiple of ``step`` percent (ballots added for the
    leader, capped at 100%), then the leader's share up to the next multiple of ``step`` percent (votes taken from
    the other choices, as far as they have any)."""
    n = table["registered"].to_numpy()
    target_t = step * np.ceil(100 * table["issued"].to_numpy() / np.maximum(n, 1) / step + 1e-9)
    new_issued = np.minimum(np.rint(target_t * n / 100).astype(np.int64), n)
    _add_ballots(table, np.where(hit, np.maximum(new_issued - table["issued"].to_numpy(), 0), 0))
    ballots = (table["valid"] + table["invalid"]).to_numpy()
    target_s = np.minimum(step * np.ceil(100 * table["choice_1"].to_numpy() / np.maximum(ballots, 1) / step + 1e-9),
                          100.0)
    want = np.rint(target_s * ballots / 100).astype(np.int64) - table["choice_1"].to_numpy()
    need = np.where(hit, np.maximum(want, 0), 0)
    for c in others:
        take = np.minimum(need, table[c].to_numpy())
        table[c] -= take
        table["choice_1"] += take
        need = need - take


def stations_from_table(table: pd.DataFrame) -> Stations:
    """The forensic numbers of a synthetic table (turnout issued / registered, share of valid + invalid)."""
    codes, names = pd.factorize(table["region"])
    return Stations(voters=table["registered"].to_numpy(np.int64), turnout_count=table["issued"].to_numpy(np.int64),
                    ballots=(table["valid"] + table["invalid"]).to_numpy(np.int64),
                    leader=table["choice_1"].to_numpy(np.int64),
                    scopes={"region": (codes.astype(np.int32), [str(x) for x in names])},
                    votes=table.filter(regex="^choice_").to_numpy(np.int64))
