"""Cluster-grade storage, for real: the Optuna study on a PostgreSQL server and results on an S3 server.

Both servers are started by the tests (tests/services.py): a throwaway PostgreSQL cluster (initdb + pg_ctl
in a temporary folder) and moto's S3 server, on 127.0.0.1. The searcher's resume logic is also checked on
its own (no Ray), on SQLite and on Optuna's journal file.
"""

from __future__ import annotations

import ast
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from services import Postgres, S3Server

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

from dmvae.cli import main  # noqa: E402
from dmvae.config import load_config  # noqa: E402
from dmvae.data import default_root  # noqa: E402
from tune.study import REPO, study_from_dict  # noqa: E402

DATA_ROOT = str(default_root().resolve())
METRIC = "val/best_accuracy"


def small(name: str, **changes) -> dict:
    values = {
        "name": name,
        "base": "configs/mnist_dmvae.yaml",
        "set": {"data.train_size": 2000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT,
                "eval.coherence": False},  # its final run would train the full coherence classifier
        "space": {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}},
        "num_samples": 4, "max_epochs": 2, "grace_period": 2, "max_concurrent": 2, "seed": 0,
    }  # fmt: skip
    return values | changes


def write(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def postgres():
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def optuna_trials(url: str, study_name: str):
    import optuna

    from tune.search import close_storage, open_storage

    storage = open_storage(url)  # polled every 0.5 s: each poll gives its connections back
    try:
        return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
    finally:
        close_storage(storage)


# --- the searcher alone: orphans adopted, late results dropped, public APIs only -------------------------
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_searcher_adopts_orphans_and_drops_late_results(tmp_path, kind):
    """A snapshot taken, two more steps, then a 'killed driver' restores the snapshot: the trial asked
    after the snapshot is adopted (not asked again) and the trial told before the kill is not told twice."""
    import optuna

    from tune.search import StudySearcher

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'o.log'}"
    study = study_from_dict({"name": "s", "base": "configs/mnist_dmvae.yaml", "space": small("s")["space"]})
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
    study = study_from_dict({"name": "s", "base": "configs/mnist_dmvae.yaml", "space": small("s")["space"]})

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
@pytest.mark.parametrize("in_snapshot", [False, True], ids=["ray-ahead", "told"])
def test_searcher_tells_an_errored_trial_as_the_resume_runs_it(tmp_path, monkeypatch, retry, in_snapshot):
    """Ray restores 'b' errored. Kept errored (a plain resume), Ray never runs it again: its Optuna trial
    is told FAIL, and no new trial adopts its point (before, a snapshot that lacked b let the next new
    trial run b's point). Retried (`--retry-errored`), Ray runs b on from its checkpoint: b's second run is
    told to b's own Optuna trial, or, where Optuna already holds that one as FAIL, to a fresh trial of b's
    point with b's earlier epochs (before, those results were dropped)."""
    searcher, url = searchers(tmp_path)

    first = searcher()
    configs = {"a": first.suggest("a")}
    if not in_snapshot:
        first.save_to_dir(str(tmp_path), "s")
    configs["b"] = first.suggest("b")
    first.on_trial_result("b", {METRIC: 0.5, "training_iteration": 1})
    if in_snapshot:
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
    assert states == ["COMPLETE"] * 3 if not in_snapshot else ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    b = trials[1] if not in_snapshot else trials[2]  # the fresh trial is added at the restore, before c
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


# --- PostgreSQL: a real server, trials running concurrently --------------------------------------------
def test_study_on_postgres_runs_trials_concurrently(ray_session, postgres, tmp_path):
    path = write(tmp_path / "pg.yaml", small("pg", storage=postgres.url))
    storage = tmp_path / "runs"
    assert main(["tune", "run", str(path), "--name", "exp", "--storage-path", str(storage)]) == 0
    folder = storage / "exp"
    meta = yaml.safe_load((folder / "experiment.yaml").read_text())
    assert meta["optuna_storage"] == postgres.url and not (folder / "optuna.db").exists()
    trials = optuna_trials(postgres.url, meta["optuna_study"])
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    overlapping = [
        (i, j)
        for i in range(4)
        for j in range(i + 1, 4)
        if spans[i][0] < spans[j][1] and spans[j][0] < spans[i][1]
    ]
    assert overlapping, f"no two trials ran at the same time: {spans}"
    from tune.experiment import open_experiment
    from tune.results import trial_rows

    rows = trial_rows(open_experiment(folder))
    assert sorted(row.params["train.lr"] for row in rows) == sorted(t.params["train.lr"] for t in trials)
    assert all(row.state == "TERMINATED" and row.epochs == 2 for row in rows)
    checkpoints = sorted(folder.glob("*/checkpoint_*"))
    assert len(checkpoints) == 4  # one per trial: the older ones are pruned once the study ends


# --- S3 for results (moto), PostgreSQL for Optuna: a killed driver, resume, status, export, final --------
def test_a_closed_storage_gives_its_connections_back_to_postgres(postgres):
    import optuna
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    from tune.search import close_storage, open_storage

    counter = sqlalchemy.create_engine(postgres.url, poolclass=NullPool)
    # the storages' connections carry their own application name: the Ray workers of earlier tests are
    # clients of the same server and may connect or disconnect meanwhile
    tagged = f"{postgres.url}{'&' if '?' in postgres.url else '?'}application_name=closed-storage-test"

    def connections() -> int:  # the server's clients that the storages below opened
        with counter.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'closed-storage-test'"
            return int(connection.execute(sqlalchemy.text(query)).scalar())

    storages = [open_storage(tagged) for _ in range(4)]
    for storage in storages:
        optuna.create_study(storage=storage, study_name="pooled", load_if_exists=True).get_trials()
    assert connections() >= 4  # each storage's pool holds a connection
    for storage in storages:
        close_storage(storage)
    # a closed connection's server process leaves pg_stat_activity a moment after the client hangs up (on a
    # loaded machine, a second or more): wait for it, but a connection still held stays counted and fails
    deadline = time.monotonic() + 15
    while connections() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connections() == 0


def test_s3_study_survives_a_killed_driver(ray_session, postgres, s3, tmp_path, capsys):
    import ray

    bucket = s3.bucket("dmvae-results")
    path = write(tmp_path / "s3.yaml", small("s3", storage=postgres.url, max_epochs=4, grace_period=4))
    uri = f"{bucket}/tune/exp"
    command = [sys.executable, "-m", "dmvae.cli", "tune", "run", str(path), "--name", "exp"]
    command += ["--storage-path", f"{bucket}/tune", "--address", ray.get_runtime_context().gcs_address]
    command += ["--storage-endpoint", s3.endpoint]
    log = tmp_path / "driver.log"
    driver = subprocess.Popen(
        command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip

    def states() -> list[str]:
        keys = s3.keys("dmvae-results", "tune/exp/experiment.yaml")
        if not keys:
            return []
        from tune import storage

        meta = yaml.safe_load(storage.read_text(f"{uri}/experiment.yaml"))
        try:
            return [t.state.name for t in optuna_trials(postgres.url, meta["optuna_study"])]
        except KeyError:  # the study is not created yet
            return []

    try:
        deadline = time.monotonic() + 240
        while "COMPLETE" not in states():
            assert driver.poll() is None, (
                f"the driver ended before it could be killed:\n{log.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert 1 <= states().count("COMPLETE") < 4, states()  # killed mid-study
    assert not (REPO / "runs" / "tune" / "exp").exists()

    assert main(["tune", "resume", uri, "--storage-endpoint", s3.endpoint]) == 0
    assert states() == ["COMPLETE"] * 4
    keys = s3.keys("dmvae-results", "tune/exp/")
    assert {"tune/exp/study.yaml", "tune/exp/experiment.yaml"} <= set(keys)
    assert sum(key.endswith("/result.json") for key in keys) == 4
    checkpoints = {key.rsplit("/", 1)[0] for key in keys if key.endswith("/trainer.pt")}
    assert len(checkpoints) == len({key.split("/checkpoint_")[0] for key in checkpoints}) == 4  # 1 a trial

    capsys.readouterr()
    assert main(["tune", "status", uri]) == 0
    assert "4 trials (4 terminated)" in capsys.readouterr().out
    best = tmp_path / "best.yaml"
    assert main(["tune", "export", uri, "--out", str(best)]) == 0
    config = load_config(best)
    assert config.train.epochs == 4

    final = f"{bucket}/final"
    assert main(["tune", "final", str(best), "--seeds", "0", "--out", final, "--set", "train.epochs=1"]) == 0
    keys = set(s3.keys("dmvae-results", "final/"))
    for name in ("final.yaml", "final_runs.json", "seed-0/final.json", "seed-0/config.yaml"):
        assert f"final/{name}" in keys, sorted(keys)
    assert "final/seed-0/checkpoints/last.pt" in keys
    assert main(["tune", "final", str(best), "--seeds", "0", "--out", final, "--set", "train.epochs=1"]) == 0
    assert "already done" in capsys.readouterr().out

    pulled = tmp_path / "pulled"
    assert main(["tune", "pull", uri, str(pulled)]) == 0
    folders = {path.parent for path in pulled.glob("*/events.out.tfevents.*")}
    assert len(folders) == 4  # TensorBoard reads the pulled copy: every trial's curve is there
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for folder in folders:
        events = EventAccumulator(str(folder))
        events.Reload()
        assert len(events.Scalars("ray/tune/val/accuracy")) >= 1

    report = tmp_path / "report"
    assert main(["report", uri, final, "--out", str(report)]) == 0  # both copied down, then reported
    assert (report / "report.md").is_file() and (report / "comparison.csv").is_file()


# --- user mistakes: one line, exit 2 -------------------------------------------------------------------
def test_cloud_storage_mistakes_are_one_line_errors(tmp_path, capsys):
    from services import free_port

    path = write(tmp_path / "s.yaml", small("s"))
    closed = f"postgresql://dmvae@127.0.0.1:{free_port()}/postgres"
    cases = [
        (["--storage-path", "s3://bucket/tune"], "cannot hold the Optuna SQLite file (no study.storage)"),
        (
            ["--storage-path", "s3://bucket/tune", "--set", f"study.storage=sqlite:///{tmp_path}/o.db"],
            "cannot hold the Optuna SQLite file (study.storage sqlite:///",
        ),
        (["--storage-path", "ftp://host/x", "--set", f"study.storage={closed}"], "must be s3://bucket"),
        (
            ["--storage-path", str(tmp_path), "--set", f"study.storage={closed}"],
            "cannot open the Optuna storage",
        ),
        (["--storage-path", "s3://bucket/tune", "--storage-endpoint", "127.0.0.1:9"], "must be an http://"),
    ]
    for extra, message in cases:
        assert main(["tune", "run", str(path), "--name", "e", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("dmvae: error: "), err
    assert not (tmp_path / "e").exists()
    assert main(["tune", "pull", str(tmp_path), str(tmp_path / "copy")]) == 2
    assert "copies from cloud storage" in capsys.readouterr().err
