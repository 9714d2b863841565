"""Tiny data sets on disk for tests (import these helpers; they are not pytest fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The 40 attributes of list_attr_celeba.txt, in the file's order.
CELEBA_ALL_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def write_celeba_fixture(root: Path, n: int = 24, size: tuple[int, int] = (178, 218)) -> Path:
    """Write n random JPEGs (size = (width, height)) and the attribute and partition lists under root/celeba.

    The last n // 6 images (at least 1) are test (2), as many before them val (1), the rest train (0).
    Returns root/celeba; load it with DataConfig(name="celeba", root=str(root)).
    """
    folder = Path(root) / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    for file in files:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / file, quality=90)
    values = rng.choice([-1, 1], size=(n, len(CELEBA_ALL_ATTRIBUTES)))
    rows = [f"{file} " + " ".join(f"{v:2d}" for v in row) for file, row in zip(files, values, strict=True)]
    header = [str(n), " ".join(CELEBA_ALL_ATTRIBUTES) + " "]
    (folder / "list_attr_celeba.txt").write_text("\n".join(header + rows) + "\n")
    held_out = max(1, n // 6)  # val and test each; the rest is train
    parts = [0 if i < n - 2 * held_out else 1 if i < n - held_out else 2 for i in range(n)]
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{f} {p}\n" for f, p in zip(files, parts, strict=True))
    )
    return folder


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array in the IDX format (magic 0x08 type, one big-endian uint32 per dimension)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    Path(path).write_bytes(header + array.tobytes())
    return Path(path)
