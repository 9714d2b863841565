"""The `dmvae` command: train, evaluate, data; `tune`, `report` and `reproduce` come from the layers above."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from dmvae.config import PROTOCOLS
from dmvae.errors import UserError

# Subcommands provided by the layers above dmvae/ (they import Ray); loaded only when asked for.
EXTENSIONS = {"tune": "tune.cli", "report and reproduce": "analysis.cli"}


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train one model from a config")
    parser.add_argument("--config", help="run config YAML (see configs/); with --resume: RUN_DIR/config.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set data.paired_fraction=0.01 (repeatable)",
    )
    parser.add_argument("--out", required=True, help="run folder for config, metrics, checkpoints, figures")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.set_defaults(handler=cmd_train)


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="re-evaluate a saved run on validation and test data")
    parser.add_argument("run_dir")
    parser.add_argument(
        "--weights",
        choices=("best", "last"),
        default="best",
        help="best-validation weights (default) or the last epoch's",
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="override eval.protocol")
    parser.add_argument("--no-figures", action="store_true", help="skip writing figures")
    parser.set_defaults(handler=cmd_evaluate)


def _add_data(subparsers) -> None:
    parser = subparsers.add_parser("data", help="fetch and check datasets")
    actions = parser.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("fetch", help="fetch MNIST or Fashion-MNIST and verify checksums")
    fetch.add_argument("names", nargs="+", metavar="mnist|fmnist")
    check = actions.add_parser("check", help="report which datasets are present and verified")
    for sub in (fetch, check):
        sub.add_argument("--data-root", help="data folder (default: $DMVAE_DATA or ./data)")
    parser.set_defaults(handler=cmd_data)


def cmd_train(args) -> int:
    from dmvae.config import RunConfig, load_config
    from dmvae.training import Trainer

    out = Path(args.out)
    if args.resume:
        checkpoint = out / "checkpoints" / "last.pt"
        if not checkpoint.is_file():
            raise UserError(f"nothing to resume: {checkpoint} does not exist")
        config = load_config(args.config or out / "config.yaml", args.overrides)
        trainer = Trainer(config, out_dir=out)
        trainer.resume(checkpoint)  # the run folder drops metric lines after the checkpoint's epoch
        print(f"resuming {out} after epoch {trainer.epoch}")
    else:
        if not args.config:
            raise UserError("dmvae train needs --config FILE (e.g. configs/mnist_dmvae.yaml)")
        if (out / "metrics.jsonl").exists() or (out / "final.json").exists():
            raise UserError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        config: RunConfig = load_config(args.config, args.overrides)
        trainer = Trainer(config, out_dir=out)
    final = trainer.fit()
    print(json.dumps(final))
    return 0


def cmd_evaluate(args) -> int:
    from dmvae.training.saved_run import evaluate_run

    result = evaluate_run(
        Path(args.run_dir), weights=args.weights, protocol=args.protocol, figures=not args.no_figures
    )
    print(json.dumps(result))
    return 0


def cmd_data(args) -> int:
    from dmvae.data import check, default_root, fetch

    root = Path(args.data_root) if args.data_root else default_root()
    if args.action == "fetch":
        for name in args.names:
            fetch(name, root)
        return 0
    rows = check(root)
    for row in rows:
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmvae", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_data(subparsers)
    for module in EXTENSIONS.values():
        try:
            importlib.import_module(module).add_parser(subparsers)
        except ModuleNotFoundError as error:
            if error.name not in (module, module.split(".")[0]):
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"dmvae: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        go_on = {
            "train": "; add --resume to the same command to go on", "reproduce": "; rerun it to go on",
            "tune": "; `dmvae tune status EXPERIMENT` shows a study, `dmvae tune resume EXPERIMENT` goes on",
        }  # fmt: skip
        kept = "dmvae: interrupted; results written so far are kept"
        print(kept + go_on.get(args.command, ""), file=sys.stderr)
        return 130
    except RuntimeError as error:
        from dmvae.training import TrainingDiverged

        if isinstance(error, TrainingDiverged):
            print(f"dmvae: error: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
