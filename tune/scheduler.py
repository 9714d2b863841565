"""ASHA whose rungs start from the study's finished trials.

Ray saves no scheduler state with an experiment: a resumed experiment (`dmvae tune resume`) and one that goes
on from carried trials (tune/carry.py) would start ASHA with empty rungs, so the first trials after it run to
`max_epochs` whatever they score, where the study before the break would have stopped them. `StudyASHA` fills
its rungs, before the first trial, with the values at each epoch of the study's finished (COMPLETE or PRUNED)
Optuna trials, which the searcher told exactly as ASHA heard them, through ASHA's own public methods.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler

TIME_ATTR = "training_iteration"  # an epoch: the step of each value the searcher tells Optuna


class StudyASHA(ASHAScheduler):
    # the experiment's Optuna storage now, on a resume (its folder may have moved since the Tuner was saved);
    # `runner.resume` sets it around its fit, as StudySearcher's
    resumed_storage: str | None = None

    def __init__(self, storage_url: str, study_name: str, **asha):
        super().__init__(time_attr=TIME_ATTR, **asha)
        self.storage_url, self.study_name = storage_url, study_name
        self.seeded = 0  # the finished trials whose values filled the rungs

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        """Ray's hand-over of the metric and mode at the start of a run; the rungs are filled then."""
        if not super().set_search_properties(metric, mode, **spec):
            return False
        self.seed_rungs(metric)
        return True

    def seed_rungs(self, metric: str | None) -> None:
        import optuna

        from tune.search import stored_trials

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        try:
            finished = stored_trials(self.resumed_storage or self.storage_url, self.study_name, states)
        except KeyError:  # the experiment's Optuna study is made with its first trial: nothing finished
            finished = []
        for trial in finished:
            earlier = _EarlierTrial(f"optuna-{trial.number}")
            self.on_trial_add(None, earlier)
            for step, value in sorted(trial.intermediate_values.items()):
                self.on_trial_result(None, earlier, {TIME_ATTR: step, metric: value})
            self.on_trial_remove(None, earlier)
        self.seeded = len(finished)


class _EarlierTrial:
    """What ASHA reads of a Ray trial: its id."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id
