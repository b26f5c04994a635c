"""Rules that compare sheets with each other: duplicated stations, copied count vectors, impossible turnout and
outliers within a district (robust z-score on the median and the MAD).

Every field comes from the run's form (:class:`pipeline.audit.schema.FormSchema`): the station key, the vote
fields (candidates, other votes, invalid), the votes cast and registered voters of turnout, and the first forensic
level as the "district" of the outlier check. A check whose fields the form lacks gives no flag."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.stats import median_abs_deviation

from pipeline.audit.flags import Flag
from pipeline.audit.schema import FormSchema
from pipeline.audit.settings import AuditSettings


def station_label(row: pd.Series, key: tuple[str, ...]) -> str:
    """A station's ids (the fields of ``key``), e.g. ``state 9 district 12 section 345 station 2 station type B``."""
    return " ".join(f"{k.replace('_', ' ')} {row[k]}" for k in key)


def _complete(table: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    return table.dropna(subset=list(columns))


def duplicate_station_flags(table: pd.DataFrame, schema: FormSchema) -> list[Flag]:
    """Every sheet whose full station id (the form's ``station_key``) appears on another sheet."""
    key = schema.station_key
    if not key:
        return []
    ids = _complete(table, key)
    dup = ids[ids.duplicated(list(key), keep=False)]
    flags = []
    for _, group in dup.groupby(list(key), sort=False):
        for sid, row in group.iterrows():
            others = sorted(str(o) for o in group.index if o != sid)
            flags.append(Flag(str(sid), key, "duplicate_station", "medium", "suspicious",
                              f"{station_label(row, key)} also appears on sheet(s) {', '.join(others)}",
                              {"station": {k: row[k] for k in key}, "other_sheets": others}))
    return flags


def identical_count_flags(table: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> list[Flag]:
    """Sheets of different stations with exactly the same vote counts (the form's vote fields: candidates, other
    votes, invalid; at least ``min_identical_votes`` votes). Without a station key every sheet counts as its own
    station."""
    parts = list(schema.vote_parts)
    if not parts:
        return []
    votes = _complete(table, parts)
    votes = votes[votes[parts].sum(axis=1) >= s.min_identical_votes]
    same = votes[votes.duplicated(parts, keep=False)]
    flags = []
    for _, group in same.groupby(parts, sort=False):
        stations = (group[list(schema.station_key)].astype("string").fillna("?").agg("-".join, axis=1)
                    if schema.station_key else pd.Series(group.index.astype(str), index=group.index))
        if stations.nunique() < 2:
            continue  # one station scanned twice: the duplicate-station rule reports it
        for sid, row in group.iterrows():
            others = sorted(str(o) for o in group.index if stations[o] != stations[sid])
            counts = ", ".join(f"{schema.display_name(f)} {row[f]}" for f in parts)
            flags.append(Flag(str(sid), tuple(parts), "identical_counts", "medium", "suspicious",
                              f"vote counts ({counts}) are identical to those of other station(s) on sheet(s) "
                              f"{', '.join(others)}", {"counts": {f: row[f] for f in parts},
                                                        "other_sheets": others}))
    return flags


def turnout_flags(table: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> list[Flag]:
    """Sheets whose votes cast reach ``max_turnout`` (100%) of the registered voters or more (none when the form
    has no registered voters)."""
    if schema.registered is None:
        return []
    cast, registered = schema.votes_cast, schema.registered
    high = table[table["turnout"] >= s.max_turnout]
    return [Flag(str(sid), (*cast, registered), "turnout",
                 "high" if row["turnout"] > s.max_turnout else "medium", "suspicious",
                 f"{schema.names(cast)} {_cast_value(row, cast)} for {row[registered]} "
                 f"{schema.display_name(registered)}: turnout {row['turnout']:.0%}",
                 {**{f: row[f] for f in cast}, registered: row[registered], "turnout": row["turnout"]})
            for sid, row in high.iterrows()]


def _cast_value(row: pd.Series, cast: tuple[str, ...]):
    """The votes cast of one row: the one field's value as it is, or the sum of several."""
    return row[cast[0]] if len(cast) == 1 else sum(row[f] for f in cast)


def district_variables(table: pd.DataFrame, schema: FormSchema) -> pd.DataFrame:
    """Per sheet: each candidate's share of the votes cast (``share_<field>``) and the turnout."""
    total = table[schema.votes_cast[0]].astype(float) if len(schema.votes_cast) == 1 else \
        table[list(schema.votes_cast)].astype(float).sum(axis=1, min_count=len(schema.votes_cast))
    total = total.where(total > 0)
    shares = {f"share_{p}": table[p].astype(float) / total for p in schema.candidates}
    return pd.DataFrame({**shares, "turnout": table["turnout"].astype(float)}, index=table.index)


def robust_z(x: pd.Series) -> pd.Series:
    """(x - median) / (1.4826 MAD); all NaN when the MAD is zero (no spread to compare against)."""
    mad = median_abs_deviation(x, scale="normal", nan_policy="omit")
    if not np.isfinite(mad) or mad == 0:
        return pd.Series(np.nan, index=x.index)
    return (x - x.median()) / mad


def district_outlier_flags(table: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> list[Flag]:
    """Sheets whose candidate shares or turnout lie ``outlier_z`` robust SDs from their district's median (the
    district: the form's first forensic level; none without one, or without candidates and votes cast).

    Districts with fewer than ``min_district_sheets`` complete sheets are skipped: a median of a handful of
    stations is no reference. Parties with a district median share below ``min_outlier_share`` are left out: a
    few votes more or less swing their share far beyond its narrow spread. A form without registered voters has
    no turnout, so only the shares are compared.
    """
    if schema.first_level is None or not schema.candidates or not schema.votes_cast:
        return []
    level, key = schema.first_level
    with_turnout = ["turnout"] if schema.registered is not None else []
    ok = _complete(table, list(key) + list(schema.candidates) + list(schema.votes_cast) + with_turnout)
    variables = district_variables(ok, schema)
    if not with_turnout:
        variables = variables.drop(columns="turnout")
    groups = ok.groupby(list(key)).filter(lambda g: len(g) >= s.min_district_sheets).index
    if groups.empty:
        return []
    variables = variables.loc[groups]
    keys = [ok.loc[groups, k] for k in key]
    medians = variables.groupby(keys).transform("median")
    small = medians.lt(s.min_outlier_share) & variables.columns.str.startswith("share_")
    z = variables.groupby(keys).transform(robust_z).mask(small)
    flags = []
    for sid in z.index[(z.abs() >= s.outlier_z).any(axis=1)]:
        hits = z.columns[z.loc[sid].abs() >= s.outlier_z]
        parts = [f"{_variable_name(v, schema)} {variables.at[sid, v]:.2f} vs {level} median "
                 f"{medians.at[sid, v]:.2f} (robust z {z.at[sid, v]:+.1f})" for v in hits]
        fields = [f for v in hits for f in ((v.removeprefix("share_"),) if v != "turnout" else schema.votes_cast)]
        flags.append(Flag(str(sid), tuple(dict.fromkeys(fields)), "district_outlier", "low", "suspicious",
                          "; ".join(parts), {level: {k: ok.at[sid, k] for k in key},
                                              "robust_z": {v: z.at[sid, v] for v in hits},
                                              "value": {v: variables.at[sid, v] for v in hits},
                                              "district_median": {v: medians.at[sid, v] for v in hits}}))
    return flags


def _variable_name(v: str, schema: FormSchema) -> str:
    return "turnout" if v == "turnout" else f"{schema.display_name(v.removeprefix('share_'))} share"


def cross_sheet_flags(table: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> Iterator[Flag]:
    """Every cross-sheet flag of the batch, rule after rule (a caller may write them out as they come)."""
    yield from duplicate_station_flags(table, schema)
    yield from identical_count_flags(table, schema, s)
    yield from turnout_flags(table, schema, s)
    yield from district_outlier_flags(table, schema, s)
