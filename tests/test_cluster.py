"""cluster.yaml against Ray's own validator (offline), and a study on a real two-node Ray cluster.

The two-node cluster is made of `ray start --head` and `ray start --address` subprocesses on this machine,
with their own temp folder and ports. It is torn down by signalling the process sessions these tests
started (never `ray stop`, which would kill every Ray on the machine, the test session's own included).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from dmvae.data import default_root  # noqa: E402
from tune.study import REPO  # noqa: E402

CLUSTER_YAML = REPO / "cluster.yaml"
RAY = str(Path(sys.executable).with_name("ray"))
DATA_ROOT = str(default_root().resolve())


# --- cluster.yaml, offline -------------------------------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test: the validation must be offline."""

    def refuse(*args, **kwargs):
        raise AssertionError("cluster.yaml validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _prepared(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_validator(no_network):
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    prepared = _prepared(config)
    assert prepared["provider"]["type"] == "aws" and prepared["provider"]["region"] == "us-west-2"
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0
    workers = {name: spec for name, spec in types.items() if name != prepared["head_node_type"]}
    assert workers and all(spec["resources"]["GPU"] >= 1 for spec in workers.values())
    for spec in workers.values():
        assert spec["min_workers"] == 0 and spec["max_workers"] >= 1  # autoscaling from zero
        assert spec["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert prepared["max_workers"] >= max(spec["max_workers"] for spec in workers.values())
    assert prepared["idle_timeout_minutes"] > 0
    # The project is copied to every node and installed there; the head also gets TensorBoard.
    assert "~/dmvae-study" in prepared["file_mounts"]
    assert any(
        "pip install" in command and "-e ~/dmvae-study" in command for command in config["setup_commands"]
    )
    assert any("tensorboard" in command for command in prepared["head_setup_commands"])
    # Results on S3 by default: every worker can write the bucket (the head gets Ray's default profile),
    # and the head runs the PostgreSQL server of the Optuna studies; EFS stays as the alternative.
    for spec in workers.values():
        assert spec["node_config"]["IamInstanceProfile"] == {"Name": "ray-autoscaler-v1"}
    head_setup = prepared["head_setup_commands"]
    assert any("install" in command and "postgresql" in command for command in head_setup)
    assert any("createdb" in command for command in head_setup)
    assert any("DMVAE_EFS" in command for command in prepared["setup_commands"])
    assert "--storage-path s3://" in CLUSTER_YAML.read_text()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("available_node_types", "gpu_1x_a10g", "resources", "GPU"), 0.5),  # resources are whole numbers
        (("available_node_types", "gpu_1x_a10g", "min_workers"), "zero"),
        (("provider",), None),  # required
    ],
)
def test_rays_validator_rejects_a_broken_cluster_yaml(no_network, path, value):
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    node = config
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's ValidationError or a KeyError from prepare
        _prepared(config)


# --- a real two-node Ray cluster on this machine ---------------------------------------------------------
def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _session_processes(session_ids: set[int]) -> list[int]:
    """Pids of live processes whose session is one of ours (Ray's workers stay in the head's session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) in session_ids:
            pids.append(int(entry.name))
    return pids


class TwoNodeCluster:
    """`ray start --head --block` and `ray start --address --block`, each in a new process session."""

    def __init__(self):
        self.temp_dir = tempfile.mkdtemp(prefix="dmvae-rc-", dir="/tmp")  # short: Ray's unix sockets
        gcs, client, dashboard, agent_a, agent_b = _free_ports(5)
        self.address = f"127.0.0.1:{gcs}"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env |= {
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            "DMVAE_DATA": DATA_ROOT,
        }
        self.env = env
        common = ["--num-cpus=1", "--num-gpus=0", "--object-store-memory=200000000", "--block"]
        head = [
            RAY,
            "start",
            "--head",
            f"--port={gcs}",
            "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
        ]
        head += [f"--ray-client-server-port={client}", f"--dashboard-port={dashboard}"]
        head += [f"--dashboard-agent-listen-port={agent_a}"]
        worker = [RAY, "start", f"--address={self.address}", f"--dashboard-agent-listen-port={agent_b}"]
        self.processes: list[subprocess.Popen] = []
        self.logs = [Path(self.temp_dir) / "head.log", Path(self.temp_dir) / "worker.log"]
        try:
            self._start(head + common, self.logs[0])
            self.wait_for_nodes(1)
            self._start(worker + common, self.logs[1])
            self.node_ids = self.wait_for_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _start(self, command: list[str], log: Path) -> None:
        with open(log, "wb") as handle:
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=self.env,
                    cwd=self.temp_dir,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )

    def wait_for_nodes(self, count: int, timeout: float = 90) -> list[str]:
        """Block until `count` nodes are alive; their node ids (asked from a separate driver process)."""
        code = (
            "import json, sys, time, ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False)\n"
            f"deadline = time.monotonic() + {timeout}\n"
            "while True:\n"
            "    ids = sorted(n['NodeID'] for n in ray.nodes() if n['Alive'])\n"
            f"    if len(ids) >= {count} or time.monotonic() > deadline: break\n"
            "    time.sleep(0.5)\n"
            "print(json.dumps(ids))\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            for process, log in zip(self.processes, self.logs, strict=False):
                assert process.poll() is None, f"ray start ended early:\n{log.read_text()[-3000:]}"
            out = subprocess.run(
                [sys.executable, "-c", code],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout + 60,
            )
            if out.returncode == 0:
                ids = json.loads(out.stdout.strip().splitlines()[-1])
                if len(ids) >= count:
                    return ids
            assert time.monotonic() < deadline, f"the cluster did not come up: {out.stderr[-3000:]}"
            time.sleep(1)

    def stop(self) -> None:
        sessions = {process.pid for process in self.processes}
        for process in reversed(self.processes):  # the worker node first, then the head
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while _session_processes(sessions) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in _session_processes(sessions):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture
def two_node_cluster():
    if not (default_root() / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {default_root()} (dmvae data fetch mnist)")
    cluster = TwoNodeCluster()
    try:
        yield cluster
    finally:
        cluster.stop()
        assert not _session_processes({process.pid for process in cluster.processes})


def test_study_runs_on_both_nodes_of_a_two_node_cluster(two_node_cluster, tmp_path):
    cluster = two_node_cluster
    assert len(cluster.node_ids) == 2
    study = {
        "name": "cluster",
        "base": "configs/mnist_dmvae.yaml",
        "set": {"data.train_size": 1000, "data.paired_fraction": 0.1, "data.root": DATA_ROOT},
        "space": {"train.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3}},
        "num_samples": 4, "max_epochs": 1, "max_concurrent": 2, "resources": {"cpu": 1},
    }  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(study))
    storage = tmp_path / "shared"  # both nodes see this folder: it stands in for NFS
    command = [sys.executable, "-m", "dmvae.cli", "tune", "run", str(path), "--name", "exp"]
    command += ["--storage-path", str(storage), "--address", cluster.address]
    out = subprocess.run(
        command, cwd=REPO, env=cluster.env | {"DMVAE_TUNE_VERBOSE": "0"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folder = storage / "exp"
    results = sorted(folder.glob("*/result.json"))
    assert len(results) == 4
    nodes = set()
    for result in results:
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        assert lines and all(0 <= line["val/accuracy"] <= 1 for line in lines)
        nodes |= {line["node_id"] for line in lines}
    assert nodes == set(cluster.node_ids)  # trials ran on both nodes, and only on this cluster's nodes
    assert "4 trials (4 terminated)" in out.stdout
