"""`dmvae report`: loaded lazily by dmvae/cli.py; imports nothing heavy (Ray, Optuna, matplotlib, pandas)
until the handler runs."""

from __future__ import annotations

import os


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="compare final runs with each other and the paper; tables, plots and report.md"
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="EXPERIMENT_OR_RUN_DIR",
        help="tune experiment folders and run folders (or folders holding them, searched recursively)",
    )  # fmt: skip
    parser.add_argument(
        "--out", default="report", help="output folder for report.md, comparison.csv, figures/"
    )
    parser.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from analysis.report import write_report

    argv = [*args.inputs, "--out", args.out]
    path = write_report(args.inputs, args.out, argv=argv)
    print(f"report: {path}")
    print(f"table:  {path.parent / 'comparison.csv'}")
    return 0
