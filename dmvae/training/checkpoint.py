"""Checkpoint files: written atomically, and a corrupt or missing one is a user-facing error."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from dmvae.errors import UserError


def save_checkpoint(state: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist; train the run first (dmvae train ... --out RUN_DIR)"
        )
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        raise UserError(
            f"checkpoint {path} is corrupt ({type(error).__name__}); delete it and train again"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"checkpoint {path} is not a dmvae checkpoint (no model state in it)")
    return state
