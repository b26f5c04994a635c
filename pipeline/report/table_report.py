"""The HTML page of a results-table audit (``audit-table --report DIR``): ``DIR/table.html`` with its figures and
the audit's files under ``DIR/data/``. Self-contained, works from ``file://``; every value is escaped (Jinja2
autoescape via :func:`pipeline.report.build.environment`).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipeline import __version__
from pipeline.atomic import write_text_atomic

#: Station flags listed on the page (the rest are in flags.csv).
MAX_STATION_FLAGS = 300
#: Bins per axis of the turnout x leader-share histogram (1-pp bins).
FINGERPRINT_BINS = 100
FIGURE_DPI = 110
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}
#: Plain-language explanation of each test, shown under the results.
EXPLAIN = {
    "integer_percentages": (
        "Integer percentages (Kobak, Shpilkin & Pshenichnikov 2016). When results are written to reach a target, "
        "turnout or the leader's share often lands exactly on a round percentage. The test counts stations whose "
        "turnout or leader share is within 0.05 points of an integer and compares the count with what the same "
        "stations give when their counts are redrawn at random (binomially) from their own totals."),
    "klimek_corner": (
        "The Klimek corner (Klimek et al. 2012). Ballot stuffing and rewriting push stations towards 100% turnout "
        "and 100% for the leader. The test compares the stations with both at 95% or more with what a model of "
        "the bulk of stations (fitted on those below 80%) and each station's size predict."),
    "full_turnout": (
        "100% turnout by station size. A small station reaches 100% turnout far more easily than a large one, so "
        "each such station is judged by the probability of its 100% given its size and its scope's turnout "
        "spread. Special stations (hospitals, ships, remote units) reach 100% legitimately, so the count is "
        "reported without an alarm by default."),
}
TITLES = {"integer_percentages": "Integer percentages", "klimek_corner": "Klimek corner (>= 95% / >= 95%)",
          "full_turnout": "100% turnout by station size"}


def integer_figure(per_integer: list[dict]) -> Figure:
    """Excess of stations at each integer percentage (observed minus the null mean), turnout and share."""
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    pct = np.array([r["percent"] for r in per_integer])
    for key, colour, shift in (("turnout", "#2563eb", -0.2), ("share", "#dc2626", 0.2)):
        excess = np.array([r[f"{key}_observed"] - r[f"{key}_null_mean"] for r in per_integer])
        ax.bar(pct + shift, excess, width=0.4, color=colour, label=key)
    ax.axhline(0, color="#1f2937", lw=0.8)
    ax.set_xlabel("integer percentage")
    ax.set_ylabel("stations above the null")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def fingerprint_figure(turnout: np.ndarray, share: np.ndarray) -> Figure:
    """The 2-D histogram of turnout x leader share (log colour scale)."""
    fig = Figure(figsize=(5, 4.4))
    ax = fig.add_subplot()
    ok = np.isfinite(turnout) & np.isfinite(share)
    hist, xe, ye = np.histogram2d(np.clip(turnout[ok], 0, 1), np.clip(share[ok], 0, 1), bins=FINGERPRINT_BINS,
                                  range=[[0, 1], [0, 1]])
    image = ax.imshow(np.log1p(hist.T), origin="lower", extent=[0, 100, 0, 100], cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="log(1 + stations)")
    ax.set_xlabel("turnout, %")
    ax.set_ylabel("leader share, %")
    fig.tight_layout()
    return fig


def scope_rows(tests: dict) -> list[dict]:
    """One row per scope of every forensic level, with each test's figures, ranked by evidence."""
    rows: dict[tuple[str, str], dict] = {}
    for name, test in tests.items():
        for level, scoped in test["scopes"].items():
            for r in scoped:
                row = rows.setdefault((level, r["scope"]), {"level": level, "scope": r["scope"],
                                                            "stations": r["stations"], "alarms": 0})
                row["alarms"] += int(bool(r.get("alarm")))
                if name == "integer_percentages":
                    row.update(integer_excess=r["excess"], integer_z=r["z"])
                elif name == "klimek_corner":
                    row.update(corner_observed=r["observed"], corner_expected=r["expected"])
                else:
                    row.update(full_observed=r["observed"], full_expected=r["expected"])
    keys = ("integer_excess", "integer_z", "corner_observed", "corner_expected", "full_observed", "full_expected")
    out = [{**dict.fromkeys(keys), **r} for r in rows.values()]
    return sorted(out, key=lambda r: (-r["alarms"], -(r["integer_z"] or 0)))


def build_table_report(audit_dir: Path, out: Path) -> Path:
    """Write ``out/table.html`` from the audit folder ``audit_dir``; returns the page's path."""
    from pipeline.report.build import copy_static, environment

    audit_dir, out = Path(audit_dir), Path(out)
    summary = json.loads((audit_dir / "forensics.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    copy_static(out)
    (out / "data").mkdir(exist_ok=True)
    for name in ("stations.csv", "flags.csv", "excluded.csv", "forensics.json"):
        shutil.copyfile(audit_dir / name, out / "data" / name)
    tests = summary.get("tests", {})
    figures = []
    if "integer_percentages" in tests:
        _save(integer_figure(tests["integer_percentages"]["per_integer"]), out / "figures" / "table_integers.png")
        figures.append({"file": "table_integers.png", "alt": "excess at each integer percentage",
                        "caption": "Stations at each integer percentage above the Monte-Carlo null (50-100%)."})
    stations = pd.read_parquet(audit_dir / "stations.parquet", columns=["turnout", "leader_share"])
    _save(fingerprint_figure(stations["turnout"].to_numpy(float), stations["leader_share"].to_numpy(float)),
          out / "figures" / "table_fingerprint.png")
    figures.append({"file": "table_fingerprint.png", "alt": "turnout x leader share histogram",
                    "caption": "Turnout x leader share, every station kept (the Klimek fingerprint)."})
    flags = pd.read_csv(audit_dir / "flags.csv", keep_default_na=False)
    station_flags = flags[flags["station"] != ""].copy()
    station_flags["order"] = station_flags["severity"].map(SEVERITY_ORDER).fillna(9)
    station_flags = station_flags.sort_values(["order", "row"], kind="stable")
    test_rows = [{"title": TITLES.get(k, k), "explain": EXPLAIN.get(k, ""), "report_only": t.get("report_only"),
                  "expected": t["national"].get("null_mean", t["national"].get("expected")), **t["national"]}
                 for k, t in tests.items()]
    env = environment()
    html = env.get_template("table_audit.html").render(
        name=summary.get("name", ""), mapping=Path(summary.get("mapping", "")).name, rows=summary.get("rows", 0),
        statuses=sorted(summary.get("statuses", {}).items()), rules=summary.get("rules", []),
        excluded=sorted(summary.get("excluded", {}).get("by_reason", {}).items()), leader=summary.get("leader", ""),
        alpha=summary.get("settings", {}).get("alpha", 0.05),
        tests=test_rows, figures=figures, scopes=scope_rows(tests),
        station_flags=station_flags.head(MAX_STATION_FLAGS).to_dict("records"), n_station_flags=len(station_flags),
        version=__version__, built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    page = out / "table.html"
    write_text_atomic(page, html)
    return page


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI, facecolor="white")
