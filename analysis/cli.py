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
    parser.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from analysis.report import write_report

    argv = [*args.inputs, "--out", args.out]
    path = write_report(_local(args.inputs, args.storage_endpoint), args.out, argv=argv)
    print(f"report: {path}")
    print(f"table:  {path.parent / 'comparison.csv'}")
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
