"""tune/carry.py: a study's Optuna trials written to its carry file and taken up by a new experiment (no
Ray): finished trials added as they ran, interrupted ones enqueued to train again, rows and seconds of the
earlier experiment; a corrupt carry file is a one-line error. tune/scheduler.py: ASHA's rungs start from the
study's finished trials."""

from __future__ import annotations

import json
import os

import pytest
from fixtures_study import minimal, optuna_trials

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from dmvae.errors import UserError  # noqa: E402
from tune.carry import (  # noqa: E402
    EXPERIMENT,
    continue_study,
    earlier,
    earlier_seconds,
    finished_count,
    read_carry,
    save_carry,
    study_rows,
)
from tune.experiment import create_experiment  # noqa: E402
from tune.search import RAY_TRIAL_ID, SECONDS, build_searcher  # noqa: E402
from tune.study import study_from_dict  # noqa: E402

METRIC = "val/best_accuracy"
POINTS = [{"train.lr": lr} for lr in (1e-3, 2e-3, 3e-3, 4e-3, 5e-3)]


def experiment(tmp_path, name: str):
    study = study_from_dict(minimal(max_epochs=2, num_samples=6, points_to_evaluate=POINTS))
    return create_experiment(study, name, str(tmp_path))


def test_a_new_experiment_goes_on_from_the_carried_trials(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = experiment(tmp_path, "first")
    searcher = build_searcher(first)
    searcher.suggest("a"), searcher.suggest("b")
    searcher.on_trial_result("a", {METRIC: 0.5, "training_iteration": 1, "time_total_s": 5.0})
    searcher.on_trial_complete("a", {METRIC: 0.6, "training_iteration": 2, "time_total_s": 12.5})
    searcher.on_trial_complete("b", {METRIC: 0.4, "training_iteration": 1, "time_total_s": 3.0})  # ASHA
    searcher.suggest("c"), searcher.suggest("d")  # the fifth enqueued point is never asked: WAITING
    searcher.on_trial_complete("c", None, error=True)
    searcher.on_trial_result("d", {METRIC: 0.3, "training_iteration": 1, "time_total_s": 4.0})  # killed
    carry = tmp_path / "carry.json"
    save_carry(first, carry)
    carried = read_carry(carry)
    assert [record["state"] for record in carried] == ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
    assert finished_count(carried) == 3 and earlier(carried, first) == []  # its own trials are not earlier

    second = experiment(tmp_path, "second")
    continue_study(second, carried)
    old = optuna_trials(first.optuna_storage, first.optuna_study)
    new = optuna_trials(second.optuna_storage, second.optuna_study)
    for before, after in zip(old[:3], new[:3], strict=True):  # the finished trials, as they ran
        assert (after.state, after.value, after.params) == (before.state, before.value, before.params)
        assert after.intermediate_values == before.intermediate_values
        assert (after.datetime_start, after.datetime_complete) == (
            before.datetime_start,
            before.datetime_complete,
        )
        assert after.user_attrs == before.user_attrs | {EXPERIMENT: first.optuna_study}
    assert [t.user_attrs[RAY_TRIAL_ID] for t in new[:3]] == ["a", "b", "c"]
    assert [t.user_attrs.get(SECONDS) for t in new[:3]] == [12.5, 3.0, None]
    assert [(t.state.name, t.user_attrs["rerun_of"]) for t in new[3:]] == [
        ("WAITING", first.optuna_study)
    ] * 2
    # the new experiment's searcher trains the interrupted and the never-asked points first, from scratch
    resumed = build_searcher(second)
    assert [resumed.suggest("x"), resumed.suggest("y")] == [old[3].params, POINTS[4]]
    assert optuna_trials(second.optuna_storage, second.optuna_study)[3].intermediate_values == {}

    rows = study_rows(second, carried)  # no Ray state yet: the earlier experiment's finished trials
    assert [(r.number, r.trial_id, r.state, r.epochs, r.metric) for r in rows] == [
        (1, "a", "TERMINATED", 2, 0.6), (2, "b", "STOPPED", 1, 0.4), (3, "c", "ERROR", 0, None),
    ]  # fmt: skip
    compute, wall = earlier_seconds(carried, second)
    assert compute == pytest.approx(15.5)
    starts = [t.datetime_start for t in old[:3]]
    assert wall == pytest.approx((max(t.datetime_complete for t in old[:3]) - min(starts)).total_seconds())
    # Carried again (a third experiment): the first experiment's trials keep their name, the second's get it.
    resumed.on_trial_complete("x", {METRIC: 0.7, "training_iteration": 2, "time_total_s": 9.0})
    save_carry(second, carry)
    again = read_carry(carry)
    assert [r["user_attrs"][EXPERIMENT] for r in again[:4]] == [first.optuna_study] * 3 + [
        second.optuna_study
    ]
    assert finished_count(again) == 4 and compute == pytest.approx(earlier_seconds(again, second)[0])


def test_a_corrupt_carry_file_is_a_one_line_error(tmp_path):
    assert read_carry(tmp_path / "none.json") == []
    path = tmp_path / "carry.json"
    for text in ("{not json", json.dumps({"trial": []}), json.dumps({"trials": [{"state": "COMPLETE"}]})):
        path.write_text(text)
        with pytest.raises(UserError) as caught:
            read_carry(path)
        assert "\n" not in str(caught.value) and "git checkout" in str(caught.value)


def test_asha_starts_with_the_rungs_of_the_study_s_finished_trials(tmp_path):
    """Ray keeps no scheduler state: a resumed or carried-on study's ASHA reads its rungs from Optuna, so a
    new trial as weak as the ones stopped before is stopped at the same rung."""
    import pickle

    import optuna
    from ray.tune.schedulers import ASHAScheduler

    from tune.scheduler import StudyASHA

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    state = optuna.trial.TrialState
    lr = {"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}

    def trial(kind, values, value=None):
        frozen = optuna.trial.create_trial(
            state=kind, value=value, params={"train.lr": 1e-3}, distributions=lr, intermediate_values=values
        )
        study.add_trial(frozen)

    trial(state.COMPLETE, {1: 0.8, 2: 0.85, 3: 0.86, 4: 0.9}, 0.9)
    trial(state.PRUNED, {1: 0.7, 2: 0.72}, 0.72)
    trial(state.FAIL, {1: 0.99})  # failed and live trials do not count
    study.enqueue_trial({"train.lr": 1e-3})
    asha = {"max_t": 4, "grace_period": 1, "reduction_factor": 2}

    class Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    def decision(scheduler, trial_id, value):
        scheduler.on_trial_add(None, Trial(trial_id))
        return scheduler.on_trial_result(None, Trial(trial_id), {"training_iteration": 1, METRIC: value})

    seeded = pickle.loads(pickle.dumps(StudyASHA(url, "s", **asha)))  # as the Tuner saves and restores it
    assert seeded.set_search_properties(METRIC, "max") and seeded.seeded == 2
    assert decision(seeded, "weak", 0.6) == "STOP"  # under the rung-1 median of 0.8 and 0.7
    assert decision(seeded, "strong", 0.95) == "CONTINUE"
    empty = ASHAScheduler(time_attr="training_iteration", **asha)
    assert empty.set_search_properties(METRIC, "max") and decision(empty, "weak", 0.6) == "CONTINUE"
