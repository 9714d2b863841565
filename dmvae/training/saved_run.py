"""Re-evaluate a saved run folder (`dmvae evaluate RUN_DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dmvae.config import load_config
from dmvae.errors import UserError
from dmvae.training.checkpoint import load_checkpoint
from dmvae.training.trainer import Trainer


def load_run(run_dir: Path, weights: str = "best", overrides: list[str] | None = None) -> Trainer:
    """A Trainer on the run's resolved config with the run's weights loaded (no training)."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise UserError(
            f"{run_dir} is not a run folder (no config.yaml); pass the --out folder of dmvae train"
        )
    trainer = Trainer(load_config(config_path, overrides), out_dir=None, progress=None)
    if weights == "best" and (run_dir / "checkpoints" / "best_model.pt").is_file():
        try:
            state = torch.load(run_dir / "checkpoints" / "best_model.pt", map_location=trainer.device)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
            raise UserError(
                f"{run_dir}/checkpoints/best_model.pt is corrupt ({type(error).__name__})"
            ) from None
        trainer.scored_model.load_state_dict(state)
    else:
        checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt", trainer.device)
        trainer.model.load_state_dict(checkpoint["model"])
        if trainer.average is not None and checkpoint.get("average") is not None:
            trainer.average.load_state_dict(checkpoint["average"])
    return trainer


def evaluate_run(
    run_dir: Path, weights: str = "best", protocol: str | None = None, figures: bool = True
) -> dict:
    overrides = [f"eval.protocol={protocol}"] if protocol else None
    trainer = load_run(run_dir, weights, overrides)
    result = {"weights": weights, "protocol": trainer.config.eval.protocol}
    for split in ("val", "test"):
        result |= {f"{split}_{key}": value for key, value in trainer.evaluate(split, per_class=True).items()}
    trainer.progress = print  # a missing coherence classifier is trained first (minutes): say so
    result |= trainer.coherence_scores()
    (run_dir / "evaluation.json").write_text(json.dumps(result, indent=2) + "\n")
    if figures:
        from dmvae.evaluation.figures import write_figures

        write_figures(trainer, run_dir / "figures")
    return result
