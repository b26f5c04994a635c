"""Build the static HTML report from an audit output folder (docs/DATA.md section 5).

``build_report(processed, out)`` writes ``index.html`` (batch summary, Cantú comparison, ranked sheet table),
``sheets/<slug>.html`` (one page per sheet), ``forensics.html``, ``model.html``, ``figures/*.png``,
``static/`` (one CSS, one JS) and ``data/`` (CSV exports and the table's rows as ``.js`` chunks, because
Chromium blocks ``fetch()`` of JSON from ``file://``). All links are relative and nothing is fetched from the
network, so the folder works from disk and from any static server. Jinja2 autoescaping is on, so sheet ids,
reasons and paths are HTML-escaped wherever they appear.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from tqdm import tqdm

from pipeline import __version__
from pipeline import config as cfg
from pipeline.atomic import write_text_atomic
from pipeline.engine.lock import folder_lock
from pipeline.engine.stream import csv_text
from pipeline.forms import Template, load_template
from pipeline.report import architecture, figures, forensics_cards, tables, triage
from pipeline.report.inputs import ReportInputs, load_alteration_detector, load_inputs, load_models
from pipeline.report.sheetpages import (
    FILES_DIR,
    Confidence,
    display_names,
    flag_entries,
    mark_entry,
    numeric_overlay,
    place_crops,
    place_scan,
    records_by_sheet,
    scan_source,
    tick_overlay,
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
    fingerprint_party: str = "pri"


def environment() -> Environment:
    """The Jinja2 environment: autoescape always on, undefined variables are errors."""
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    env.filters["plain"] = format_plain
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


def clear_previous(out: Path) -> None:
    """Remove the data chunks of an earlier report in ``out`` (only if one was built there); its sheet pages and
    images stay, to be kept where unchanged and pruned by :func:`prune_stale` after the pages are written."""
    if not (out / "data" / MANIFEST).is_file():
        return
    for chunk in (out / "data").glob("sheets-*.js"):
        chunk.unlink()


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


def table_columns(ranked: pd.DataFrame) -> list[dict]:
    """Column specs of the index table for report.js: key, label, and whether it sorts as a number."""
    labels = {"sheet_id": "sheet", "n_flags": "flags", "alteration_score": "alteration", "total_votes": "total",
              "min_conf": "min conf.", "suspicion": "score", "reason": "why"}
    cols = [c for c in tables.INDEX_COLUMNS if c in ranked.columns]
    return [{"key": c, "label": labels.get(c, c.replace("_", " ")),
             "numeric": bool(pd.api.types.is_numeric_dtype(ranked[c]))} for c in cols]


def write_data(ranked: pd.DataFrame, flags: pd.DataFrame, out: Path, settings: ReportSettings) -> list[str]:
    """CSV exports plus the index table as ``data/sheets-NNN.js`` chunks; returns the chunk paths."""
    export = ranked.assign(page=[f"sheets/{s}.html" for s in ranked["slug"]]).drop(columns=["slug", "tier_severity"])
    write_text(out / "data" / "sheets.csv", csv_text(export))
    write_text(out / "data" / FLAGGED_CSV, csv_text(export[export["verdict"] != triage.CLEAN_VERDICT]))
    write_text(out / "data" / "flags.csv", csv_text(flags))
    keys = [c["key"] for c in table_columns(ranked)]
    rows = tables.table_rows(ranked, keys)
    chunks = []
    for i in range(0, max(len(rows), 1), settings.table_chunk_rows):
        name = f"data/sheets-{i // settings.table_chunk_rows:03d}.js"
        payload = json.dumps(rows[i:i + settings.table_chunk_rows], separators=(",", ":"), allow_nan=False)
        write_text(out / name, f"window.tallyReport.receive({payload});\n")
        chunks.append(name)
    return chunks


def filter_options(ranked: pd.DataFrame) -> list[dict]:
    """Drop-down filters of the index table: ``[{key, values: [(value, label)]}]`` for the filter columns present;
    verdicts in their order of gravity, with the plain words of :data:`triage.VERDICT_LABELS`."""
    options = []
    for c in FILTER_COLUMNS:
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


def check_first(ranked: pd.DataFrame, out: Path) -> list[dict]:
    """The sheets of the "check these first" block: the first :data:`CHECK_FIRST_MAX` of the ranked table in
    :data:`CHECK_FIRST_TIERS`, each with its reason and its key field's crop (as copied for its sheet page)."""
    top = ranked[ranked["tier"].isin(CHECK_FIRST_TIERS)].head(CHECK_FIRST_MAX)
    items = []
    for row in top.to_dict("records"):
        crop = f"sheets/{sheet_files_dir(row['slug'])}/field-{row['key_field']}.png" if row["key_field"] else ""
        items.append({"rank": int(row["rank"]), "sheet_id": row["sheet_id"], "slug": row["slug"],
                      "verdict": row["verdict"], "verdict_label": triage.VERDICT_LABELS.get(row["verdict"],
                                                                                           row["verdict"]),
                      "reason": row["reason"], "score": triage.score_text(row.get("suspicion")),
                      "crop": crop if crop and (out / crop).is_file() else ""})
    return items


def sheet_files_dir(slug: str) -> str:
    """Folder of one sheet's copied images, relative to ``sheets/``."""
    return f"{FILES_DIR}/{slug}"


def copy_static(out: Path) -> None:
    """The stylesheet and script, shared by every page."""
    for src in STATIC_DIR.iterdir():
        if src.is_file():
            (out / "static").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / "static" / src.name)


def count_fields(template: Template) -> list[str]:
    """Names of the handwritten count fields, in form order."""
    return [f.name for f in template.fields_of_kind("count")]


def forensics_view(forensics: dict | list) -> dict:
    """forensics.json for display: the tests that ran (one row each, list-valued columns such as the observed
    digit counts left out, the usual columns first), the tests skipped for lack of data, and the batch-level
    notes (correction, alpha, interpretation)."""
    records = forensics.get("tests", []) if isinstance(forensics, dict) else forensics
    rows = [tables.flatten(r) for r in records if isinstance(r, dict)]
    ran = [r for r in rows if not r.get("skipped")]
    present = list(dict.fromkeys(k for r in ran for k in r if k != "skipped"))
    columns = [c for c in TEST_COLUMNS if c in present] + [c for c in present if c not in TEST_COLUMNS]
    notes = tables.flatten({k: v for k, v in forensics.items() if k not in ("tests", "klimek")}) \
        if isinstance(forensics, dict) else {}
    return {"test_cols": columns, "test_rows": ran, "skipped_rows": [r for r in rows if r.get("skipped")],
            "notes": notes, "cards": forensics_cards.forensic_cards(forensics),
            "trust_note": forensics_cards.TRUST_NOTE}


def save_figure(fig, out: Path, name: str, settings: ReportSettings) -> str | None:
    """Save an optional figure under ``figures/``; its relative path, or ``None`` when there was no data."""
    if fig is None:
        return None
    figures.save(fig, out / "figures" / f"{name}.png", settings.figure_dpi)
    return f"figures/{name}.png"


def fingerprint_party(forensics: dict | list, settings: ReportSettings) -> str:
    """The party of the fingerprint plot: the batch winner the forensics found, else the configured one."""
    winner = forensics.get("winner") if isinstance(forensics, dict) else None
    return str(winner) if winner else settings.fingerprint_party


def build_figures(inputs: ReportInputs, template: Template, pairs: pd.DataFrame | None, truth: dict | None,
                  out: Path, settings: ReportSettings) -> dict[str, str | None]:
    """Every batch-level matplotlib figure of the report: ``{name: relative path or None}``."""
    ok = inputs.sheets[inputs.sheets["status"] == OK_STATUS]
    names = display_names(template)
    per_field = pd.Series(truth["per_field"], dtype=float).rename(index=names) if truth and truth["per_field"] \
        else None
    made = {
        "last_digits": figures.last_digit_figure(ok, count_fields(template), names),
        "second_digits": figures.second_digit_figure(ok, list(template.parties)),
        "fingerprint": figures.fingerprint_figure(ok, fingerprint_party(inputs.forensics, settings)),
        "confidence": figures.confidence_figure(inputs.fields, inputs.digits),
        "confusion": figures.confusion_figure(pairs),
        "accuracy": figures.accuracy_figure(per_field),
    }
    return {name: save_figure(fig, out, name, settings) for name, fig in made.items()}


def cantu_context(cantu: dict | list, out: Path, settings: ReportSettings) -> dict:
    """The Cantú comparisons with one rate figure each."""
    view = tables.cantu_view(cantu if isinstance(cantu, dict) else {})
    for i, comparison in enumerate(view["comparisons"]):
        comparison["figure"] = save_figure(figures.cantu_figure(comparison["groups"], view["level"]), out,
                                           f"cantu_{i}", settings)
    return view


def model_plot_sources(models_dir: Path, current: Path | None) -> list[Path]:
    """The current model's figures: PNGs in its version folder, else (for the project's own ``models/``) the
    ones ``train`` writes to ``reports/model/``, which belong to the model trained last."""
    own = sorted(current.glob("*.png")) if current is not None else []
    if own or models_dir.resolve() != cfg.MODELS_DIR.resolve() or not MODEL_FIGURES.is_dir():
        return own
    return sorted(MODEL_FIGURES.glob("*.png"))


def copy_model_plots(sources: list[Path], out: Path) -> list[dict]:
    """Copy the model figures under ``figures/model/`` (unless already there); ``[{src, title}]``."""
    plots = []
    for png in sources:
        dst = out / "figures" / "model" / png.name
        if png.resolve() != dst.resolve():
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


def model_context(models_dir: Path, out: Path, settings: ReportSettings) -> dict:
    """Model page data: every version's metadata (flattened), training curves of the current one, the
    alteration detector and the model stage's plots."""
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
            "detector": tables.detector_view(tables.flatten(detector)) if isinstance(detector, dict) else {}}


def sheet_context(row: dict, reads: dict, sheet_flags: list[dict], inputs: ReportInputs, template: Template,
                  out: Path, settings: ReportSettings, total: int) -> dict:
    """Everything one sheet page shows: the overlay (the fields that caused a flag outlined), each flag with its
    causing fields' crops right under it, the checks that passed, and why the sheet ranks where it does."""
    sid, slug = row["sheet_id"], row["slug"]
    conf = Confidence(settings.conf_high, settings.conf_low)
    names = display_names(template)
    entries = flag_entries(sheet_flags, row, names, settings.conf_high)
    flagged = {f for e in entries for f in e["causes"]}
    numeric = [numeric_overlay(f, reads.get(f.name), row, flagged, template, conf, names)
               for f in template.fields if f.is_numeric]
    ticks = [t for f in template.fields_of_kind("tick", "choice") for t in tick_overlay(f, row, template)]
    by_name = {f["name"]: f for f in numeric}
    by_name.update({f.name: mark_entry(f, row, names) for f in template.fields_of_kind("tick", "choice")
                    if f.name in flagged})
    srcs = place_crops(inputs.rundir, sid, [f for f in by_name if f in flagged], out, slug)
    for entry in entries:
        entry["crops"] = [{**by_name[f], "src": srcs[f]} for f in entry["causes"] if f in srcs and f in by_name]
    failed = {str(f.get("rule")) for f in sheet_flags}
    return {"row": {k: tables.json_safe(v) for k, v in row.items()}, "numeric": numeric, "ticks": ticks,
            "flags": entries, "aspect": 100 * template.height_mm / template.width_mm,
            "verdict_label": triage.VERDICT_LABELS.get(str(row.get("verdict")), str(row.get("verdict"))),
            "passed": triage.passed_checks(row, failed, tuple(template.parties), names),
            "rank_reason": triage.rank_reason(int(row["rank"]), total, int(row["tier"]),
                                              triage.severity_name(row.get("tier_severity")),
                                              tables.json_safe(row.get("suspicion"))),
            "scan": place_scan(scan_source(inputs.rundir, sid), out, slug, settings.copy_scans,
                               settings.scan_width_px, settings.scan_jpeg_quality)}


def write_sheet_pages(ranked: pd.DataFrame, inputs: ReportInputs, template: Template, env: Environment, out: Path,
                      settings: ReportSettings, common: dict) -> dict:
    """One page per sheet, in ranked order, with previous/next links; a page (or image) already there and
    unchanged is not rewritten, and those of an earlier build that are no longer used are removed. Threads
    overlap the image copies and file writes (OpenCV and file I/O release the GIL). Returns ``{written, kept,
    removed}`` counts of pages (removed: pages and images)."""
    page = env.get_template("sheet.html")
    reads = records_by_sheet(inputs.fields)
    flags = records_by_sheet(inputs.flags)
    pages = {sid: recs[0] for sid, recs in records_by_sheet(inputs.pages).items()}
    rows = ranked.to_dict("records")

    def write_one(i: int) -> None:
        row, sid = rows[i], rows[i]["sheet_id"]
        ctx = sheet_context(row, {str(r["field"]): r for r in reads.get(sid, [])}, flags.get(sid, []), inputs,
                            template, out, settings, len(rows))
        ctx["read"] = {k: tables.json_safe(v) for k, v in pages.get(sid, {}).items()}
        ctx["prev"] = rows[i - 1]["slug"] if i > 0 else None
        ctx["next"] = rows[i + 1]["slug"] if i + 1 < len(rows) else None
        ctx["position"], ctx["total"] = i + 1, len(rows)
        used = [ctx["scan"]] + [c["src"] for f in ctx["flags"] for c in f["crops"]]
        files = {src for src in used if src and src.startswith(f"{FILES_DIR}/")}
        html = page.render(root="../", active="", **{**common, "built": ""}, **ctx)
        return write_if_changed(out / "sheets" / f"{row['slug']}.html", html), files

    written, files = 0, set()
    with ThreadPoolExecutor(max_workers=settings.workers or os.cpu_count() or 1) as pool:
        for wrote, used in tqdm(pool.map(write_one, range(len(rows))), total=len(rows), desc="sheet pages",
                                unit="sheet", disable=len(rows) < 2):
            written += wrote
            files |= used
    removed = prune_stale(out, {r["slug"] for r in rows}, files)
    return {"written": written, "kept": len(rows) - written, "removed": removed}


def summary_context(inputs: ReportInputs, ranked: pd.DataFrame, out: Path) -> dict:
    """The batch figures shown on the index page; every count of sheets comes from ``ranked``'s one verdict per
    sheet."""
    by_rule = tables.flags_by_rule(inputs.flags)
    verdicts = tables.verdict_counts(ranked)
    return {"n_sheets": len(ranked), "n_flagged": int((ranked["verdict"] != triage.CLEAN_VERDICT).sum()),
            "n_flags": len(inputs.flags), "status_counts": tables.status_counts(ranked),
            "by_rule": [{"rule": r, **{k: int(v) for k, v in row.items()}} for r, row in by_rule.iterrows()],
            "rule_columns": list(by_rule.columns),
            "verdicts": [{"verdict": v, "label": triage.VERDICT_LABELS.get(v, v), "n": n} for v, n in verdicts.items()],
            "tiers": triage.TIERS, "check_first": check_first(ranked, out),
            "n_check": int(ranked["tier"].isin(CHECK_FIRST_TIERS).sum()),
            "alteration_off": alteration_off(inputs.cantu)}


def alteration_off(cantu: dict | list) -> str | None:
    """Why the audit found no altered sheet by design (the alteration check did not run), or ``None``: the report
    says it on its first screen, since a batch without the check can look clean."""
    detected = cantu.get("detected", {}) if isinstance(cantu, dict) else {}
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
    template, env = load_template(), environment()
    ranked = tables.rank_sheets(inputs.sheets, inputs.flags, display_names(template), settings.conf_high)
    clear_previous(out)
    copy_static(out)
    chunks = write_data(ranked, inputs.flags, out, settings)
    truth = tables.truth_summary(inputs.truth_eval)
    pairs = tables.digit_pairs(inputs.digits, inputs.boxes) if inputs.digits is not None and \
        inputs.boxes is not None else None
    digit_accuracy = float((pairs["truth"] == pairs["label"]).mean()) if pairs is not None and len(pairs) else None
    figs = build_figures(inputs, template, pairs, truth, out, settings)
    common = {"title": settings.title, "version": __version__, "processed": shown_path(inputs.processed, out),
              "rundir": shown_path(inputs.rundir, out),
              "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "has_truth": inputs.truth is not None, "truth": truth}
    pages = write_sheet_pages(ranked, inputs, template, env, out, settings, common)
    write_text(out / "index.html", env.get_template("index.html").render(
        root="", active="index", **common, **summary_context(inputs, ranked, out), chunks=chunks,
        cantu=cantu_context(inputs.cantu, out, settings), columns=table_columns(ranked),
        filters=filter_options(ranked), page_size=settings.page_size))
    write_text(out / "forensics.html", env.get_template("forensics.html").render(
        root="", active="forensics", **common, figs=figs, **forensics_view(inputs.forensics),
        digit_accuracy=digit_accuracy, digits_n=0 if pairs is None else len(pairs)))
    write_text(out / "model.html", env.get_template("model.html").render(
        root="", active="model", **common, **model_context(Path(models_dir), out, settings)))
    seconds = time.perf_counter() - start
    write_text(out / "data" / MANIFEST, json.dumps({
        "processed": common["processed"], "rundir": common["rundir"], "sheets": len(ranked),
        "flags": len(inputs.flags), "seconds": round(seconds, 2), "sheet_pages": pages, "settings": asdict(settings),
        "built": common["built"], "version": __version__}, indent=2))
    log.info("report for %d sheets written to %s in %.1f s", len(ranked), out, seconds)
    return out / "index.html"

