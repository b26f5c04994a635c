"""Forensics of a published results table: integer percentages, the Klimek corner, and 100% turnout by size.

Every test gives, for the whole table and for each scope of each forensic level (e.g. each region), an observed
figure, what clean counts would give, an effect size, a p-value, the Holm-adjusted p-value of its family and an
alarm. A scope alarms only when its adjusted p-value is below ``alpha`` **and** its effect reaches the test's
minimum effect (a setting with a documented default): with 95,000 stations a p-value alone flags differences too
small to matter.

Families (Holm): the national results of all tests form one family; at each forensic level, each test's results
over that level's scopes form one family (85 regions: one family of 85 p-values per test), so adding a level does
not silence national findings.

* **Integer percentages** (Kobak, Shpilkin & Pshenichnikov 2016, AoAS 10(1):54-73). Stations whose turnout or
  leader share lies within ``integer_window_pp`` of an integer percentage, counted against a Monte-Carlo null
  that redraws each station's counts binomially from its own totals (turnout count ~ Bin(registered, turnout),
  leader votes ~ Bin(ballots, share)). Their inclusion rules: ballots > 0, at least ``integer_min_registered``
  registered, and only integers up to ``integer_max_percent`` count (100% is routine at small stations).
  Effect: the excess as a share of the included stations. p-value: the upper Poisson tail at the null mean
  (a sum of independent Bernoulli draws is less spread than a Poisson of the same mean, so this is conservative).
  Against the published 2012 excess (+1,160 stations, their code): these rules give +1,275 (z 10.8, 1,000 draws,
  abroad and Baikonur left out by the mapping). Variants measured on the 2012 table (issue 16; 1,000 draws of a
  separate script, seed 1, so the default reads +1,284 there): turnout as ballots found in the boxes (valid +
  invalid) / registered, +1,271; 100% counted, +1,016 (+991 with that turnout); integers 50-99% only, about
  +1,400 (+1,396 with 200 draws); the leader's share of the valid ballots, about +1,030 (+1,029, 200 draws);
  counting integer *values* (a station twice when its turnout and its share are both integer), +1,514; values
  with 100% counted, +1,199, and with the turnout of the ballots found too, +1,166 (z 8.8). Only counting values
  with 100% included lands near ~1,160, and it departs from the rules stated above on two points at once: the
  paper's abstract counts polling stations ("reporting turnout and/or leader's result expressed by an integer
  percentage"), once each, and 100% is left out here as routine at small stations. Found among fourteen variants
  tried, it may match by chance and no documented rule says so, so the defaults stay as stated.
* **Klimek corner** (Klimek, Yegorov, Hanel & Thurner 2012, PNAS 109(41)). The share of stations with turnout and
  leader share both at least ``corner_threshold``, against a model of the bulk: in each scope the turnout and the
  share are logit-normal across stations, fitted by maximum likelihood on the stations below ``bulk_max`` only
  (a normal truncated above, so a fraudulent top does not shape the fit), and each station's own binomial noise is
  added through its size (Gauss-Hermite quadrature over the fitted spread). Expected count, a 95% interval
  (normal approximation of the sum of the stations' probabilities), p-value (upper Poisson tail). A scope with
  fewer than ``min_bulk_stations`` stations below ``bulk_max`` (in turnout or in share) has no bulk to model: it
  is reported as not modelled (``unmodelled_stations``) and not tested, rather than judged by another scope's fit
  (a region where nearly every station sits above 80% cannot be told apart from a genuinely uniform one by this
  test; the integer test still covers it).
* **100% turnout by size.** Stations at 100% turnout are compared with the number expected from the same fitted
  turnout spread and each station's size (a 20-voter station reaches 100% far more easily than a 2,000-voter one);
  each such station gets the probability of its 100% under that model, and is flagged when it is below
  ``full_turnout_station_p``. The scope-level count is reported only (``full_turnout_alarm``, off by default):
  special stations with closed lists reach 100% legitimately.

* **Spikes at round shares** (after Rozenas 2017, "Detecting election fraud from irregularities in vote-share
  distributions", Political Analysis 25(1):41-56, and his R package ``spikes``). Results written by hand cluster
  on coarse round shares (60%, 75%, 80% ...), which shows as spikes in the 0.1-pp histograms of turnout and
  leader share. Rozenas's resampled kernel density estimates the histogram's smooth shape by redrawing each
  station's count binomially from its own total and share, which spreads a written-in spike over its
  neighbours; we take that resampling's exact limit (the binomial probabilities, no kernel and no draws are
  needed on a 0.1-pp grid) for the round bins. Round shares: the multiples of ``spike_step_pp`` (5, 10, ... 95%),
  a station counts when its turnout or its leader share lies within ``spike_window_pp`` of one (a 0.1-pp bin),
  stations with at least ``spike_min_total`` voters. Expected count: the sum over stations of
  1 - (1 - q_turnout)(1 - q_share); interval and p-value as for the corner. Effect: the excess as a share of the
  stations tested (Rozenas's estimate of the share of stations with written-in results); alarm from
  ``spike_min_effect``. Unlike the integer test (every integer, Monte-Carlo null), this one looks only at the
  coarse round shares, reports turnout and share apart, and keeps the histograms for the report's plot.
  Memory: computed in blocks of :data:`SPIKE_BLOCK` stations, every sum taken in the order NumPy's pairwise
  sum over all stations would take (:func:`pairwise_blocks`), so its figures are those of one pass over every
  station to the last bit while its memory stays a few MB (it held ~180 bytes per station).
* **Stuffing tail and switching tail** (:mod:`pipeline.audit.table_shift`; after the fraud model of Klimek et al.
  2012 and Shpilkin's picture of stuffed stations). In each scope the stations' logit turnout and logit leader share
  are standardised robustly and projected on the direction stuffing moves a station (turnout and share up,
  ``stuffing_angle_deg``) or switching moves it (share up, ``switching_angle_deg``); an honest bulk is symmetric
  (correlated or not), so the stations beyond ``shift_tail_sd`` spreads on that side are compared with those beyond
  it on the mirror side. Effect: (tail - mirror) / stations tested; p-value: one-sided sign test; alarm from
  ``shift_min_effect``. They find stuffing and switching at strength 0.5 in 5% of the stations, which no other
  test here finds (the rank correlation alarms on honestly correlated tables too). **Reported only by default**
  (``shift_alarm``): a region honestly made of two kinds of stations (towns, and fewer villages with a higher
  turnout and a higher leader share) is not symmetric, and its villages fill the stuffing tail exactly as stuffed
  stations do (on clean 2012-shaped tables with 10% of the stations 1.5 spreads out along the stuffing direction,
  the stuffing tail alarmed nationally in 31 of 40); no guard was found that tells the two apart.
* **Digit tests** (last digit uniform / mean / share of 0 and 5, 2BL, Beber-Scacco pairs; see
  :mod:`pipeline.audit.forensics`) on every choice's votes, nationally and per scope. **Weak evidence**: Deckert,
  Myagkov & Ordeshook (2011) and Mebane (2013) found them unreliable as fraud tests on Russian data, so they
  never count towards the ranking of scopes by the other tests, they form their own families, the 2BL tests are
  reported only, and an alarm needs ``|effect|`` at least ``digit_min_cramers_v`` (chi-square tests),
  ``digit_min_mean_shift`` (mean digit) or ``digit_min_share_shift`` (shares). The last digits are compared with
  a smooth reference (small counts do not end uniformly: within a decade a falling distribution favours low
  digits). In a scope (a region) that reference's slopes rest on the scope's own counts steadied by the national
  slopes (``digit_scope_prior``: a region's few counts per decade make slopes of its own mostly noise, which made
  the uniformity test alarm in some region of 6.8% of clean tables), and the uniformity test's p-value is exact
  (Monte Carlo, ``digit_mc_draws``) wherever the asymptotic one is below ``alpha``.

These are statistical irregularities to look into, not proof of fraud.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special, stats

from pipeline.audit.table_shift import SHIFT_TESTS, shift_tests

#: Gauss-Hermite nodes used to integrate over a scope's fitted logit-normal spread.
QUADRATURE_NODES = 40
#: Smallest / largest standard deviation (logit units) a bulk fit may return.
SIGMA_RANGE = (0.05, 3.0)
#: Elements per Monte-Carlo block (draws x stations drawn in one call): bounds the memory of the null at a few
#: tens of MB. Changing it changes which random numbers go to which draw (the draws of the turnout and of the
#: share alternate block by block), so results depend on it; keep it fixed.
BLOCK_ELEMENTS = 2_000_000
#: Elements of a block's draws turned into counts at a time (rows of the block): the block's work arrays (the
#: percentages, their nearest integers, the hit masks) stay a few MB whatever the block size; results do not
#: depend on it (every draw is counted on its own).
COUNT_ELEMENTS = 250_000
#: Percentages whose integer excess is listed one by one (the plot's x axis).
INTEGER_RANGE = (50, 100)
#: Probabilities below this are written as this bound.
TINY_P = 1e-300
#: Bounds of ``digit_mc_draws`` when not 0: fewer than 1,000 draws cannot reach the Holm thresholds of a region
#: family (0.05 / 85 = 0.0006); more than 1,000,000 is slow for no gain.
MIN_DIGIT_MC_DRAWS, MAX_DIGIT_MC_DRAWS = 1_000, 1_000_000
#: Offset of the digit tests' random stream from ``seed`` (the integer test uses ``seed``, the spikes ``seed + 1``).
DIGIT_SEED_OFFSET = 2
#: The tests computed on last digits, which take the reference (:func:`last_digit_tests`).
LAST_DIGIT_TESTS = ("last_digit_uniform", "last_digit_mean", "last_digit_0_or_5")
#: Relative tolerance when comparing a simulated chi-square statistic with the observed one (a tie counts).
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TableForensicsSettings:
    """Settings of the results-table forensics (validated on construction).

    Defaults: ``alpha`` 5%; 1,000 Monte-Carlo draws (Kobak et al. used 1,000 too); a 0.05-pp window and the
    100-voter minimum of Kobak et al.; minimum effects chosen so that a scope must shift by a fifth of a percent of
    its stations (integer test) or half a percent (corner, 100% turnout) before it alarms, whatever its p-value.
    """

    alpha: float = 0.05
    mc_draws: int = 1000
    seed: int = 0
    integer_window_pp: float = 0.05
    integer_min_registered: int = 100
    integer_max_percent: int = 99
    integer_min_effect: float = 0.002
    corner_threshold: float = 0.95
    bulk_max: float = 0.80
    corner_min_effect: float = 0.005
    full_turnout_min_effect: float = 0.005
    full_turnout_station_p: float = 0.001
    #: The scope-level 100%-turnout count raises no alarm by default: special stations (hospitals, ships, remote
    #: units with closed voter lists) reach 100% legitimately and the bulk model does not know them (on the 2012
    #: table it would alarm in most regions). The count, its expectation and every station's probability are
    #: still reported, and stations improbable for their size are flagged one by one.
    full_turnout_alarm: bool = False
    min_scope_stations: int = 30
    min_bulk_stations: int = 20
    #: Spike test: round shares are multiples of ``spike_step_pp`` (default 5: 5%, 10%, ... 95%), a 0.1-pp bin
    #: (``spike_window_pp`` either side), stations of at least ``spike_min_total`` voters, and an alarm needs an
    #: excess of at least ``spike_min_effect`` of the stations tested (0.1%: a tenth of the ~4% of stations that
    #: sit in those bins by chance, so a 2.5% bump or more).
    spike_step_pp: float = 5.0
    spike_window_pp: float = 0.05
    spike_min_total: int = 100
    spike_min_effect: float = 0.001
    #: Resamples averaged for the plotted expected histogram (the test itself uses exact probabilities).
    spike_plot_draws: int = 20
    #: Digit tests (weak evidence): reference, smallest count whose last digit is tested, smallest sample, and the
    #: minimum effects (Cohen's small effect over ten cells; a mean digit 0.1 off; a share one point off).
    digit_reference: str = "smooth"
    digit_min_last_value: int = 20
    digit_min_observations: int = 50
    digit_min_cramers_v: float = 0.033
    digit_min_mean_shift: float = 0.1
    digit_min_share_shift: float = 0.01
    #: Steadying of a scope's last-digit reference (``digit_reference = "smooth"``), in pseudo-counts: within each
    #: decade the smooth reference's slope comes from the neighbouring decades' counts, the scope's own plus this
    #: many counts' worth of the national slope (:func:`scope_reference`). A region has a few counts per decade, so
    #: slopes of its own are mostly noise (a decade between neighbours of 1 and 9 counts makes a final 9 2.7 times
    #: as likely as a 0), which the chi-square reads as a deviation; national slopes alone misjudge a large region
    #: whose counts differ from the country's (with them, Moscow's last digits, mean 4.50 in 2012, alarm as 0.1
    #: "too high"). Measured on 400 clean tables shaped like 2012 (4,000 stations; Monte-Carlo p-values), the
    #: last-digit uniformity test alarmed in some region of 6.2% of the tables with 0 (the scope's own slopes, as
    #: before; 6.8% with asymptotic p-values too), 4.8% with 5, 5.0% with 20, 100 or national slopes only; on the
    #: 2012 and 2016 tables 20 alarms in the same regions as 0 (and North Ossetia's uniformity in 2012), 100 adds
    #: Tambov / Bryansk to the mean test. 0: the scope's own slopes.
    digit_scope_prior: float = 20.0
    #: Monte-Carlo draws of the last-digit chi-square test's null (multinomial samples of the scope's digits from
    #: its reference), for an exact p-value where the chi-square law is only asymptotic: with 50 digits
    #: (5 per cell) it gives 25% too many p-values below 0.001. Drawn only where the asymptotic p-value is below
    #: ``alpha`` (nothing else can alarm); the asymptotic one is kept as ``p_asymptotic``. 0: asymptotic only.
    digit_mc_draws: int = 20_000
    #: Tail-excess tests (:mod:`pipeline.audit.table_shift`): stations pushed out of their scope's bulk along the
    #: stuffing direction (``stuffing_angle_deg`` from the turnout axis in the plane of standardised logit turnout
    #: and logit leader share; 30: ballot stuffing at half the non-voters moves a typical 2012-shaped station ~2.7
    #: spreads in turnout and ~1.2 in share, and of 0, 30, 45, 60 degrees 30 separated stuffed from clean tables
    #: best) or the switching direction (``switching_angle_deg``, 90: share up, turnout unchanged), counted beyond
    #: ``shift_tail_sd`` robust spreads (2: of 1.5, 2, 2.5 and 3 it gave the largest excess for moderate fraud
    #: against the least noise) against the mirror tail. Stations of fewer than ``shift_min_registered`` voters are
    #: left out (the logit of a count over few voters is noisy and skewed; 100, as the integer test). An alarm
    #: needs an excess of at least ``shift_min_effect`` of the stations tested (0.5%, as the corner; on clean
    #: 4,000-station tables the national effect's SD is ~0.4%, and fraud in 5% of stations at strength 0.5 gives
    #: ~2-3%).
    stuffing_angle_deg: float = 30.0
    switching_angle_deg: float = 90.0
    shift_tail_sd: float = 2.0
    shift_min_registered: int = 100
    shift_min_effect: float = 0.005
    #: The tail tests raise no alarm by default (report only, like ``full_turnout``): an honest mixture of two kinds
    #: of stations in a region fills the stuffing tail as stuffing does. Measured on clean 4,000-station tables
    #: shaped like 2012 (40 per cell) with a share ``w`` of each region's stations from a second honest component
    #: ``d`` spreads out along the stuffing direction (:class:`pipeline.audit.table_synth.TableShape`
    #: ``mix_weight`` / ``mix_shift``), the stuffing tail alarmed nationally in 31 of 40 tables at w 0.1, d 1.5 and
    #: 34 of 40 at w 0.2, d 1.5 (README); on the 2012 and 2016 tables it alarmed in 70-74 regions of 83-85. Their
    #: counts, effects and raw p-values are still reported; True puts them in the Holm families and lets them alarm.
    shift_alarm: bool = False

    def __post_init__(self) -> None:
        checks = {
            "alpha": 0 < self.alpha < 1,
            "mc_draws": isinstance(self.mc_draws, int) and 10 <= self.mc_draws <= 100_000,
            "seed": isinstance(self.seed, int) and self.seed >= 0,
            "integer_window_pp": 0 < self.integer_window_pp < 0.5,
            "integer_min_registered": isinstance(self.integer_min_registered, int) and self.integer_min_registered >= 1,
            "integer_max_percent": isinstance(self.integer_max_percent, int) and 1 <= self.integer_max_percent <= 100,
            "integer_min_effect": 0 <= self.integer_min_effect < 1,
            "corner_threshold": 0.5 < self.corner_threshold <= 1,
            "bulk_max": 0.1 < self.bulk_max < self.corner_threshold,
            "corner_min_effect": 0 <= self.corner_min_effect < 1,
            "full_turnout_min_effect": 0 <= self.full_turnout_min_effect < 1,
            "full_turnout_station_p": 0 < self.full_turnout_station_p < 1,
            "full_turnout_alarm": isinstance(self.full_turnout_alarm, bool),
            "min_scope_stations": isinstance(self.min_scope_stations, int) and self.min_scope_stations >= 1,
            "min_bulk_stations": isinstance(self.min_bulk_stations, int) and self.min_bulk_stations >= 3,
            "spike_step_pp": 0.5 <= self.spike_step_pp <= 50,
            "spike_window_pp": 0 < self.spike_window_pp < 0.25,
            "spike_min_total": isinstance(self.spike_min_total, int) and self.spike_min_total >= 1,
            "spike_min_effect": 0 <= self.spike_min_effect < 1,
            "spike_plot_draws": isinstance(self.spike_plot_draws, int) and 1 <= self.spike_plot_draws <= 1000,
            "digit_reference": self.digit_reference in ("smooth", "uniform"),
            "digit_min_last_value": isinstance(self.digit_min_last_value, int) and self.digit_min_last_value >= 10,
            "digit_min_observations": isinstance(self.digit_min_observations, int)
            and self.digit_min_observations >= 1,
            "digit_min_cramers_v": 0 <= self.digit_min_cramers_v < 1,
            "digit_min_mean_shift": 0 <= self.digit_min_mean_shift < 9,
            "digit_min_share_shift": 0 <= self.digit_min_share_shift < 1,
            "digit_scope_prior": isinstance(self.digit_scope_prior, (int, float))
            and not isinstance(self.digit_scope_prior, bool) and 0 <= self.digit_scope_prior < math.inf,
            "digit_mc_draws": isinstance(self.digit_mc_draws, int) and not isinstance(self.digit_mc_draws, bool)
            and (self.digit_mc_draws == 0 or MIN_DIGIT_MC_DRAWS <= self.digit_mc_draws <= MAX_DIGIT_MC_DRAWS),
            "stuffing_angle_deg": 0 <= self.stuffing_angle_deg <= 90,
            "switching_angle_deg": 0 <= self.switching_angle_deg <= 90,
            "shift_tail_sd": 0 < self.shift_tail_sd < math.inf,
            "shift_min_registered": isinstance(self.shift_min_registered, int) and self.shift_min_registered >= 1,
            "shift_min_effect": 0 <= self.shift_min_effect < 1,
            "shift_alarm": isinstance(self.shift_alarm, bool),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            from pipeline.errors import ConfigError
            raise ConfigError(f"table forensics: bad value for {', '.join(bad)} ("
                              + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad) + ")")


@dataclass(frozen=True)
class Stations:
    """The per-station numbers the forensics use (one entry per audited station).

    ``voters``: turnout denominator (registered); ``turnout_count``: its numerator (ballots issued);
    ``ballots``: the leader share's denominator; ``leader``: the leader's votes; ``scopes``: for each forensic
    level, an integer code per station and the names of the codes; ``votes``: optionally every choice's votes
    (stations x choices), for the digit tests (none: no digit test).
    """

    voters: np.ndarray
    turnout_count: np.ndarray
    ballots: np.ndarray
    leader: np.ndarray
    scopes: dict[str, tuple[np.ndarray, list[str]]]
    votes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.voters)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (controls the family-wise error rate under any dependence; NaN entries are
    left out and stay NaN). The scanned-sheet forensics use it too."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def poisson_upper(observed: np.ndarray | float, mean: np.ndarray | float) -> np.ndarray:
    """P(X >= observed) for X ~ Poisson(mean) (1 where observed <= 0)."""
    observed = np.asarray(observed, dtype=float)
    mean = np.maximum(np.asarray(mean, dtype=float), 1e-12)
    return np.maximum(stats.poisson.sf(observed - 1, mean), TINY_P)


def near_integer(count: np.ndarray, total: np.ndarray, window_pp: float, max_percent: int) -> np.ndarray:
    """Whether ``100 * count / total`` lies within ``window_pp`` of an integer no larger than ``max_percent``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100.0 * count / total
    nearest = np.rint(pct)
    return (np.abs(pct - nearest) < window_pp) & (nearest <= max_percent) & (total > 0)


def _scope_sort(codes: np.ndarray, n_scopes: int) -> tuple[np.ndarray, np.ndarray]:
    """An order that groups stations by scope code, and the start of each scope in it."""
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_scopes))
    return order, starts


def _compact_index(index: np.ndarray) -> np.ndarray:
    """Station positions in 32 bits when they fit (half the memory of NumPy's 64-bit ``argsort``)."""
    return index.astype(np.int32) if index.size < np.iinfo(np.int32).max else index


def _segment_sums(matrix: np.ndarray, starts: np.ndarray, n_total: int) -> np.ndarray:
    """Sums of ``matrix``'s columns (already sorted by scope) within each scope; empty scopes give 0."""
    out = np.zeros((matrix.shape[0], len(starts)))
    nonempty = np.flatnonzero(np.diff(np.append(starts, n_total)) > 0)
    if nonempty.size:
        sums = np.add.reduceat(matrix, starts[nonempty], axis=1)
        out[:, nonempty] = sums
    return out


def integer_percentages(st: Stations, s: TableForensicsSettings) -> dict:
    """The integer-percentage test (module docstring): national, per integer, and per scope of each level."""
    include = (st.ballots > 0) & (st.voters >= s.integer_min_registered)
    n = st.voters[include].astype(np.int64)
    t = np.minimum(st.turnout_count[include], n).astype(np.int64)
    b = st.ballots[include].astype(np.int64)
    lead = np.minimum(st.leader[include], b).astype(np.int64)
    lo, hi = INTEGER_RANGE
    width = hi - lo + 1
    obs_t = near_integer(t, n, s.integer_window_pp, s.integer_max_percent)
    obs_s = near_integer(lead, b, s.integer_window_pp, s.integer_max_percent)
    observed = obs_t | obs_s
    obs_pt = _per_integer(t[None], n, obs_t[None], lo, width)[0]
    obs_ps = _per_integer(lead[None], b, obs_s[None], lo, width)[0]
    p_t, p_s = t / np.maximum(n, 1), lead / np.maximum(b, 1)
    del t, lead, obs_t, obs_s  # what the null needs: the totals and the shares (memory: fewer arrays per station)
    levels = {}
    for level, (codes, names) in st.scopes.items():
        c = codes[include]
        order, starts = _scope_sort(c, len(names))
        levels[level] = (c, names, _compact_index(order), starts)
    rng = np.random.default_rng(s.seed)
    total = np.zeros(s.mc_draws)
    per_t = np.zeros((s.mc_draws, width))
    per_s = np.zeros((s.mc_draws, width))
    per_level = {lv: np.zeros((s.mc_draws, len(v[1]))) for lv, v in levels.items()}
    block = max(1, BLOCK_ELEMENTS // max(1, n.size))
    rows_at_once = max(1, COUNT_ELEMENTS // max(1, n.size))
    for first in range(0, s.mc_draws, block):
        k = min(block, s.mc_draws - first)
        dt = rng.binomial(n, p_t, size=(k, n.size))
        ds = rng.binomial(b, p_s, size=(k, n.size))
        for r in range(0, k, rows_at_once):
            part = slice(r, min(k, r + rows_at_once))
            draws = slice(first + part.start, first + part.stop)
            near_t = near_integer(dt[part], n, s.integer_window_pp, s.integer_max_percent)
            near_s = near_integer(ds[part], b, s.integer_window_pp, s.integer_max_percent)
            hit = near_t | near_s
            total[draws] = hit.sum(axis=1)
            per_t[draws] = _per_integer(dt[part], n, near_t, lo, width)
            per_s[draws] = _per_integer(ds[part], b, near_s, lo, width)
            for lv, (_c, _names, order, starts) in levels.items():
                per_level[lv][draws] = _segment_sums(hit[:, order].astype(np.float32), starts, n.size)
        del dt, ds
    national = _integer_row("all", int(observed.sum()), total, int(n.size))
    integers = []
    for i in range(width):
        integers.append({"percent": lo + i,
                         "turnout_observed": int(obs_pt[i]), "turnout_null_mean": float(per_t[:, i].mean()),
                         "share_observed": int(obs_ps[i]), "share_null_mean": float(per_s[:, i].mean())})
    scopes = {}
    for lv, (c, names, _order, _starts) in levels.items():
        obs_counts = np.bincount(c, weights=observed, minlength=len(names))
        sizes = np.bincount(c, minlength=len(names))
        scopes[lv] = [_integer_row(names[j], int(obs_counts[j]), per_level[lv][:, j], int(sizes[j]))
                      for j in range(len(names))]
    return {"test": "integer_percentages", "included": int(n.size), "excluded": int((~include).sum()),
            "draws": s.mc_draws, "national": national, "per_integer": integers, "scopes": scopes}


def _per_integer(draws: np.ndarray, total: np.ndarray, near: np.ndarray, lo: int, width: int) -> np.ndarray:
    """For each draw (row), how many stations sit near each integer percentage ``lo .. lo + width - 1``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.rint(100.0 * draws / total).astype(np.int64) - lo
    rows = np.broadcast_to(np.arange(draws.shape[0])[:, None], draws.shape)
    keep = near & (k >= 0) & (k < width)
    flat = rows[keep] * width + k[keep]
    return np.bincount(flat, minlength=draws.shape[0] * width).reshape(draws.shape[0], width)


def _integer_row(scope: str, observed: int, null: np.ndarray, stations: int) -> dict:
    mean, sd = float(null.mean()), float(null.std(ddof=1)) if null.size > 1 else 0.0
    excess = observed - mean
    return {"scope": scope, "stations": stations, "observed": observed, "null_mean": mean, "null_sd": sd,
            "excess": excess, "z": excess / sd if sd > 0 else (0.0 if excess <= 0 else math.inf),
            "effect": excess / stations if stations else 0.0,
            "p": float(poisson_upper(observed, mean)) if stations else math.nan}


def logit_values(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Logits of ``count / total`` with the usual half-count correction (finite at 0% and 100%)."""
    return np.log((count + 0.5) / (total - count + 0.5))


def fit_truncated_normal(y: np.ndarray, upper: float) -> tuple[float, float]:
    """Maximum-likelihood (mu, sigma) of a normal seen only below ``upper`` (its values ``y`` < upper)."""
    mu0, sd0 = float(np.median(y)), float(np.clip(np.std(y), *SIGMA_RANGE))

    def nll(params: np.ndarray) -> float:
        mu, log_sd = params
        sd = math.exp(log_sd)
        z = (y - mu) / sd
        return float(0.5 * np.sum(z * z) + y.size * (log_sd + special.log_ndtr((upper - mu) / sd)))

    res = optimize.minimize(nll, np.array([mu0, math.log(sd0)]), method="Nelder-Mead",
                            options={"xatol": 1e-4, "fatol": 1e-4, "maxiter": 400})
    mu, log_sd = res.x if res.success or np.all(np.isfinite(res.x)) else (mu0, math.log(sd0))
    mu = float(np.clip(mu, upper - 12, upper + 6))
    return mu, float(np.clip(math.exp(log_sd), *SIGMA_RANGE))


def bulk_fit(count: np.ndarray, total: np.ndarray, bulk_max: float, min_stations: int,
             fallback: tuple[float, float] | None) -> tuple[float, float]:
    """The logit-normal spread of ``count / total`` over stations, fitted on the stations below ``bulk_max``."""
    ok = total > 0
    y = logit_values(count[ok], total[ok])
    upper = float(special.logit(bulk_max))
    below = y[y < upper]
    if below.size < min_stations:
        if fallback is not None:
            return fallback
        below = y[y < np.quantile(y, 0.5)] if y.size else np.array([0.0])
        upper = float(np.max(below)) + 1e-9 if below.size else upper
    return fit_truncated_normal(below, upper)


def reach_probability(total: np.ndarray, threshold: float, mu: float, sigma: float) -> np.ndarray:
    """P(count / total >= threshold) per station, count ~ Bin(total, p), logit(p) ~ N(mu, sigma)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / weights.sum()
    p = special.expit(mu + sigma * nodes)
    need = np.ceil(threshold * total - 1e-9)
    sf = stats.binom.sf(need[:, None] - 1, total[:, None], p[None, :])
    return sf @ weights


def full_probability(total: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """P(count == total) per station under the same model (E[p ** total])."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    weights = weights / weights.sum()
    log_p = -np.logaddexp(0.0, -(mu + sigma * nodes))
    return np.exp(total[:, None] * log_p[None, :]) @ weights


def bulk_size(count: np.ndarray, total: np.ndarray, bulk_max: float) -> int:
    """How many stations lie below ``bulk_max`` (on the logit scale the fits use)."""
    ok = total > 0
    return int(np.sum(logit_values(count[ok], total[ok]) < special.logit(bulk_max)))


def _model_rows(st: Stations, s: TableForensicsSettings) -> tuple[dict, dict]:
    """Per station: probability of the corner and of 100% turnout under its scope's fitted bulk (NaN where the
    scope's bulk is too small to fit: fewer than ``min_bulk_stations`` stations below ``bulk_max`` in turnout or
    share; such a scope is reported as not modelled, never compared with another scope's fit); per-scope fits."""
    ok = (st.voters > 0) & (st.ballots > 0)
    n = st.voters.astype(float)
    t = np.minimum(st.turnout_count, st.voters).astype(float)
    b = st.ballots.astype(float)
    lead = np.minimum(st.leader, st.ballots).astype(float)
    q_corner = np.full(len(st), np.nan)
    q_full = np.full(len(st), np.nan)
    finest = list(st.scopes)[-1] if st.scopes else None
    if finest is None:
        scopes = [("all", np.flatnonzero(ok))]
    else:
        codes, names = st.scopes[finest]
        scopes = [(name, np.flatnonzero(ok & (codes == j))) for j, name in enumerate(names)]
    fits = {}
    for name, idx in scopes:
        if idx.size == 0:
            continue
        sizes = (bulk_size(t[idx], n[idx], s.bulk_max), bulk_size(lead[idx], b[idx], s.bulk_max))
        if min(sizes) < s.min_bulk_stations:
            fits[name] = {"scope": name, "modelled": False,
                          "why": f"{min(sizes)} stations below {100 * s.bulk_max:.0f}% (at least "
                                 f"{s.min_bulk_stations} needed to fit the bulk)"}
            continue
        ft = bulk_fit(t[idx], n[idx], s.bulk_max, s.min_bulk_stations, None)
        fs = bulk_fit(lead[idx], b[idx], s.bulk_max, s.min_bulk_stations, None)
        fits[name] = {"scope": name, "modelled": True, "turnout_mu_sigma": ft, "share_mu_sigma": fs}
        q_corner[idx] = (reach_probability(n[idx], s.corner_threshold, *ft)
                         * reach_probability(b[idx], s.corner_threshold, *fs))
        q_full[idx] = full_probability(n[idx], *ft)
    return {"corner": q_corner, "full": q_full, "ok": ok}, fits


def _expectation_row(scope: str, observed: int, q: np.ndarray, stations: int, unmodelled: int = 0) -> dict:
    """Observed vs expected count; ``q``: the modelled stations' probabilities (none: the scope is not tested)."""
    if q.size == 0:
        return _expectation_stats(scope, observed, 0, 0.0, 0.0, stations, unmodelled)
    return _expectation_stats(scope, observed, int(q.size), float(q.sum()), float(np.sum(q * (1 - q))), stations,
                              unmodelled)


def _expectation_stats(scope: str, observed: int, tested: int, expected: float, variance: float, stations: int,
                       unmodelled: int = 0) -> dict:
    """:func:`_expectation_row` from its sums: ``tested`` stations with probabilities summing to ``expected``
    (``q.sum()``) and ``variance`` (``np.sum(q * (1 - q))``); none tested: the scope is not tested."""
    row = {"scope": scope, "stations": stations, "unmodelled_stations": unmodelled, "observed": observed}
    if tested == 0:
        return {**row, "expected": math.nan, "interval": [math.nan, math.nan], "excess": math.nan,
                "observed_share": observed / stations if stations else 0.0, "expected_share": math.nan,
                "effect": math.nan, "p": math.nan}
    sd = float(np.sqrt(variance))
    excess = observed - expected
    return {**row, "expected": expected, "interval": [max(0.0, expected - 1.96 * sd), expected + 1.96 * sd],
            "excess": excess, "observed_share": observed / tested, "expected_share": expected / tested,
            "effect": excess / tested, "p": float(poisson_upper(observed, expected))}


def corner_and_full_turnout(st: Stations, s: TableForensicsSettings) -> tuple[dict, dict, np.ndarray]:
    """The Klimek corner test and the 100%-turnout test, over the stations whose scope could be modelled; also each
    station's probability of its 100% turnout (NaN for stations not at 100% or not modelled)."""
    model, fits = _model_rows(st, s)
    ok = model["ok"]
    modelled = ok & np.isfinite(model["corner"])
    in_corner = modelled & (st.turnout_count >= s.corner_threshold * st.voters) & \
        (st.leader >= s.corner_threshold * st.ballots)
    full = modelled & (st.turnout_count >= st.voters)
    lost = int((ok & ~modelled).sum())
    corner = {"test": "klimek_corner", "threshold": s.corner_threshold, "bulk_max": s.bulk_max,
              "national": _expectation_row("all", int(in_corner.sum()), model["corner"][modelled], int(ok.sum()),
                                           lost),
              "scopes": {}, "fits": fits}
    full_t = {"test": "full_turnout",
              "national": _expectation_row("all", int(full.sum()), model["full"][modelled], int(ok.sum()), lost),
              "scopes": {}}
    for level, (codes, names) in st.scopes.items():
        rows_c, rows_f = [], []
        for j, name in enumerate(names):
            scope = ok & (codes == j)
            sel = modelled & scope
            m, unmodelled = int(scope.sum()), int((scope & ~modelled).sum())
            rows_c.append(_expectation_row(name, int(in_corner[sel].sum()), model["corner"][sel], m, unmodelled))
            rows_f.append(_expectation_row(name, int(full[sel].sum()), model["full"][sel], m, unmodelled))
        corner["scopes"][level] = rows_c
        full_t["scopes"][level] = rows_f
    station_p = np.where(full, model["full"], np.nan)
    return corner, full_t, station_p


def round_values(step_pp: float) -> np.ndarray:
    """The round shares tested, in percent: the multiples of ``step_pp`` strictly between 0 and 100."""
    k = np.arange(1, int(math.ceil(100 / step_pp)))
    values = k * step_pp
    return values[values < 100 - 1e-9]


def near_round(count: np.ndarray, total: np.ndarray, step_pp: float, window_pp: float) -> np.ndarray:
    """Whether ``100 * count / total`` lies within ``window_pp`` of a round share (:func:`round_values`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100.0 * count / total
        nearest = step_pp * np.rint(pct / step_pp)
    return (np.abs(pct - nearest) < window_pp) & (nearest > 0) & (nearest < 100 - 1e-9) & (total > 0)


def round_bin_masses(total: np.ndarray, p: np.ndarray, rounds: np.ndarray, window_pp: float) -> np.ndarray:
    """Per round share (rows) and station (columns), P(100 X / total within ``window_pp`` of that share),
    X ~ Bin(total, p); 0 for a station far from the share (not computed)."""
    total = total.astype(float)
    out = np.zeros((len(rounds), total.size))
    sd = np.sqrt(np.maximum(p * (1 - p), 0.25 / np.maximum(total, 1)) / np.maximum(total, 1))
    for i, r in enumerate(rounds):
        near = np.abs(p - r / 100) < 9 * sd + window_pp / 100
        if not near.any():
            continue
        n, pp = total[near], p[near]
        lo = np.floor(n * (r - window_pp) / 100 + 1e-9) + 1
        hi = np.ceil(n * (r + window_pp) / 100 - 1e-9) - 1
        mass = np.where(hi >= lo, stats.binom.cdf(hi, n, pp) - stats.binom.cdf(lo - 1, n, pp), 0.0)
        out[i, near] = np.clip(mass, 0.0, 1.0)
    return out


def _sum_rounds(masses: np.ndarray) -> np.ndarray:
    """The probability of any round share: the rows of :func:`round_bin_masses` added in order, clipped to 1."""
    q = np.zeros(masses.shape[1])
    for row in masses:
        q += row
    return np.clip(q, 0.0, 1.0)


def round_bin_probability(total: np.ndarray, p: np.ndarray, rounds: np.ndarray, window_pp: float) -> np.ndarray:
    """Per station, P(100 X / total within ``window_pp`` of a round share), X ~ Bin(total, p): the exact limit of
    Rozenas's resampling (stations far from every round share get 0 without computing)."""
    return _sum_rounds(round_bin_masses(total, p, rounds, window_pp))


#: Stations at most in one block of the spike test (its memory is a few MB whatever the table's size: about 330
#: bytes per station of a block). Results do not depend on it: every sum over stations is taken as NumPy's pairwise
#: sum over all of them would be (:func:`pairwise_blocks`), so the figures are the same to the last bit.
SPIKE_BLOCK = 16_384


def pairwise_blocks(n: int, limit: int) -> list:
    """How ``numpy.sum`` adds a contiguous float64 array of ``n`` elements (pairwise: halves split at a multiple of
    8, down to 128 elements), cut at blocks of at most ``limit`` elements: a nested list whose leaves are
    ``(start, length)`` blocks. Summing each block with ``numpy.sum`` and adding the halves as the nesting says
    (:func:`tree_add`) gives exactly ``numpy.sum`` of the whole array (``limit`` >= 128)."""
    def split(lo: int, m: int):
        if m <= limit:
            return (lo, m)
        half = m // 2
        half -= half % 8
        return [split(lo, half), split(lo + half, m - half)]
    return [split(0, n)] if n > 0 else []


def tree_add(tree, leaf) -> dict:
    """Walk :func:`pairwise_blocks`'s ``tree``: ``leaf(start, length)`` gives a dict of sums over a block; the sums
    of the two halves are added (floats in NumPy's pairwise order, integers exactly)."""
    if isinstance(tree, tuple):
        return leaf(*tree)
    if len(tree) == 1:
        return tree_add(tree[0], leaf)
    left, right = tree_add(tree[0], leaf), tree_add(tree[1], leaf)
    return {k: left[k] + right[k] for k in left}


class _Included:
    """The positions of the stations a test includes (``mask``), without an index per station: station blocks'
    running counts, and the station indices of any run of included positions."""

    CHUNK = 1 << 16

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        starts = np.arange(0, mask.size, self.CHUNK)
        counts = np.add.reduceat(mask.astype(np.int64), starts) if mask.size else np.zeros(0, np.int64)
        self.cum = np.concatenate([[0], np.cumsum(counts)])
        self.size = int(self.cum[-1])

    def indices(self, lo: int, n: int) -> np.ndarray:
        """Station indices of the included positions ``lo .. lo + n - 1`` (in station order)."""
        first = int(np.searchsorted(self.cum, lo, side="right")) - 1
        last = int(np.searchsorted(self.cum, lo + n - 1, side="right")) - 1
        idx = np.flatnonzero(self.mask[first * self.CHUNK:(last + 1) * self.CHUNK]) + first * self.CHUNK
        skip = lo - int(self.cum[first])
        return idx[skip:skip + n]


def _spike_counts(st: Stations, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """The spike test's numbers of the stations ``idx``: registered, turnout count, ballots, leader votes (int64,
    the counts capped at their totals) and the turnout and leader share."""
    n = st.voters[idx].astype(np.int64)
    t = np.minimum(st.turnout_count[idx], n).astype(np.int64)
    b = st.ballots[idx].astype(np.int64)
    lead = np.minimum(st.leader[idx], b).astype(np.int64)
    return n, t, b, lead, t / np.maximum(n, 1), lead / np.maximum(b, 1)


def _spike_block(st: Stations, idx: np.ndarray, rounds: np.ndarray, s: TableForensicsSettings,
                 full: bool) -> dict:
    """Sums over the stations ``idx`` of the spike test: observed and expected counts at a round share (turnout,
    share, either; and their variances); with ``full`` also per round share and the observed histograms."""
    n, t, b, lead, p_t, p_s = _spike_counts(st, idx)
    m_t = round_bin_masses(n, p_t, rounds, s.spike_window_pp)
    m_s = round_bin_masses(b, p_s, rounds, s.spike_window_pp)
    q_t, q_s = _sum_rounds(m_t), _sum_rounds(m_s)
    q = 1 - (1 - q_t) * (1 - q_s)
    hit_t = near_round(t, n, s.spike_step_pp, s.spike_window_pp)
    hit_s = near_round(lead, b, s.spike_step_pp, s.spike_window_pp)
    hit = hit_t | hit_s
    out = {"hit": int(hit.sum()), "q": q.sum(), "q_var": np.sum(q * (1 - q))}
    if not full:
        return out
    out.update(hit_t=int(hit_t.sum()), q_t=q_t.sum(), q_t_var=np.sum(q_t * (1 - q_t)), hit_s=int(hit_s.sum()),
               q_s=q_s.sum(), q_s_var=np.sum(q_s * (1 - q_s)))
    for i, r in enumerate(rounds):
        out[f"at_t{i}"] = int((hit_t & (np.abs(100 * p_t - r) < s.spike_window_pp + 1e-9)).sum())
        out[f"at_s{i}"] = int((hit_s & (np.abs(100 * p_s - r) < s.spike_window_pp + 1e-9)).sum())
        out[f"e_t{i}"] = m_t[i].sum()
        out[f"e_s{i}"] = m_s[i].sum()
    for key, count, total in (("turnout", t, n), ("share", lead, b)):
        out[f"hist_{key}"] = np.bincount(np.rint(1000 * count / total).astype(np.int64), minlength=1001)[:1001]
    return out


def spike_test(st: Stations, s: TableForensicsSettings) -> dict:
    """The spike test at round shares (module docstring): national (turnout, share and either), per round share,
    per scope of each level, and the 0.1-pp histograms (observed and resampled) for the plot.

    Computed in blocks of at most :data:`SPIKE_BLOCK` stations (no per-station array but the inclusion mask),
    with the same figures as on all stations at once (sums in NumPy's pairwise order, resampling draws in order).
    """
    include = (st.ballots > 0) & (st.voters >= s.spike_min_total)
    rounds = round_values(s.spike_step_pp)
    kept = _Included(include)
    size = kept.size

    def national_leaf(lo: int, n: int) -> dict:
        return _spike_block(st, kept.indices(lo, n), rounds, s, full=True)

    if size:
        sums = tree_add(pairwise_blocks(size, SPIKE_BLOCK)[0], national_leaf)
    else:
        sums = _spike_block(st, np.zeros(0, np.int64), rounds, s, full=True)
    national = _expectation_stats("all", sums["hit"], size, float(sums["q"]), float(sums["q_var"]), size)
    parts = {"turnout": _expectation_stats("turnout", sums["hit_t"], size, float(sums["q_t"]), float(sums["q_t_var"]),
                                           size),
             "share": _expectation_stats("leader share", sums["hit_s"], size, float(sums["q_s"]),
                                         float(sums["q_s_var"]), size)}
    per_round = [{"percent": float(r), "turnout_observed": sums[f"at_t{i}"],
                  "turnout_expected": float(sums[f"e_t{i}"]), "share_observed": sums[f"at_s{i}"],
                  "share_expected": float(sums[f"e_s{i}"])} for i, r in enumerate(rounds)]
    scopes = {}
    for level, (codes, names) in st.scopes.items():
        rows = []
        for j, name in enumerate(names):
            idx = np.flatnonzero(include & (codes == j))
            tree = pairwise_blocks(idx.size, SPIKE_BLOCK)
            if tree:
                got = tree_add(tree[0], lambda lo, n, idx=idx: _spike_block(st, idx[lo:lo + n], rounds, s, False))
                rows.append(_expectation_stats(name, got["hit"], int(idx.size), float(got["q"]),
                                               float(got["q_var"]), int(idx.size)))
            else:
                rows.append(_expectation_stats(name, 0, 0, 0.0, 0.0, 0))
        scopes[level] = rows
    rng = np.random.default_rng(s.seed + 1)
    bins = np.arange(0, 1001)
    hist = {}
    for key in ("turnout", "share"):
        resampled = np.zeros(1001)
        for _ in range(s.spike_plot_draws):
            for lo in range(0, size, SPIKE_BLOCK):
                n, t, b, lead, p_t, p_s = _spike_counts(st, kept.indices(lo, min(SPIKE_BLOCK, size - lo)))
                total, prob = (n, p_t) if key == "turnout" else (b, p_s)
                draw = rng.binomial(total, prob)
                resampled += np.bincount(np.rint(1000 * draw / total).astype(np.int64), minlength=1001)[:1001]
        hist[key] = {"observed": sums[f"hist_{key}"].astype(int).tolist(),
                     "resampled": (resampled / s.spike_plot_draws).round(2).tolist()}
    return {"test": "spikes", "step_pp": s.spike_step_pp, "window_pp": s.spike_window_pp,
            "round_values": rounds.tolist(), "included": size, "excluded": int((~include).sum()),
            "national": national, "parts": parts, "per_round": per_round, "scopes": scopes,
            "histogram": {"bin_pp": 0.1, "first_pp": float(bins[0]) / 10, **hist}}


#: The digit tests run on the choices' votes, with the effect each is judged by (see :func:`digit_results`).
DIGIT_TESTS = ("last_digit_uniform", "last_digit_mean", "last_digit_0_or_5", "second_digit_2bl",
               "second_digit_2bl_mean", "pair_repeated_digits", "pair_adjacent_digits")
#: Digit tests reported but never alarming (2BL does not hold for honest counts of a few hundred votes).
DIGIT_REPORT_ONLY = ("second_digit_2bl", "second_digit_2bl_mean")


def digit_min_effect(test: str, s: TableForensicsSettings) -> float:
    """The minimum |effect| of a digit test (chi-square: Cramer's V; mean: digit shift; share: share shift)."""
    if test.endswith("_mean"):
        return s.digit_min_mean_shift
    if test in ("last_digit_uniform", "second_digit_2bl"):
        return s.digit_min_cramers_v
    return s.digit_min_share_shift


def _digit_row(scope: str, stations: int, result) -> dict:
    return {"scope": scope, "stations": stations, "digits": result.n, "statistic": result.statistic,
            "effect": math.nan if result.effect_size is None else float(result.effect_size),
            "effect_name": result.effect, "observed": result.observed, "expected": result.expected,
            "p": math.nan if result.p_value is None else float(result.p_value), "skipped": result.skipped}


def decade_ratios(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per decade of a choice's counts (``values`` >= 0; decade ``k``: ``10 k .. 10 k + 9``), and for each
    decade up to the largest count the contrast of its neighbours, ``(N[k+1] - N[k-1]) / (N[k+1] + N[k-1])``,
    which fixes the slope of the smooth reference within the decade
    (:func:`pipeline.audit.forensics.smooth_last_digit_counts`)."""
    v = values[values >= 0]
    last = int(v.max()) // 10 if v.size else -1
    per_decade = np.bincount(v // 10, minlength=last + 2).astype(float)
    below, above = np.concatenate([[0.0], per_decade[:last]]), per_decade[1:last + 2]
    return per_decade, (above - below) / np.maximum(above + below, 1.0)


def scope_reference(per_field: list[np.ndarray], national_ratios: list[np.ndarray], minimum: int,
                    prior: float) -> np.ndarray:
    """Expected last-digit probabilities of a scope's counts >= ``minimum`` if their distribution is smooth: each
    decade's counts spread along an exponential curve as in the smooth reference, its neighbours' contrast taken
    from the scope's own counts with ``prior`` pseudo-counts of the national contrast added
    (``(N[k+1] - N[k-1] + prior * r_national) / (N[k+1] + N[k-1] + prior)``). ``prior`` 0 gives the scope's own
    smooth reference; a large one, the national curves. Uniform when the scope has no such count."""
    from pipeline.audit.forensics import DIGITS, MAX_DECADE_RATIO

    total = np.zeros(10)
    for values, national in zip(per_field, national_ratios, strict=True):
        v = values[values >= 0]
        if not (v >= minimum).any():
            continue
        decades = national.size
        per_decade = np.bincount(v // 10, minlength=decades + 1).astype(float)
        below, above = np.concatenate([[0.0], per_decade[:decades - 1]]), per_decade[1:decades + 1]
        ratio = (above - below + prior * national) / np.maximum(above + below + prior, 1.0)
        ratio = np.clip(ratio, -MAX_DECADE_RATIO, MAX_DECADE_RATIO)
        curves = np.exp(np.arctanh(ratio)[:, None] / 10.0 * (DIGITS - 4.5)[None, :])
        first = minimum // 10
        curves[:first] = 0.0
        curves[first, :minimum - 10 * first] = 0.0
        curves /= np.maximum(curves.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        counted = np.bincount(v[v >= minimum] // 10, minlength=decades)[:decades]
        total += counted @ curves
    return total / total.sum() if total.sum() > 0 else np.full(10, 0.1)


def last_digit_tests(scope: str, per_field: list[np.ndarray], reference: np.ndarray, cfg) -> list:
    """The three last-digit tests of :func:`pipeline.audit.forensics.digit_tests` (uniformity, mean, share of 0
    and 5) against a given ``reference`` (probabilities of the ten digits)."""
    from pipeline.audit.forensics import ROUND_DIGITS, digit_chisquare, digit_mean, last_digits, share_test

    counts = np.concatenate(per_field) if per_field else np.array([], np.int64)
    last = last_digits(counts, cfg.min_last_digit_value)
    n, r = cfg.min_observations, cfg.digit_reference
    round_share = float(reference[list(ROUND_DIGITS)].sum())
    return [digit_chisquare(scope, "last_digit_uniform", last, reference, n, r),
            digit_mean(scope, "last_digit_mean", last, reference, n, r),
            share_test(scope, "last_digit_0_or_5", np.isin(last, ROUND_DIGITS), round_share, n, r)]


def chisquare_mc_p(observed: np.ndarray, probabilities: np.ndarray, draws: int, rng: np.random.Generator) -> float:
    """Monte-Carlo p-value of Pearson's chi-square statistic of the cell counts ``observed`` against
    ``probabilities``: the share of ``draws`` multinomial samples of the same size whose statistic is at least the
    observed one, as ``(1 + k) / (1 + draws)``, which is a valid p-value whatever the number of draws (exact where
    the chi-square law is only asymptotic). Cells of probability 0 are left out of the statistic."""
    observed = np.asarray(observed, dtype=float)
    n = int(observed.sum())
    expected = probabilities * n
    cells = expected > 0
    statistic = float(np.sum((observed[cells] - expected[cells]) ** 2 / expected[cells]))
    samples = rng.multinomial(n, probabilities / probabilities.sum(), size=draws)[:, cells]
    simulated = np.sum((samples - expected[cells]) ** 2 / expected[cells], axis=1)
    k = int(np.count_nonzero(simulated >= statistic - TIE_TOLERANCE * max(1.0, statistic)))
    return (1 + k) / (1 + draws)


def digit_results(st: Stations, s: TableForensicsSettings) -> list[dict]:
    """Each digit test on the choices' votes, nationally and per scope (empty without ``st.votes``).

    In a scope the last-digit tests take :func:`scope_reference` (the scope's decade curves steadied by the
    national ones, ``digit_scope_prior``); the uniformity test's p-value is a Monte-Carlo one where the asymptotic
    one is below ``alpha`` (``digit_mc_draws``).
    """
    if st.votes is None or st.votes.size == 0:
        return []
    from types import SimpleNamespace

    from pipeline.audit.forensics import UNIFORM, digit_tests

    cfg = SimpleNamespace(min_last_digit_value=s.digit_min_last_value, min_second_digit_value=10,
                          digit_reference=s.digit_reference, min_observations=s.digit_min_observations)
    votes = np.asarray(st.votes)
    if not np.issubdtype(votes.dtype, np.integer):
        votes = votes.astype(np.int64)
    smooth = s.digit_reference == "smooth"
    columns = [votes[:, j] if votes.min() >= 0 else votes[:, j][votes[:, j] >= 0] for j in range(votes.shape[1])]
    ratios = [decade_ratios(c)[1] for c in columns] if smooth else []

    def reference(per_field: list[np.ndarray], prior: float) -> np.ndarray:
        return scope_reference(per_field, ratios, s.digit_min_last_value, prior) if smooth else UNIFORM

    def run(scope: str, idx: np.ndarray) -> tuple[list, np.ndarray]:
        """A scope's tests (the last-digit ones against :func:`scope_reference`) and that reference."""
        block = votes[idx]
        per_field = [block[:, j][block[:, j] >= 0] for j in range(block.shape[1])]
        ref = reference(per_field, s.digit_scope_prior)
        last = {t.test: t for t in last_digit_tests(scope, per_field, ref, cfg)}
        return [last.get(t.test, t) for t in digit_tests(scope, per_field, cfg)], ref

    rng = np.random.default_rng(s.seed + DIGIT_SEED_OFFSET)
    national = digit_tests("all", columns, cfg)
    out = {t.test: {"test": f"digit_{t.test}", "kind": "digit", "weak_evidence": True,
                    "report_only": t.test in DIGIT_REPORT_ONLY, "min_effect": digit_min_effect(t.test, s),
                    "national": _digit_row("all", len(st), t), "scopes": {}} for t in national}
    _monte_carlo_p(out["last_digit_uniform"]["national"], reference(columns, 0.0), s, rng)
    for level, (codes, names) in st.scopes.items():
        order, starts = _scope_sort(codes, len(names))
        ends = np.append(starts[1:], codes.size)
        for j, name in enumerate(names):
            idx = order[starts[j]:ends[j]]
            tests, scope_ref = run(name, idx)
            for t in tests:
                row = _digit_row(name, int(idx.size), t)
                if t.test == "last_digit_uniform":
                    _monte_carlo_p(row, scope_ref, s, rng)
                out[t.test]["scopes"].setdefault(level, []).append(row)
    return list(out.values())


def _monte_carlo_p(row: dict, reference: np.ndarray, s: TableForensicsSettings, rng: np.random.Generator) -> None:
    """Give a uniformity row whose asymptotic p-value is below ``alpha`` its Monte-Carlo p-value
    (:func:`chisquare_mc_p`); ``p_method`` says which one ``p`` is."""
    row["p_method"] = "chi-square"
    if s.digit_mc_draws == 0 or row["skipped"] or not row["p"] < s.alpha:
        return
    row["p_asymptotic"] = row["p"]
    row["p"] = chisquare_mc_p(np.array(row["observed"]), reference, s.digit_mc_draws, rng)
    row["p_method"] = f"Monte Carlo ({s.digit_mc_draws} multinomial draws)"


def _alarm(row: dict, min_effect: float, alpha: float, min_stations: int, two_sided: bool = False) -> None:
    """Set ``alarm`` (and ``tested``) on a result row whose ``p_holm`` is set."""
    tested = row["stations"] >= min_stations and not math.isnan(row.get("p_holm", math.nan)) and \
        not math.isnan(row["effect"])
    effect = abs(row["effect"]) if two_sided and tested else row["effect"]
    row["tested"] = bool(tested)
    row["alarm"] = bool(tested and row["p_holm"] < alpha and effect >= min_effect)


def apply_families(results: list[dict], s: TableForensicsSettings) -> None:
    """Holm-adjust in place: the national rows of all tests as one family (the weak-evidence digit tests as a
    family of their own), and each test's scopes at each level as one family; then set each row's alarm
    (adjusted p < alpha and effect >= the test's minimum effect; ``|effect|`` for the two-sided digit tests)."""
    min_effect = {"integer_percentages": s.integer_min_effect, "klimek_corner": s.corner_min_effect,
                  "full_turnout": s.full_turnout_min_effect, "spikes": s.spike_min_effect,
                  "stuffing_tail": s.shift_min_effect, "switching_tail": s.shift_min_effect}
    for r in results:
        if r.get("kind") == "digit":
            min_effect[r["test"]] = r["min_effect"]
        else:
            r["report_only"] = ((r["test"] == "full_turnout" and not s.full_turnout_alarm)
                                or (r["test"] in SHIFT_TESTS and not s.shift_alarm))
    for digit in (False, True):
        national = [r["national"] for r in results if not r["report_only"] and (r.get("kind") == "digit") == digit]
        for row, p in zip(national, holm(np.array([r["p"] for r in national])), strict=True):
            row["p_holm"] = float(p)
    for result in results:
        if result["report_only"]:
            for row in [result["national"], *(x for rows in result["scopes"].values() for x in rows)]:
                row.update(p_holm=math.nan, tested=False, alarm=False)
            continue
        two_sided = result.get("kind") == "digit"
        _alarm(result["national"], min_effect[result["test"]], s.alpha, 1, two_sided)
        for rows in result["scopes"].values():
            p = np.array([r["p"] if r["stations"] >= s.min_scope_stations else math.nan for r in rows])
            for row, q in zip(rows, holm(p), strict=True):
                row["p_holm"] = float(q)
                _alarm(row, min_effect[result["test"]], s.alpha, s.min_scope_stations, two_sided)


def run_table_forensics(st: Stations, s: TableForensicsSettings) -> tuple[dict, np.ndarray]:
    """Every test on ``st``; returns the JSON-ready results and each station's 100%-turnout probability."""
    integer = integer_percentages(st, s)
    corner, full, station_p = corner_and_full_turnout(st, s)
    results = [integer, corner, full, spike_test(st, s), *shift_tests(st, s), *digit_results(st, s)]
    apply_families(results, s)
    alarms = {r["test"]: {"national": r["national"]["alarm"],
                          **{lv: sorted((row["scope"] for row in rows if row["alarm"]),
                                        key=lambda name, rows=rows: -next(x["effect"] for x in rows
                                                                          if x["scope"] == name))
                             for lv, rows in r["scopes"].items()}}
              for r in results}
    return {"settings": asdict(s), "tests": {r["test"]: r for r in results}, "alarms": alarms}, station_p


def any_alarm(results: dict) -> dict[str, bool]:
    """For each test, whether it alarmed nationally or in any scope (the bench's alarm-rate unit)."""
    out = {}
    for name, r in results["tests"].items():
        out[name] = bool(r["national"]["alarm"] or any(row["alarm"] for rows in r["scopes"].values()
                                                        for row in rows))
    return out
