"""Whole-pipeline commands: ``python -m pipeline run SCANS --out data/processed/<name>`` and ``summary``.

``run`` checks that the model loads (before any work starts), then chains the stage APIs (read -> recognise ->
audit -> report) on the user's scans, times each stage, records the timings in ``<out>/run.json`` and the stage
each input reached in the run folder's ``manifest.csv``. Reading resumes where an interrupted run stopped (see
:mod:`pipeline.vision.batch`); the later stages are batch-wide and quick, so they are simply redone. ``--engine
ray`` runs the reading on a Ray cluster; ``summary`` prints the one-screen summary of an audited batch (the
last step of ``make all``). The interim run folder goes to ``data/interim/<name>`` unless ``--interim`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import config as cfg
from pipeline.atomic import write_text_atomic
from pipeline.audit.cli import add_no_alteration_argument
from pipeline.config import build_settings
from pipeline.engine import EngineSettings
from pipeline.engine.lock import folder_lock
from pipeline.engine.settings import add_engine_arguments, engine_from_args
from pipeline.errors import InputFileError

if TYPE_CHECKING:  # pandas is loaded only when a command runs, not for --help
    import pandas as pd

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
REPORT_MANIFEST = Path("data") / "manifest.json"
STAGES = ("read", "recognise", "audit", "report")
RULE = "-" * 72


@dataclass
class Timer:
    """Wall-clock seconds per stage, in the order the stages ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, step: Callable[[], object]) -> object:
        """Run ``step`` as stage ``name``, logging and recording how long it took."""
        log.info("stage %s ...", name)
        start = time.perf_counter()
        result = step()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("stage %s done in %.1f s", name, self.seconds[name])
        return result


def interim_for(out: Path) -> Path:
    """The run folder that goes with the audit folder ``out``: ``data/interim/<name>``."""
    return cfg.INTERIM_DIR / out.name


def check_model(model: Path) -> None:
    """Load the digit model once, so that a missing or corrupt model stops the run before any work starts.

    Raises:
        ModelError: no model at ``model``, or it cannot be loaded safely.
    """
    from pipeline.model.recogniser import DigitRecogniser

    DigitRecogniser.load(model)


def check_detector(folder: str | None) -> None:
    """Load the alteration detector once (unless the check is off: ``None``), so that a missing or corrupt one
    stops the run before any work starts.

    Raises:
        ModelError: no detector in ``folder``, or it cannot be loaded.
    """
    from pipeline.audit.alteration import load_detector

    if folder is not None:
        load_detector(Path(folder))


def run_pipeline(scans: list[Path], out: Path, report: Path | None, model: Path, config: dict,
                 interim: Path | None = None, truth: Path | None = None, engine: EngineSettings | None = None,
                 no_alteration: bool = False, forms: Sequence[str | Path] = ()) -> dict:
    """Read, recognise, audit and report ``scans``; returns (and writes to ``out/run.json``) what ran and how
    long each stage took. ``truth`` (a synthetic batch's truth.csv) adds the audit's and the report's checks
    against the ground truth; ``engine`` (default: config section ``engine``) says where reading runs and how
    many sheets recognise and audit hold at once; ``no_alteration`` audits without the alteration detector.
    ``forms``: the form template files to read with (:func:`read_forms`; several for a batch mixing forms: each
    page is read with the one that registers best, and audited by its own form).

    Raises:
        ModelError: the digit model or the alteration detector (unless ``no_alteration``) is missing or corrupt
            (checked first, before any folder is made).
        OutputError: an output folder is being written by another run, or cannot be written (checked next, before
            any work starts).
        ConfigError: a stage's settings are invalid (checked before any work starts).
    """
    from pipeline.audit.settings import AuditSettings

    rundir = interim or interim_for(out)
    engine = engine or build_settings(EngineSettings, "engine", config)
    audit_s = build_settings(AuditSettings, "audit", config)
    audit_s = replace(audit_s, alteration_model=None) if no_alteration else audit_s
    check_model(model)
    check_detector(audit_s.alteration_model)
    with ExitStack() as locks:  # every output folder locked (which proves it writable) before any work starts
        for folder in (rundir, out, report):
            if folder is not None:
                locks.enter_context(folder_lock(Path(folder)))
        return _run_stages(scans, out, report, model, config, rundir, truth, engine, audit_s, forms)


def read_forms(forms: Sequence[str | Path], read_s) -> tuple[str, ...]:
    """The form templates a run reads with: ``forms`` (``--form``, repeated) when given, else the config's
    ``read.templates``, else its ``read.template``; none is the packaged acta."""
    return tuple(str(f) for f in forms) or read_s.forms


def _run_stages(scans: list[Path], out: Path, report: Path | None, model: Path, config: dict, rundir: Path,
                truth: Path | None, engine: EngineSettings, audit_s, forms: Sequence[str | Path] = ()) -> dict:
    """:func:`run_pipeline`'s stages, with its folders locked and the models checked."""
    from pipeline.audit.audit import run_audit
    from pipeline.engine.parts import MANIFEST_FILE, mark_stage
    from pipeline.model.recognise import recognise_run
    from pipeline.model.settings import RecogniseSettings
    from pipeline.report import ReportSettings, build_report
    from pipeline.vision import read_batch
    from pipeline.vision.settings import ReadSettings

    # every stage's settings are checked before the first stage starts
    read_s, recognise_s = build_settings(ReadSettings, "read", config), build_settings(RecogniseSettings, "recognise",
                                                                                      config)
    report_s = build_settings(ReportSettings, "report", config)
    timer = Timer()
    templates = read_forms(forms, read_s)
    read_s = replace(read_s, template=None, templates=())
    timer.run("read", lambda: read_batch(scans, rundir, read_s, engine, templates=templates))
    timer.run("recognise", lambda: recognise_run(rundir, model, recognise_s, engine.stream_sheets))
    mark_stage(rundir / MANIFEST_FILE, "recognise")
    timer.run("audit", lambda: run_audit(rundir, out, audit_s, truth, engine.stream_sheets))
    mark_stage(rundir / MANIFEST_FILE, "audit")
    index = None
    if report is not None:
        index = timer.run("report", lambda: build_report(
            out, report, rundir, truth=truth, models_dir=Path(model).absolute().parent, settings=report_s))
        mark_stage(rundir / MANIFEST_FILE, "report")
    record = {"scans": [str(s) for s in scans], "rundir": str(rundir), "processed": str(out), "model": str(model),
              **({"forms": list(templates)} if templates else {}),
              "report": str(index) if index else None, "seconds": timer.seconds,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_text_atomic(out / RUN_FILE, json.dumps(record, indent=2))
    return record


def read_sheets(processed: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The audit's sheet and flag tables (Parquet, else CSV)."""
    from pipeline.report.inputs import FLAG_COLUMNS, SHEET_COLUMNS, read_table

    if not processed.is_dir():
        raise InputFileError(f"{processed}: audit output folder not found (run `make audit` or `python -m pipeline "
                             f"run` first)")
    return read_table(processed, "sheets", SHEET_COLUMNS), read_table(processed, "flags", FLAG_COLUMNS)


def counts_text(series: pd.Series) -> str:
    """``"ok 290, not_a_form 6"``: value counts, most common first."""
    counts = series.fillna("unknown").astype(str).value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def report_location(processed: Path, record: dict, reports: Path) -> str | None:
    """Where the report of ``processed`` is: from ``run.json``, else a report folder built from it."""
    if record.get("report"):
        return record["report"]
    manifest = reports / REPORT_MANIFEST
    if manifest.is_file():
        built_from = json.loads(manifest.read_text(encoding="utf-8")).get("processed", "")
        if built_from and (reports / built_from).resolve() == processed.resolve():  # relative to the report
            return str(reports / "index.html")
    return None


def report_seconds(reports: Path) -> float | None:
    """How long the last report build in ``reports`` took (its manifest records it)."""
    manifest = reports / REPORT_MANIFEST
    return json.loads(manifest.read_text(encoding="utf-8")).get("seconds") if manifest.is_file() else None


def stage_times(record: dict, reports: Path) -> str:
    """``"read 41.0 s · recognise 3.1 s ..."`` from ``run.json``; without it only the report's time is known."""
    seconds = dict(record.get("seconds", {}))
    if "report" not in seconds and report_seconds(reports) is not None:
        seconds["report"] = report_seconds(reports)
    if not seconds:
        return "not recorded"
    text = " · ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
    missing = [s for s in STAGES if s not in seconds]
    return text + (f" ({', '.join(missing)} not timed: run via `python -m pipeline run` to time them)"
                   if missing else "")


def flagged_text(sheets: pd.DataFrame, flags: pd.DataFrame) -> str:
    """Flagged sheets by verdict, one verdict per sheet (:func:`pipeline.report.tables.sheet_verdicts`, the same
    count as the report's chips and table filter), gravest first, in the report's words."""
    from pipeline.report import tables, triage

    counts = triage.verdict_counts(tables.sheet_verdicts(sheets, flags))
    flagged = {v: n for v, n in counts.items() if v != triage.CLEAN_VERDICT}
    parts = ", ".join(f"{triage.VERDICT_LABELS.get(v, v)} {n}" for v, n in flagged.items()) or "none"
    return f"{sum(flagged.values())} ({parts})"


def reading_text(sheets: pd.DataFrame) -> str:
    """``"read 290, not a tally sheet 6"``: the pages by reading outcome, in the report's words."""
    from pipeline.report import triage

    return counts_text(sheets["status"].map(triage.reading_label))


def rules_text(flags: pd.DataFrame) -> list[str]:
    """One line per rule: number of flags and their severities."""
    if flags.empty:
        return ["none"]
    sizes = flags.groupby("rule").size().sort_values(ascending=False, kind="stable")
    return [f"{rule}: {n} ({counts_text(flags.loc[flags['rule'] == rule, 'severity'])})" for rule, n in sizes.items()]


def summary_text(processed: Path, reports: Path = cfg.REPORTS_DIR) -> str:
    """The one-screen summary of an audited batch."""
    processed = Path(processed)
    sheets, flags = read_sheets(processed)
    run_json = processed / RUN_FILE
    record = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
    where = report_location(processed, record, reports)
    lines = [RULE, f"tally-audit summary of {processed}", RULE,
             f"sheets           {len(sheets)}  ({reading_text(sheets)})",
             f"flagged sheets   {flagged_text(sheets, flags)}",
             f"flags            {len(flags)}"]
    lines += [f"  {line}" for line in rules_text(flags)]
    lines += [f"time per stage   {stage_times(record, reports)}",
              f"report           {where or 'not built (run `make report`)'}", RULE]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` and ``summary`` sub-commands."""
    p = sub.add_parser("run", help="whole pipeline on your scans: read, recognise, audit, report")
    p.add_argument("scans", type=Path, nargs="+", help="scan files or folders (PNG, JPEG, TIFF, PDF)")
    p.add_argument("--out", type=Path, required=True, help="audit output folder, e.g. data/processed/<name>")
    p.add_argument("--report", type=Path, help="also write the HTML report here (e.g. reports)")
    p.add_argument("--model", type=Path, default=cfg.CURRENT_MODEL, help="digit model folder (default: current)")
    p.add_argument("--interim", type=Path, help="run folder for read/recognise (default: data/interim/<name>)")
    p.add_argument("--truth", type=Path, help="truth.csv when the scans are a synthetic batch (adds truth checks)")
    p.add_argument("--form", "--template", dest="forms", metavar="TEMPLATE", action="append", default=[],
                   help="form template YAML (default: config read.templates or read.template, else the packaged "
                        "acta); give it several times for a batch of several forms: each page is read with the "
                        "template that registers best and audited by its own form")
    add_no_alteration_argument(p)
    add_engine_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("summary", help="print the one-screen summary of an audited batch")
    p.add_argument("processed", type=Path, help="audit output folder (data/processed/<name>)")
    p.add_argument("--reports", type=Path, default=cfg.REPORTS_DIR, help="report folder to point to")
    p.set_defaults(func=_cmd_summary)


def _cmd_run(args: argparse.Namespace, config: dict) -> int:
    engine = engine_from_args(args, config)
    run_pipeline(args.scans, args.out, args.report, args.model, config, args.interim, args.truth, engine,
                 no_alteration=args.no_alteration, forms=args.forms)
    print(summary_text(args.out, args.report or cfg.REPORTS_DIR))
    return 0


def _cmd_summary(args: argparse.Namespace, config: dict) -> int:
    print(summary_text(args.processed, args.reports))
    return 0
