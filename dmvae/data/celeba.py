"""CelebA in torchvision's layout under root/celeba/, as 64x64 images and the paper's 18 attributes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dmvae.config import DataConfig
from dmvae.data.fetch import CELEBA_FILES, CELEBA_HELP
from dmvae.data.loaders import register_loader
from dmvae.data.types import DatasetSplits, ModalitySpec, MultimodalDataset, paired_mask, take_first
from dmvae.errors import UserError

# The 18 attributes used by MVAE and the DMVAE paper, in this order.
CELEBA_ATTRIBUTES = (
    "Bald",
    "Bangs",
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Eyeglasses",
    "Gray_Hair",
    "Heavy_Makeup",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Pale_Skin",
    "Receding_Hairline",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Hat",
)
CROP, SIZE = 148, 64
CACHE = "cache_64.pt"
CACHE_VERSION = 1


@register_loader("celeba")
def load_celeba(
    config: DataConfig, root: Path, seed: int, with_test: bool = True, progress: Callable[[str], None] = print
) -> DatasetSplits:
    folder = root / "celeba"
    missing = [name for name in CELEBA_FILES if not (folder / name).exists()]
    if missing:
        raise UserError(
            f"CelebA not found (missing {', '.join(missing)}); " + CELEBA_HELP.format(folder=folder)
        )
    files, names, values = _read_attributes(folder / "list_attr_celeba.txt")
    partition = _read_partition(folder / "list_eval_partition.txt", files)
    absent = [name for name in CELEBA_ATTRIBUTES if name not in names]
    if absent:
        raise UserError(f"{folder / 'list_attr_celeba.txt'} lacks the attributes {', '.join(absent)}")
    columns = [names.index(name) for name in CELEBA_ATTRIBUTES]
    attributes = torch.from_numpy(values[:, columns] == 1).to(torch.uint8)
    images = _cached_images(folder, files, progress)
    specs = [
        ModalitySpec("image", "image", (3, SIZE, SIZE)),
        ModalitySpec("attributes", "attributes", (len(CELEBA_ATTRIBUTES),), CELEBA_ATTRIBUTES),
    ]

    index = [torch.from_numpy(np.flatnonzero(partition == part)) for part in (0, 1, 2)]
    for part, chosen in zip(("train", "val", "test"), index, strict=True):
        if len(chosen) == 0:
            raise UserError(f"{folder / 'list_eval_partition.txt'} puts no image in the {part} split")
    index[0] = index[0][: take_first(config.train_size, len(index[0]), "CelebA")]

    def split(chosen: torch.Tensor, paired: torch.Tensor | None = None) -> MultimodalDataset:
        return MultimodalDataset({"image": images[chosen], "attributes": attributes[chosen]}, specs, paired)

    train = split(index[0], paired_mask(len(index[0]), config.paired_fraction, seed))
    return DatasetSplits("celeba", specs, train, split(index[1]), split(index[2]) if with_test else None)


def _read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise UserError(f"{path} must start with the image count and a line of attribute names")
    count, names = int(lines[0]), lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise UserError(f"{path} announces {count} images but lists {len(rows)}; download it again")
    bad = next((row for row in rows if len(row) != len(names) + 1), None)
    if bad is not None:
        raise UserError(f"{path}: the row of {bad[0]} has {len(bad) - 1} values, expected {len(names)}")
    try:
        values = np.array([row[1:] for row in rows], dtype=np.int8).reshape(len(rows), len(names))
    except ValueError:
        raise UserError(f"{path} holds a value that is not -1 or 1") from None
    if not np.isin(values, (-1, 1)).all():
        raise UserError(f"{path} holds a value that is not -1 or 1")
    return [row[0] for row in rows], names, values


def _read_partition(path: Path, files: list[str]) -> np.ndarray:
    parts = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields:
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise UserError(f"{path}: bad line {line!r}; expected `<file> 0|1|2`")
            parts[fields[0]] = int(fields[1])
    missing = [file for file in files if file not in parts]
    if missing:
        raise UserError(f"{path} has no split for {missing[0]} (and {len(missing) - 1} more images)")
    return np.array([parts[file] for file in files], dtype=np.int8)


def _cached_images(folder: Path, files: list[str], progress: Callable[[str], None]) -> torch.Tensor:
    """uint8 [n, 3, 64, 64] in the order of `files`, from cache_64.pt when the source listing is unchanged."""
    image_dir = folder / "img_align_celeba"
    with os.scandir(image_dir) as entries:
        count = sum(1 for entry in entries if entry.name.endswith(".jpg"))
    key = {
        "version": CACHE_VERSION,
        "count": count,
        "files": len(files),
        "sizes": [(folder / name).stat().st_size for name in CELEBA_FILES[1:]],
    }
    cache = folder / CACHE
    if cache.is_file():
        try:
            stored = torch.load(cache, weights_only=True)
            if stored.get("key") == key:
                return stored["images"]
        except Exception:  # an unreadable cache is rebuilt
            pass
    images = torch.empty(len(files), 3, SIZE, SIZE, dtype=torch.uint8)
    progress(f"decoding {len(files)} CelebA images to {SIZE}x{SIZE} (cached in {cache})")
    for i, name in enumerate(files):
        images[i] = _decode(image_dir / name)
        if (i + 1) % 10_000 == 0:
            progress(f"  {i + 1}/{len(files)} images")
    partial = cache.with_suffix(".part")
    try:
        torch.save({"key": key, "images": images}, partial)
        os.replace(partial, cache)
    except OSError as error:
        progress(f"could not write the cache {cache}: {error.strerror}")
    return images


def _decode(path: Path) -> torch.Tensor:
    """Center crop to 148x148 (or the shorter side, if smaller), resize to 64x64, as uint8 [3, 64, 64]."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except OSError:
        raise UserError(
            f"CelebA image {path} is missing or unreadable; restore it from the original download"
        ) from None
    width, height = image.size
    crop = min(CROP, width, height)
    left, top = (width - crop) // 2, (height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop)).resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
