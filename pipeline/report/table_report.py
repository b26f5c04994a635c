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
EXPLAIN["spikes"] = (
    "Spikes at round shares (after Rozenas 2017). When results are written by hand rather than counted, turnout "
    "and the leader's share cluster on coarse round values (60%, 75%, 80% ...), which shows as spikes in their "
    "histograms at 0.1-point resolution. Each station's count is redrawn at random from its own total and share "
    "(the resampling Rozenas used), which spreads any written-in spike over its neighbours and gives the number "
    "of stations expected on the round values if nothing was written in.")
EXPLAIN["stuffing_tail"] = (
    "Stuffing tail (after the fraud model of Klimek et al. 2012 and Shpilkin). Ballots stuffed for the leader "
    "raise a station's turnout and its leader share together, pushing it out of its region's blob of stations "
    "towards the top right. In each region every station's turnout and leader share (on the logit scale) are "
    "measured from the region's medians in units of its robust spread, and projected on that direction. An honest "
    "blob is symmetric, so the stations more than the threshold out on the stuffing side (observed) are compared "
    "with those as far out on the opposite side (the mirror, shown as expected). Stations with fewer than the "
    "minimum registered voters are left out. A region made of two honest blobs (towns, and fewer villages with a "
    "higher turnout and leader share) is not symmetric and fills this tail just as stuffing does, so by default "
    "the test is reported only and raises no alarm (the setting shift_alarm turns its alarm on): look at its "
    "histogram and the regions' tail and mirror counts.")
EXPLAIN["switching_tail"] = (
    "Switching tail. Votes moved from the other choices to the leader raise the leader's share and leave the "
    "turnout where it was. The same comparison as the stuffing tail, along the leader-share direction: stations "
    "far out on the high-share side against the mirror count on the low-share side.")
TITLES = {"integer_percentages": "Integer percentages", "klimek_corner": "Klimek corner (>= 95% / >= 95%)",
          "full_turnout": "100% turnout by station size", "spikes": "Spikes at round shares",
          "stuffing_tail": "Stuffing tail (turnout and share up vs mirror)",
          "switching_tail": "Switching tail (share up vs mirror)"}
#: The tail-excess tests (pipeline.audit.table_shift): the key prefix of their columns in the ranked scopes.
TAIL_TESTS = {"stuffing_tail": "stuffing", "switching_tail": "switching"}
#: Digit tests: titles, and the caveat shown above them (weak evidence).
DIGIT_TITLES = {"digit_last_digit_uniform": "Last digits uniform (chi-square)",
                "digit_last_digit_mean": "Mean of the last digit",
                "digit_last_digit_0_or_5": "Last digits 0 or 5",
                "digit_second_digit_2bl": "Second digit, Benford (2BL)",
                "digit_second_digit_2bl_mean": "Second digit mean (2BL)",
                "digit_pair_repeated_digits": "Repeated last two digits (Beber-Scacco)",
                "digit_pair_adjacent_digits": "Adjacent last two digits (Beber-Scacco)"}
DIGIT_CAVEAT = (
    "Weak evidence. Digit tests are shown for completeness: honest counts fail them and fabricated ones can pass "
    "(Deckert, Myagkov & Ordeshook 2011 on second-digit Benford tests; Mebane 2013 found digit tests implausible "
    "as fraud evidence on Russian data). An alarm here needs the Holm-adjusted p-value below the level and an "
    "effect at least the minimum shown, and it does not count in the ranking of regions.")
#: Regions drawn as small multiples of the turnout x leader-share histogram (the strongest evidence first).
MAX_REGION_FINGERPRINTS = 12
REGION_FINGERPRINT_BINS = 50


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


def spike_figure(spikes: dict, low_pp: float = 40.0) -> Figure:
    """The 0.1-pp histograms of turnout and leader share from ``low_pp`` to 100%: observed stations (bars) and the
    resampled expectation (line), the round shares tested marked."""
    fig = Figure(figsize=(8, 5.2))
    hist = spikes["histogram"]
    rounds = spikes.get("round_values", [])
    for k, (key, label, colour) in enumerate((("turnout", "turnout", "#2563eb"),
                                              ("share", "leader share", "#dc2626"))):
        ax = fig.add_subplot(2, 1, k + 1)
        observed = np.asarray(hist[key]["observed"], float)
        resampled = np.asarray(hist[key]["resampled"], float)
        x = hist.get("first_pp", 0.0) + hist.get("bin_pp", 0.1) * np.arange(observed.size)
        keep = x >= low_pp
        ax.bar(x[keep], observed[keep], width=hist.get("bin_pp", 0.1), color=colour, alpha=0.55,
               label="observed stations")
        ax.plot(x[keep], resampled[keep], color="#111827", lw=0.8, label="expected (resampled)")
        for r in rounds:
            if r >= low_pp:
                ax.axvline(r, color="#9ca3af", lw=0.5, ls=":", zorder=0)
        ax.set_xlim(low_pp, 100)
        ax.set_xlabel(f"{label}, % (0.1-point bins; dotted: round shares tested)")
        ax.set_ylabel("stations")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def spike_card(spikes: dict, alpha: float) -> dict:
    """The spike test's card: expected vs observed (turnout, share, either) and the verdict in words."""
    nat = spikes["national"]
    parts = spikes.get("parts", {})
    rows = [{"what": "turnout on a round share", **parts.get("turnout", {})},
            {"what": "leader share on a round share", **parts.get("share", {})},
            {"what": "either (the test)", **nat}]
    step = spikes.get("step_pp", 5)
    n_alarm = sum(r.get("alarm", False) for rows_ in spikes["scopes"].values() for r in rows_)
    excess, effect = nat.get("excess"), nat.get("effect")
    if nat.get("alarm"):
        verdict = (f"Spikes found: {nat['observed']:,} stations sit on a round share where "
                   f"{nat['expected']:,.0f} were expected, {excess:+,.0f} stations ({100 * effect:.2f}% of those "
                   f"tested). Written-in results are one explanation; the stations and regions are worth a look.")
    elif nat.get("tested"):
        verdict = (f"No spike beyond chance: {nat['observed']:,} stations on a round share, {nat['expected']:,.0f} "
                   f"expected (Holm p = {nat.get('p_holm', float('nan')):.2g}; an alarm needs p < {alpha} and an "
                   f"excess of at least {100 * spikes.get('min_effect', 0):.2f}% of the stations).")
    else:
        verdict = "Not tested: too few stations."
    return {"title": TITLES["spikes"], "explain": EXPLAIN["spikes"], "rows": rows, "verdict": verdict,
            "alarm": bool(nat.get("alarm")), "regions_alarming": n_alarm, "step": step,
            "included": spikes.get("included"), "window": spikes.get("window_pp"),
            "per_round": [r for r in spikes.get("per_round", []) if r["percent"] >= 50]}


def tail_figure(tests: dict) -> Figure:
    """For each tail test, the stations' projections on its direction (robust spreads from their scope's centre):
    the histogram (bars) and its mirror image (line), the tails beyond the threshold shaded. An excess of the bars
    over the line on the right is the test's excess."""
    names = [n for n in TAIL_TESTS if n in tests]
    fig = Figure(figsize=(8, 2.8 * len(names)))
    for k, name in enumerate(names):
        test = tests[name]
        ax = fig.add_subplot(len(names), 1, k + 1)
        edges = np.asarray(test["histogram"]["edges_sd"], float)
        counts = np.asarray(test["histogram"]["stations"], float)
        mids, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        ax.bar(mids, counts, width=width, color="#2563eb", alpha=0.55, label="stations")
        ax.step(mids, counts[::-1], where="mid", color="#111827", lw=0.9, label="mirror image")
        for side in (-1, 1):
            ax.axvspan(side * test["tail_sd"], side * edges[-1], color="#fca5a5" if side > 0 else "#e5e7eb",
                       alpha=0.35, zorder=0)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xlabel(f"{TITLES[name]}: position along the direction ({test['angle_deg']:g} degrees from turnout), "
                      "robust spreads", fontsize=8)
        ax.set_ylabel("stations")
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def tail_excess(test: dict, p_text: str) -> str:
    """A tail test's national counts in words: tail and mirror stations, their excess and its share of the stations
    tested, with ``p_text`` (the p-value as the verdict gives it)."""
    nat = test["national"]
    share = 100 * (nat["effect"] if nat["stations"] else 0)
    return (f"{nat['observed']:,} stations lie more than {test['tail_sd']:g} spreads out on this side and "
            f"{nat['mirror']:,} on the mirror side, an excess of {nat['excess']:+,.0f} ({share:.2f}% of the "
            f"{nat['stations']:,} stations tested; {p_text})")


def tail_cards(tests: dict, alpha: float, min_effect: float) -> list[dict]:
    """One card per tail test: tail vs mirror, the effect and the verdict in words."""
    cards = []
    for name in (n for n in TAIL_TESTS if n in tests):
        test, nat = tests[name], tests[name]["national"]
        scoped = [r for rows in test["scopes"].values() for r in rows]
        if test.get("report_only"):
            raw = f"one-sided p = {nat.get('p', float('nan')):.2g}, not corrected"
            verdict = (f"Reported only, no alarm: {tail_excess(test, raw)}. An honest second group of stations "
                       "(villages) fills this tail as stuffed stations do, and the test cannot tell them apart, so it "
                       "raises no alarm unless the setting shift_alarm is on: read it with the integer, corner and "
                       "spike tests and what is known of each region.")
        elif nat.get("alarm"):
            holm_p = f"Holm p = {nat['p_holm']:.2g}"
            verdict = (f"Stations pushed out: {tail_excess(test, holm_p)}. Fraud of this kind is one explanation; "
                       "an honest second blob of stations is another.")
        elif nat.get("tested"):
            verdict = (f"No excess beyond chance: {nat['observed']:,} stations in the tail, {nat['mirror']:,} in "
                       f"the mirror (Holm p = {nat.get('p_holm', float('nan')):.2g}; an alarm needs p < {alpha} "
                       f"and an excess of at least {100 * min_effect:.2f}% of the stations).")
        else:
            verdict = "Not tested: too few stations."
        cards.append({"test": name, "title": TITLES[name], "explain": EXPLAIN[name], "verdict": verdict,
                      "alarm": bool(nat.get("alarm")), "report_only": bool(test.get("report_only")),
                      "regions_alarming": sum(bool(r.get("alarm")) for r in scoped),
                      "unmodelled": nat.get("unmodelled_stations", 0), "min_registered": test["min_registered"]})
    return cards


def digit_rows(tests: dict) -> list[dict]:
    """One row per digit test (national figures), with its minimum effect and how many scopes alarmed."""
    out = []
    for name, t in tests.items():
        if t.get("kind") != "digit":
            continue
        nat = t["national"]
        out.append({"title": DIGIT_TITLES.get(name, name), "digits": nat.get("digits"), "effect": nat.get("effect"),
                    "effect_name": nat.get("effect_name", ""), "min_effect": t.get("min_effect"),
                    "p_holm": nat.get("p_holm"), "alarm": nat.get("alarm"), "report_only": t.get("report_only"),
                    "skipped": nat.get("skipped"),
                    "scope_alarms": sum(bool(r.get("alarm")) for rows in t["scopes"].values() for r in rows)})
    return out


def scope_rows(tests: dict) -> list[dict]:
    """One row per scope of every forensic level, with each test's figures, ranked by evidence (alarms of the
    strong tests; digit-test alarms are counted apart as weak evidence and do not rank)."""
    rows: dict[tuple[str, str], dict] = {}
    for name, test in tests.items():
        for level, scoped in test["scopes"].items():
            for r in scoped:
                row = rows.setdefault((level, r["scope"]), {"level": level, "scope": r["scope"],
                                                            "stations": r["stations"], "alarms": 0,
                                                            "weak_alarms": 0})
                if test.get("kind") == "digit":
                    row["weak_alarms"] += int(bool(r.get("alarm")))
                    continue
                row["alarms"] += int(bool(r.get("alarm")))
                if name == "integer_percentages":
                    row.update(integer_excess=r["excess"], integer_z=r["z"])
                elif name == "klimek_corner":
                    row.update(corner_observed=r["observed"], corner_expected=r["expected"])
                elif name == "spikes":
                    row.update(spike_observed=r["observed"], spike_expected=r["expected"])
                elif name in TAIL_TESTS:
                    row.update({f"{TAIL_TESTS[name]}_tail": r["observed"], f"{TAIL_TESTS[name]}_mirror": r["mirror"]})
                elif name == "full_turnout":
                    row.update(full_observed=r["observed"], full_expected=r["expected"])
    keys = ("integer_excess", "integer_z", "corner_observed", "corner_expected", "full_observed", "full_expected",
            "spike_observed", "spike_expected", *(f"{k}_{w}" for k in TAIL_TESTS.values() for w in ("tail", "mirror")))
    out = [{**dict.fromkeys(keys), **r} for r in rows.values()]
    return sorted(out, key=lambda r: (-r["alarms"], -(r["integer_z"] or 0)))


def region_fingerprints_figure(stations: pd.DataFrame, level: str, regions: list[dict]) -> Figure:
    """Small multiples: the turnout x leader-share histogram of each region in ``regions`` (``scope_rows``
    entries), each titled with its name, stations and alarms, on the same axes (log colour scale)."""
    cols = min(4, max(1, len(regions)))
    nrows = int(np.ceil(len(regions) / cols))
    fig = Figure(figsize=(3.0 * cols, 2.9 * nrows))
    for k, region in enumerate(regions):
        ax = fig.add_subplot(nrows, cols, k + 1)
        sel = stations[stations[level].astype(str) == region["scope"]]
        t, w = sel["turnout"].to_numpy(float), sel["leader_share"].to_numpy(float)
        ok = np.isfinite(t) & np.isfinite(w)
        hist, _, _ = np.histogram2d(np.clip(t[ok], 0, 1), np.clip(w[ok], 0, 1), bins=REGION_FINGERPRINT_BINS,
                                    range=[[0, 1], [0, 1]])
        ax.imshow(np.log1p(hist.T), origin="lower", extent=[0, 100, 0, 100], cmap="viridis", aspect="auto")
        name = region["scope"] if len(region["scope"]) <= 30 else region["scope"][:29] + "…"
        ax.set_title(f"{name}\n{int(ok.sum())} stations, {region['alarms']} alarm(s)", fontsize=8)
        ax.tick_params(labelsize=7)
        if k % cols == 0:
            ax.set_ylabel("leader share, %", fontsize=7)
        if k >= len(regions) - cols:
            ax.set_xlabel("turnout, %", fontsize=7)
    fig.tight_layout()
    return fig


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
    alpha = summary.get("settings", {}).get("alpha", 0.05)
    figures = []
    if "integer_percentages" in tests:
        _save(integer_figure(tests["integer_percentages"]["per_integer"]), out / "figures" / "table_integers.png")
        figures.append({"file": "table_integers.png", "alt": "excess at each integer percentage",
                        "caption": "Stations at each integer percentage above the Monte-Carlo null (50-100%)."})
    levels = [lv for lv in summary.get("forensic_levels", []) if lv]
    stations = pd.read_parquet(audit_dir / "stations.parquet", columns=["turnout", "leader_share", "status",
                                                                         *levels[:1]])
    stations = stations[~stations["status"].isin(("bad_id", "bad_value", "duplicate_id", "excluded"))]
    _save(fingerprint_figure(stations["turnout"].to_numpy(float), stations["leader_share"].to_numpy(float)),
          out / "figures" / "table_fingerprint.png")
    figures.append({"file": "table_fingerprint.png", "alt": "turnout x leader share histogram",
                    "caption": "Turnout x leader share, every station kept (the Klimek fingerprint)."})
    spikes = None
    if "spikes" in tests:
        spike = {**tests["spikes"], "min_effect": summary.get("settings", {}).get("spike_min_effect", 0)}
        spikes = spike_card(spike, alpha)
        _save(spike_figure(spike), out / "figures" / "table_spikes.png")
        spikes["figure"] = "table_spikes.png"
    tails = tail_cards(tests, alpha, summary.get("settings", {}).get("shift_min_effect", 0))
    tail_plot = None
    if tails:
        _save(tail_figure(tests), out / "figures" / "table_tails.png")
        tail_plot = "table_tails.png"
    ranked = scope_rows(tests)
    region_figure = None
    if levels:
        top = [r for r in ranked if r["level"] == levels[0]][:MAX_REGION_FINGERPRINTS]
        if top:
            _save(region_fingerprints_figure(stations, levels[0], top), out / "figures" / "table_regions.png")
            region_figure = {"file": "table_regions.png", "level": levels[0], "n": len(top),
                             "alt": f"turnout x leader share histograms of the {len(top)} {levels[0]} scopes "
                                    "with the strongest evidence"}
    flags = pd.read_csv(audit_dir / "flags.csv", keep_default_na=False)
    station_flags = flags[flags["station"] != ""].copy()
    station_flags["order"] = station_flags["severity"].map(SEVERITY_ORDER).fillna(9)
    station_flags = station_flags.sort_values(["order", "row"], kind="stable")
    test_rows = [{"title": TITLES.get(k, k), "explain": EXPLAIN.get(k, ""), "report_only": t.get("report_only"),
                  "expected": t["national"].get("null_mean", t["national"].get("expected")), **t["national"]}
                 for k, t in tests.items() if t.get("kind") != "digit"]
    env = environment()
    html = env.get_template("table_audit.html").render(
        name=summary.get("name", ""), mapping=Path(summary.get("mapping", "")).name, rows=summary.get("rows", 0),
        statuses=sorted(summary.get("statuses", {}).items()), rules=summary.get("rules", []),
        excluded=sorted(summary.get("excluded", {}).get("by_reason", {}).items()), leader=summary.get("leader", ""),
        alpha=alpha, tests=test_rows, figures=figures, scopes=ranked, spikes=spikes, region_figure=region_figure,
        tails=tails, tail_figure=tail_plot,
        digits=digit_rows(tests), digit_caveat=DIGIT_CAVEAT,
        station_flags=station_flags.head(MAX_STATION_FLAGS).to_dict("records"), n_station_flags=len(station_flags),
        version=__version__, built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    page = out / "table.html"
    write_text_atomic(page, html)
    return page


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI, facecolor="white")
