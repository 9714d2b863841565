"""Read an experiment back: one row per trial (status) and the best trials' run configs (export)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmvae.errors import UserError
from tune.experiment import Experiment


@dataclass
class TrialRow:
    number: int  # order of creation (1-based)
    trial_id: str
    state: str  # TERMINATED, ERROR, RUNNING, PENDING, PAUSED; "STOPPED" for a trial ASHA stopped early
    epochs: int
    metric: float | None
    params: dict[str, Any]
    hostname: str | None


def trial_rows(experiment: Experiment) -> list[TrialRow]:
    from ray.tune import ExperimentAnalysis

    study = experiment.study
    try:
        analysis = ExperimentAnalysis(
            str(experiment.folder), default_metric=study.metric, default_mode=study.mode
        )
    except (ValueError, FileNotFoundError) as error:
        raise UserError(f"{experiment.folder}: no Ray experiment state to read ({error})") from None
    rows = []
    for trial in analysis.trials:
        result = trial.last_result or {}
        epochs = int(result.get("training_iteration", 0) or 0)
        state = trial.status
        if state == "TERMINATED" and epochs < study.max_epochs:
            state = "STOPPED"
        value = result.get(study.metric)
        metric = float(value) if isinstance(value, int | float) and math.isfinite(value) else None
        tag = str(trial.experiment_tag or "0")
        number = int(tag.split("_")[0]) if tag.split("_")[0].isdigit() else 0
        rows.append(
            TrialRow(
                number, trial.trial_id, state, epochs, metric, dict(trial.config), result.get("hostname")
            )
        )
    return sorted(rows, key=lambda row: row.number)


def ranked(experiment: Experiment, rows: list[TrialRow]) -> list[TrialRow]:
    """Trials with a metric, best first; errored trials come after every trial that did not error."""
    sign = -1 if experiment.study.mode == "max" else 1
    usable = [row for row in rows if row.metric is not None]
    return sorted(usable, key=lambda row: (row.state == "ERROR", sign * row.metric, row.number))


def format_table(experiment: Experiment, rows: list[TrialRow]) -> str:
    study = experiment.study
    keys = [param.key for param in study.space]
    short = [".".join(key.split(".")[-2:]) for key in keys]
    header = ["#", "trial", "state", "epochs", study.metric, *short]
    lines = [header]
    for row in rows:
        metric = f"{row.metric:.4f}" if row.metric is not None else "-"
        values = [_format_value(row.params.get(key)) for key in keys]
        lines.append([str(row.number), row.trial_id, row.state, str(row.epochs), metric, *values])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    best = ranked(experiment, rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = ", ".join(f"{count} {state.lower()}" for state, count in sorted(counts.items()))
    text.append(f"{len(rows)} trials ({summary})" + (f"; best: trial {best[0].trial_id}" if best else ""))
    return "\n".join(text)


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def export_best(experiment: Experiment, out: str | Path, top_k: int = 1) -> list[Path]:
    """Write the run config of the best trial to `out` (and of the next ones to out-2.yaml, ...)."""
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    best = ranked(experiment, trial_rows(experiment))
    if not best:
        raise UserError(f"{experiment.folder}: no trial has reported {experiment.study.metric} yet")
    out = Path(out)
    written = []
    for rank, row in enumerate(best[:top_k], start=1):
        path = out if rank == 1 else out.with_name(f"{out.stem}-{rank}{out.suffix}")
        config = experiment.study.run_config(row.params)
        path.parent.mkdir(parents=True, exist_ok=True)
        config.save(path)
        header = (
            f"# exported by `dmvae tune export` from {experiment.folder}: rank {rank}, trial {row.trial_id}, "
            f"{experiment.study.metric} {row.metric:.4f} after {row.epochs} epochs\n"
        )
        path.write_text(header + path.read_text())
        written.append(path)
    return written


def importances(experiment: Experiment) -> dict[str, float]:
    """Optuna's default importances of the study's parameters (PED-ANOVA in Optuna 5: it compares the
    top-quantile trials with the rest, so a 12-trial study ranks by its best one or two); empty when too few
    trials finished."""
    import optuna

    try:
        study = optuna.load_study(study_name=experiment.optuna_study, storage=experiment.optuna_storage)
        values = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # fewer than two complete trials, or a single parameter value
        return {}
    return {key: round(float(value), 4) for key, value in values.items()}
