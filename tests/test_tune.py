"""tune/: a real small study on a local Ray, its status, export, TensorBoard files and failing trial, a
driver killed and resumed, and final runs over seeds (the study files themselves: test_study_files.py).

The Ray tests share one Ray session and one small study (MNIST subset, 4 trials, 2 at a time, ASHA,
OptunaSearch on SQLite).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

from fixtures_study import minimal, optuna_trials  # noqa: E402

from dmvae.cli import main  # noqa: E402
from dmvae.config import load_config  # noqa: E402
from dmvae.data import default_root  # noqa: E402
from tune.study import REPO  # noqa: E402

DATA_ROOT = str(default_root().resolve())
GAUSSIAN = "gaussian"
DIVERGING = {"objective.recon_weight.label": 1.0e39}  # float32 overflow: the loss is NaN in epoch 1


# --- a real small study on a local Ray (the ray_session fixture is in conftest.py) ------------------------
@pytest.fixture(scope="session")
def small_study(ray_session, tmp_path_factory):
    """4 trials, 2 at a time, ASHA, Optuna on SQLite; trial 1 = paper defaults, trial 2 diverges (NaN)."""
    root = tmp_path_factory.mktemp("tune")
    study = minimal(
        name="small",
        set={"data.train_size": 2000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT,
             "eval.coherence": False},  # its final run would train the full coherence classifier
        space={
            "train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
            "objective.recon_weight.label": {"type": "loguniform", "low": 5, "high": 500},
            "model.shared": {"type": "categorical", "choices": ["categorical", "gaussian"]},
            "model.shared_dim": {"type": "int", "low": 4, "high": 9, "condition": {"model.shared": GAUSSIAN}},
        },
        points_to_evaluate=["paper_defaults", DIVERGING],
        num_samples=4, max_epochs=3, grace_period=1, reduction_factor=2, max_concurrent=2, seed=0,
    )  # fmt: skip
    path = root / "small.yaml"
    path.write_text(yaml.safe_dump(study))
    handler = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings():  # the diverging point lies outside the space on purpose: Optuna says so
        warnings.filterwarnings("ignore", "Fixed parameter objective.recon_weight.label", UserWarning)
        code = main(["tune", "run", str(path), "--name", "exp", "--storage-path", str(root / "runs")])
    assert code == 0
    assert signal.getsignal(signal.SIGINT) is handler  # Ray Tune's own handler is gone once the study ended
    return root / "runs" / "exp"


def _optuna_trials(folder: Path):
    from tune.experiment import open_experiment

    experiment = open_experiment(folder)
    assert experiment.optuna_storage == f"sqlite:///{folder / 'optuna.db'}"
    return optuna_trials(experiment.optuna_storage, experiment.optuna_study)


def test_small_study_finishes_with_every_trial_in_optuna(small_study):
    from tune.experiment import open_experiment
    from tune.results import trial_rows

    rows = trial_rows(open_experiment(small_study))
    assert len(rows) == 4
    assert {row.state for row in rows} <= {"TERMINATED", "STOPPED", "ERROR"}
    assert [row.number for row in rows] == [1, 2, 3, 4]
    assert rows[1].state == "ERROR" and rows[1].params.items() >= DIVERGING.items()  # the NaN trial errors
    assert sum(row.state != "ERROR" for row in rows) >= 3  # ... and the study went on
    assert all(1 <= row.epochs <= 3 for row in rows if row.state != "ERROR")
    trials = _optuna_trials(small_study)
    assert len(trials) == 4
    assert trials[0].params == {
        "train.lr": 0.001,
        "objective.recon_weight.label": 50.0,
        "model.shared": "categorical",
    }
    assert trials[1].state.name == "FAIL"
    for row, trial in zip(rows, trials, strict=True):  # what Optuna was told is what happened
        if row.state != "ERROR":
            assert trial.state.name == ("COMPLETE" if row.epochs == 3 else "PRUNED"), (row, trial)
            assert trial.last_step == row.epochs
    assert (small_study / "study.yaml").is_file()


def test_status_table(small_study, capsys):
    assert main(["tune", "status", str(small_study)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["#", "trial", "state", "epochs", "val/best_accuracy"]
    assert "recon_weight.label" in out[0] and "ERROR" in out[2]
    assert out[-1].startswith("4 trials (")


def test_status_shows_a_trial_running_when_the_state_was_saved_as_running(small_study, tmp_path, capsys):
    """Ray saves a live trial as RUNNING and its reader loads it as PENDING (to restart it on a restore)."""
    import json
    import shutil

    folder = tmp_path / "exp"
    shutil.copytree(small_study, folder)
    (state_file,) = folder.glob("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    trial, metadata = state["trial_data"][0]
    trial = json.loads(trial)
    assert trial["status"] == "TERMINATED"
    state["trial_data"][0] = [json.dumps(trial | {"status": "RUNNING"}), metadata]  # as saved mid-study
    state_file.write_text(json.dumps(state))
    assert main(["tune", "status", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    (row,) = [line.split() for line in out if line.split()[1:2] == [trial["trial_id"]]]
    assert row[2] == "RUNNING" and int(row[3]) >= 1
    assert "1 running" in out[-2] and out[-1].startswith("running: as last saved;")


def test_export_is_accepted_by_dmvae_train(small_study, tmp_path, capsys):
    from tune.experiment import open_experiment
    from tune.results import ranked, trial_rows

    out = tmp_path / "best.yaml"
    assert main(["tune", "export", str(small_study), "--out", str(out), "--top-k", "2"]) == 0
    assert out.is_file() and (tmp_path / "best-2.yaml").is_file()
    experiment = open_experiment(small_study)
    best = ranked(experiment, trial_rows(experiment))[0]
    assert best.state != "ERROR"
    config = load_config(out)
    assert config == experiment.study.run_config(best.params)
    assert config.train.epochs == 3 and config.eval.figures  # the base's values, not the search's
    run = tmp_path / "run"
    assert main(["train", "--config", str(out), "--set", "train.epochs=1", "--out", str(run)]) == 0
    assert (run / "final.json").is_file()


def test_tensorboard_holds_the_validation_curve(small_study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(small_study.glob("*/events.out.tfevents.*"))
    assert len(files) >= 3
    curves = []
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        if "ray/tune/val/best_accuracy" in events.Tags()["scalars"]:
            curves.append([event.value for event in events.Scalars("ray/tune/val/accuracy")])
            assert "ray/tune/train/paired/recon_label" in events.Tags()["scalars"]
    assert len(curves) >= 3 and all(0 <= value <= 1 for curve in curves for value in curve)


def test_tensorboard_holds_hparams_and_image_grids(small_study):
    """Per trial folder (TensorBoard merges its event files): the hparams of the trial, and a
    cross-synthesis grid at the trial's last epoch, ASHA-stopped trials included."""
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    from tune.experiment import open_experiment
    from tune.results import trial_rows

    rows = {row.trial_id: row for row in trial_rows(open_experiment(small_study))}
    checked = 0
    for folder in sorted(path for path in small_study.iterdir() if path.is_dir()):
        row = next((row for trial_id, row in rows.items() if trial_id in folder.name), None)
        if row is None or row.state == "ERROR":
            continue
        events = EventAccumulator(str(folder), size_guidance={IMAGES: 0})
        events.Reload()
        assert "cross_synthesis/prior" in events.Tags()["images"]
        images = events.Images("cross_synthesis/prior")
        assert images[-1].step == row.epochs and images[-1].width > images[-1].height > 0
        hparams = events.PluginTagToContent("hparams")
        assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
        from tensorboard.plugins.hparams import plugin_data_pb2

        start = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
        values = start.session_start_info.hparams
        assert set(values) == set(row.params)
        assert values["train.lr"].number_value == pytest.approx(row.params["train.lr"])
        checked += 1
    assert checked >= 3


def test_cli_errors_are_one_line(small_study, tmp_path, capsys):
    assert main(["tune", "status", str(tmp_path)]) == 2
    assert "not a dmvae tune experiment folder" in capsys.readouterr().err
    path = tmp_path / "again.yaml"
    path.write_text((small_study / "study.yaml").read_text())
    code = main(
        ["tune", "run", str(path), "--name", small_study.name, "--storage-path", str(small_study.parent)]
    )
    assert code == 2
    assert "already exists" in capsys.readouterr().err


# --- a killed driver, then `dmvae tune resume` ---------------------------------------------------------
def _optuna_states(folder: Path) -> list[str]:
    """The trial states in the study's SQLite file, read-only: opening it through Optuna would create its
    tables, racing the driver that is creating them."""
    import sqlite3

    if not (folder / "optuna.db").is_file():
        return []
    try:
        with sqlite3.connect(f"file:{folder / 'optuna.db'}?mode=ro", uri=True) as connection:
            return [state for (state,) in connection.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.Error:  # the tables are not created yet, or the database is mid-write
        return []


def test_resume_after_killed_driver(ray_session, tmp_path):
    """A driver killed with SIGKILL mid-study; resume finishes it and Optuna holds each trial once."""
    import signal
    import time

    import ray

    study = minimal(
        name="killed",
        set={"data.train_size": 4000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
        space={"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}},
        num_samples=4, max_epochs=5, grace_period=5, max_concurrent=2, seed=1,
    )  # fmt: skip
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(study))
    folder = tmp_path / "runs" / "exp"
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "dmvae.cli", "tune", "run", str(path), "--name", "exp"]
    command += ["--storage-path", str(folder.parent), "--address", address]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=(tmp_path / "driver.log").open("w"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 180
        while "COMPLETE" not in _optuna_states(folder):
            log_tail = (tmp_path / "driver.log").read_text()[-3000:]
            assert driver.poll() is None, f"the driver ended before it could be killed:\n{log_tail}"
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.25)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    states = _optuna_states(folder)
    assert 1 <= states.count("COMPLETE") < 4, states  # it really was killed mid-study

    assert main(["tune", "resume", str(folder)]) == 0
    from tune.experiment import open_experiment
    from tune.results import trial_rows

    rows = trial_rows(open_experiment(folder))
    assert [row.state for row in rows] == ["TERMINATED"] * 4
    assert all(row.epochs == 5 for row in rows)
    trials = _optuna_trials(folder)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert sorted(t.params["train.lr"] for t in trials) == sorted(row.params["train.lr"] for row in rows)


def test_resume_with_retry_errored_tells_the_second_run(ray_session, tmp_path):
    """A study of a diverging trial (NaN in epoch 1) and a sound one. A plain resume runs nothing;
    `--retry-errored` runs the errored trial again (Ray keeps its trial id; it diverges again). Optuna holds
    that second run as a fresh FAIL trial of the same point beside the first (before, Ray's second report of
    a trial already told was dropped). The retry runs in a copy of the experiment folder: it writes to the
    copy's optuna.db, not to the one the searcher's snapshot and experiment.yaml name."""
    import shutil

    from tune.experiment import open_experiment
    from tune.results import trial_rows

    study = minimal(
        name="retried",
        set={"data.train_size": 1000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT,
             "eval.coherence": False},
        space={"objective.recon_weight.label": {"type": "loguniform", "low": 5, "high": 500}},
        points_to_evaluate=[DIVERGING, {"objective.recon_weight.label": 50}],
        num_samples=2, max_epochs=1, grace_period=1, max_concurrent=1, seed=0,
    )  # fmt: skip
    path = tmp_path / "retried.yaml"
    path.write_text(yaml.safe_dump(study))
    folder = tmp_path / "runs" / "exp"
    with warnings.catch_warnings():  # the diverging point lies outside the space on purpose
        warnings.filterwarnings("ignore", "Fixed parameter objective.recon_weight.label", UserWarning)
        assert main(["tune", "run", str(path), "--name", "exp", "--storage-path", str(folder.parent)]) == 0
        before = [(t.state.name, t.params) for t in _optuna_trials(folder)]
        assert [state for state, _ in before] == ["FAIL", "COMPLETE"]

        assert main(["tune", "resume", str(folder)]) == 0
        assert [(t.state.name, t.params) for t in _optuna_trials(folder)] == before
        copy = shutil.copytree(folder, tmp_path / "moved" / "exp")
        assert main(["tune", "resume", str(copy), "--retry-errored"]) == 0
    trials = [(t.state.name, t.params) for t in _optuna_trials(copy)]
    assert trials == [*before, ("FAIL", before[0][1])]
    assert [(t.state.name, t.params) for t in _optuna_trials(folder)] == before
    assert [row.state for row in trial_rows(open_experiment(copy))] == ["ERROR", "TERMINATED"]


# --- dmvae tune final: final runs over seeds as parallel Ray tasks -------------------------------------
def test_final_runs_over_seeds(ray_session, tmp_path, capsys):
    best = tmp_path / "best.yaml"
    overrides = ["data.train_size=1000", "train.epochs=1", "eval.coherence=false"]  # no full classifier
    config = load_config(REPO / "configs" / "mnist_dmvae.yaml", overrides)
    config.data.root = DATA_ROOT
    config.save(best)
    assert main(["tune", "final", str(best), "--seeds", "0", "1", "--set", "data.paired_fraction=0.1"]) == 0
    out = tmp_path / "best-final"  # the default: next to best.yaml
    assert "test_accuracy" in capsys.readouterr().out
    finals = []
    for seed in (0, 1):
        run = out / f"seed-{seed}"
        for name in ("config.yaml", "metrics.jsonl", "final.json", "checkpoints/last.pt"):
            assert (run / name).is_file(), name
        assert list((run / "figures").glob("*.png"))
        saved = load_config(run / "config.yaml")
        assert (saved.seed, saved.data.paired_fraction, saved.train.epochs) == (seed, 0.1, 1)
        finals.append(yaml.safe_load((run / "final.json").read_text()))
    summary = yaml.safe_load((out / "final_runs.json").read_text())
    assert [run["seed"] for run in summary["runs"]] == [0, 1] and summary["failed"] == []
    for key in ("val_accuracy", "test_accuracy"):
        values = [final[key] for final in finals]
        assert [run[key] for run in summary["runs"]] == values and all(0 <= v <= 1 for v in values)
        stat = summary["summary"][key]
        assert stat["n"] == 2 and abs(stat["mean"] - sum(values) / 2) < 1e-9
        assert abs(stat["std"] - abs(values[0] - values[1]) / 2**0.5) < 1e-9
    # A rerun trains nothing again; a different config cannot reuse the folder.
    assert main(["tune", "final", str(best), "--seeds", "0", "1", "--set", "data.paired_fraction=0.1"]) == 0
    assert capsys.readouterr().out.count("already done") == 2
    assert main(["tune", "final", str(best), "--seeds", "0", "--out", str(out)]) == 2
    assert "another config" in capsys.readouterr().err


def test_final_progress_says_how_many_runs_train_at_once(ray_session):
    from tune.final import at_once

    assert at_once(1, 0) == "2 at a time (--cpus 1 each, this Ray has 2 CPUs)"
    assert at_once(2, 0).startswith("1 at a time")
    assert at_once(3, 0) == "none can start yet: each needs --cpus 3, this Ray has 2 CPUs"
    assert at_once(1, 1) == "none can start yet: each needs --cpus 1 --gpus 1, this Ray has 2 CPUs and 0 GPUs"


def test_a_final_folder_from_before_a_config_option_existed_is_the_same_config():
    """A final folder records the config it trains; one written before an option existed lacks its key
    and ran as the option's default does, so adding seeds to it later must not call it another config."""
    from tune.final import same_request

    base = load_config(REPO / "configs" / "fmnist_dmvae.yaml")
    older = base.to_dict() | {"seed": None}
    del older["train"]["augment_flip"], older["model"]["batch_norm"]
    assert same_request(older, base)
    assert not same_request(older, base.with_overrides(["train.augment_flip=true"]))
    assert not same_request(older, base.with_overrides(["train.lr=0.5"]))
    assert not same_request(older | {"train": {"lr": -1}}, base)  # no longer valid: not this config
    assert not same_request(None, base)
