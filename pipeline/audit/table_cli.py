"""Sub-command ``audit-table``: audit a published per-station results table with a mapping file."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``audit-table`` to the top-level parser."""
    p = sub.add_parser(
        "audit-table", help="audit a published results table (CSV/.zip/.gz/Parquet) with a mapping",
        description="Audit a published per-station results table with a mapping file: check every station's "
                    "control relations (written as data in the mapping), list bad and excluded rows with their "
                    "reasons, and run the table forensics (integer percentages, the Klimek corner, 100% turnout "
                    "by station size) nationally and per region, Holm-corrected, each with an effect size.")
    p.add_argument("results", type=Path, help="the results table: one row per polling station")
    p.add_argument("--map", dest="mapping", type=Path, required=True,
                   help="mapping file (YAML): ids, roles, choices, exclusions, rules (see mappings/ru2012.yaml)")
    p.add_argument("--out", type=Path, required=True, help="output folder (stations, flags, excluded, forensics)")
    p.add_argument("--report", type=Path, help="also write an HTML page DIR/table.html with plots and CSV files")
    p.add_argument("--draws", type=int, help="Monte-Carlo draws of the integer-percentage null (default 1000)")
    p.add_argument("--seed", type=int, help="seed of the Monte-Carlo null (default 0)")
    p.add_argument("--alpha", type=float, help="level of every test after Holm correction (default 0.05)")
    p.add_argument("--chunk-rows", type=int, help="rows read at a time (default 20000)")
    p.set_defaults(func=_cmd_audit_table)


def settings_from_args(args: argparse.Namespace, config: dict | None = None):
    """:class:`TableAuditSettings`: the defaults, then the config file's ``table_audit`` and ``table_forensics``
    sections, then the flags given."""
    from pipeline import config as cfg
    from pipeline.audit.table_audit import TableAuditSettings
    from pipeline.audit.table_forensics import TableForensicsSettings
    from pipeline.errors import ConfigError

    config = config or {}
    if "forensics" in config.get("table_audit", {}):
        raise ConfigError("table_audit.forensics: put the forensic settings in their own section, table_forensics")
    forensics = cfg.build_settings(TableForensicsSettings, "table_forensics", config, mc_draws=args.draws,
                                   seed=args.seed, alpha=args.alpha)
    settings = cfg.build_settings(TableAuditSettings, "table_audit", config, chunk_rows=args.chunk_rows)
    return replace(settings, forensics=forensics)


def _cmd_audit_table(args: argparse.Namespace, config: dict) -> int:
    from pipeline.audit.table_audit import run_table_audit

    result = run_table_audit(args.results, args.mapping, args.out, settings_from_args(args, config))
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items()))
    print(f"wrote {result.out}: {result.rows} rows ({statuses}); {result.n_flags} flags")
    for test, alarm in result.alarms.items():
        scoped = "; ".join(f"{lv}: {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                           for lv, names in alarm.items() if lv != "national")
        print(f"  {test}: national {'ALARM' if alarm['national'] else 'no alarm'}; {scoped}")
    if args.report is not None:
        from pipeline.report.table_report import build_table_report

        print(f"wrote {build_table_report(args.out, args.report)}")
    return 0
