"""The audit orchestrator: read a run folder chunk by chunk, apply every rule, write docs/DATA.md section 4.

:func:`run_audit` is the Python API behind ``python -m pipeline audit``. Each step is a function of the tables the
earlier steps produced; this module only chains them and writes the results atomically. The form's fields, roles
and rules come from the run's template (``template.yaml`` in the run folder, else the packaged acta), as one
:class:`pipeline.audit.schema.FormSchema` passed to every step. A run read with several templates
(``templates/<name>.yaml``, each page's in the ``page_type`` column of ``pages.csv``) is audited once per page type,
each by its own schema, and the results are merged (:func:`audit_page_types`).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipeline.audit import alteration, cantu, evaluate
from pipeline.audit.arithmetic import arithmetic_flags
from pipeline.audit.chunks import RunChunk, csv_blocks, page_order, run_chunks
from pipeline.audit.crosssheet import cross_sheet_flags
from pipeline.audit.flags import SEVERITY_WEIGHT, Flag, flags_to_frame, frame_to_flags
from pipeline.audit.forensics import run_forensics
from pipeline.audit.outputs import TableSink, write_json, write_settings
from pipeline.audit.schema import OK_STATUS, FormSchema
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import FIELDS_COLUMNS, MARKS_COLUMNS, build_sheet_table, candidate_map, sheet_reading
from pipeline.engine.lock import folder_lock, remove_scratch
from pipeline.engine.settings import EngineSettings
from pipeline.engine.stream import ParquetSink, require_file
from pipeline.forms.runs import PAGE_TYPE, PAGES_FILE, page_templates, run_templates
from pipeline.forms.template import Template
from pipeline.progress import SettledBar

log = logging.getLogger(__name__)

#: Verdict of a sheet with no flag, and the order in which a sheet's flags decide its overall verdict.
CLEAN_VERDICT = "ok"
VERDICT_ORDER = ("altered", "inconsistent", "suspicious", "needs_review")
#: Cross-sheet flags written (and held) at a time.
FLAG_BATCH = 10_000
#: Columns of a flag tally (:func:`flag_tally`), and the prefix naming a chunk's tally in the scratch table.
TALLY_COLUMNS = ("n_flags", "verdict_rank", "unexplained")
CHUNK_PREFIX = "chunk_"
#: Columns only the scratch table has (:func:`scratch_rows`): the chunk's tally and the arithmetic verdict.
SCRATCH_COLUMNS = (*(CHUNK_PREFIX + c for c in TALLY_COLUMNS), "arithmetic_verdict")
#: Columns of the sheet table that the batch-wide steps read back for the whole batch (:func:`batch_columns`),
#: besides the form's numeric and choice fields (:func:`slim_columns`).
SLIM_COLUMNS = ("status", "turnout", "opposition_present", "alteration_score", "altered")
#: Key of ``cantu.json`` (of each page type's, in a run of several forms) saying why the alteration detector scored
#: no sheet of the form (docs/DATA.md section 4); absent when it scored them or was switched off.
ALTERATION_SKIPPED = "alteration_skipped"
#: Key of ``forensics.json``, ``cantu.json`` and ``truth_eval.json`` of a run read with several forms: each page
#: type's own result, by template name (docs/DATA.md section 4).
BY_PAGE_TYPE = "by_page_type"


@dataclass(frozen=True)
class AuditResult:
    """What the audit produced: counts, the forensics and Cantu summaries, the comparison with ground truth
    (``None`` without ``truth``) and the files written.

    The sheet table and the flags are not held (a national batch would not fit): :attr:`sheets` and
    :attr:`flags` read them back from the files, whole, which suits small batches and tests.
    """

    n_sheets: int
    n_flags: int
    verdicts: dict[str, int]
    forensics: dict
    cantu: dict
    truth_eval: dict | None
    paths: dict

    @property
    def sheets(self) -> pd.DataFrame:
        """``sheets.parquet``, indexed by sheet_id."""
        return pd.read_parquet(self.paths["sheets_parquet"]).set_index("sheet_id")

    @property
    def flags(self) -> list[Flag]:
        """``flags.parquet`` as :class:`Flag` records, in the file's order."""
        return frame_to_flags(pd.read_parquet(self.paths["flags_parquet"]))


def page_flags(table: pd.DataFrame) -> list[Flag]:
    """A ``needs_review`` flag for every page the reader could not read (not a form, unreadable, ...)."""
    bad = table[table["status"] != OK_STATUS]
    return [Flag(str(sid), (), "page_not_read", "medium", "needs_review",
                 f"page was not read (status {row['status']}: {'' if pd.isna(row.get('reason')) else row['reason']})",
                 {"status": row["status"], "source": row.get("source")}) for sid, row in bad.iterrows()]


def slim_columns(schema: FormSchema) -> tuple[str, ...]:
    """The sheet-table columns the batch-wide steps read back: the status, the form's numeric and choice fields,
    turnout, opposition, alteration (:data:`SLIM_COLUMNS`)."""
    return (SLIM_COLUMNS[0], *schema.numeric_fields, *schema.choices, *SLIM_COLUMNS[1:])


def sheet_flags(table: pd.DataFrame, fields: pd.DataFrame, rundir: Path, out: Path, schema: FormSchema,
                s: AuditSettings) -> list[Flag]:
    """Arithmetic and read-uncertainty flags of every sheet of ``table`` whose page was read, in the table's order;
    the candidate readings come from the ``alternatives`` of those sheets' ``fields`` rows."""
    candidates = candidate_map(fields)
    ok = table[table["status"] == OK_STATUS]
    return [f for _, row in ok.iterrows()
            for f in arithmetic_flags(sheet_reading(row, candidates, rundir, out, schema), schema, s)]


def audit_chunk(chunk: RunChunk, detector: alteration.Detector | None, pool, rundir: Path, out: Path,
                schema: FormSchema, s: AuditSettings) -> tuple[pd.DataFrame, list[Flag]]:
    """The sheet table of one chunk's sheets, with alteration scores, and every flag that needs only those
    sheets: pages not read, arithmetic and read uncertainty, alteration. A sheet's features, scores and rules
    depend on that sheet alone, so auditing chunk by chunk gives what one pass over the batch would. The flags
    come sheet by sheet, in the table's order, whatever the chunk size."""
    table = build_sheet_table(chunk.pages, chunk.fields, chunk.marks, rundir, out, schema, s)
    table, alteration_flags = alteration.apply_detector(table, detector, rundir, out, schema, pool)
    flags = page_flags(table) + sheet_flags(table, chunk.fields, rundir, out, schema, s) + alteration_flags
    position = {str(sid): i for i, sid in enumerate(table.index)}
    return table, sorted(flags, key=lambda f: position[f.sheet_id])


def flag_tally(flags: list[Flag], index: pd.Index | None = None) -> pd.DataFrame:
    """Per sheet: ``n_flags``, ``verdict_rank`` (position of the gravest verdict in :data:`VERDICT_ORDER`, its
    length for none) and ``unexplained`` (the product of 1 - weight over the flags other than the alteration
    flag, which the sheet's alteration score stands for). Tallies of disjoint flag sets combine with
    :func:`add_tallies`; ``index`` gives every listed sheet a row (zero flags)."""
    rows = [(f.sheet_id, VERDICT_ORDER.index(f.verdict) if f.verdict in VERDICT_ORDER else len(VERDICT_ORDER),
             1.0 if f.rule == alteration.RULE else 1.0 - SEVERITY_WEIGHT[f.severity]) for f in flags]
    frame = pd.DataFrame(rows, columns=["sheet_id", "verdict_rank", "unexplained"])
    tally = frame.groupby("sheet_id", sort=False).agg(n_flags=("verdict_rank", "size"),
                                                      verdict_rank=("verdict_rank", "min"),
                                                      unexplained=("unexplained", "prod"))
    tally.index = tally.index.astype(str)
    return tally if index is None else add_tallies(_empty_tally(index), tally)


def _empty_tally(index: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({"n_flags": 0, "verdict_rank": len(VERDICT_ORDER), "unexplained": 1.0},
                        index=pd.Index(index.astype(str), name="sheet_id"))


def add_tallies(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The tally of the flags of two disjoint flag sets, whose tallies may list a sheet in several rows (the
    result lists the sheets of ``a`` in its order, then those only ``b`` has)."""
    both = pd.concat([a, b]).groupby(level=0, sort=False)
    return pd.DataFrame({"n_flags": both["n_flags"].sum(), "verdict_rank": both["verdict_rank"].min(),
                         "unexplained": both["unexplained"].prod()}).rename_axis("sheet_id")


def summary_columns(table: pd.DataFrame, tally: pd.DataFrame) -> pd.DataFrame:
    """``n_flags``, ``verdict`` (the gravest flag's, ``ok`` for none) and ``suspicion`` (noisy-OR of the
    alteration score and the flags' severity weights) of the sheets of ``table``, from their tally."""
    t = tally.reindex(table.index.astype(str))
    rank = t["verdict_rank"].fillna(len(VERDICT_ORDER)).astype(int)
    verdict = [VERDICT_ORDER[r] if r < len(VERDICT_ORDER) else CLEAN_VERDICT for r in rank]
    score = table["alteration_score"].astype(float).fillna(0.0).clip(0.0, 1.0).to_numpy()
    return pd.DataFrame({"n_flags": t["n_flags"].fillna(0).astype(int).to_numpy(),
                         "verdict": pd.array(verdict, dtype="string"),
                         "suspicion": 1.0 - (1.0 - score) * t["unexplained"].fillna(1.0).to_numpy()},
                        index=table.index)


def cantu_skip(schema: FormSchema, s: AuditSettings) -> str | None:
    """Why the form allows no Cantu comparison (no representative ticks, or no leader), or None."""
    if not schema.party_of:
        return f"form '{schema.name}' has no representative-present ticks (tick fields with party_of)"
    if schema.leader_of(s.ruling_party) is None:
        return f"form '{schema.name}' names no leader (template key leader, or the setting audit.ruling_party)"
    return None


def cantu_summary(table: pd.DataFrame, truth: pd.DataFrame | None, schema: FormSchema, s: AuditSettings,
                  alteration_skipped: str | None = None) -> dict:
    """The Cantu comparison on detected alterations and, when ``truth`` is given, on the true ones (skipped with
    the reason where the form has no representative ticks or no leader). ``alteration_skipped``: why the detector
    scored no sheet of this form (:func:`pipeline.audit.alteration.not_applicable`); recorded as
    ``alteration_skipped``, the note the report shows, and only then (so other runs' files are unchanged)."""
    ok = table[table["status"] == OK_STATUS]
    result = {"level": s.ci_level, "ruling_party": schema.leader_of(s.ruling_party)}
    if alteration_skipped is not None:
        result[ALTERATION_SKIPPED] = alteration_skipped
    skip = cantu_skip(schema, s)
    if skip is not None:
        return {**result, "detected": {"skipped": skip}, **({"true": {"skipped": skip}} if truth is not None else {})}
    if ok["altered"].notna().any():
        result["detected"] = cantu.compare(ok["altered"], ok["opposition_present"], s.ci_level)
    else:
        result["detected"] = {"skipped": alteration_skipped or (alteration.NO_CHECK if s.alteration_model is None
                                                                else "no field image could be scored")}
    if truth is not None and "opposition_present" not in truth:
        result["true"] = {"skipped": "truth.csv has no opposition_present column"}
    elif truth is not None:
        t = truth.set_index("sheet_id")
        result["true"] = cantu.compare(t["altered"].astype(bool), t["opposition_present"].astype("Int8"),
                                       s.ci_level)
    return result


def scratch_rows(table: pd.DataFrame, flags: list[Flag], schema: FormSchema) -> pd.DataFrame:
    """One chunk's rows of the scratch table: its sheet table, the tally of its flags (``chunk_n_flags``,
    ``chunk_verdict_rank``, ``chunk_unexplained``: :func:`flag_tally`) and each sheet's ``arithmetic_verdict``
    (:func:`evaluate.arithmetic_verdicts`; missing without an arithmetic flag)."""
    verdicts = evaluate.arithmetic_verdicts(flags, schema.rule_names)
    extra = flag_tally(flags, table.index).add_prefix(CHUNK_PREFIX).set_axis(table.index)
    extra["arithmetic_verdict"] = pd.array([verdicts.get(str(sid)) for sid in table.index], dtype="string")
    return table.join(extra).reset_index()


def batch_columns(scratch: Path, schema: FormSchema) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """From the scratch table, the few columns the batch-wide steps need: :func:`slim_columns` (cross-sheet rules,
    forensics, Cantu, evaluation), the tally of the chunks' flags and the arithmetic verdicts, by sheet_id."""
    slim = slim_columns(schema)
    kept = pq.read_table(scratch, columns=["sheet_id", *slim, *SCRATCH_COLUMNS]).to_pandas()
    kept = kept.set_index("sheet_id")
    tally = kept[[CHUNK_PREFIX + c for c in TALLY_COLUMNS]].rename(columns=lambda c: c.removeprefix(CHUNK_PREFIX))
    return kept[list(slim)], tally, kept["arithmetic_verdict"].dropna().astype(str).to_dict()


def write_sheets(scratch: Path, summary: pd.DataFrame, out: Path) -> dict:
    """``sheets.parquet`` and ``sheets.csv``: the sheet tables of ``scratch`` with ``summary``'s columns added,
    read and written a row group at a time."""
    sink = TableSink(out / "sheets")
    try:
        parquet = pq.ParquetFile(scratch)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group).to_pandas().set_index("sheet_id").drop(columns=list(SCRATCH_COLUMNS))
            sink.write(table.join(summary).reset_index())
        return dict(zip(("sheets_parquet", "sheets_csv"), sink.commit(), strict=True))
    except BaseException:
        sink.discard()
        raise


def run_audit(rundir: Path, out: Path, settings: AuditSettings | None = None,
              truth: Path | None = None, stream_sheets: int | None = None) -> AuditResult:
    """Audit one read run (``pages.csv``, ``fields.parquet``, ``marks.csv``, ``fields/``) into ``out``, by the
    fields, roles and rules of the template the run was read with (:func:`pipeline.forms.runs.run_templates`). A
    run read with several templates is audited page type by page type, each by its own form
    (:func:`audit_page_types`); its sheet and flag tables get a ``page_type`` column and its forensics, Cantu and
    truth summaries are keyed by page type. The alteration detector scores only the sheets of the form it was
    trained on (:func:`pipeline.audit.alteration.not_applicable`).

    The sheets are audited ``stream_sheets`` at a time, in the order of ``pages.csv`` (:mod:`pipeline.audit.chunks`):
    every rule that looks at one sheet runs on its chunk, whose table and flags go straight to files (the table
    to a scratch file, with the tally of the chunk's flags); only the list of sheet ids is held whole. The batch-wide
    steps (cross-sheet rules, forensics, Cantu) run last, on a few numbers per sheet read back from the scratch
    file; then the sheet table is completed with each sheet's verdict, a row group at a time.

    Args:
        rundir: the reader's and recogniser's run folder (docs/DATA.md sections 2-3).
        out: folder for the audit files (created).
        settings: thresholds; defaults when ``None``.
        truth: optional ``truth.csv`` of a synthetic batch; adds ``truth_eval.json`` and the true Cantu rates.
        stream_sheets: sheets audited at once (default: the engine's ``stream_sheets``).

    Raises:
        ConfigError: the run's template cannot be read, or a setting names a field the form lacks.
        InputFileError: a required input is missing, unreadable, lacks documented columns or is out of order.
        ModelError: the alteration detector is missing (unless ``settings.alteration_model`` is ``None``) or cannot
            be loaded.
        OutputError: another run is writing ``out``, or it cannot be written.
    """
    with folder_lock(Path(out)):
        remove_scratch(Path(out))
        return _run_audit(Path(rundir), Path(out), settings or AuditSettings(), truth, stream_sheets)


def _run_audit(rundir: Path, out: Path, s: AuditSettings, truth: Path | None, stream_sheets: int | None
               ) -> AuditResult:
    """:func:`run_audit`, with the lock of ``out`` held: one form's audit (:func:`audit_form`), or one per page type
    merged (:func:`audit_page_types`) for a run read with several templates."""
    require_file(rundir / PAGES_FILE)  # a missing input is named before the detector is looked for
    templates = run_templates(rundir)
    detector = alteration.load_detector(Path(s.alteration_model)) if s.alteration_model is not None else None
    if detector is None:
        log.warning("auditing without the visible-alteration check (--no-alteration)")
    if len(templates) == 1:
        schema = FormSchema.of(next(iter(templates.values())))
        result = audit_form(FormPass(rundir, out, out, schema, s, detector, truth, stream_sheets))
    else:
        result = audit_page_types(rundir, out, templates, s, detector, truth, stream_sheets)
    result.paths["settings"] = write_settings(out, s)  # the report re-checks rules with its rule_tolerance
    return result


@dataclass(frozen=True)
class FormPass:
    """One form's audit over a run folder: the run, the folder that evidence paths are relative to (``out``), the
    folder its files go to (``dest``: ``out``, or a scratch folder of one page type), the form, the settings, the
    loaded detector (None: switched off), the truth file and the sheets audited (``keep``: a mask of a table's
    ``sheet_id`` column; None: all)."""

    rundir: Path
    out: Path
    dest: Path
    schema: FormSchema
    s: AuditSettings
    detector: alteration.Detector | None
    truth: Path | None = None
    stream_sheets: int | None = None
    keep: Callable[[pd.Series], pd.Series] | None = None


def kept_chunks(chunks: Iterable[RunChunk], keep: Callable[[pd.Series], pd.Series] | None) -> Iterator[RunChunk]:
    """The rows of each chunk whose sheet ``keep`` selects (all of them for None); chunks left empty are skipped,
    but at least one chunk comes, so the caller always sees every column."""
    if keep is None:
        yield from chunks
        return
    spare = None
    for chunk in chunks:
        kept = RunChunk(*(t[keep(t["sheet_id"].astype(str)).to_numpy(bool)] for t in
                          (chunk.pages, chunk.fields, chunk.marks)))
        if len(kept.pages) or len(kept.fields) or len(kept.marks):
            spare = False
            yield kept
        elif spare is None:
            spare = kept
    if spare is not None and spare is not False:
        yield spare


def audit_form(p: FormPass) -> AuditResult:
    """Audit the sheets of ``p`` by one form (``p.schema``) into ``p.dest``: the whole audit of a run read with one
    template (:func:`run_audit`), or one page type's of a run read with several."""
    rundir, out, schema, s, detector = p.rundir, p.out, p.schema, p.s, p.detector
    schema.check_settings(s.forensic_fields, s.ruling_party)
    order = page_order(rundir / "pages.csv", p.stream_sheets or EngineSettings().stream_sheets)
    chunks = kept_chunks(run_chunks(rundir, order, FIELDS_COLUMNS, MARKS_COLUMNS), p.keep)
    truth_df = evaluate.read_truth(Path(p.truth), schema) if p.truth is not None else None
    if truth_df is not None and p.keep is not None:
        truth_df = truth_df[p.keep(truth_df["sheet_id"].astype(str)).to_numpy(bool)]
    # the detector trained on this form: the one given, or its folder's <form name>/ subfolder (train-alteration --form)
    detector, skipped = (alteration.for_form(detector, schema.name, s.alteration_any_form) if detector
                         else (None, None))
    if skipped is not None:
        log.warning("%s", skipped)
    dest = p.dest
    dest.mkdir(parents=True, exist_ok=True)
    flag_sink = TableSink(dest / "flags")
    n_fields = order.n_read * len(schema.count_fields) if detector is not None else 0
    try:
        with (tempfile.TemporaryDirectory(dir=dest, prefix=".audit-") as scratch_dir,
              alteration.feature_pool(n_fields) as pool,
              SettledBar(total=len(order.chunk_of), desc="audit", unit="sheet",
                         disable=len(order.chunk_of) < 50) as bar):
            scratch = ParquetSink(Path(scratch_dir) / "sheets.parquet")
            for chunk in chunks:
                table, flags = audit_chunk(chunk, detector, pool, rundir, out, schema, s)
                scratch.write(scratch_rows(table, flags, schema))
                flag_sink.write(flags_to_frame(flags))
                bar.update(len(table))
            sheets, tally, arithmetic = batch_columns(scratch.commit(), schema)
            cross = cross_sheet_flags(sheets[sheets["status"] == OK_STATUS], schema, s)
            while batch := list(itertools.islice(cross, FLAG_BATCH)):
                flag_sink.write(flags_to_frame(batch))
                tally = add_tallies(tally, flag_tally(batch))
            summary = summary_columns(sheets, tally)
            paths = write_sheets(scratch.path, summary, dest)
        paths |= dict(zip(("flags_parquet", "flags_csv"), flag_sink.commit(), strict=True))
    except BaseException:
        flag_sink.discard()
        raise
    sheets = sheets.join(summary)
    forensics = run_forensics(sheets, s, schema)
    cantu_json = cantu_summary(sheets, truth_df, schema, s, skipped)
    paths["forensics"] = write_json(dest / "forensics.json", forensics)
    paths["cantu"] = write_json(dest / "cantu.json", cantu_json)
    truth_eval = None
    if truth_df is not None:
        truth_eval = evaluate.truth_eval(sheets, arithmetic, truth_df, schema, s,
                                         review=evaluate.run_review_marks(rundir, schema), alteration_skipped=skipped)
        paths["truth_eval"] = write_json(dest / "truth_eval.json", truth_eval)
    verdicts = {k: int(v) for k, v in sheets["verdict"].value_counts().items()}
    n_flags = int(summary["n_flags"].sum())
    log.info("audited %d sheets of form '%s': %d flags; sheet verdicts %s", len(sheets), schema.name, n_flags,
             verdicts)
    return AuditResult(len(sheets), n_flags, verdicts, forensics, cantu_json, truth_eval, paths)


def page_types(rundir: Path) -> dict[str, str]:
    """The ``page_type`` of every sheet of ``pages.csv`` (its first row), by sheet_id, in the file's order; empty
    where the reader gave none (a page that matched no template)."""
    path = rundir / PAGES_FILE
    out: dict[str, str] = {}
    for block in csv_blocks(path, ["sheet_id", PAGE_TYPE]):
        for sid, kind in zip(block["sheet_id"].astype(str), block[PAGE_TYPE].fillna(""), strict=True):
            out.setdefault(sid, str(kind))
    return out


def type_mask(types: dict[str, str], name: str | None) -> Callable[[pd.Series], pd.Series]:
    """A ``keep`` mask (:class:`FormPass`) of the sheets whose page type is ``name``; for None, of the sheets of no
    recorded type (pages no template read, rows with no page row)."""
    if name is not None:
        return lambda ids: ids.map(types).eq(name)
    known = set(types.values()) - {""}
    return lambda ids: ~ids.map(types).isin(known)


def audit_page_types(rundir: Path, out: Path, templates: dict[str, Template], s: AuditSettings,
                     detector: alteration.Detector | None, truth: Path | None, stream_sheets: int | None
                     ) -> AuditResult:
    """Audit a run read with several templates: the sheets of each page type (``page_type`` of ``pages.csv``) by
    their own form's rules, cross-sheet checks, forensics and alteration detector, then one sheet table and one
    flag table with a ``page_type`` column, and ``forensics.json``, ``cantu.json`` and ``truth_eval.json`` keyed by
    page type (:data:`BY_PAGE_TYPE`). Sheets of no recorded type (pages no template read) are audited by the first
    form, for their ``page_not_read`` flags alone."""
    rundir, out = Path(rundir), Path(out)
    page_templates(rundir)  # refuses pages of a template the run did not record, or no page_type column
    types = page_types(rundir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".audit-types-") as scratch:
        results: dict[str, AuditResult] = {}
        for name, template in templates.items():
            results[name] = audit_form(FormPass(rundir, out, Path(scratch) / name, FormSchema.of(template), s,
                                                detector, truth, stream_sheets, type_mask(types, name)))
        untyped = None
        if any(kind not in templates for kind in types.values()) or _has_orphans(rundir, types):
            first = FormSchema.of(next(iter(templates.values())))
            untyped = audit_form(FormPass(rundir, out, Path(scratch) / ".untyped", first, s, None, None,
                                          stream_sheets, type_mask(types, None)))
        paths = merge_page_types(results, untyped, types, out)
    summaries = {key: {name: getattr(r, key) for name, r in results.items()}
                 for key in ("forensics", "cantu", "truth_eval")}
    paths["forensics"] = write_json(out / "forensics.json", {BY_PAGE_TYPE: summaries["forensics"]})
    paths["cantu"] = write_json(out / "cantu.json", {BY_PAGE_TYPE: summaries["cantu"]})
    truth_eval = {BY_PAGE_TYPE: summaries["truth_eval"]} if truth is not None else None
    if truth_eval is not None:
        paths["truth_eval"] = write_json(out / "truth_eval.json", truth_eval)
    parts = [*results.values(), *([untyped] if untyped is not None else [])]
    verdicts: dict[str, int] = {}
    for r in parts:
        for k, v in r.verdicts.items():
            verdicts[k] = verdicts.get(k, 0) + v
    return AuditResult(sum(r.n_sheets for r in parts), sum(r.n_flags for r in parts), verdicts,
                       {BY_PAGE_TYPE: summaries["forensics"]}, {BY_PAGE_TYPE: summaries["cantu"]}, truth_eval, paths)


def _has_orphans(rundir: Path, types: dict[str, str]) -> bool:
    """Whether ``fields.parquet`` has rows of sheets that ``pages.csv`` does not list."""
    ids = pq.read_table(rundir / "fields.parquet", columns=["sheet_id"]).column("sheet_id").to_pandas()
    return not ids.astype(str).isin(types.keys()).all()


def with_page_type(frame: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """``frame`` with a ``page_type`` column after ``sheet_id``: each sheet's type from ``pages.csv`` (missing for a
    sheet without a type). A sheet table has it already, among the columns it copies from ``pages.csv``."""
    if PAGE_TYPE in frame:
        return frame
    kinds = frame["sheet_id"].astype(str).map(types).replace("", pd.NA)
    return frame.assign(**{PAGE_TYPE: pd.array(kinds, dtype="string")})[
        ["sheet_id", PAGE_TYPE, *(c for c in frame.columns if c != "sheet_id")]]


def merge_page_types(results: dict[str, AuditResult], untyped: AuditResult | None, types: dict[str, str],
                     out: Path) -> dict:
    """``sheets`` and ``flags`` (Parquet and CSV) of a run of several forms in ``out``: each page type's tables
    with a ``page_type`` column; sheets in the order of ``pages.csv``, flags page type by page type (template name
    order, sheets of no type last), each in its own audit's order. Holds the tables whole."""
    parts = [*results.values(), *([untyped] if untyped is not None else [])]
    sheets = pd.concat([pd.read_parquet(r.paths["sheets_parquet"]) for r in parts], ignore_index=True)
    position = {sid: i for i, sid in enumerate(types)}
    rank = sheets["sheet_id"].astype(str).map(position).fillna(len(position))
    sheets = sheets.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
    flags = pd.concat([pd.read_parquet(r.paths["flags_parquet"]) for r in parts], ignore_index=True)
    paths = {}
    for stem, frame in (("sheets", sheets), ("flags", flags)):
        sink = TableSink(out / stem)
        try:
            sink.write(with_page_type(frame, types))
            paths |= dict(zip((f"{stem}_parquet", f"{stem}_csv"), sink.commit(), strict=True))
        except BaseException:
            sink.discard()
            raise
    return paths


__all__ = ["AuditResult", "run_audit"]
