"""A plausible 1988 electoral model: who voted how at each polling station.

A batch is spread over ``settings.districts`` districts. Each district (drawn from the seed alone) has its own
party shares - a Dirichlet draw around the national 1988 result, so PRI dominates most districts but not all -
and its own turnout. Each station then draws its registered voters, turnout, null and unregistered votes and its
party votes around its district's shares. The honest counts always satisfy the acta's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.synth.settings import STATION_TYPES, SynthSettings

TOTAL = "total_votes"
RECEIVED = "ballots_received"
LEFT_OVER = "ballots_left_over"
REGISTERED = "registered_voters"
NULL = "null_votes"
UNREGISTERED = "unregistered"
RULING_PARTY = "pri"
#: Federal electoral districts per state in 1988 (states in INEGI order 1-32; 300 in all).
DISTRICTS_PER_STATE_1988 = (2, 6, 2, 2, 7, 2, 9, 10, 40, 6, 13, 10, 6, 20, 34, 13, 4, 3, 11, 10, 14, 3, 2, 7,
                            9, 7, 5, 9, 2, 23, 4, 5)
#: Stream tag that keeps district draws apart from the per-sheet ``(seed, index)`` streams.
DISTRICT_STREAM = 0xD157
SECTIONS = 9999
#: Coprime with SECTIONS, so consecutive sheets get distinct, scattered section numbers.
SECTION_STRIDE = 7919
TURNOUT_LIMITS = (0.12, 0.97)
DISTRICT_TURNOUT_SD = 0.07
NULL_SHARE_CONCENTRATION = 60.0
CONTIGUOUS_STATIONS = 3


@dataclass(frozen=True)
class District:
    """One district's ids and political profile."""

    state: int
    district: int
    shares: tuple[float, ...]
    turnout: float


@dataclass(frozen=True)
class Station:
    """One polling station's ids and honest counts (every count field of the form) and representatives."""

    ids: dict[str, int]
    station_type: str
    counts: dict[str, int]
    reps: dict[str, int]

    @property
    def opposition_present(self) -> bool:
        """Whether any non-PRI party had a representative at the station."""
        return any(v for party, v in self.reps.items() if party != RULING_PARTY)


def state_and_district(national_number: int) -> tuple[int, int]:
    """Map a national district number 0-299 to ``(state 1-32, district within state from 1)``."""
    bounds = np.cumsum(DISTRICTS_PER_STATE_1988)
    state = int(np.searchsorted(bounds, national_number, side="right"))
    first = int(bounds[state - 1]) if state else 0
    return state + 1, national_number - first + 1


@lru_cache(maxsize=64)
def _national_district_order(seed: int) -> np.ndarray:
    """The batch's districts as a permutation of the 300 national districts, so no two share ids."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, DISTRICT_STREAM]))
    return rng.permutation(sum(DISTRICTS_PER_STATE_1988))


@lru_cache(maxsize=1024)
def district_profile(seed: int, k: int, settings: SynthSettings) -> District:
    """District ``k`` of the batch with seed ``seed``: ids, party shares and mean turnout (cached, pure).

    Ids are drawn without replacement across the batch: two districts with the same ids would merge two
    populations and make the cross-sheet and forensic checks fire on honest data.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, DISTRICT_STREAM, k]))
    order = _national_district_order(seed)
    state, district = state_and_district(int(order[k % len(order)]))
    national = np.asarray(settings.party_shares, float) / sum(settings.party_shares)
    shares = rng.dirichlet(settings.district_concentration * national)
    turnout = float(np.clip(rng.normal(settings.turnout_mean, DISTRICT_TURNOUT_SD), *TURNOUT_LIMITS))
    return District(state, district, tuple(float(s) for s in shares), turnout)


def _station_counts(rng: np.random.Generator, district: District, settings: SynthSettings,
                    parties: tuple[str, ...]) -> dict[str, int]:
    """Honest counts: parties + unregistered + null = total; received - total = left over; total <= registered."""
    lo, hi = settings.registered_voters
    registered = int(rng.integers(lo, hi + 1))
    turnout = float(np.clip(rng.normal(district.turnout, settings.turnout_sd), *TURNOUT_LIMITS))
    total = int(rng.binomial(registered, turnout))
    null_share = rng.beta(settings.null_share_mean * NULL_SHARE_CONCENTRATION,
                          (1 - settings.null_share_mean) * NULL_SHARE_CONCENTRATION)
    null = int(rng.binomial(total, null_share))
    unregistered = int(rng.binomial(total - null, settings.unregistered_share_mean))
    shares = rng.dirichlet(settings.station_concentration * np.asarray(district.shares) + 1e-3)
    votes = rng.multinomial(total - null - unregistered, shares)
    received = registered + int(rng.integers(settings.extra_ballots + 1))
    counts = {party: int(v) for party, v in zip(parties, votes, strict=True)}
    counts.update({UNREGISTERED: unregistered, NULL: null, TOTAL: total, RECEIVED: received,
                   LEFT_OVER: received - total, REGISTERED: registered})
    return counts


def sample_station(rng: np.random.Generator, index: int, settings: SynthSettings,
                   parties: tuple[str, ...]) -> Station:
    """Draw the station of sheet ``index``: district, ids, type, honest counts and representatives present."""
    district = district_profile(settings.seed, int(rng.integers(settings.districts)), settings)
    weights = np.asarray(settings.station_type_weights, float)
    station_type = STATION_TYPES[int(rng.choice(len(STATION_TYPES), p=weights / weights.sum()))]
    number = 1 if station_type == "B" else int(rng.integers(1, CONTIGUOUS_STATIONS + 1))
    ids = {"state": district.state, "district": district.district,
           "section": 1 + (index * SECTION_STRIDE + settings.seed) % SECTIONS, "station": number}
    counts = _station_counts(rng, district, settings, parties)
    reps = {party: int(rng.random() < rate) for party, rate in zip(parties, settings.rep_present, strict=True)}
    return Station(ids=ids, station_type=station_type, counts=counts, reps=reps)
