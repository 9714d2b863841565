"""Load final runs and tune experiments into pandas DataFrames (one row per run or trial), and their curves.

A run folder (written by `dmvae train --out RUN_DIR` or `dmvae tune final`) holds config.yaml, final.json
and metrics.jsonl. An experiment folder (written by `dmvae tune run`) holds study.yaml, experiment.yaml,
optuna.db and Ray's trial folders; it is read with Ray's own `ExperimentAnalysis` (no live Ray needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from dmvae.config import read_yaml_mapping
from dmvae.errors import UserError

RUN_FILES = ("config.yaml", "final.json")
EXPERIMENT_FILES = ("study.yaml", "experiment.yaml")


# --- what a folder is --------------------------------------------------------------------------------------
def is_run(path: Path) -> bool:
    return all((path / name).is_file() for name in RUN_FILES)


def is_experiment(path: Path) -> bool:
    return all((path / name).is_file() for name in EXPERIMENT_FILES)


def find_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(run folders, experiment folders) at or below each path, each once, in a stable order."""
    runs: list[Path] = []
    experiments: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise UserError(
                f"{raw} does not exist; pass a run folder (dmvae train --out) or an experiment folder"
            )
        if is_run(path):
            runs.append(path)
        elif is_experiment(path):
            experiments.append(path)
        elif path.is_dir():
            found_runs = sorted({p.parent for p in path.rglob("final.json") if is_run(p.parent)})
            found_experiments = sorted(
                {p.parent for p in path.rglob("experiment.yaml") if is_experiment(p.parent)}
            )
            runs += found_runs
            experiments += found_experiments
            if not found_runs and not found_experiments:
                raise UserError(
                    f"{raw} is neither a run folder (config.yaml + final.json) nor a tune experiment "
                    "(study.yaml + experiment.yaml), and holds none below it"
                )
        else:
            raise UserError(f"{raw} is a file; pass a run folder or an experiment folder")
    return _unique(runs), _unique(experiments)


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


# --- configs and labels ------------------------------------------------------------------------------------
def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"data": {"name": "mnist"}} -> {"data.name": "mnist"}; empty mappings vanish."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def model_label(kind: str | None, shared: str | None) -> str:
    """DMVAE_disc (categorical/binary shared), DMVAE_cont (Gaussian shared) or MVAE; as in paper Table 8."""
    if kind == "mvae":
        return "MVAE"
    if kind == "dmvae":
        return "DMVAE_cont" if shared == "gaussian" else "DMVAE_disc"
    return str(kind)


def _read_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, "file")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error.msg}, line {error.lineno})") from None


# --- runs --------------------------------------------------------------------------------------------------
def load_runs(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """One row per run folder found at or below `paths`: `run`, `model`, `config.*` columns and final.json."""
    if isinstance(paths, str | Path):
        paths = [paths]
    folders: list[Path] = []
    for path in paths:
        path = Path(path).expanduser().resolve()
        if is_run(path):
            folders.append(path)
        elif path.is_dir():
            folders += sorted({p.parent for p in path.rglob("final.json") if is_run(p.parent)})
    rows = [run_row(folder) for folder in _unique(folders)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["run", "name", "model", "seed", "dataset", "paired_fraction"])
    return frame


def run_row(folder: Path) -> dict[str, Any]:
    config = _read_yaml(folder / "config.yaml")
    final = _read_json(folder / "final.json")
    model = config.get("model", {})
    data = config.get("data", {})
    row: dict[str, Any] = {
        "run": str(folder),
        "name": folder.name,
        "model": model_label(model.get("kind"), model.get("shared")),
        "seed": config.get("seed"),
        "dataset": data.get("name"),
        "paired_fraction": data.get("paired_fraction"),
    }
    row |= {f"config.{key}": value for key, value in flatten(config).items()}
    row |= {key: value for key, value in final.items() if not isinstance(value, dict | list)}
    row["discarded_epochs"] = discarded_epochs(final, config)
    figures = folder / "figures"
    row["figures"] = str(figures) if figures.is_dir() else None
    return row


def discarded_epochs(final: dict[str, Any], config: dict[str, Any]) -> int:
    """Epochs trained by the initialisations that train.restarts discarded: each but the kept one trained
    min(restart_epochs, epochs) (Trainer.choose_initialisation). final.json's `epochs` counts the kept model's
    only, and its `seconds` all of them."""
    tried = len(final.get("restart_val_accuracy") or [])
    if tried <= 1:
        return 0
    train = config["train"]
    return (tried - 1) * min(int(train["restart_epochs"]), int(train["epochs"]))


# --- experiments -------------------------------------------------------------------------------------------
def open_experiment(path: str | Path):
    from tune.experiment import open_experiment as open_tune_experiment

    return open_tune_experiment(path)


def load_experiment(path: str | Path) -> pd.DataFrame:
    """One row per trial: number, id, state, epochs, last/best value of the study metric, `param.*`, model."""
    from tune.results import trial_rows

    experiment = open_experiment(path)
    study = experiment.study
    histories = _trial_histories(experiment)
    base = flatten(study.run_config().to_dict())
    rows = []
    for trial in trial_rows(experiment):
        history = histories.get(trial.trial_id, pd.DataFrame())
        row: dict[str, Any] = {
            "experiment": experiment.name,
            "folder": str(experiment.folder),
            "trial_number": trial.number,
            "trial_id": trial.trial_id,
            "state": trial.state,
            "epochs": trial.epochs,
            "metric": study.metric,
            "metric_last": trial.metric,
            "metric_best": _best(history, study.metric, study.mode),
            "val_accuracy_last": _last(history, "val/accuracy"),
            "seconds": _last(history, "time_total_s"),
        }
        values = base | trial.params
        row["model"] = model_label(values.get("model.kind"), values.get("model.shared"))
        row["dataset"] = values.get("data.name")
        row["paired_fraction"] = values.get("data.paired_fraction")
        row |= {f"param.{key}": value for key, value in trial.params.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def _trial_histories(experiment) -> dict[str, pd.DataFrame]:
    from ray.tune import ExperimentAnalysis

    try:
        analysis = ExperimentAnalysis(
            str(experiment.folder), default_metric=experiment.study.metric, default_mode=experiment.study.mode
        )
    except (ValueError, FileNotFoundError) as error:
        raise UserError(f"{experiment.folder}: no Ray experiment state to read ({error})") from None
    return {trial_id: frame for trial_id, frame in analysis.trial_dataframes.items()}


def _last(history: pd.DataFrame, column: str) -> float | None:
    if column not in history or history[column].dropna().empty:
        return None
    return float(history[column].dropna().iloc[-1])


def _best(history: pd.DataFrame, column: str, mode: str) -> float | None:
    if column not in history:
        return None
    values = [float(v) for v in history[column] if isinstance(v, int | float) and math.isfinite(v)]
    if not values:
        return None
    return max(values) if mode == "max" else min(values)


def experiment_info(path: str | Path) -> dict[str, Any]:
    """Name, study settings, Optuna storage and wall time (first trial start to last result)."""
    experiment = open_experiment(path)
    study = experiment.study
    histories = _trial_histories(experiment)
    starts, ends, compute = [], [], 0.0
    for frame in histories.values():
        if {"timestamp", "time_total_s"} <= set(frame.columns) and not frame.empty:
            last = frame.iloc[-1]
            ends.append(float(last["timestamp"]))
            starts.append(float(last["timestamp"]) - float(last["time_total_s"]))
            compute += float(last["time_total_s"])
    return {
        "name": experiment.name,
        "folder": str(experiment.folder),
        "study": study.name,
        "metric": study.metric,
        "mode": study.mode,
        "num_samples": study.num_samples,
        "max_epochs": study.max_epochs,
        "seed": study.seed,
        "space": [param.key for param in study.space],
        "base": study.run_config().to_dict(),
        "optuna_storage": experiment.optuna_storage,
        "optuna_study": experiment.optuna_study,
        "wall_seconds": (max(ends) - min(starts)) if starts else None,
        "trial_seconds": compute,
    }


# --- curves ------------------------------------------------------------------------------------------------
def load_history(path: str | Path) -> pd.DataFrame:
    """Per-epoch curves: an experiment's trials (column `trial_id`) or a run's metrics.jsonl (`run`)."""
    folder = Path(path).expanduser().resolve()
    if is_experiment(folder):
        experiment = open_experiment(folder)
        frames = []
        for trial_id, frame in _trial_histories(experiment).items():
            if not frame.empty:
                frames.append(frame.assign(trial_id=trial_id))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_id"])
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        lines = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        return pd.DataFrame(lines).assign(run=str(folder))
    raise UserError(f"{path} is neither a tune experiment folder nor a run folder with metrics.jsonl")
