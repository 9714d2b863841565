"""What was run and where: recorded commands, package versions, hardware."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("dmvae-study", "torch", "ray", "optuna", "pandas", "numpy", "matplotlib")
COMMANDS_FILE = "commands.txt"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": platform.processor() or platform.machine(),  # torch's view below, where it imports
        "cores": os.cpu_count(),
    }
    try:
        import torch

        from dmvae.training.hardware import compute_description

        info["cpu"] = compute_description(torch.device("cpu"))
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["gpu"] = ", ".join(names)
        else:
            info["gpu"] = "none (CPU only)"
    except ImportError:
        info["gpu"] = "unknown (torch not importable)"
    return info


def recorded_commands(inputs: list[Path]) -> list[str]:
    """Lines of commands.txt in an input folder or its parent, and commands recorded in final_runs.json."""
    lines: list[str] = []
    seen: set[Path] = set()
    for folder in inputs:
        for candidate in (folder / COMMANDS_FILE, folder.parent / COMMANDS_FILE):
            if candidate.is_file() and candidate not in seen:
                seen.add(candidate)
                lines += [line.rstrip() for line in candidate.read_text().splitlines() if line.strip()]
        for candidate in (folder / "final_runs.json", folder.parent / "final_runs.json"):
            if candidate.is_file() and candidate not in seen:
                seen.add(candidate)
                lines += _final_runs_commands(candidate)
    return list(dict.fromkeys(lines))


def _final_runs_commands(path: Path) -> list[str]:
    """`command` / `argv` (a string or an argv list: one command) and `commands` (a list), at any depth."""
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return []
    found: list[str] = []

    def one(value: Any) -> str:
        return " ".join(map(str, value)) if isinstance(value, list) else str(value)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("command", "argv"):
                    found.append(one(value))
                elif key == "commands" and isinstance(value, list):
                    found.extend(one(item) for item in value)
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(values)
    return found


def equivalent_train_command(run: Path) -> str:
    """The command that reproduces a run from its resolved config (the config holds every value, seed too)."""
    return f"dmvae train --config {run / 'config.yaml'} --out {run}"


def equivalent_tune_command(info: dict[str, Any]) -> str:
    folder = Path(info["folder"])
    return f"dmvae tune run {folder / 'study.yaml'} --name {folder.name} --storage-path {folder.parent}"
