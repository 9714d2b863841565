"""Start, resume and connect: builds the Tuner (Optuna searcher + ASHA) for an experiment and runs it.

Checkpoints: Ray keeps every checkpoint while a study runs (`num_to_keep=None`) and `prune_checkpoints`
removes all but each trial's last one once `fit` has returned. Ray's experiment snapshot (what a resume
starts from) is written every few seconds; had Ray deleted old checkpoints as new ones came (num_to_keep=K),
a driver killed after K checkpoints of a trial since the last snapshot would resume that trial from a
deleted checkpoint. With nothing deleted while the driver may die, no snapshot can point at a missing one.
"""

from __future__ import annotations

import os
import signal

from dmvae.errors import UserError
from tune import storage as store
from tune.experiment import Experiment
from tune.scheduler import StudyASHA
from tune.search import StudySearcher, build_searcher
from tune.trainable import make_trainable


def connect(address: str | None = None) -> None:
    """Join a running Ray cluster (auto or HOST:PORT) or start a local Ray on this machine's CPUs."""
    import ray

    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address)
        except ConnectionError as error:
            raise UserError(f"cannot reach a Ray cluster at {address}: {error}") from None
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False)


def build_tuner(experiment: Experiment, num_samples: int | None = None, callbacks: list | None = None):
    from ray import tune

    study = experiment.study
    scheduler = StudyASHA(
        experiment.optuna_storage, experiment.optuna_study, max_t=study.max_epochs,
        grace_period=study.grace_period, reduction_factor=study.reduction_factor,
    )  # fmt: skip
    return tune.Tuner(
        trainable(experiment),
        tune_config=tune.TuneConfig(
            search_alg=build_searcher(experiment),
            scheduler=scheduler,
            metric=study.metric,
            mode=study.mode,
            num_samples=num_samples or study.num_samples,
            # no max_concurrent_trials: the searcher keeps study.max_concurrent (see StudySearcher.suggest)
        ),  # fmt: skip
        run_config=run_config(experiment, callbacks),
    )


def run_config(experiment: Experiment, callbacks: list | None = None):
    from ray import tune

    return tune.RunConfig(
        name=experiment.name,
        storage_path=str(experiment.storage_path),
        failure_config=tune.FailureConfig(max_failures=experiment.study.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # pruned after fit (see the docstring)
        # The trial's working directory (its image event file) is copied to the trial folder in storage.
        sync_config=tune.SyncConfig(sync_artifacts=True),
        verbose=int(os.environ.get("DMVAE_TUNE_VERBOSE", "1")),
        callbacks=callbacks,
    )


def trainable(experiment: Experiment):
    return make_trainable(experiment.study.to_dict(), experiment.study.resources)


def run(
    experiment: Experiment,
    address: str | None = None,
    num_samples: int | None = None,
    callbacks: list | None = None,
):
    """Run the experiment's study; `callbacks`: Ray Tune callbacks (kept with the experiment for a resume)."""
    connect(address)
    results = settled(
        fit(build_tuner(experiment, num_samples, callbacks)), num_samples or experiment.study.num_samples
    )
    prune_checkpoints(experiment)
    return results


def fit(tuner):
    """`tuner.fit()`, with the process's SIGINT and SIGUSR1 handlers put back afterwards. Ray Tune
    installs its own and restores them only when a signal comes, so after a finished study a Ctrl-C during
    what followed (a reproduce's finals) reached Ray's handler, which only logged 'ending Ray Tune run'."""
    kinds = [signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
    before = {kind: signal.getsignal(kind) for kind in kinds}
    try:
        return tuner.fit()
    finally:
        for kind, handler in before.items():
            if handler is not None and signal.getsignal(kind) is not handler:  # Ray's, main thread only
                signal.signal(kind, handler)


def settled(results, num_samples: int):
    """`results` of a study that ran to its end. Ray Tune ends a run on the first Ctrl-C (SIGINT) by saving
    its state and returning as if the study were done: that raises KeyboardInterrupt here, so no caller
    takes a cut-off study for a finished one (`dmvae reproduce` would export it and train its finals)."""
    if results.num_terminated + results.num_errors < len(results) or len(results) < num_samples:
        raise KeyboardInterrupt
    return results


def prune_checkpoints(experiment: Experiment) -> int:
    """Delete every checkpoint but the newest of each trial folder; the number deleted."""
    import pyarrow.fs

    if experiment.remote:
        fs, root = store.filesystem(str(experiment.folder))
    else:
        fs, root = pyarrow.fs.LocalFileSystem(), str(experiment.folder)
    selector = pyarrow.fs.FileSelector(root, recursive=False)
    deleted = 0
    for trial in fs.get_file_info(selector):
        if trial.type != pyarrow.fs.FileType.Directory:
            continue
        entries = fs.get_file_info(pyarrow.fs.FileSelector(trial.path, recursive=False))
        checkpoints = sorted(
            (int(entry.base_name.rsplit("_", 1)[1]), entry.path)
            for entry in entries
            if entry.type == pyarrow.fs.FileType.Directory
            and entry.base_name.startswith("checkpoint_")
            and entry.base_name.rsplit("_", 1)[1].isdigit()
        )
        for _, path in checkpoints[:-1]:
            fs.delete_dir(path)
            deleted += 1
    return deleted


def resume(experiment: Experiment, address: str | None = None, retry_errored: bool = False):
    """Continue an interrupted experiment: unfinished trials go on from their last checkpoints."""
    from ray import tune

    if not tune.Tuner.can_restore(str(experiment.folder)):
        raise UserError(f"{experiment.folder} holds no Ray experiment state to resume (was it ever started?)")
    connect(address)
    tuner = tune.Tuner.restore(
        str(experiment.folder), trainable=trainable(experiment), resume_unfinished=True,
        resume_errored=retry_errored,
    )  # fmt: skip
    StudySearcher.retry_errored, StudySearcher.resumed_storage = retry_errored, experiment.optuna_storage
    StudyASHA.resumed_storage = experiment.optuna_storage
    try:
        results = settled(fit(tuner), experiment.study.num_samples)
    finally:
        StudySearcher.retry_errored, StudySearcher.resumed_storage = False, None
        StudyASHA.resumed_storage = None
    prune_checkpoints(experiment)
    return results
