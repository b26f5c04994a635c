"""Build the static HTML report from an audit output folder (docs/DATA.md section 5).

``build_report(processed, out)`` writes ``index.html`` (batch summary, Cantú comparison, ranked sheet table),
``sheets/<slug>.html`` (a page of its own for each flagged sheet, best ranked first, up to
``ReportSettings.static_pages``), ``sheets/view.html`` (every other sheet, drawn in the browser from
``data/detail-NNN.js``, with its crops from ``data/crops-NNN.js``), ``forensics.html``, ``model.html``,
``figures/*.png``, ``static/`` (CSS and JS) and ``data/`` (CSV exports and the table's rows as ``.js`` chunks, because
Chromium blocks ``fetch()`` of JSON from ``file://``). All links are relative and nothing is fetched from the
network, so the folder works from disk and from any static server. Jinja2 autoescaping is on, so sheet ids,
reasons and paths are HTML-escaped wherever they appear.

Scale (issue 17): the number of files does not grow with the batch beyond ``static_pages`` pages and their scan
copies. Sheets without a page of their own sit in ``detail_chunk_rows``-sheet buckets chosen by a hash of the
sheet id (so one sheet's change touches one bucket), their scans are linked in place in the run folder, and field
crops are grey JPEG ``data:`` URIs (inline in a page, or packed per bucket). A rebuild writes only the files whose
content changed; a crop pack whose source images are unchanged (by path, size and mtime) is not even re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pipeline import __version__
from pipeline import config as cfg
from pipeline.atomic import write_text_atomic
from pipeline.engine.lock import folder_lock
from pipeline.engine.stream import csv_text
from pipeline.forms import Template
from pipeline.progress import SettledBar
from pipeline.report import architecture, figures, forensics_cards, tables, triage
from pipeline.report.formview import (
    FormView,
    RunForms,
    display_names,
    fingerprint_inputs,
    form_view,
    report_template,
    run_forms,
)
from pipeline.report.inputs import ReportInputs, load_alteration_detector, load_inputs, load_models
from pipeline.report.sheetpages import (
    FILES_DIR,
    Confidence,
    crop_data_uri,
    crop_source,
    flag_entries,
    inline_crops,
    mark_entry,
    numeric_overlay,
    percent_box,
    place_scan,
    records_by_sheet,
    scan_source,
    tick_overlay,
    up_to_date,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
MANIFEST = "manifest.json"
MODEL_FIGURES = cfg.REPORTS_DIR / "model"
OK_STATUS = "ok"
#: Whole floats from this size up print as integers (counts read into float columns); below it they are
#: probabilities or rates, where 1.000 and 0.000 are clearer than 1 and 0.
INTEGRAL_FLOAT_MIN = 2
#: Metadata keys shown first on the model page (the rest are under "all metadata").
MODEL_HEADLINE = ("version", "kind", "created", "parent", "temperature", "reject_threshold", "epochs_run",
                  "stop_reason", "train_seconds", "n_params")
#: Columns of the digit-test table, in this order (others follow).
TEST_COLUMNS = ("scope", "test", "n", "statistic", "p_value", "p_adjusted", "alarm", "effect_size", "effect")
#: Index-table columns offered as drop-down filters.
FILTER_COLUMNS = ("verdict", "reading")
#: The flagged sheets only, in ranked order, with their reasons (linked from every page).
FLAGGED_CSV = "flagged.csv"
#: At most this many sheets in the "check these first" block (the ranked table holds the rest).
CHECK_FIRST_MAX = 5
#: Tiers whose sheets go into the "check these first" block (statistical outliers alone do not).
CHECK_FIRST_TIERS = (1, 2, 3)
#: The page that draws any sheet without a page of its own, from its bucket of ``data/detail-NNN.js``.
VIEW_PAGE = "view.html"
DETAIL_PREFIX = "detail"
CROPS_PREFIX = "crops"
#: Data files of an earlier build that a rebuild removes when it no longer writes them.
DATA_PATTERNS = ("sheets-*.js", f"{DETAIL_PREFIX}-*.js", f"{CROPS_PREFIX}-*.js")


@dataclass(frozen=True)
class ReportSettings:
    """How the report is built (section ``report`` of the config file)."""

    title: str = "tally-audit report"
    table_chunk_rows: int = 5000  # rows per data/sheets-NNN.js file: 50,000 sheets -> 10 files of ~0.5 MB
    page_size: int = 50  # table rows shown per page in the browser
    conf_high: float = 0.90  # field confidence at or above this is green
    conf_low: float = 0.60  # below this is red; in between amber
    figure_dpi: int = 110
    copy_scans: bool = True  # copy registered scans into the report (False: link into the run folder)
    scan_width_px: int = 1100  # wider scans are copied at this width (~135 dpi for A4): enough to read the digits
    scan_jpeg_quality: int = 75
    workers: int = 0  # threads copying scans and writing sheet pages; 0 = one per CPU
    static_pages: int = 1000  # flagged sheets (best ranked first) with a page of their own; the rest: sheets/view.html
    detail_chunk_rows: int = 500  # sheets per data/detail-NNN.js bucket: 50,000 sheets -> 100 files
    crop_quality: int = 85  # JPEG quality of the inlined field crops (full resolution, grey)
    fingerprint_party: str = ""  # candidate field of the fingerprint plot; "" = the forensics' winner, else the
    #                              form's leader, else the candidate with most votes


def environment() -> Environment:
    """The Jinja2 environment: autoescape always on, undefined variables are errors."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["plain"] = format_plain
    env.filters["slug"] = lambda v: tables.sheet_slug(str(v))
    env.filters["score"] = triage.score_text
    env.filters["pct"] = lambda v, digits=1: "–" if tables.json_safe(v) is None else f"{100 * v:.{digits}f}%"
    return env


def format_number(value, digits: int = 3) -> str:
    """Integers (and whole floats from nullable count columns) with thousands separators, other numbers with
    ``digits`` decimals, missing as an en dash."""
    value = tables.json_safe(value)
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or value.is_integer() and abs(value) >= INTEGRAL_FLOAT_MIN:
        return f"{int(value):,}"
    if 0 < abs(value) < 10 ** -digits:  # tiny p-values: 3.2e-08, not 0.000
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def format_plain(value) -> str:
    """An identifier (section, station) as written: integral floats without ``.0``, no thousands separators."""
    value = tables.json_safe(value)
    if value is None:
        return "–"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (temp file + rename) so a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def write_if_changed(path: Path, text: str) -> bool:
    """:func:`write_text` unless ``path`` already holds exactly ``text`` (a rebuild rewrites only the sheet pages
    that changed); ``True`` when it wrote."""
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def shown_path(path: Path | None, out: Path) -> str:
    """``path`` as the report names it: relative to the report folder ``out`` ("" for none), so that a published
    report does not tell where its inputs lay on the machine that built it."""
    return "" if path is None else os.path.relpath(Path(path).resolve(), Path(out).resolve())


def prune_data(out: Path, written: set[str]) -> int:
    """Remove the data chunks (:data:`DATA_PATTERNS`) of an earlier report in ``out`` that this build did not write
    (``written``: paths relative to ``out``); returns how many went."""
    gone = 0
    for pattern in DATA_PATTERNS:
        for path in (out / "data").glob(pattern):
            if path.relative_to(out).as_posix() not in written:
                path.unlink()
                gone += 1
    return gone


def previous_manifest(out: Path) -> dict:
    """The manifest of the report already in ``out`` (``{}`` when none or unreadable)."""
    try:
        manifest = json.loads((out / "data" / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def prune_stale(out: Path, pages: set[str], files: set[str]) -> int:
    """After a build into a folder that held a report: remove the sheet pages not in ``pages`` (slugs) and the
    copied images not in ``files`` (paths relative to ``sheets/``); returns how many files went."""
    if not (out / "data" / MANIFEST).is_file():
        return 0
    gone = 0
    for page in (out / "sheets").glob("*.html"):
        if page.stem not in pages:
            page.unlink()
            gone += 1
    root = out / "sheets" / FILES_DIR
    for path in sorted(root.rglob("*"), reverse=True) if root.is_dir() else []:
        rel = path.relative_to(out / "sheets").as_posix()
        if path.is_file() and rel not in files:
            path.unlink()
            gone += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return gone


#: Words for the index table's own columns (the form's fields are named by their labels).
COLUMN_LABELS = {"sheet_id": "sheet", "n_flags": "flags", "alteration_score": "alteration", "min_conf": "min conf.",
                 "suspicion": "score", "reason": "why"}


def table_columns(ranked: pd.DataFrame, form: FormView, forms: RunForms | None = None) -> list[dict]:
    """Column specs of the index table for report.js: key, label (a field's name in the report), whether it sorts
    as a number, and whether it is shown as written (``plain``: the station's ids, without thousands
    separators). A run of several forms (``forms``) shows every form's columns and each sheet's page type."""
    if forms is not None and forms.mixed:
        views = list(forms.views.values())
        names = {k: v for view in reversed(views) for k, v in view.names.items()}  # the first form's name wins
        plain = {k for view in views for k in view.station_key}
        cols = [c for c in tables.mixed_index_columns(views) if c in ranked.columns]
    else:
        names, plain = dict(form.names), set(form.station_key)
        cols = [c for c in tables.index_columns(form) if c in ranked.columns]
    return [{"key": c, "label": names.get(c) or COLUMN_LABELS.get(c, c.replace("_", " ")),
             "numeric": bool(pd.api.types.is_numeric_dtype(ranked[c])), "plain": c in plain}
            for c in cols]


def write_data(ranked: pd.DataFrame, flags: pd.DataFrame, out: Path, settings: ReportSettings,
               form: FormView, forms: RunForms | None = None) -> list[str]:
    """CSV exports plus the index table as ``data/sheets-NNN.js`` chunks; returns the chunk paths."""
    export = ranked.drop(columns=["slug", "tier_severity", "static", "bucket"])
    write_if_changed(out / "data" / "sheets.csv", csv_text(export))
    write_if_changed(out / "data" / FLAGGED_CSV, csv_text(export[export["verdict"] != triage.CLEAN_VERDICT]))
    write_if_changed(out / "data" / "flags.csv", csv_text(flags))
    keys = [c["key"] for c in table_columns(ranked, form, forms)]
    rows = tables.table_rows(ranked, keys)
    chunks = []
    for i in range(0, max(len(rows), 1), settings.table_chunk_rows):
        name = f"data/sheets-{i // settings.table_chunk_rows:03d}.js"
        payload = json.dumps(rows[i:i + settings.table_chunk_rows], separators=(",", ":"), allow_nan=False)
        write_if_changed(out / name, f"window.tallyReport.receive({payload});\n")
        chunks.append(name)
    return chunks


def filter_options(ranked: pd.DataFrame, mixed: bool = False) -> list[dict]:
    """Drop-down filters of the index table: ``[{key, values: [(value, label)]}]`` for the filter columns present
    (and the page type, on a run of several forms: ``mixed``); verdicts in their order of gravity, with the plain
    words of :data:`triage.VERDICT_LABELS`."""
    options = []
    for c in (*FILTER_COLUMNS, *([tables.PAGE_TYPE_COLUMN] if mixed else [])):
        if c not in ranked.columns:
            continue
        present = [v for v in ranked[c].dropna().astype(str).unique() if v]
        if c == "verdict":
            order = [*triage.VERDICT_ORDER, triage.CLEAN_VERDICT]
            present = sorted(present, key=lambda v: order.index(v) if v in order else len(order))
            options.append({"key": c, "values": [(v, triage.VERDICT_LABELS.get(v, v)) for v in present]})
        else:
            options.append({"key": c, "values": [(v, v) for v in sorted(present)]})
    return options


def check_first(ranked: pd.DataFrame, rundir: Path | None, settings: ReportSettings) -> list[dict]:
    """The sheets of the "check these first" block: the first :data:`CHECK_FIRST_MAX` of the ranked table in
    :data:`CHECK_FIRST_TIERS`, each with its reason, its page and its key field's crop (inlined)."""
    top = ranked[ranked["tier"].isin(CHECK_FIRST_TIERS)].head(CHECK_FIRST_MAX)
    items = []
    for row in top.to_dict("records"):
        src = crop_source(rundir, str(row["sheet_id"]), str(row["key_field"])) if row["key_field"] else None
        crop = crop_data_uri(src, settings.crop_quality) if src is not None else None
        items.append({"rank": int(row["rank"]), "sheet_id": row["sheet_id"], "slug": row["slug"], "page": row["page"],
                      "verdict": row["verdict"], "verdict_label": triage.VERDICT_LABELS.get(row["verdict"],
                                                                                           row["verdict"]),
                      "reason": row["reason"], "score": triage.score_text(row.get("suspicion")),
                      "crop": crop or ""})
    return items


def plan_pages(ranked: pd.DataFrame, settings: ReportSettings) -> pd.DataFrame:
    """``ranked`` with where each sheet is shown: ``static`` (a page of its own: a flagged sheet among the first
    ``static_pages`` flagged ones), ``bucket`` (its ``data/detail-NNN.js``: a CRC-32 of its id, so it does not move
    when other sheets change) and ``page`` (the link, relative to the index)."""
    flagged = ranked["verdict"] != triage.CLEAN_VERDICT
    static = flagged & (flagged.cumsum() <= settings.static_pages)
    n_buckets = bucket_count(len(ranked), settings)
    bucket = ranked["sheet_id"].map(lambda s: zlib.crc32(str(s).encode("utf-8")) % n_buckets)
    view = (f"sheets/{VIEW_PAGE}#b=" + bucket.astype(str) + "&at=" + ranked["rank"].astype(str) + "&id="
            + ranked["slug"])
    page = np.where(static, "sheets/" + ranked["slug"] + ".html", view)
    return ranked.assign(static=static.to_numpy(), bucket=bucket.to_numpy(), page=page)


def bucket_count(n_sheets: int, settings: ReportSettings) -> int:
    """How many ``data/detail-NNN.js`` buckets ``n_sheets`` sheets go into (at least one)."""
    return max(1, math.ceil(n_sheets / max(settings.detail_chunk_rows, 1)))


def in_sheets(page: str) -> str:
    """A ``page`` link (relative to the index) as seen from ``sheets/``."""
    return page.removeprefix("sheets/")


def copy_static(out: Path) -> None:
    """The stylesheet and scripts, shared by every page (rewritten only when they changed)."""
    for src in STATIC_DIR.iterdir():
        if src.is_file():
            write_if_changed(out / "static" / src.name, src.read_text(encoding="utf-8"))


def count_fields(template: Template) -> list[str]:
    """Names of the handwritten count fields, in form order."""
    return [f.name for f in template.fields_of_kind("count")]


def by_page_type(data: dict | list) -> dict[str, dict] | None:
    """The per-page-type parts of an audit summary of a run of several forms (``{"by_page_type": {name: ...}}``,
    docs/DATA.md section 4), or ``None`` for a run of one form."""
    parts = data.get(BY_PAGE_TYPE) if isinstance(data, dict) else None
    return {str(k): v if isinstance(v, dict) else {} for k, v in parts.items()} if isinstance(parts, dict) else None


def page_type_anchor(name: str) -> str:
    """The prefix of the HTML ids of one page type's part of a page (``<slug>-``, :func:`tables.sheet_slug`), so
    that the parts of a run of several forms, drawn by the same template, do not repeat an id."""
    return f"{tables.sheet_slug(str(name))}-"


def forensics_view(forensics: dict | list, anchor: str = "") -> dict:
    """forensics.json for display: the tests that ran (one row each, list-valued columns such as the observed
    digit counts left out, the usual columns first), the tests skipped for lack of data, and the batch-level
    notes (correction, alpha, interpretation); each test card's HTML id (``anchor``, the card's ``test-<code
    name>``) and a list of links to them (``toc``). A run of several forms gives one such view per page type
    under ``by_type`` (``[{name, ...view}]``, the ids prefixed by :func:`page_type_anchor`), the top-level parts
    empty."""
    parts = by_page_type(forensics)
    if parts is not None:
        return {**forensics_view({}), "by_type": [{"name": name, **forensics_view(part, page_type_anchor(name))}
                                                  for name, part in parts.items()]}
    records = forensics.get("tests", []) if isinstance(forensics, dict) else forensics
    rows = [tables.flatten(r) for r in records if isinstance(r, dict)]
    ran = [r for r in rows if not r.get("skipped")]
    present = list(dict.fromkeys(k for r in ran for k in r if k != "skipped"))
    columns = [c for c in TEST_COLUMNS if c in present] + [c for c in present if c not in TEST_COLUMNS]
    notes = tables.flatten({k: v for k, v in forensics.items() if k not in ("tests", "klimek")}) \
        if isinstance(forensics, dict) else {}
    cards = [{**c, "anchor": f"{anchor}test-{tables.sheet_slug(str(c['test']))}"}
             for c in forensics_cards.forensic_cards(forensics)]
    return {"test_cols": columns, "test_rows": ran, "skipped_rows": [r for r in rows if r.get("skipped")],
            "notes": notes, "cards": cards, "trust_note": forensics_cards.TRUST_NOTE, "by_type": []}


def save_figure(fig, out: Path, name: str, settings: ReportSettings) -> str | None:
    """Save an optional figure under ``figures/``; its relative path, or ``None`` when there was no data."""
    if fig is None:
        return None
    figures.save(fig, out / "figures" / f"{name}.png", settings.figure_dpi)
    return f"figures/{name}.png"


def fingerprint_party(forensics: dict | list, settings: ReportSettings, form: FormView,
                      sheets: pd.DataFrame) -> str | None:
    """The candidate field of the fingerprint plot: the first of the batch winner the forensics found, the
    configured ``fingerprint_party`` and the form's ``leader`` that is one of the form's candidates in ``sheets``,
    else the candidate with most votes there (``None`` when the form has no candidate)."""
    candidates = [c for c in form.candidates if c in sheets.columns]
    winner = forensics.get("winner") if isinstance(forensics, dict) else None
    chosen = next((str(c) for c in (winner, settings.fingerprint_party, form.leader) if c and c in candidates), None)
    if chosen is not None or not candidates:
        return chosen
    votes = sheets[candidates].apply(pd.to_numeric, errors="coerce").sum()
    return str(votes.idxmax())


def fingerprint(ok: pd.DataFrame, inputs: ReportInputs, form: FormView,
                settings: ReportSettings, forensics: dict | list | None = None) -> tuple[object, str | None]:
    """The election fingerprint of the sheets read (``ok``) and, when it is not drawn, why (the form lacks the
    roles it needs, or no sheet has the numbers). ``forensics``: the form's part of ``forensics.json`` (default
    the whole file)."""
    votes, registered, missing = fingerprint_inputs(form)
    party = fingerprint_party(inputs.forensics if forensics is None else forensics, settings, form, ok)
    if missing or party is None:
        return None, f"Not drawn: {missing or 'the form has no field with role candidate'}."
    fig = figures.fingerprint_figure(ok, party, votes, registered, form.names)
    return fig, None if fig is not None else "Not drawn: no sheet has the votes cast and the registered voters read."


def mixed_fingerprint(ok: pd.DataFrame, inputs: ReportInputs, forms: RunForms,
                      settings: ReportSettings) -> tuple[object, str | None]:
    """The election fingerprint of a run of several forms: of the first page type (by name) whose form and sheets
    can draw it, on that type's sheets alone (the figure's note names it); else why none could."""
    types = ok["sheet_id"].astype(str).map(forms.type_of)
    parts = by_page_type(inputs.forensics) or {}
    notes = []
    for name, view in forms.views.items():
        fig, note = fingerprint(ok[types == name], inputs, view, settings, parts.get(name, {}))
        if fig is not None:
            return fig, f"Drawn from the {name} sheets."
        notes.append(f"{name}: {note.removeprefix('Not drawn: ').rstrip('.')}")
    return None, f"Not drawn for any form: {'; '.join(notes)}."


def build_figures(inputs: ReportInputs, template: Template, pairs: pd.DataFrame | None, truth: dict | None,
                  out: Path, settings: ReportSettings, form: FormView | None = None,
                  forms: RunForms | None = None) -> dict[str, str | None]:
    """Every batch-level matplotlib figure of the report: ``{name: relative path or None}``, and under
    ``notes`` why a figure of the form's numbers was not drawn (``{name: text}``). A run of several forms
    (``forms``) draws the digits of every form's counts and candidates (each sheet has only its own form's)."""
    form = form or form_view(template, inputs.rule_tolerance)
    ok = inputs.sheets[inputs.sheets["status"] == OK_STATUS]
    mixed = forms is not None and forms.mixed
    names = {k: v for view in reversed(list(forms.views.values())) for k, v in view.names.items()} if mixed \
        else dict(form.names)
    counts = list(dict.fromkeys(f for t in forms.templates.values() for f in count_fields(t))) if mixed \
        else count_fields(template)
    candidates = list(dict.fromkeys(c for view in forms.views.values() for c in view.candidates)) if mixed \
        else list(form.candidates)
    per_field = pd.Series(truth["per_field"], dtype=float).rename(index=names) if truth and truth["per_field"] \
        else None
    fingerprint_fig, fingerprint_note = mixed_fingerprint(ok, inputs, forms, settings) if mixed else \
        fingerprint(ok, inputs, form, settings)
    made = {
        "last_digits": figures.last_digit_figure(ok, [c for c in counts if c in ok.columns], names),
        "second_digits": figures.second_digit_figure(ok, [c for c in candidates if c in ok.columns]),
        "fingerprint": fingerprint_fig,
        "confidence": figures.confidence_figure(inputs.fields, inputs.digits),
        "confusion": figures.confusion_figure(pairs),
        "accuracy": figures.accuracy_figure(per_field),
    }
    return {**{name: save_figure(fig, out, name, settings) for name, fig in made.items()},
            "notes": {"fingerprint": fingerprint_note} if fingerprint_note else {}}


def digit_accuracy_of(pairs: pd.DataFrame | None) -> tuple[float | None, int]:
    """The share of digits read as written in ``pairs`` (:func:`tables.digit_pairs`) and how many there are
    (``None`` and 0 without any)."""
    if pairs is None or not len(pairs):
        return None, 0
    return float((pairs["truth"] == pairs["label"]).mean()), len(pairs)


def truth_context(truth_eval: dict, pairs: pd.DataFrame | None, forms: RunForms, out: Path,
                  settings: ReportSettings) -> dict | None:
    """The ground-truth figures the index and the forensics page show (:func:`tables.truth_summary` of
    ``truth_eval.json``; ``None`` without one), with ``by_type`` empty. A run of several forms (``truth_eval.json``
    keyed by page type) gives one such summary per page type under ``by_type`` (``[{name, anchor, ...summary,
    digit_accuracy, digits_n, figure}]``): its fields named by its own form, its digits (``pairs``, by the page
    type of their sheet) and its accuracy figure (``figures/accuracy_<slug>.png``); the top-level figures empty."""
    if not truth_eval:
        return None
    parts = by_page_type(truth_eval)
    if parts is None:
        return {**tables.truth_summary(truth_eval), "by_type": []}
    kinds = pairs["sheet_id"].astype(str).map(lambda sid: forms.page_types.get(sid, "")) \
        if pairs is not None and len(pairs) else None
    sections = []
    for name, part in parts.items():
        summary = tables.truth_summary(part) or tables.no_truth_summary()
        names = dict(forms.views.get(name, FormView()).names)
        per_field = pd.Series(summary["per_field"], dtype=float).rename(index=names) if summary["per_field"] \
            else None
        accuracy, n_digits = digit_accuracy_of(pairs[kinds == name] if kinds is not None else None)
        sections.append({"name": name, "anchor": page_type_anchor(name), **summary, "digit_accuracy": accuracy,
                         "digits_n": n_digits,
                         "figure": save_figure(figures.accuracy_figure(per_field), out,
                                               f"accuracy_{tables.sheet_slug(name)}", settings)})
    return {**tables.no_truth_summary(), "by_type": sections}


def cantu_context(cantu: dict | list, out: Path, settings: ReportSettings, prefix: str = "cantu") -> dict:
    """The Cantú comparisons with one rate figure each (``figures/<prefix>_<i>.png``). A run of several forms
    gives one such view per page type under ``by_type`` (``[{name, ...view}]``), the top-level comparisons
    empty."""
    parts = by_page_type(cantu)
    if parts is not None:
        sections = [{"name": name, **cantu_context(part, out, settings, f"cantu_{tables.sheet_slug(name)}")}
                    for name, part in parts.items()]
        return {**tables.cantu_view({}), "comparisons": [], "by_type": sections}
    view = tables.cantu_view(cantu if isinstance(cantu, dict) else {})
    for i, comparison in enumerate(view["comparisons"]):
        comparison["figure"] = save_figure(figures.cantu_figure(comparison["groups"], view["level"]), out,
                                           f"{prefix}_{i}", settings)
    return {**view, "by_type": []}


def model_plot_sources(models_dir: Path, current: Path | None) -> list[Path]:
    """The current model's figures: PNGs in its version folder, else (for the project's own ``models/``) the
    ones ``train`` writes to ``reports/model/``, which belong to the model trained last."""
    own = sorted(current.glob("*.png")) if current is not None else []
    if own or models_dir.resolve() != cfg.MODELS_DIR.resolve() or not MODEL_FIGURES.is_dir():
        return own
    return sorted(MODEL_FIGURES.glob("*.png"))


def copy_model_plots(sources: list[Path], out: Path) -> list[dict]:
    """Copy the model figures under ``figures/model/`` (unless already there and up to date); ``[{src, title}]``."""
    plots = []
    for png in sources:
        dst = out / "figures" / "model" / png.name
        if png.resolve() != dst.resolve() and not (up_to_date(dst, png) and dst.stat().st_size == png.stat().st_size):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, dst)
        plots.append({"src": f"figures/model/{png.name}", "title": png.stem.replace("_", " ")})
    return plots


def stop_reason_text(metadata: dict) -> str | None:
    """Why training stopped, in words, from the model's ``stop_reason`` (``"code: details"``)."""
    reason = metadata.get("stop_reason")
    if not reason:
        return None
    code, _, detail = str(reason).partition(":")
    words = {"early_stopping": "early stopping", "time_budget": "the time budget, not early stopping",
             "max_epochs": "the epoch limit, not early stopping"}
    text = words.get(code.strip(), code.strip().replace("_", " "))
    return f"{text} ({detail.strip()})" if detail.strip() and code.strip() != "max_epochs" else text


#: The model page's teaching figures (:mod:`pipeline.model.plots`), with what they show in ``model_cnn.json``.
CNN_INFO = "model_cnn.json"
#: MNIST classes shown augmented on the model page (digits people write in many ways).
AUGMENT_CLASSES = (2, 4, 7)


def sheet_digit(rundir: Path | None, template: Template,
                sheets: set[str] | None = None) -> tuple[np.ndarray | None, str]:
    """The most confidently read digit of the run folder's sheets (``digits.npy`` row of ``digits_read.parquet``;
    of the ``sheets`` given, when given) and a caption naming it (with the field's name from the run's
    ``template``); ``(None, "")`` when the run folder has none."""
    if rundir is None or not (rundir / "digits.npy").is_file() or not (rundir / "digits_read.parquet").is_file():
        return None, ""
    reads = pd.read_parquet(rundir / "digits_read.parquet")
    if sheets is not None:
        reads = reads[reads["sheet_id"].astype(str).isin(sheets)]
    counts = set(count_fields(template))
    if "field" in reads.columns and reads["field"].isin(counts).any():
        reads = reads[reads["field"].isin(counts)]  # a vote count's digit, not a station number's
    if "digit_row" not in reads.columns or reads.empty:
        return None, ""
    best = reads.sort_values(["confidence", "sheet_id"], ascending=[False, True], kind="stable").iloc[0]
    digits = np.load(rundir / "digits.npy", mmap_mode="r")
    name = display_names(template).get(str(best["field"]), str(best["field"]))
    return np.array(digits[int(best["digit_row"])]), (f"a {int(best['label'])} read at {best['confidence']:.1%}\n"
                                                      f"from sheet {best['sheet_id']},\nfield {name}")


def sheet_digits(rundir: Path | None, template: Template,
                 forms: RunForms | None = None) -> list[tuple[str, np.ndarray, str]]:
    """The sample digits of the model page, ``[(page type, digit, caption)]``: :func:`sheet_digit` of the run's
    one form (page type ``""``), or on a run of several forms (``forms``) one per page type, each the most
    confident digit of that type's sheets and counts, named by its own form (a type without a digit read is left
    out)."""
    if forms is None or not forms.mixed:
        digit, caption = sheet_digit(rundir, template)
        return [] if digit is None else [("", digit, caption)]
    samples = []
    for name, own in forms.templates.items():
        sheets = {sid for sid, kind in forms.page_types.items() if kind == name}
        digit, caption = sheet_digit(rundir, own, sheets)
        if digit is not None:
            samples.append((name, digit, caption.replace("\nfield", f"\n{name} field")))
    return samples


def training_digits() -> tuple[np.ndarray, np.ndarray] | None:
    """One MNIST training digit of each of :data:`AUGMENT_CLASSES` (``None`` without MNIST on disk)."""
    from pipeline.mnist import load_mnist

    try:
        mnist = load_mnist(allow_download=False)
    except Exception as exc:  # MissingDataError or an unreadable file: the page goes without the examples
        log.warning("model page: no augmentation examples (%s)", exc)
        return None
    rows = [int(np.flatnonzero(mnist.y_train == c)[0]) for c in AUGMENT_CLASSES]
    return mnist.x_train[rows], mnist.y_train[rows]


def make_cnn_figures(model_path: Path, rundir: Path | None, out: Path, template: Template,
                     forms: RunForms | None = None) -> dict:
    """Draw the first-layer filters, the feature maps of a sheet digit and augmented training digits of the model
    in ``model_path`` (loaded in safe mode) under ``figures/``; returns what they show (``template``: the run's
    form, naming the sheet digit's field). On a run of several forms (``forms``) there is a sheet digit of each
    page type (:func:`sheet_digits`), each with its feature maps (``figures/model_feature_maps_<slug>.png``), listed
    under ``samples`` (``[{page_type, digit, figure}]``); ``maps``, ``digit`` and ``figures.maps`` are the
    first's."""
    from pipeline.model import plots
    from pipeline.model.recogniser import load_keras_model

    model = load_keras_model(model_path)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    info: dict = {"filters": plots.filters_png(model, out / "figures" / "model_filters.png"),
                  "figures": {"filters": "figures/model_filters.png"}}
    info["samples"] = []
    for kind, digit, caption in sheet_digits(rundir, template, forms):
        figure = f"figures/model_feature_maps{'_' + tables.sheet_slug(kind) if kind else ''}.png"
        rows = plots.feature_maps_png(model, digit, caption, out / figure)
        info["samples"].append({"page_type": kind, "digit": caption.replace("\n", " "), "figure": figure})
        info["figures"][f"maps_{tables.sheet_slug(kind)}" if kind else "maps"] = figure
        if "maps" not in info:
            info["maps"] = [{**r, "shape": " x ".join(str(v) for v in r["shape"])} for r in rows]
            info["digit"] = caption.replace("\n", " ")
            info["figures"]["maps"] = figure
    info["forms"] = list(forms.templates) if forms is not None and forms.mixed else []
    train = training_digits()
    if train is not None:
        plots.augmented_png(*train, out / "figures" / "model_augment.png")
        info["figures"]["augment"] = "figures/model_augment.png"
    return info


def cnn_figures(model_dir: Path | None, rundir: Path | None, out: Path, template: Template,
                forms: RunForms | None = None) -> dict:
    """:func:`make_cnn_figures`, kept from an earlier build of the same forms while the model file and the run's
    digits are older than it; ``{}`` (logged) when there is no usable model: a teaching figure never stops the
    report."""
    model_path = model_dir / "model.keras" if model_dir is not None else None
    if model_path is None or not model_path.is_file():
        return {}
    info_path = out / "figures" / CNN_INFO
    sources = [model_path, *(rundir / name for name in ("digits.npy", "digits_read.parquet", "pages.csv")
                             if rundir is not None and (rundir / name).is_file())]
    names = list(forms.templates) if forms is not None and forms.mixed else []
    if info_path.is_file() and all(up_to_date(info_path, src) for src in sources):
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            if info.get("forms", []) == names and "samples" in info and \
                    all((out / f).is_file() for f in info["figures"].values()):
                return info
        except (OSError, ValueError, KeyError, TypeError):
            pass
    try:
        info = make_cnn_figures(model_path, rundir, out, template, forms)
    except Exception as exc:  # ModelError, a missing TensorFlow, a model of another shape: the page goes without
        log.warning("model page: no filter or feature-map figures (%s)", exc)
        return {}
    write_text(info_path, json.dumps(info, indent=1))
    return info


def model_context(models_dir: Path, out: Path, settings: ReportSettings, rundir: Path | None = None,
                  template: Template | None = None, forms: RunForms | None = None) -> dict:
    """Model page data: every version's metadata (flattened), training curves of the current one, the
    alteration detector and the model stage's plots (``template``: the run's form; default the run folder's;
    ``forms``: a run of several forms, whose page types each get a sample digit)."""
    template = template or report_template(rundir)
    versions = load_models(models_dir)
    history = [{"version": v.version, "current": v.current, "meta": tables.flatten(v.metadata)} for v in versions]
    metric_keys = sorted({k for h in history for k, val in h["meta"].items()
                          if k.startswith("metrics.") and isinstance(val, int | float)})
    current = next((v for v in versions if v.current), None)
    curves = figures.training_figure(current.metadata.get("history"), stop_reason_text(current.metadata),
                                     current.metadata.get("best_epoch")) if current else None
    sources = model_plot_sources(models_dir, models_dir / current.version if current else None)
    detector = load_alteration_detector(models_dir)
    return {"history": history[::-1], "metric_keys": metric_keys, "headline_keys": MODEL_HEADLINE,
            "current": next((h for h in history if h["current"]), None), "plots": copy_model_plots(sources, out),
            "curves": save_figure(curves, out, "model_training", settings),
            "architecture": architecture.architecture(models_dir / current.version) if current else None,
            "cnn": cnn_figures(models_dir / current.version if current else None, rundir, out, template, forms),
            "detector": tables.detector_view(tables.flatten(detector)) if isinstance(detector, dict) else {}}


def station_meta(row: dict, form: FormView) -> list[list[str]]:
    """The fields that identify the station (the form's ``station_key``), as ``[[name, value], ...]`` for the
    sheet's header: each by its name in the report, its value as written."""
    return [[form.names.get(k, k), format_plain(row[k])] for k in form.station_key if k in row]


def sheet_form(sheet_id: str, template: Template, form: FormView,
               forms: RunForms | None) -> tuple[Template, FormView]:
    """The template and form a sheet is drawn with: its own page's on a run of several forms (``forms``), else the
    run's one."""
    if forms is None or not forms.mixed:
        return template, form
    return forms.template(sheet_id), forms.form(sheet_id)


def sheet_context(row: dict, reads: dict, sheet_flags: list[dict], inputs: ReportInputs, template: Template,
                  out: Path, settings: ReportSettings, total: int, static: bool = True,
                  form: FormView | None = None) -> dict:
    """Everything one sheet page shows: the station's identity, the overlay (the fields that caused a flag
    outlined), each flag with its causing fields' crops right under it, the form's rules that hold, and why the
    sheet ranks where it does. For a ``static`` page the scan is copied and the crops inlined; otherwise the scan
    is linked in place and each crop's ``src`` is left ``None`` (the crop packs hold them). ``form``: the report's
    view of ``template`` (made from it when not given)."""
    sid, slug = row["sheet_id"], row["slug"]
    conf = Confidence(settings.conf_high, settings.conf_low)
    form = form or form_view(template, inputs.rule_tolerance)
    names = dict(form.names)
    entries = flag_entries(sheet_flags, row, names, settings.conf_high, form)
    flagged = {f for e in entries for f in e["causes"]}
    numeric = [numeric_overlay(f, reads.get(f.name), row, flagged, template, conf, names)
               for f in template.fields if f.is_numeric]
    ticks = [t for f in template.fields_of_kind("tick", "choice") for t in tick_overlay(f, row, template)]
    by_name = {f["name"]: f for f in numeric}
    by_name.update({f.name: mark_entry(f, row, names) for f in template.fields_of_kind("tick", "choice")
                    if f.name in flagged})
    wanted = [f for f in by_name if f in flagged]
    if static:
        srcs: dict[str, str | None] = inline_crops(inputs.rundir, sid, wanted, settings.crop_quality)
    else:
        srcs = {f: None for f in wanted if crop_source(inputs.rundir, sid, f) is not None}
    for entry in entries:
        entry["crops"] = [{**by_name[f], "src": srcs[f]} for f in entry["causes"] if f in srcs and f in by_name]
    failed = {str(f.get("rule")) for f in sheet_flags}
    severity = triage.severity_name(row.get("tier_severity"))
    return {"row": {k: tables.json_safe(v) for k, v in row.items()}, "station": station_meta(row, form),
            "numeric": numeric, "ticks": ticks,
            "flags": entries, "aspect": 100 * template.height_mm / template.width_mm,
            "verdict_label": triage.VERDICT_LABELS.get(str(row.get("verdict")), str(row.get("verdict"))),
            "passed": triage.passed_checks(row, failed, form),
            "rank_reason": triage.rank_reason(int(row["rank"]), total, int(row["tier"]), severity,
                                              tables.json_safe(row.get("suspicion"))),
            "rank_basis": triage.rank_basis(int(row["tier"]), severity, tables.json_safe(row.get("suspicion"))),
            "scan": place_scan(scan_source(inputs.rundir, sid), out, slug, settings.copy_scans and static,
                               settings.scan_width_px, settings.scan_jpeg_quality)}


def write_sheet_pages(ranked: pd.DataFrame, inputs: ReportInputs, template: Template, env: Environment, out: Path,
                      settings: ReportSettings, common: dict, forms: RunForms | None = None) -> dict:
    """A page of its own for each sheet :func:`plan_pages` marks ``static``, with previous/next links in the
    ranking, each sheet of a run of several forms (``forms``) drawn with its own page's template and named by its
    page type; a page (or scan copy) already there and unchanged is not rewritten, and those of an earlier build
    that are no longer used are removed. Threads overlap the image work and file writes (OpenCV and file I/O
    release the GIL). Returns ``{written, kept, removed}`` counts of pages (removed: pages and images)."""
    page = env.get_template("sheet.html")
    form = form_view(template, inputs.rule_tolerance)
    reads = records_by_sheet(inputs.fields)
    flags = records_by_sheet(inputs.flags)
    pages = {sid: recs[0] for sid, recs in records_by_sheet(inputs.pages).items()}
    rows = ranked.to_dict("records")
    static = [i for i, r in enumerate(rows) if r["static"]]

    def write_one(i: int) -> tuple[bool, set[str]]:
        row, sid = rows[i], rows[i]["sheet_id"]
        own, own_form = sheet_form(sid, template, form, forms)
        ctx = sheet_context(row, {str(r["field"]): r for r in reads.get(sid, [])}, flags.get(sid, []), inputs,
                            own, out, settings, len(rows), form=own_form)
        ctx["page_type"] = forms.type_of(sid) if forms is not None and forms.mixed else ""
        ctx["read"] = {k: tables.json_safe(v) for k, v in pages.get(sid, {}).items()}
        ctx["prev"] = in_sheets(rows[i - 1]["page"]) if i > 0 else None
        ctx["next"] = in_sheets(rows[i + 1]["page"]) if i + 1 < len(rows) else None
        ctx["position"], ctx["total"] = i + 1, len(rows)
        files = {ctx["scan"]} if ctx["scan"] and ctx["scan"].startswith(f"{FILES_DIR}/") else set()
        html = page.render(root="../", active="", **{**common, "built": ""}, **ctx)
        return write_if_changed(out / "sheets" / f"{row['slug']}.html", html), files

    written, files = 0, set()
    with ThreadPoolExecutor(max_workers=settings.workers or os.cpu_count() or 1) as pool:
        for wrote, used in SettledBar(pool.map(write_one, static), total=len(static), desc="sheet pages",
                                unit="sheet", disable=len(static) < 2):
            written += wrote
            files |= used
    removed = prune_stale(out, {rows[i]["slug"] for i in static} | {VIEW_PAGE[:-len(".html")]}, files)
    return {"written": written, "kept": len(static) - written, "removed": removed}


def evidence_cells(evidence: dict) -> list | None:
    """A flag's :func:`tables.evidence_view` as the view page draws it, formatted as the sheet page's evidence
    tables are: ``[[[key, value], ...], [column, ...], [[field, [value, ...]], ...]]`` (keys and columns in words,
    every value through :func:`format_number`), or ``None`` when the page of its own shows no evidence table."""
    items, rows = evidence.get("items") or [], evidence.get("rows") or []
    if not items and not rows:
        return None
    return [[[str(k).replace("_", " "), format_number(v)] for k, v in items],
            [str(c).replace("_", " ") for c in evidence.get("columns") or []] if rows else [],
            [[str(f), [format_number(v) for v in vals]] for f, vals in rows]]


def detail_record(ctx: dict, read: dict) -> dict:
    """One sheet's entry in its ``data/detail-NNN.js`` bucket: what ``sheets/view.html`` draws, every number
    already formatted and nothing that depends on the sheet's position in the ranking (so a bucket changes only
    when one of its own sheets does). Field and tick lists follow the order of the view page's geometry. Each flag
    carries what the sheet page shows of it: its plain reason, the fields that caused it (``causes``), their crops
    (``crops``, images in the crop pack) and, when there is any, its evidence tables (``ev``, :func:`evidence_cells`);
    the checks that pass are in ``passed``."""
    row = ctx["row"]
    meta = [*ctx["station"], *([["page type", ctx["page_type"]]] if ctx.get("page_type") else []),
            ["page", str(row.get("reading"))], ["score", triage.score_text(row.get("suspicion"))]]
    if "alteration_score" in row:
        meta.append(["alteration score", format_number(row["alteration_score"], 2)])
    meta.append(["findings", format_number(row.get("n_flags"))])
    if read.get("registration_score") is not None:
        meta.append(["registration", format_number(read["registration_score"])])

    def crop(c: dict) -> list:
        return [c["name"], c["label"], c["text"] or "", c["conf_class"],
                "" if c["confidence"] is None else f"{c['confidence']:.2f}"]

    def flag(e: dict) -> dict:
        entry = {"severity": e["severity"], "verdict": e["verdict"], "label": e["verdict_label"], "plain": e["plain"],
                 "causes": e["cause_names"], "reason": e["reason"], "rule": e["rule"],
                 "crops": [crop(c) for c in e["crops"]]}
        evidence = evidence_cells(e["evidence"])
        if evidence:
            entry["ev"] = evidence
        return entry

    form = {"form": ctx["page_type"]} if ctx.get("page_type") else {}
    return {"id": row["sheet_id"], **form, "verdict": row.get("verdict"), "label": ctx["verdict_label"],
            "basis": ctx["rank_basis"], "meta": meta, "scan": ctx["scan"],
            "note": f"Reader: {row.get('reading')} — {read['reason']}" if read.get("reason") else "",
            "status": read.get("status") or "",
            "f": [[f["text"], "" if f["confidence"] is None else format_number(f["confidence"]), f["conf_class"],
                   int(f["needs_review"]), f["alternatives"], int(f["flagged"])] for f in ctx["numeric"]],
            "t": [[int(t["on"]), int(t["known"])] for t in ctx["ticks"]],
            "flags": [flag(e) for e in ctx["flags"]],
            "passed": ctx["passed"]}


def crop_signature(sources: list[tuple[str, str, Path]], quality: int) -> str:
    """A fingerprint of a crop pack's inputs (sheet, field, path, size, mtime of each image): a pack whose
    fingerprint is unchanged is kept without decoding a single image."""
    digest = hashlib.sha1(str(quality).encode())
    for slug, field, src in sorted(sources):
        stat = src.stat()
        digest.update(f"{slug}\0{field}\0{src}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def write_details(ranked: pd.DataFrame, inputs: ReportInputs, template: Template, out: Path,
                  settings: ReportSettings, previous: dict,
                  forms: RunForms | None = None) -> tuple[dict, set[str], dict]:
    """The sheets without a page of their own, in ``data/detail-NNN.js`` buckets (:func:`plan_pages`), and their
    flagged fields' crops in ``data/crops-NNN.js``; each sheet of a run of several forms (``forms``) drawn with
    its own page's template. Returns ``({written, kept, crops_written, crops_kept}, the files written or kept
    (relative to ``out``), {bucket: crop-pack fingerprint})``."""
    forms = forms if forms is not None and forms.mixed else None
    form = form_view(template, inputs.rule_tolerance)
    reads = records_by_sheet(inputs.fields)
    flags = records_by_sheet(inputs.flags)
    pages = {sid: recs[0] for sid, recs in records_by_sheet(inputs.pages).items()}
    n_buckets = bucket_count(len(ranked), settings)
    records: dict[int, dict] = {b: {} for b in range(n_buckets)}
    crops: dict[int, list[tuple[str, str, Path]]] = {b: [] for b in range(n_buckets)}
    others = ranked[~ranked["static"]].to_dict("records")
    for row in SettledBar(others, desc="sheet data", unit="sheet", disable=len(others) < 1000, mininterval=2):
        sid = row["sheet_id"]
        own, own_form = sheet_form(sid, template, form, forms)
        ctx = sheet_context(row, {str(r["field"]): r for r in reads.get(sid, [])}, flags.get(sid, []), inputs,
                            own, out, settings, len(ranked), static=False, form=own_form)
        if forms is not None:
            ctx["page_type"] = forms.type_of(sid)
        read = {k: tables.json_safe(v) for k, v in pages.get(sid, {}).items()}
        records[row["bucket"]][row["slug"]] = detail_record(ctx, read)
        wanted = {c["name"] for e in ctx["flags"] for c in e["crops"]}
        crops[row["bucket"]] += [(row["slug"], f, crop_source(inputs.rundir, sid, f)) for f in sorted(wanted)]
    counts = {"written": 0, "kept": 0, "crops_written": 0, "crops_kept": 0}
    files, signatures = set(), {}
    old_signatures = previous.get("crop_packs", {}) if isinstance(previous.get("crop_packs"), dict) else {}
    for b in range(n_buckets):
        name = f"data/{DETAIL_PREFIX}-{b:03d}.js"
        payload = json.dumps(records[b], separators=(",", ":"), allow_nan=False)
        wrote = write_if_changed(out / name, f"window.tallySheet.receive({b}, {payload});\n")
        counts["written" if wrote else "kept"] += 1
        files.add(name)
        if not crops[b]:
            continue
        name = f"data/{CROPS_PREFIX}-{b:03d}.js"
        signature = crop_signature(crops[b], settings.crop_quality)
        signatures[str(b)] = signature
        files.add(name)
        if old_signatures.get(str(b)) == signature and (out / name).is_file():
            counts["crops_kept"] += 1
            continue
        pack: dict[str, dict[str, str]] = {}
        for slug, field, src in crops[b]:
            uri = crop_data_uri(src, settings.crop_quality)
            if uri:
                pack.setdefault(slug, {})[field] = uri
        payload = json.dumps(pack, separators=(",", ":"))
        counts["crops_written"] += write_if_changed(out / name, f"window.tallySheet.crops({b}, {payload});\n")
    return counts, files, signatures


def form_geometry(template: Template) -> dict:
    """A form's geometry as ``sheets/view.html`` draws it: its numeric fields' and tick boxes (percent of the page,
    with their names in the report) and the page's aspect."""
    names = display_names(template)
    fields = [{"name": f.name, "label": names.get(f.name, f.label), "box": percent_box(f.bounds, template)}
              for f in template.fields if f.is_numeric]
    row = {f.name: None for f in template.fields}
    ticks = [{"name": t["name"], "label": t["label"], "box": t["box"]}
             for f in template.fields_of_kind("tick", "choice") for t in tick_overlay(f, row, template)]
    return {"fields": fields, "ticks": ticks, "aspect": 100 * template.height_mm / template.width_mm}


def view_config(template: Template, ranked: pd.DataFrame, chunks: list[str], settings: ReportSettings,
                forms: RunForms | None = None) -> dict:
    """What ``sheets/view.html`` needs besides a sheet's record: the form's geometry (:func:`form_geometry`; on a
    run of several forms, ``forms``, every form's by name under ``forms``, each record naming its own), the number
    of sheets and where the ranked table's chunks are (to find a sheet by its position)."""
    several = {"forms": {name: form_geometry(t) for name, t in forms.templates.items()}} \
        if forms is not None and forms.mixed else {}
    return {**form_geometry(template), **several,
            "total": len(ranked), "chunks": [f"../{c}" for c in chunks], "chunk_rows": settings.table_chunk_rows,
            "detail": f"../data/{DETAIL_PREFIX}-", "crops": f"../data/{CROPS_PREFIX}-"}


def rule_rows(form: FormView) -> list[dict]:
    """A form's rules for the index's table of them."""
    return [{"name": r.name, "label": r.label, "text": r.text, "soft": r.soft} for r in form.rules]


def summary_context(inputs: ReportInputs, ranked: pd.DataFrame, settings: ReportSettings,
                    form: FormView | None = None, forms: RunForms | None = None) -> dict:
    """The batch figures shown on the index page; every count of sheets comes from ``ranked``'s one verdict per
    sheet. The flags are counted by rule, each form rule with its label or text, and the run's form (``form``)
    lists its rules. A run of several forms (``forms``) counts the flags by page type and rule (the ``page_type``
    of ``flags.*``: two forms may name a rule alike), each rule titled by its own form, and lists every form's
    rules (``forms``: ``[{name, rules}]``)."""
    verdicts = tables.verdict_counts(ranked)
    form = form or FormView()
    mixed = forms is not None and forms.mixed
    by_rule, rule_columns = mixed_rule_counts(inputs.flags, forms) if mixed else plain_rule_counts(inputs.flags, form)
    return {"n_sheets": len(ranked), "n_flagged": int((ranked["verdict"] != triage.CLEAN_VERDICT).sum()),
            "n_flags": len(inputs.flags), "status_counts": tables.status_counts(ranked),
            "by_rule": by_rule, "mixed": mixed,
            "form_name": "" if mixed else form.name, "form_rules": [] if mixed else rule_rows(form),
            "forms": [{"name": name, "rules": rule_rows(view)} for name, view in forms.views.items()] if mixed else [],
            "rule_columns": rule_columns, "rule_tolerance": inputs.rule_tolerance,
            "verdicts": [{"verdict": v, "label": triage.VERDICT_LABELS.get(v, v), "n": n} for v, n in verdicts.items()],
            "tiers": triage.TIERS, "check_first": check_first(ranked, inputs.rundir, settings),
            "n_check": int(ranked["tier"].isin(CHECK_FIRST_TIERS).sum()),
            "alteration_off": alteration_off(inputs.cantu)}


def plain_rule_counts(flags: pd.DataFrame, form: FormView) -> tuple[list[dict], list[str]]:
    """The flags by rule and severity (:func:`tables.flags_by_rule`), each rule with its title in ``form``, and
    the table's columns."""
    by_rule = tables.flags_by_rule(flags)
    titles = {r.name: r.title for r in form.rules}
    return ([{"rule": r, "title": titles.get(str(r), ""), **{k: int(v) for k, v in row.items()}}
             for r, row in by_rule.iterrows()], list(by_rule.columns))


def mixed_rule_counts(flags: pd.DataFrame, forms: RunForms) -> tuple[list[dict], list[str]]:
    """:func:`plain_rule_counts` of a run of several forms: per page type (``page_type``, "" for pages of no type)
    and rule, each rule titled by its own form; most flags first."""
    kinds = flags[tables.PAGE_TYPE_COLUMN].fillna("").astype(str) if tables.PAGE_TYPE_COLUMN in flags.columns \
        else flags["sheet_id"].map(lambda sid: forms.page_types.get(str(sid), ""))
    rows: list[dict] = []
    columns: list[str] = []
    for kind in sorted(set(kinds)):
        part, _ = plain_rule_counts(flags[kinds == kind], forms.views.get(kind, FormView()))
        rows += [{**r, "page_type": kind} for r in part]
    for r in rows:
        columns += [c for c in r if c not in columns and c not in ("rule", "title", "page_type")]
    order = [c for c in triage.SEVERITIES if c in columns] + [c for c in columns if c not in triage.SEVERITIES]
    order = [c for c in order if c not in ("total", "sheets")] + [c for c in ("total", "sheets") if c in columns]
    rows = [{**{c: 0 for c in order}, **r} for r in rows]
    return sorted(rows, key=lambda r: -r["total"]), order


#: Keys of ``cantu.json`` (docs/DATA.md section 4): why the detector scored no sheet of the form, and a run of
#: several forms' per-page-type results.
ALTERATION_SKIPPED, BY_PAGE_TYPE = "alteration_skipped", "by_page_type"


def alteration_off(cantu: dict | list) -> str | None:
    """Why the audit found no altered sheet by design (the alteration check did not run, or its detector was
    trained on another form: ``alteration_skipped``), or ``None``: the report says it on its first screen, since a
    batch without the check can look clean. A run of several forms names each page type's reason."""
    if not isinstance(cantu, dict):
        return None
    if isinstance(cantu.get(BY_PAGE_TYPE), dict):
        reasons = {name: alteration_off(part) for name, part in cantu[BY_PAGE_TYPE].items()}
        return "; ".join(f"{name}: {why}" for name, why in reasons.items() if why) or None
    if cantu.get(ALTERATION_SKIPPED):
        return str(cantu[ALTERATION_SKIPPED])
    detected = cantu.get("detected", {})
    return detected.get("skipped") if isinstance(detected, dict) else None


def build_report(processed: Path, out: Path = cfg.REPORTS_DIR, rundir: Path | None = None, *,
                 truth: Path | None = None, models_dir: Path = cfg.MODELS_DIR,
                 settings: ReportSettings | None = None) -> Path:
    """Write the whole report for the audit output ``processed`` into ``out``; returns ``out/index.html``.

    Raises:
        OutputError: another run is writing ``out``, or it cannot be written.
    """
    with folder_lock(Path(out)):
        return _build_report(Path(processed), Path(out), rundir, truth, Path(models_dir), settings or ReportSettings())


def _build_report(processed: Path, out: Path, rundir: Path | None, truth: Path | None, models_dir: Path,
                  settings: ReportSettings) -> Path:
    """:func:`build_report`, with the lock of ``out`` held."""
    start = time.perf_counter()
    inputs = load_inputs(Path(processed), rundir, truth)
    forms, env = run_forms(inputs.rundir, inputs.processed, inputs.rule_tolerance), environment()
    template, form = forms.templates[forms.default], forms.first
    ranked = tables.rank_sheets(inputs.sheets, inputs.flags, dict(form.names), settings.conf_high, form,
                                forms.form if forms.mixed else None)
    if forms.mixed:
        ranked[tables.PAGE_TYPE_COLUMN] = ranked["sheet_id"].map(lambda sid: forms.page_types.get(str(sid), ""))
    ranked = plan_pages(ranked, settings)
    previous = previous_manifest(out)
    copy_static(out)
    chunks = write_data(ranked, inputs.flags, out, settings, form, forms)
    pairs = tables.digit_pairs(inputs.digits, inputs.boxes) if inputs.digits is not None and \
        inputs.boxes is not None else None
    truth = truth_context(inputs.truth_eval, pairs, forms, out, settings)
    digit_accuracy, digits_n = digit_accuracy_of(pairs)
    figs = build_figures(inputs, template, pairs, truth, out, settings, form, forms)
    common = {"title": settings.title, "version": __version__, "processed": shown_path(inputs.processed, out),
              "rundir": shown_path(inputs.rundir, out),
              "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "has_truth": inputs.truth is not None, "truth": truth}
    pages = write_sheet_pages(ranked, inputs, template, env, out, settings, common, forms)
    details, detail_files, crop_packs = write_details(ranked, inputs, template, out, settings, previous, forms)
    removed_data = prune_data(out, set(chunks) | detail_files) if previous else 0
    write_if_changed(out / "sheets" / VIEW_PAGE, env.get_template("view.html").render(
        root="../", active="", **{**common, "built": ""},
        config=json.dumps(view_config(template, ranked, chunks, settings, forms), separators=(",", ":"))))
    write_text(out / "index.html", env.get_template("index.html").render(
        root="", active="index", **common, **summary_context(inputs, ranked, settings, form, forms), chunks=chunks,
        cantu=cantu_context(inputs.cantu, out, settings), columns=table_columns(ranked, form, forms),
        filters=filter_options(ranked, forms.mixed), page_size=settings.page_size))
    write_text(out / "forensics.html", env.get_template("forensics.html").render(
        root="", active="forensics", **common, figs=figs, **forensics_view(inputs.forensics),
        digit_accuracy=digit_accuracy, digits_n=digits_n))
    write_text(out / "model.html", env.get_template("model.html").render(
        root="", active="model", **common, **model_context(Path(models_dir), out, settings, inputs.rundir,
                                                           template, forms)))
    seconds = time.perf_counter() - start
    write_text(out / "data" / MANIFEST, json.dumps({
        "processed": common["processed"], "rundir": common["rundir"], "sheets": len(ranked),
        "flags": len(inputs.flags), "seconds": round(seconds, 2), "sheet_pages": pages,
        "sheet_data": {**details, "removed": removed_data}, "crop_packs": crop_packs, "settings": asdict(settings),
        "built": common["built"], "version": __version__}, indent=2))
    log.info("report for %d sheets written to %s in %.1f s", len(ranked), out, seconds)
    return out / "index.html"

