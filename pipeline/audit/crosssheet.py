"""Rules that compare sheets with each other: duplicated stations, copied count vectors, impossible turnout and
outliers within a district (robust z-score on the median and the MAD)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.stats import median_abs_deviation

from pipeline.audit.flags import Flag
from pipeline.audit.schema import DISTRICT_KEY, PARTIES, STATION_KEY, VOTE_PARTS, display_name
from pipeline.audit.settings import AuditSettings


def station_label(row: pd.Series) -> str:
    """A station's ids as printed on the acta, e.g. ``state 9 district 12 section 345 station 2 type B``."""
    return " ".join(f"{k.replace('_', ' ')} {row[k]}" for k in STATION_KEY)


def _complete(table: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    return table.dropna(subset=list(columns))


def duplicate_station_flags(table: pd.DataFrame) -> list[Flag]:
    """Every sheet whose full station id (state, district, section, station, type) appears on another sheet."""
    ids = _complete(table, STATION_KEY)
    dup = ids[ids.duplicated(list(STATION_KEY), keep=False)]
    flags = []
    for _, group in dup.groupby(list(STATION_KEY), sort=False):
        for sid, row in group.iterrows():
            others = sorted(str(o) for o in group.index if o != sid)
            flags.append(Flag(str(sid), STATION_KEY, "duplicate_station", "medium", "suspicious",
                              f"{station_label(row)} also appears on sheet(s) {', '.join(others)}",
                              {"station": {k: row[k] for k in STATION_KEY}, "other_sheets": others}))
    return flags


def identical_count_flags(table: pd.DataFrame, s: AuditSettings) -> list[Flag]:
    """Sheets of different stations with exactly the same vote counts (at least ``min_identical_votes`` votes)."""
    votes = _complete(table, list(VOTE_PARTS))
    votes = votes[votes[list(VOTE_PARTS)].sum(axis=1) >= s.min_identical_votes]
    same = votes[votes.duplicated(list(VOTE_PARTS), keep=False)]
    flags = []
    for _, group in same.groupby(list(VOTE_PARTS), sort=False):
        stations = group[list(STATION_KEY)].astype("string").fillna("?").agg("-".join, axis=1)
        if stations.nunique() < 2:
            continue  # one station scanned twice: the duplicate-station rule reports it
        for sid, row in group.iterrows():
            others = sorted(str(o) for o in group.index if stations[o] != stations[sid])
            counts = ", ".join(f"{display_name(f)} {row[f]}" for f in VOTE_PARTS)
            flags.append(Flag(str(sid), VOTE_PARTS, "identical_counts", "medium", "suspicious",
                              f"vote counts ({counts}) are identical to those of other station(s) on sheet(s) "
                              f"{', '.join(others)}", {"counts": {f: row[f] for f in VOTE_PARTS},
                                                        "other_sheets": others}))
    return flags


def turnout_flags(table: pd.DataFrame, s: AuditSettings) -> list[Flag]:
    """Sheets whose total votes reach ``max_turnout`` (100%) of the registered voters or more."""
    high = table[table["turnout"] >= s.max_turnout]
    return [Flag(str(sid), ("total_votes", "registered_voters"), "turnout",
                 "high" if row["turnout"] > s.max_turnout else "medium", "suspicious",
                 f"total votes {row['total_votes']} for {row['registered_voters']} registered voters: turnout "
                 f"{row['turnout']:.0%}", {"total_votes": row["total_votes"],
                                            "registered_voters": row["registered_voters"], "turnout": row["turnout"]})
            for sid, row in high.iterrows()]


def district_variables(table: pd.DataFrame) -> pd.DataFrame:
    """Per sheet: each party's share of the total votes (``share_<party>``) and the turnout."""
    total = table["total_votes"].astype(float)
    total = total.where(total > 0)
    shares = {f"share_{p}": table[p].astype(float) / total for p in PARTIES}
    return pd.DataFrame({**shares, "turnout": table["turnout"].astype(float)}, index=table.index)


def robust_z(x: pd.Series) -> pd.Series:
    """(x - median) / (1.4826 MAD); all NaN when the MAD is zero (no spread to compare against)."""
    mad = median_abs_deviation(x, scale="normal", nan_policy="omit")
    if not np.isfinite(mad) or mad == 0:
        return pd.Series(np.nan, index=x.index)
    return (x - x.median()) / mad


def district_outlier_flags(table: pd.DataFrame, s: AuditSettings) -> list[Flag]:
    """Sheets whose party shares or turnout lie ``outlier_z`` robust SDs from their district's median.

    Districts with fewer than ``min_district_sheets`` complete sheets are skipped: a median of a handful of
    stations is no reference. Parties with a district median share below ``min_outlier_share`` are left out: a
    few votes more or less swing their share far beyond its narrow spread.
    """
    ok = _complete(table, list(DISTRICT_KEY) + list(PARTIES) + ["total_votes", "turnout"])
    variables = district_variables(ok)
    groups = ok.groupby(list(DISTRICT_KEY)).filter(lambda g: len(g) >= s.min_district_sheets).index
    if groups.empty:
        return []
    variables = variables.loc[groups]
    keys = [ok.loc[groups, k] for k in DISTRICT_KEY]
    medians = variables.groupby(keys).transform("median")
    small = medians.lt(s.min_outlier_share) & variables.columns.str.startswith("share_")
    z = variables.groupby(keys).transform(robust_z).mask(small)
    flags = []
    for sid in z.index[(z.abs() >= s.outlier_z).any(axis=1)]:
        hits = z.columns[z.loc[sid].abs() >= s.outlier_z]
        parts = [f"{_variable_name(v)} {variables.at[sid, v]:.2f} vs district median {medians.at[sid, v]:.2f} "
                 f"(robust z {z.at[sid, v]:+.1f})" for v in hits]
        fields = tuple(v.removeprefix("share_") if v != "turnout" else "total_votes" for v in hits)
        flags.append(Flag(str(sid), tuple(dict.fromkeys(fields)), "district_outlier", "low", "suspicious",
                          "; ".join(parts), {"district": {k: ok.at[sid, k] for k in DISTRICT_KEY},
                                              "robust_z": {v: z.at[sid, v] for v in hits},
                                              "value": {v: variables.at[sid, v] for v in hits},
                                              "district_median": {v: medians.at[sid, v] for v in hits}}))
    return flags


def _variable_name(v: str) -> str:
    return "turnout" if v == "turnout" else f"{display_name(v.removeprefix('share_'))} share"


def cross_sheet_flags(table: pd.DataFrame, s: AuditSettings) -> Iterator[Flag]:
    """Every cross-sheet flag of the batch, rule after rule (a caller may write them out as they come)."""
    yield from duplicate_station_flags(table)
    yield from identical_count_flags(table, s)
    yield from turnout_flags(table, s)
    yield from district_outlier_flags(table, s)
