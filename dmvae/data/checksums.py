"""SHA-256 verification of data files, with a marker file so unchanged files are not hashed again."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MARKER = ".verified"
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(folder: Path, expected: dict[str, str]) -> list[str]:
    """Check every file of `expected` (name -> sha256) in `folder`; return one message per problem.

    A file whose size and mtime match the marker entry recorded when it last verified is not hashed again.
    The marker is rewritten with the files that verified (silently skipped if the folder is read-only).
    """
    marker = _read_marker(folder)
    good, problems = {}, []
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        stat = path.stat()
        entry = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if marker.get(name) != entry:
            got = sha256_file(path)
            if got != digest:
                problems.append(f"checksum mismatch for {path}: expected sha256 {digest}, got {got}")
                continue
        good[name] = entry
    if good != marker:
        _write_marker(folder, good)
    return problems


def _read_marker(folder: Path) -> dict:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _write_marker(folder: Path, entries: dict) -> None:
    if not folder.is_dir():
        return
    temp = folder / f"{MARKER}.tmp"
    try:
        temp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(temp, folder / MARKER)
    except OSError:
        pass
