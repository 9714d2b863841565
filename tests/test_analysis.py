"""analysis/: the paper's numbers, the comparison maths on known inputs, loading a real small experiment and
real run folders, and `dmvae report` end to end with real PNG figures.

The real inputs are small: a 2-trial, 1-epoch study on 1000 MNIST images on a local Ray (started here for
this module, and shut down after it unless another module had started it), and three 1-epoch runs on 500
images (DMVAE seeds 0 and 1, MVAE seed 0) with their figures.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

from analysis.compare import compare, to_markdown  # noqa: E402
from analysis.load import discarded_epochs  # noqa: E402
from analysis.markdown import markdown_table  # noqa: E402
from analysis.paper import paper_table, paper_value  # noqa: E402
from dmvae.cli import main  # noqa: E402
from dmvae.data import default_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = str(default_root().resolve())
COMMAND = "dmvae train --config configs/mnist_dmvae.yaml --set train.epochs=1 --out runs/dmvae-s0"


def _need_mnist() -> None:
    if not (default_root() / "mnist" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST not found under {default_root()} (dmvae data fetch mnist)")


# --- the paper's numbers -----------------------------------------------------------------------------------
def test_paper_tables_are_data_with_sources():
    table = paper_table()
    assert set(table["table"]) == {"1", "2a", "7", "8"}
    assert table["source"].str.len().min() > 40
    assert {"dataset", "model", "label", "paired_fraction", "metric", "value", "table"} <= set(table.columns)

    def value(**where):
        rows = table
        for key, wanted in where.items():
            rows = (
                rows[(rows[key] - wanted).abs() < 1e-12]
                if key == "paired_fraction"
                else rows[rows[key] == wanted]
            )
        assert len(rows) == 1, where
        return float(rows["value"].iloc[0])

    assert value(table="1", dataset="mnist", model="DMVAE", paired_fraction=0.002) == 0.917
    assert value(table="1", dataset="mnist", model="MVAE", paired_fraction=0.001) == 0.441
    assert value(table="1", dataset="fmnist", model="DMVAE", paired_fraction=1.0) == 0.94
    assert value(table="7", dataset="fmnist", model="DMVAE", paired_fraction=1.0) == 0.941
    assert value(table="8", dataset="mnist", model="DMVAE_cont", paired_fraction=0.002) == 0.695
    celeba = table[(table["table"] == "2a") & (table["model"] == "DMVAE") & (table["metric"] == "f1")]
    assert list(celeba["value"]) == [0.522, 0.627, 0.687, 0.704]
    assert celeba["paired_fraction"].isna().all()  # the OCR lost the header
    assert "MVAE" not in set(table[table["table"] == "7"]["model"])  # unreadable rows are left out
    assert (
        len(table[(table["table"] == "1") & (table["dataset"] == "fmnist") & (table["model"] == "AE")]) == 0
    )


def test_paper_value_prefers_table_1_then_table_8():
    assert paper_value("mnist", "DMVAE_disc", 0.002, "accuracy") == (0.917, "1")
    assert paper_value("mnist", "MVAE", 0.002, "accuracy") == (0.579, "1")
    assert paper_value("mnist", "DMVAE_cont", 0.002, "accuracy") == (0.695, "8")
    assert paper_value("mnist", "DMVAE_cont", 0.01, "accuracy") is None
    assert paper_value("celeba", "DMVAE_disc", 0.01, "f1") is None
    # a Table 8 reproduction compares with Table 8 first, which prints MVAE at 0.2 % MNIST otherwise
    assert paper_value("mnist", "MVAE", 0.002, "accuracy", prefer="8") == (0.625, "8")
    assert paper_value("mnist", "DMVAE_disc", 0.05, "accuracy", prefer="8") == (0.957, "1")


# --- the comparison maths ----------------------------------------------------------------------------------
def _runs(rows: list[tuple]) -> pd.DataFrame:
    columns = ["dataset", "paired_fraction", "model", "seed", "test_accuracy", "test_f1", "epochs", "seconds"]
    return pd.DataFrame(rows, columns=columns)


def test_compare_on_known_inputs():
    nan = math.nan
    runs = _runs([
        ("mnist", 0.002, "DMVAE_disc", 0, 0.90, nan, 10, 100.0),
        ("mnist", 0.002, "DMVAE_disc", 1, 0.92, nan, 20, 200.0),
        ("mnist", 0.002, "DMVAE_disc", 2, 0.94, nan, 30, 300.0),
        ("mnist", 0.002, "MVAE", 0, 0.50, nan, 5, 50.0),
        ("mnist", 0.002, "DMVAE_cont", 0, 0.70, nan, 5, 60.0),
        ("mnist", 0.002, "DMVAE_cont", 1, 0.80, nan, 7, 80.0),
        ("celeba", 0.01, "DMVAE_disc", 0, 0.85, 0.50, 3, 30.0),
        ("celeba", 0.01, "DMVAE_disc", 1, 0.87, 0.60, 3, 30.0),
    ])  # fmt: skip
    table = compare(runs)
    assert list(zip(table["dataset"], table["model"], table["metric"], strict=True)) == [
        ("celeba", "DMVAE_disc", "accuracy"),
        ("celeba", "DMVAE_disc", "f1"),
        ("mnist", "DMVAE_disc", "accuracy"),
        ("mnist", "DMVAE_cont", "accuracy"),
        ("mnist", "MVAE", "accuracy"),
    ]
    disc = table.iloc[2]
    assert disc["n"] == 3 and disc["seeds"] == "0 1 2"
    assert disc["mean"] == pytest.approx(0.92, abs=1e-12)
    assert disc["std"] == pytest.approx(0.02, abs=1e-12)  # ddof=1
    assert disc["paper"] == 0.917 and disc["paper_table"] == "1"
    assert disc["diff"] == pytest.approx(0.003, abs=1e-12)
    assert disc["epochs"] == 20 and disc["seconds"] == 200
    cont = table.iloc[3]
    assert cont["mean"] == pytest.approx(0.75) and cont["std"] == pytest.approx(math.sqrt(0.005))
    assert cont["paper"] == 0.695 and cont["paper_table"] == "8" and cont["diff"] == pytest.approx(0.055)
    mvae = table.iloc[4]
    assert mvae["n"] == 1 and math.isnan(mvae["std"])  # one seed: no spread
    assert mvae["diff"] == pytest.approx(0.5 - 0.579)
    f1 = table.iloc[1]
    assert f1["mean"] == pytest.approx(0.55) and f1["std"] == pytest.approx(math.sqrt(0.005))
    assert math.isnan(f1["paper"]) and math.isnan(f1["diff"])  # Table 2a's fractions are unknown

    text = to_markdown(table).splitlines()
    assert text[0].startswith("| dataset | paired | model |") and len(text) == 2 + len(table)
    assert (
        "| mnist | 0.2 % | DMVAE_disc | accuracy | 0 1 2 | 0.920 | 0.020 | 0.917 | +0.003 | 1 | 20.0 |"
        in text[4]
    )
    assert "| mnist | 0.2 % | MVAE | accuracy | 0 | 0.500 | - | 0.579 | -0.079 |" in text[6]
    # runs with train.restarts: epochs show the kept model's + the discarded initialisations'
    restarted = compare(runs.assign(discarded_epochs=[10, 10, 10, 0, 0, 0, 0, 0]))
    assert restarted.iloc[2]["discarded_epochs"] == 10 and restarted.iloc[4]["discarded_epochs"] == 0
    text = to_markdown(restarted).splitlines()
    assert "| +0.003 | 1 | 20.0 + 10.0 | 200 |" in text[4] and "| -0.079 | 1 | 5.0 | 50.0 |" in text[6]


def test_discarded_epochs_count_the_initialisations_train_restarts_did_not_keep():
    def count(tried: int, restart_epochs: int, epochs: int) -> int:
        final = {"restart_val_accuracy": [0.5] * tried} if tried else {}
        return discarded_epochs(final, {"train": {"restart_epochs": restart_epochs, "epochs": epochs}})

    assert count(0, 5, 50) == 0 and count(1, 5, 50) == 0  # no restarts; one initialisation, kept
    assert count(3, 5, 50) == 10  # table1_mnist's finals: 50 epochs + 10 discarded
    assert count(4, 1, 17) == 3  # table1_fmnist_restarts's: 17 + 3
    assert count(4, 5, 2) == 6  # a restart never trains more than the run's epochs


def test_compare_of_nothing_is_empty():
    assert compare(pd.DataFrame()).empty


def test_markdown_table_cells():
    frame = pd.DataFrame({"a": ["x|y", None], "b": [1.23456, math.nan]})
    lines = markdown_table(frame, digits=2).splitlines()
    assert lines == ["| a | b |", "| --- | ---: |", "| x\\|y | 1.23 |", "| - | - |"]


# --- real inputs -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    _need_mnist()
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_experiment(ray_local, tmp_path_factory) -> Path:
    """A real 2-trial, 1-epoch study (the first trial: the base config's lr 1e-3) on 1000 MNIST images."""
    root = tmp_path_factory.mktemp("analysis-tune")
    study = {
        "name": "tiny",
        "base": "configs/mnist_dmvae.yaml",
        "set": {"data.train_size": 1000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
        "space": {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}},
        "num_samples": 2, "max_epochs": 1, "grace_period": 1, "max_concurrent": 2, "seed": 0,
    }  # fmt: skip
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["tune", "run", str(path), "--name", "exp", "--storage-path", str(root / "runs")]) == 0
    return root / "runs" / "exp"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> Path:
    """Three real 1-epoch run folders with figures: DMVAE seeds 0 and 1, MVAE seed 0; and a commands.txt."""
    _need_mnist()
    from dmvae.config import load_config
    from dmvae.training import Trainer

    root = tmp_path_factory.mktemp("analysis-runs")
    common = ["data.train_size=500", "data.paired_fraction=0.01", "train.epochs=1", f"data.root={DATA_ROOT}"]
    common.append("eval.coherence=false")  # the full coherence classifier takes minutes to train
    settings = (("dmvae-s0", "mnist_dmvae", 0), ("dmvae-s1", "mnist_dmvae", 1), ("mvae-s0", "mnist_mvae", 0))
    for name, config, seed in settings:
        run = load_config(REPO / "configs" / f"{config}.yaml", [*common, f"seed={seed}", "device=cpu"])
        Trainer(run, out_dir=root / name, progress=None).fit()
    (root / "commands.txt").write_text(COMMAND + "\n")
    return root


def test_load_runs_reads_real_run_folders(tiny_runs):
    from analysis.load import load_history, load_runs

    runs = load_runs(tiny_runs).sort_values("name").reset_index(drop=True)
    assert list(runs["name"]) == ["dmvae-s0", "dmvae-s1", "mvae-s0"]
    assert list(runs["model"]) == ["DMVAE_disc", "DMVAE_disc", "MVAE"]
    assert list(runs["seed"]) == [0, 1, 0]
    assert (runs["config.data.paired_fraction"] == 0.01).all() and (runs["paired_fraction"] == 0.01).all()
    assert (runs["config.data.train_size"] == 500).all() and (runs["epochs"] == 1).all()
    assert runs["config.model.private_dim.image"].iloc[0] == 10
    assert runs["test_accuracy"].between(0, 1).all() and (runs["seconds"] > 0).all()
    assert runs["figures"].notna().all()
    history = load_history(tiny_runs / "dmvae-s0")
    assert list(history["epoch"]) == [1] and "val/accuracy" in history
    table = compare(runs)
    assert list(table["n"]) == [2, 1] and list(table["paper"]) == [pytest.approx(0.946), pytest.approx(0.897)]


def test_load_experiment_reads_a_real_study(tiny_experiment):
    from analysis.load import experiment_info, load_experiment, load_history

    trials = load_experiment(tiny_experiment)
    assert list(trials["trial_number"]) == [1, 2]
    assert set(trials["state"]) == {"TERMINATED"} and (trials["epochs"] == 1).all()
    assert trials["metric_last"].between(0, 1).all()
    assert (trials["metric_best"] == trials["metric_last"]).all()
    assert trials["param.train.lr"].iloc[0] == pytest.approx(1e-3)  # the paper-defaults trial
    assert set(trials["model"]) == {"DMVAE_disc"} and set(trials["paired_fraction"]) == {0.05}
    history = load_history(tiny_experiment)
    assert history["trial_id"].nunique() == 2 and "val/accuracy" in history
    info = experiment_info(tiny_experiment)
    assert info["study"] == "tiny" and info["wall_seconds"] > 0 and info["space"] == ["train.lr"]


@pytest.fixture(scope="module")
def report_dir(tiny_experiment, tiny_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis-report") / "report"
    assert main(["report", str(tiny_experiment), str(tiny_runs), "--out", str(out)]) == 0
    return out


def test_report_end_to_end(report_dir, tiny_runs):
    text = (report_dir / "report.md").read_text()
    assert "| dataset | paired | model | metric (test) | seeds |" in text
    assert "| mnist | 1 % | DMVAE_disc | accuracy | 0 1 |" in text and "| mnist | 1 % | MVAE |" in text
    assert "Table 1" in text and "0.917" in text and "## Search: exp" in text
    assert COMMAND in text and "dmvae tune run" in text and "dmvae report" in text
    assert "torch" in text and "cores" in text
    assert (
        "| what | time |" in text and "| search exp (first trial start to last end) |" in text
    )  # units in cells
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(links) >= 4 and all((report_dir / link).is_file() for link in links)
    assert any("importance" in link for link in links) and any("search" in link for link in links)
    assert any("embedding" in link for link in links) and any("vs-paired" in link for link in links)
    comparison = pd.read_csv(report_dir / "comparison.csv")
    assert len(comparison) == 2 and set(comparison["model"]) == {"DMVAE_disc", "MVAE"}


def test_report_figures_are_real_images(report_dir):
    import numpy as np
    from PIL import Image

    pngs = sorted((report_dir / "figures").glob("*.png"))
    assert len(pngs) >= 7  # accuracy, search, importance, 2 x (prior, style or traversal, embedding)
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0
            pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 0, f"{png.name} is a constant image"


def test_importance_is_skipped_with_too_few_trials(tmp_path):
    import optuna

    from analysis.plots import importance

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    study = optuna.create_study(study_name="one", storage=storage, direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    path, note = importance(storage, "one", tmp_path / "i.png")
    assert path is None and "at least 2 finished or stopped trials" in note
    distribution = optuna.distributions.FloatDistribution(0, 1)
    study.add_trial(
        optuna.trial.create_trial(params={"x": 0.123}, distributions={"x": distribution}, value=1.0)
    )
    assert importance(storage, "one", tmp_path / "i.png")[0] is not None  # x took two values


def test_importance_ranks_stopped_trials_at_the_epoch_all_of_them_reached():
    """ASHA's studies leave one COMPLETE trial, where Optuna's own importance can only be equal: the stopped
    ones count with their value at the common rung, so the parameter that sets it ranks first."""
    import numpy as np
    import optuna

    from tune.results import param_importances

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    distributions = {"lr": optuna.distributions.FloatDistribution(0, 1),
                     "noise": optuna.distributions.FloatDistribution(0, 1)}  # fmt: skip
    generator = np.random.default_rng(0)
    for number in range(32):
        lr, noise = generator.uniform(size=2)
        complete = number == 0
        epochs = 15 if complete else int(generator.choice([3, 6]))
        curve = {epoch: lr * epoch / 15 + 0.001 * noise for epoch in range(1, epochs + 1)}
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr": lr, "noise": noise}, distributions=distributions, value=curve[epochs],
                intermediate_values=curve, state=optuna.trial.TrialState.COMPLETE if complete else
                optuna.trial.TrialState.PRUNED,
            )
        )  # fmt: skip
    with pytest.warns(UserWarning, match="too small|will be equal"):
        assert len(set(optuna.importance.get_param_importances(study).values())) == 1  # Optuna alone
    scores, note = param_importances(study)
    assert scores["lr"] > 2 * scores["noise"] and "at epoch 3, which all 32 ranked trials reached" in note


# --- user mistakes and imports -----------------------------------------------------------------------------
def test_report_user_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_report_cli_imports_nothing_heavy():
    code = (
        "import sys, analysis.cli, dmvae.cli; dmvae.cli.build_parser(); "
        "print(sorted({'ray', 'optuna', 'matplotlib', 'pandas'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
