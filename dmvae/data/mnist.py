"""MNIST and Fashion-MNIST from root/<name>/ IDX files: 50k train, 10k val (end of train), 10k test."""

from __future__ import annotations

from pathlib import Path

from dmvae.config import DataConfig
from dmvae.data.fetch import DISPLAY, require_verified
from dmvae.data.idx import read_idx
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

TRAIN_SIZE = 50_000
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fmnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}


@register_loader("mnist", "fmnist")
def load_mnist(
    config: DataConfig, root: Path, seed: int, with_test: bool = True, progress=None
) -> DatasetSplits:
    name = config.name
    folder = require_verified(name, root)
    train_images, train_labels = _read_pair(folder, "train", name)
    specs = [
        ModalitySpec("image", "image", (1, 28, 28)),
        ModalitySpec("label", "label", (10,), CLASS_NAMES[name]),
    ]
    n_train = take_first(config.train_size, TRAIN_SIZE, DISPLAY[name])

    def split(images, labels, start, stop, paired=None):
        tensors = {"image": images[start:stop].unsqueeze(1), "label": labels[start:stop].long()}
        return MultimodalDataset(tensors, specs, paired)

    if config.balanced_pairs:
        paired = balanced_paired_mask(train_labels[:n_train], config.paired_fraction, seed)
    else:
        paired = paired_mask(n_train, config.paired_fraction, seed)
    return DatasetSplits(
        name=name,
        specs=specs,
        train=split(train_images, train_labels, 0, n_train, paired),
        val=split(train_images, train_labels, TRAIN_SIZE, len(train_images)),
        test=split(*_read_pair(folder, "t10k", name), 0, None) if with_test else None,
    )


def _read_pair(folder: Path, prefix: str, name: str):
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    if images.dim() != 3 or images.shape[1:] != (28, 28) or labels.dim() != 1 or len(images) != len(labels):
        raise UserError(
            f"{DISPLAY[name]} {prefix} files in {folder} have shapes {list(images.shape)} and "
            f"{list(labels.shape)}, expected [n, 28, 28] and [n]; run `dmvae data fetch {name}` again"
        )
    if prefix == "train" and len(images) <= TRAIN_SIZE:
        raise UserError(f"{DISPLAY[name]} in {folder} has only {len(images)} training images, expected 60000")
    return images, labels
