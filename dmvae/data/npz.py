"""Your own multimodal data in one .npz file: one array per modality, first axis = example.

Optional arrays: `paired` (bool [n]; otherwise drawn with paired_mask over the training examples) and
`split` (int [n]: 0 train, 1 val, 2 test; otherwise a random 80/10/10 split drawn with the FIXED seed 0,
so the split does not move with the run seed).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from dmvae.config import DataConfig
from dmvae.data.loaders import register_loader
from dmvae.data.types import (
    DatasetSplits,
    ModalitySpec,
    MultimodalDataset,
    balanced_paired_mask,
    paired_mask,
    take_first,
)
from dmvae.errors import UserError

RESERVED = ("paired", "split")
SPLIT_SEED = 0


@register_loader("npz")
def load_npz(
    config: DataConfig, root=None, seed: int = 0, with_test: bool = True, progress=None
) -> DatasetSplits:
    path = Path(config.path or "")
    if not path.is_file():
        raise UserError(f"npz file {path} does not exist; set data.path to your .npz file")
    if not config.kinds:
        raise UserError(
            "data.kinds is empty; map each array of the npz to a kind, e.g. {image: image, label: label}"
        )
    arrays = _read(path)
    n = _check_lengths(path, arrays, config.kinds)
    tensors, specs = {}, []
    for name, kind in config.kinds.items():
        tensor, spec = _modality(path, name, kind, arrays[name])
        tensors[name] = tensor
        specs.append(spec)
    split = _split(path, arrays.get("split"), n)
    index = [torch.from_numpy(np.flatnonzero(split == part)) for part in (0, 1, 2)]
    index[0] = index[0][: take_first(config.train_size, len(index[0]), str(path))]
    if "paired" in arrays:
        paired = torch.from_numpy(_paired(path, arrays["paired"], n))[index[0]]
    elif config.balanced_pairs:
        labels = [name for name, kind in config.kinds.items() if kind == "label"]
        if not labels:
            raise UserError("data.balanced_pairs needs a label modality in data.kinds; set it false")
        paired = balanced_paired_mask(tensors[labels[0]][index[0]], config.paired_fraction, seed)
    else:
        paired = paired_mask(len(index[0]), config.paired_fraction, seed)

    def subset(chosen: torch.Tensor, mask: torch.Tensor | None = None) -> MultimodalDataset:
        return MultimodalDataset({name: tensor[chosen] for name, tensor in tensors.items()}, specs, mask)

    test = subset(index[2]) if with_test else None
    return DatasetSplits("npz", specs, subset(index[0], paired), subset(index[1]), test)


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"cannot read {path} as a .npz file of numeric arrays: {error}") from None


def _check_lengths(path: Path, arrays: dict[str, np.ndarray], kinds: dict[str, str]) -> int:
    for name in kinds:
        if name in RESERVED:
            raise UserError(f"data.kinds uses the reserved name {name!r}; rename that array in {path}")
        if name not in arrays:
            raise UserError(f"{path} has no array {name!r} (it has: {', '.join(arrays)}); fix data.kinds")
    present = [name for name in (*kinds, *RESERVED) if name in arrays]
    lengths = {name: arrays[name].shape[0] if arrays[name].ndim else 0 for name in present}
    if len(set(lengths.values())) != 1:
        listing = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise UserError(f"the arrays of {path} must have the same first axis (examples); got {listing}")
    n = next(iter(lengths.values()))
    if n < 3:
        raise UserError(f"{path} has {n} examples; at least 3 are needed (train, val and test)")
    return n


def _modality(path: Path, name: str, kind: str, array: np.ndarray) -> tuple[torch.Tensor, ModalitySpec]:
    where = f"array {name!r} of {path}"
    if kind == "image":
        if array.ndim not in (2, 3, 4):
            raise UserError(
                f"{where}: an image must be [n, C, H, W], [n, H, W] (grayscale) or [n, D], "
                f"got shape {list(array.shape)}"
            )
        if array.ndim == 3:
            array = array[:, np.newaxis]
        if array.dtype != np.uint8:
            if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
                raise UserError(f"{where}: an image must be uint8 or float in [0, 1], got {array.dtype}")
            array = array.astype(np.float32)
            if not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
                raise UserError(f"{where}: float image values must lie in [0, 1]; rescale them")
        return torch.from_numpy(array), ModalitySpec(name, kind, tuple(array.shape[1:]))
    if kind == "label":
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise UserError(
                f"{where}: labels must be integers of shape [n], got {array.dtype} {list(array.shape)}"
            )
        if array.min() < 0:
            raise UserError(f"{where}: labels must be class ids >= 0, got {array.min()}")
        return torch.from_numpy(array.astype(np.int64)), ModalitySpec(name, kind, (int(array.max()) + 1,))
    if kind == "attributes":
        if array.ndim != 2 or not np.isin(array, (0, 1)).all():
            raise UserError(f"{where}: attributes must be a 0/1 matrix [n, K], got shape {list(array.shape)}")
        return torch.from_numpy(array.astype(np.uint8)), ModalitySpec(name, kind, (array.shape[1],))
    raise UserError(f"data.kinds.{name} must be one of image, label, attributes; got {kind!r}")


def _split(path: Path, split: np.ndarray | None, n: int) -> np.ndarray:
    if split is None:
        n_val = n_test = max(1, round(0.1 * n))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).numpy()
        split = np.zeros(n, dtype=np.int64)
        split[order[:n_val]] = 1
        split[order[n_val : n_val + n_test]] = 2
        return split
    if (
        split.shape != (n,)
        or not np.issubdtype(split.dtype, np.integer)
        or not np.isin(split, (0, 1, 2)).all()
    ):
        raise UserError(
            f"array 'split' of {path} must be integers 0 (train), 1 (val), 2 (test) of shape [{n}]"
        )
    for part, label in enumerate(("train", "val", "test")):
        if not (split == part).any():
            raise UserError(
                f"array 'split' of {path} puts no example in {label} ({part}); every split needs one"
            )
    return split


def _paired(path: Path, paired: np.ndarray, n: int) -> np.ndarray:
    if paired.shape != (n,) or not np.isin(paired, (0, 1)).all():
        raise UserError(f"array 'paired' of {path} must be booleans of shape [{n}]")
    return paired.astype(bool)
