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
        help="tune experiment folders and run folders (or folders holding them, searched recursively); "
        "s3:// or gs:// ones are copied down first",
    )  # fmt: skip
    parser.add_argument(
        "--out", default="report", help="output folder for report.md, comparison.csv, figures/"
    )
    parser.add_argument("--storage-endpoint", help="S3-compatible endpoint for s3:// inputs (MinIO, ...)")
    parser.add_argument(
        "--paper-table", choices=("1", "8"), default="1",
        help="the paper's table to compare with first (default 1; Table 8 prints MVAE at 0.2 %% MNIST as "
        "0.625, Table 1 as 0.579)",
    )  # fmt: skip
    parser.set_defaults(handler=cmd_report)

    reproduce = subparsers.add_parser(
        "reproduce", help="a paper table by the tool's own studies: tune, export, finals, CSV and report"
    )
    reproduce.add_argument("table", help="table YAML, e.g. tune/tables/table1_mnist.yaml")
    reproduce.add_argument(
        "--cells", nargs="+", metavar="PATTERN", help="only these cells (MODEL@PERCENT; wildcards: 'MVAE@*')"
    )
    reproduce.add_argument("--out", help="folder for the cells' runs (default: runs/tables/<table name>)")
    reproduce.add_argument(
        "--results", help="folder for results.csv, summary.md and report/ (default: results/<table name>)"
    )
    reproduce.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: a local Ray)")
    reproduce.add_argument("--cpus", type=float, default=1, help="CPUs per final run (default 1)")
    reproduce.add_argument(
        "--report-only", action="store_true", help="rewrite results.csv and the report from what is done"
    )
    reproduce.set_defaults(handler=cmd_reproduce)

    results = subparsers.add_parser(
        "results", help="the reproduced tables under results/ as markdown (or into the README's section)"
    )
    results.add_argument("--root", default="results", help="folder holding <table>/results.csv")
    results.add_argument("--readme", help="rewrite this README's generated results section")
    results.set_defaults(handler=cmd_results)


def cmd_report(args) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from analysis.report import write_report

    argv = [*args.inputs, "--out", args.out]
    argv += ["--paper-table", args.paper_table] if args.paper_table != "1" else []
    path = write_report(
        _local(args.inputs, args.storage_endpoint), args.out, argv=argv, paper_table=args.paper_table
    )
    print(f"report: {path}")
    print(f"table:  {path.parent / 'comparison.csv'}")
    return 0


def cmd_reproduce(args) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from analysis.reproduce import Reproduction
    from analysis.tables import load_table

    table = load_table(args.table)
    reproduction = Reproduction(
        table,
        args.out or f"runs/tables/{table.name}",
        args.results or f"results/{table.name}",
        args.address,
        args.cpus,
    )
    if args.report_only:
        reproduction.write_results()
        reproduction.write_report()
        return 0
    path = reproduction.run(table.select(args.cells))
    print(f"results: {reproduction.results / 'results.csv'}")
    print(f"report:  {path}")
    return 0


def cmd_results(args) -> int:
    from pathlib import Path

    from analysis.summary import readme_section, update_readme

    if args.readme:
        update_readme(Path(args.readme), Path(args.root))
        print(f"updated the results section of {args.readme}")
    else:
        print(readme_section(Path(args.root)), end="")
    return 0


def _local(inputs: list[str], endpoint: str | None) -> list[str]:
    """Cloud inputs (s3://...) copied to a temporary folder each (same last name); local ones as given."""
    if not any("://" in item for item in inputs):
        return inputs
    import tempfile

    from dmvae.errors import UserError
    from tune import storage

    storage.set_endpoint(endpoint)
    local = []
    for item in inputs:
        if not storage.is_uri(item):
            local.append(item)
            continue
        dest = f"{tempfile.mkdtemp(prefix='dmvae-report-')}/{storage.parent_and_name(item)[1]}"
        if not storage.download(item, dest):
            raise UserError(f"{item}: nothing there to report on")
        print(f"copied {item} to {dest}")
        local.append(dest)
    return local
