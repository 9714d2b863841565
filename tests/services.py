"""Real servers for the tests: a throwaway PostgreSQL cluster and an S3-compatible server (moto), locally.

PostgreSQL: Debian's binaries (/usr/lib/postgresql/<version>/bin, installed by `make setup`); `initdb` makes a
cluster in a temporary folder and `pg_ctl` starts it on a free port with trust authentication. initdb
refuses to run as root, so as root the server runs as the `postgres` user (or `nobody`).

S3: `moto_server` (moto[server] from PyPI, a dev dependency) on a free port, keeping its buckets in memory.
The S3 client settings are the standard AWS environment variables, set here for this process and every
process it starts (local Ray workers, drivers run as subprocesses): fake credentials, no instance-metadata
lookups (nothing may leave this machine), and AWS_ENDPOINT_URL pointing at the server.

If a server's binaries are missing the test is skipped, unless DMVAE_REQUIRE_SERVICES=1 (`make test` sets
it), where it fails.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

S3_PORT_ENV = "DMVAE_TEST_S3_PORT"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def missing(what: str) -> None:
    if os.environ.get("DMVAE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (make setup installs it)")
    pytest.skip(what)


# --- S3 ------------------------------------------------------------------------------------------------
def configure_s3_env() -> str:
    """Point every AWS client of this process tree at the local server's port; the endpoint URL."""
    port = int(os.environ.setdefault(S3_PORT_ENV, str(free_port())))
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    return endpoint


class S3Server:
    """`moto_server` on the port of configure_s3_env(); stop() and start() again keep no data (in memory)."""

    def __init__(self, log_dir: Path):
        self.endpoint = configure_s3_env()
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.log = Path(log_dir) / "moto.log"
        self.process: subprocess.Popen | None = None
        binary = Path(sys.executable).with_name("moto_server")
        if not binary.is_file():
            missing("moto_server not found (pip install 'moto[server]')")
        self.binary = str(binary)
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(
                [self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None, f"moto_server ended: {self.log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)

    def pause(self) -> None:
        """The server stops answering (connections hang) but keeps its data: an outage."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint)
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- PostgreSQL ------------------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A throwaway PostgreSQL cluster; `url` is its SQLAlchemy URL (database `postgres`, user `dmvae`)."""

    def __init__(self):
        binaries = postgres_bin()
        if binaries is None:
            missing("PostgreSQL binaries not found (apt-get install postgresql)")
        self.bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="dmvae-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = next((name for name in ("postgres", "nobody") if _has_user(name)), None)
            assert user, "running as root and no unprivileged user (postgres, nobody) to run PostgreSQL"
            entry = pwd.getpwnam(user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self.as_user = ["runuser", "-u", user, "--"]
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "dmvae", "-E", "UTF8", "--no-sync"])
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"])
        self.url = f"postgresql://dmvae@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        command = [*self.as_user, str(self.bin / command[0]), *command[1:]]
        out = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, timeout=120)
        log = self.log.read_text()[-2000:] if self.log.is_file() else ""
        assert out.returncode == 0, f"{' '.join(command)}: {out.stdout[-2000:]}{out.stderr[-2000:]}{log}"

    def stop(self) -> None:
        try:
            self._run(["pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
