"""`dmvae tune run|resume|status|export|final|pull`: the study commands. Ray is imported only in handlers."""

from __future__ import annotations

import os

ENDPOINT_HELP = (
    "S3-compatible endpoint for s3:// paths, e.g. http://127.0.0.1:9000 (MinIO); default: $AWS_ENDPOINT_URL "
    "or AWS"
)


def _endpoint(parser) -> None:
    parser.add_argument("--storage-endpoint", help=ENDPOINT_HELP)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("tune", help="hyperparameter studies with Ray Tune + Optuna")
    actions = parser.add_subparsers(dest="action", required=True)

    run = actions.add_parser("run", help="start a study (a YAML file, see tune/studies/)")
    run.add_argument("study", help="study YAML, e.g. tune/studies/dmvae_mnist.yaml")
    run.add_argument("--name", help="experiment name (default: <study name>-<date>-<time>)")
    run.add_argument(
        "--storage-path",
        help="folder or cloud URI for experiments (default: ./runs/tune); on a cluster s3://bucket/prefix "
        "or a shared folder",
    )
    _endpoint(run)
    run.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: a local Ray)")
    run.add_argument("--num-samples", type=int, help="number of trials (overrides the study's num_samples)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base config field (data.paired_fraction=0.01) or a study field "
        "(study.max_epochs=4); repeatable",
    )
    run.set_defaults(handler=cmd_run)

    resume = actions.add_parser("resume", help="continue an interrupted experiment")
    resume.add_argument("experiment", help="experiment folder, <storage>/<name>")
    _endpoint(resume)
    resume.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: a local Ray)")
    resume.add_argument("--retry-errored", action="store_true", help="also rerun trials that errored")
    resume.set_defaults(handler=cmd_resume)

    status = actions.add_parser("status", help="table of an experiment's trials")
    status.add_argument("experiment", help="experiment folder, <storage>/<name>")
    _endpoint(status)
    status.set_defaults(handler=cmd_status)

    export = actions.add_parser("export", help="write the best trial's run config for `dmvae train --config`")
    export.add_argument("experiment", help="experiment folder, <storage>/<name>")
    _endpoint(export)
    export.add_argument(
        "--out", required=True, help="output YAML (with --top-k K also OUT-2.yaml ... OUT-K.yaml)"
    )
    export.add_argument("--top-k", type=int, default=1, help="export the K best trials (default 1)")
    export.set_defaults(handler=cmd_export)

    final = actions.add_parser(
        "final", help="train the final models of an exported config over several seeds (parallel Ray tasks)"
    )
    final.add_argument("config", help="run config YAML, e.g. best.yaml from `dmvae tune export`")
    final.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    final.add_argument(
        "--out",
        help="folder or cloud URI for seed-<s>/ run folders and final_runs.json "
        "(default: <config stem>-final/)",
    )
    _endpoint(final)
    final.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (default: a local Ray)")
    final.add_argument("--cpus", type=float, default=1, help="CPUs per run (default 1; also torch threads)")
    final.add_argument("--gpus", type=float, default=0, help="GPUs per run; a fraction (0.25) shares a GPU")
    final.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.epochs=30 (repeatable)",
    )
    final.set_defaults(handler=cmd_final)

    pull = actions.add_parser(
        "pull", help="copy an experiment (or final runs) from cloud storage to a local folder (TensorBoard)"
    )
    pull.add_argument("source", help="s3://bucket/prefix/<name> (an experiment folder or any folder)")
    pull.add_argument("dest", help="local folder to copy into (created)")
    _endpoint(pull)
    pull.set_defaults(handler=cmd_pull)


def _quiet_ray() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray warns every few seconds when experiment snapshots are slow to sync (large studies, cloud
    # storage); the warning says nothing the user can act on.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _finish(experiment, results) -> int:
    from tune.results import format_table, trial_rows

    print(format_table(experiment, trial_rows(experiment)))
    print(f"experiment folder: {experiment.folder}")
    if experiment.remote:
        print(f"curves: dmvae tune pull {experiment.folder} DIR && tensorboard --logdir DIR")
    else:
        print(f"tensorboard --logdir {experiment.folder}")
    errors = sum(1 for result in results if result.error is not None)
    return 0 if errors < len(results) or not len(results) else 1


def _storage(args) -> None:
    from tune.storage import set_endpoint

    set_endpoint(getattr(args, "storage_endpoint", None))


def cmd_run(args) -> int:
    _quiet_ray()
    _storage(args)
    from dmvae.errors import UserError
    from tune import runner
    from tune.experiment import create_experiment
    from tune.study import load_study

    if args.num_samples is not None and args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    study = load_study(args.study, args.overrides)
    if args.num_samples is not None:
        study.num_samples = args.num_samples
    experiment = create_experiment(study, args.name, args.storage_path)
    print(f"experiment {experiment.folder} (resume with: dmvae tune resume {experiment.folder})")
    return _finish(experiment, runner.run(experiment, address=args.address))


def cmd_resume(args) -> int:
    _storage(args)
    _quiet_ray()
    from tune import runner
    from tune.experiment import open_experiment

    experiment = open_experiment(args.experiment)
    return _finish(
        experiment, runner.resume(experiment, address=args.address, retry_errored=args.retry_errored)
    )


def cmd_status(args) -> int:
    _storage(args)
    from tune.experiment import open_experiment
    from tune.results import format_table, trial_rows

    experiment = open_experiment(args.experiment)
    print(format_table(experiment, trial_rows(experiment)))
    return 0


def cmd_export(args) -> int:
    _storage(args)
    from tune.experiment import open_experiment
    from tune.results import export_best

    experiment = open_experiment(args.experiment)
    for path in export_best(experiment, args.out, args.top_k):
        print(f"wrote {path}")
    return 0


def cmd_final(args) -> int:
    _quiet_ray()
    _storage(args)
    from tune import storage as store
    from tune.final import SUMMARY_FILE, format_summary, run_final

    out, summary = run_final(
        args.config,
        args.seeds,
        args.out,
        args.overrides,
        address=args.address,
        cpus=args.cpus,
        gpus=args.gpus,
    )
    print(format_summary(summary))
    print(f"wrote {store.join(out, SUMMARY_FILE)}")
    return 1 if summary["failed"] else 0


def cmd_pull(args) -> int:
    from pathlib import Path

    from dmvae.errors import UserError
    from tune import storage

    _storage(args)
    if not storage.is_uri(args.source):
        raise UserError(f"pull copies from cloud storage (s3://...), got the local path {args.source}")
    dest = Path(args.dest)
    if not storage.download(args.source, dest):
        raise UserError(f"{args.source}: nothing there to pull")
    print(f"copied {args.source} to {dest}")
    print(f"tensorboard --logdir {dest}")
    return 0
