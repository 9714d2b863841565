"""Training speed against this machine's own ceiling: seconds per epoch, FLOPs, GFLOP/s, % of ceiling.

    python bench/train_speed.py [--cases mnist-authors mnist-mixed ...] [--epochs 1] [--threads N]
                                [--set train.compile=true ...]

In one process it measures the machine's matmul throughput (a 2048 x 2048 matmul in float32 and bfloat16),
counts each case's FLOPs per epoch with torch.utils.flop_counter (one step of every distinct step shape,
forward and backward, times how often that shape occurs in an epoch), and times whole epochs of the
trainer (after a few warm-up steps; the minimum over --epochs). The % of ceiling compares achieved GFLOP/s
with the matmul ceiling of the precision the case trains in. One JSON line per case follows the table.

Cases (50,000 MNIST / Fashion-MNIST training images, batch 100, device cpu):
  mnist-authors  Table 3 DMVAE, 0.2 % paired, the authors' schedule (their regime, fp32)
  mnist-mixed    configs/mnist_dmvae.yaml: 1 % paired, mixed schedule (the default)
  mnist-paired   configs/mnist_dmvae.yaml at 100 % paired
  mnist-mvae     configs/mnist_mvae.yaml: MVAE, 1 % paired, mixed schedule
  fmnist-fp32    Table 4 DMVAE, 0.2 % paired, authors' schedule, float32
  fmnist-bf16    the same under bfloat16 autocast
  fmnist-auto    the same with train.precision=auto (what a user gets by default)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter

import torch
from torch.utils.flop_counter import FlopCounterMode

from dmvae.config import load_config
from dmvae.data import load_splits
from dmvae.training import Trainer

AUTHORS = ["data.paired_fraction=0.002", "train.schedule=authors"]
CASES = {
    "mnist-authors": ("configs/mnist_dmvae_authors.yaml", AUTHORS + ["train.precision=fp32"]),
    "mnist-mixed": ("configs/mnist_dmvae.yaml", ["train.precision=fp32"]),
    "mnist-paired": ("configs/mnist_dmvae.yaml", ["data.paired_fraction=1.0", "train.precision=fp32"]),
    "mnist-mvae": ("configs/mnist_mvae.yaml", ["train.precision=fp32"]),
    "fmnist-fp32": ("configs/fmnist_dmvae.yaml", AUTHORS + ["train.precision=fp32"]),
    "fmnist-bf16": ("configs/fmnist_dmvae.yaml", AUTHORS + ["train.precision=bf16"]),
    "fmnist-auto": ("configs/fmnist_dmvae.yaml", AUTHORS + ["train.precision=auto"]),
}
WARMUP_STEPS = 5  # per step shape


def matmul_ceiling(dtype: torch.dtype, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of the best of repeated size x size matmuls in `dtype`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(3):
        a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return 2 * size**3 / best / 1e9


def step_signature(step) -> tuple:
    return tuple((part.paired, len(part.index)) for part in step)


def run_steps(trainer: Trainer, steps: list) -> None:
    """Train on exactly these steps through the trainer's own epoch loop."""
    schedule_epoch = trainer.schedule.epoch
    trainer.schedule.epoch = lambda generator: steps
    try:
        trainer.train_epoch()
    finally:
        trainer.schedule.epoch = schedule_epoch


def step_shapes(trainer: Trainer) -> tuple[Counter, dict]:
    """How often each distinct step shape occurs in an epoch, and one step of each shape."""
    state = trainer.generator.get_state()
    steps = trainer.schedule.epoch(trainer.generator)
    trainer.generator.set_state(state)
    first_of: dict = {}
    for step in steps:
        first_of.setdefault(step_signature(step), step)
    return Counter(step_signature(step) for step in steps), first_of


def flops_per_epoch(trainer: Trainer) -> int:
    """FLOPs of one epoch: every distinct step shape counted once (forward and backward), times its count."""
    counts, first_of = step_shapes(trainer)
    total = 0
    for signature, count in counts.items():
        counter = FlopCounterMode(display=False)
        with counter:
            run_steps(trainer, [first_of[signature]])
        total += counter.get_total_flops() * count
    return total


def warm_up(trainer: Trainer) -> float:
    """Seconds to run a few steps of every step shape (with train.compile: compiling each shape's graph)."""
    _, first_of = step_shapes(trainer)
    start = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        run_steps(trainer, list(first_of.values()))
    return time.perf_counter() - start


def measure(case: str, epochs: int, threads: int | None, extra: list[str]) -> dict:
    path, overrides = CASES[case]
    overrides = overrides + ["device=cpu", "train.batch_size=100", "eval.figures=false"] + extra
    if threads:
        overrides.append(f"train.threads={threads}")
    config = load_config(path, overrides)
    splits = load_splits(config.data, config.seed, progress=lambda message: None)
    trainer = Trainer(config, splits=splits, progress=None)
    flops = flops_per_epoch(trainer)
    warmup_seconds = warm_up(trainer)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        seconds.append(time.perf_counter() - start)
    per_epoch = min(seconds)
    precision = getattr(trainer, "precision", None) or getattr(trainer.model, "precision", "fp32")
    return {
        "case": case,
        "config": path,
        "model": config.model.kind,
        "schedule": config.train.schedule,
        "paired_fraction": config.data.paired_fraction,
        "precision": precision,
        "compile": bool(getattr(config.train, "compile", False)),
        "seconds_per_epoch": round(per_epoch, 3),
        "gflop_per_epoch": round(flops / 1e9, 1),
        "achieved_gflops": round(flops / per_epoch / 1e9, 1),
        "floor_seconds": None,
        "images_per_second": round(len(splits.train) / per_epoch, 1),
        "warmup_seconds": round(warmup_seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=list(CASES)[:2] + ["fmnist-bf16"]
    )
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per case (the minimum counts)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for all")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ceiling = {"fp32": matmul_ceiling(torch.float32), "bf16": matmul_ceiling(torch.bfloat16)}
    print(
        f"matmul ceiling ({torch.get_num_threads()} threads): fp32 {ceiling['fp32']:.0f} GFLOP/s, "
        f"bf16 {ceiling['bf16']:.0f} GFLOP/s",
        flush=True,
    )
    header = (
        f"{'case':<14} {'prec':<5} {'s/epoch':>8} {'GFLOP/ep':>9} {'GFLOP/s':>8} {'% ceil':>7} {'floor s':>8}"
    )
    print(header, flush=True)
    rows = []
    for case in args.cases:
        row = measure(case, args.epochs, args.threads, args.set)
        top = ceiling["bf16" if row["precision"] == "bf16" else "fp32"]
        row["ceiling_gflops"] = round(top, 1)
        row["percent_of_ceiling"] = round(100 * row["achieved_gflops"] / top, 1)
        row["floor_seconds"] = round(row["gflop_per_epoch"] / top, 3)
        rows.append(row)
        print(
            f"{case:<14} {row['precision']:<5} {row['seconds_per_epoch']:>8.2f} "
            f"{row['gflop_per_epoch']:>9.1f} {row['achieved_gflops']:>8.1f} "
            f"{row['percent_of_ceiling']:>6.1f}% {row['floor_seconds']:>8.2f}",
            flush=True,
        )
    environment = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    for row in rows:
        print(json.dumps(row | environment))


if __name__ == "__main__":
    main()
