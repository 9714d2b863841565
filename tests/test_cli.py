"""`dmvae` in-process: user mistakes give exit code 2 and one `dmvae: error:` line; a tiny run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dmvae.cli import main


def write_npz(path: Path, n: int = 90) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10
    images = 0.5 * rng.random((n, 1, 8, 8)).astype(np.float32)
    images[np.arange(n), 0, labels % 8] += 0.5
    np.savez(path, image=images, label=labels, paired=rng.random(n) < 0.5)
    return path


@pytest.fixture
def npz_config(tmp_path: Path) -> Path:
    """A run config (YAML) for one quick epoch on a tiny npz file."""
    data = write_npz(tmp_path / "toy.npz")
    values = {
        "device": "cpu",
        "data": {"name": "npz", "path": str(data), "kinds": {"image": "image", "label": "label"}},
        "model": {"architecture": "mlp", "hidden_dim": 16, "shared": "categorical", "shared_dim": 10,
                  "private_dim": {"image": 2}},
        "train": {"epochs": 1, "batch_size": 16},
        "eval": {"figures": False},
    }  # fmt: skip
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def run_error(capsys, argv: list[str], *needles: str) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dmvae: error:") and "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


BAD_SETTINGS = {
    "unknown_dataset": (["data.name=foo"], "data.name"),
    "paired_fraction_0": (["data.paired_fraction=0"], "paired_fraction"),
    "paired_fraction_1.5": (["data.paired_fraction=1.5"], "paired_fraction"),
    "negative_beta": (["objective.beta_shared.image=-1"], "beta_shared.image"),
    "missing_data_folder": (["data.name=mnist", "data.root=/nonexistent"], "/nonexistent"),
    "unknown_key": (["train.epoch=3"], "epoch"),
    "unknown_section": (["training.epochs=3"], "training"),
    "bad_set_syntax": (["train.epochs"], "key=value"),
    "unknown_modality": (["model.private_dim.audio=4"], "audio"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_settings_are_one_line_errors(case: str, npz_config: Path, tmp_path: Path, capsys) -> None:
    overrides, needle = BAD_SETTINGS[case]
    argv = ["train", "--config", str(npz_config), "--out", str(tmp_path / "out")]
    for override in overrides:
        argv += ["--set", override]
    run_error(capsys, argv, needle)
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_missing_config_file(tmp_path: Path, capsys) -> None:
    argv = ["train", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]
    run_error(capsys, argv, "nope.yaml")


def test_corrupt_checkpoint(npz_config: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(npz_config.read_text())
    (run / "checkpoints" / "last.pt").write_bytes(b"this is not a checkpoint" * 10)
    run_error(capsys, ["train", "--resume", "--out", str(run)], "corrupt")


def test_resume_without_checkpoint(npz_config: Path, tmp_path: Path, capsys) -> None:
    run_error(capsys, ["train", "--resume", "--config", str(npz_config), "--out", str(tmp_path)], "resume")


def test_evaluate_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys) -> None:
    run_error(capsys, ["evaluate", str(tmp_path), "--no-figures"], "not a run folder")


def test_existing_run_folder_needs_resume(npz_config: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    run_error(capsys, ["train", "--config", str(npz_config), "--out", str(run)], "--resume")


def test_train_then_evaluate_then_resume_finished_run(npz_config: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--config", str(npz_config), "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    final = json.loads(captured.out.strip().splitlines()[-1])
    assert final["epochs"] == 1 and 0 <= final["test_accuracy"] <= 1
    assert json.loads((run / "final.json").read_text()) == final
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()

    assert main(["evaluate", str(run), "--no-figures"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((run / "evaluation.json").read_text()) == result
    assert result["weights"] == "best" and result["test_accuracy"] == final["test_accuracy"]
    assert result["val_merged_classes"] == result["test_merged_classes"] == final["val_merged_classes"]
    assert not (run / "figures").exists()

    # resuming with more epochs continues from epoch 1 and keeps one metrics line per epoch
    assert main(["train", "--resume", "--out", str(run), "--set", "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and json.loads(out.strip().splitlines()[-1])["epochs"] == 2
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_data_check(tmp_path: Path, capsys) -> None:
    assert main(["data", "check", "--data-root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert set(rows) == {"name=mnist", "name=fmnist", "name=celeba"}
    assert "present=False" in rows["name=mnist"]


def test_data_check_on_the_real_data(real_data_root, capsys) -> None:
    root = real_data_root("mnist")
    assert main(["data", "check", "--data-root", str(root)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.strip().splitlines()}
    assert "verified=True" in rows["name=mnist"]
