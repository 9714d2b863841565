"""The searcher on its own (no Ray): an Optuna study behind Ray's Searcher interface, snapshotted and restored
as a killed driver's would be, on SQLite and on Optuna's journal file; orphans adopted, late results dropped,
restored, errored and retried trials told as they ran, the concurrency limit kept; public APIs only."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest
from fixtures_study import optuna_trials

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from tune.study import REPO, study_from_dict  # noqa: E402

METRIC = "val/best_accuracy"
SPACE = {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}


# --- the searcher alone: orphans adopted, late results dropped, public APIs only -------------------------
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_searcher_adopts_orphans_and_drops_late_results(tmp_path, kind):
    """A snapshot taken, two more steps, then a 'killed driver' restores the snapshot: the trial asked
    after the snapshot is adopted (not asked again) and the trial told before the kill is not told twice."""
    import optuna

    from tune.search import StudySearcher

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'o.log'}"
    study = study_from_dict({"name": "s", "base": "configs/mnist_dmvae.yaml", "space": SPACE})
    searcher = StudySearcher(
        study.define_by_run(), METRIC, "max", url, "s-1", seed=0, max_epochs=2, startup_trials=1,
        points_to_evaluate=[{"train.lr": 0.001}],
    )  # fmt: skip
    assert searcher.suggest("a") == {"train.lr": 0.001}  # the enqueued point first
    snapshot = pickle.dumps(searcher)  # what Ray saves with its experiment state
    second = searcher.suggest("b")
    assert 3e-4 <= second["train.lr"] <= 3e-3
    searcher.on_trial_result("a", {METRIC: 0.4, "training_iteration": 1})
    searcher.on_trial_complete("a", {METRIC: 0.5, "training_iteration": 2})

    restored = pickle.loads(snapshot)  # the driver was killed; Ray restores the snapshot
    assert restored.suggest("c") == second  # adopts Optuna trial 1 (RUNNING, no Ray trial owns it)
    restored.on_trial_result("a", {METRIC: 0.9, "training_iteration": 2})  # 'a' reports again: dropped
    restored.on_trial_complete("a", {METRIC: 0.9, "training_iteration": 2})
    restored.on_trial_complete("c", {METRIC: 0.7, "training_iteration": 2})
    assert restored.suggest("d") != second and len(optuna_trials(url, "s-1")) == 3  # a new trial, not
    # the snapshot's random state replayed (it would sample trial 1's values again)
    restored.on_trial_complete("d", None, error=True)
    trials = optuna_trials(url, "s-1")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert [t.value for t in trials[:2]] == [0.5, 0.7]  # the first value counts, not the late one
    assert trials[0].intermediate_values == {1: 0.4, 2: 0.5}  # the final result too; not the late 0.9


def searchers(tmp_path: Path, **options):
    """A maker of StudySearchers of one small space on one SQLite study (a new one per call, as a restarted
    driver makes), and the study's URL."""
    import optuna

    from tune.search import StudySearcher

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    study = study_from_dict({"name": "s", "base": "configs/mnist_dmvae.yaml", "space": SPACE})

    def searcher():
        return StudySearcher(study.define_by_run(), METRIC, "max", url, "s-1", seed=0, max_epochs=2,
                             startup_trials=1, **options)  # fmt: skip

    return searcher, url


def ray_experiment_state(
    folder: Path, trials: dict[str, dict], finished: dict[str, dict] | None = None, status: str = "TERMINATED"
):
    """An experiment state file as Ray writes it: live (RUNNING) trials of the given configs, and those
    named in `finished` in `status` (TERMINATED or ERROR) with that last result."""
    import json

    from ray.tune.experiment import Trial

    states = []
    for trial_id, config in trials.items():
        trial = Trial("train_trial", config=config, trial_id=trial_id, stub=True)
        trial.create_placement_group_factory()
        if trial_id in (finished or {}):
            trial.set_status(status)
            trial.run_metadata.last_result = finished[trial_id]
        else:
            trial.set_status(Trial.RUNNING)
        states.append(list(trial.get_json_state()))
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": states}))


@pytest.mark.parametrize("ahead", ["ray", "ray-finished", "searcher"])
def test_searcher_follows_the_trials_ray_restored(tmp_path, ahead):
    """Ray's experiment state and the searcher's snapshot out of step after a killed upload. Ray ahead: it
    restores 'b', which the snapshot lacks; 'b' keeps its Optuna trial and the next new trial asks a new
    one (before, the new trial adopted b's and ran it twice). Ray ahead with 'b' finished: Ray will not
    report b again, so the restore tells b's Optuna trial b's last result (before, it was run again).
    Searcher ahead: its 'b' was never saved by Ray, so b's Optuna trial is adopted by the next new trial."""
    searcher, url = searchers(tmp_path)

    first = searcher()
    configs = {"a": first.suggest("a")}
    if ahead != "searcher":
        first.save_to_dir(str(tmp_path), "s")
    configs["b"] = first.suggest("b")
    first.on_trial_result("b", {METRIC: 0.5, "training_iteration": 1})
    if ahead == "searcher":
        first.save_to_dir(str(tmp_path), "s")
        del configs["b"]
    finished = {"b": {METRIC: 0.6, "training_iteration": 2}} if ahead == "ray-finished" else {}
    ray_experiment_state(tmp_path, configs, finished)

    restored = searcher()
    restored.restore_from_dir(str(tmp_path))
    third = restored.suggest("c")
    for trial_id in [key for key in [*configs, "c"] if key not in finished]:
        restored.on_trial_result(trial_id, {METRIC: 0.5, "training_iteration": 1})
        restored.on_trial_complete(trial_id, {METRIC: 0.6, "training_iteration": 2})
    trials = optuna_trials(url, "s-1")
    if ahead == "searcher":
        assert third == trials[1].params and len(trials) == 2  # c adopted b's trial
        assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    else:
        assert third != configs["b"] and len(trials) == 3  # c asked a new trial; b kept its own
        assert [t.state.name for t in trials] == ["COMPLETE"] * 3
        assert trials[1].params == configs["b"] and trials[1].intermediate_values == {1: 0.5, 2: 0.6}
        assert trials[1].value == 0.6


@pytest.mark.parametrize("retry", [False, True], ids=["kept-errored", "retried"])
@pytest.mark.parametrize("snapshot", ["ray-ahead", "told", "tell-failed"])
def test_searcher_tells_an_errored_trial_as_the_resume_runs_it(tmp_path, monkeypatch, retry, snapshot):
    """Ray restores 'b' errored. Kept errored (a plain resume), Ray never runs it again: its Optuna trial
    is told FAIL, and no new trial adopts its point (before, a snapshot that lacked b let the next new
    trial run b's point). Retried (`--retry-errored`), Ray runs b on from its checkpoint: b's second run is
    told to b's own Optuna trial, or, where the first driver already finished b (Optuna holds it as FAIL, or
    its FAIL could not be told: RUNNING), to a fresh trial of b's point with b's earlier epochs (before,
    those results were dropped; and a RUNNING one was adopted by the next new trial, which ran b again)."""
    import optuna

    searcher, url = searchers(tmp_path)
    in_snapshot = snapshot != "ray-ahead"
    first = searcher()
    configs = {"a": first.suggest("a")}
    if not in_snapshot:
        first.save_to_dir(str(tmp_path), "s")
    configs["b"] = first.suggest("b")
    first.on_trial_result("b", {METRIC: 0.5, "training_iteration": 1})
    if in_snapshot:
        with monkeypatch.context() as patch:
            if snapshot == "tell-failed":
                patch.setattr(
                    optuna.study.Study, "tell", lambda *a, **k: (_ for _ in ()).throw(OSError("lost"))
                )
            first.on_trial_complete("b", {METRIC: 0.5, "training_iteration": 1}, error=True)
        first.save_to_dir(str(tmp_path), "s")
    ray_experiment_state(tmp_path, configs, {"b": {METRIC: 0.5, "training_iteration": 1}}, status="ERROR")

    from tune.search import StudySearcher

    monkeypatch.setattr(StudySearcher, "retry_errored", retry)
    restored = searcher()
    restored.restore_from_dir(str(tmp_path))
    assert restored.suggest("c") != configs["b"]
    for trial_id in ["a", "c", "b"] if retry else ["a", "c"]:
        restored.on_trial_result(trial_id, {METRIC: 0.6, "training_iteration": 2})
        restored.on_trial_complete(trial_id, {METRIC: 0.6, "training_iteration": 2})
    trials = optuna_trials(url, "s-1")
    states = [t.state.name for t in trials]
    if not retry:
        assert states == ["COMPLETE", "FAIL", "COMPLETE"] and trials[1].params == configs["b"]
        return
    told = snapshot == "told"  # b's own trial is FAIL: a fresh one, added at the restore, before c
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"] if told else ["COMPLETE"] * 3
    b = trials[2] if told else trials[1]
    assert b.params == configs["b"] and b.value == 0.6 and b.intermediate_values == {1: 0.5, 2: 0.6}


def test_searcher_keeps_the_concurrency_limit_across_a_restore(tmp_path):
    """At most max_concurrent live trials: a new trial waits (None) until one completes, and a trial that
    Ray restored but the snapshot lacked counts as live (Ray's ConcurrencyLimiter, which the searcher
    replaces, would neither count it nor pass its completion on)."""
    searcher, url = searchers(tmp_path, max_concurrent=2)

    first = searcher()
    configs = {"a": first.suggest("a")}
    first.save_to_dir(str(tmp_path), "s")
    configs["b"] = first.suggest("b")
    assert first.suggest("c") is None  # two live
    ray_experiment_state(tmp_path, configs)  # Ray restores a and b; the snapshot knows a only

    restored = searcher()
    restored.restore_from_dir(str(tmp_path))
    assert restored.suggest("c") is None  # b is live, though the snapshot lacked it
    restored.on_trial_complete("b", {METRIC: 0.6, "training_iteration": 2})
    assert restored.suggest("c") not in (None, configs["a"], configs["b"])
    assert restored.suggest("d") is None
    assert [t.state.name for t in optuna_trials(url, "s-1")] == ["RUNNING", "COMPLETE", "RUNNING"]

    # the searcher ahead: its snapshot holds 'e' live, Optuna was told e's end after it, Ray lost e
    later = searcher()
    later.restore_from_dir(str(tmp_path))
    later.on_trial_complete("b", {METRIC: 0.6, "training_iteration": 2})
    configs["e"] = later.suggest("e")
    later.save_to_dir(str(tmp_path), "s")
    later.on_trial_complete("e", {METRIC: 0.7, "training_iteration": 2})
    del configs["e"]
    ray_experiment_state(tmp_path, configs, {"b": {METRIC: 0.6, "training_iteration": 2}})
    last = searcher()
    last.restore_from_dir(str(tmp_path))
    assert last.suggest("f") is not None  # only a is live: e ended, though the snapshot holds it live


def test_search_module_uses_no_private_attribute_of_ray_or_optuna():
    """tune/search.py may touch its own private attributes (self._...) only: a Ray or Optuna upgrade that
    renames theirs cannot break it silently."""
    tree = ast.parse((REPO / "tune" / "search.py").read_text())
    foreign = [
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert foreign == []
    from ray.tune.search import Searcher

    from tune.search import StudySearcher

    overridden = {"suggest", "on_trial_result", "on_trial_complete", "save", "restore", "restore_from_dir"}
    assert overridden <= {name for name in vars(Searcher) if not name.startswith("_")}
    assert overridden <= set(vars(StudySearcher))
