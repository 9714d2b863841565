"""A cell's archive, RESULTS/cells/<cell>/: the small files of `dmvae reproduce` that are committed as data.

    cell.json      best trial and its values, importances, timings, the commits that tuned and trained
    best.yaml      the exported best config
    trials.csv     one row per trial of the study: number, trial_id, state, epochs, metric, params (JSON)
    carry.json     the study's Optuna trials, rewritten while it runs (tune/carry.py): a study whose
                   folder is gone goes on from them
    final/seed-S/  config.yaml, final.json, metrics.jsonl (and the cross-synthesis figure) of each final run

A later session (a fresh checkout without the run folders) reads them back: to skip finished cells, to
warm-start a neighbouring cell, and to show each study in the report.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmvae.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.tables import Cell, Table

BEST = "best.yaml"
FINAL = "final"
CELL_FILE = "cell.json"
TRIALS = "trials.csv"
RESULT_COLUMNS = [  # results.csv
    "table", "cell", "model", "dataset", "paired_fraction", "seed", "val_labels", "eval_protocol",
    "val_accuracy", "test_accuracy", "test_accuracy_last", "test_coherence", "coherence_classifier_accuracy",
    "epochs", "discarded_epochs", "best_epoch", "restart_kept", "train_seconds", "precision", "trials",
    "tuning_seed", "tuning_trial_seconds", "tuning_wall_seconds", "commit", "config",
]  # fmt: skip


def read_state(archive: Path) -> dict[str, Any]:
    path = archive / CELL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is unreadable ({error}); delete it to redo the cell's export") from None


def read_best_config(archive: Path) -> dict[str, Any]:
    """The exported best config as a dict; {} when the archive has none (cells archived before it had)."""
    import yaml

    path = archive / BEST
    try:
        values = yaml.safe_load(path.read_text()) if path.is_file() else {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{path} is unreadable ({error}); delete it to redo the cell's export") from None
    return values if isinstance(values, dict) else {}


def write_trials(rows, metric: str, path: Path) -> None:
    """trials.csv from tune.results.trial_rows."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "trial_id", "state", "epochs", metric, "params"])
        for row in rows:
            writer.writerow(
                [row.number, row.trial_id, row.state, row.epochs, row.metric, json.dumps(row.params)]
            )


def archived_search(archive: Path, cell: Cell, command: str) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """The cell's study as the report shows it (load.experiment_info and load.load_experiment), read from
    its archive; None when the cell was never tuned. `command`: the one that ran the study."""
    import pandas as pd

    if not (archive / TRIALS).is_file() or not (archive / CELL_FILE).is_file():
        return None
    state, study = read_state(archive), cell.study()
    with (archive / TRIALS).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    trials = pd.DataFrame([_trial(row, cell.folder, study.metric, state) for row in rows])
    trials["folder"] = str(archive)
    info = {
        "name": cell.folder, "folder": str(archive), "study": study.name, "metric": study.metric,
        "mode": study.mode, "num_samples": study.num_samples, "max_epochs": study.max_epochs,
        "seed": state.get("study_seed"), "base": study.run_config().to_dict(),
        "wall_seconds": state.get("tuning_wall_seconds"), "trial_seconds": state.get("tuning_trial_seconds"),
        "importance": state.get("importance") or {}, "importance_note": state.get("importance_note", ""),
        "command": command,
    }  # fmt: skip
    return info, trials


def _trial(row: dict[str, str], experiment: str, metric: str, state: dict[str, Any]) -> dict[str, Any]:
    """A row of trials.csv in load.load_experiment's shape."""
    params = json.loads(row["params"])
    best = params == state.get("best_params")  # older archives name only the best trial
    return {
        "experiment": experiment,
        "trial_number": int(row["number"]),
        "trial_id": row.get("trial_id") or (state.get("best_trial") if best else "-"),
        "state": row["state"],
        "epochs": int(row["epochs"]) if row["epochs"] else None,
        "metric": metric,
        "metric_last": float(row[metric]) if row[metric] else None,
        **{f"param.{key}": value for key, value in params.items()},
    }


# the small files of each final run kept in the archive
ARCHIVED = ("config.yaml", "final.json", "metrics.jsonl", "figures/cross_synthesis_prior.png")


def has_final(folder: Path, seed: int) -> bool:
    """Whether folder/seed-S is a finished final run: it holds final.json."""
    return (folder / f"seed-{seed}" / "final.json").is_file()


def archive_finals(runs: Path, archive: Path, seeds: list[int]) -> None:
    """Copy the small files of the finished final runs runs/seed-S into archive/seed-S (idempotent)."""
    for seed in seeds:
        source, target = runs / f"seed-{seed}", archive / f"seed-{seed}"
        if not has_final(runs, seed):
            continue
        for name in ARCHIVED:
            if (source / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, target / name)
        unpin_data_root(target / "config.yaml")


def restore_finals(archive: Path, runs: Path, seeds: list[int]) -> list[int]:
    """Copy the archived final runs that runs/ lacks (a fresh checkout, or seeds added to a table) back into
    it, so that only the missing seeds train; returns the seeds copied."""
    restored = []
    for seed in seeds:
        source, target = archive / f"seed-{seed}", runs / f"seed-{seed}"
        if has_final(archive, seed) and not has_final(runs, seed):
            shutil.copytree(source, target, dirs_exist_ok=True)
            restored.append(seed)
    return restored


def unpin_data_root(path: Path) -> None:
    """Drop the absolute data root that a study pins into its configs (so that Ray workers find the data)
    from an archived config when it is the default one, and show other paths under the current folder
    relative to it: the committed files name no machine's paths and rerun from any checkout."""
    from dmvae.data import default_root

    if not path.is_file():
        return
    text = path.read_text()
    pinned = f"root: {default_root().resolve()}\n"
    path.write_text(text.replace(pinned, "root: null\n").replace(f"{Path.cwd().resolve()}/", ""))


def final_rows(table: Table, cell: Cell, archive: Path) -> list[dict[str, Any]]:
    """The cell's rows of results.csv (RESULT_COLUMNS), one per final seed archived."""
    import yaml

    from analysis.load import discarded_epochs  # with restart_kept: train.restarts (Trainer)

    state, rows = read_state(archive), []
    for seed in table.final_seeds:
        if not has_final(archive / FINAL, seed):
            continue
        run = archive / FINAL / f"seed-{seed}"
        final = json.loads((run / "final.json").read_text())
        config = yaml.safe_load((run / "config.yaml").read_text())
        rows.append({
            "table": table.name, "cell": cell.name, "model": cell.model,
            "dataset": table.dataset, "paired_fraction": cell.fraction, "seed": seed,
            "val_labels": final.get("val_labels"), "eval_protocol": config["eval"]["protocol"],
            "val_accuracy": final.get("val_accuracy"),
            "test_accuracy": final.get("test_accuracy"),
            "test_accuracy_last": final.get("test_accuracy_last"),
            "test_coherence": final.get("test_coherence"),
            "coherence_classifier_accuracy": final.get("coherence_classifier_accuracy"),
            "epochs": final.get("epochs"), "discarded_epochs": discarded_epochs(final, config),
            "best_epoch": final.get("best_epoch"), "restart_kept": final.get("restart_kept"),
            "train_seconds": final.get("seconds"), "precision": final.get("precision"),
            "trials": state.get("trials"), "tuning_seed": table.tuning_seed,
            "tuning_trial_seconds": _round(state.get("tuning_trial_seconds")),
            "tuning_wall_seconds": _round(state.get("tuning_wall_seconds")),
            "commit": state.get("final_commits", {}).get(str(seed), state.get("final_commit")),
            "config": json.dumps(config, sort_keys=True),
        })  # fmt: skip
    return rows


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)
