"""Read an experiment back: one row per trial (status) and the best trials' run configs (export)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmvae.errors import UserError
from tune.experiment import Experiment
from tune.study import trials_word

TUNED_ON = "tuned on data seeds"  # in an exported config's header when its study trained on several


def tuned_seeds(config_path: str | Path) -> list[int]:
    """The data seeds named in an exported config's header (a study with data_seeds); [] when none."""
    first = Path(config_path).read_text().partition("\n")[0]
    _, found, seeds = first.partition(f"; {TUNED_ON} ")
    return [int(seed) for seed in seeds.split()] if found else []


if TYPE_CHECKING:
    import optuna


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
        if state == "PENDING" and epochs:  # RUNNING when saved: Ray's reader makes it PENDING (for a restore)
            state = "RUNNING"
        elif state == "TERMINATED" and epochs < study.max_epochs:
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
    best_text = f"; best: trial {best[0].trial_id}" if best else ""
    text.append(f"{trials_word(len(rows))} ({summary}){best_text}")
    if "RUNNING" in counts:
        text.append("running: as last saved; if the study's driver is gone, `dmvae tune resume` goes on")
    return "\n".join(text)


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def export_best(
    experiment: Experiment, out: str | Path, top_k: int = 1, rows: list[TrialRow] | None = None
) -> list[Path]:
    """Write the run config of the best trial to `out` (and of the next ones to out-2.yaml, ...), of the
    experiment's trials or of `rows` (tune.carry.study_rows)."""
    if top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {top_k}")
    best = ranked(experiment, trial_rows(experiment) if rows is None else rows)
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
            f"{experiment.study.metric} {row.metric:.4f} after {row.epochs} epochs"
            + (f"; {TUNED_ON} {' '.join(map(str, seeds))}" if (seeds := experiment.study.data_seeds) else "")
            + "\n"
        )
        path.write_text(header + path.read_text())
        written.append(path)
    return written


def importances(experiment: Experiment) -> tuple[dict[str, float], str]:
    """`param_importances` of the experiment's Optuna study."""
    import optuna

    try:
        study = optuna.load_study(study_name=experiment.optuna_study, storage=experiment.optuna_storage)
    except (KeyError, ValueError, RuntimeError) as error:
        return {}, f"cannot open Optuna study {experiment.optuna_study} ({error})"
    return param_importances(study)


def param_importances(study: optuna.Study) -> tuple[dict[str, float], str]:
    """Optuna's default importances (PED-ANOVA) of the study's parameters, and a note on what they rank.

    Optuna ranks only COMPLETE trials, and ASHA leaves one or two of those in a small study (the rest reach
    Optuna as PRUNED), where PED-ANOVA can only return equal importances. So every completed or stopped trial
    is ranked by its validation value at the last epoch that all of them reached (their rung: ASHA's grace
    period when it stopped any); trials without intermediate values count with their final value. Empty,
    with the reason, when fewer than two trials can be ranked, no parameter varied, or Optuna still returns
    equal importances for several."""
    import warnings

    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = [t for t in study.get_trials(deepcopy=False, states=states) if t.value is not None]
    if len(trials) < 2:
        return {}, f"importance needs at least 2 finished or stopped trials; the study has {len(trials)}"
    reached = [max(t.intermediate_values) for t in trials if t.intermediate_values]
    epoch = min(reached) if reached else None

    def value(trial: optuna.trial.FrozenTrial) -> float:
        steps = [step for step in trial.intermediate_values if epoch is not None and step <= epoch]
        return trial.intermediate_values[max(steps)] if steps else trial.value

    keys = [key for key in trials[0].params if all(key in t.params for t in trials)]  # conditionals drop out
    varying = [key for key in keys if len({repr(t.params[key]) for t in trials}) > 1]
    if not varying:
        return {}, "no parameter took more than one value in the ranked trials"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranking = optuna.create_study(direction=study.direction)
    ranking.add_trials(
        optuna.trial.create_trial(
            params={key: t.params[key] for key in varying},
            distributions={key: t.distributions[key] for key in varying},
            value=value(t),
        )
        for t in trials
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = optuna.importance.get_param_importances(ranking)
    caveats = list(dict.fromkeys(str(w.message).split("\n")[0] for w in caught))
    equal = [caveat for caveat in caveats if "will be equal" in caveat]
    if (equal and len(varying) > 1) or not scores:  # one parameter alone has importance 1 regardless
        return {}, f"Optuna cannot rank the parameters: {equal[0] if equal else 'it returned none'}"
    at = f"at epoch {epoch}, which all {len(trials)} ranked trials reached" if epoch else "(final values)"
    note = "; ".join([f"trials ranked by their validation value {at}", *caveats])
    return {key: round(float(score), 4) for key, score in scores.items()}, note
