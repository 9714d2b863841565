"""The tiny two-cell table file that the table and reproduce tests start from, and the shipped table files."""

from __future__ import annotations

from dmvae.data import default_root
from tune.study import REPO

TABLES = sorted((REPO / "tune" / "tables").glob("*.yaml"))


def tiny_table(**changes) -> dict:
    values = {
        "name": "tiny",
        "dataset": "mnist",
        "fractions": [0.05, 0.1],
        "models": {
            "DMVAE_disc": {
                "study": "tune/studies/dmvae_mnist.yaml",
                "set": {"data.train_size": 1000, "data.root": str(default_root().resolve())},
            }
        },
        "tuning_seed": 7,
        "final_seeds": [0, 1],
        "val_labels": 200,
        "study": {"num_samples": 2, "max_epochs": 1, "grace_period": 1, "startup_trials": 1},
        "final": {
            "train.epochs": 1,
            "train.restarts": 2,
            "train.restart_epochs": 1,
            "eval.figures": False,
            "eval.coherence": False,
        },  # fmt: skip
    }
    return {key: value for key, value in (values | changes).items() if value is not None}  # None: dropped
