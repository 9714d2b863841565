"""The searcher tells Optuna what really happened: a trial ASHA stopped is PRUNED at the epoch it reached,
a finished one COMPLETE, an errored one FAIL; and TPE's random start fits the study's budget."""

from __future__ import annotations

import os

import pytest

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from dmvae.errors import UserError  # noqa: E402
from tune.study import study_from_dict  # noqa: E402

METRIC = "val/best_accuracy"
SPACE = {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}


def study(**changes):
    values = {"name": "s", "base": "configs/mnist_dmvae.yaml", "space": SPACE} | changes
    return study_from_dict(values)


def searcher(tmp_path, max_epochs=4, startup_trials=2):
    from tune.search import StudySearcher

    return StudySearcher(
        study().define_by_run(), METRIC, "max", f"sqlite:///{tmp_path / 'o.db'}", "s-1",
        seed=0, max_epochs=max_epochs, startup_trials=startup_trials,
    )  # fmt: skip


def report(search, trial_id: str, values: list[float]) -> dict:
    """As Ray does: every result but the last through on_trial_result; the last is for on_trial_complete."""
    results = [{METRIC: value, "training_iteration": epoch} for epoch, value in enumerate(values, start=1)]
    for result in results[:-1]:
        search.on_trial_result(trial_id, result)
    return results[-1]


def test_stopped_trials_reach_optuna_as_pruned_at_their_epoch(tmp_path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = searcher(tmp_path, max_epochs=4)
    for trial_id in "abc":
        search.suggest(trial_id)
    search.on_trial_complete("a", report(search, "a", [0.3, 0.5, 0.6, 0.7]))  # ran all 4 epochs
    search.on_trial_complete("b", report(search, "b", [0.2, 0.4]))  # ASHA stopped it after epoch 2
    search.on_trial_complete("c", report(search, "c", [0.1]), error=True)  # crashed after epoch 1
    trials = search.study().get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL"]
    assert trials[0].value == 0.7
    assert trials[1].last_step == 2 and trials[1].intermediate_values == {1: 0.2, 2: 0.4}
    assert trials[1].value == 0.4  # Optuna keeps the value the trial reached, at the epoch it reached


def test_a_resumed_trial_repeating_epochs_tells_each_epoch_once(tmp_path, recwarn):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = searcher(tmp_path, max_epochs=4)
    search.suggest("a")
    report(search, "a", [0.3, 0.5, 0.6])  # epochs 1-2 told, then the driver died
    last = report(search, "a", [0.3, 0.45, 0.55, 0.7])  # resumed from epoch 1: 2 told again
    search.on_trial_complete("a", last)
    (trial,) = search.study().get_trials(deepcopy=False)
    assert trial.intermediate_values == {1: 0.3, 2: 0.5, 3: 0.55, 4: 0.7}
    assert trial.state.name == "COMPLETE" and trial.value == 0.7
    assert not [w for w in recwarn if "already reported" in str(w.message)]


def test_tpe_starts_after_the_studys_startup_trials(tmp_path):
    """With 2 startup trials, the third suggestion comes from TPE's model: it depends on the told values
    (two histories differing only in the values give different third points), which random search cannot."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    thirds = []
    for folder, values in (("up", (0.9, 0.1)), ("down", (0.1, 0.9))):
        (tmp_path / folder).mkdir()
        search = searcher(tmp_path / folder, max_epochs=1, startup_trials=2)
        for trial_id, value in zip("ab", values, strict=True):
            search.suggest(trial_id)
            search.on_trial_complete(trial_id, report(search, trial_id, [value]))
        thirds.append(search.suggest("c")["train.lr"])
    assert thirds[0] != thirds[1]


@pytest.mark.parametrize(("num_samples", "expected"), [(4, 1), (8, 2), (24, 8), (60, 10)])
def test_startup_trials_default_to_a_third_of_the_budget(num_samples, expected):
    assert study(num_samples=num_samples).startup_count() == expected
    assert study(num_samples=num_samples, startup_trials=3).startup_count() == 3


def test_startup_trials_must_be_positive():
    with pytest.raises(UserError, match="startup_trials must be >= 1"):
        study(startup_trials=0)
