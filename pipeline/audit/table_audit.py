"""``python -m pipeline audit-table``: audit a published per-station results table with its mapping file.

The table (CSV, also ``.zip``/``.gz``, or Parquet) is read in chunks of ``chunk_rows`` rows (pandas ``chunksize``,
pyarrow ``iter_batches``) and only the columns the mapping names. Each row is checked (ids present and unique,
every count a whole number >= 0, exclusions), the mapping's control relations are evaluated
(:mod:`pipeline.audit.rules`) and the chunk's rows are written out at once; what stays in memory is, per station
kept for the forensics (:mod:`pipeline.audit.table_forensics`), a handful of numbers in typed NumPy arrays (the
turnout's numerator and denominator, the share's base, the choices' votes, scope codes) and its id as a hash
(:mod:`pipeline.audit.table_stream`). A second pass over the written rows adds what needs every station (the
leader's share and the 100%-turnout probabilities), so memory stays flat as the table grows.

Outputs in ``--out``: ``stations.parquet`` and ``stations.csv`` (one row per station: status, reason, turnout,
leader share, each rule's gap), ``flags.csv`` (one row per finding, stations and scopes), ``excluded.csv`` (every
row left out of the forensics, with its reason) and ``forensics.json``. The CSV files are written for people:
cells a spreadsheet would run as formulas are neutralised.

Wording: a typed table has no reading to doubt, so a failed identity says "the published numbers do not add up
(by N)"; the misread-digit search of the scanned-sheet audit does not apply here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.atomic import write_text_atomic
from pipeline.audit.rules import evaluate, expression_values
from pipeline.audit.table_forensics import Stations, TableForensicsSettings, run_table_forensics
from pipeline.audit.table_mapping import TableMapping, load_mapping, resolve_mapping
from pipeline.audit.table_stream import (
    RowCursor,
    ScopeCoder,
    SeenIds,
    compact_counts,
    concat_arrays,
    merge_counts,
    ordered_counts,
)
from pipeline.engine.stream import CsvSink, ParquetSink
from pipeline.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

#: Row statuses, from worst to best; the first four keep a row out of the forensics.
STATUS_BAD_ID = "bad_id"
STATUS_BAD_VALUE = "bad_value"
STATUS_DUPLICATE = "duplicate_id"
STATUS_EXCLUDED = "excluded"
STATUS_INCONSISTENT = "inconsistent"
STATUS_WARNING = "warning"
STATUS_OK = "ok"
LEFT_OUT = (STATUS_BAD_ID, STATUS_BAD_VALUE, STATUS_DUPLICATE, STATUS_EXCLUDED)
#: How a station id's levels are joined into one text id.
ID_JOIN = " / "
#: File name endings read as Parquet; everything else is read as CSV (pandas infers .gz/.bz2/.xz; a .zip archive
#: is opened here, see :func:`open_csv`).
PARQUET_SUFFIXES = (".parquet", ".pq")
ZIP_SUFFIX = ".zip"
#: How many bad cells a row's reason lists before "...".
MAX_REASONS = 3
#: Columns of ``flags.csv``, in order.
FLAG_COLUMNS = ["row", "station", "scope", "rule", "severity", "verdict", "value", "reason"]


@dataclass(frozen=True)
class TableAuditSettings:
    """Settings of ``audit-table``: rows per chunk, the gap from which a failed identity is ``high`` severity,
    the gap (votes) still accepted by every rule, and the forensics' settings."""

    chunk_rows: int = 20_000
    major_discrepancy: int = 10
    rule_tolerance: int = 0
    forensics: TableForensicsSettings = field(default_factory=TableForensicsSettings)

    def __post_init__(self) -> None:
        for name, low in (("chunk_rows", 1), ("major_discrepancy", 1), ("rule_tolerance", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"audit-table: {name} must be a whole number >= {low}, not {value!r}")


@dataclass(frozen=True)
class TableAuditResult:
    """What ``audit-table`` did: station counts by status, flags written, and the forensics' alarms."""

    out: Path
    rows: int
    statuses: dict[str, int]
    n_flags: int
    alarms: dict


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is read as Parquet (by its name)."""
    return path.name.lower().endswith(PARQUET_SUFFIXES)


@contextmanager
def open_csv(path: Path) -> Iterator[Path | IO[bytes]]:
    """What ``pandas.read_csv`` should read for the CSV at ``path``: a ``.zip`` archive's one member as a stream
    (pandas 3 reads a zip member whole into memory, 41 MB for the 2016 table, growing with the table), any other
    file by its path (pandas streams plain, ``.gz``, ``.bz2`` and ``.xz`` files).

    Raises:
        InputFileError: the archive is unreadable or does not hold exactly one file.
    """
    if not path.name.lower().endswith(ZIP_SUFFIX):
        yield path
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputFileError(f"{path}: not a readable zip archive ({exc})") from exc
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise InputFileError(f"{path}: a zip archive must hold exactly one CSV file; it holds {len(names)}"
                                 + (f" ({', '.join(names[:5])})" if names else ""))
        with archive.open(names[0]) as member:
            yield member


def read_header(path: Path) -> list[str]:
    """The table's column names, reading no row.

    Raises:
        InputFileError: the file is missing, empty, or not a readable table.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: not found")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty (expected a header row and one row per station)")
    try:
        if is_parquet(path):
            return [str(c) for c in pq.read_schema(path).names]
        with open_csv(path) as source:
            return [str(c) for c in pd.read_csv(source, nrows=0).columns]
    except InputFileError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise InputFileError(f"{path}: no header row (the file holds no table)") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad input file, said in one line
        raise InputFileError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from exc


def iter_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The table's ``columns`` in chunks of ``chunk_rows`` rows, every cell as text (CSV) or as stored (Parquet).

    Raises:
        InputFileError: the file cannot be parsed part-way through.
    """
    try:
        if is_parquet(path):
            for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=chunk_rows):
                yield batch.to_pandas()
            return
        with open_csv(path) as source:
            yield from pd.read_csv(source, usecols=columns, dtype=str, chunksize=chunk_rows, keep_default_na=False,
                                   na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from exc


def parse_counts(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[pd.DataFrame, pd.Series]:
    """The count ``columns`` as numbers (NaN where bad) and, per row, why its counts are bad ("" when fine).

    A count must be a whole number >= 0; an empty cell, text, a fraction or a negative number is named with its
    column and value.
    """
    numbers = {}
    problems = [[] for _ in range(len(frame))]
    for col in columns:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        empty = raw.isna().to_numpy()
        text = values.isna().to_numpy() & ~empty
        with np.errstate(invalid="ignore"):
            fraction = ~np.isnan(values.to_numpy()) & (values.to_numpy() != np.floor(values.to_numpy()))
            negative = values.to_numpy() < 0
        for mask, what in ((empty, "empty"), (text, "text where a count is due"), (fraction, "not a whole number"),
                           (negative, "negative count")):
            for i in np.flatnonzero(mask):
                shown = "" if what == "empty" else f" {str(raw.iloc[i])[:40]!r}"
                problems[i].append(f"column {col!r}: {what}{shown}")
        bad = empty | text | fraction | negative
        numbers[col] = values.where(~bad)
    reasons = ["; ".join(p[:MAX_REASONS]) + ("; ..." if len(p) > MAX_REASONS else "") for p in problems]
    return pd.DataFrame(numbers, index=frame.index), pd.Series(reasons, index=frame.index, dtype=object)


def station_ids(frame: pd.DataFrame, levels: tuple[str, ...]) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The id levels as text, the joined station id, and which rows lack an id level."""
    ids = pd.DataFrame({lv: frame[lv].astype("string").str.strip() for lv in levels}, index=frame.index)
    missing = ids.isna().any(axis=1).to_numpy() | (ids == "").any(axis=1).to_numpy()
    text = ids.fillna("").astype(str)
    joined = text[levels[0]].str.cat([text[lv] for lv in levels[1:]], sep=ID_JOIN) if len(levels) > 1 \
        else text[levels[0]]
    return text, joined.astype(object), missing


def exclusion_reason(ids: pd.DataFrame, registered: np.ndarray, mapping: TableMapping) -> pd.Series:
    """Why each row is excluded by the mapping ("" when it is not): an id pattern, or too few registered."""
    reason = pd.Series("", index=ids.index, dtype=object)
    for rule in mapping.id_exclusions:
        hit = ids[rule.level].str.contains(rule.pattern, regex=True, na=False).to_numpy() & (reason == "").to_numpy()
        reason[hit] = rule.reason
    few = (registered < mapping.min_registered) & (reason == "").to_numpy()
    reason[few] = f"fewer than {mapping.min_registered} registered voters"
    return reason


def failure_reason(rule_text: str, op: str, gap: float, soft: bool) -> str:
    """The plain-language reason of a failed rule on a typed table (never OCR wording)."""
    by = int(round(abs(gap)))
    if op == "==":
        return (f"the published numbers do not add up (by {by}): {rule_text} "
                f"(left side minus right side = {int(round(gap))})")
    kind = "a soft bound" if soft else "a bound"
    return f"the published numbers break {kind} (by {by}): {rule_text}"


@dataclass(frozen=True)
class ChunkAudit:
    """One chunk's audit. ``stations``: its station rows, without the leader's share and the 100%-turnout
    probability (both need every station); ``flags``: its failed rules, sorted by row and rule; ``kept``: which
    rows go to the forensics; ``voters``, ``turnout_count``, ``ballots`` (int64) and ``votes`` (kept rows x
    choices, :func:`compact_counts`): the kept rows' numbers."""

    stations: pd.DataFrame
    flags: pd.DataFrame
    kept: np.ndarray
    voters: np.ndarray
    turnout_count: np.ndarray
    ballots: np.ndarray
    votes: np.ndarray


def duplicate_reasons(joined: pd.Series, earlier: np.ndarray, rows: np.ndarray) -> list[str]:
    """The reason of each repeated station id (``earlier``: the row where it was first seen)."""
    return [f"station id {joined.iat[i]!r} already seen at row {earlier[i]}" for i in rows]


def audit_chunk(chunk: pd.DataFrame, mapping: TableMapping, s: TableAuditSettings, seen: SeenIds,
                first_row: int) -> ChunkAudit:
    """Check one chunk's rows (ids, counts, repeated ids against ``seen``, exclusions) and evaluate the rules.
    ``first_row``: the table row number (from 1) of the chunk's first row. Updates ``seen``."""
    chunk = chunk.reset_index(drop=True)
    row_numbers = np.arange(first_row, first_row + len(chunk), dtype=np.int64)
    ids, joined, missing_id = station_ids(chunk, mapping.id_levels)
    counts, bad = parse_counts(chunk, mapping.count_columns)
    status = np.full(len(chunk), STATUS_OK, dtype=object)
    reason = np.full(len(chunk), "", dtype=object)
    bad_value = (bad != "").to_numpy()
    status[bad_value], reason[bad_value] = STATUS_BAD_VALUE, bad[bad_value]
    status[missing_id] = STATUS_BAD_ID
    reason[missing_id] = "a station id level is empty"
    earlier = seen.first_rows(joined.to_numpy(dtype=object), row_numbers, ~missing_id)
    repeated = np.flatnonzero((earlier > 0) & (status == STATUS_OK))
    status[repeated] = STATUS_DUPLICATE
    reason[repeated] = duplicate_reasons(joined, earlier, repeated)
    groups = mapping.groups
    registered = counts[list(mapping.roles["registered"])].sum(axis=1, min_count=1).to_numpy()
    excl = exclusion_reason(ids, np.nan_to_num(registered, nan=np.inf), mapping).to_numpy()
    take = (status == STATUS_OK) & (excl != "")
    status[take], reason[take] = STATUS_EXCLUDED, excl[take]
    station = pd.DataFrame({"row": row_numbers, "station": joined.to_numpy()})
    for lv in mapping.id_levels:
        station[lv] = ids[lv].to_numpy()
    flag_rows = []
    checked = status == STATUS_OK
    for name, rule in zip(mapping.rule_names, mapping.rules, strict=True):
        result = evaluate(rule, counts, groups, s.rule_tolerance)
        station[f"gap_{name}"] = result.gap
        failed = result.failed & checked
        for i in np.flatnonzero(failed):
            gap = float(result.gap[i])
            severity = "low" if rule.soft else ("high" if abs(gap) >= s.major_discrepancy else "medium")
            flag_rows.append({"row": first_row + i, "station": joined.iat[i], "scope": "", "rule": name,
                              "severity": severity, "verdict": STATUS_WARNING if rule.soft else STATUS_INCONSISTENT,
                              "value": gap, "reason": failure_reason(rule.title, rule.op, gap, rule.soft)})
        hard = failed & (not rule.soft)
        soft = failed & rule.soft
        status[hard] = STATUS_INCONSISTENT
        warn = soft & (status == STATUS_OK)
        status[warn] = STATUS_WARNING
    by_row: dict[int, list[str]] = {}
    for f in flag_rows:
        by_row.setdefault(f["row"] - first_row, []).append(f["reason"])
    for i, mine in by_row.items():
        if status[i] in (STATUS_INCONSISTENT, STATUS_WARNING):
            reason[i] = "; ".join(mine[:MAX_REASONS])
    numerator = expression_values(mapping.turnout_numerator, counts, groups)
    denominator = expression_values(mapping.turnout_denominator, counts, groups)
    base = expression_values(mapping.share_base, counts, groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        station["turnout"] = np.where(denominator > 0, numerator / denominator, np.nan)
    station["registered"] = pd.array(np.where(np.isnan(registered), None, registered), dtype="Int64")
    station["ballots"] = pd.array(np.where(np.isnan(base), None, base), dtype="Int64")
    station["status"] = status
    station["reason"] = reason
    flags = pd.DataFrame(flag_rows, columns=FLAG_COLUMNS)
    flags = flags.sort_values(["row", "rule"], kind="stable").reset_index(drop=True)
    kept = ~np.isin(status, LEFT_OUT)
    votes = counts[list(mapping.choices)].to_numpy(dtype=np.float64)[kept]
    return ChunkAudit(stations=station, flags=flags, kept=kept, voters=denominator[kept].astype(np.int64),
                      turnout_count=numerator[kept].astype(np.int64), ballots=base[kept].astype(np.int64),
                      votes=compact_counts(votes))


@dataclass
class _Collected:
    """What the chunk loop keeps in memory: for each station kept for the forensics a handful of numbers (typed
    NumPy arrays: its row, the turnout's denominator and numerator, the share's base, every choice's votes, its
    scope codes), the station ids seen (hashed, :class:`SeenIds`) and running counts. Every row's text goes to the
    output files as its chunk is done."""

    scopes: ScopeCoder
    seen: SeenIds = field(default_factory=SeenIds)
    kept_rows: list[np.ndarray] = field(default_factory=list)
    voters: list[np.ndarray] = field(default_factory=list)
    turnout_count: list[np.ndarray] = field(default_factory=list)
    ballots: list[np.ndarray] = field(default_factory=list)
    votes: list[np.ndarray] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    left_out_reasons: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    left_out: int = 0

    def add(self, part: ChunkAudit, levels: tuple[str, ...]) -> None:
        """Keep ``part``'s numbers and counts (its text is written elsewhere)."""
        self.rows += len(part.stations)
        merge_counts(self.statuses, part.stations["status"])
        left = ~part.kept
        self.left_out += int(left.sum())
        merge_counts(self.left_out_reasons, left_out_keys(part.stations[left]))
        self.kept_rows.append(part.stations["row"].to_numpy(np.int64)[part.kept])
        self.scopes.add(part.stations.loc[part.kept, list(levels)])
        for name in ("voters", "turnout_count", "ballots", "votes"):
            getattr(self, name).append(getattr(part, name))

    def take(self, name: str, empty_shape: tuple[int, ...], dtype) -> np.ndarray:
        """The chunks' ``name`` arrays joined into one, the chunks' own arrays let go at once (so that no two
        copies of every station's numbers are held together)."""
        parts = getattr(self, name)
        joined = concat_arrays(parts, empty_shape, dtype)
        parts.clear()
        return joined


def left_out_keys(left_out: pd.DataFrame) -> np.ndarray:
    """What excluded rows are counted by: the exclusion's reason, else the status (each bad value's text
    differs)."""
    return np.where(left_out["status"] == STATUS_EXCLUDED, left_out["reason"], left_out["status"])


def _leader(mapping: TableMapping, votes: np.ndarray) -> str:
    """The leader's column: the mapping's, else the choice with the most votes over the stations kept."""
    if mapping.leader is not None:
        return mapping.leader
    return mapping.choices[int(np.argmax(votes.sum(axis=0)))] if votes.size else mapping.choices[0]


def scope_flags(results: dict) -> pd.DataFrame:
    """One flag per scope alarm of the forensics (national scope ``all``), sorted by rule as ``flags.csv`` is."""
    rows = []
    for name, test in results["tests"].items():
        scoped = [("", test["national"])] + [(lv, r) for lv, rs in test["scopes"].items() for r in rs]
        for level, r in scoped:
            if not r.get("alarm"):
                continue
            if test.get("kind") == "digit":
                reason = (f"weak evidence: {r['effect_name']} {r['effect']:+.3f} over {r['digits']} digits "
                          f"(minimum {test['min_effect']}; Holm p = {r['p_holm']:.2g}); digit tests flag honest "
                          f"counts too")
                rows.append({"row": 0, "station": "", "scope": r["scope"] if level else "all", "rule": name,
                             "severity": "low", "verdict": "weak alarm", "value": r["effect"], "reason": reason})
                continue
            null = r.get("null_mean", r.get("expected"))
            reason = (f"{r['observed']} stations where {null:.1f} expected (excess {r['excess']:+.1f}, "
                      f"{100 * r['effect']:.2f}% of {r['stations']} stations; Holm p = {r['p_holm']:.2g})")
            rows.append({"row": 0, "station": "", "scope": r["scope"] if level else "all", "rule": name,
                         "severity": "high", "verdict": "alarm", "value": r["excess"], "reason": reason})
    return pd.DataFrame(rows, columns=FLAG_COLUMNS).sort_values("rule", kind="stable").reset_index(drop=True)


def station_full_turnout_flags(stations: pd.DataFrame, where: np.ndarray, station_p: np.ndarray,
                               threshold: float) -> pd.DataFrame:
    """A flag for each station at 100% turnout whose probability for its size is below ``threshold``.
    ``stations``: a chunk of station rows; ``where``: positions in it of the stations with a probability
    ``station_p`` (NaN: not at 100% or not modelled)."""
    low = np.flatnonzero(~np.isnan(station_p) & (station_p < threshold))
    picked = stations.iloc[where[low]]
    return pd.DataFrame({
        "row": picked["row"].to_numpy(np.int64), "station": picked["station"].to_numpy(), "scope": "",
        "rule": "full_turnout_improbable", "severity": "medium", "verdict": "suspicious", "value": station_p[low],
        "reason": [f"100% turnout at a station of {int(n)} registered voters: probability {p:.2g} under its "
                   f"scope's spread of turnout" for n, p in zip(picked["registered"], station_p[low], strict=True)]},
        columns=FLAG_COLUMNS)


def sort_flags(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``parts`` as one frame sorted by row and rule (stable), the order of ``flags.csv``."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=FLAG_COLUMNS)
    return pd.concat(parts, ignore_index=True).sort_values(["row", "rule"], kind="stable")[FLAG_COLUMNS]


def station_columns(mapping: TableMapping) -> list[str]:
    """The columns of ``stations.csv`` / ``stations.parquet``, in order."""
    return ["row", "station", *mapping.id_levels, "status", "reason", "registered", "ballots", "turnout",
            "leader_share", "full_turnout_p", *(f"gap_{n}" for n in mapping.rule_names)]


class _Outputs:
    """The run's output files while they are written (each to a hidden temporary file, renamed into place by
    :meth:`commit`), and the first pass's hidden files (station rows before the forensics, rule flags)."""

    def __init__(self, out: Path, mapping: TableMapping) -> None:
        tag = os.getpid()
        self.pass1_stations = ParquetSink(out / f".stations.pass1.{tag}.parquet")
        self.pass1_flags = ParquetSink(out / f".flags.pass1.{tag}.parquet")
        self.stations_parquet = ParquetSink(out / "stations.parquet")
        self.stations_csv = CsvSink(out / "stations.csv", station_columns(mapping), for_people=True)
        self.flags = CsvSink(out / "flags.csv", FLAG_COLUMNS, for_people=True)
        self.excluded = CsvSink(out / "excluded.csv", ["row", "station", *mapping.id_levels, "status", "reason"],
                                for_people=True)
        self.flag_counts: dict[str, int] = {}

    def write_flags(self, flags: pd.DataFrame) -> None:
        """Append ``flags`` to ``flags.csv`` (the first call writes the header, even with no flag)."""
        if len(flags) or not self.flags.started:
            self.flags.write(flags)
            merge_counts(self.flag_counts, flags["rule"])

    def pass1_paths(self) -> tuple[Path, Path | None]:
        """Close the first pass's files; their paths (None: no rule flag was written)."""
        stations = self.pass1_stations.commit()
        flags = self.pass1_flags.commit() if self.pass1_flags.writer is not None else None
        return stations, flags

    def commit(self) -> None:
        """Rename every output into place."""
        self.stations_parquet.commit()
        for sink in (self.stations_csv, self.flags, self.excluded):
            sink.commit()

    def discard(self) -> None:
        """Remove every temporary file and the first pass's files (after the run, or after a failure); outputs
        already committed stay."""
        for sink in (self.pass1_stations, self.pass1_flags, self.stations_parquet, self.stations_csv, self.flags,
                     self.excluded):
            sink.discard()
        for sink in (self.pass1_stations, self.pass1_flags):
            sink.path.unlink(missing_ok=True)


def _first_pass(results_path: Path, mapping: TableMapping, s: TableAuditSettings, files: _Outputs) -> _Collected:
    """Read the table in chunks: audit each, write its excluded rows, keep its station rows and rule flags in the
    first-pass files and its numbers in memory."""
    acc = _Collected(scopes=ScopeCoder(mapping.forensic_levels))
    excluded_columns = files.excluded.columns
    for chunk in iter_chunks(results_path, list(mapping.columns), s.chunk_rows):
        part = audit_chunk(chunk, mapping, s, acc.seen, acc.rows + 1)
        acc.add(part, mapping.forensic_levels)
        files.pass1_stations.write(part.stations)
        if len(part.flags):
            files.pass1_flags.write(part.flags)
        files.excluded.write(part.stations.loc[~part.kept, excluded_columns])
    return acc


def _second_pass(pass1: Path, pass1_flags: Path | None, rows: np.ndarray, share: np.ndarray,
                 station_p: np.ndarray, mapping: TableMapping, s: TableAuditSettings, files: _Outputs) -> None:
    """Read the first pass's station rows back in chunks, add each kept station's leader share (``share``) and
    100%-turnout probability (``station_p``; both in the order of ``rows``, ascending), and write the station
    files and the station flags (the rule flags and the improbable 100% turnouts, by row and rule)."""
    ordered = station_columns(mapping)
    cursor = RowCursor(pass1_flags, FLAG_COLUMNS, s.chunk_rows)
    for batch in pq.ParquetFile(pass1).iter_batches(batch_size=s.chunk_rows):
        frame = batch.to_pandas()
        first, last = int(frame["row"].iloc[0]), int(frame["row"].iloc[-1])
        lo, hi = np.searchsorted(rows, [first, last + 1])
        where = rows[lo:hi] - first
        for name, values in (("leader_share", share[lo:hi]), ("full_turnout_p", station_p[lo:hi])):
            column = np.full(len(frame), np.nan)
            column[where] = values
            frame[name] = column
        frame = frame[ordered]
        files.stations_parquet.write(frame)
        files.stations_csv.write(frame)
        files.write_flags(sort_flags([cursor.upto(last), station_full_turnout_flags(
            frame, where, station_p[lo:hi], s.forensics.full_turnout_station_p)]))


def run_table_audit(results_path: Path, mapping_path: Path, out: Path,
                    settings: TableAuditSettings | None = None) -> TableAuditResult:
    """Audit the results table at ``results_path`` with the mapping at ``mapping_path``; write the outputs to
    ``out``. The mapping is checked against the header before any row is read.

    Memory stays flat as the table grows (but for a handful of numbers per station): the table is read in chunks
    of ``chunk_rows`` rows, each chunk's rows are written out as they are audited, and a second pass over those
    rows adds what needs every station (the leader's share, the 100%-turnout probabilities, their flags). Every
    output appears at once when the run ends (a failed run leaves the earlier outputs as they were).

    Raises:
        ConfigError: a bad mapping (the key, the column, close column names).
        InputFileError: a missing, empty or unreadable table, or one with no station row.
    """
    s = settings or TableAuditSettings()
    results_path, out = Path(results_path), Path(out)
    data = load_mapping(mapping_path)
    header = read_header(results_path)
    mapping = resolve_mapping(data, header, source=str(mapping_path))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    files = _Outputs(out, mapping)
    try:
        result = _audit(results_path, mapping_path, mapping, out, s, files)
    except BaseException:
        files.discard()
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    files.discard()
    return result


def _audit(results_path: Path, mapping_path: Path, mapping: TableMapping, out: Path, s: TableAuditSettings,
           files: _Outputs) -> TableAuditResult:
    """The body of :func:`run_table_audit` once the mapping is resolved and the output files are open."""
    acc = _first_pass(results_path, mapping, s, files)
    if acc.rows == 0:
        raise InputFileError(f"{results_path}: the table has a header but no station rows")
    pass1, pass1_flags = files.pass1_paths()
    acc.seen = SeenIds()  # the ids were only needed to find repeated ones, in the first pass
    votes = acc.take("votes", (0, len(mapping.choices)), np.int64)
    rows = acc.take("kept_rows", (0,), np.int64)
    ballots = acc.take("ballots", (0,), np.int64)
    leader = _leader(mapping, votes)
    lead_votes = votes[:, mapping.choices.index(leader)].astype(np.int64) if votes.size else np.zeros(0, np.int64)
    forensics: dict = {}
    station_p = np.full(len(rows), np.nan)
    if len(rows):
        scopes = acc.scopes.scopes()
        acc.scopes = ScopeCoder(mapping.forensic_levels)  # its chunks' codes, now joined in ``scopes``
        st = Stations(voters=acc.take("voters", (0,), np.int64),
                      turnout_count=acc.take("turnout_count", (0,), np.int64), ballots=ballots,
                      leader=lead_votes, scopes=scopes, votes=votes)
        del votes, scopes
        forensics, station_p = run_table_forensics(st, s.forensics)
        del st
    with np.errstate(divide="ignore", invalid="ignore"):  # after the forensics: one array fewer while they run
        share = np.where(ballots > 0, lead_votes / ballots, np.nan)
    del ballots, lead_votes
    files.write_flags(scope_flags(forensics) if forensics else pd.DataFrame(columns=FLAG_COLUMNS))
    _second_pass(pass1, pass1_flags, rows, share, station_p, mapping, s, files)
    statuses = ordered_counts(acc.statuses)
    summary = {
        "source": str(results_path), "mapping": str(mapping_path), "name": mapping.name, "rows": acc.rows,
        "statuses": statuses, "leader": leader, "id_levels": list(mapping.id_levels),
        "forensic_levels": list(mapping.forensic_levels), "choices": list(mapping.choices),
        "rules": [{"name": n, "rule": r.text, "soft": r.soft, "failed": files.flag_counts.get(n, 0)}
                  for n, r in zip(mapping.rule_names, mapping.rules, strict=True)],
        "excluded": {"rows": acc.left_out, "by_reason": ordered_counts(acc.left_out_reasons)},
        "audit_settings": {k: v for k, v in asdict(s).items() if k != "forensics"},
        **forensics,
    }
    files.commit()
    write_text_atomic(out / "forensics.json", json.dumps(_json_safe(summary), indent=1, ensure_ascii=False))
    n_flags = sum(files.flag_counts.values())
    return TableAuditResult(out=out, rows=acc.rows, statuses=statuses, n_flags=n_flags,
                            alarms=forensics.get("alarms", {}))



def _json_safe(value):
    """``value`` with NaN/inf turned into None and numpy scalars into Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value
