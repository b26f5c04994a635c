"""Pure pandas summaries behind the report pages: ranking, counts, crosstabs, reader accuracy.

No file access and no HTML here, so each summary can be tested on a hand-built table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pandas as pd

SEVERITIES = ("info", "low", "medium", "high")
DEFAULT_LEVEL = 0.95
SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
SLUG_HASH_CHARS = 8
SLUG_MAX_CHARS = 80
#: Evidence entries not shown as text (the image paths of the fields; the page shows the crops instead).
HIDDEN_EVIDENCE = ("images",)
#: Columns of the index table, in display order (those a sheets table lacks are left out).
INDEX_COLUMNS = ("rank", "sheet_id", "verdict", "status", "severity", "n_flags", "rules", "suspicion",
                 "alteration_score", "district", "section", "station", "total_votes", "min_conf")


def sheet_slug(sheet_id: str) -> str:
    """A file-name-safe, collision-free stem for a sheet's page: unsafe characters become ``_`` plus a hash."""
    slug = SLUG_UNSAFE.sub("_", sheet_id)[:SLUG_MAX_CHARS].replace(".", "_", 1 if sheet_id.startswith(".") else 0)
    if slug != sheet_id or not slug:
        slug = f"{slug}-{hashlib.sha1(sheet_id.encode('utf-8')).hexdigest()[:SLUG_HASH_CHARS]}"
    return slug


def severity_rank(severity: str) -> int:
    """Order of a severity (``info`` lowest); unknown severities sort below ``info``."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


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


def rank_sheets(sheets: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """Sheets ordered by suspicion (then flags, then id) with ``rank``, ``slug``, ``severity``, ``rules``,
    ``min_conf``: the order of the index table and of the sheet pages' previous/next links."""
    table = sheets.join(flag_summary(flags), on="sheet_id")
    table["severity"] = table["severity"].fillna("")
    table["rules"] = table["rules"].fillna("")
    conf = confidence_columns(sheets)
    table["min_conf"] = table[conf].min(axis=1) if conf else np.nan
    table = table.sort_values(["suspicion", "n_flags", "sheet_id"], ascending=[False, False, True],
                              na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["slug"] = table["sheet_id"].map(sheet_slug)
    return table


def status_counts(sheets: pd.DataFrame) -> list[dict]:
    """``[{status, n, pct}]``, most common first."""
    counts = sheets["status"].fillna("unknown").astype(str).value_counts()
    total = max(int(counts.sum()), 1)
    return [{"status": s, "n": int(n), "pct": 100.0 * n / total} for s, n in counts.items()]


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


def verdict_counts(flags: pd.DataFrame) -> dict[str, int]:
    """Number of distinct sheets per flag verdict (a sheet counts once per verdict)."""
    if flags.empty:
        return {}
    return {str(k): int(v) for k, v in flags.groupby("verdict")["sheet_id"].nunique().sort_values(
        ascending=False).items()}


def json_safe(value):
    """A table cell as a JSON value: NaN/NA become ``None``, numpy scalars become Python ones."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def table_rows(ranked: pd.DataFrame, columns: list[str]) -> list[list]:
    """The ranked table as rows of JSON-safe values, ``slug`` appended to each row for the page link."""
    return [[json_safe(v) for v in row] for row in ranked[[*columns, "slug"]].itertuples(index=False, name=None)]


def parse_json_cell(text) -> object:
    """A JSON cell (evidence, alternatives) as Python data; text that is not JSON is returned as is."""
    if not isinstance(text, str):
        return json_safe(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def evidence_view(text) -> dict:
    """A flag's evidence for display: scalars as ``(key, value)`` pairs, and the per-field mappings (values,
    text, confidence ...) side by side as one table ``{"columns": [...], "rows": [(field, [...])]}``. Image
    paths are left out: the page shows the crops themselves."""
    data = parse_json_cell(text)
    if not isinstance(data, dict):
        return {"items": [("evidence", str(data))] if data not in (None, "", {}) else [], "columns": [], "rows": []}
    items = [(str(k), json.dumps(v) if isinstance(v, list) else json_safe(v)) for k, v in data.items()
             if not isinstance(v, dict)]
    nested = {k: v for k, v in data.items() if isinstance(v, dict) and k not in HIDDEN_EVIDENCE}
    keys = list(dict.fromkeys(f for v in nested.values() for f in v))
    rows = [(f, [json_safe(nested[c].get(f)) if not isinstance(nested[c].get(f), dict | list)
                 else json.dumps(nested[c].get(f)) for c in nested]) for f in keys]
    return {"items": items, "columns": list(nested), "rows": rows}


def split_fields(text) -> list[str]:
    """A flag's ``fields`` cell as a list of field names."""
    return [f for f in str(text or "").split(";") if f]


def digit_pairs(digits: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """Digit reads joined to the digits written in the same boxes: columns ``truth``, ``label``, ``confidence``."""
    keys = ["sheet_id", "field", "box"]
    left = digits[digits.get("slot", 0) == 0] if "slot" in digits.columns else digits
    truth = boxes[keys + ["digit"]].astype({"sheet_id": str})
    merged = left.astype({"sheet_id": str}).merge(truth, on=keys, how="inner")
    merged = merged[(merged["digit"] >= 0) & merged["label"].notna()]
    return merged.rename(columns={"digit": "truth"})[["truth", "label", "confidence"]].astype(
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
