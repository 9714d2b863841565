"""Training speed of the paper's DMVAE architecture (batch 100, CPU): seconds per epoch, images per second.

    python bench/train_speed.py --dataset mnist|fmnist [--epochs 1] [--threads N]

An epoch is one pass over the 50,000 training images at 0.2 % paired with the authors' schedule (their
regime: one paired batch of 100 among 500 batches). The last line printed is one JSON object.
The authors' code takes 54 s (MNIST) and 122 s (FMNIST) per epoch on the 2-core machine of DESIGN.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from dmvae.config import load_config
from dmvae.data import load_splits
from dmvae.training import Trainer

CONFIGS = {"mnist": "configs/mnist_dmvae_authors.yaml", "fmnist": "configs/fmnist_dmvae.yaml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(CONFIGS), default="mnist")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="train.precision")
    args = parser.parse_args()
    overrides = [
        "device=cpu", "data.paired_fraction=0.002", "train.schedule=authors", "train.batch_size=100",
        f"train.epochs={args.epochs}", "eval.figures=false", f"train.precision={args.precision}",
    ]  # fmt: skip
    if args.threads:
        overrides.append(f"train.threads={args.threads}")
    config = load_config(CONFIGS[args.dataset], overrides)
    splits = load_splits(config.data, config.seed)
    trainer = Trainer(config, splits=splits, progress=None)
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        trainer.epoch += 1
        seconds.append(time.perf_counter() - start)
        print(f"epoch {trainer.epoch}: {seconds[-1]:.2f} s", flush=True)
    per_epoch = min(seconds)
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "architecture": trainer.model.architecture,
                "epochs": args.epochs,
                "seconds_per_epoch": round(per_epoch, 3),
                "images_per_second": round(len(splits.train) / per_epoch, 1),
                "threads": torch.get_num_threads(),
                "precision": args.precision,
                "torch": torch.__version__,
                "cpu": platform.processor() or platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
