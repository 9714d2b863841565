"""Throughput of a study on the local Ray: trials per hour, and how much of the trial slots is training.

    python bench/study_throughput.py [--study tune/studies/dmvae_mnist.yaml] [--num-samples 8]
                                     [--out runs/bench-throughput] [--set key=value ...]

Runs `dmvae tune run` on a fresh experiment and reads each trial's result.json back. It prints the study's
wall time, trials per hour, the seconds the trainers spent in their epochs (the `seconds` each epoch
reports: training and validation), Ray's own time per trial (`time_total_s`: the trial from its start,
set-up included), and the share of the trial slots (wall x max_concurrent) not spent in trainer epochs:
Ray's scheduling and reporting, trial set-up (data, model), checkpoints and TensorBoard images. The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def trial_records(experiment: Path) -> list[list[dict]]:
    """Every trial's reported results, in order (Ray writes one JSON line per report)."""
    trials = []
    for result_file in sorted(experiment.glob("*/result.json")):
        lines = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if lines:
            trials.append(lines)
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="tune/studies/dmvae_mnist.yaml")
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-throughput"))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="study overrides")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    command = [
        sys.executable, "-c", "from dmvae.cli import main; raise SystemExit(main())",
        "tune", "run", args.study, "--name", "throughput", "--storage-path", str(args.out),
        "--num-samples", str(args.num_samples),
    ]  # fmt: skip
    for assignment in args.set:
        command += ["--set", assignment]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    experiment = args.out / "throughput"
    study = yaml.safe_load((experiment / "study.yaml").read_text())
    concurrency = study.get("max_concurrent", 2)
    trials = trial_records(experiment)
    epoch_seconds = sum(record.get("seconds", 0.0) for trial in trials for record in trial)
    ray_seconds = sum(trial[-1].get("time_total_s", 0.0) for trial in trials)
    epochs = sum(len(trial) for trial in trials)
    row = {
        "study": args.study,
        "trials": len(trials),
        "epochs": epochs,
        "max_concurrent": concurrency,
        "wall_seconds": round(wall, 1),
        "trials_per_hour": round(3600 * len(trials) / wall, 1),
        "trainer_epoch_seconds": round(epoch_seconds, 1),
        "ray_trial_seconds": round(ray_seconds, 1),
        "overhead_share_of_slots": round(1 - epoch_seconds / (wall * concurrency), 3),
        "overhead_share_of_trials": round(1 - epoch_seconds / ray_seconds, 3) if ray_seconds else None,
    }
    print(
        f"{row['trials']} trials ({epochs} epochs) in {wall:.0f} s: {row['trials_per_hour']} trials/hour;"
        " "
        f"trainer epochs {epoch_seconds:.0f} s of {ray_seconds:.0f} s trial time "
        f"({100 * row['overhead_share_of_trials']:.0f} % outside the epochs) and of "
        f"{wall * concurrency:.0f} s "
        f"slot time ({100 * row['overhead_share_of_slots']:.0f} % outside)"
    )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
