"""Load a read run (docs/DATA.md sections 2-3) and build the one-row-per-sheet table the audit works on.

Inputs: ``pages.csv`` (one row per page, with its scan status), ``fields.parquet`` (every numeric field as read,
with confidence and alternative readings) and ``marks.csv`` (tick boxes: representatives present, choices such as
the station type). The columns come from the run's form (:class:`pipeline.audit.schema.FormSchema`). Field images
stay where the reader wrote them; the table links them with paths relative to the audit output.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.audit.arithmetic import SheetReading
from pipeline.audit.schema import FormSchema, conf_field, text_field
from pipeline.audit.settings import AuditSettings
from pipeline.engine.stream import require_columns, require_file, unreadable_table

log = logging.getLogger(__name__)

PAGES_COLUMNS = ("sheet_id", "status")
FIELDS_COLUMNS = ("sheet_id", "field", "text", "value", "confidence", "alternatives")
MARKS_COLUMNS = ("sheet_id", "field", "option", "ticked")
#: Types of the ``pages.csv`` columns the reader writes that are not text (docs/DATA.md section 2). The audit reads
#: the file as text and converts these, so every chunk of a streamed audit gets the same column types.
PAGE_NUMBERS = {"page": "Int64", "registration_score": "float64", "rotation_fixed_deg": "float64",
                "n_fiducials": "Int64", "residual_px": "float64", "line_agreement": "float64",
                "template_fit": "float64", "orientation_margin": "float64", "unbent_mm": "float64", "n_digits": "Int64",
                "cpu_s": "float64"}
PAGE_YES_NO = ("flipped",)
#: Status given to a sheet that has readings but no row in pages.csv.
NO_PAGE_STATUS = "no_page_row"
TRUE_STRINGS = ("true", "1", "yes")


def read_table(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV or Parquet table whole, checking it exists, parses and has the ``needed`` columns."""
    require_file(path)
    try:
        df = pd.read_csv(path, dtype={"sheet_id": str}) if path.suffix != ".parquet" else pd.read_parquet(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many types for a corrupt file
        raise unreadable_table(path, exc) from exc
    require_columns(path, df.columns, needed)
    df["sheet_id"] = df["sheet_id"].astype("string")
    return df


def parse_alternatives(raw) -> list[tuple[int, float]]:
    """``alternatives`` JSON (``[[value, probability], ...]``) as a list of tuples; malformed or empty gives []."""
    if raw is None or (not isinstance(raw, (str, list, np.ndarray)) and pd.isna(raw)):
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else list(raw)
        return [(int(v), float(p)) for v, p in items if v is not None]
    except (ValueError, TypeError):
        return []


def pivot_fields(fields: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> pd.DataFrame:
    """One row per sheet: value ``F`` (Int64), confidence ``F_conf`` and text ``F_text`` of every numeric field.

    A blank count field (empty text) counts as zero votes when ``empty_counts_as_zero``; ids stay missing.
    """
    numeric = schema.numeric_fields
    f = fields[fields["field"].isin(numeric)].drop_duplicates(["sheet_id", "field"])
    text = f["text"].astype("string").fillna("")
    value = pd.to_numeric(f["value"], errors="coerce").astype("Int64")
    if s.empty_counts_as_zero:
        value = value.mask(f["field"].isin(schema.count_fields) & (text.str.strip() == "") & value.isna(), 0)
    f = f.assign(value=value, text=text, confidence=pd.to_numeric(f["confidence"], errors="coerce"))

    def wide(column: str, dtype: str) -> pd.DataFrame:
        table = f.pivot(index="sheet_id", columns="field", values=column)
        return table.reindex(columns=list(numeric)).astype(dtype)

    values, confidences, texts = wide("value", "Int64"), wide("confidence", "float64"), wide("text", "string")
    columns = {}
    for name in numeric:
        columns |= {name: values[name], conf_field(name): confidences[name], text_field(name): texts[name]}
    return pd.DataFrame(columns, index=values.index)


def _ticked(marks: pd.DataFrame) -> pd.Series:
    return marks["ticked"].astype("string").str.strip().str.lower().isin(TRUE_STRINGS)


def pivot_marks(marks: pd.DataFrame, schema: FormSchema) -> pd.DataFrame:
    """One row per sheet: each tick field (1 ticked, 0 not, NA unknown; e.g. ``rep_pan``) and each choice field
    (the one ticked option; e.g. ``station_type``).

    A choice with no tick or several ticks is left missing, which the id rule reports for the station key's.
    """
    ticks = list(schema.tick_fields)
    marks = marks.assign(is_ticked=_ticked(marks))
    reps = marks[marks["field"].isin(ticks)].groupby(["sheet_id", "field"])["is_ticked"].any().unstack()
    out = reps.reindex(columns=ticks).astype("Int8")
    for name in schema.choices:
        choice = marks[(marks["field"] == name) & marks["is_ticked"]].groupby("sheet_id")["option"]
        ticked = choice.agg(lambda o: o.iloc[0] if len(o) == 1 else pd.NA).astype("string")
        out = out.join(ticked.rename(name), how="outer")
        out[name] = out[name].astype("string")
    return out


def opposition_present(table: pd.DataFrame, schema: FormSchema, leader: str | None) -> pd.Series:
    """1 when the representative of any choice but the ``leader`` is ticked present (ticks with ``party_of``), 0
    when none is, NA when no tick was read, the form has no such ticks or no leader is known."""
    reps = table[[t for t, party in schema.party_of.items() if party != leader]]
    if leader is None or reps.columns.empty:
        return pd.Series(pd.NA, index=table.index, dtype="Int8")
    return reps.max(axis=1, skipna=True).where(reps.notna().any(axis=1)).astype("Int8")


def summed(table: pd.DataFrame, fields: tuple[str, ...]) -> pd.Series:
    """The sum of ``fields`` per row as Float64 (missing where any is missing or there are no fields)."""
    if not fields:
        return pd.Series(pd.NA, index=table.index, dtype="Float64")
    total = table[fields[0]].astype("Float64")
    for name in fields[1:]:
        total = total + table[name].astype("Float64")
    return total


def turnout(table: pd.DataFrame, schema: FormSchema) -> pd.Series:
    """Votes cast (:attr:`FormSchema.votes_cast`) over registered voters, per sheet (NaN where either is missing,
    the registered are 0, or the form has no registered-voters field)."""
    if schema.registered is None:
        return pd.Series(np.nan, index=table.index, dtype=float)
    registered = table[schema.registered].astype("Float64")
    return (summed(table, schema.votes_cast) / registered.where(registered > 0)).astype(float)


def _evidence_paths(sheet_ids: pd.Index, rundir: Path, out: Path) -> pd.Series:
    """``fields/<sheet_id>`` of each sheet relative to ``out`` (missing when the reader wrote no field images)."""
    def rel(sid: str):
        folder = rundir / "fields" / sid
        return os.path.relpath(folder, out) if folder.is_dir() else pd.NA
    return pd.Series([rel(s) for s in sheet_ids], index=sheet_ids, dtype="string")


def typed_pages(pages: pd.DataFrame) -> pd.DataFrame:
    """``pages.csv`` rows with the reader's number and yes/no columns converted (:data:`PAGE_NUMBERS`,
    :data:`PAGE_YES_NO`; a value that does not parse becomes missing) and every other column as text."""
    out = pages.astype("string")
    for name in out.columns.intersection(list(PAGE_NUMBERS)):
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(PAGE_NUMBERS[name])
    for name in out.columns.intersection(list(PAGE_YES_NO)):
        text = out[name].str.strip().str.lower()
        out[name] = text.isin(TRUE_STRINGS).astype("boolean").mask(text.isna())
    return out


def build_sheet_table(pages: pd.DataFrame, fields: pd.DataFrame, marks: pd.DataFrame, rundir: Path, out: Path,
                      schema: FormSchema, s: AuditSettings) -> pd.DataFrame:
    """The sheet table: page info, every count, confidences, ticks, choices, ``opposition_present`` (with the
    leader of :meth:`FormSchema.leader_of`), turnout and the evidence folder, by sheet_id.

    Sheets come in the order of ``pages``, then those with readings but no page row, sorted.
    """
    pages = typed_pages(pages.drop_duplicates("sheet_id")).set_index("sheet_id")
    readings = pivot_fields(fields, schema, s)
    order = pages.index.append(readings.index.difference(pages.index).sort_values())
    table = pages.join(readings, how="outer").reindex(order).join(pivot_marks(marks, schema), how="left")
    table["status"] = table["status"].astype("string").fillna(NO_PAGE_STATUS)
    for name in schema.tick_fields:
        table[name] = table[name].astype("Int8") if name in table else pd.array([pd.NA] * len(table), "Int8")
    for name in schema.choices:
        if name not in table:
            table[name] = pd.array([pd.NA] * len(table), "string")
    table["opposition_present"] = opposition_present(table, schema, schema.leader_of(s.ruling_party))
    table["turnout"] = turnout(table, schema)
    table["evidence_dir"] = _evidence_paths(table.index, rundir, out)
    table.index.name = "sheet_id"
    return table


def candidate_map(fields: pd.DataFrame) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{sheet_id: {field: [(value, probability), ...]}}`` from the ``alternatives`` column."""
    out: dict[str, dict] = {}
    for sid, field, raw in fields[["sheet_id", "field", "alternatives"]].itertuples(index=False):
        out.setdefault(str(sid), {})[field] = parse_alternatives(raw)
    return out


def _nullable(value):
    return None if pd.isna(value) else value


def _image_names(folder: Path) -> set[str]:
    """Names of the files in ``folder`` (none when it is missing): one directory listing per sheet, not a
    ``stat`` per field."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def sheet_reading(row: pd.Series, candidates: dict, rundir: Path, out: Path, schema: FormSchema) -> SheetReading:
    """The :class:`SheetReading` of one table row (``row.name`` is the sheet_id)."""
    sid = str(row.name)
    folder = rundir / "fields" / sid
    present, rel = _image_names(folder), os.path.relpath(folder, out)
    numeric = schema.numeric_fields
    images = {f: os.path.normpath(os.path.join(rel, f"{f}.png")) for f in numeric if f"{f}.png" in present}
    cells = row.to_dict()  # one conversion, not a Series lookup per field and column
    return SheetReading(
        sheet_id=sid,
        values={f: None if pd.isna(cells[f]) else int(cells[f]) for f in numeric},
        texts={f: _nullable(cells[text_field(f)]) for f in numeric},
        confidences={f: _nullable(cells[conf_field(f)]) for f in numeric},
        candidates=candidates.get(sid, {}),
        choices={c: _nullable(cells[c]) for c in schema.choices},
        images=images)
