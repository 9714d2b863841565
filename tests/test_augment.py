"""train.augment_shift, train.augment_rotate and train.augment_flip: the random translation against a
per-example reference, the rotation against exact quarter turns and its own angle draws, the mirror against
its own coin flips, and their use in training."""

from __future__ import annotations

import pytest
import torch

from dmvae.training.augment import random_flip, random_rotation, random_shift, rotate


def shifted(image: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """Reference: `image` [C, H, W] moved down/right by whole pixels (negative: up/left), zeros behind."""
    out = torch.zeros_like(image)
    _, height, width = image.shape
    rows_to, rows_from = (
        slice(max(down, 0), height + min(down, 0)),
        slice(max(-down, 0), height + min(-down, 0)),
    )
    cols_to, cols_from = (
        slice(max(right, 0), width + min(right, 0)),
        slice(max(-right, 0), width + min(-right, 0)),
    )
    out[:, rows_to, cols_to] = image[:, rows_from, cols_from]
    return out


@pytest.mark.parametrize("shift", [1, 2])
def test_each_image_moves_by_its_own_offset_within_the_bound(shift: int) -> None:
    images = torch.rand(256, 2, 7, 9)
    moved = random_shift(images, shift, torch.Generator().manual_seed(0))
    offsets = torch.randint(0, 2 * shift + 1, (2, 256), generator=torch.Generator().manual_seed(0)) - shift
    seen = set()
    for i in range(256):
        # an offset o in the padded frame shows the image moved by -o
        down, right = -int(offsets[0, i]), -int(offsets[1, i])
        assert torch.equal(moved[i], shifted(images[i], down, right)), (i, down, right)
        seen.add((down, right))
    assert len(seen) == (2 * shift + 1) ** 2  # 256 draws cover every offset of the window


def test_no_shift_is_the_identity_and_the_same_generator_repeats() -> None:
    images = torch.rand(8, 1, 5, 5)
    assert random_shift(images, 0, torch.Generator().manual_seed(0)) is images
    first = random_shift(images, 2, torch.Generator().manual_seed(3))
    assert torch.equal(first, random_shift(images, 2, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, random_shift(images, 2, torch.Generator().manual_seed(4)))


def test_a_negative_shift_is_a_one_line_error() -> None:
    from fixtures_training import tiny_config

    from dmvae.errors import UserError

    with pytest.raises(UserError, match="train.augment_shift must be a whole number of pixels"):
        tiny_config(train={"augment_shift": -1})


def test_a_quarter_turn_is_exact_and_a_positive_angle_turns_clockwise() -> None:
    images = torch.rand(2, 3, 6, 6)
    turned = rotate(images, torch.tensor([torch.pi / 2, -torch.pi / 2]))
    # torch.rot90 with k = -1 over (rows, columns) turns clockwise as displayed (row 0 at the top)
    assert torch.allclose(turned[0], torch.rot90(images[0], -1, (1, 2)), atol=1e-6)
    assert torch.allclose(turned[1], torch.rot90(images[1], 1, (1, 2)), atol=1e-6)
    assert torch.allclose(rotate(images, torch.zeros(2)), images, atol=1e-6)


def test_each_image_turns_by_its_own_angle_within_the_bound() -> None:
    images = torch.rand(64, 1, 9, 9)
    turned = random_rotation(images, 15.0, torch.Generator().manual_seed(0))
    angles = (torch.rand(64, generator=torch.Generator().manual_seed(0)) * 2 - 1) * (15 * torch.pi / 180)
    assert angles.abs().max() <= 15 * torch.pi / 180 and angles.std() > 0.1  # spread over the bound
    assert torch.equal(turned, rotate(images, angles))
    assert random_rotation(images, 0.0, torch.Generator().manual_seed(0)) is images


@pytest.mark.parametrize("degrees", [-1.0, 200.0, "ten"])
def test_a_bad_rotation_is_a_one_line_error(degrees) -> None:
    from fixtures_training import tiny_config

    from dmvae.errors import UserError

    with pytest.raises(UserError, match="train.augment_rotate must be"):
        tiny_config(train={"augment_rotate": degrees})


def test_each_image_is_mirrored_or_kept_by_its_own_coin() -> None:
    images = torch.rand(200, 2, 5, 7)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    coins = torch.rand(200, generator=torch.Generator().manual_seed(0)) < 0.5
    for i in range(200):
        # column j of a mirrored image is column W-1-j of the original
        expected = images[i][:, :, list(range(6, -1, -1))] if coins[i] else images[i]
        assert torch.equal(flipped[i], expected), i
    assert 70 < int(coins.sum()) < 130  # about half of them mirrored


def test_a_bad_flip_setting_is_a_one_line_error() -> None:
    from fixtures_training import tiny_config

    from dmvae.errors import UserError

    with pytest.raises(UserError, match="train.augment_flip must be true or false"):
        tiny_config(train={"augment_flip": "yes"})


@pytest.mark.parametrize(
    "augmentation",
    [{"augment_shift": 1}, {"augment_shift": 1, "augment_rotate": 10.0}, {"augment_flip": True}],
    ids=["shift", "rotate", "flip"],
)
def test_training_with_an_augmentation_is_seeded_and_differs_from_training_without(
    augmentation: dict, synthetic_splits
) -> None:
    from fixtures_training import tiny_config, without_timing

    from dmvae.training import Trainer

    splits = synthetic_splits(n_train=96, paired_fraction=0.5)
    runs = []
    for train in (augmentation, augmentation, {}):
        trainer = Trainer(tiny_config(train={"epochs": 1} | train), splits=splits, progress=None)
        trainer.fit()
        runs.append(without_timing(trainer.history))
    assert runs[0] == runs[1]
    assert runs[0][0]["train/loss"] != runs[2][0]["train/loss"]
