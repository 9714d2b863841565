"""train.restarts: a run tries several initialisations and goes on from the best on validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures_training import assert_same_parameters, straight_and_resumed, tiny_config, without_timing

from dmvae.training import Trainer

# --- restarts ------------------------------------------------------------------------------------------


def scripted_validation(trainer: Trainer, monkeypatch, accuracies: list[float]) -> None:
    """Validation accuracy by call: accuracies[i] for the i-th validation of the run (later calls: 0)."""
    evaluate, calls = trainer.evaluate, []

    def scripted(split: str = "val", per_class: bool = False) -> dict:
        scores = evaluate(split, per_class)
        if split != "val":
            return scores
        calls.append(split)
        return scores | {"accuracy": accuracies[len(calls) - 1] if len(calls) <= len(accuracies) else 0.0}

    monkeypatch.setattr(trainer, "evaluate", scripted)


# three restarts of two epochs each (validation calls 1-2, 3-4, 5-6), then epochs 3 and 4
RESTART_SCRIPTS = {0: [0.6, 0.9, 0.5, 0.8, 0.7, 0.7], 2: [0.6, 0.7, 0.5, 0.8, 0.7, 0.95]}


@pytest.mark.parametrize("kept", sorted(RESTART_SCRIPTS))
def test_restarts_go_on_from_the_best_validated_initialisation(
    kept: int, synthetic_splits, monkeypatch, tmp_path: Path
) -> None:
    splits = synthetic_splits(n_train=96, paired_fraction=0.5)
    plain = Trainer(tiny_config(train={"epochs": 4}), splits=splits, progress=None)
    plain_final = plain.fit()

    config = tiny_config(train={"epochs": 4, "restarts": 3, "restart_epochs": 2})
    lines: list[str] = []
    trainer = Trainer(config, out_dir=tmp_path, splits=splits, progress=lines.append)
    scripted_validation(trainer, monkeypatch, RESTART_SCRIPTS[kept] + [1.0, 1.0])
    merged = [[], ["the shared latent gives classes 1 and 2 one code"], []]
    checked = iter(merged)
    monkeypatch.setattr("dmvae.training.trainer.merged_classes", lambda *args: next(checked))
    final = trainer.fit()

    assert final["restart_kept"] == kept
    assert final["restart_val_accuracy"] == [max(RESTART_SCRIPTS[kept][i : i + 2]) for i in (0, 2, 4)]
    assert [metrics["epoch"] for metrics in trainer.history] == [1, 2, 3, 4]
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [metrics["epoch"] for metrics in written] == [1, 2, 3, 4]
    assert final["seconds"] > sum(metrics["seconds"] for metrics in trainer.history)
    assert any(f"kept restart {kept} " in line for line in lines)
    assert final["restart_merged_classes"] == merged  # each restart's merges, checked after its last epoch
    assert any(line.startswith("restart 1/2: ") and line.endswith(f"; {merged[1][0]}") for line in lines)
    same = all(
        torch.equal(a, b) for a, b in zip(plain.model.parameters(), trainer.model.parameters(), strict=True)
    )
    # restart 0 is the run's own initialisation and batch order: kept, the run is the plain one
    assert same == (kept == 0)
    if kept == 0:
        assert plain_final["test_accuracy_last"] == final["test_accuracy_last"]


def test_a_run_with_restarts_resumes_after_them_and_repeats_itself(synthetic_splits, tmp_path: Path) -> None:
    config = tiny_config(seed=3, train={"epochs": 3, "restarts": 2, "restart_epochs": 1})
    splits = synthetic_splits(n_train=96, paired_fraction=0.5)
    straight, final, resumed, final_resumed = straight_and_resumed(config, splits, tmp_path, stop_after=2)
    assert_same_parameters(straight.model, resumed.model)
    assert without_timing(straight.history) == without_timing(resumed.history)
    for key in ("restart_kept", "restart_val_accuracy", "test_accuracy", "best_epoch"):
        assert final[key] == final_resumed[key]


def test_zero_restarts_is_a_one_line_error() -> None:
    from dmvae.errors import UserError

    with pytest.raises(UserError, match="train.restarts must be a whole number >= 1"):
        tiny_config(train={"restarts": 0})
