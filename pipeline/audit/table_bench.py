"""``python -m pipeline bench --only tables``: the results-table audit's false-alarm rate, power, speed and memory,
and its figures on the two real elections next to the published ones.

* False alarms: ``clean_tables`` clean synthetic tables shaped like the 2012 table (its station sizes and regions,
  subsampled to ``stations`` stations; each region's spreads fitted on its bulk), each test's alarm rate at
  alpha = 5%, nationally and in any region, with its 95% Clopper-Pearson interval. A test passes when the interval
  reaches down to 5% or below.
* Honestly correlated clean tables: the same tables with turnout and leader share correlated within regions
  (``CORRELATED_RHO``, as urban and rural stations honestly are); every test's alarm rate on them is reported as
  ``<test>_rho_<rho>`` (the tail tests of :mod:`pipeline.audit.table_shift` must pass there too).
* Honest mixtures: the same tables with a share ``MIXTURE[0]`` of each region's stations drawn from a second honest
  component ``MIXTURE[1]`` spreads out along the stuffing direction (:class:`TableShape` ``mix_weight`` /
  ``mix_shift``: towns and villages), reported as ``<test>_mix_<weight>_<shift>``. The tail tests of
  :mod:`pipeline.audit.table_shift` alarm on them (which is why they are reported only by default).
* The tail tests are measured as if their alarm were on (``shift_alarm``): :func:`bench_tests` re-applies the Holm
  families to the same results with it on, for them only (the other tests keep their default families), so their
  false-alarm rates and power say what turning the alarm on would give.
* The Klimek rank correlation (the scanned-sheet audit's ``klimek_turnout_winner``: Spearman rho of turnout and
  leader share, each centred on its region's median, Holm per level): its alarm rate on the same clean tables,
  and on clean tables whose turnout and share correlate within regions (``CORRELATED_RHO``, as urban and rural
  stations honestly do). It is kept as an alarm only if both rates pass; it is reported only since issue 16.
* Power: for each fraud kind, tables with fraud planted in 5% of all stations, and in 30% of the stations of three
  regions; the share of tables where each test alarms nationally, and the share of planted regions it finds.
* Real data: ``audit-table`` on ``ru2012`` and ``ru2016`` in a child process (1,000 Monte-Carlo draws): wall time,
  peak memory (the child's own maximum resident set, :func:`peak_rss_mb`), and the integer-percentage figures
  next to Kobak et al.'s.
* Scaling and flat memory: the same on clean synthetic tables of 10,000, 100,000 and 500,000 stations, 60 columns
  wide (gzipped CSV), each audited in a child process; ``memory`` gives the peak resident set at each size and how
  much it grows per 100,000 stations between the two largest (flat memory: only a handful of numbers per
  station are kept, so the growth is a few tens of MB, not the table's size).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from scipy import stats

from pipeline import config as cfg
from pipeline.audit.table_forensics import TableForensicsSettings, apply_families, run_table_forensics
from pipeline.audit.table_shift import SHIFT_TESTS
from pipeline.audit.table_synth import (
    FRAUD_KINDS,
    TableShape,
    clean_table,
    plant_fraud,
    random_shape,
    shape_from_stations,
    stations_from_table,
    subsample_shape,
)

log = logging.getLogger(__name__)

#: Where the real tables are looked for (``$ELECTIONS_DIR`` first).
ELECTIONS_ENV_VAR = "ELECTIONS_DIR"
ELECTIONS_DIR = cfg.PROJ_ROOT.parent / "shared" / "data" / "elections"
MAPPINGS_DIR = cfg.PROJ_ROOT / "mappings"
#: Published figures to compare with (Kobak, Shpilkin & Pshenichnikov 2016 and their code, as issue 16 quotes).
PUBLISHED = {"ru2012": {"integer_excess": 1160, "integer_z": 10,
                        "top_regions": ["Республика Татарстан (Татарстан)", "Республика Башкортостан",
                                        "Республика Дагестан"]}}
#: Fraud strengths used for the power figures.
STRENGTH = {"stuffing": 0.5, "switching": 0.5, "extreme": 0.95, "rounding": 1.0, "round_shares": 1.0,
            "fabricated": 1.0}
#: Within-region correlation of logit turnout and logit leader share of the "clean, correlated" tables.
CORRELATED_RHO = 0.3
#: The honest mixture of the "clean, mixture" tables: the share of each region's stations in the second component
#: and its shift in the region's spreads along the stuffing direction (:class:`TableShape` ``mix_weight``,
#: ``mix_shift``, ``mix_angle_deg`` 30).
MIXTURE = (0.1, 1.5)
FULL = {"clean_tables": 200, "power_tables": 20, "stations": 4000, "draws": 200,
        "scaling": (10_000, 100_000, 500_000)}
QUICK = {"clean_tables": 10, "power_tables": 3, "stations": 2000, "draws": 50, "scaling": (2_000, 10_000)}
#: Columns of the synthetic tables of the scaling figures (the mapped ones plus unmapped filler, as wide tables have).
SCALING_COLUMNS = 60
#: Stations per unit of the memory growth figure.
MEMORY_UNIT = 100_000
SCALING_REGIONS = 80


def elections_dir() -> Path:
    """The folder of the real tables."""
    env = os.environ.get(ELECTIONS_ENV_VAR)
    return Path(env) if env else ELECTIONS_DIR


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval of a rate ``k / n``."""
    a = (1 - level) / 2
    low = stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def real_shape(stations: int) -> tuple[TableShape, str]:
    """The 2012 table's shape if the data is there, else a random shape (and which one it is)."""
    path = elections_dir() / "ru2012.csv.zip"
    if not path.is_file():
        return random_shape(stations, 20, seed=0), "random (../shared/data/elections absent)"
    import pandas as pd

    from pipeline.audit.table_forensics import Stations

    frame = pd.read_csv(path)
    frame = frame[~frame["region"].str.contains("за пределами|Байконур")]
    cols = frame.columns
    issued = frame[[c for c in cols if "бюллетеней, выданных" in c]].sum(axis=1).to_numpy()
    ballots = frame[[c for c in cols if c.startswith(("Число действительных", "Число недействительных"))]].sum(
        axis=1).to_numpy()
    codes, names = pd.factorize(frame["region"])
    registered = [c for c in cols if c.startswith("Число избирателей")][0]
    st = Stations(voters=frame[registered].to_numpy(), turnout_count=issued, ballots=ballots,
                  leader=frame["Путин Владимир Владимирович"].to_numpy(),
                  scopes={"region": (codes.astype(np.int32), [str(n) for n in names])})
    return shape_from_stations(st, "region"), "ru2012 (sizes, regions, regional spreads of the bulk)"


def klimek_rank_alarms(table, alpha: float, min_stations: int = 25) -> tuple[bool, bool]:
    """Would the Klimek rank-correlation test alarm on ``table``, nationally and in any region? (Spearman rho of
    region-centred turnout and leader share; one Holm family for the regions.)"""
    import pandas as pd

    from pipeline.audit.forensics import klimek_test
    from pipeline.audit.table_forensics import holm

    frame = pd.DataFrame({"region": table["region"], "turnout": table["issued"] / table["registered"],
                          "share": table["choice_1"] / (table["valid"] + table["invalid"]).where(lambda x: x > 0)})
    for col in ("turnout", "share"):
        frame[col] = frame[col] - frame.groupby("region")[col].transform("median")
    national = klimek_test("all", frame["turnout"].to_numpy(float), frame["share"].to_numpy(float), min_stations)
    p = [klimek_test(str(r), g["turnout"].to_numpy(float), g["share"].to_numpy(float), min_stations).p_value
         for r, g in frame.groupby("region")]
    p = np.array([math.nan if x is None else x for x in p])
    return bool(national.p_value is not None and national.p_value < alpha), bool(np.nanmin(holm(p), initial=1) < alpha)


def tails_as_if_on(results: list[dict], s: TableForensicsSettings) -> dict[str, dict]:
    """The tail tests (:data:`SHIFT_TESTS`) among ``results`` as they come out with ``shift_alarm`` on: copies with
    the Holm families re-applied (``results`` are left as they are)."""
    on = copy.deepcopy(results)
    apply_families(on, replace(s, shift_alarm=True))
    return {r["test"]: r for r in on if r["test"] in SHIFT_TESTS}


def bench_tests(st, s: TableForensicsSettings) -> dict:
    """Every test's results on ``st`` (name -> result), the tail tests as if their alarm were on
    (:func:`tails_as_if_on`; the other tests' rows are those of the settings ``s``)."""
    results, _ = run_table_forensics(st, s)
    tests = dict(results["tests"])
    if not s.shift_alarm:
        tests.update(tails_as_if_on(list(tests.values()), s))
    return tests


def _alarming_scopes(test: dict, level: str) -> set[str]:
    return {r["scope"] for r in test["scopes"].get(level, []) if r["alarm"]}


def false_alarms(shape: TableShape, n_tables: int, stations: int, s: TableForensicsSettings) -> dict:
    """Each test's alarm rate on clean tables, nationally and in any region, on clean tables whose turnout and
    leader share are honestly correlated within regions (``CORRELATED_RHO``; keys ``<test>_rho_<rho>``), and on
    clean honest mixtures (``MIXTURE``; keys ``<test>_mix_<weight>_<shift>``), the Klimek rank correlation's
    included; the tail tests as if their alarm were on (:func:`bench_tests`)."""
    counts: dict[str, dict[str, int]] = {}
    start = time.perf_counter()
    correlated = replace(shape, rho=CORRELATED_RHO)
    mixed = replace(shape, mix_weight=MIXTURE[0], mix_shift=MIXTURE[1])
    suffix, mix_suffix = f"_rho_{CORRELATED_RHO}", f"_mix_{MIXTURE[0]}_{MIXTURE[1]}"
    for i in range(n_tables):
        table = clean_table(subsample_shape(shape, stations, seed=i), seed=10_000 + i)
        related = clean_table(subsample_shape(correlated, stations, seed=i), seed=10_000 + i)
        mixture = clean_table(subsample_shape(mixed, stations, seed=i), seed=10_000 + i)
        for frame, tag in ((table, ""), (related, suffix), (mixture, mix_suffix)):
            for name, test in bench_tests(stations_from_table(frame), s).items():
                c = counts.setdefault(name + tag, {"national": 0, "any_region": 0})
                c["national"] += int(test["national"]["alarm"])
                c["any_region"] += int(any(r["alarm"] for rows in test["scopes"].values() for r in rows))
        for name, frame in (("klimek_rank", table), ("klimek_rank" + suffix, related),
                            ("klimek_rank" + mix_suffix, mixture)):
            national, regional = klimek_rank_alarms(frame, s.alpha)
            c = counts.setdefault(name, {"national": 0, "any_region": 0})
            c["national"] += int(national)
            c["any_region"] += int(regional)
    out = {"tables": n_tables, "stations_per_table": stations, "draws": s.mc_draws, "alpha": s.alpha,
           "seconds_per_table": round((time.perf_counter() - start) / max(n_tables, 1), 2), "tests": {}}
    for name, c in counts.items():
        row = {}
        for where, k in c.items():
            low, high = clopper_pearson(k, n_tables)
            row[where] = {"alarms": k, "rate": k / n_tables, "interval": [low, high], "passes": low <= s.alpha}
        out["tests"][name] = row
    return out


def power(shape: TableShape, n_tables: int, stations: int, s: TableForensicsSettings) -> dict:
    """For each fraud kind: national alarm rate per test at 5% of all stations, and the share of planted regions
    found per test at 30% of the stations of three regions (the tail tests as if their alarm were on)."""
    out = {}
    for kind in FRAUD_KINDS:
        national: dict[str, int] = {}
        regional: dict[str, int] = {}
        for i in range(n_tables):
            table = clean_table(subsample_shape(shape, stations, seed=500 + i), seed=20_000 + i)
            spread, _ = plant_fraud(table, kind, 0.05, seed=i, strength=STRENGTH[kind])
            for name, test in bench_tests(stations_from_table(spread), s).items():
                national[name] = national.get(name, 0) + int(test["national"]["alarm"])
            national["klimek_rank"] = national.get("klimek_rank", 0) + int(klimek_rank_alarms(spread, s.alpha)[0])
            regions = tuple(sorted(table["region"].value_counts().index[:3]))
            local, _ = plant_fraud(table, kind, 0.30, seed=i, strength=STRENGTH[kind], regions=regions)
            for name, test in bench_tests(stations_from_table(local), s).items():
                regional[name] = regional.get(name, 0) + len(_alarming_scopes(test, "region") & set(regions))
        out[kind] = {"strength": STRENGTH[kind], "tables": n_tables,
                     "national_alarm_rate_at_5pct_of_stations": {k: v / n_tables for k, v in national.items()},
                     "planted_regions_found_at_30pct_in_3_regions": {k: v / (3 * n_tables)
                                                                     for k, v in regional.items()}}
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set in MB (MiB): ``VmHWM`` of ``/proc/self/status``, the high-water mark of
    its own memory since it started its program. Not ``getrusage``'s ``ru_maxrss``: a child keeps in it the
    resident set of the parent it was forked from (Linux carries the old memory's high-water mark across
    ``exec``), so a child started by a bench holding a 500,000-station table read ~430 MB however little it used.
    Falls back to ``ru_maxrss`` where ``/proc`` is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CHILD = """
import json, resource, sys, time
from pipeline.audit.table_bench import peak_rss_mb
from pipeline.cli import main
start = time.perf_counter()
code = main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
print("BENCH " + json.dumps({"rc": code, "seconds": time.perf_counter() - start,
      "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak_rss_mb()}))
"""


def _child_audit(path: Path, mapping: Path, draws: int, out: str) -> tuple[dict | None, str]:
    """Run ``audit-table`` in a child process; its wall and CPU time (the CPU time includes the process start and
    imports) and peak memory, or None and the error text."""
    args = ["audit-table", str(path), "--map", str(mapping), "--out", out, "--draws", str(draws)]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          cwd=cfg.PROJ_ROOT, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not line:
        return None, proc.stderr[-2000:]
    return json.loads(line[-1][6:]), ""


def scaling(sizes: tuple[int, ...], draws: int) -> list[dict]:
    """Wall time and peak memory of ``audit-table`` on clean synthetic tables of each size, 60 columns wide."""
    import yaml

    from pipeline.audit.table_synth import SYNTH_MAPPING

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        mapping = Path(tmp) / "map.yaml"
        mapping.write_text(yaml.safe_dump(SYNTH_MAPPING), encoding="utf-8")
        for n in sizes:
            table = clean_table(random_shape(n, SCALING_REGIONS, seed=n), seed=n)
            rng = np.random.default_rng(n)
            for k in range(SCALING_COLUMNS - table.shape[1]):
                table[f"extra_{k + 1}"] = rng.integers(0, 1000, n)
            path = Path(tmp) / f"table_{n}.csv.gz"
            table.to_csv(path, index=False)
            del table
            run, error = _child_audit(path, mapping, draws, str(Path(tmp) / f"out_{n}"))
            row = {"stations": n, "columns": SCALING_COLUMNS, "draws": draws}
            row.update({"seconds": round(run["seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1),
                        "peak_rss_mb": round(run["peak_rss_mb"])} if run else {"error": error})
            out.append(row)
            path.unlink()
    return out


def memory_growth(rows: list[dict]) -> dict:
    """Peak memory per table size, and its growth per 100,000 stations between the two largest sizes measured
    (None when fewer than two sizes ran)."""
    done = sorted((r for r in rows if "peak_rss_mb" in r), key=lambda r: r["stations"])
    out = {"peak_rss_mb": {str(r["stations"]): r["peak_rss_mb"] for r in done}, "growth_mb_per_100k_stations": None}
    if len(done) >= 2:
        small, large = done[-2], done[-1]
        out["growth_mb_per_100k_stations"] = round(
            (large["peak_rss_mb"] - small["peak_rss_mb"]) / (large["stations"] - small["stations"]) * MEMORY_UNIT, 1)
    return out


def real_tables(draws: int) -> dict:
    """``audit-table`` on each real table in a child process: time, peak memory and the forensic figures."""
    out = {}
    for name in ("ru2012", "ru2016"):
        path = elections_dir() / f"{name}.csv.zip"
        if not path.is_file():
            out[name] = {"skipped": f"{path} absent"}
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run, error = _child_audit(path, MAPPINGS_DIR / f"{name}.yaml", draws, tmp)
            if run is None:
                out[name] = {"error": error}
                continue
            summary = json.loads((Path(tmp) / "forensics.json").read_text(encoding="utf-8"))
        out[name] = _real_figures(summary, run, draws)
        if name in PUBLISHED:
            out[name]["published"] = PUBLISHED[name]
    return out


def tail_figures(test: dict, s: TableForensicsSettings) -> dict:
    """A tail test's national tail and mirror counts, effect and raw p, whether it is reported only, and the
    regions it alarms in, or would alarm in with ``shift_alarm`` on (:func:`tails_as_if_on`)."""
    nat = test["national"]
    rows = test["scopes"].get("region", [])
    on = tails_as_if_on([test], s)[test["test"]]
    return {"stations": nat["stations"], "tail": nat["observed"], "mirror": nat["mirror"], "effect": nat["effect"],
            "p": nat["p"], "report_only": bool(test.get("report_only")), "regions": len(rows),
            "regions_alarming": sum(bool(r["alarm"]) for r in rows),
            "regions_alarming_if_on": sum(bool(r["alarm"]) for r in on["scopes"].get("region", []))}


def _real_figures(summary: dict, run: dict, draws: int) -> dict:
    known = {f.name for f in fields(TableForensicsSettings)}
    settings = TableForensicsSettings(**{k: v for k, v in summary["settings"].items() if k in known})
    integer = summary["tests"]["integer_percentages"]
    corner = summary["tests"]["klimek_corner"]
    regions = integer["scopes"].get("region", [])
    top = sorted(regions, key=lambda r: -r["excess"])[:5]
    return {
        "rows": summary["rows"], "statuses": summary["statuses"], "draws": draws,
        "seconds": round(run["seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1),
        "peak_rss_mb": round(run["peak_rss_mb"]), "load_average": os.getloadavg()[0],
        "rules_failed": {r["name"]: r["failed"] for r in summary["rules"]},
        "excluded": summary["excluded"],
        "integer": {k: integer["national"][k] for k in ("stations", "observed", "null_mean", "null_sd", "excess",
                                                        "z", "effect", "alarm")},
        "integer_top_regions": [{"region": r["scope"], "excess": round(r["excess"], 1), "z": round(r["z"], 1),
                                 "alarm": r["alarm"]} for r in top],
        "corner": {k: corner["national"][k] for k in ("observed", "expected", "interval", "observed_share",
                                                      "expected_share", "unmodelled_stations", "alarm")},
        "full_turnout": {k: summary["tests"]["full_turnout"]["national"][k] for k in ("observed", "expected")},
        "regions_alarming": {k: len(v.get("region", [])) for k, v in summary["alarms"].items()},
        "tails": {name: tail_figures(summary["tests"][name], settings) for name in SHIFT_TESTS
                  if name in summary["tests"]},
        "regions": len(regions),
    }


def run_bench(config: dict, quick: bool = False) -> dict:
    """Every figure of the results-table audit (see the module docstring)."""
    sizes = QUICK if quick else FULL
    s = TableForensicsSettings(mc_draws=sizes["draws"])
    shape, shape_source = real_shape(sizes["stations"])
    result = {"shape": shape_source, "false_alarms": false_alarms(shape, sizes["clean_tables"], sizes["stations"], s),
              "power": power(shape, sizes["power_tables"], sizes["stations"], s)}
    result["real"] = real_tables(50 if quick else 1000)
    result["scaling"] = scaling(sizes["scaling"], 50 if quick else 1000)
    result["memory"] = memory_growth(result["scaling"])
    return result
