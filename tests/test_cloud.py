"""Cluster-grade storage, for real: the Optuna study on a PostgreSQL server and results on an S3 server.

Both servers are started by the tests (tests/services.py): a throwaway PostgreSQL cluster (initdb + pg_ctl
in a temporary folder) and moto's S3 server, on 127.0.0.1. The searcher's resume logic on its own (no Ray):
test_searcher.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixtures_study import optuna_trials
from services import Postgres, S3Server

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

from dmvae.cli import main  # noqa: E402
from dmvae.config import load_config  # noqa: E402
from dmvae.data import default_root  # noqa: E402
from tune.study import REPO  # noqa: E402

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
    capsys.readouterr()
    assert main(["tune", "status", uri]) == 0
    status = capsys.readouterr().out
    assert "4 trials (4 terminated)" in status
    ray_trials = {f"train_trial_{line.split()[1]}_" for line in status.splitlines()[1:5]}
    keys = s3.keys("dmvae-results", "tune/exp/")
    assert {"tune/exp/study.yaml", "tune/exp/experiment.yaml"} <= set(keys)
    # Ray's 4 trials each wrote their results and keep one checkpoint. A trial of the killed driver may have
    # written its first result too before Ray stopped its actor: a folder no Ray trial owns, whose Optuna
    # trial a new Ray trial adopted (so it is counted once, in states() above).
    results = {key.split("/")[2] for key in keys if key.endswith("/result.json")}
    own = {folder for folder in results if folder.startswith(tuple(ray_trials))}
    assert len(own) == 4 and len(results) <= 4 + 2  # at most the killed driver's two live trials besides
    checkpoints = {key.rsplit("/", 1)[0] for key in keys if key.endswith("/trainer.pt")}
    assert sorted(key.split("/")[2] for key in checkpoints if key.split("/")[2] in own) == sorted(own)
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
    folders = {path.parent for path in pulled.glob("*/events.out.tfevents.*") if path.parent.name in own}
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
