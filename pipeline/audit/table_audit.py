"""``python -m pipeline audit-table``: audit a published per-station results table with its mapping file.

The table (CSV, also ``.zip``/``.gz``, or Parquet) is read in chunks of ``chunk_rows`` rows and only the columns the
mapping names, so its width and the raw text never sit in memory whole; what is kept per station is a compact row
(ids, status, a few numbers). Each row is checked (ids present and unique, every count a whole number >= 0,
exclusions), the mapping's control relations are evaluated (:mod:`pipeline.audit.rules`), and the stations kept
go to the forensics (:mod:`pipeline.audit.table_forensics`).

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.atomic import write_text_atomic
from pipeline.audit.rules import evaluate, expression_values
from pipeline.audit.table_forensics import Stations, TableForensicsSettings, run_table_forensics
from pipeline.audit.table_mapping import TableMapping, load_mapping, resolve_mapping
from pipeline.engine.stream import csv_text
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
#: File name endings read as Parquet; everything else is read as CSV (pandas infers .zip/.gz/.bz2/.xz).
PARQUET_SUFFIXES = (".parquet", ".pq")
#: How many bad cells a row's reason lists before "...".
MAX_REASONS = 3


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
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
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
        reader = pd.read_csv(path, usecols=columns, dtype=str, chunksize=chunk_rows, keep_default_na=False,
                             na_values=[""])
        yield from reader
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
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


@dataclass
class _Collected:
    """What the chunk loop keeps: compact station rows, flags, and the numbers the forensics need."""

    stations: list[pd.DataFrame] = field(default_factory=list)
    flags: list[pd.DataFrame] = field(default_factory=list)
    choice_votes: list[np.ndarray] = field(default_factory=list)
    numbers: list[np.ndarray] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    rows: int = 0


def _audit_chunk(chunk: pd.DataFrame, mapping: TableMapping, s: TableAuditSettings, acc: _Collected) -> None:
    """Check one chunk's rows and evaluate the rules; append its station rows, flags and forensic numbers."""
    first_row = acc.rows + 1
    acc.rows += len(chunk)
    chunk = chunk.reset_index(drop=True)
    ids, joined, missing_id = station_ids(chunk, mapping.id_levels)
    counts, bad = parse_counts(chunk, mapping.count_columns)
    status = np.full(len(chunk), STATUS_OK, dtype=object)
    reason = np.full(len(chunk), "", dtype=object)
    bad_value = (bad != "").to_numpy()
    status[bad_value], reason[bad_value] = STATUS_BAD_VALUE, bad[bad_value]
    status[missing_id] = STATUS_BAD_ID
    reason[missing_id] = "a station id level is empty"
    for i, sid in enumerate(joined):
        if missing_id[i]:
            continue
        if sid in acc.seen:
            if status[i] == STATUS_OK:
                status[i] = STATUS_DUPLICATE
                reason[i] = f"station id {sid!r} already seen at row {acc.seen[sid]}"
        else:
            acc.seen[sid] = first_row + i
    groups = mapping.groups
    registered = counts[list(mapping.roles["registered"])].sum(axis=1, min_count=1).to_numpy()
    excl = exclusion_reason(ids, np.nan_to_num(registered, nan=np.inf), mapping).to_numpy()
    take = (status == STATUS_OK) & (excl != "")
    status[take], reason[take] = STATUS_EXCLUDED, excl[take]
    station = pd.DataFrame({"row": np.arange(first_row, first_row + len(chunk)), "station": joined.to_numpy()})
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
                              "reason": failure_reason(rule.title, rule.op, gap, rule.soft), "value": gap})
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
    acc.stations.append(station)
    if flag_rows:
        acc.flags.append(pd.DataFrame(flag_rows))
    kept = ~np.isin(status, LEFT_OUT)
    acc.choice_votes.append(counts[list(mapping.choices)].to_numpy(dtype=np.float64)[kept].astype(np.int64))
    acc.numbers.append(np.column_stack([np.flatnonzero(kept) + first_row, denominator[kept], numerator[kept],
                                        base[kept]]).astype(np.int64))


def _leader(mapping: TableMapping, votes: np.ndarray) -> str:
    """The leader's column: the mapping's, else the choice with the most votes over the stations kept."""
    if mapping.leader is not None:
        return mapping.leader
    return mapping.choices[int(np.argmax(votes.sum(axis=0)))] if votes.size else mapping.choices[0]


def _scope_codes(stations: pd.DataFrame, rows: np.ndarray, levels: tuple[str, ...]) -> dict:
    """For each forensic level, an integer code per kept station (in ``rows`` order) and the code names."""
    by_row = stations.set_index("row")
    out = {}
    for lv in levels:
        codes, names = pd.factorize(by_row.loc[rows, lv].to_numpy())
        out[lv] = (codes.astype(np.int32), [str(n) for n in names])
    return out


def scope_flags(results: dict) -> pd.DataFrame:
    """One flag per scope alarm of the forensics (national scope ``all``)."""
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
    return pd.DataFrame(rows)


def station_full_turnout_flags(stations: pd.DataFrame, rows: np.ndarray, station_p: np.ndarray,
                               threshold: float) -> pd.DataFrame:
    """A flag for each station at 100% turnout whose probability for its size is below ``threshold``."""
    low = np.flatnonzero(~np.isnan(station_p) & (station_p < threshold))
    if low.size == 0:
        return pd.DataFrame()
    by_row = stations.set_index("row")
    picked = by_row.loc[rows[low]]
    return pd.DataFrame({
        "row": rows[low], "station": picked["station"].to_numpy(), "scope": "", "rule": "full_turnout_improbable",
        "severity": "medium", "verdict": "suspicious", "value": station_p[low],
        "reason": [f"100% turnout at a station of {int(n)} registered voters: probability {p:.2g} under its "
                   f"scope's spread of turnout" for n, p in zip(picked["registered"], station_p[low], strict=True)]})


def run_table_audit(results_path: Path, mapping_path: Path, out: Path,
                    settings: TableAuditSettings | None = None) -> TableAuditResult:
    """Audit the results table at ``results_path`` with the mapping at ``mapping_path``; write the outputs to
    ``out``. The mapping is checked against the header before any row is read.

    Raises:
        ConfigError: a bad mapping (the key, the column, close column names).
        InputFileError: a missing, empty or unreadable table, or one with no station row.
    """
    s = settings or TableAuditSettings()
    results_path, out = Path(results_path), Path(out)
    data = load_mapping(mapping_path)
    header = read_header(results_path)
    mapping = resolve_mapping(data, header, source=str(mapping_path))
    acc = _Collected()
    for chunk in iter_chunks(results_path, list(mapping.columns), s.chunk_rows):
        _audit_chunk(chunk, mapping, s, acc)
    if acc.rows == 0:
        raise InputFileError(f"{results_path}: the table has a header but no station rows")
    stations = pd.concat(acc.stations, ignore_index=True)
    votes = np.concatenate(acc.choice_votes) if acc.choice_votes else np.zeros((0, len(mapping.choices)), np.int64)
    numbers = np.concatenate(acc.numbers) if acc.numbers else np.zeros((0, 4), np.int64)
    leader = _leader(mapping, votes)
    lead_votes = votes[:, mapping.choices.index(leader)] if votes.size else np.zeros(0, np.int64)
    rows = numbers[:, 0]
    share = np.full(len(stations), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        share[rows - 1] = np.where(numbers[:, 3] > 0, lead_votes / numbers[:, 3], np.nan)
    stations["leader_share"] = share
    forensics: dict = {}
    station_p = np.full(len(rows), np.nan)
    if len(rows):
        st = Stations(voters=numbers[:, 1], turnout_count=numbers[:, 2], ballots=numbers[:, 3], leader=lead_votes,
                      scopes=_scope_codes(stations, rows, mapping.forensic_levels), votes=votes)
        forensics, station_p = run_table_forensics(st, s.forensics)
    stations["full_turnout_p"] = np.nan
    stations.loc[rows - 1, "full_turnout_p"] = station_p
    flag_parts = [*acc.flags, station_full_turnout_flags(stations, rows, station_p,
                                                         s.forensics.full_turnout_station_p)]
    if forensics:
        flag_parts.append(scope_flags(forensics))
    flag_parts = [f for f in flag_parts if len(f)]
    flags = (pd.concat(flag_parts, ignore_index=True) if flag_parts else
             pd.DataFrame(columns=["row", "station", "scope", "rule", "severity", "verdict", "value", "reason"]))
    statuses = {str(k): int(v) for k, v in stations["status"].value_counts().items()}
    left_out = stations[stations["status"].isin(LEFT_OUT)]
    summary = {
        "source": str(results_path), "mapping": str(mapping_path), "name": mapping.name, "rows": acc.rows,
        "statuses": statuses, "leader": leader, "id_levels": list(mapping.id_levels),
        "forensic_levels": list(mapping.forensic_levels), "choices": list(mapping.choices),
        "rules": [{"name": n, "rule": r.text, "soft": r.soft, "failed": int((flags["rule"] == n).sum())}
                  for n, r in zip(mapping.rule_names, mapping.rules, strict=True)],
        "excluded": {"rows": int(len(left_out)),
                     "by_reason": {str(k): int(v) for k, v in _reason_counts(left_out).items()}},
        "audit_settings": {k: v for k, v in asdict(s).items() if k != "forensics"},
        **forensics,
    }
    _write_outputs(out, stations, flags, left_out, summary, mapping)
    alarms = forensics.get("alarms", {})
    return TableAuditResult(out=out, rows=acc.rows, statuses=statuses, n_flags=len(flags), alarms=alarms)


def _reason_counts(left_out: pd.DataFrame) -> pd.Series:
    """Excluded rows counted by reason (bad values grouped by their status, since each row's text differs)."""
    key = np.where(left_out["status"] == STATUS_EXCLUDED, left_out["reason"], left_out["status"])
    return pd.Series(key).value_counts()


def _write_outputs(out: Path, stations: pd.DataFrame, flags: pd.DataFrame, left_out: pd.DataFrame, summary: dict,
                   mapping: TableMapping) -> None:
    """Write the five output files (each atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    ordered = ["row", "station", *mapping.id_levels, "status", "reason", "registered", "ballots", "turnout",
               "leader_share", "full_turnout_p", *(f"gap_{n}" for n in mapping.rule_names)]
    stations = stations[ordered]
    tmp = out / ".stations.parquet.tmp"
    stations.to_parquet(tmp, index=False)
    tmp.replace(out / "stations.parquet")
    write_text_atomic(out / "stations.csv", csv_text(stations))
    flags = flags.sort_values(["row", "rule"], kind="stable")
    write_text_atomic(out / "flags.csv", csv_text(flags[["row", "station", "scope", "rule", "severity", "verdict",
                                                         "value", "reason"]]))
    write_text_atomic(out / "excluded.csv", csv_text(left_out[["row", "station", *mapping.id_levels, "status",
                                                               "reason"]]))
    write_text_atomic(out / "forensics.json", json.dumps(_json_safe(summary), indent=1, ensure_ascii=False))


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
