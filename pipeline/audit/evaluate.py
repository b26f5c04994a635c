"""Compare an audit with the ground truth of a synthetic batch (``truth.csv``, docs/DATA.md section 1).

Which sheets are "truly inconsistent" is decided by applying the audit's own rules (the form's, from its
:class:`pipeline.audit.schema.FormSchema`) to the numbers visibly written on each sheet (``F_written``), so the
arithmetic check is judged on what a perfect reader would see.

The field figures of issue 13 (:func:`field_figures`): untampered fields read exactly, and wrong fields that
nothing marks for review (the recogniser's ``needs_review`` of ``fields.parquet``, or a value the audit could not
read, which its ``unreadable`` flag names), overall and per pen colour and per scan damage style. The audit alone
holds no per-field review marks, so :func:`truth_eval` gives the second only when handed them (``review``);
:func:`evaluate_run` (also ``python -m pipeline.audit.evaluate RUN AUDIT TRUTH``) computes every figure from the
files of an existing run and audit.

Every form is evaluated by its own fields, roles and rules (the template the run was read with), so the same figures
come out for the acta and for any other template's synthetic batch (``synth --form``): the alteration detector's
precision, recall, ROC AUC and false alarms on clean sheets where it scored the form's sheets (else the reason it
did not, as the audit recorded it), and what the arithmetic alone catches of the visibly altered sheets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from pipeline.audit.arithmetic import counts_consistent
from pipeline.audit.flags import Flag, frame_to_flags
from pipeline.audit.schema import OK_STATUS, VISIBLE_KINDS, FormSchema
from pipeline.audit.settings import AuditSettings
from pipeline.audit.table import TRUE_STRINGS, read_table
from pipeline.forms.template import run_template

#: Key of ``cantu.json`` holding why the detector scored no sheet (pipeline.audit.audit.ALTERATION_SKIPPED; not
#: imported from there, which imports this module).
ALTERATION_SKIPPED_KEY = "alteration_skipped"
#: Yes/no columns of truth.csv, read as booleans whether written True/False or 1/0.
TRUTH_FLAGS = ("altered", "fabricated", "opposition_present", "arithmetic_error")


def truth_columns(schema: FormSchema) -> tuple[str, ...]:
    """The truth.csv columns the evaluation needs: the sheet, its alteration and every count as written
    (``F_written``). The ids and ``opposition_present`` are used when present (a batch of a form without ids or
    representative ticks, ``synth --form``, may lack them)."""
    return ("sheet_id", "altered", *(f"{f}_written" for f in schema.count_fields))
#: Separator of the list columns of truth.csv (``alteration_styles``, ``scan_damage``).
LIST_SEPARATOR = ";"
#: ``F_alteration`` values of a field nobody tampered with (``fabricated`` counts as tampered: it changes the value).
UNTAMPERED = ("", "none")
#: Label of a sheet whose list column is empty (no scan damage, no tampering style).
NONE_LABEL = "none"
#: Truth columns whose values split the field figures (``;``-joined lists: a sheet counts under each of its labels).
BREAKDOWN_COLUMNS = {"per_pen_colour": "pen_colour", "per_scan_damage": "scan_damage"}
#: Truth column naming the tampering styles of an altered sheet.
STYLES_COLUMN = "alteration_styles"


def read_truth(path: Path | str, schema: FormSchema) -> pd.DataFrame:
    """``truth.csv`` with the columns the evaluation needs (raises InputFileError naming what is missing)."""
    truth = read_table(Path(path), truth_columns(schema))
    for column in TRUTH_FLAGS:
        if column in truth:
            truth[column] = truth[column].astype("string").str.strip().str.lower().isin(TRUE_STRINGS)
    return truth


def written_values(truth: pd.DataFrame, schema: FormSchema, s: AuditSettings) -> pd.DataFrame:
    """What a perfect reader returns for every numeric field (ids as written, counts ``F_written``), by sheet_id;
    ids truth.csv lacks are left out (and so out of the read figures).

    Blank counts become 0 when ``empty_counts_as_zero``, exactly as the audit treats blank reads.
    """
    t = truth.set_index("sheet_id")
    out = pd.DataFrame({f: pd.to_numeric(t[f], errors="coerce") for f in schema.id_fields if f in t}, index=t.index)
    for f in schema.count_fields:
        written = pd.to_numeric(t[f"{f}_written"], errors="coerce")
        out[f] = written.fillna(0) if s.empty_counts_as_zero else written
    return out.astype("Int64")


def _safe(metric, y_true, y_pred) -> float | None:
    return float(metric(y_true, y_pred, zero_division=0)) if len(y_true) else None


def alteration_metrics(j: pd.DataFrame, skipped: str | None = None) -> dict:
    """Sheet-level precision, recall and ROC AUC of the detector, its recall per alteration kind, and its false
    alarms: the share of clean sheets (neither altered nor, where ``j`` says, fabricated) it calls altered
    (``clean_false_alarm_rate`` of ``n_clean``).

    ``j`` joins truth and audit by sheet: ``altered_truth``, ``altered_pred``, ``alteration_score`` and
    ``alteration_kinds`` (``;``-joined). ``skipped``: why the detector scored none of these sheets (a detector of
    another form), given as the reason.
    """
    if skipped is not None:
        return {"skipped": skipped}
    if j.empty or j["alteration_score"].isna().all():
        return {"skipped": "no alteration scores (no detector)"}
    y, pred, score = j["altered_truth"].astype(bool), j["altered_pred"].astype(bool), j["alteration_score"]
    kinds = j["alteration_kinds"].astype("string").fillna("").str.split(";") if "alteration_kinds" in j else None
    per_kind = {}
    for kind in VISIBLE_KINDS if kinds is not None else ():
        has = kinds.apply(lambda ks, k=kind: k in ks).astype(bool)
        per_kind[kind] = {"n": int(has.sum()), "recall": float(pred[has].mean()) if has.any() else None}
    return {"n": int(len(j)), "n_altered": int(y.sum()), "precision": _safe(precision_score, y, pred),
            "recall": _safe(recall_score, y, pred),
            "roc_auc": float(roc_auc_score(y, score.fillna(0))) if y.nunique() == 2 else None,
            "per_kind_recall": per_kind,
            "per_style_recall": per_style_recall(j[STYLES_COLUMN], pred) if STYLES_COLUMN in j else None,
            "fabricated_only_flagged": _fabricated_rate(j, pred), **_false_alarms(j, pred)}


def _false_alarms(j: pd.DataFrame, pred: pd.Series) -> dict:
    """``n_clean`` sheets neither altered nor fabricated (when ``j`` has ``fabricated``) and the share of them the
    detector calls altered (``clean_false_alarm_rate``; None without clean sheets)."""
    clean = ~j["altered_truth"].astype(bool)
    if "fabricated" in j:
        clean &= ~j["fabricated"].astype("boolean").fillna(False).astype(bool)
    return {"n_clean": int(clean.sum()), "clean_false_alarm_rate": _mean(pred[clean])}


def split_labels(column: pd.Series) -> pd.Series:
    """A ``;``-joined truth column as a list of labels per row; an empty or missing value is ``[none]``."""
    text = column.astype("string").fillna("")
    labels = [[x.strip() for x in str(v).split(LIST_SEPARATOR) if x.strip()] or [NONE_LABEL] for v in text]
    return pd.Series(labels, index=column.index, dtype="object", name=column.name)


def per_style_recall(styles: pd.Series, pred: pd.Series) -> dict:
    """For each tampering style in ``styles`` (``alteration_styles``, ``;``-joined, by sheet): the sheets drawn
    with it and the share the detector flags (``pred``, same index). A sheet with several styles counts under
    each; sheets with none are left out (they are not altered in a visible way)."""
    labels, flagged = split_labels(styles).tolist(), pred.astype(bool).to_numpy()
    out = {}
    for style in sorted({x for ls in labels for x in ls} - {NONE_LABEL}):
        has = np.array([style in ls for ls in labels], bool)
        out[style] = {"n": int(has.sum()), "recall": float(flagged[has].mean())}
    return out


def _fabricated_rate(j: pd.DataFrame, pred: pd.Series) -> float | None:
    """Share of sheets changed without a visible trace (fabricated, not altered) that the image detector flags
    nonetheless: it should find nothing there."""
    if "fabricated" not in j:
        return None
    only = j["fabricated"].astype(bool) & ~j["altered_truth"].astype(bool)
    return float(pred[only].mean()) if only.any() else None


def fields_read_right(sheets: pd.DataFrame, written: pd.DataFrame) -> pd.DataFrame:
    """Per sheet (in both tables) and numeric field (the columns of ``written``): was it read exactly as written
    (both blank counts too)?"""
    common = written.index.intersection(sheets.index)
    numeric = list(written.columns)
    read = sheets.loc[common, numeric].astype("Int64")
    truth = written.loc[common, numeric]
    return ((read == truth).fillna(False) | (read.isna() & truth.isna())).astype(bool)


def untampered_fields(truth: pd.DataFrame, index: pd.Index, numeric: list[str]) -> pd.DataFrame:
    """Per sheet of ``index`` and numeric field (``numeric``): did nobody tamper with it (``F_alteration`` none or
    empty)? Fields without an ``F_alteration`` column (the ids) are never tampered with."""
    t = truth.set_index("sheet_id").reindex(index)
    out = {}
    for f in numeric:
        column = f"{f}_alteration"
        if column in t:
            out[f] = t[column].astype("string").fillna("").str.strip().str.lower().isin(UNTAMPERED).to_numpy()
        else:
            out[f] = np.ones(len(t), bool)
    return pd.DataFrame(out, index=index)


def review_marks(fields: pd.DataFrame, schema: FormSchema) -> pd.DataFrame:
    """The recogniser's ``needs_review`` of ``fields.parquet`` rows as one bool column per numeric field, by
    sheet_id (a field without a row is not marked)."""
    numeric = list(schema.numeric_fields)
    f = fields[fields["field"].isin(numeric)].drop_duplicates(["sheet_id", "field"])
    marks = f.assign(needs_review=f["needs_review"].astype("boolean").fillna(False).astype(bool))
    wide = marks.pivot(index="sheet_id", columns="field", values="needs_review")
    wide.index = wide.index.astype(str)
    return wide.reindex(columns=numeric).fillna(False).astype(bool)


def run_review_marks(rundir: Path | str, schema: FormSchema) -> pd.DataFrame:
    """:func:`review_marks` of the run folder ``rundir`` (its ``fields.parquet``)."""
    return review_marks(read_table(Path(rundir) / "fields.parquet", ("sheet_id", "field", "needs_review")), schema)


def marked_for_review(read: pd.DataFrame, review: pd.DataFrame) -> pd.DataFrame:
    """Per sheet of ``read`` (the audit's values) and numeric field (the columns of ``review``): is it marked for
    review, by the recogniser (``review``: :func:`review_marks`) or because the audit could not read a value (its
    ``unreadable`` flag)?"""
    numeric = list(review.columns)
    recogniser = review.reindex(index=read.index.astype(str), columns=numeric).fillna(False)
    unreadable = read[numeric].isna().to_numpy()
    return pd.DataFrame(recogniser.to_numpy(bool) | unreadable, index=read.index, columns=numeric)


def field_figures(right: pd.DataFrame, untampered: pd.DataFrame, marked: pd.DataFrame | None) -> dict:
    """Issue 13's field figures over the cells of three aligned sheet-by-field tables: the share of untampered
    fields read exactly (``untampered_exact``) and the wrong fields not marked for review, as a share of all
    fields (``silent_wrong``) and of the untampered ones (``untampered_silent_wrong``). Without ``marked`` the
    last two are ``None``."""
    r, u = right.to_numpy(bool), untampered.to_numpy(bool)
    out = {"n_fields": int(r.size), "n_untampered": int(u.sum()),
           "untampered_exact": float(r[u].mean()) if u.any() else None,
           "all_exact": float(r.mean()) if r.size else None}
    if marked is None:
        return out | {"n_silent_wrong": None, "silent_wrong": None, "untampered_silent_wrong": None}
    silent = ~r & ~marked.to_numpy(bool)
    return out | {"n_silent_wrong": int(silent.sum()), "silent_wrong": float(silent.mean()) if r.size else None,
                  "untampered_silent_wrong": float(silent[u].mean()) if u.any() else None}


def field_breakdown(right: pd.DataFrame, untampered: pd.DataFrame, marked: pd.DataFrame | None,
                    labels: pd.Series) -> dict:
    """:func:`field_figures` of the sheets under each label (``labels``: a list per sheet, by sheet_id, as
    :func:`split_labels` gives; a sheet counts under each of its labels)."""
    labels = [ls if isinstance(ls, list) else [NONE_LABEL] for ls in labels.reindex(right.index)]
    out = {}
    for label in sorted({x for ls in labels for x in ls}):
        rows = np.array([label in ls for ls in labels], bool)
        out[label] = {"n_sheets": int(rows.sum()),
                      **field_figures(right[rows], untampered[rows], None if marked is None else marked[rows])}
    return out


def field_section(right: pd.DataFrame, read: pd.DataFrame, truth: pd.DataFrame,
                  review: pd.DataFrame | None) -> dict:
    """The field figures overall and per truth label of :data:`BREAKDOWN_COLUMNS` (those truth.csv has)."""
    untampered = untampered_fields(truth, right.index, list(right.columns))
    marked = None if review is None else marked_for_review(read.loc[right.index], review)
    out = {**field_figures(right, untampered, marked),
           "review_marks": "recogniser needs_review or value unreadable" if marked is not None else
           "not given (fields.parquet needs_review): silent_wrong not measured"}
    t = truth.set_index("sheet_id")
    for key, column in BREAKDOWN_COLUMNS.items():
        if column in t:
            out[key] = field_breakdown(right, untampered, marked, split_labels(t[column]))
    return out


def _share(right: pd.DataFrame, fields: tuple[str, ...]) -> float | None:
    """Share of the cells of ``fields`` read right (None when the form has no such field)."""
    return float(right[list(fields)].to_numpy().mean()) if fields else None


def read_accuracy(right: pd.DataFrame, schema: FormSchema) -> dict:
    """Share of fields read exactly as written (ids, counts, all) and of sheets with every field right."""
    ids = tuple(f for f in schema.id_fields if f in right)
    return {"n_sheets": int(len(right)), "ids": _share(right, ids),
            "counts": _share(right, schema.count_fields),
            "all_fields": float(right.to_numpy().mean()) if right.size else None,
            "sheets_all_correct": float(right.all(axis=1).mean()) if len(right) else None,
            "per_field": {f: float(right[f].mean()) for f in schema.numeric_fields if f in right}}


def truth_choices(truth: pd.DataFrame, schema: FormSchema) -> dict[str, dict]:
    """Per sheet_id, the choices as truth.csv gives them (the form's choice fields that truth.csv has)."""
    t = truth.set_index("sheet_id")
    columns = [c for c in schema.choices if c in t]
    return {sid: {c: _text(t.at[sid, c]) for c in columns} for sid in t.index}


def _text(value) -> str | None:
    return None if pd.isna(value) else str(value)


def arithmetic_eval(verdicts: dict[str, str], truth: pd.DataFrame, written: pd.DataFrame, read_ok: pd.Series,
                    schema: FormSchema, s: AuditSettings) -> dict:
    """How the arithmetic rules and the uncertainty search did on truly inconsistent and on clean sheets
    (``verdicts``: :func:`arithmetic_verdicts` of the audit's flags), and on the visibly altered sheets
    (``altered``: what the arithmetic alone catches of them, e.g. on a form without an alteration detector)."""
    choices = truth_choices(truth, schema)
    consistent = pd.Series({sid: counts_consistent({f: _int(written.at[sid, f]) if f in written else None
                                                    for f in schema.numeric_fields},
                                                   choices.get(sid, {}), schema, s)
                            for sid in read_ok.index}, dtype="object")
    flagged = pd.Series([sid in verdicts for sid in read_ok.index], index=read_ok.index)
    called = pd.Series([verdicts.get(sid) == "inconsistent" for sid in read_ok.index], index=read_ok.index)
    bad, clean = consistent == False, consistent == True  # noqa: E712 (object Series holding None too)
    altered = truth.set_index("sheet_id")["altered"].reindex(read_ok.index).astype("boolean").fillna(False)
    return {
        "inconsistent_read_correctly": _rates(flagged, called, bad & read_ok),
        "inconsistent_all": _rates(flagged, called, bad),
        "clean": {**_rates(flagged, called, clean), "false_inconsistent_rate": _mean(called[clean]),
                  "needs_review_rate": _mean(flagged[clean] & ~called[clean])},
        "clean_misread": _rates(flagged, called, clean & ~read_ok),
        "altered": _rates(flagged, called, altered.astype(bool))}


def _int(v) -> int | None:
    return None if pd.isna(v) else int(v)


def _mean(x: pd.Series) -> float | None:
    return float(x.mean()) if len(x) else None


def _rates(flagged: pd.Series, called: pd.Series, mask: pd.Series) -> dict:
    return {"n": int(mask.sum()), "flagged_rate": _mean(flagged[mask]), "inconsistent_rate": _mean(called[mask])}


def arithmetic_verdicts(flags: list[Flag], rule_names: tuple[str, ...]) -> dict[str, str]:
    """Per sheet with an arithmetic flag (``rule_names``: the form's rules, the id check and ``unreadable``,
    :attr:`FormSchema.rule_names`): ``inconsistent`` if any such flag says so, else its verdict (``needs_review``,
    or ``suspicious`` for a soft rule)."""
    out: dict[str, str] = {}
    for f in flags:
        if f.rule in rule_names and out.get(f.sheet_id) != "inconsistent":
            out[f.sheet_id] = f.verdict
    return out


def truth_eval(sheets: pd.DataFrame, verdicts: dict[str, str], truth: pd.DataFrame, schema: FormSchema,
               s: AuditSettings, review: pd.DataFrame | None = None, alteration_skipped: str | None = None) -> dict:
    """``truth_eval.json``: alteration detection, arithmetic rules (``verdicts``: :func:`arithmetic_verdicts`),
    read accuracy and the field figures (:func:`field_section`; ``review``: :func:`review_marks`, without which
    the wrong fields not marked for review are not measured) against the ground truth. ``alteration_skipped``: why
    the detector scored none of the sheets (:func:`pipeline.audit.alteration.not_applicable`)."""
    ok = sheets[sheets["status"] == OK_STATUS]
    written = written_values(truth, schema, s)
    right = fields_read_right(ok, written)
    joined = truth.set_index("sheet_id").rename(columns={"altered": "altered_truth"}).join(
        ok[["alteration_score", "altered"]].rename(columns={"altered": "altered_pred"}), how="inner")
    return {"n_truth": int(len(truth)), "n_audited": int(len(sheets)), "n_read_ok": int(len(ok)),
            "missing_from_audit": sorted(set(truth["sheet_id"]) - set(sheets.index.astype(str))),
            "alteration": alteration_metrics(joined, alteration_skipped),
            "arithmetic": arithmetic_eval(verdicts, truth, written, right.all(axis=1), schema, s),
            "reading": read_accuracy(right, schema),
            "fields": field_section(right, ok, truth, review),
            "opposition_tick_agreement": _opposition_agreement(ok, truth)}


def evaluate_run(rundir: Path | str, audit_dir: Path | str, truth_path: Path | str,
                 s: AuditSettings | None = None) -> dict:
    """:func:`truth_eval` of an existing audit (``sheets.parquet``, ``flags.parquet`` in ``audit_dir``) of the run
    ``rundir``, with the recogniser's review marks (its ``fields.parquet``), against ``truth_path``, by the form
    the run was read with. Where the audit's detector scored no sheet of this form, the reason it recorded
    (``cantu.json`` ``alteration_skipped``) is given as the alteration figures."""
    s = s or AuditSettings()
    schema = FormSchema.of(run_template(Path(rundir)))  # a run of several forms is refused, naming its folder
    sheets = pd.read_parquet(Path(audit_dir) / "sheets.parquet").set_index("sheet_id")
    sheets.index = sheets.index.astype(str)
    verdicts = arithmetic_verdicts(frame_to_flags(pd.read_parquet(Path(audit_dir) / "flags.parquet")),
                                   schema.rule_names)
    return truth_eval(sheets, verdicts, read_truth(truth_path, schema), schema, s,
                      review=run_review_marks(rundir, schema), alteration_skipped=recorded_skip(Path(audit_dir)))


def recorded_skip(audit_dir: Path) -> str | None:
    """Why the audit in ``audit_dir`` scored no sheet with its alteration detector, as its ``cantu.json`` records
    (:data:`pipeline.audit.audit.ALTERATION_SKIPPED`); None when it says nothing (or there is no such file)."""
    path = audit_dir / "cantu.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get(ALTERATION_SKIPPED_KEY)


def _opposition_agreement(ok: pd.DataFrame, truth: pd.DataFrame) -> float | None:
    """Share of sheets whose read opposition-present tick matches the truth (None without that column in either)."""
    if "opposition_present" not in truth or "opposition_present" not in ok:
        return None
    t = truth.set_index("sheet_id")["opposition_present"].astype("Int8")
    both = ok["opposition_present"].astype("Int8").to_frame("read").join(t.rename("truth"), how="inner").dropna()
    return float(np.mean(both["read"] == both["truth"])) if len(both) else None


def headline(ev: dict) -> dict:
    """The issue 13 figures of a :func:`truth_eval` result, flat: untampered fields exact, wrong fields not
    marked for review, clean consistent sheets called inconsistent, altered-sheet precision and recall."""
    fields, alteration = ev.get("fields", {}), ev.get("alteration", {})
    clean = ev.get("arithmetic", {}).get("clean", {})
    return {"n_read_ok": ev.get("n_read_ok"), "n_fields": fields.get("n_fields"),
            "n_untampered": fields.get("n_untampered"), "untampered_exact": fields.get("untampered_exact"),
            "silent_wrong": fields.get("silent_wrong"),
            "untampered_silent_wrong": fields.get("untampered_silent_wrong"),
            "n_clean_consistent": clean.get("n"), "false_inconsistent": clean.get("false_inconsistent_rate"),
            "n_altered": alteration.get("n_altered"), "altered_precision": alteration.get("precision"),
            "altered_recall": alteration.get("recall"), "altered_roc_auc": alteration.get("roc_auc"),
            "detector_false_alarms": alteration.get("clean_false_alarm_rate"),
            "altered_inconsistent_by_arithmetic": ev.get("arithmetic", {}).get("altered", {}).get("inconsistent_rate"),
            "alteration_skipped": alteration.get("skipped")}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="truth_eval figures of an existing run and audit, with the "
                                                 "recogniser's review marks (issue 13 field figures)")
    parser.add_argument("rundir", type=Path, help="run folder (fields.parquet)")
    parser.add_argument("audit_dir", type=Path, help="audit output (sheets.parquet, flags.parquet)")
    parser.add_argument("truth", type=Path, help="truth.csv of the batch")
    parser.add_argument("--out", type=Path, help="write the whole evaluation here as JSON")
    args = parser.parse_args()
    figures = evaluate_run(args.rundir, args.audit_dir, args.truth)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps({"headline": headline(figures), "per_style_recall": figures["alteration"].get("per_style_recall"),
                      **{k: {lb: {m: v[m] for m in ("n_sheets", "n_untampered", "untampered_exact", "silent_wrong")}
                             for lb, v in figures["fields"].get(k, {}).items()} for k in BREAKDOWN_COLUMNS}},
                     indent=2))
