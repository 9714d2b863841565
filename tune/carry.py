"""A study that outlives its experiment folder: its Optuna trials, carried in a small JSON file.

An experiment folder (Ray's state, checkpoints) is bulky and may not outlive the checkout it ran in, while a
study on a few CPU cores may take longer than one sitting. So `dmvae reproduce` keeps a carry file beside
each cell's committed results: the study's Optuna trials as they stand (parameters, state, value, the value
at each epoch, seconds trained), rewritten after every result while the study runs. When the folder is gone
and the study unfinished, the study goes on in a new experiment whose Optuna study starts with the carried
trials. Finished ones (COMPLETE, PRUNED, FAIL) are added as they were, so TPE conditions on them and the new
experiment runs only the rest of the budget. Interrupted ones lost their checkpoints with the folder: they
are enqueued, to train again from the first epoch. ASHA's rungs start from the finished trials' values
(tune/scheduler.py)."""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from dmvae.errors import UserError
from tune.results import TrialRow
from tune.search import RAY_TRIAL_ID, SECONDS, close_storage, open_storage, stored_trials

if TYPE_CHECKING:
    from tune.experiment import Experiment

CARRY_FILE = "carry.json"
EXPERIMENT = "experiment"  # Optuna user attribute: the experiment a trial ran in (its Optuna study's name)
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
RAY_STATE = {"COMPLETE": "TERMINATED", "PRUNED": "STOPPED", "FAIL": "ERROR"}  # as tune.results.trial_rows
logger = logging.getLogger(__name__)


def save_carry(experiment: Experiment, path: Path) -> list[dict[str, Any]]:
    """Write the experiment's Optuna trials (and those it carries from earlier experiments) to `path`;
    the trials as written."""
    stored = stored_trials(experiment.optuna_storage, experiment.optuna_study)
    trials = [_trial_record(trial, experiment.optuna_study) for trial in stored]
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"trials": trials}, indent=1) + "\n")
    os.replace(temporary, path)  # a driver killed while writing leaves the previous file whole
    return trials


def _trial_record(trial, experiment: str) -> dict[str, Any]:
    from optuna.distributions import distribution_to_json

    def moment(when: datetime.datetime | None) -> str | None:
        return when.isoformat() if when else None

    return {
        "number": trial.number,
        "state": trial.state.name,
        # an enqueued trial not yet asked (WAITING) holds its point in the system attribute `fixed_params`
        "params": trial.params or dict(trial.system_attrs.get("fixed_params", {})),
        "distributions": {key: distribution_to_json(value) for key, value in trial.distributions.items()},
        "value": trial.value,
        "intermediate_values": {str(step): value for step, value in trial.intermediate_values.items()},
        "user_attrs": {EXPERIMENT: experiment} | dict(trial.user_attrs),
        "datetime_start": moment(trial.datetime_start),
        "datetime_complete": moment(trial.datetime_complete),
    }


def read_carry(path: Path) -> list[dict[str, Any]]:
    """The carried trials; [] when there is no carry file."""
    if not path.is_file():
        return []
    try:
        trials = list(json.loads(path.read_text())["trials"])
        for record in trials:  # what continue_study and study_rows read
            _ = record["state"], record["params"], record["intermediate_values"]
            _ = record["user_attrs"][EXPERIMENT]
        return trials
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"{path} is corrupt ({type(error).__name__}: {error}); restore it with `git checkout -- {path}` "
            "or delete it to start the study over"
        ) from None


def continue_study(experiment: Experiment, carried: list[dict[str, Any]]) -> None:
    """Start the new experiment's Optuna study with the carried trials: the finished ones as they were, the
    interrupted ones enqueued (they are trained again)."""
    import optuna
    from optuna.distributions import json_to_distribution

    storage = open_storage(experiment.optuna_storage)
    try:
        study = optuna.create_study(
            storage=storage, study_name=experiment.optuna_study, load_if_exists=True,
            direction="maximize" if experiment.study.mode == "max" else "minimize",
        )  # fmt: skip
        for record in carried:
            if record["state"] not in FINISHED:
                earlier_run = {"rerun_of": record["user_attrs"][EXPERIMENT]}
                study.enqueue_trial(record["params"], user_attrs=earlier_run)
                continue
            study.add_trial(
                optuna.trial.FrozenTrial(
                    number=-1, trial_id=-1, state=optuna.trial.TrialState[record["state"]],
                    value=record["value"], params=record["params"],
                    distributions={k: json_to_distribution(v) for k, v in record["distributions"].items()},
                    intermediate_values={int(step): v for step, v in record["intermediate_values"].items()},
                    user_attrs=record["user_attrs"], system_attrs={},
                    datetime_start=_moment(record["datetime_start"]),
                    datetime_complete=_moment(record["datetime_complete"]),
                )
            )  # fmt: skip
    finally:
        close_storage(storage)


def _moment(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text else None


def finished_count(carried: list[dict[str, Any]]) -> int:
    return sum(record["state"] in FINISHED for record in carried)


def earlier(carried: list[dict[str, Any]], experiment: Experiment) -> list[dict[str, Any]]:
    """The finished carried trials that ran in experiments before this one."""
    current = experiment.optuna_study
    return [r for r in carried if r["state"] in FINISHED and r["user_attrs"][EXPERIMENT] != current]


def study_rows(experiment: Experiment, carried: list[dict[str, Any]]) -> list[TrialRow]:
    """Every trial of the study: the earlier experiments' (from the carry) first, then this one's (from Ray),
    numbered on from them."""
    from ray import tune

    from tune.results import trial_rows

    rows = [_row(number, record) for number, record in enumerate(earlier(carried, experiment), start=1)]
    here = trial_rows(experiment) if tune.Tuner.can_restore(str(experiment.folder)) else []
    for row in here:
        row.number += len(rows)
    return rows + here


def _row(number: int, record: dict[str, Any]) -> TrialRow:
    values = {int(step): value for step, value in record["intermediate_values"].items()}
    metric = record["value"] if record["value"] is not None else (values[max(values)] if values else None)
    attrs = record["user_attrs"]
    trial_id = attrs.get(RAY_TRIAL_ID, f"optuna-{record['number']}")
    return TrialRow(number, trial_id, RAY_STATE[record["state"]], max(values, default=0), metric,
                    dict(record["params"]), None)  # fmt: skip


def earlier_seconds(carried: list[dict[str, Any]], experiment: Experiment) -> tuple[float, float]:
    """The trial seconds and the wall seconds (first trial start to last trial end, per experiment) that the
    earlier experiments spent."""
    trials = earlier(carried, experiment)
    compute = sum(float(record["user_attrs"].get(SECONDS, 0.0)) for record in trials)
    wall = 0.0
    for name in {record["user_attrs"][EXPERIMENT] for record in trials}:
        spans = [record for record in trials if record["user_attrs"][EXPERIMENT] == name]
        starts = [_moment(record["datetime_start"]) for record in spans if record["datetime_start"]]
        ends = [_moment(record["datetime_complete"]) for record in spans if record["datetime_complete"]]
        if starts and ends:
            wall += (max(ends) - min(starts)).total_seconds()
    return compute, wall


class CarryCallback(Callback):
    """Rewrites the carry file after each trial result, completion and error while the experiment runs."""

    def __init__(self, experiment: Experiment, path: Path):
        self.experiment, self.path = experiment, path

    def save(self) -> None:
        try:
            save_carry(self.experiment, self.path)
        except Exception as error:  # the study goes on; the next result writes it again
            logger.warning("cannot write %s: %s", self.path, error)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.save()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.save()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.save()
