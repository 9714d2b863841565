"""`dmvae tune final best.yaml --seeds 0 1 2`: the final models of a study, one parallel Ray task per seed.

Each seed is an ordinary `dmvae train` run folder, `DIR/seed-<s>/` (config.yaml, metrics.jsonl, checkpoints,
figures, final.json with validation and test metrics); `DIR/final_runs.json` sums them up per seed, with the
mean and standard deviation over seeds. DIR defaults to `<best stem>-final/` next to the config file.

Rerunning the command with the same config finishes what is missing: a seed whose folder holds final.json
is not trained again, and one with a checkpoint (a Ctrl-C, or a worker lost and retried by Ray) continues
from it.

DIR may be a cloud URI (s3://bucket/prefix): each seed then trains in a local folder on its node, which is
uploaded to DIR/seed-<s>/ after every checkpoint and at the end (and downloaded first to continue a run).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dmvae.config import RunConfig, load_config
from dmvae.errors import UserError
from tune import storage as store
from tune.results import tuned_seeds

SUMMARY_FILE = "final_runs.json"
REQUEST_FILE = "final.yaml"  # the config (seed aside) the folder's runs were started with
LAST_CHECKPOINT = Path("checkpoints") / "last.pt"


def seed_folder(out: Path | str, seed: int) -> Path | str:
    return store.join(out, f"seed-{seed}")


def default_out(config_path: str | Path) -> Path:
    path = Path(config_path)
    return path.with_name(f"{path.stem}-final")


def train_seed(values: dict[str, Any], out_dir: str, cpus: float) -> dict[str, Any]:
    """One final run inside a Ray task; returns final.json. The device is the GPU Ray assigned, if any."""
    if not store.is_uri(out_dir):
        return _train_seed(values, out_dir, cpus)
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix="dmvae-final-")
    try:
        store.download(out_dir, staging)  # a run to continue, if any

        def upload(trainer, epoch, metrics) -> None:
            every = trainer.config.train.checkpoint_every
            if every and epoch % every == 0:
                store.upload(staging, out_dir)

        final = _train_seed(values, staging, cpus, hooks=[upload])
        store.upload(staging, out_dir)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train_seed(values: dict[str, Any], out_dir: str, cpus: float, hooks=()) -> dict[str, Any]:
    import torch

    from dmvae.data import pin_data_root
    from dmvae.training import Trainer
    from tune.trainable import node_id, trial_device

    config = RunConfig.from_dict(values)
    pin_data_root(config.data)  # $DMVAE_DATA or ./data on the node running it
    config.train.threads = max(1, int(cpus))
    out = Path(out_dir)
    seed = config.seed

    def progress(message: str) -> None:
        print(f"[seed {seed}] {message}", flush=True)

    trainer = Trainer(config, out_dir=out, progress=progress, device=trial_device(), hooks=list(hooks))
    if (out / LAST_CHECKPOINT).is_file():
        trainer.resume(out / LAST_CHECKPOINT)
        progress(f"continuing {out} after epoch {trainer.epoch}")
    torch.set_num_threads(config.train.threads)
    final = trainer.fit()
    return final | {"node_id": node_id()}


def prepare(config_path: str | Path, seeds: list[int], out: str | Path | None, overrides: list[str]):
    """The run config of each seed and the output folder; a bad config or other runs in DIR: one line."""
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
        raise UserError(f"--seeds must be distinct whole numbers >= 0, got {seeds}")
    base = load_config(config_path, overrides)
    tuned = tuned_seeds(config_path) or [base.seed]
    for seed in sorted(set(tuned) & set(seeds)):
        spare = range(max(tuned) + 1, max(tuned) + 1 + len(seeds))
        print(
            f"warning: seed {seed} is a data seed the config was tuned on (its paired subset chose "
            f"the hyperparameters); report seeds other than {' '.join(map(str, tuned))}, e.g. --seeds "
            f"{' '.join(map(str, spare))}",
            file=sys.stderr,
        )
    if out is not None and store.is_uri(out):
        out = store.check_uri(str(out))
    else:
        out = Path(out) if out is not None else default_out(config_path)
        out = out.expanduser().resolve()
    request = base.to_dict() | {"seed": None}
    saved = store.join(out, REQUEST_FILE)
    if store.is_file(saved):
        if not same_request(yaml.safe_load(store.read_text(saved)), base):
            raise UserError(
                f"{out} holds final runs of another config; choose another --out or remove the folder"
            )
    else:
        if not store.is_uri(out):
            out.mkdir(parents=True, exist_ok=True)
        store.write_text(saved, yaml.safe_dump(request, sort_keys=False))
    configs = {}
    for seed in seeds:
        config = load_config(config_path, [*overrides, f"seed={seed}"])
        configs[seed] = config
    return out, configs


def run_final(
    config_path: str | Path,
    seeds: list[int],
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    address: str | None = None,
    cpus: float = 1,
    gpus: float = 0,
) -> tuple[Path, dict[str, Any]]:
    """Train every seed (as parallel Ray tasks), write final_runs.json; returns (folder, summary)."""
    if cpus <= 0 or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UserError(f"--cpus must be > 0 and --gpus >= 0 (a fraction up to 1), got {cpus} and {gpus}")
    out, configs = prepare(config_path, seeds, out, list(overrides or []))
    import ray

    from dmvae.data import pin_data_root
    from tune.runner import connect

    connect(address)
    task = ray.remote(train_seed).options(num_cpus=cpus, num_gpus=gpus, max_retries=2, name="dmvae-final")
    finals: dict[int, dict[str, Any]] = {}
    errors: dict[int, str] = {}
    pending = {}
    for seed, config in configs.items():
        folder = seed_folder(out, seed)
        if store.is_file(store.join(folder, "final.json")):
            finals[seed] = json.loads(store.read_text(store.join(folder, "final.json")))
            print(f"seed {seed}: already done ({folder})")
            continue
        pin_data_root(config.data)  # tasks may start in another folder: pin the data folder seen here
        pending[task.remote(config.to_dict(), str(folder), cpus)] = seed
    print(f"final runs of {config_path}: seeds {seeds} in {out} ({len(pending)} to train)", flush=True)
    start = time.monotonic()
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=30)
            if not done:
                left = ", ".join(str(seed) for seed in sorted(pending.values()))
                print(
                    f"  ... seeds {left} to finish, {at_once(cpus, gpus)} ({time.monotonic() - start:.0f} s)",
                    flush=True,
                )
                continue
            seed = pending.pop(done[0])
            try:
                finals[seed] = ray.get(done[0])
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None) or error
                errors[seed] = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"
                print(f"seed {seed}: failed: {errors[seed]}", flush=True)
                continue
            final = finals[seed]
            print(
                f"seed {seed}: done in {time.monotonic() - start:.0f} s; val accuracy "
                f"{final.get('val_accuracy', float('nan')):.4f}, test accuracy "
                f"{final.get('test_accuracy', float('nan')):.4f} ({len(finals)}/{len(seeds)})",
                flush=True,
            )
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    summary = summarise(config_path, out, seeds, finals, errors)
    store.write_text(store.join(out, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
    return out, summary


def at_once(cpus: float, gpus: float) -> str:
    """How many final runs the connected Ray cluster trains at a time (the others wait for resources)."""
    import ray

    resources = ray.cluster_resources()
    asked = f"--cpus {cpus:g}" + (f" --gpus {gpus:g}" if gpus else "")
    have = f"{resources.get('CPU', 0):g} CPUs" + (f" and {resources.get('GPU', 0):g} GPUs" if gpus else "")
    slots = int(resources.get("CPU", 0) // cpus)
    if gpus:
        slots = min(slots, int(resources.get("GPU", 0) // gpus))
    if slots == 0:
        return f"none can start yet: each needs {asked}, this Ray has {have}"
    return f"{slots} at a time ({asked} each, this Ray has {have})"


def summarise(config_path, out: Path, seeds: list[int], finals: dict, errors: dict) -> dict[str, Any]:
    """Per seed: val/test metrics of the best-validation weights; over seeds: mean and sample std."""
    runs = []
    for seed in seeds:
        run: dict[str, Any] = {"seed": seed, "run_dir": str(seed_folder(out, seed))}
        if seed in errors:
            run["error"] = errors[seed]
        else:
            final = finals[seed]
            run |= {key: value for key, value in final.items() if _is_metric(key, value)}
            run |= {"epochs": final.get("epochs"), "best_epoch": final.get("best_epoch")}
        runs.append(run)
    keys = sorted({key for run in runs for key in run if _is_metric(key, run[key])})
    stats = {}
    for key in keys:
        values = [run[key] for run in runs if key in run and math.isfinite(run[key])]
        if values:
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            stats[key] = {"mean": statistics.fmean(values), "std": spread, "n": len(values)}
    return {
        "config": str(Path(config_path).resolve()),
        "seeds": seeds,
        "failed": sorted(errors),
        "runs": runs,
        "summary": stats,
    }


def _is_metric(key: str, value: Any) -> bool:
    return (
        key.startswith(("val_", "test_")) and isinstance(value, int | float) and not isinstance(value, bool)
    )


def format_summary(summary: dict[str, Any]) -> str:
    lines = ["seed  val_accuracy  test_accuracy  test_coherence  run"]
    for run in summary["runs"]:
        if "error" in run:
            lines.append(
                f"{run['seed']:<4}  {'failed':<12}  {'-':<13}  {'-':<14}  {run['run_dir']}  ({run['error']})"
            )
            continue
        val, test = run.get("val_accuracy", float("nan")), run.get("test_accuracy", float("nan"))
        coherence = run.get("test_coherence", float("nan"))
        lines.append(f"{run['seed']:<4}  {val:<12.4f}  {test:<13.4f}  {coherence:<14.4f}  {run['run_dir']}")
    for key in ("val_accuracy", "test_accuracy", "test_coherence"):
        if key in summary["summary"]:
            stat = summary["summary"][key]
            lines.append(f"{key}: {stat['mean']:.4f} +- {stat['std']:.4f} over {stat['n']} seeds")
    return "\n".join(lines)


def same_request(saved: dict[str, Any], base: RunConfig) -> bool:
    """Whether the config a final folder was made for is `base`, seed aside. Its missing keys take their
    defaults: a folder written before a config option existed ran as the option's default does."""
    if not isinstance(saved, dict):
        return False
    try:
        return RunConfig.from_dict(saved | {"seed": base.seed}).to_dict() == base.to_dict()
    except UserError:  # a value no longer valid: not this config
        return False
