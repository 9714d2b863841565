"""The searcher: Ray's OptunaSearch (seeded TPE, define-by-run space, persistent storage) made resume-safe.

Ray snapshots the searcher with the experiment state every few seconds. When a driver is killed, Optuna
trials asked after the last snapshot are left RUNNING in the storage while the restored searcher (whose
sampler state is the snapshot's) does not know them. `ResumableOptunaSearch` adopts such orphans for the
next new Ray trials instead of asking again, so every Ray trial is one Optuna trial and none is counted twice.
The reverse also happens: a trial told to Optuna as finished just before the kill is restored by Ray and
reports again; those results are dropped instead of failing the resumed study.
"""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch

from tune.experiment import Experiment


class ResumableOptunaSearch(OptunaSearch):
    def suggest(self, trial_id: str):
        if callable(self._space) and trial_id not in self._ot_trials:
            orphan = self._orphan()
            if orphan is not None:
                self._ot_trials[trial_id] = orphan
        return super().suggest(trial_id)

    def _finished_in_storage(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        return trial is not None and self._ot_study._storage.get_trial(trial._trial_id).state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._finished_in_storage(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if self._finished_in_storage(trial_id):
            self._ot_trials.pop(trial_id, None)
            return
        super().on_trial_complete(trial_id, result, error)

    def _orphan(self):
        """A RUNNING Optuna trial that no Ray trial of this experiment owns (None if there is none)."""
        import optuna

        owned = {trial._trial_id for trial in self._ot_trials.values()}
        running = self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for frozen in sorted(running, key=lambda trial: trial.number):
            if frozen._trial_id not in owned:
                return optuna.trial.Trial(self._ot_study, frozen._trial_id)
        return None


def build_searcher(experiment: Experiment) -> ResumableOptunaSearch:
    import optuna

    study = experiment.study
    return ResumableOptunaSearch(
        space=study.define_by_run(),
        metric=study.metric,
        mode=study.mode,
        points_to_evaluate=study.initial_points() or None,
        sampler=optuna.samplers.TPESampler(seed=study.seed),
        study_name=experiment.optuna_study,
        storage=optuna.storages.RDBStorage(experiment.optuna_storage),
    )
