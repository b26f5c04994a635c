"""Pure pandas summaries behind the report pages: ranking, counts, crosstabs, reader accuracy.

No file access and no HTML here, so each summary can be tested on a hand-built table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.report import triage
from pipeline.report.formview import FormView

SEVERITIES = triage.SEVERITIES
DEFAULT_LEVEL = 0.95
SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
SLUG_HASH_CHARS = 8
SLUG_MAX_CHARS = 80
#: Evidence entries never shown as text: image paths (the page shows the crops), candidate lists, probabilities
#: of the audit's internals that need a statistics course to read, and the form's own words for the rule and the
#: fields (the page names each field by its label, and shows the rule from the template).
HIDDEN_EVIDENCE = ("images", "candidates", "fix_probability", "fix_likelihood_ratio", "read_right_probability",
                   "text", "other_sheets_detail", triage.RULE_TEXT_KEY, triage.RULE_LABEL_KEY, "labels")
#: Columns of the index table before the form's own (the station's id fields and its votes cast), and after them,
#: in display order (those a sheets table lacks are left out): :func:`index_columns`.
INDEX_HEAD = ("rank", "sheet_id", "verdict", "reason", "suspicion", "reading", "n_flags")
INDEX_TAIL = ("min_conf",)
#: Roles whose field is the index table's count column, first found first (votes cast, else the valid votes).
INDEX_COUNT_ROLES = ("total", "valid")


def index_columns(form: FormView) -> tuple[str, ...]:
    """The index table's columns for the run's form: :data:`INDEX_HEAD`, the numbered fields of the station's
    identity (``station_key``, its first level left out when the key has several: the coarsest level, a state,
    is the same for most of a batch), the field of the first of :data:`INDEX_COUNT_ROLES` the form has, and
    :data:`INDEX_TAIL`."""
    ids = [f for f in form.station_key if f in form.bindings]  # numbered: a choice (station type) is not
    ids = ids[1:] if len(ids) > 1 else ids
    count = next((form.role_fields(r)[0] for r in INDEX_COUNT_ROLES if len(form.role_fields(r)) == 1), None)
    return (*INDEX_HEAD, *ids, *([count] if count else []), *INDEX_TAIL)


#: The column of a run of several forms that names each sheet's form (its template), shown after ``reading``.
PAGE_TYPE_COLUMN = "page_type"


def mixed_index_columns(forms: list[FormView]) -> tuple[str, ...]:
    """The index table's columns for a run of several ``forms``: every form's :func:`index_columns` (first seen
    first, :data:`INDEX_TAIL` last) with :data:`PAGE_TYPE_COLUMN` after ``reading``."""
    cols = [c for c in dict.fromkeys(c for form in forms for c in index_columns(form)) if c not in INDEX_TAIL]
    cols += list(INDEX_TAIL)
    cols.insert(cols.index("reading") + 1 if "reading" in cols else len(cols), PAGE_TYPE_COLUMN)
    return tuple(cols)


def sheet_slug(sheet_id: str) -> str:
    """A file-name-safe, collision-free stem for a sheet's page: unsafe characters become ``_`` plus a hash."""
    slug = SLUG_UNSAFE.sub("_", sheet_id)[:SLUG_MAX_CHARS].replace(".", "_", 1 if sheet_id.startswith(".") else 0)
    if slug != sheet_id or not slug:
        slug = f"{slug}-{hashlib.sha1(sheet_id.encode('utf-8')).hexdigest()[:SLUG_HASH_CHARS]}"
    return slug


severity_rank = triage.severity_rank


def flag_summary(flags: pd.DataFrame) -> pd.DataFrame:
    """Per sheet: the highest severity and the rules that fired (``;``-joined, sorted)."""
    if flags.empty:
        return pd.DataFrame(columns=["sheet_id", "severity", "rules"]).set_index("sheet_id")
    ranked = flags.assign(_rank=flags["severity"].map(severity_rank))
    grouped = ranked.groupby("sheet_id")
    top = grouped["_rank"].max().map(lambda r: SEVERITIES[r] if r >= 0 else "")
    rules = grouped["rule"].agg(lambda s: ";".join(sorted(set(map(str, s)))))
    return pd.DataFrame({"severity": top, "rules": rules})


def confidence_columns(sheets: pd.DataFrame) -> list[str]:
    """The per-field confidence columns (``F_conf``) of the sheets table."""
    return [c for c in sheets.columns if c.endswith("_conf")]


def sheet_verdicts(sheets: pd.DataFrame, flags: pd.DataFrame) -> pd.Series:
    """Each sheet's one verdict (:func:`triage.sheet_verdict`: its gravest flag's, ``ok`` for none), in the order
    of ``sheets``: the value behind the chips, the table filter, ``summary`` and the CSVs."""
    if flags.empty:
        return pd.Series(triage.CLEAN_VERDICT, index=sheets.index, dtype=object)
    per_sheet = flags["verdict"].astype(str).groupby(flags["sheet_id"].astype(str)).agg(triage.sheet_verdict)
    return sheets["sheet_id"].astype(str).map(per_sheet).fillna(triage.CLEAN_VERDICT)


def rank_sheets(sheets: pd.DataFrame, flags: pd.DataFrame, names: dict[str, str] | None = None,
                conf_high: float = 0.9, form: FormView | None = None,
                sheet_form: Callable[[str], FormView] | None = None) -> pd.DataFrame:
    """Sheets in the report's order (:mod:`pipeline.report.triage`: tier, then the severity that put the sheet
    there, then suspicion, then id) with ``rank``, ``slug``, ``verdict`` (one per sheet), ``reading``, ``tier``,
    ``reason``, ``key_field``, ``severity``, ``rules`` and ``min_conf``: the order of the index table, of the
    sheet pages' previous/next links and of ``sheets.csv``. ``form``: the run's form (its rules and station
    identity word the reasons); ``sheet_form``: each sheet's form by its id, for a run of several forms (its
    fields then named by that form's names, not ``names``)."""
    table = sheets.join(flag_summary(flags), on="sheet_id")
    table["severity"] = table["severity"].fillna("")
    table["rules"] = table["rules"].fillna("")
    conf = confidence_columns(sheets)
    table["min_conf"] = table[conf].min(axis=1) if conf else np.nan
    by_sheet: dict[str, list[dict]] = {}
    for record in flags.to_dict("records"):
        by_sheet.setdefault(str(record["sheet_id"]), []).append(record)
    names = names or {}

    def triaged_row(row: dict) -> dict:
        own = sheet_form(str(row["sheet_id"])) if sheet_form is not None else None
        return triage.sheet_triage(row, by_sheet.get(str(row["sheet_id"]), []),
                                   names if own is None else dict(own.names), conf_high, own or form)

    triaged = pd.DataFrame([triaged_row(row) for row in table.to_dict("records")], index=table.index,
                           columns=["verdict", "tier", "tier_severity", "reason", "key_field"])
    table = table.drop(columns=[c for c in triaged.columns if c in table.columns]).join(triaged)
    table["reading"] = table["status"].map(triage.reading_label)
    table = table.sort_values(["tier", "tier_severity", "suspicion", "sheet_id"], ascending=[True, False, False, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["slug"] = table["sheet_id"].map(sheet_slug)
    return table


def status_counts(sheets: pd.DataFrame) -> list[dict]:
    """``[{reading, n, pct}]``: sheets per reading outcome (the ``reading`` column of :func:`rank_sheets`, else
    the reader's status in words), most common first."""
    reading = sheets["reading"] if "reading" in sheets.columns else sheets["status"].map(triage.reading_label)
    counts = reading.fillna("unknown").astype(str).value_counts()
    total = max(int(counts.sum()), 1)
    return [{"reading": s, "n": int(n), "pct": 100.0 * n / total} for s, n in counts.items()]


def flags_by_rule(flags: pd.DataFrame) -> pd.DataFrame:
    """Crosstab of rule x severity (columns in severity order, plus ``total`` and ``sheets`` affected)."""
    if flags.empty:
        return pd.DataFrame(columns=[*SEVERITIES, "total", "sheets"])
    table = pd.crosstab(flags["rule"], flags["severity"])
    cols = [s for s in SEVERITIES if s in table.columns] + [s for s in table.columns if s not in SEVERITIES]
    table = table[cols]
    table["total"] = table.sum(axis=1)
    table["sheets"] = flags.groupby("rule")["sheet_id"].nunique()
    return table.sort_values("total", ascending=False)


def verdict_counts(ranked: pd.DataFrame) -> dict[str, int]:
    """Sheets per verdict, one verdict per sheet (the ``verdict`` column of :func:`rank_sheets`)."""
    return triage.verdict_counts(ranked["verdict"])


def json_safe(value):
    """A table cell as a JSON value: NaN/NA become ``None``, numpy scalars become Python ones."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def table_rows(ranked: pd.DataFrame, columns: list[str]) -> list[list]:
    """The ranked table as rows of JSON-safe values, ``slug`` (and ``page``, the link to the sheet's page relative
    to the index, when the table has one) appended to each row."""
    extra = ["slug", "page"] if "page" in ranked.columns else ["slug"]
    return [[json_safe(v) for v in row] for row in ranked[[*columns, *extra]].itertuples(index=False, name=None)]


def parse_json_cell(text) -> object:
    """A JSON cell (evidence, alternatives) as Python data; text that is not JSON is returned as is."""
    if not isinstance(text, str):
        return json_safe(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shown_value(value):
    """An evidence value for a table cell: lists and dicts as compact JSON, floats to 3 significant places."""
    value = json_safe(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, float) and not value.is_integer():
        return float(f"{value:.3g}")
    return value


def compact_mapping(value):
    """A small mapping inside the evidence as words: a proposed reading as ``26 -> 20 (probability 0.42)``, any
    other as ``key value, key value``; anything else unchanged."""
    if not isinstance(value, dict):
        return value
    if {"read", "alternative"} <= value.keys():
        p = value.get("probability")
        chance = f" (probability {p:.2g})" if isinstance(p, int | float) else ""
        return f"{value['read']} -> {value['alternative']}{chance}"
    return ", ".join(f"{k} {_shown_value(v)}" for k, v in value.items())


def evidence_view(text, fields: list[str] | None = None, names: dict[str, str] | None = None) -> dict:
    """A flag's evidence for display, only what supports the finding: scalars as ``(key, value)`` pairs (missing
    values and the audit's internal probabilities left out), and the per-field mappings (values, confidence,
    scores ...) side by side as one table ``{"columns": [...], "rows": [(field name, [...])]}`` restricted to
    ``fields`` when given (the fields that caused the flag), rows with nothing in them dropped. Image paths are
    left out: the page shows the crops themselves. Among several mappings, one whose keys no other mapping shares
    (the district a sheet was compared with: ``state 31, district 4``) is not a table column but one item, and a
    cell holding a mapping (a proposed reading) is put in words (:func:`compact_mapping`). A key that names a field
    is shown by the field's name in ``names``; the rule's text and label are left to the caller, which takes them
    from the form (:func:`pipeline.report.sheetpages.rule_items`)."""
    data = parse_json_cell(text)
    names = names or {}
    if not isinstance(data, dict):
        return {"items": [("evidence", str(data))] if data not in (None, "", {}) else [], "columns": [], "rows": []}
    items = [(names.get(str(k), str(k)), _shown_value(v)) for k, v in data.items()
             if not isinstance(v, dict) and k not in HIDDEN_EVIDENCE and json_safe(v) not in (None, "", [])]
    nested = {k: v for k, v in data.items() if isinstance(v, dict) and v and k not in HIDDEN_EVIDENCE}
    shared = Counter(f for v in nested.values() for f in v)
    own = [k for k, v in nested.items() if len(nested) > 1 and all(shared[f] == 1 for f in v)
           and not any(f in (fields or ()) for f in v)]
    items += [(k, compact_mapping(nested.pop(k))) for k in own]
    keys = list(dict.fromkeys(f for v in nested.values() for f in v))
    if fields is not None:
        keys = [f for f in keys if f in fields] if any(f in fields for f in keys) else keys
    rows = [(names.get(f, f), [_shown_value(compact_mapping(nested[c].get(f))) for c in nested]) for f in keys]
    rows = [(f, vals) for f, vals in rows if any(v is not None for v in vals)]
    columns = [c for i, c in enumerate(nested) if any(vals[i] is not None for _, vals in rows)]
    keep = [i for i, c in enumerate(nested) if c in columns]
    return {"items": items, "columns": columns, "rows": [(f, [vals[i] for i in keep]) for f, vals in rows]}


def split_fields(text) -> list[str]:
    """A flag's ``fields`` cell as a list of field names."""
    return [f for f in str(text or "").split(";") if f]


def digit_pairs(digits: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """Digit reads joined to the digits written in the same boxes: columns ``sheet_id``, ``truth``, ``label``,
    ``confidence``."""
    keys = ["sheet_id", "field", "box"]
    left = digits[digits.get("slot", 0) == 0] if "slot" in digits.columns else digits
    truth = boxes[keys + ["digit"]].astype({"sheet_id": str})
    merged = left.astype({"sheet_id": str}).merge(truth, on=keys, how="inner")
    merged = merged[(merged["digit"] >= 0) & merged["label"].notna()]
    return merged.rename(columns={"digit": "truth"})[["sheet_id", "truth", "label", "confidence"]].astype(
        {"truth": int, "label": int})


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """Nested JSON as ``{"a.b": scalar}`` (lists are left out: they are figures' data, not table cells)."""
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        elif not isinstance(value, list):
            out[name] = json_safe(value)
    return out


#: The headline keys of :func:`truth_summary` (each ``None`` in :func:`no_truth_summary`).
TRUTH_HEADLINES = ("n_truth", "n_read_ok", "altered", "recall", "precision", "roc_auc", "inconsistent",
                   "inconsistent_flagged", "clean_false_inconsistent", "fields_right", "sheets_all_right")


def no_truth_summary() -> dict:
    """A :func:`truth_summary` without figures: every headline ``None``, no field, no details (a run of several
    forms, whose figures are each page type's, or a page type the evaluation has nothing for)."""
    return {**dict.fromkeys(TRUTH_HEADLINES), "per_field": {}, "details": {}}


def truth_summary(truth_eval: dict) -> dict | None:
    """Headline figures of the audit's ground-truth evaluation (``truth_eval.json``), ``None`` without one."""
    if not truth_eval:
        return None
    alteration, reading = truth_eval.get("alteration", {}), truth_eval.get("reading", {})
    clean = truth_eval.get("arithmetic", {}).get("clean", {})
    inconsistent = truth_eval.get("arithmetic", {}).get("inconsistent_all", {})
    return {"n_truth": truth_eval.get("n_truth"), "n_read_ok": truth_eval.get("n_read_ok"),
            "altered": alteration.get("n_altered"), "recall": alteration.get("recall"),
            "precision": alteration.get("precision"), "roc_auc": alteration.get("roc_auc"),
            "inconsistent": inconsistent.get("n"), "inconsistent_flagged": inconsistent.get("flagged_rate"),
            "clean_false_inconsistent": clean.get("false_inconsistent_rate"),
            "fields_right": reading.get("all_fields"), "sheets_all_right": reading.get("sheets_all_correct"),
            "per_field": reading.get("per_field") or {}, "details": flatten(truth_eval)}


RATE_KEYS = ("rate", "alteration_rate", "share", "proportion")
CI_KEYS = ("ci", "interval", "confidence_interval")
GROUP_LABELS = {"present": "opposition present", "absent": "opposition absent"}
COMPARISON_TITLES = {"detected": "Alterations found by the detector", "true": "True alterations (ground truth)"}


def as_float(value) -> float | None:
    """A finite float, or ``None`` for missing values."""
    value = json_safe(value)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def interval_of(d: dict) -> list[float] | None:
    """A ``[low, high]`` interval from a ``ci``-like key or ``ci_low``/``ci_high`` (``None`` if either is missing)."""
    for key in CI_KEYS:
        value = d.get(key)
        if isinstance(value, list | tuple) and len(value) == 2:
            low, high = as_float(value[0]), as_float(value[1])
            return [low, high] if low is not None and high is not None else None
    low, high = as_float(d.get("ci_low")), as_float(d.get("ci_high"))
    return [low, high] if low is not None and high is not None else None


def comparison_view(title: str, data: dict) -> dict:
    """One rate comparison for display: groups with rate, interval and n; the difference with its interval;
    other scalars (test p-value, method) as ``(key, value)``; ``skipped`` when it could not be computed."""
    groups, rest = [], []
    for key, value in data.items():
        rate_key = next((k for k in RATE_KEYS if isinstance(value, dict) and k in value), None)
        if rate_key:
            groups.append({"label": GROUP_LABELS.get(key, key.replace("_", " ")), "rate": as_float(value[rate_key]),
                           "ci": interval_of(value), "n": value.get("n"), "altered": value.get("altered")})
        elif not isinstance(value, dict | list) and key not in ("difference", "skipped"):
            rest.append((key.replace("_", " "), value))
    return {"title": title, "groups": groups, "difference": as_float(data.get("difference")),
            "difference_ci": interval_of(data), "rest": rest, "skipped": data.get("skipped")}


def cantu_view(cantu: dict) -> dict:
    """The Cantú comparisons of ``cantu.json`` (detected and, with ground truth, true alterations) plus the
    shared settings (confidence level, ruling party)."""
    nested = {k: v for k, v in cantu.items() if isinstance(v, dict) and any(isinstance(x, dict) or k2 == "skipped"
                                                                            for k2, x in v.items())}
    if not nested and cantu:
        nested = {"detected": cantu}
    comparisons = [comparison_view(COMPARISON_TITLES.get(k, k.replace("_", " ")), v) for k, v in nested.items()]
    level = as_float(cantu.get("level"))
    return {"comparisons": comparisons, "level": level if level is not None else DEFAULT_LEVEL,
            "ruling_party": cantu.get("ruling_party")}


#: Headline figures of the alteration detector: (label, the last part of a flattened key).
DETECTOR_HEADLINE = (("threshold", "threshold"), ("precision", "precision"), ("recall", "recall"),
                     ("ROC AUC", "roc_auc"), ("AUC", "auc"), ("sheets trained on", "n_sheets"))
#: What the detector cannot see, said on the model page.
DETECTOR_BLIND_SPOT = ("It looks for visible traces in the field images (overwriting, erasure, correction fluid, "
                       "cross-outs). A number written wrong from the start, without any trace, is invisible to it: "
                       "only the arithmetic and the digit tests can catch those.")


def detector_view(flat: dict) -> dict:
    """The alteration detector's description (flattened ``detector.json``) for display: a few headline figures
    (first key ending in each of :data:`DETECTOR_HEADLINE`), recall per tampering style (``per_style.<style>.*``),
    and every other scalar for a details list, absolute paths left out (they name the machine that trained it)."""
    headline = []
    for label, suffix in DETECTOR_HEADLINE:
        key = next((k for k in flat if (k == suffix or k.endswith("." + suffix)) and "per_style" not in k
                    and isinstance(flat[k], int | float) and not isinstance(flat[k], bool)), None)
        if key is not None:
            headline.append((label, flat[key]))
    styles: dict[str, dict] = {}
    for key, value in flat.items():
        head, _, rest = key.partition("per_style.")
        if rest and "." in rest:
            style, _, metric = rest.partition(".")
            styles.setdefault(style, {})[metric] = value
    per_style = [{"style": k.replace("_", " "), "field_recall": v.get("field_recall"),
                  "sheet_recall": v.get("sheet_recall"), "n": v.get("n_fields")} for k, v in sorted(styles.items())]
    rest = [(k, v) for k, v in flat.items() if not (isinstance(v, str) and v.startswith("/"))]
    return {"headline": headline, "per_style": per_style, "all": rest, "blind_spot": DETECTOR_BLIND_SPOT}
