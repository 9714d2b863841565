"""The fault battery: faults injected into real studies, and what the tool survives, measured.

    python bench/faults.py [--kills 10] [--seed 0] [--only driver,worker,corrupt,outage]

(a) driver: the study driver SIGKILLed at N seeded random moments (uniform over the running study, so they
    fall on trial starts, reports, checkpoints and ASHA decisions alike), each time resumed; at the end
    every Ray trial is one Optuna trial, none lost, none told twice. Optuna on a real PostgreSQL.
(b) worker: on a local two-node Ray cluster, the node running a trial is killed after its first
    checkpoints; the trial must restart from its last checkpoint on the other node (max_failures).
(c) corrupt: a trial's latest checkpoint overwritten with garbage while the driver is down; resume.
(d) outage: results on an S3 server (moto) that stops answering for a while mid-study.

Prints one table: faults injected, survived, trials lost, trials double-counted, wall time. tests/
test_faults.py runs a short version (two driver kills) in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("DMVAE_TUNE_VERBOSE", "0")

import yaml  # noqa: E402

from dmvae.data import default_root  # noqa: E402

DATA_ROOT = str(default_root().resolve())


@dataclass
class Outcome:
    fault: str
    injected: int = 0
    survived: int = 0
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def study_file(folder: Path, name: str, **changes) -> Path:
    values = {
        "name": name,
        "base": "configs/mnist_dmvae.yaml",
        "set": {"data.train_size": 2000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
        "space": {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}},
        "num_samples": 6, "max_epochs": 4, "grace_period": 1, "reduction_factor": 2,
        "max_concurrent": 2, "seed": 0,
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values | changes))
    return path


def dmvae(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO)} | (env or {})
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "dmvae.cli", *args], cwd=REPO, env=env, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def check(folder: str | Path, num_samples: int) -> tuple[int, int, list[str]]:
    """(trials lost, trials double-counted, notes): Ray's trials against the Optuna study."""
    import optuna

    from tune.experiment import open_experiment
    from tune.results import trial_rows
    from tune.search import open_storage

    experiment = open_experiment(folder)
    rows = trial_rows(experiment)
    study = optuna.load_study(
        study_name=experiment.optuna_study, storage=open_storage(experiment.optuna_storage)
    )
    trials = study.get_trials(deepcopy=False)
    ray_lrs = sorted(row.params["train.lr"] for row in rows)
    optuna_lrs = sorted(t.params["train.lr"] for t in trials if "train.lr" in t.params)
    unfinished = [row for row in rows if row.state not in ("TERMINATED", "STOPPED", "ERROR")]
    lost = max(0, num_samples - len(rows)) + len(unfinished)
    lost += sum(1 for t in trials if not t.state.is_finished())
    doubled = max(0, len(trials) - len(rows)) + sum(1 for lr in set(optuna_lrs) if optuna_lrs.count(lr) > 1)
    notes = []
    if ray_lrs != optuna_lrs:
        notes.append("Ray and Optuna hold different trials")
        lost += 1
    errors = [row.trial_id for row in rows if row.state == "ERROR"]
    if errors:
        notes.append(f"errored: {', '.join(errors)}")
    return lost, doubled, notes


# --- (a) the driver killed at random moments ----------------------------------------------------------
BIG = {  # the full battery's study: long enough for 10 kills (each resume costs a few seconds of start-up)
    "num_samples": 10, "max_epochs": 8,
    "set": {"data.train_size": 8000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
}  # fmt: skip


def driver_kills(
    work: Path, address: str, optuna_url: str, kills: int, seed: int, window=(4.0, 20.0), **study
) -> Outcome:
    """Kill i comes a seeded uniform time in `window` after the (re)start of the driver; the first window
    opens once the driver has made the experiment folder (before that there is nothing to resume)."""
    outcome = Outcome("driver SIGKILL at random moments, then resume")
    rng = random.Random(seed)
    num_samples = study.get("num_samples", 6)
    path = study_file(work, "kills", storage=optuna_url, **study)
    folder = work / "runs" / "kills"
    log = work / "kills.log"
    start = time.monotonic()
    process = dmvae(["tune", "run", str(path), "--name", "kills", "--storage-path", str(folder.parent),
                     "--address", address], log)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (folder / "experiment.yaml").is_file() and process.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for _ in range(kills):
        time.sleep(rng.uniform(*window))
        if process.poll() is not None:  # finished before this kill: a new study is not made for it
            break
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        outcome.injected += 1
        process = dmvae(["tune", "resume", str(folder), "--address", address], log)
    code = process.wait(timeout=900)
    outcome.seconds = time.monotonic() - start
    if code != 0:
        outcome.notes.append(f"last driver exited {code}: {log.read_text()[-500:]}")
    lost, doubled, notes = check(folder, num_samples)
    outcome.lost, outcome.doubled, outcome.notes = lost, doubled, outcome.notes + notes
    if outcome.injected < kills:
        outcome.notes.append(f"the study finished after {outcome.injected} of {kills} kills")
    outcome.survived = outcome.injected if code == 0 and lost == 0 and doubled == 0 else 0
    return outcome


# --- (b) a worker node killed mid-trial ----------------------------------------------------------------
def worker_kill(work: Path) -> Outcome:
    from test_cluster import TwoNodeCluster, _session_processes

    outcome = Outcome("worker node killed mid-trial (two-node Ray)")
    cluster = TwoNodeCluster()
    try:
        head = head_node(cluster)
        worker = next(node for node in cluster.node_ids if node != head)
        path = study_file(
            work, "worker", num_samples=2, max_epochs=6, grace_period=6, max_failures=2,
            set={"data.train_size": 8000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
        )  # fmt: skip
        folder = work / "runs" / "worker"
        log = work / "worker.log"
        start = time.monotonic()
        process = dmvae(["tune", "run", str(path), "--name", "worker", "--storage-path", str(folder.parent),
                         "--address", cluster.address], log, cluster.env)  # fmt: skip
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and process.poll() is None:
            for result in folder.glob("*/result.json"):
                lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
                if len(lines) >= 2 and lines[-1]["node_id"] == worker and lines[-1]["training_iteration"] < 5:
                    victim = result
            time.sleep(0.5)
        if victim is None:
            outcome.notes.append("no trial ran two epochs on the worker node")
            process.kill()
            return outcome
        for pid in _session_processes({cluster.processes[1].pid}):
            os.kill(pid, signal.SIGKILL)
        outcome.injected = 1
        code = process.wait(timeout=600)
        outcome.seconds = time.monotonic() - start
        lines = [json.loads(line) for line in victim.read_text().splitlines() if line.strip()]
        before = [line for line in lines if line["node_id"] == worker]
        after = [line for line in lines if line["node_id"] == head]
        restarted = bool(after) and after[0]["training_iteration"] > 1
        finished = bool(after) and after[-1]["training_iteration"] == 6
        outcome.notes.append(
            f"victim epochs on worker {[x['training_iteration'] for x in before]}, "
            f"then on head {[x['training_iteration'] for x in after]}"
        )
        lost, doubled, notes = check(folder, 2)
        outcome.lost, outcome.doubled, outcome.notes = lost, doubled, outcome.notes + notes
        outcome.survived = int(code == 0 and restarted and finished and lost == 0)
        return outcome
    finally:
        cluster.stop()


def head_node(cluster) -> str:
    code = (
        f"import ray; ray.init(address={cluster.address!r}, log_to_driver=False); "
        "print([n['NodeID'] for n in ray.nodes() "
        "if n['Alive'] and 'node:__internal_head__' in n['Resources']][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=120
    )
    return out.stdout.strip().splitlines()[-1]


# --- (c) a corrupt checkpoint ----------------------------------------------------------------------------
def corrupt_checkpoint(work: Path, address: str) -> Outcome:
    """Killed once the experiment snapshot references a checkpoint (3 written, then a few seconds); every
    checkpoint of one trial is then overwritten with garbage, and the study resumed."""
    outcome = Outcome("corrupt checkpoint (driver down, then resume)")
    path = study_file(
        work, "corrupt", num_samples=2, max_epochs=8, grace_period=8, max_failures=1,
        set={"data.train_size": 10000, "data.paired_fraction": 0.05, "data.root": DATA_ROOT},
    )  # fmt: skip
    folder = work / "runs" / "corrupt"
    log = work / "corrupt.log"
    start = time.monotonic()
    process = dmvae(["tune", "run", str(path), "--name", "corrupt", "--storage-path", str(folder.parent),
                     "--address", address], log)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(folder.glob("*/checkpoint_000002/trainer.pt")) and time.monotonic() < deadline:
        time.sleep(0.3)
    written = sorted(folder.glob("*/checkpoint_000002/trainer.pt"))
    time.sleep(3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if not written:
        outcome.notes.append("no checkpoint written in time")
        return outcome
    victim = written[0].parent.parent
    for checkpoint in victim.glob("checkpoint_*/trainer.pt"):
        checkpoint.write_bytes(b"not a checkpoint" * 64)
    outcome.injected = 1
    process = dmvae(["tune", "resume", str(folder), "--address", address], log)
    code = process.wait(timeout=600)
    outcome.seconds = time.monotonic() - start
    lost, doubled, notes = check(folder, 2)
    outcome.notes += notes + [f"resume exited {code}"]
    error = victim / "error.txt"
    if error.is_file():
        last = [line for line in error.read_text().splitlines() if line.strip()][-1]
        outcome.notes.append(f"victim errored: {last[:160]}")
    else:
        lines = [json.loads(line) for line in (victim / "result.json").read_text().splitlines() if line]
        outcome.notes.append(f"victim did not error; its epochs: {[x['training_iteration'] for x in lines]}")
    outcome.lost, outcome.doubled = lost, doubled
    outcome.survived = int(code in (0, 1) and lost == 0 and doubled == 0)  # the study finished
    return outcome


# --- (d) the S3 storage unreachable for a while -----------------------------------------------------------
def storage_outage(work: Path, address: str, optuna_url: str, s3, seconds: float = 20.0) -> Outcome:
    outcome = Outcome(f"S3 unreachable for {seconds:.0f} s mid-study")
    bucket = s3.bucket("dmvae-outage")
    path = study_file(work, "outage", num_samples=4, storage=optuna_url, max_failures=2)
    uri = f"{bucket}/tune/outage"
    log = work / "outage.log"
    start = time.monotonic()
    process = dmvae(["tune", "run", str(path), "--name", "outage", "--storage-path", f"{bucket}/tune",
                     "--address", address, "--storage-endpoint", s3.endpoint], log)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(key.endswith("/result.json") for key in s3.keys("dmvae-outage", "tune/outage/")):
            break
        time.sleep(0.5)
    time.sleep(3)
    s3.pause()
    outcome.injected = 1
    time.sleep(seconds)
    s3.resume()
    try:
        code = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        code = -9
        outcome.notes.append("the driver hung; killed")
    if code != 0:  # the documented way on: resume
        outcome.notes.append(f"run exited {code}; resumed")
        code = dmvae(["tune", "resume", uri, "--address", address], log).wait(timeout=600)
    outcome.seconds = time.monotonic() - start
    lost, doubled, notes = check(uri, 4)
    outcome.lost, outcome.doubled, outcome.notes = lost, doubled, outcome.notes + notes
    outcome.survived = int(code == 0 and lost == 0 and doubled == 0)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| fault | injected | survived | trials lost | trials double-counted | wall time | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        notes = "; ".join(o.notes).replace("\n", " ")[:300]
        cells = [o.fault, o.injected, o.survived, o.lost, o.doubled, f"{o.seconds:.0f} s", notes]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="driver,worker,corrupt,outage")
    args = parser.parse_args(argv)
    chosen = set(args.only.split(","))
    import ray
    from services import Postgres, S3Server, configure_s3_env

    work = Path(tempfile.mkdtemp(prefix="dmvae-faults-"))
    configure_s3_env()
    outcomes = []
    postgres = Postgres()
    s3 = S3Server(work)
    try:
        if chosen & {"driver", "corrupt", "outage"}:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            address = ray.get_runtime_context().gcs_address
            if "driver" in chosen:
                outcomes.append(
                    driver_kills(
                        work, address, postgres.url, args.kills, args.seed, window=(6.0, 16.0), **BIG
                    )
                )
                print(table(outcomes[-1:]), flush=True)
            if "corrupt" in chosen:
                outcomes.append(corrupt_checkpoint(work, address))
                print(table(outcomes[-1:]), flush=True)
            if "outage" in chosen:
                outcomes.append(storage_outage(work, address, postgres.url, s3))
                print(table(outcomes[-1:]), flush=True)
            ray.shutdown()
        if "worker" in chosen:
            outcomes.append(worker_kill(work))
    finally:
        s3.stop()
        postgres.stop()
    print(table(outcomes))
    print(f"logs: {work}")
    return 0 if all(o.survived == o.injected and o.injected for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
