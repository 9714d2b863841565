"""The searcher: an Optuna study (seeded TPE, define-by-run space, persistent storage) behind Ray's Searcher.

`StudySearcher` implements Ray Tune's public `Searcher` interface on Optuna's public API only (`ask`,
`tell` by trial number, `enqueue_trial`, `get_trials`, the storage's documented methods), so a Ray or
Optuna upgrade that changes either's private attributes cannot break it silently. Its own state is a map
from Ray trial ids to Optuna trial numbers plus the sampler, saved with Ray's experiment state.

It is resume-safe. Ray snapshots the searcher with the experiment state every few seconds. When a driver
is killed, Optuna trials asked after the last snapshot are left RUNNING in the storage while the restored
searcher does not know them: they are adopted by the next new Ray trials instead of asking again, so every
Ray trial is one Optuna trial and none is counted twice. The reverse also happens: a trial told to Optuna
as finished just before the kill is restored by Ray and reports again; those results are dropped. Ray's
experiment state and the searcher's snapshot are two files, so a kill while they are uploaded can leave
them out of step: on restore the searcher reads Ray's restored trials and keeps each on the Optuna trial it
was asked as (matched by config), tells Optuna the last result of each that Ray restored as finished, and
frees the Optuna trials of those Ray did not restore. An errored trial is told FAIL, and if the resume
retries it (`dmvae tune resume --retry-errored`), its second run is told to a fresh Optuna trial of its point.

The searcher also keeps the study's limit of concurrent trials (Ray's ConcurrencyLimiter, which would
otherwise wrap it, drops the completion of trials it did not suggest, such as restored or retried ones).

Optuna storages: a SQLAlchemy URL (sqlite:///..., postgresql://user@host/db, mysql://...) or
`journal:/shared/path/optuna.log`, Optuna's journal file (one append-only file; safe on NFS, no database).
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import TYPE_CHECKING, Any

from ray.tune.search import Searcher

from dmvae.errors import UserError

if TYPE_CHECKING:
    from tune.experiment import Experiment

JOURNAL = "journal:"
RAY_TRIAL_ID, SECONDS = "ray_trial_id", "seconds"  # Optuna user attributes of each trial (see tune/carry.py)
logger = logging.getLogger(__name__)


def open_storage(url: str):
    """The Optuna storage of a URL; an unreachable or malformed one is a one-line UserError."""
    import optuna

    for attempt in range(3):
        try:
            if url.startswith(JOURNAL):
                from optuna.storages.journal import JournalFileBackend, JournalStorage

                return JournalStorage(JournalFileBackend(url.removeprefix(JOURNAL)))
            return optuna.storages.RDBStorage(url)
        except Exception as error:  # SQLAlchemy, the database driver or the file system: one line
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if attempt < 2 and ("UNIQUE constraint" in message or "locked" in message):
                time.sleep(0.5)  # another process is creating the same new database's tables: retry
                continue
            raise UserError(f"cannot open the Optuna storage {redact(url)}: {message}") from None
    raise AssertionError("unreachable")


def close_storage(storage) -> None:
    """Give back the database connections an RDB storage pools (a journal storage holds none): a process
    that opens storages again and again would otherwise exhaust the server's connection limit."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def stored_trials(url: str, study_name: str, states: tuple | None = None) -> list:
    """The FrozenTrials of a stored Optuna study (of these states), the storage's connections given back."""
    import optuna

    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(
            deepcopy=False, states=states
        )
    finally:
        close_storage(storage)


def redact(url: str) -> str:
    """The URL with its password (if any) hidden."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, _, host = rest.partition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
    return url


class StudySearcher(Searcher):
    """Ray trials asked from (and told to) one Optuna study. Picklable: the storage is reopened by URL."""

    # The resume in progress: whether it runs Ray's errored trials again (`tune resume --retry-errored`), and
    # the experiment's Optuna storage now (its folder may have moved or been copied since the snapshot). Ray
    # restores the searcher without saying either; `runner.resume` sets them around its fit.
    retry_errored = False
    resumed_storage: str | None = None

    def __init__(
        self,
        define,
        metric: str,
        mode: str,
        storage_url: str,
        study_name: str,
        seed: int,
        max_epochs: int,
        startup_trials: int,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        max_concurrent: int | None = None,
    ):

        super().__init__(metric=metric, mode=mode)
        self.define = define
        self.storage_url = storage_url
        self.study_name = study_name
        self.seed = seed
        self.max_epochs = max_epochs
        self.startup_trials = startup_trials
        self.max_concurrent = max_concurrent
        self.sampler = self.make_sampler(seed)
        self._reseed = False
        self.numbers: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self.finished: set[str] = set()  # Ray trial ids told to Optuna
        self._connection = None
        study = self.study()
        if points_to_evaluate and not study.get_trials(deepcopy=False):
            for point in points_to_evaluate:
                study.enqueue_trial(point)

    def make_sampler(self, seed: int):
        """Seeded TPE: `startup_trials` random (or enqueued) trials, then the model; `constant_liar` keeps
        concurrent trials from being proposed at the same point."""
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.startup_trials, constant_liar=True)

    # --- the Optuna side (not pickled) -------------------------------------------------------------------
    def study(self):
        import optuna

        if self._connection is None:
            storage = open_storage(self.storage_url)
            if self._reseed:  # restored from a snapshot: the snapshot's random state would repeat the
                # trials asked after it (TPE keeps no other state; its history is in the storage)
                done = len(optuna.load_study(study_name=self.study_name, storage=storage).trials)
                self.sampler = self.make_sampler(self.seed + done)
                self._reseed = False
            direction = "maximize" if self.mode == "max" else "minimize"
            study = optuna.create_study(
                storage=storage, sampler=self.sampler, pruner=optuna.pruners.NopPruner(),
                study_name=self.study_name, direction=direction, load_if_exists=True,
            )  # fmt: skip
            self._connection = (storage, study, storage.get_study_id_from_name(self.study_name), {})
        return self._connection[1]

    def _trial(self, number: int):
        """The live `optuna.trial.Trial` of a trial number (to suggest into and report to)."""
        import optuna

        study = self.study()
        storage, _, study_id, trials = self._connection
        if number not in trials:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
            trials[number] = optuna.trial.Trial(study, trial_id)
        return trials[number]

    def _frozen(self, number: int):
        """The stored `FrozenTrial` of a trial number (its state and intermediate values)."""
        self.study()
        storage, _, study_id, _ = self._connection
        return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))

    def _state(self, number: int):
        return self._frozen(number).state

    def _finished_in_storage(self, trial_id: str) -> bool:
        number = self.numbers.get(trial_id)
        return number is not None and self._state(number).is_finished()

    def _orphans(self) -> list[int]:
        """The numbers of the RUNNING Optuna trials that no Ray trial of this experiment owns, in order."""
        import optuna

        owned = set(self.numbers.values())
        running = self.study().get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return sorted(trial.number for trial in running if trial.number not in owned)

    # --- Ray's Searcher interface ------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The config of a new Ray trial, or None while `max_concurrent` trials are live. The limit is kept
        here, not by Ray's ConcurrencyLimiter: that wrapper ignores the completion of a trial it did not
        suggest itself, such as one Ray restored that its snapshot lacks or an errored one Ray retries."""
        if trial_id not in self.numbers:
            live = sum(key not in self.finished for key in self.numbers)
            if self.max_concurrent and live >= self.max_concurrent:
                return None
            orphans = self._orphans()
            self.numbers[trial_id] = orphans[0] if orphans else self.study().ask().number
            self._trial(self.numbers[trial_id]).set_user_attr(RAY_TRIAL_ID, trial_id)
        return self._config(self.numbers[trial_id])

    def _config(self, number: int) -> dict[str, Any]:
        """The Ray config of an Optuna trial: the space's values suggested into it (again if asked before)."""
        trial = self._trial(number)
        values = self.define(trial)
        return dict(values) if values is not None else dict(trial.params)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if trial_id in self.finished or trial_id not in self.numbers or not isinstance(value, int | float):
            return
        number, step = self.numbers[trial_id], int(result["training_iteration"])
        told = self._frozen(number)
        # a trial resumed from its checkpoint repeats the epochs after it: each is told once, first value kept
        if not told.state.is_finished() and step not in told.intermediate_values:
            self._trial(number).report(float(value), step)
            self._record_seconds(number, result)

    def _record_seconds(self, number: int, result: dict) -> None:
        if isinstance(seconds := result.get("time_total_s"), int | float):
            self._trial(number).set_user_attr(SECONDS, float(seconds))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        if trial_id in self.finished or trial_id not in self.numbers:
            return
        self.finished.add(trial_id)
        if self._finished_in_storage(trial_id):  # told before a killed driver's last snapshot
            return
        value = (result or {}).get(self.metric)
        epochs = int((result or {}).get("training_iteration", 0))
        state = optuna.trial.TrialState
        if error:
            state = state.FAIL
        elif value is None or epochs < self.max_epochs:
            # Stopped early by ASHA: PRUNED, so TPE ranks it by the epoch it reached and its value there
            # (Optuna takes the last intermediate value), not as a finished trial with a lower score.
            state = state.PRUNED
        else:
            state = state.COMPLETE
        number = self.numbers[trial_id]
        if value is not None and epochs and epochs not in self._frozen(number).intermediate_values:
            # Ray hands a trial's last result to on_trial_complete only: report it, so a PRUNED trial's
            # value (Optuna takes the last intermediate one) is that of the epoch where it stopped.
            self._trial(number).report(float(value), epochs)
        self._record_seconds(number, result or {})
        try:
            self.study().tell(number, value if state == state.COMPLETE else None, state=state)
        except Exception as failure:  # e.g. a NaN value: Optuna marks the trial failed
            logger.warning("optuna: trial %s: %s", number, failure)

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Ray's restore of the snapshot, then its map reconciled with the trials Ray itself restored: Ray
        writes its experiment state and this searcher's snapshot as two files, and a driver killed while
        they are uploaded (S3) leaves one newer than the other."""
        super().restore_from_dir(checkpoint_dir)
        self.storage_url = self.resumed_storage or self.storage_url
        restored = restored_ray_trials(checkpoint_dir)
        if restored is not None:
            self._reconcile(restored)

    def _reconcile(self, restored: dict[str, tuple[str, dict, dict]]) -> None:
        """A Ray trial this snapshot owns but Ray did not restore will never report: its unfinished Optuna
        trial is freed for adoption. A Ray trial restored by Ray but missing from this snapshot keeps the
        Optuna trial it was asked as (matched by config), so no new Ray trial runs its point again. Ray will
        not report a trial it restored finished (TERMINATED), or errored (ERROR) unless the resume retries
        errored trials: such a trial's last result is told now, as COMPLETE or PRUNED, or as FAIL. An errored
        trial that the resume retries and that Optuna already holds as FAIL gets a fresh Optuna trial of its
        point, so the results of its second run are told. A trial whose tell failed (a storage error) is
        finished here but RUNNING in Optuna: it is handled as unfinished, so it is told again or freed."""
        for trial_id in [key for key in self.finished if not self._state(self.numbers[key]).is_finished()]:
            self.finished.discard(trial_id)
        for trial_id in [key for key in self.numbers if key not in restored and key not in self.finished]:
            if self._state(self.numbers[trial_id]).is_finished():
                self.finished.add(trial_id)  # told just before the kill: not live (see `suggest`)
            else:
                del self.numbers[trial_id]
        for trial_id, (status, config, last_result) in restored.items():
            if trial_id not in self.numbers:
                number = next((n for n in self._orphans() if self._asked_as(n, config)), None)
                if number is None:
                    continue
                self.numbers[trial_id] = number
            if status == "TERMINATED":
                self.on_trial_complete(trial_id, last_result)
            elif status == "ERROR" and not self.retry_errored:
                self.on_trial_complete(trial_id, last_result, error=True)
            elif status == "ERROR" and trial_id in self.finished:
                self._ask_again(trial_id)

    def _ask_again(self, trial_id: str) -> None:
        """Map a Ray trial to a new RUNNING Optuna trial of its point, with the epochs it reported so far
        (its rerun resumes from its checkpoint, so the epochs before it are not reported again). Made by the
        storage from a template, which (unlike `Study.add_trial`) keeps a point enqueued outside the space."""
        import datetime

        import optuna

        told = self._frozen(self.numbers[trial_id])
        template = optuna.trial.FrozenTrial(
            number=-1, state=optuna.trial.TrialState.RUNNING, value=None,
            datetime_start=datetime.datetime.now(), datetime_complete=None, params=told.params,
            distributions=told.distributions, user_attrs=told.user_attrs, system_attrs={},
            intermediate_values=told.intermediate_values, trial_id=-1,
        )  # fmt: skip
        storage, _, study_id, _ = self._connection
        new_id = storage.create_new_trial(study_id, template_trial=template)
        self.numbers[trial_id] = storage.get_trial_number_from_id(new_id)
        self.finished.discard(trial_id)

    def _asked_as(self, number: int, config: dict) -> bool:
        return all(config.get(key) == value for key, value in self._config(number).items())

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__getstate__(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__setstate__(pickle.load(handle))

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in ("_connection", "_reseed")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"max_concurrent": None} | state)  # a snapshot from before the limit was here
        self._connection = None
        self._reseed = True


def restored_ray_trials(folder: str) -> dict[str, tuple[str, dict, dict]] | None:
    """Ray trial id -> (status, config, last result) of the newest experiment state in a driver's folder,
    read as Ray restores it (`Trial.from_json_state`, `restore_run_metadata`); None (with a warning) where
    there is none or Ray's format changed."""
    import json
    from pathlib import Path

    from ray.tune.experiment import Trial

    states = sorted(Path(folder).glob("experiment_state-*.json"))
    if not states:
        return None
    try:
        restored = {}
        for state, run_metadata in json.loads(states[-1].read_text())["trial_data"]:
            trial = Trial.from_json_state(state, stub=True)
            trial.restore_run_metadata(run_metadata)
            last_result = dict(trial.run_metadata.last_result)
            restored[trial.trial_id] = (trial.status, dict(trial.config), last_result)
        return restored
    except Exception as error:  # any change of Ray's format: resume as before this reconciliation
        logger.warning("cannot read Ray's trials in %s (%s): restored ones may run again", states[-1], error)
        return None


def build_searcher(experiment: Experiment) -> StudySearcher:
    study = experiment.study
    return StudySearcher(
        define=study.define_by_run(),
        metric=study.metric,
        mode=study.mode,
        storage_url=experiment.optuna_storage,
        study_name=experiment.optuna_study,
        seed=study.seed,
        max_epochs=study.max_epochs,
        startup_trials=study.startup_count(),
        points_to_evaluate=study.initial_points() or None,
        max_concurrent=study.max_concurrent,
    )
