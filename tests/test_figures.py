"""write_figures on tiny synthetic data: which PNGs appear, their pixel sizes, determinism, RNG hygiene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmvae.config import RunConfig
from dmvae.data import DatasetSplits, ModalitySpec, MultimodalDataset
from dmvae.evaluation.figures import write_figures
from dmvae.training.trainer import Trainer

SIDE = 8
PADDING = 2
CLASSES = 10
ATTRIBUTES = 5
TEST_SIZE = 30


def synthetic_splits(
    target_kind: str = "label", image_shape: tuple[int, ...] = (1, SIDE, SIDE)
) -> DatasetSplits:
    """Images whose brightness pattern depends on the class (or attributes), so that examples differ."""
    generator = torch.Generator().manual_seed(1)
    if target_kind == "label":
        target_spec = ModalitySpec("label", "label", (CLASSES,), tuple(f"digit {c}" for c in range(CLASSES)))
    else:
        target_spec = ModalitySpec(
            "attributes", "attributes", (ATTRIBUTES,), tuple(f"attr{k}" for k in range(ATTRIBUTES))
        )
    specs = [ModalitySpec("image", "image", image_shape), target_spec]

    def split(n: int) -> MultimodalDataset:
        if target_kind == "label":
            targets = torch.randint(0, CLASSES, (n,), generator=generator)
            level = targets.float() / CLASSES
        else:
            targets = torch.randint(0, 2, (n, ATTRIBUTES), generator=generator)
            level = targets.float().mean(1)
        noise = torch.rand(n, *image_shape, generator=generator)
        images = (255 * (0.5 * noise + 0.5 * level.view(n, *[1] * len(image_shape)))).to(torch.uint8)
        return MultimodalDataset({"image": images, target_spec.name: targets}, specs)

    return DatasetSplits("synthetic", specs, split(40), split(20), split(TEST_SIZE))


def tiny_config(**model) -> RunConfig:
    values = {
        "device": "cpu",
        "model": {"architecture": "mlp", "hidden_dim": 32, "shared": "categorical", "shared_dim": CLASSES,
                  "private_dim": {"image": 3}} | model,
        "train": {"epochs": 1, "batch_size": 16, "checkpoint_every": 0},
        "eval": {"figures": False},
    }  # fmt: skip
    return RunConfig.from_dict(values)


def grid_size(rows: int, columns: int, side: int = SIDE) -> tuple[int, int]:
    """(width, height) of a torchvision grid of square tiles."""
    return columns * (side + PADDING) + PADDING, rows * (side + PADDING) + PADDING


def check_png(path: Path, size: tuple[int, int], grid: bool = True) -> None:
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.size == size
        pixels = np.asarray(image.convert("L"))
    if grid:  # look only inside the tiles, not at the padding between them
        inside = (np.arange(pixels.shape[0]) % (SIDE + PADDING) >= PADDING)[:, None] & (
            np.arange(pixels.shape[1]) % (SIDE + PADDING) >= PADDING
        )[None, :]
        pixels = pixels[inside]
    assert pixels.min() < pixels.max(), f"{path.name} is a constant image"


CASES = {
    # name: (model settings, target kind, columns of the target values, traversal steps)
    "dmvae_categorical": ({}, "label", CLASSES, CLASSES),
    "dmvae_gaussian": ({"shared": "gaussian", "shared_dim": 4}, "label", CLASSES, 4),
    "dmvae_binary_attributes": ({"shared": "binary", "shared_dim": 12}, "attributes", 1 + ATTRIBUTES, 10),
    "mvae": ({"kind": "mvae", "shared": "gaussian", "shared_dim": 4, "private_dim": {}}, "label", CLASSES, 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_figures_have_the_grid_layout(case: str, tmp_path: Path) -> None:
    model_settings, target_kind, value_columns, traversal_steps = CASES[case]
    trainer = Trainer(tiny_config(**model_settings), splits=synthetic_splits(target_kind), progress=None)
    written = write_figures(trainer, tmp_path / "figures")
    names = sorted(path.name for path in written)
    has_private = case != "mvae"
    expected = {"cross_synthesis_prior.png", "traversal.png", "embedding.png"}
    expected |= {"cross_synthesis_style.png"} if has_private else set()
    assert names == sorted(expected)
    folder = tmp_path / "figures"
    check_png(folder / "cross_synthesis_prior.png", grid_size(8, value_columns))
    check_png(folder / "traversal.png", grid_size(8, traversal_steps + 2))
    if has_private:
        check_png(folder / "cross_synthesis_style.png", grid_size(8, value_columns + 1))
    check_png(folder / "embedding.png", ((2 if has_private else 1) * 500, 450), grid=False)


def test_figures_are_deterministic_and_leave_rng_and_mode_alone(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(), splits=synthetic_splits(), progress=None)
    trainer.model.train()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = write_figures(trainer, tmp_path / "first")
    assert torch.equal(torch.get_rng_state(), state)
    assert trainer.model.training
    second = write_figures(trainer, tmp_path / "second")
    for a, b in zip(first, second, strict=True):
        assert a.name == b.name
        if a.name != "embedding.png":  # matplotlib may stamp metadata; the grids must match byte for byte
            assert a.read_bytes() == b.read_bytes()


def test_flat_image_source_gets_only_the_embedding(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(), splits=synthetic_splits(image_shape=(SIDE * SIDE,)), progress=None)
    written = write_figures(trainer, tmp_path)
    assert [path.name for path in written] == ["embedding.png"]
    check_png(tmp_path / "embedding.png", (1000, 450), grid=False)


def test_fit_writes_figures_when_asked(tmp_path: Path) -> None:
    config = tiny_config().with_overrides(["eval.figures=true"])
    Trainer(config, out_dir=tmp_path, splits=synthetic_splits(), progress=None).fit()
    assert sorted(path.name for path in (tmp_path / "figures").iterdir()) == [
        "cross_synthesis_prior.png", "cross_synthesis_style.png", "embedding.png", "traversal.png",
    ]  # fmt: skip
